"""The desktop window on small sessions built from the real files:
keyboard labelling, undo, moving, refused labels, the iteration worker
with progress and cancel, a session written by the CLI, preferences,
error dialogs and the screenshot mode."""

from __future__ import annotations

import getpass
import shutil
import sys

import numpy as np
import pytest

from conftest import require_qt  # noqa: E402

require_qt()
from PyQt5 import QtCore, QtGui, QtWidgets  # noqa: E402
from PyQt5.QtTest import QTest  # noqa: E402

from vo_al.gui.errors import install_excepthook  # noqa: E402
from vo_al.gui.main_window import MainWindow  # noqa: E402
from vo_al.queues import Queue, batch_queue, candidate_queue, search_queue  # noqa: E402
from vo_al.gui.settings import IterateSettings, Preferences  # noqa: E402
from vo_al.gui.plots import IterationAxis  # noqa: E402
from vo_al.gui.workers import Job, step_time_left  # noqa: E402
from vo_al.cli import main as cli  # noqa: E402
from vo_al.loop import IterationOptions, precision_curve, run_iteration  # noqa: E402
from vo_al.scoring import ScoresReader  # noqa: E402
from vo_al.session import Session  # noqa: E402
from vo_al.workspace import Workspace, describe_progress  # noqa: E402

FAST = IterationOptions(max_epochs=1, query_size=5, estimate_size=3)
FAST_SETTINGS = IterateSettings(query_size=5, estimate_size=3, max_epochs=1, precision="fp32")
USER = getpass.getuser()


@pytest.fixture(scope="module")
def template(pools, tmp_path_factory):
    """A session after one iteration (copied for each test)."""
    train, pool = pools
    path = tmp_path_factory.mktemp("gui-template") / "session"
    with Session.create(path, train, pool, query_size=5, estimate_size=3) as session:
        run_iteration(session, FAST)
    return path


@pytest.fixture
def session_dir(template, tmp_path):
    path = tmp_path / "session"
    shutil.copytree(template, path)
    return path


@pytest.fixture
def preferences(tmp_path):
    prefs = Preferences(QtCore.QSettings(str(tmp_path / "settings.ini"),
                                         QtCore.QSettings.IniFormat))
    prefs.show_original = False
    prefs.samp_connect = False  # the SAMP test connects on purpose
    prefs.set_iterate(FAST_SETTINGS)
    return prefs


def open_window(qtbot, path, preferences) -> MainWindow:
    window = MainWindow(Workspace.open(path), preferences)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitActive(window)
    qtbot.waitUntil(lambda: not window.busy() and window.model.rowCount() > 0, timeout=20000)
    return window


def press(window, key, modifier=QtCore.Qt.NoModifier):
    QTest.keyClick(window, key, modifier)


def press_where_the_focus_is(key, modifier=QtCore.Qt.NoModifier):
    """A key as the window system delivers it: to the widget with the keyboard focus."""
    QTest.keyClick(QtWidgets.QApplication.focusWidget(), key, modifier)


def answers(window) -> list[tuple]:
    return [(e.action, e.spectrum_id, e.label or "") for e in window.workspace.entries()]


def rect_in(widget, ancestor) -> QtCore.QRect:
    return QtCore.QRect(widget.mapTo(ancestor, QtCore.QPoint(0, 0)), widget.size())


# ---------------------------------------------------------------- the queue's lists


def test_batch_candidate_and_search_lists(session_dir):
    with Session.open(session_dir) as session:
        batch = batch_queue(session)
        assert list(batch.ids) == session.read_batch(1, "query") + session.read_batch(1, "estimate")
        assert list(batch.kind) == ["query"] * 5 + ["estimate"] * 3
        with ScoresReader(session.iteration_file(1, "scores")) as scores:
            probs = scores.read("probs")
        np.testing.assert_allclose(batch.probs, probs[batch.rows])

        top = candidate_queue(session, "emission", 4)
        expected = np.argsort(-probs[:, 1], kind="stable")[:4]
        assert set(top.rows) == set(expected) and top.iteration == 1
        assert np.all(np.diff(top.probs[:, 1]) <= 0)

        first = batch.ids[0]
        assert list(search_queue(session, first).ids) == [first]
        partial = search_queue(session, "lamost j0")  # a part of designations, any case
        assert len(partial) > 0 and all(d.startswith("LAMOST J0") for d in partial.designation)
        assert len(search_queue(session, "no-such-spectrum")) == 0


