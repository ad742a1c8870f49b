"""The desktop app's side of the cross-match and of Dask, on the planted
synthetic survey (tests/vo_support.py) matched with local catalogue files
(no VO server): what the spectrum on screen is known as, the "new objects
only" filter, the discovery report as a table, a cross-match cancelled
while it waits on a slow TAP service (an in-process HTTP server that holds
its answer) as the window keeps turning, and the Dask choice of the
iterate options, down to an iteration scored on a real scheduler."""

from __future__ import annotations

import http.server
import multiprocessing
import shutil
import threading
import time

import dask
import pytest

from conftest import require_qt  # noqa: E402

require_qt()
from PyQt5 import QtCore, QtWidgets  # noqa: E402

from test_crossmatch import write_catalogues  # noqa: E402
from test_samp_support import serving  # noqa: E402
from vo_al.catalogues import file_catalogue, tap_catalogue  # noqa: E402
from vo_al.distributed import connect  # noqa: E402
from vo_al.gui.dialogs import CrossmatchDialog, IterateOptionsDialog, ReportDialog  # noqa: E402
from vo_al.gui.main_window import MainWindow  # noqa: E402
from vo_al.gui.settings import IterateSettings, Preferences  # noqa: E402
from vo_al.workspace import Workspace  # noqa: E402

FAST = IterateSettings(query_size=5, estimate_size=3, max_epochs=1, precision="fp32")


@pytest.fixture
def session_dir(vo_survey, tmp_path):
    shutil.copytree(vo_survey.directory, tmp_path / "session")
    return tmp_path / "session"


@pytest.fixture
def catalogues(vo_survey, tmp_path):
    simbad, hou = write_catalogues(vo_survey, tmp_path)
    return [file_catalogue(simbad, "simbad"), file_catalogue(hou, "hou2016")]


@pytest.fixture
def preferences(tmp_path):
    prefs = Preferences(QtCore.QSettings(str(tmp_path / "settings.ini"),
                                         QtCore.QSettings.IniFormat))
    prefs.show_original = False
    prefs.samp_connect = False
    prefs.set_iterate(FAST)
    return prefs


@pytest.fixture
def window(qtbot, session_dir, preferences):
    window = MainWindow(Workspace.open(session_dir), preferences)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.busy() and window.model.rowCount() > 0, timeout=20000)
    return window


def crossmatch(qtbot, window, catalogues=None, refresh=False):
    """Run a cross-match from the window and wait until it and the matches it
    changed are shown."""
    window.start_crossmatch(catalogues, refresh)
    qtbot.waitUntil(lambda: "cross-match done" in window.message.text() and not window.busy(),
                    timeout=30000)


def show_list_of(qtbot, window, ids):
    window.search(",".join(ids))
    qtbot.waitUntil(lambda: not window.busy() and window.model.queue.title.startswith("search")
                    and len(window.model.queue) == len(ids), timeout=20000)


def stored(directory) -> dict:
    return {p.name: p.read_bytes() for p in sorted((directory / "crossmatch").glob("*"))}


# ---------------------------------------------------------------- the dialog


def test_the_dialog_builds_the_catalogue_a_cli_flag_would(qtbot, tmp_path, catalogues):
    dialog = CrossmatchDialog([])
    qtbot.addWidget(dialog)
    assert [dialog.source.itemData(i) for i in range(dialog.source.count())] == [
        "simbad", "tap", "file"]
    assert dialog.radius.value() == 3.0
    dialog.source.setCurrentIndex(dialog.source.findData("tap"))
    dialog.accept()
    assert dialog.result() != QtWidgets.QDialog.Accepted
    assert "URL" in dialog.error.text()  # said in the dialog, one line
    dialog.source.setCurrentIndex(dialog.source.findData("file"))
    dialog.file.edit.setText(catalogues[0].source)
    dialog.name.setText("Bad Name")
    dialog.accept()
    assert "lower-case" in dialog.error.text()
    dialog.name.setText("simbad")
    dialog.radius.setValue(2.5)
    dialog.refresh_box.setChecked(True)
    dialog.accept()
    assert dialog.result() == QtWidgets.QDialog.Accepted and dialog.refresh
    assert dialog.catalogues == [file_catalogue(catalogues[0].source, "simbad", 2.5)]

    again = CrossmatchDialog(catalogues)
    qtbot.addWidget(again)
    assert again.source.currentData() == "again" and "simbad (3″)" in again.source.currentText()
    again.accept()
    assert again.catalogues is None and not again.refresh  # the remembered ones, no flags


