"""What the bridge hands to the thread that owns the session.

SAMP callbacks run on the client's server threads. They never touch the
session: the bridge wraps what arrived in a small frozen record and passes
it to one hook, ``dispatch(item)``, which must only queue it for the owning
thread and return at once.

- Headless: ``dispatch`` is :meth:`QueueInbox.put`; the owner loop takes
  items with :meth:`QueueInbox.get`.
- GUI: ``dispatch`` is a Qt signal's ``emit`` with a queued connection
  (the core never imports Qt); the slot runs on the GUI thread.

The owner then hands each :class:`Call` to
:meth:`vo_al.samp.receiver.Receiver.process`, which validates it and
either acts and replies at once, or passes the slow part (fetching a URL,
reading a table, classifying a spectrum) to a worker thread. The worker's
result comes back through the same hook as a :class:`Step`, which the
owner hands to ``process`` too: it acts on the session and replies (a
large label table is imported in slices, one :class:`Step` each, so other
messages are answered in between). So a caller using ``callAndWait``
always gets its answer, and the owner thread never waits on a peer.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Callable

from .messages import TABLE_LOAD

__all__ = ["Call", "Step", "Response", "QueueInbox"]


@dataclass(frozen=True)
class Call:
    """An incoming call or notification, not yet checked.

    Attributes
    ----------
    mtype : str
    params : object
        ``samp.params`` as received (any type: checking is the owner's job).
    sender_id : str
        The hub's public id of the sender.
    sender_name : str
        The sender's ``samp.name`` (its id when it declared none).
    msg_id : str or None
        The hub's message id to reply to; None for a notification.
    received : float
        ``time.monotonic()`` on arrival.
    """

    mtype: str
    params: object
    sender_id: str
    sender_name: str
    msg_id: str | None = None
    received: float = field(default_factory=time.monotonic)

    @property
    def is_notification(self) -> bool:
        """True when no reply is expected."""
        return self.msg_id is None

    def describe_reply(self, response: dict) -> str:
        """The reply to this call in words, for a log: its status, to whom,
        a loaded table's counts and the error text.

        Examples
        --------
        >>> call = Call("table.load.votable", {}, "c1", "topcat", "m1")
        >>> call.describe_reply({"samp.status": "samp.ok", "samp.result": {"labelled": "3"}})
        '→ samp.ok to topcat: labelled 3'
        """
        error = response.get("samp.error", {}).get("samp.errortxt", "")
        result = response.get("samp.result", {})
        counts = ", ".join(f"{k} {v}" for k, v in result.items()) \
            if self.mtype == TABLE_LOAD else ""
        return "".join([f"→ {response['samp.status']} to {self.sender_name}",
                        f": {counts}" if counts else "", f": {error}" if error else ""])


@dataclass(frozen=True, eq=False)
class Step:
    """The next part of a call's work, for the owner thread.

    Made by the receiver only; the owner hands it back to
    :meth:`~vo_al.samp.receiver.Receiver.process`.

    Attributes
    ----------
    call : Call
        The call the work is for.
    owner : object
        The receiver that made it (a step reaching another one is ignored).
    work : callable
        ``work() -> response or None``, run by the receiver on the owner thread.
    """

    call: Call
    owner: object
    work: Callable[[], "dict | None"]


@dataclass(frozen=True)
class Response:
    """A peer's answer to a call vo-al made.

    Attributes
    ----------
    mtype : str
        The MType of vo-al's call.
    responder_id, responder_name : str
    response : dict
        ``samp.status`` and ``samp.result`` or ``samp.error``.
    """

    mtype: str
    responder_id: str
    responder_name: str
    response: dict

    @property
    def status(self) -> str:
        """``samp.ok``, ``samp.warning`` or ``samp.error``."""
        return str(self.response.get("samp.status", ""))

    @property
    def error_text(self) -> str:
        """The ``samp.errortxt``, ``''`` when none."""
        error = self.response.get("samp.error")
        return str(error.get("samp.errortxt", "")) if isinstance(error, dict) else ""


class QueueInbox:
    """The headless owner's inbox: a FIFO queue.

    Examples
    --------
    >>> inbox = QueueInbox()
    >>> inbox.put("an item")
    >>> inbox.get(timeout=0.1)
    'an item'
    """

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()

    def put(self, item):
        """The ``dispatch`` hook: queue an item (any thread; never blocks)."""
        self._queue.put(item)

    def get(self, timeout: float | None = None):
        """The next item, or None after ``timeout`` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