# ---------------------------------------------------------------- labelling by keyboard


def test_keys_label_skip_undo_and_move(qtbot, session_dir, preferences):
    window = open_window(qtbot, session_dir, preferences)
    queue = window.model.queue
    assert window.current_row() == 0
    assert window.viewer.record.spectrum_id == queue.ids[0]
    assert "5 + 3" not in window.queue_panel.left.text()
    assert window.queue_panel.left.text() == "batch: 8 of 8 left"

    press(window, QtCore.Qt.Key_2)
    entries = window.workspace.entries()
    assert [(e.spectrum_id, e.label, e.source, e.sender, e.purpose, e.iteration)
            for e in entries] == [(queue.ids[0], "emission", "viewer", USER, "query", 1)]
    assert window.current_row() == 1  # the next spectrum is on screen at once
    assert window.viewer.record.spectrum_id == queue.ids[1]
    assert queue.answer[0] == "emission"
    assert window.queue_panel.left.text() == "batch: 7 of 8 left"

    press(window, QtCore.Qt.Key_S)
    assert window.workspace.entries()[-1].action == "skip"
    assert window.current_row() == 2

    press(window, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)
    last = window.workspace.entries()[-1]
    assert last.action == "undo" and last.spectrum_id == queue.ids[1]
    assert last.source == "viewer"
    assert window.current_row() == 1 and queue.answer[1] == ""  # back to the undone one
    assert window.queue_panel.left.text() == "batch: 7 of 8 left"
    press(window, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)
    assert window.current_row() == 0 and queue.answer[0] == ""
    press(window, QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)
    assert "nothing to undo" in window.message.text()
    assert window.workspace.answers() == {}

    # moving: space, arrows; the viewer follows
    for key, row in ((QtCore.Qt.Key_Space, 1), (QtCore.Qt.Key_Right, 2),
                     (QtCore.Qt.Key_Down, 3), (QtCore.Qt.Key_Left, 2), (QtCore.Qt.Key_Up, 1)):
        press(window, key)
        assert window.current_row() == row
        assert window.viewer.record.spectrum_id == queue.ids[row]
    for _ in range(10):
        press(window, QtCore.Qt.Key_Space)
    assert window.current_row() == 7 and "end of the list" in window.message.text()

    # labelled rows are jumped over when moving on after a label
    window.queue_panel.select_view_row(2)
    press(window, QtCore.Qt.Key_1)
    window.queue_panel.select_view_row(1)
    press(window, QtCore.Qt.Key_3)
    assert window.current_row() == 3
    assert window.viewer.record.history == []
    window.queue_panel.select_view_row(1)
    history = window.viewer.record.history  # the whole story of the spectrum
    assert [(e.action, e.undone) for e in history] == [("skip", True), ("undo", False),
                                                        ("label", False)]
    assert "<s>" in window.viewer.history.text() and "double-peak" in window.viewer.history.text()

    # keys reach the table when it has the focus; in the search field they type
    before = len(window.workspace.entries())
    window.queue_panel.search.setFocus()
    QTest.keyClicks(window.queue_panel.search, "12")
    assert window.queue_panel.search.text() == "12"
    assert len(window.workspace.entries()) == before
    window.queue_panel.table.setFocus()
    QTest.keyClick(window.queue_panel.table, QtCore.Qt.Key_2)
    assert window.workspace.entries()[-1].spectrum_id == queue.ids[1]


