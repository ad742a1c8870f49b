"""Everything SAMP for one open session, put together.

The GUI and the headless runner build the same parts around a session:

>>> link = SampLink(session, dispatch=inbox.put, armed="emission")  # doctest: +SKIP
>>> link.start()
>>> # on the owning thread, for each item the hook delivered:
>>> link.receiver.process(call)                      # a Call: validate, act, reply
>>> link.publisher.send_table("candidates")          # out: tables, rows, spectra
>>> link.close()                                     # unregister, remove the files
"""

from __future__ import annotations

from typing import Callable

from ..session import Session
from .bridge import SampBridge
from .files import PeerFiles
from .publisher import Publisher
from .receiver import Receiver
from .tables import TableRegistry

__all__ = ["SampLink"]


class SampLink:
    """The bridge, the peer files, the sent tables, the receiver and the publisher.

    Parameters
    ----------
    session : Session
        Owned by the thread that processes the dispatched items.
    dispatch : callable
        The hook of :class:`~vo_al.samp.bridge.SampBridge`.
    own_hub : bool
        Start a hub in this process when none is running.
    armed, id_column, label_column, on_event
        As for :class:`~vo_al.samp.receiver.Receiver`.
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

    def __init__(self, session: Session, dispatch: Callable[[object], None], *,
                 own_hub: bool = False, armed: str | None = None, id_column: str = "id",
                 label_column: str = "label",
                 on_event: Callable[[str, object], None] | None = None,
                 access_limit: int = 500, check_interval: float = 1.0):
        self.files = PeerFiles(session.directory)
        self.tables = TableRegistry(self.files)
        self.bridge = SampBridge(dispatch, own_hub=own_hub, check_interval=check_interval)
        try:
            self.receiver = Receiver(session, self.tables, self.files, self.bridge.reply,
                                     armed=armed, id_column=id_column,
                                     label_column=label_column, on_event=on_event)
        except ValueError:
            self.files.close()
            raise
        self.publisher = Publisher(session, self.bridge, self.files, self.tables,
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
        """Unregister from the hub, then remove every file handed to peers."""
        self.bridge.close()
        self.publisher.close()
        self.tables.close()
        self.files.close()
