"""The window's SAMP panel through the real bridge on a real JSAMP hub:
incoming labels, a highlighted row and an armed selection show up in the
queue and the viewer at once, and every call gets its answer."""

from __future__ import annotations

import threading

import pytest

from conftest import require_qt  # noqa: E402

require_qt()
from PyQt5 import QtCore  # noqa: E402

from gui.main_window import MainWindow  # noqa: E402
from gui.settings import Preferences  # noqa: E402
from test_samp_support import Sender, build_session, peer_environment, require  # noqa: E402
from vo_al.samp.messages import LABEL_SET, TABLE_HIGHLIGHT, TABLE_SELECT  # noqa: E402
from vo_al.samp.peers import start_jsamp_hub  # noqa: E402
from vo_al.session import Session  # noqa: E402

pytestmark = [pytest.mark.jsamp]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require("jsamp")
    with peer_environment(tmp_path_factory.mktemp("gui-jsamp")) as peers:
        process = start_jsamp_hub(peers)
        try:
            yield peers
        finally:
            process.stop()


@pytest.fixture
def window(qtbot, hub, real_data, manifest, tmp_path):
    path = build_session(real_data, manifest, tmp_path / "samp")
    preferences = Preferences(QtCore.QSettings(str(tmp_path / "settings.ini"),
                                               QtCore.QSettings.IniFormat))
    preferences.show_original = False
    window = MainWindow(Session.open(path), preferences)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.busy() and window.model.rowCount() > 0, timeout=20000)
    link = window.samp.link
    qtbot.waitUntil(lambda: link.bridge.connected, timeout=30000)
    qtbot.waitUntil(lambda: window.samp.hub_label.text().startswith("SAMP: hub ok"),
                    timeout=10000)
    return window


def call_in_thread(qtbot, sender, recipient, mtype, params):
    """``callAndWait`` from a thread while the GUI thread serves the call."""
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(response=sender.call(recipient, mtype, params)[0]))
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=30000)
    return result["response"]


def test_incoming_labels_highlight_and_selection(qtbot, window):
    sender = Sender("tester")
    try:
        vo_al = sender.id_of("vo-al")
        qtbot.waitUntil(lambda: "tester" in window.samp._clients.values(), timeout=10000)
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
        sources = {e.source for e in window.session.log.entries()}
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