def test_label_keys_work_wherever_the_focus_is_except_while_typing_in_the_search_field(
        qtbot, session_dir, preferences):
    window = open_window(qtbot, session_dir, preferences)
    panel, ids = window.queue_panel, window.model.queue.ids
    assert QtWidgets.QApplication.focusWidget() is panel.table  # opens where the keys label
    press_where_the_focus_is(QtCore.Qt.Key_2)
    assert answers(window) == [("label", ids[0], "emission")]

    qtbot.mouseClick(window.viewer.plot.viewport(), QtCore.Qt.LeftButton)
    assert QtWidgets.QApplication.focusWidget() is window.viewer.plot  # a click takes the keys
    press_where_the_focus_is(QtCore.Qt.Key_3)
    press_where_the_focus_is(QtCore.Qt.Key_Left)
    press_where_the_focus_is(QtCore.Qt.Key_S)
    press_where_the_focus_is(QtCore.Qt.Key_Z, QtCore.Qt.ControlModifier)
    assert answers(window)[1:] == [("label", ids[1], "double-peak"), ("skip", ids[1], ""),
                                   ("undo", ids[1], "")]
    assert window.current_row() == 1

    press_where_the_focus_is(QtCore.Qt.Key_F, QtCore.Qt.ControlModifier)  # find
    assert QtWidgets.QApplication.focusWidget() is panel.search
    for key in (QtCore.Qt.Key_2, QtCore.Qt.Key_S, QtCore.Qt.Key_Left):
        press_where_the_focus_is(key)
    assert panel.search.text() == "2s" and len(answers(window)) == 4  # typed, not labelled
    press_where_the_focus_is(QtCore.Qt.Key_Escape)  # back to labelling
    assert QtWidgets.QApplication.focusWidget() is panel.table

    # every other widget that can hold the keyboard lets the keys through
    holders = [w for w in window.findChildren(QtWidgets.QWidget)
               if w.isVisible() and w.isEnabled() and w.focusPolicy() != QtCore.Qt.NoFocus
               and not isinstance(w, QtWidgets.QLineEdit)]
    assert {panel.table, window.viewer.plot, window.viewer.identity} <= set(holders)
    for widget in holders:
        widget.setFocus()
        row = window.current_row()
        press_where_the_focus_is(QtCore.Qt.Key_Space)
        assert window.current_row() == row + 1, type(widget).__name__
        press_where_the_focus_is(QtCore.Qt.Key_Up)
        assert window.current_row() == row, type(widget).__name__


def test_answer_buttons_show_their_keys_and_label(qtbot, session_dir, preferences):
    window = open_window(qtbot, session_dir, preferences)
    buttons = window.viewer.answer_buttons
    assert [b.text() for b in buttons] == ["1  other", "2  emission", "3  double-peak",
                                           "S  skip"]
    assert all(b.isVisible() for b in buttons)
    assert "(key 2)" in buttons[1].toolTip()
    qtbot.mouseClick(buttons[2], QtCore.Qt.LeftButton)
    assert answers(window) == [("label", window.model.queue.ids[0], "double-peak")]
    assert window.current_row() == 1
    press_where_the_focus_is(QtCore.Qt.Key_1)  # the keys still label after a click
    assert answers(window)[-1] == ("label", window.model.queue.ids[1], "other")


def test_viewer_facts_are_readable_at_1500_by_900_and_clear_of_the_probabilities(
        qtbot, session_dir, preferences):
    preferences.show_original = True
    window = open_window(qtbot, session_dir, preferences)
    assert window.size() == QtCore.QSize(1500, 900)  # fresh preferences: the default size
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.original_note.text().startswith("original:"), timeout=10000)
    qtbot.waitUntil(lambda: window.summary is not None)
    boxes = [rect_in(w, viewer) for w in [*viewer.answer_buttons, *viewer.bars]]
    for widget in (viewer.title, viewer.identity, viewer.original_note, viewer.history_area,
                   *viewer.answer_buttons, *viewer.bars):
        assert viewer.rect().contains(rect_in(widget, viewer)), widget.objectName()
    for label in (viewer.identity, viewer.original_note, viewer.history_area):
        assert not any(rect_in(label, viewer).intersects(box) for box in boxes)
    for label in (viewer.title, viewer.identity, viewer.original_note):
        assert label.text()
        assert label.sizeHint().width() <= label.width(), label.text()  # nothing cut off
        assert label.sizeHint().height() <= label.height(), label.text()
    assert "ra, dec" in viewer.identity.text() and "list</b> query" in viewer.identity.text()
    *probabilities, uncertainty = [bar.text() for bar in viewer.bars]
    assert all(0 <= float(text) <= 1 for text in probabilities)
    assert uncertainty.startswith("uncertainty ")
    for button in viewer.answer_buttons:
        assert button.sizeHint().width() <= button.width(), button.text()


