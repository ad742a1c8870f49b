"""The SAMP panel: the window's door to TOPCAT, SPLAT-VO and other VO tools.

It owns a :class:`vo_al.samp.SampLink` on the window's session. The
bridge's hook is a Qt signal's ``emit``: calls arriving on SAMP threads
cross to the GUI thread as queued signals, where
:meth:`~vo_al.samp.receiver.Receiver.process` checks them and acts on the
session at once, or hands the slow part (a download, reading a table,
classifying a spectrum) to a worker thread whose result comes back the
same way as a :class:`~vo_al.samp.inbox.Step`; then it replies. What the
receiver did (labels, a highlighted row) updates the queue and the viewer
at once. The GUI thread never waits on a peer: connecting, disconnecting,
asking the hub for its clients and sending (tables, spectra) run in jobs.

A call that only a trusted client may make (labels, local files:
:mod:`vo_al.samp.trust`) from a client the user has not trusted waits
while the panel asks the user; it is then acted on or refused.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from PyQt5 import QtCore, QtWidgets

from vo_al.events import SampStatus
from vo_al.samp import Call, Response, SampError, SampLink, Step

from .workers import Job

__all__ = ["SampPanel", "ALL_CLIENTS"]

_log = logging.getLogger(__name__)
#: links being closed, kept alive until their thread ends
_UNREGISTERING: set = set()

#: Target of a send: every subscribed client.
ALL_CLIENTS = ""

_LOG_LINES = 2000


class SampPanel(QtWidgets.QWidget):
    """Hub state, clients, send buttons, the armed label and a message log.

    Parameters
    ----------
    window : MainWindow
        Its session is shared; its queue and viewer follow what peers do.
    parent : QWidget, optional

    Attributes
    ----------
    link : SampLink or None
        While connected (or looking for a hub).
    hub_label : QLabel
        The short state shown in the window's toolbar.
    """

    #: a bridge item (Call, Step or Response), emitted on SAMP threads
    sigItem = QtCore.pyqtSignal(object)
    #: a call was processed (its response), after the window was updated
    sigProcessed = QtCore.pyqtSignal(object)

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.window = window
        self.link: SampLink | None = None
        self._clients: dict[str, str] = {}
        self._asking: dict[str, tuple] = {}  # sender name -> (question box, waiting calls)
        self.sigItem.connect(self._handle)
        window.events.sigEvent.connect(self._session_event)
        self.hub_label = QtWidgets.QLabel("SAMP: off ")
        self._build()

    def _build(self):
        config = self.window.workspace.config
        self.state = QtWidgets.QLabel("Not connected to a SAMP hub.")
        self.state.setTextFormat(QtCore.Qt.PlainText)  # messages quote peers' text verbatim
        self.state.setWordWrap(True)
        self.connect_button = QtWidgets.QPushButton("Connect")
        self.connect_button.setCheckable(True)
        self.connect_button.toggled.connect(self._connect_toggled)
        self.own_hub = QtWidgets.QCheckBox("start a hub if none runs")
        self.own_hub.setChecked(self.window.preferences.samp_own_hub)
        self.clients = QtWidgets.QListWidget()
        self.clients.setMaximumWidth(260)
        self.target = QtWidgets.QComboBox()
        self.target.addItem("all clients", ALL_CLIENTS)
        self.send_candidates = QtWidgets.QPushButton("Send candidates")
        self.send_candidates.setToolTip("The candidate table (table.load.votable), with "
                                        "probabilities and labels")
        self.send_candidates.clicked.connect(lambda: self.send_table("candidates"))
        self.send_batch = QtWidgets.QPushButton("Send batch")
        self.send_batch.setToolTip("The query batch of the latest iteration as a table")
        self.send_batch.clicked.connect(lambda: self.send_table("query"))
        self.send_spectrum = QtWidgets.QPushButton("Send spectrum")
        self.send_spectrum.setToolTip("Highlight the current spectrum's row in the tables "
                                      "sent, and send its full spectrum (SPLAT-VO)")
        self.send_spectrum.clicked.connect(self.send_current)
        self.arm = QtWidgets.QCheckBox("Label incoming selections as")
        self.arm.setToolTip("Every spectrum of a row subset a peer broadcasts gets this "
                            "label, recorded with the peer as its source")
        self.arm_class = QtWidgets.QComboBox()
        self.arm_class.addItems([*config.class_names, config.skip_name])
        if len(config.class_names) > 1:
            self.arm_class.setCurrentIndex(1)
        self.arm.toggled.connect(self._arm_changed)
        self.arm_class.currentIndexChanged.connect(self._arm_changed)
        self.log = QtWidgets.QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(_LOG_LINES)
        self.log.setPlaceholderText("incoming and outgoing SAMP messages")
        for widget in (self.connect_button, self.own_hub, self.target, self.send_candidates,
                       self.send_batch, self.send_spectrum, self.arm, self.arm_class,
                       self.clients, self.log):
            widget.setFocusPolicy(QtCore.Qt.NoFocus)  # keys stay with labelling

        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.connect_button)
        top.addWidget(self.own_hub)
        top.addWidget(self.state, 1)
        send = QtWidgets.QHBoxLayout()
        send.addWidget(QtWidgets.QLabel("to"))
        send.addWidget(self.target)
        for widget in (self.send_candidates, self.send_batch, self.send_spectrum):
            send.addWidget(widget)
        send.addSpacing(16)
        send.addWidget(self.arm)
        send.addWidget(self.arm_class)
        send.addStretch(1)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(QtWidgets.QLabel("Clients"))
        left.addWidget(self.clients)
        right = QtWidgets.QVBoxLayout()
        right.addLayout(top)
        right.addLayout(send)
        right.addWidget(self.log, 1)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(left)
        layout.addLayout(right, 1)
        self._update_buttons()

    # ------------------------------------------------------------------ connection

    def start(self):
        """Connect (or keep looking for a hub in the background)."""
        self.connect_button.setChecked(True)

    def shutdown(self, then: Callable[[], None]) -> bool:
        """Unregister from the hub and remove the files handed to peers in a
        worker, then call ``then`` on the GUI thread (the window is closing:
        the session must outlive the link).

        Returns
        -------
        bool
            True when a link is being closed (``then`` comes later); False
            when there was none (``then`` is not called).
        """
        link, self.link = self.link, None
        self._forget_link()
        if link is None:
            return False
        # no parent: the job outlives a window deleted while it runs
        job = Job("Unregistering from the SAMP hub", lambda progress, cancel: link.close())
        _UNREGISTERING.add(job)
        job.sigFailed.connect(lambda message, details: _log.error(
            "unregistering from the SAMP hub failed: %s\n%s", message, details))
        job.finished.connect(then)
        job.finished.connect(lambda: (job.wait(), _UNREGISTERING.discard(job)))  # ends at once
        job.start()
        return True

    def _forget_link(self):
        asking, self._asking = list(self._asking.values()), {}
        for box, _ in asking:
            box.close()
        self._clients = {}
        self._show_clients()

    def _connect_toggled(self, on: bool):
        self.connect_button.setText("Disconnect" if on else "Connect")
        if not on:
            link, self.link = self.link, None
            self._forget_link()
            if link is not None:
                self.window.start_job("samp-disconnect", "Disconnecting from the SAMP hub",
                                      lambda progress, cancel: link.close(),
                                      lambda result: self.write("disconnected"))
            self._set_state(False, "Disconnected.")
            return
        own_hub = self.own_hub.isChecked()
        self.window.preferences.samp_own_hub = own_hub
        try:
            link = SampLink(self.window.workspace, self.sigItem.emit, own_hub=own_hub,
                            armed=self._armed(), on_event=self._event)
        except (SampError, OSError, ValueError) as exc:
            self.connect_button.setChecked(False)
            self._set_state(False, f"Cannot start SAMP: {exc}")
            return
        self.link = link
        self._set_state(False, "Looking for a SAMP hub...")
        self.window.start_job("samp-connect", "Connecting to the SAMP hub",
                              lambda progress, cancel: link.start(),
                              lambda connected: self._started(link, connected))

    def _started(self, link: SampLink, connected: bool):
        if link is self.link and not connected:
            self._set_state(False, "No SAMP hub yet: start TOPCAT (or tick 'start a hub') "
                                   "and vo-al registers as soon as one runs.")

    def _set_state(self, connected: bool, text: str | None = None):
        if text is not None:
            self.state.setText(text)
        if self.link is None:
            self.hub_label.setText("SAMP: off ")
        elif connected:
            others = len(self._clients)
            self.hub_label.setText(f"SAMP: hub ok, {others} client{'s' * (others != 1)} ")
        else:
            self.hub_label.setText("SAMP: no hub ")
        self._update_buttons()

    def _update_buttons(self):
        connected = self.link is not None and self.link.bridge.connected
        for button in (self.send_candidates, self.send_batch, self.send_spectrum):
            button.setEnabled(connected)

    def _refresh_clients(self):
        link = self.link
        if link is None or not link.bridge.connected:
            return
        self.window.start_job("samp-clients", "Asking the hub for its clients",
                              lambda progress, cancel: link.bridge.clients(),
                              self._clients_known)

    def _clients_known(self, clients: dict):
        own = self.link.bridge.public_id if self.link is not None else None
        self._clients = {i: n for i, n in clients.items() if i != own and i != "hub"}
        self._show_clients()
        self._set_state(True)

    def _show_clients(self):
        chosen = self.target.currentData()
        self.clients.clear()
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItem("all clients", ALL_CLIENTS)
        for client_id, name in sorted(self._clients.items(), key=lambda item: item[1]):
            self.clients.addItem(f"{name} ({client_id})")
            self.target.addItem(name, client_id)
        self.target.setCurrentIndex(max(0, self.target.findData(chosen)))
        self.target.blockSignals(False)

    # ------------------------------------------------------------------ incoming

    def write(self, line: str):
        """Add a line to the message log."""
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {line}")

    def _session_event(self, event):
        """The link's state, published on the workspace's events, on the GUI thread."""
        if isinstance(event, SampStatus):
            self.write(event.text)
            self._set_state(event.connected, event.text)
            self._refresh_clients()

    def _handle(self, item):
        """Act on one bridge item, on the GUI thread."""
        if isinstance(item, Response):
            detail = f": {item.error_text}" if item.error_text else ""
            self.write(f"{item.responder_name} answered {item.mtype}: {item.status}{detail}")
        elif isinstance(item, Call) and self.link is not None:
            self.write(f"← {item.mtype} from {item.sender_name}")
            asks = self.link.receiver.needs_trust(item)
            if asks:
                self._ask_trust(item, asks)
            else:
                self._process(item)
        elif isinstance(item, Step) and self.link is not None:
            self._process(item)

    def _process(self, item):
        response = self.link.receiver.process(item)
        if response is None:
            return  # a worker goes on; its result comes back as a Step
        call = item.call if isinstance(item, Step) else item
        self.write(call.describe_reply(response))
        self.sigProcessed.emit(response)

    def _ask_trust(self, call: Call, asks: str):
        """Hold the call and ask the user whether to trust its sender (one question per sender)."""
        name = call.sender_name
        if name in self._asking:
            self._asking[name][1].append(call)
            return
        box = QtWidgets.QMessageBox(
            QtWidgets.QMessageBox.Question, "Trust a SAMP client?",
            f"The SAMP client '{name}' wants to {asks}.\n\nvo-al takes labels and reads "
            "local files only for clients you trust. A web page can register with a SAMP "
            "hub too: trust it only if you started it yourself.", parent=self)
        box.setTextFormat(QtCore.Qt.PlainText)
        trust = box.addButton(f"Trust {name}", QtWidgets.QMessageBox.AcceptRole)
        box.addButton("Refuse", QtWidgets.QMessageBox.RejectRole)
        box.setWindowModality(QtCore.Qt.NonModal)  # labelling and SAMP go on meanwhile
        box.finished.connect(lambda _: self.answer_trust(name, box.clickedButton() is trust))
        self._asking[name] = (box, [call])
        box.show()

    def answer_trust(self, name: str, trusted: bool):
        """The user's answer for a client: its waiting calls are acted on, or refused."""
        box, calls = self._asking.pop(name, (None, []))
        if box is not None:
            box.close()
        if self.link is None:
            return
        if trusted:
            self.link.receiver.trust.add(name)
            self.write(f"{name} is trusted with labels and local files until vo-al closes")
        for call in calls:
            self._process(call)

    def _event(self, kind: str, detail):
        """What the receiver did, reflected in the window. Labels, imports and
        undos reach the queue as the workspace's events, not from here."""
        if kind == "labelled":
            self.write(f"{len(detail)} label{'s' * (len(detail) != 1)} from "
                       f"{detail[0].source if detail else 'a peer'}")
        elif kind == "progress":
            self.write(f"{detail.call.mtype} from {detail.call.sender_name}: {detail.text}")
        elif kind == "current":
            self.window.go_to(detail)
        elif kind == "selection":
            self.write(f"selection of {len(detail)} spectra")
        elif kind == "classified":
            verdict = detail.problem or f"{detail.predicted} (model of iteration " \
                                        f"{detail.iteration})"
            self.write(f"classified {detail.spectrum.id}: {verdict}")

    def _armed(self) -> str | None:
        return self.arm_class.currentText() if self.arm.isChecked() else None

    def _arm_changed(self):
        if self.link is not None:
            self.link.receiver.armed = self._armed()
        armed = self._armed()
        self.write(f"incoming selections will be labelled {armed}" if armed
                   else "incoming selections are not labelled")

    # ------------------------------------------------------------------ outgoing

    def _recipient(self) -> str | None:
        return self.target.currentData() or None

    def send_table(self, kind: str):
        """Send the candidate list (``'candidates'``) or the batch (``'query'``)."""
        link, recipient = self.link, self._recipient()
        if link is None:
            return

        def task(progress, cancel):
            sent, pending = link.publisher.send_table(kind, recipient, cancel=cancel)
            return f"sent {len(sent.ids):,} rows as {sent.name} to " \
                   f"{len(pending.recipients)} client(s)"

        self.window.start_job(f"samp-{kind}", "Sending a table", task, self.write)

    def send_current(self):
        """Highlight the current spectrum in the tables sent and send its spectrum."""
        link, recipient = self.link, self._recipient()
        spectrum_id = self.window.current_id()
        if link is None or not spectrum_id:
            return

        def task(progress, cancel):
            said = []
            try:
                tables = link.publisher.highlight(spectrum_id, recipient)
                said.append(f"highlighted in {len(tables)} table(s)")
            except SampError as exc:
                said.append(f"not highlighted: {exc}")
            pending = link.publisher.send_spectrum(spectrum_id, "full", "fits", recipient)
            said.append(f"spectrum sent to {len(pending.recipients)} client(s)")
            return f"{spectrum_id}: " + "; ".join(said)

        self.window.start_job("samp-spectrum", "Sending a spectrum", task, self.write)
