"""vo-al and the Virtual Observatory over SAMP: candidate tables and spectra
out to TOPCAT and SPLAT-VO, labels back in.

- :mod:`~vo_al.samp.bridge`: the ``pyvo.samp`` client (registration,
  reconnection, calls, replies) and its one ``dispatch(item)`` hook;
- :mod:`~vo_al.samp.inbox`: the items the hook delivers, and the headless
  queue;
- :mod:`~vo_al.samp.receiver`: checks and acts on incoming calls on the
  thread that owns the session, and always replies; the slow part of a
  call (:mod:`~vo_al.samp.download`, :mod:`~vo_al.samp.labeltable`,
  :mod:`~vo_al.samp.classify`) runs on :mod:`~vo_al.samp.work`'s threads;
- :mod:`~vo_al.samp.trust`: which clients may change labels or have local
  files read;
- :mod:`~vo_al.samp.publisher`: tables, rows, positions and spectra out;
- :mod:`~vo_al.samp.messages`, :mod:`~vo_al.samp.tables`,
  :mod:`~vo_al.samp.sdm`, :mod:`~vo_al.samp.files`: messages, VOTables,
  SDM spectrum files, and the files handed to peers;
- :mod:`~vo_al.samp.link`: all of it for one session;
  :mod:`~vo_al.samp.headless`: ``vo-al samp``.

See ``docs/samp.md``.
"""

from .bridge import Pending, SampBridge
from .errors import HubUnavailable, MessageRejected, SampError
from .headless import Runner, run
from .inbox import Call, QueueInbox, Response, Step
from .link import SampLink
from .trust import DESKTOP_TOOLS, Trust

__all__ = [
    "SampBridge",
    "Pending",
    "SampLink",
    "Call",
    "Step",
    "Response",
    "QueueInbox",
    "Trust",
    "DESKTOP_TOOLS",
    "Runner",
    "run",
    "SampError",
    "HubUnavailable",
    "MessageRejected",
]