def tick_labels(plot) -> list[str]:
    """The labels pyqtgraph draws under a plot."""
    axis = plot.getPlotItem().getAxis("bottom")
    image = QtGui.QImage(400, 100, QtGui.QImage.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for _, _, text in texts]


def test_learning_curve_and_counts_show_whole_iterations(qtbot, session_dir, preferences):
    with Session.open(session_dir) as session:
        run_iteration(session, FAST)
    window = open_window(qtbot, session_dir, preferences)
    qtbot.waitUntil(lambda: window.summary is not None)
    for plot in (window.plots.curve, window.plots.counts):
        labels = tick_labels(plot)
        assert labels and all(text.isdigit() for text in labels), labels
        assert {"1", "2"} <= set(labels)
    axis = IterationAxis("bottom")
    for low, high, size in ((0.5, 1.5, 300), (0.5, 3.5, 800), (0.5, 60.5, 200)):
        values = [v for _, vs in axis.tickValues(low, high, size) for v in vs]
        assert values and all(v == round(v) for v in values), (low, high, values)


def test_iteration_progress_measures_its_rate_and_says_when_training_stopped_early(
        qtbot, session_dir, preferences):
    assert step_time_left((1, 10.0), (1, 10.0), 10) is None  # one report: no rate yet
    assert step_time_left((1, 10.0), (3, 14.0), 10) == 14.0  # 2 epochs in 4 s, 7 to go
    assert step_time_left((0, 0.0), (5, 1.0), 0) is None  # no total: busy bar
    window = open_window(qtbot, session_dir, preferences)
    progress = window.progress
    progress.start("iteration 2: starting")
    progress.report("train", 1, 10, "training: epoch 1 of at most 10")
    assert progress.time_left() is None
    progress.tick(5.0)
    assert progress.times.text() == "0:05 elapsed"  # no made-up rate from epoch 1 alone
    progress.report("train", 2, 10, "training: epoch 2 of at most 10")
    assert progress.time_left() is not None
    progress.tick(6.0)
    assert "left" in progress.times.text()
    progress.report("score", 500, 3000, "scoring the pool: 500 of 3,000")
    assert progress.time_left() is None  # a new step: its rate is measured afresh
    assert "training stopped early at epoch 2 of 10" in progress.text.text()
    assert (progress.bar.value(), progress.bar.maximum()) == (500, 3000)

    progress.start("iteration 3: starting")
    for epoch in (1, 2):
        progress.report("train", epoch, 2, f"training: epoch {epoch} of at most 2")
    progress.report("score", 10, 3000, "scoring the pool: 10 of 3,000")
    assert "stopped early" not in progress.text.text()  # all epochs ran


def test_refused_label_is_a_message_not_a_traceback(qtbot, session_dir, preferences):
    window = open_window(qtbot, session_dir, preferences)
    queue = window.model.queue
    ids = queue.ids.copy()
    ids[0] = "spectrum-from-elsewhere"
    window.show_queue(Queue("odd", 1, queue.class_names, "skip", queue.rows, ids,
                            queue.designation, queue.source, queue.kind, queue.ra, queue.dec,
                            queue.probs, queue.answer, queue.answer_source))
    window.queue_panel.select_view_row(0)
    press(window, QtCore.Qt.Key_2)
    assert "refused" in window.message.text() and "not in the pool" in window.message.text()
    assert window.workspace.entries() == []
    assert window.current_row() == 0  # the spectrum stays


