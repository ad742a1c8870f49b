"""Everything SAMP for one open session, put together.

The GUI and the headless runner build the same parts around a session:

>>> link = SampLink(workspace, dispatch=inbox.put, armed="emission")  # doctest: +SKIP
>>> link.start()
>>> # on the owning thread, for each item the hook delivered:
>>> link.receiver.process(item)                      # a Call or Step: check, act, reply
>>> link.publisher.send_table("candidates")          # out: tables, rows, spectra
>>> link.close()                                     # unregister, remove the files

The link's state (registered or not, clients coming and going) is
published as :class:`~vo_al.events.SampStatus` on the workspace's event
hub, like every other change of an open session; the hook gets the rest.
"""

from __future__ import annotations

from typing import Callable

from ..events import SampStatus
from ..workspace import Workspace
from .bridge import SampBridge
from .files import PeerFiles
from .publisher import Publisher
from .receiver import Receiver
from .tables import TableRegistry
from .trust import Trust

__all__ = ["SampLink"]


class SampLink:
    """The bridge, the peer files, the sent tables, the receiver and the publisher.

    Parameters
    ----------
    workspace : Workspace
        The open session: labels go through it; tables and spectra are read from it.
        Owned by the thread that processes the dispatched items.
    dispatch : callable
        The hook of :class:`~vo_al.samp.bridge.SampBridge`, for calls,
        steps and responses (status goes to ``workspace.events``).
    own_hub : bool
        Start a hub in this process when none is running.
    armed, id_column, label_column, on_event
        As for :class:`~vo_al.samp.receiver.Receiver`.
    trust : iterable of str
        ``samp.name`` of clients trusted besides the desktop tools
        (:mod:`~vo_al.samp.trust`).
    access_limit : int
        As for :class:`~vo_al.samp.publisher.Publisher`.
    check_interval : float
        Seconds between the bridge's registration checks.

    Attributes
    ----------
    bridge : SampBridge
    files : PeerFiles
    tables : TableRegistry
    receiver : Receiver
    publisher : Publisher
    """

    def __init__(self, workspace: Workspace, dispatch: Callable[[object], None], *,
                 own_hub: bool = False, armed: str | None = None, id_column: str = "id",
                 label_column: str = "label",
                 on_event: Callable[[str, object], None] | None = None,
                 access_limit: int = 500, check_interval: float = 1.0, trust=()):
        self._events = workspace.events
        self._dispatch = dispatch
        self.files = PeerFiles(workspace.directory)
        self.tables = TableRegistry(self.files)
        self.bridge = SampBridge(self._route, own_hub=own_hub, check_interval=check_interval)
        try:
            self.receiver = Receiver(workspace, self.tables, self.files, self.bridge.reply,
                                     dispatch, armed=armed, id_column=id_column,
                                     label_column=label_column, on_event=on_event,
                                     trust=Trust(trust))
        except ValueError:
            self.files.close()
            raise
        self.publisher = Publisher(workspace.session, self.bridge, self.files, self.tables,
                                   access_limit=access_limit)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self) -> bool:
        """Connect (or keep trying in the background); True when registered now."""
        return self.bridge.start()

    def close(self):
        """Answer the calls still in progress, unregister, remove every file handed to peers."""
        self.receiver.close()
        self.bridge.close()
        self.publisher.close()
        self.tables.close()
        self.files.close()
        self._events.publish(SampStatus(False, "unregistered from the SAMP hub"))

    def _route(self, item):
        """The bridge's hook (SAMP threads): status to the event hub, the rest to ``dispatch``."""
        if isinstance(item, SampStatus):
            self._events.publish(item)
        else:
            self._dispatch(item)
