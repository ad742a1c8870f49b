"""The window's SAMP panel through the real bridge on a real JSAMP hub:
incoming labels, a highlighted row and an armed selection show up in the
queue and the viewer at once, and every call gets its answer; a client the
user has not trusted waits for the user's answer; and the window's event
loop keeps turning while a peer serves a table slowly."""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time

import pytest

from conftest import require_qt  # noqa: E402

require_qt()
from PyQt5 import QtCore  # noqa: E402

from vo_al.events import SampStatus  # noqa: E402
from vo_al.gui.main_window import MainWindow  # noqa: E402
from vo_al.gui.settings import Preferences  # noqa: E402
from test_samp_support import (Sender, build_session, peer_environment, require,  # noqa: E402
                               serving)
from vo_al.samp.messages import (LABEL_SET, TABLE_HIGHLIGHT, TABLE_LOAD,  # noqa: E402
                                 TABLE_SELECT)
from peers import start_jsamp_hub  # noqa: E402
from vo_al.workspace import Workspace  # noqa: E402

pytestmark = [pytest.mark.jsamp]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require("jsamp")
    with peer_environment(tmp_path_factory.mktemp("gui-jsamp")) as peers:
        process = start_jsamp_hub(peers)
        try:
            yield process
        finally:
            process.stop()


@pytest.fixture
def window(qtbot, hub, real_data, manifest, tmp_path):
    path = build_session(real_data, manifest, tmp_path / "samp")
    preferences = Preferences(QtCore.QSettings(str(tmp_path / "settings.ini"),
                                               QtCore.QSettings.IniFormat))
    preferences.show_original = False
    window = MainWindow(Workspace.open(path), preferences)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.busy() and window.model.rowCount() > 0, timeout=20000)
    link = window.samp.link
    qtbot.waitUntil(lambda: link.bridge.connected, timeout=30000)
    qtbot.waitUntil(lambda: window.samp.hub_label.text().startswith("SAMP: hub ok"),
                    timeout=10000)
    return window


def start_call(sender, recipient, mtype, params):
    """``callAndWait`` from a thread; returns the thread and the dict its response goes to."""
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(response=sender.call(recipient, mtype, params)[0]))
    thread.start()
    return thread, result


def call_in_thread(qtbot, sender, recipient, mtype, params):
    """``callAndWait`` from a thread while the GUI thread serves the call."""
    thread, result = start_call(sender, recipient, mtype, params)
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=30000)
    return result["response"]


def test_incoming_labels_highlight_and_selection(qtbot, window):
    sender = Sender("tester")
    try:
        vo_al = sender.id_of("vo-al")
        qtbot.waitUntil(lambda: "tester" in window.samp._clients.values(), timeout=10000)
        window.samp.link.receiver.trust.add("tester")
        queue = window.model.queue
        target = queue.ids[3]

        response = call_in_thread(qtbot, sender, vo_al, LABEL_SET,
                                  {"spectrum-id": target, "label": "double-peak"})
        assert response["samp.status"] == "samp.ok"
        assert queue.answer[3] == "double-peak" and queue.answer_source[3] == "samp:tester"
        assert window.queue_panel.left.text() == "batch: 7 of 8 left"

        table = window.samp.link.publisher.prepare_table("query")
        row = list(table.ids).index(queue.ids[2])
        response = call_in_thread(qtbot, sender, vo_al, TABLE_HIGHLIGHT,
                                  {"table-id": table.table_id, "url": table.url,
                                   "row": str(row)})
        assert response["samp.status"] == "samp.ok"
        assert window.current_id() == queue.ids[2]  # TOPCAT moved the viewer
        assert window.viewer.record.spectrum_id == queue.ids[2]

        window.samp.arm.setChecked(True)  # label incoming selections as emission
        rows = [str(list(table.ids).index(i)) for i in queue.ids[:2]]
        response = call_in_thread(qtbot, sender, vo_al, TABLE_SELECT,
                                  {"table-id": table.table_id, "url": table.url,
                                   "row-list": rows})
        assert response["samp.status"] == "samp.ok"
        assert list(queue.answer[:2]) == ["emission", "emission"]
        sources = {e.source for e in window.workspace.entries()}
        assert sources == {"samp:tester"}
        assert "from samp:tester" in window.samp.log.toPlainText()
    finally:
        sender.close()
    window.samp.connect_button.setChecked(False)
    assert window.samp.link is None and window.samp.hub_label.text().startswith("SAMP: off")


def test_panel_messages_show_peer_text_verbatim(window):
    message = "Cannot start SAMP: hub said 'no' <because> & so"
    window.samp._set_state(False, message)
    assert window.samp.state.text() == message  # neither &#x27; nor swallowed <tags>
    assert window.samp.state.textFormat() == QtCore.Qt.PlainText