# ---------------------------------------------------------------- the window


def test_known_as_new_only_filter_and_report(qtbot, window, vo_survey, catalogues):
    e = vo_survey.labelled
    show_list_of(qtbot, window, e)
    assert window.viewer.known.text() == ""  # nothing matched yet: nothing said
    assert not window.queue_panel.new_only.isEnabled()
    crossmatch(qtbot, window, catalogues)
    assert "simbad:" in window.message.text() and "hou2016:" in window.message.text()
    assert window.queue_panel.new_only.isEnabled()

    lines = {}
    for row in range(window.model.rowCount()):  # moving through the queue updates the line
        window.queue_panel.select_view_row(row)
        lines[window.current_id()] = window.viewer.known.text()
    assert "simbad: S e0, Be*, 0.5″" in lines[e[0]]
    assert lines[e[4]].index("hou2016: H e4, CEL, 0.8″") < lines[e[4]].index("simbad: S e4")
    assert "another spectrum of its object is known" in lines[e[2]]  # e3's star
    assert "new" in lines[e[5]] and "hou2016, simbad" in lines[e[5]]

    window.queue_panel.new_only.setChecked(True)
    assert list(window.model.queue.ids[window.model.order]) == [e[5]]  # known objects hidden
    assert window.current_id() == e[5] and "5 known hidden" in window.queue_dock.windowTitle()
    window.go_to(e[0])  # asked for by name: shown, filter off
    assert window.current_id() == e[0] and not window.queue_panel.new_only.isChecked()
    assert window.model.rowCount() == len(e)

    window.show_report()
    dialog = window.report_dialog
    qtbot.waitUntil(lambda: dialog.table.rowCount() > 0 and not window.busy(), timeout=20000)
    report = window.workspace.report()
    assert f"Iteration {report['iteration']}" in dialog.statement.text()
    assert report["counted"] in dialog.statement.text()
    assert table_counts(dialog) == report_counts(report)


def table_counts(dialog: ReportDialog) -> dict:
    table = dialog.table
    cells = [[table.item(r, c).text() for c in range(table.columnCount())]
             for r in range(table.rowCount())]
    return {(row[0], row[1]): (row[2], row[3]) for row in cells}


def report_counts(report: dict) -> dict:
    counts = {}
    for name, entry in report["classes"].items():
        spectra, objects = entry["spectra"], entry["objects"]
        for what in ("total", "new", "several"):
            counts[(name, what if what != "several" else "in several")] = (
                str(spectra[what]), str(objects[what]))
        for catalogue in spectra["known"]:
            counts[(name, f"in {catalogue}")] = (str(spectra["known"][catalogue]),
                                                 str(objects["known"][catalogue]))
        counts[(name, "not matched yet")] = (str(entry["not_matched"]), "")
    return counts


class SlowTap(http.server.BaseHTTPRequestHandler):
    """A TAP service that answers only once the test lets it, and then with
    HTTP 503 (a transient failure, tried again unless cancelled)."""

    requested = threading.Event()
    release = threading.Event()

    def _held(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).requested.set()
        type(self).release.wait(30)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _held

    def log_message(self, *args):
        pass