def test_labels_from_another_door_show_up(qtbot, session_dir, preferences):
    window = open_window(qtbot, session_dir, preferences)
    spectrum_id = window.model.queue.ids[0]
    # through the workspace, as the SAMP bridge labels: its event reaches the window
    window.workspace.import_labels([(spectrum_id, "double-peak")], source="topcat",
                                   sender="topcat")
    assert window.model.queue.answer[0] == "double-peak"
    assert window.model.queue.answer_source[0] == "topcat"
    assert "topcat" in window.viewer.history.text()


def test_answers_from_another_process_appear_without_refresh(qtbot, session_dir, preferences):
    window = open_window(qtbot, session_dir, preferences)
    spectrum_id = window.model.queue.ids[1]
    assert cli(["label", str(session_dir), spectrum_id, "emission", "--sender", "ann"]) == 0
    qtbot.waitUntil(lambda: window.model.queue.answer[1] == "emission", timeout=5000)
    assert window.model.queue.answer_source[1] == "cli"
    assert cli(["undo", str(session_dir)]) == 0
    qtbot.waitUntil(lambda: window.model.queue.answer[1] == "", timeout=5000)


# ---------------------------------------------------------------- the loop in a worker


def iteration_task(directory, options):
    """A job running one iteration through the workspace, as the window does."""
    def task(progress, cancel):
        with Workspace.open(directory) as workspace:
            return workspace.iterate(options, cancel=cancel, progress=lambda step, event: progress(
                step, *describe_progress(step, event)))
    return task


def test_iteration_job_reports_progress_and_cancels(qtbot, session_dir):
    steps = []
    job = Job("Iteration", iteration_task(session_dir, FAST))
    job.sigProgress.connect(lambda step, done, total, text: steps.append((step, done, total)))
    job.sigProgress.connect(lambda *_: job.cancel())
    with qtbot.waitSignal(job.sigCancelled, timeout=30000):
        job.start()
    job.wait()
    assert steps and steps[0][0] == "train"
    with Session.open(session_dir) as session:
        assert session.iteration == 1  # the cancelled iteration does not count

    done = []
    job = Job("Iteration", iteration_task(session_dir, FAST))
    job.sigProgress.connect(lambda step, *_: done.append(step))
    with qtbot.waitSignal(job.sigDone, timeout=30000) as blocker:
        job.start()
    job.wait()
    assert blocker.args[0].iteration == 2
    assert {"train", "score", "query"} <= set(done)


def test_window_iterates_while_labelling_continues(qtbot, session_dir, preferences):
    window = open_window(qtbot, session_dir, preferences)
    first = window.model.queue.ids[0]
    with qtbot.waitSignal(window.sigIterationDone, timeout=30000):
        window.iterate()
        assert window.progress.isVisible() and not window.iterate_action.isEnabled()
        press(window, QtCore.Qt.Key_2)  # labelling goes on while the model trains
    entry = window.workspace.entries()[0]
    assert (entry.spectrum_id, entry.iteration, entry.purpose) == (first, 1, "query")
    qtbot.waitUntil(lambda: not window.busy() and window.model.queue.iteration == 2,
                    timeout=20000)
    assert window.workspace.iteration == 2
    assert list(window.model.queue.ids[:5]) == window.workspace.session.read_batch(2, "query")
    assert window.iteration_label.text() == "iteration 2"
    assert not window.progress.isVisible() and window.iterate_action.isEnabled()
    assert "iteration 2 is ready" in window.message.text()


def test_window_cancels_an_iteration(qtbot, session_dir, preferences):
    preferences.set_iterate(IterateSettings(max_epochs=500, patience=500, precision="fp32"))
    window = open_window(qtbot, session_dir, preferences)
    window.iterate()
    qtbot.waitUntil(lambda: window.progress.bar.maximum() > 0, timeout=20000)
    window.progress.cancel.click()
    qtbot.waitUntil(lambda: "cancelled" in window.message.text(), timeout=20000)
    assert window.workspace.iteration == 1 and window.iterate_action.isEnabled()