def test_an_untrusted_clients_labels_wait_for_the_users_answer(qtbot, window):
    sender = Sender("webtool")
    try:
        vo_al = sender.id_of("vo-al")
        target = window.model.queue.ids[1]
        params = {"spectrum-id": target, "label": "emission"}
        thread, result = start_call(sender, vo_al, LABEL_SET, params)
        qtbot.waitUntil(lambda: "webtool" in window.samp._asking, timeout=30000)
        box = window.samp._asking["webtool"][0]
        assert box.isVisible() and "'webtool' wants to change labels" in box.text()
        assert thread.is_alive()  # the call waits for the user
        window.samp.answer_trust("webtool", False)
        qtbot.waitUntil(lambda: not thread.is_alive(), timeout=30000)
        assert "'webtool' is not one" in result["response"]["samp.error"]["samp.errortxt"]
        assert window.workspace.entries() == []

        thread, result = start_call(sender, vo_al, LABEL_SET, params)
        qtbot.waitUntil(lambda: "webtool" in window.samp._asking, timeout=30000)
        window.samp.answer_trust("webtool", True)
        qtbot.waitUntil(lambda: not thread.is_alive(), timeout=30000)
        assert result["response"]["samp.status"] == "samp.ok"
        assert [(e.spectrum_id, e.source) for e in window.workspace.entries()] == [
            (target, "samp:webtool")]
    finally:
        sender.close()


class Held(http.server.BaseHTTPRequestHandler):
    """Serves a label table only once the test lets it go: the peer is slow."""

    requested = threading.Event()
    release = threading.Event()
    body = b""

    def do_GET(self):  # noqa: N802 (http.server API)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body[:10])
        self.wfile.flush()
        type(self).requested.set()
        self.release.wait(120)
        self.wfile.write(self.body[10:])

    def log_message(self, *args):
        pass


def test_the_window_keeps_turning_while_a_peer_serves_a_table_slowly(qtbot, window, tmp_path):
    sender = Sender("stilts")
    turns, gaps = [], []
    timer = QtCore.QTimer(interval=10)
    timer.timeout.connect(lambda: turns.append(time.monotonic()))
    queue = window.model.queue
    Held.body = (
        '<?xml version="1.0"?><VOTABLE><RESOURCE><TABLE>'
        '<FIELD name="id" datatype="char" arraysize="*"/>'
        '<FIELD name="label" datatype="char" arraysize="*"/><DATA><TABLEDATA>'
        f"<TR><TD>{queue.ids[4]}</TD><TD>other</TD></TR>"
        "</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>").encode()
    try:
        vo_al = sender.id_of("vo-al")
        table = window.samp.link.publisher.prepare_table("query")
        with serving(Held) as url:
            timer.start()
            slow, slow_result = start_call(sender, vo_al, TABLE_LOAD, {"url": f"{url}/t.vot"})
            qtbot.waitUntil(Held.requested.is_set, timeout=30000)
            held_at = len(turns)
            row = str(list(table.ids).index(queue.ids[2]))
            other = Sender("tester")
            try:
                quick = call_in_thread(qtbot, other, vo_al, TABLE_HIGHLIGHT,
                                       {"table-id": table.table_id, "row": row})
            finally:
                other.close()
            qtbot.waitUntil(lambda: len(turns) >= held_at + 20, timeout=30000)
            assert slow.is_alive() and quick["samp.status"] == "samp.ok"
            assert window.current_id() == queue.ids[2]  # acted on while the table was held
            gaps = [b - a for a, b in zip(turns[held_at:], turns[held_at + 1:])]
            Held.release.set()
            qtbot.waitUntil(lambda: not slow.is_alive(), timeout=30000)
        timer.stop()
        assert slow_result["response"]["samp.status"] == "samp.ok"
        assert queue.answer[4] == "other"
        print(f"\nlongest gap between event-loop turns while the table was held: "
              f"{max(gaps) * 1000:.0f} ms over {len(gaps)} turns")
    finally:
        sender.close()


def test_closing_the_window_never_waits_on_a_stalled_hub(qtbot, hub, window):
    """The hub is frozen (SIGSTOP): unregistering hangs until it answers, in a
    worker; the window hides at once and its event loop keeps turning, and
    the session closes once the link is gone, which the workspace announces."""
    said = []
    window.workspace.events.subscribe(SampStatus, said.append)
    turns = []
    timer = QtCore.QTimer(interval=10)
    timer.timeout.connect(lambda: turns.append(time.monotonic()))
    os.killpg(hub.process.pid, signal.SIGSTOP)
    try:
        timer.start()
        window.close()
        assert not window.isVisible() and not window.released
        qtbot.waitUntil(lambda: len(turns) >= 5, timeout=30000)
        assert not window.released  # still unregistering from the frozen hub
    finally:
        os.killpg(hub.process.pid, signal.SIGCONT)
    qtbot.waitUntil(lambda: window.released, timeout=60000)
    timer.stop()
    assert said[-1] == SampStatus(False, "unregistered from the SAMP hub")
