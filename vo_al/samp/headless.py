"""``vo-al samp SESSION``: the bridge without a GUI.

Registers with the hub (or starts vo-al's own with ``own_hub``), applies
incoming labels to the session, logs every message (and a summary of a
large import), and returns when ``stop`` is set or on SIGINT/SIGTERM (when
run on the main thread), after unregistering and removing its files.

With ``broadcast``, the candidate table goes to every client that takes
tables (``table.load.votable``), now or when it subscribes later, once
each: the table and its spectrum files are written, on a thread of their
own, only when there is such a client, and a stop interrupts the writing.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable

from ..cancel import Cancelled
from ..events import SampStatus
from ..workspace import SessionError, Workspace
from .errors import SampError
from .inbox import Call, QueueInbox, Response, Step
from .link import SampLink
from .messages import TABLE_LOAD, load_table
from .receiver import Progress

__all__ = ["run", "Runner"]

_POLL = 0.2
_SHOWN = 160
#: Entries of one event logged one by one; more are summed up.
_LISTED = 10
#: Longest wait for the broadcast thread after a stop (it stops at its next file).
_JOIN_S = 1.0


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _verdict(classification) -> str:
    if classification.problem:
        return classification.problem
    name = classification.predicted
    p = classification.probabilities[name]
    return f"{name} (p = {p:.3f}, model of iteration {classification.iteration})"


class _Broadcast:
    """The candidate table for every client that takes tables, once each, on its own thread.

    Woken by :meth:`poke` (registered, a client came or subscribed), it
    asks the hub who takes ``table.load.votable``; only when someone new
    does, it writes the table (once) and calls each newcomer.
    """

    def __init__(self, link: SampLink, log: Callable[[str], None]):
        self._link = link
        self._log = log
        self._wake = threading.Event()
        self._cancel = threading.Event()
        self._sent_to: set[str] = set()
        self._table = None
        self._waiting_said = False
        self._thread = threading.Thread(target=self._run, name="vo-al broadcast", daemon=True)
        self._thread.start()

    def poke(self):
        """Look for clients that take tables (any thread)."""
        self._wake.set()

    def stop(self):
        """Stop, interrupting the writing of the table; waits at most ``_JOIN_S``."""
        self._cancel.set()
        self._wake.set()
        self._thread.join(_JOIN_S)

    def _run(self):
        while not self._cancel.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._cancel.is_set():
                return
            try:
                self._send_to_newcomers()
            except Cancelled:
                self._log("samp: stopped writing the candidate table")
                return
            except ValueError as exc:  # no completed iteration: nothing to broadcast, ever
                self._log(f"samp: nothing broadcast: {exc}")
                return
            except SampError as exc:
                self._log(f"samp: broadcast not sent: {exc}")

    def _send_to_newcomers(self):
        bridge = self._link.bridge
        if not bridge.connected:
            return
        new = [c for c in bridge.subscribers(TABLE_LOAD) if c not in self._sent_to]
        if not new:
            if not self._waiting_said:
                self._log("samp: no client takes tables yet; the candidates go to each one "
                          "that subscribes")
                self._waiting_said = True
            return
        if self._table is None:
            names = ", ".join(bridge.name_of(c) for c in new)
            self._log(f"samp: writing the candidate table for {names}")
            self._table = self._link.publisher.prepare_table("candidates", cancel=self._cancel)
        sent = self._table
        for client in new:
            bridge.call(load_table(sent.url, sent.table_id, sent.name), client)
            self._sent_to.add(client)
        self._log(f"samp: sent {len(sent.ids)} candidates as {sent.table_id} to {len(new)} "
                  f"client{'s' * (len(new) != 1)}")


class Runner:
    """The headless owner of a session's SAMP link.

    Parameters
    ----------
    workspace : Workspace
    broadcast : bool
        Send the candidate table to every client that takes tables.
    arm : str, optional
        Label given to every spectrum of an incoming row selection.
    own_hub : bool
    log : callable
        ``log(line)`` for every message, reply, response and status change.
    id_column, label_column : str
        Columns of tables sent to vo-al.
    check_interval : float
        Seconds between the bridge's registration checks.
    trust : iterable of str
        ``samp.name`` of clients trusted with labels and local files besides
        the desktop tools (:mod:`vo_al.samp.trust`).

    Attributes
    ----------
    inbox : QueueInbox
    link : SampLink
    """

    def __init__(self, workspace: Workspace, *, broadcast: bool = False, arm: str | None = None,
                 own_hub: bool = False, log: Callable[[str], None] = print,
                 id_column: str = "id", label_column: str = "label",
                 check_interval: float = 1.0, trust=()):
        self.inbox = QueueInbox()
        self._log = log
        self._broadcast_wanted = broadcast
        self.link = SampLink(workspace, self.inbox.put, own_hub=own_hub, armed=arm,
                             id_column=id_column, label_column=label_column,
                             on_event=self._event, check_interval=check_interval, trust=trust)
        self._unsubscribe = workspace.events.subscribe(SampStatus, self.inbox.put)

    def serve(self, stop: threading.Event):
        """Run until ``stop`` is set, then close the link."""
        broadcast = _Broadcast(self.link, self._log) if self._broadcast_wanted else None
        try:
            if not self.link.start():
                self._log("samp: no SAMP hub yet; waiting for one")
            elif broadcast is not None:
                broadcast.poke()
            while not stop.is_set():
                item = self.inbox.get(timeout=_POLL)
                if item is not None:
                    self._handle(item)
                if broadcast is not None and isinstance(item, SampStatus) and item.connected:
                    broadcast.poke()
        finally:
            if broadcast is not None:
                broadcast.stop()
            self.link.close()
            self._unsubscribe()
            self._log("samp: unregistered; files removed")

    def _handle(self, item):
        if isinstance(item, Call):
            kind = "notification" if item.is_notification else "call"
            self._log(f"samp: ← {item.mtype} {kind} from {item.sender_name}: "
                      f"{_short(item.params)}")
            self._answered(item, self.link.receiver.process(item))
        elif isinstance(item, Step):
            self._answered(item.call, self.link.receiver.process(item))
        elif isinstance(item, Response):
            detail = f": {item.error_text}" if item.error_text else ""
            self._log(f"samp: {item.responder_name} answered {item.mtype} with "
                      f"{item.status}{detail}")
        elif isinstance(item, SampStatus):
            self._log(f"samp: {item.text}")

    def _answered(self, call: Call, response: dict | None):
        if response is None:
            return  # the work goes on; the answer is logged when it comes
        took = (time.monotonic() - call.received) * 1000
        self._log(f"samp: {call.describe_reply(response)} ({took:.0f} ms)")

    def _event(self, kind: str, detail):
        if kind == "labelled":
            self._labelled(detail)
        elif kind == "imported":
            pass  # a table's labels: the answer sums them up, progress tells how far
        elif kind == "progress":
            self._progress(detail)
        elif kind == "undone":
            self._log(f"samp: undid #{detail.undoes} of {detail.spectrum_id}")
        elif kind == "classified":
            self._log(f"samp: classified {detail.spectrum.id} from {detail.spectrum.source}: "
                      f"{_verdict(detail)}")
        elif kind == "current":
            self._log(f"samp: current spectrum {detail}")
        elif kind == "selection":
            self._log(f"samp: selection of {len(detail)} spectra")

    def _labelled(self, entries):
        if len(entries) > _LISTED:
            self._log(f"samp: {len(entries)} spectra labelled (#{entries[0].seq} to "
                      f"#{entries[-1].seq}, {entries[0].source})")
            return
        for entry in entries:
            self._log(f"samp: {entry.spectrum_id} labelled {entry.label or entry.action} "
                      f"(#{entry.seq}, {entry.source})")

    def _progress(self, progress: Progress):
        self._log(f"samp: {progress.call.mtype} from {progress.call.sender_name}: "
                  f"{progress.text}")


@contextmanager
def _stop_on_signals(stop: threading.Event):
    """Set ``stop`` on SIGINT and SIGTERM while inside (main thread only); yields
    the list the signals caught are added to."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handle(signum, frame):
        caught.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(session_dir, broadcast: bool = False, arm: str | None = None, own_hub: bool = False,
        stop: threading.Event | None = None, log: Callable[[str], None] = print, *,
        id_column: str = "id", label_column: str = "label", trust=()) -> int:
    """Run the SAMP bridge on a session until stopped.

    Parameters
    ----------
    session_dir : path-like
        An existing session.
    broadcast : bool
        Send the current candidate table to every client that takes tables,
        now or when it subscribes (``--broadcast``).
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
    trust : iterable of str
        ``samp.name`` of clients trusted with labels and local files besides
        the desktop tools (``--trust NAME``).

    Returns
    -------
    int
        0 after a stop by ``stop``; 128 + the signal's number after SIGINT
        (130) or SIGTERM (143); 2 when the session cannot be opened, the
        label to arm is unknown or a trusted name is empty.
    """
    stop = stop or threading.Event()
    try:
        workspace = Workspace.open(session_dir)
    except SessionError as exc:
        log(f"vo-al samp: {exc}")
        return 2
    with workspace, _stop_on_signals(stop) as caught:
        try:
            runner = Runner(workspace, broadcast=broadcast, arm=arm, own_hub=own_hub, log=log,
                            id_column=id_column, label_column=label_column, trust=trust)
        except ValueError as exc:
            log(f"vo-al samp: {exc}")
            return 2
        runner.serve(stop)
        if caught:
            log(f"samp: stopped by {signal.Signals(caught[0]).name}")
    return 128 + caught[0] if caught else 0