# ---------------------------------------------------------------- sessions, settings, errors


def test_opens_a_session_written_by_the_cli(qtbot, pools, tmp_path, preferences):
    train, pool = pools
    path = str(tmp_path / "cli-session")
    assert cli(["init", path, "--train", str(train), "--pool", str(pool), "--query-size", "3",
                "--estimate-size", "2"]) == 0
    assert cli(["iterate", path, "--max-epochs", "1", "--precision", "fp32"]) == 0
    with Session.open(path) as session:
        query = session.read_batch(1, "query")
        estimate = session.read_batch(1, "estimate")
    assert cli(["label", path, query[0], "emission"]) == 0
    window = open_window(qtbot, path, preferences)
    assert list(window.model.queue.ids) == query + estimate
    assert window.model.queue.answer[0] == "emission"
    assert window.model.queue.answer_source[0] == "cli"
    assert window.current_row() == 1  # the first unanswered spectrum
    qtbot.waitUntil(lambda: window.summary is not None)
    assert window.iteration_label.text() == "iteration 1"
    assert "| 1 labels (other 0, emission 1" in window.labels_label.text()


def test_preferences_and_geometry_persist(qtbot, session_dir, preferences):
    window = open_window(qtbot, session_dir, preferences)
    window.resize(1333, 877)
    window.viewer.original_box.setChecked(True)
    qtbot.waitUntil(lambda: window.viewer.original_curve.xData is not None, timeout=10000)
    assert window.viewer.original_curve.xData.size > 1000  # the whole original file
    size = window.size()
    assert size != QtCore.QSize(1500, 900)  # not the default
    window.close()
    assert preferences.show_original and preferences.last_session == str(session_dir)
    again = open_window(qtbot, session_dir, preferences)
    assert again.size() == size
    assert again.viewer.original_box.isChecked()


