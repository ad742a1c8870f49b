"""``vo-al samp SESSION``: the bridge without a GUI.

Registers with the hub (or starts vo-al's own with ``own_hub``), optionally
broadcasts the current candidate table once registered, applies incoming
labels to the session, logs every message, and returns when ``stop`` is set
or on SIGINT/SIGTERM (when run on the main thread), after unregistering and
removing its files.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable

from ..session import Session, SessionError
from .errors import SampError
from .inbox import Call, QueueInbox, Response, Status
from .link import SampLink

__all__ = ["run", "Runner"]

_POLL = 0.2
_SHOWN = 160


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _verdict(classification) -> str:
    if classification.problem:
        return classification.problem
    name = classification.predicted
    p = classification.probabilities[name]
    return f"{name} (p = {p:.3f}, model of iteration {classification.iteration})"


class Runner:
    """The headless owner of a session's SAMP link.

    Parameters
    ----------
    session : Session
    broadcast : bool
        Send the candidate table to every subscribed client once registered.
    arm : str, optional
        Label given to every spectrum of an incoming row selection.
    own_hub : bool
    log : callable
        ``log(line)`` for every message, reply, response and status change.
    id_column, label_column : str
        Columns of tables sent to vo-al.
    check_interval : float
        Seconds between the bridge's registration checks.

    Attributes
    ----------
    inbox : QueueInbox
    link : SampLink
    """

    def __init__(self, session: Session, *, broadcast: bool = False, arm: str | None = None,
                 own_hub: bool = False, log: Callable[[str], None] = print,
                 id_column: str = "id", label_column: str = "label",
                 check_interval: float = 1.0):
        self.inbox = QueueInbox()
        self._log = log
        self._broadcast_due = broadcast
        self.link = SampLink(session, self.inbox.put, own_hub=own_hub, armed=arm,
                             id_column=id_column, label_column=label_column,
                             on_event=self._event, check_interval=check_interval)

    def serve(self, stop: threading.Event):
        """Run until ``stop`` is set, then close the link."""
        try:
            if not self.link.start():
                self._log("samp: no SAMP hub yet; waiting for one")
            while not stop.is_set():
                item = self.inbox.get(timeout=_POLL)
                if item is not None:
                    self._handle(item)
                if self._broadcast_due and self.link.bridge.connected:
                    self._broadcast()
        finally:
            self.link.close()
            self._log("samp: unregistered; files removed")

    def _handle(self, item):
        if isinstance(item, Call):
            kind = "notification" if item.is_notification else "call"
            self._log(f"samp: ← {item.mtype} {kind} from {item.sender_name}: "
                      f"{_short(item.params)}")
            response = self.link.receiver.process(item)
            took = (time.monotonic() - item.received) * 1000
            error = response.get("samp.error", {}).get("samp.errortxt", "")
            self._log(f"samp: → {response['samp.status']} to {item.sender_name} "
                      f"({took:.0f} ms){': ' + error if error else ''}")
        elif isinstance(item, Response):
            detail = f": {item.error_text}" if item.error_text else ""
            self._log(f"samp: {item.responder_name} answered {item.mtype} with "
                      f"{item.status}{detail}")
        elif isinstance(item, Status):
            self._log(f"samp: {item.text}")

    def _broadcast(self):
        self._broadcast_due = False
        try:
            sent, pending = self.link.publisher.send_table("candidates")
        except (ValueError, SampError) as exc:
            self._log(f"samp: nothing broadcast: {exc}")
            return
        self._log(f"samp: sent {len(sent.ids)} candidates as {sent.table_id} to "
                  f"{len(pending.recipients)} clients")

    def _event(self, kind: str, detail):
        if kind in ("labelled", "imported"):
            for entry in detail:
                self._log(f"samp: {entry.spectrum_id} labelled {entry.label or entry.action} "
                          f"(#{entry.seq}, {entry.source})")
        elif kind == "undone":
            self._log(f"samp: undid #{detail.undoes} of {detail.spectrum_id}")
        elif kind == "classified":
            self._log(f"samp: classified {detail.spectrum.id} from {detail.spectrum.source}: "
                      f"{_verdict(detail)}")
        elif kind == "current":
            self._log(f"samp: current spectrum {detail}")
        elif kind == "selection":
            self._log(f"samp: selection of {len(detail)} spectra")


@contextmanager
def _stop_on_signals(stop: threading.Event):
    """Set ``stop`` on SIGINT and SIGTERM while inside (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(session_dir, broadcast: bool = False, arm: str | None = None, own_hub: bool = False,
        stop: threading.Event | None = None, log: Callable[[str], None] = print, *,
        id_column: str = "id", label_column: str = "label") -> int:
    """Run the SAMP bridge on a session until stopped.

    Parameters
    ----------
    session_dir : path-like
        An existing session.
    broadcast : bool
        Send the current candidate table to every subscribed client once
        registered (``--broadcast``).
    arm : str, optional
        Label every spectrum of an incoming row selection with this class
        (``--arm CLASS``).
    own_hub : bool
        Start a hub in this process when none is running (``--own-hub``).
    stop : threading.Event, optional
        Set it to stop; SIGINT and SIGTERM set it when ``run`` is called on
        the main thread.
    log : callable
        Receives one line per message, reply and status change.
    id_column, label_column : str
        Columns read from tables sent to vo-al.

    Returns
    -------
    int
        0 after a clean stop; 2 when the session cannot be opened or the
        label to arm is unknown.
    """
    stop = stop or threading.Event()
    try:
        session = Session.open(session_dir)
    except SessionError as exc:
        log(f"vo-al samp: {exc}")
        return 2
    with session, _stop_on_signals(stop):
        try:
            runner = Runner(session, broadcast=broadcast, arm=arm, own_hub=own_hub, log=log,
                            id_column=id_column, label_column=label_column)
        except ValueError as exc:
            log(f"vo-al samp: {exc}")
            return 2
        runner.serve(stop)
    return 0