def test_a_cancelled_crossmatch_keeps_the_stored_matches_and_the_window_turns(
        qtbot, window, session_dir, catalogues):
    crossmatch(qtbot, window, catalogues[:1])
    before = stored(session_dir)
    assert list(before) == ["simbad.ecsv"]
    turns = []
    timer = QtCore.QTimer(interval=10)
    timer.timeout.connect(lambda: turns.append(time.monotonic()))
    with serving(SlowTap) as url:
        timer.start()
        try:
            window.start_crossmatch([tap_catalogue(f"{url}/tap", "basic", "slow")])
            qtbot.waitUntil(SlowTap.requested.is_set, timeout=20000)  # the job waits on it
            held_at = len(turns)
            qtbot.waitUntil(lambda: len(turns) >= held_at + 20, timeout=20000)
            assert window.crossmatch_progress.isVisible()
            assert not window.crossmatch_action.isEnabled()
            row = window.queue_panel.current_view_row()
            window.move(1)  # the window answers while the job waits
            assert window.queue_panel.current_view_row() == row + 1
            window.crossmatch_progress.cancel.click()
        finally:
            SlowTap.release.set()
            timer.stop()
        qtbot.waitUntil(lambda: "cancelled" in window.message.text(), timeout=20000)
    qtbot.waitUntil(lambda: not window.busy(), timeout=20000)
    assert stored(session_dir) == before  # nothing of the cancelled run
    assert window.crossmatch_action.isEnabled() and not window.crossmatch_progress.isVisible()
    gaps = [b - a for a, b in zip(turns[held_at:], turns[held_at + 1:])]
    print(f"\nlongest gap between event-loop turns while the cross-match waited: "
          f"{max(gaps) * 1000:.0f} ms")


def test_a_failed_crossmatch_is_one_line(qtbot, window, tmp_path):
    window.start_crossmatch([file_catalogue(tmp_path / "missing.csv", "missing")])
    qtbot.waitUntil(lambda: "Cross-match failed" in window.message.text(), timeout=20000)
    assert "missing.csv" in window.message.text() and "\n" not in window.message.text()
    assert window.crossmatch_action.isEnabled() and not window.crossmatch_progress.isVisible()


# ---------------------------------------------------------------- Dask


def test_the_dask_choice_round_trips_through_the_settings(qtbot, preferences, tmp_path):
    cases = [("", None, None), ("local", "local:3", None),
             ("address", "tcp://scheduler:8786", None),
             ("file", None, str(tmp_path / "scheduler.json"))]
    for kind, address, scheduler_file in cases:
        dialog = IterateOptionsDialog(preferences.iterate())
        qtbot.addWidget(dialog)
        dialog.dask.setCurrentIndex(dialog.dask.findData(kind))
        dialog.dask_workers.setValue(3)
        dialog.dask_address.setText("tcp://scheduler:8786")
        dialog.dask_file.edit.setText(str(tmp_path / "scheduler.json"))
        preferences.set_iterate(dialog.options())
        assert preferences.iterate().cluster() == (address, scheduler_file), kind
        again = IterateOptionsDialog(preferences.iterate())
        qtbot.addWidget(again)
        assert again.dask.currentData() == kind
        assert again.dask_workers.isEnabled() == (kind == "local")
        assert again.options() == preferences.iterate()


def test_the_window_iterates_on_the_dask_scheduler_chosen(qtbot, window, preferences):
    with connect("local:1") as client:
        preferences.set_iterate(IterateSettings(**{**vars(FAST),
                                                   "dask": client.scheduler.address}))
        with qtbot.waitSignal(window.sigIterationDone, timeout=180000):
            window.iterate()
        prefixes = client.run_on_scheduler(lambda dask_scheduler: list(
            dask_scheduler.task_prefixes))
    assert prefixes == ["score_task"]  # the pool was scored on the cluster, and only that
    assert window.workspace.iteration == 2


def test_an_unreachable_scheduler_is_one_line(qtbot, window, preferences):
    preferences.set_iterate(IterateSettings(**{**vars(FAST), "dask": "tcp://127.0.0.1:9"}))
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        window.iterate()
        qtbot.waitUntil(lambda: "Iteration failed" in window.message.text(), timeout=60000)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in window.message.text()
    assert window.iterate_action.isEnabled() and window.workspace.iteration == 1


def test_the_window_iterates_on_a_local_cluster_started_and_stopped_for_it(
        qtbot, window, preferences):
    preferences.set_iterate(IterateSettings(**{**vars(FAST), "dask": "local:1"}))
    assert not multiprocessing.active_children()
    with qtbot.waitSignal(window.sigIterationDone, timeout=180000):
        window.iterate()
        qtbot.waitUntil(lambda: bool(multiprocessing.active_children()), timeout=60000)
    assert window.workspace.iteration == 2
    assert not multiprocessing.active_children()  # the cluster went with the iteration