def test_uncaught_errors_become_dialogs(qtbot, monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_excepthook()
    try:
        raise ValueError("the pool file went away")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    boxes = [w for w in QtWidgets.QApplication.topLevelWidgets()
             if isinstance(w, QtWidgets.QMessageBox) and w.isVisible()]
    assert boxes and "the pool file went away" in boxes[-1].text()
    assert "safe" in boxes[-1].text() and "ValueError" in boxes[-1].detailedText()
    for box in boxes:
        box.close()


def test_screenshot_mode(qtbot, session_dir, tmp_path, capsys):
    from vo_al.gui.app import main

    out = tmp_path / "window.png"
    assert main(session_dir, screenshot=out) == 0
    image = QtGui.QImage(str(out))
    assert (image.width(), image.height()) == (1500, 900)
    assert main(tmp_path / "not-a-session", screenshot=out) == 2
    assert "not a vo-al session" in capsys.readouterr().err


def test_session_dialog_creates_or_refuses(qtbot, pools, tmp_path, preferences):
    from vo_al.gui.dialogs import SessionDialog

    train, pool = pools
    dialog = SessionDialog(preferences)
    qtbot.addWidget(dialog)
    dialog.directory.edit.setText(str(tmp_path / "new"))
    dialog.train.edit.setText(str(pool))  # no labels: refused, the dialog stays
    dialog.pool.edit.setText(str(pool))
    dialog._create()
    assert dialog.workspace is None and dialog.result() != QtWidgets.QDialog.Accepted
    boxes = dialog.findChildren(QtWidgets.QMessageBox)
    assert boxes and "has no labels" in boxes[-1].text()
    boxes[-1].close()
    dialog.train.edit.setText(str(train))
    dialog.query_size.setValue(7)
    dialog._create()
    assert dialog.result() == QtWidgets.QDialog.Accepted
    assert dialog.workspace.config.query_size == 7
    dialog.workspace.close()


def test_options_preferences_and_export(qtbot, session_dir, preferences, tmp_path):
    from astropy.table import Table

    from vo_al.gui.dialogs import IterateOptionsDialog, PreferencesDialog

    options = IterateOptionsDialog(preferences.iterate())
    qtbot.addWidget(options)
    options.mode.setCurrentIndex(options.mode.findData("warm"))
    options.max_epochs.setValue(7)
    preferences.set_iterate(options.options())
    chosen = preferences.iterate().options("margin")
    assert (chosen.mode, chosen.max_epochs, chosen.strategy, chosen.query_size) == (
        "warm", 7, "margin", 5)

    dialog = PreferencesDialog(preferences)
    qtbot.addWidget(dialog)
    dialog.user.setText("ann")
    dialog.candidates.setValue(50)
    dialog.accept()
    assert preferences.user == "ann" and preferences.candidates == 50

    window = open_window(qtbot, session_dir, preferences)
    press(window, QtCore.Qt.Key_2)
    assert window.workspace.entries()[-1].sender == "ann"
    window.export_to(str(tmp_path / "candidates"))
    qtbot.waitUntil(lambda: "wrote" in window.message.text(), timeout=20000)
    table = Table.read(tmp_path / "candidates.vot")
    assert window.model.queue.ids[0] in list(table["id"])


def test_candidate_list_and_search_in_the_window(qtbot, session_dir, preferences):
    window = open_window(qtbot, session_dir, preferences)
    panel = window.queue_panel
    panel.lists.setCurrentIndex(panel.list_index("candidates", "emission"))
    panel.lists.activated.emit(panel.lists.currentIndex())
    qtbot.waitUntil(lambda: not window.busy() and window.model.queue.title == "top emission",
                    timeout=20000)
    queue = window.model.queue
    assert set(queue.kind) == {"candidate"} and np.all(np.diff(queue.probs[:, 1]) <= 0)
    target = queue.ids[-1]
    panel.search.setText(target)
    QTest.keyClick(panel.search, QtCore.Qt.Key_Return)
    qtbot.waitUntil(lambda: not window.busy() and window.model.queue.kind[0] == "search",
                    timeout=20000)
    assert list(window.model.queue.ids) == [target] and window.current_id() == target
    assert window.focusWidget() is panel.table  # the keys label again
    window.refresh_all()  # F5 keeps the chosen list
    qtbot.waitUntil(lambda: not window.busy(), timeout=20000)
    assert window.model.queue.title == "top emission"
    assert panel.lists.currentData() == ("candidates", "emission")


def test_viewer_label_of_an_old_estimate_spectrum_is_never_trained_on(qtbot, session_dir,
                                                                      preferences):
    """The viewer door follows the session's one rule: a spectrum drawn into
    iteration 1's estimate sample, labelled by keyboard after iteration 2, is
    recorded as an estimate answer, counts for iteration 1's estimate and is
    never trained on."""
    with Session.open(session_dir) as session:
        run_iteration(session, FAST)  # iteration 1's lists are no longer the latest
        assert session.iteration == 2
        old_estimate = session.read_batch(1, "estimate")
    assert old_estimate, "iteration 1 drew no estimate sample: nothing to test"
    target = old_estimate[0]

    window = open_window(qtbot, session_dir, preferences)
    assert window.workspace.iteration == 2
    panel = window.queue_panel
    panel.search.setText(target)  # the way a user brings it on screen
    QTest.keyClick(panel.search, QtCore.Qt.Key_Return)
    qtbot.waitUntil(lambda: not window.busy() and window.model.queue.kind[0] == "search",
                    timeout=20000)
    assert list(window.model.queue.ids) == [target] and window.current_id() == target
    assert window.viewer.record.spectrum_id == target
    press(window, QtCore.Qt.Key_2)

    session = window.workspace.session
    entries = session.log.entries(spectrum_id=target)
    assert [(e.action, e.label, e.source, e.purpose) for e in entries] == [
        ("label", "emission", "viewer", "estimate")]
    rows, _ = session.training_labels()
    target_row = session.index.rows([target])
    assert target_row[0] >= 0
    assert target_row[0] not in set(rows.tolist())
    assert precision_curve(session)[0]["labelled"] == 1
