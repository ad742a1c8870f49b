"""The main window: queue, viewer and plots around one session.

Every user intent becomes one call on the session's
:class:`~vo_al.workspace.Workspace` (``label``, ``undo``, ``batch``,
``iterate`` in a :class:`~vo_al.gui.workers.Job`, ...); every result comes
back as a signal that updates the queue arrays, the viewer and the status
bar; the workspace's events reach the window through :class:`~vo_al.gui.events.QtEvents`. Labels are written synchronously on the GUI
thread (a few milliseconds, committed to disk before the next spectrum
shows); training, scoring, list building and statistics run in threads.
"""

from __future__ import annotations

import time

import numpy as np
from PyQt5 import QtCore, QtGui, QtWidgets

from vo_al.workspace import (FORMATS, STRATEGY_NAMES, Entry, LabelRefused, Queue,
                             SessionSummary, Workspace, format_precision)

from .crossmatch import KnownAs, crossmatch_task, describe_summaries
from .dialogs import CrossmatchDialog, IterateOptionsDialog, PreferencesDialog, ReportDialog
from .errors import SAFE_LABELS, show_error
from .events import QtEvents
from .plots import PlotsPanel
from .queue_model import QueueModel
from .queue_panel import BATCH, QueuePanel
from .samp_panel import SampPanel
from .settings import Preferences
from .viewer import SpectrumViewer
from .workers import Job, SpectrumLoader, iterate_task, step_time_left

__all__ = ["MainWindow", "VIEWER_SOURCE"]

#: The ``source`` of every label given in this window.
VIEWER_SOURCE = "viewer"

_SUMMARY_DELAY_MS = 300
#: The original spectrum is asked for once the user rests this long on a
#: spectrum: moving on quickly reads no files, and reading never competes
#: with drawing the next spectrum.
_ORIGINAL_DELAY_MS = 40
#: How often the window looks for answers committed by other processes.
_LOG_POLL_MS = 2000
_MESSAGE_MS = 10000
_ERROR_STYLE = "color: #b52b27; font-weight: bold"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class _JobProgress(QtWidgets.QWidget):
    """Status-bar widget of a long job (an iteration, a cross-match): step,
    bar, times, Cancel."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = QtWidgets.QLabel()
        self.bar = QtWidgets.QProgressBar()
        self.bar.setMaximumWidth(220)
        self.times = QtWidgets.QLabel()
        self.cancel = QtWidgets.QPushButton("Cancel")
        self.cancel.setFocusPolicy(QtCore.Qt.NoFocus)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.text, self.bar, self.times, self.cancel):
            layout.addWidget(widget)
        self._step = ""
        self._first = self._latest = (0, 0.0)
        self._total = 0
        self._note = ""

    def start(self, name: str):
        """Show the widget for a new job, busy until its first report."""
        self.text.setText(name)
        self.bar.setRange(0, 0)
        self.times.setText("")
        self.cancel.setEnabled(True)
        self._step, self._note = "", ""
        self.show()

    def report(self, step: str, done: int, total: int, text: str):
        """A :attr:`Job.sigProgress` report.

        Training that ends before its maximum of epochs stopped early; the
        steps after it say so ("training stopped early at epoch 9 of 30").
        """
        now = (done, time.monotonic())
        if step != self._step:
            if self._step == "train" and 0 < self._latest[0] < self._total:
                self._note = (f"training stopped early at epoch {self._latest[0]} "
                              f"of {self._total}")
            self._step, self._first = step, now
        self._latest, self._total = now, total
        self.text.setText(f"{text} · {self._note}" if self._note else text)
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        else:
            self.bar.setRange(0, 0)

    def time_left(self) -> float | None:
        """Seconds the current step still needs; None until its rate is measured."""
        return step_time_left(self._first, self._latest, self._total)

    def tick(self, elapsed: float):
        """Show the elapsed time and, once the step's rate is measured, its time left."""
        left = self.time_left()
        left = "" if left is None else f", this step ≤ {_clock(left)} left"
        self.times.setText(f"{_clock(elapsed)} elapsed{left}")


class MainWindow(QtWidgets.QMainWindow):
    """The vo-al desktop window on one open session.

    Parameters
    ----------
    workspace : Workspace
        The open session, owned by the window from now on: closed when the
        window closes.
    preferences : Preferences
    parent : QWidget, optional

    Attributes
    ----------
    model : QueueModel
    queue_panel : QueuePanel
    viewer : SpectrumViewer
    plots : PlotsPanel
    samp : SampPanel
    summary : SessionSummary or None
        The latest numbers shown in the status bar.
    known : KnownAs
        What the spectra are known as in the matched catalogues.
    report_dialog : ReportDialog or None
        The discovery report, once shown.
    """

    #: an iteration finished (its number)
    sigIterationDone = QtCore.pyqtSignal(int)
    #: the user asks for another session (path, or '' for the dialog)
    sigOpenSession = QtCore.pyqtSignal(str)

    def __init__(self, workspace: Workspace, preferences: Preferences, parent=None):
        super().__init__(parent)
        self.workspace = workspace
        self.preferences = preferences
        self.summary: SessionSummary | None = None
        self.known = KnownAs()
        self.report_dialog: ReportDialog | None = None
        self.events = QtEvents(workspace.events, parent=self)
        self.events.sigLabels.connect(self._labels_changed)
        self._jobs: dict[str, Job] = {}  # the latest job of each kind
        self._threads: set[Job] = set()  # every job until its thread has finished
        self._undo: list[str] = []
        self._closed = False
        #: True once the window closed its session (after SAMP unregistered)
        self.released = False
        self._list = (BATCH, "")
        self.model = QueueModel(Queue.empty("", workspace.config.class_names,
                                            workspace.config.skip_name))
        self.loader = SpectrumLoader(workspace.original, parent=self)
        self.loader.sigLoaded.connect(self._original_loaded)
        self.loader.sigFailed.connect(self._original_failed)
        self._summary_timer = QtCore.QTimer(self, singleShot=True, interval=_SUMMARY_DELAY_MS)
        self._summary_timer.timeout.connect(self.refresh_summary)
        self._original_timer = QtCore.QTimer(self, singleShot=True, interval=_ORIGINAL_DELAY_MS)
        self._original_timer.timeout.connect(self._request_original)
        self._tick_timer = QtCore.QTimer(self, interval=500)
        self._tick_timer.timeout.connect(self._tick)
        self._log_timer = QtCore.QTimer(self, interval=_LOG_POLL_MS)
        self._log_timer.timeout.connect(self.poll_log)
        self._log_timer.start()
        self._message_timer = QtCore.QTimer(self, singleShot=True)
        self._message_timer.timeout.connect(lambda: self.message.setText(""))
        self.setWindowTitle(f"vo-al — {workspace.directory}")
        self._build_widgets()
        self._build_actions()
        self._build_status_bar()
        self._restore()
        self.refresh_all()
        if preferences.samp_connect:
            self.samp.start()

    # ------------------------------------------------------------------ layout

    def _build_widgets(self):
        config = self.workspace.config
        self.viewer = SpectrumViewer()
        self.viewer.configure(self.workspace.preprocess, self.workspace.marked_lines(),
                              config.class_names, config.skip_name)
        self.viewer.original_box.setChecked(self.preferences.show_original)
        self.viewer.sigOriginalToggled.connect(self._original_toggled)
        self.viewer.sigLabel.connect(self.label_current)
        self.setCentralWidget(self.viewer)
        self.queue_panel = QueuePanel(self.model)
        self.queue_panel.set_lists(self.workspace.iteration, config.interesting)
        self.queue_panel.sigCurrentChanged.connect(self._show)
        self.queue_panel.sigListChosen.connect(self._list_chosen)
        self.queue_panel.sigSearch.connect(self.search)
        self.queue_panel.sigNewOnly.connect(self._new_only_toggled)
        self.plots = PlotsPanel()
        self.samp = SampPanel(self)
        for name, title, widget, area in (
                ("queue", "Queue", self.queue_panel, QtCore.Qt.LeftDockWidgetArea),
                ("plots", "Plots", self.plots, QtCore.Qt.RightDockWidgetArea),
                ("samp", "SAMP", self.samp, QtCore.Qt.BottomDockWidgetArea)):
            dock = QtWidgets.QDockWidget(title, self)
            dock.setObjectName(f"dock-{name}")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            setattr(self, f"{name}_dock", dock)
        # the window opens with the keys where they label (not in the search field)
        self.queue_panel.focus_table()

    def _default_layout(self):
        self.resizeDocks([self.queue_dock, self.plots_dock], [450, 420], QtCore.Qt.Horizontal)
        self.resizeDocks([self.samp_dock], [170], QtCore.Qt.Vertical)

    def _action(self, text, slot, shortcut=None, tip=None) -> QtWidgets.QAction:
        action = QtWidgets.QAction(text, self)
        if shortcut:
            action.setShortcuts([QtGui.QKeySequence(s) for s in (
                shortcut if isinstance(shortcut, (list, tuple)) else [shortcut])])
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work while the menus are closed
        return action

    def _build_actions(self):
        config = self.workspace.config
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self._action("&New or open session…",
                                         lambda: self.sigOpenSession.emit(""), "Ctrl+O"))
        self.export_action = self._action("&Export candidates…", self.export, "Ctrl+E",
                                          "Write the candidate table as VOTable, FITS or CSV")
        file_menu.addAction(self.export_action)
        file_menu.addAction(self._action("&Preferences…", self.edit_preferences))
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.close, "Ctrl+Q"))

        label_menu = menu.addMenu("&Label")
        self.label_actions = []
        for k, name in enumerate(config.class_names[:9]):
            action = self._action(f"{name}", lambda _=False, n=name: self.label_current(n),
                                  str(k + 1), f"Label the spectrum as {name} ({k + 1})")
            label_menu.addAction(action)
            self.label_actions.append(action)
        self.skip_action = self._action(f"{config.skip_name} (unsure)",
                                        lambda: self.label_current(config.skip_name), "S",
                                        "Record that you are unsure; never trained on (S)")
        label_menu.addAction(self.skip_action)
        self.undo_action = self._action("&Undo", self.undo, QtGui.QKeySequence.Undo,
                                        "Take back your latest answer (Ctrl+Z)")
        label_menu.addAction(self.undo_action)
        label_menu.addSeparator()
        label_menu.addAction(self._action("Next", lambda: self.move(1),
                                          ["Space", "Right", "Down"]))
        label_menu.addAction(self._action("Previous", lambda: self.move(-1), ["Left", "Up"]))
        label_menu.addAction(self._action("Original spectrum on/off",
                                          self.viewer.original_box.toggle, "O"))
        label_menu.addAction(self._action("Reset view", self.viewer.reset_view, "R"))
        label_menu.addAction(self._action("&Find…", self.find, QtGui.QKeySequence.Find,
                                          "Search ids and designations (Ctrl+F; "
                                          "Escape goes back to labelling)"))

        loop_menu = menu.addMenu("L&oop")
        self.iterate_action = self._action(
            "&Iterate", self.iterate, "Ctrl+I",
            "Train on every label, score the pool and choose the next batch (Ctrl+I)")
        self.options_action = self._action("Iterate &options…", self.edit_iterate_options,
                                           tip="Training mode, epochs, scoring precision…")
        self.cancel_action = self._action("&Cancel iteration", self.cancel_iteration)
        self.cancel_action.setEnabled(False)
        self.refresh_action = self._action("&Refresh", self.refresh_all, "F5",
                                           "Reread the session (labels from other doors)")
        for action in (self.iterate_action, self.options_action, self.cancel_action,
                       self.refresh_action):
            loop_menu.addAction(action)
        catalogue_menu = menu.addMenu("&Catalogues")
        self.crossmatch_action = self._action(
            "&Cross-match…", self.crossmatch,
            tip="Match the candidates with SIMBAD, a TAP service's table or a local file")
        self.report_action = self._action(
            "Discovery &report", self.show_report,
            tip="New and known candidates per class, in spectra and in objects")
        catalogue_menu.addAction(self.crossmatch_action)
        catalogue_menu.addAction(self.report_action)
        view_menu = menu.addMenu("&View")
        for dock in (self.queue_dock, self.plots_dock, self.samp_dock):
            view_menu.addAction(dock.toggleViewAction())
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self._action("&Keys", self.show_keys, "F1"))

        self.strategy = QtWidgets.QComboBox()
        self.strategy.setFocusPolicy(QtCore.Qt.NoFocus)
        self.strategy.setToolTip("How the next batch is chosen")
        self.strategy.addItem(f"session default ({config.strategy})", "")
        for name in STRATEGY_NAMES:
            self.strategy.addItem(name.replace("_", " "), name)
        self.strategy.setCurrentIndex(max(0, self.strategy.findData(self.preferences.strategy)))
        self.strategy.currentIndexChanged.connect(
            lambda: setattr(self.preferences, "strategy", self.strategy.currentData()))
        toolbar = self.addToolBar("Loop")
        toolbar.setObjectName("toolbar-loop")
        toolbar.setToolButtonStyle(QtCore.Qt.ToolButtonTextOnly)
        toolbar.addAction(self.iterate_action)
        font = toolbar.widgetForAction(self.iterate_action).font()
        font.setBold(True)
        toolbar.widgetForAction(self.iterate_action).setFont(font)
        toolbar.addAction(self.options_action)
        toolbar.addWidget(QtWidgets.QLabel(" strategy "))
        toolbar.addWidget(self.strategy)
        toolbar.addSeparator()
        toolbar.addAction(self.export_action)
        toolbar.addAction(self.refresh_action)
        spacer = QtWidgets.QWidget()
        spacer.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Preferred)
        toolbar.addWidget(spacer)
        toolbar.addWidget(self.samp.hub_label)
        for widget in toolbar.findChildren(QtWidgets.QToolButton):
            widget.setFocusPolicy(QtCore.Qt.NoFocus)

    def _build_status_bar(self):
        bar = self.statusBar()
        self.message = QtWidgets.QLabel()
        self.iteration_label = QtWidgets.QLabel()
        self.labels_label = QtWidgets.QLabel()
        self.precision_label = QtWidgets.QLabel()
        self.progress = _JobProgress()
        self.progress.cancel.clicked.connect(self.cancel_iteration)
        self.progress.hide()
        self.crossmatch_progress = _JobProgress()
        self.crossmatch_progress.cancel.clicked.connect(self.cancel_crossmatch)
        self.crossmatch_progress.hide()
        bar.addWidget(self.message, 1)
        for widget in (self.progress, self.crossmatch_progress, self.iteration_label,
                       self.labels_label, self.precision_label):
            bar.addPermanentWidget(widget)

    def _restore(self):
        geometry, state = self.preferences.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 900)
        self._layout_pending = state is None or not self.restoreState(state)

    def showEvent(self, event):  # noqa: N802 (Qt API)
        """Give the docks their default sizes the first time (no saved layout)."""
        super().showEvent(event)
        if self._layout_pending:
            self._layout_pending = False
            self._default_layout()

    # ------------------------------------------------------------------ messages

    def show_message(self, text: str, error: bool = False):
        """A line in the status bar for 10 s (red for refusals and failures)."""
        self.message.setStyleSheet(_ERROR_STYLE if error else "")
        self.message.setText(text)
        self.message.setToolTip(text)
        self._message_timer.start(_MESSAGE_MS)

    def find(self):
        """Put the keyboard in the queue's search field."""
        self.queue_dock.show()
        self.queue_panel.focus_search()

    def show_keys(self):
        """List the keyboard commands."""
        classes = ", ".join(f"{k + 1} {n}" for k, n in
                            enumerate(self.workspace.config.class_names[:9]))
        QtWidgets.QMessageBox.information(
            self, "Keys",
            f"{classes}\nS {self.workspace.config.skip_name} (unsure, never trained on)\n"
            "Ctrl+Z undo your latest answer\nSpace, →, ↓ next · ←, ↑ previous\n"
            "O original spectrum on/off · R reset the view\n"
            "Ctrl+F search ids and designations; Enter searches, Escape goes back\n"
            "These keys work wherever the keyboard is, except while you type in the "
            "search field\n"
            "Mouse on the plot: drag to pan, wheel to zoom, right-drag to stretch, "
            "right-click for more\nCtrl+I iterate · F5 refresh · Ctrl+E export")

    # ------------------------------------------------------------------ jobs

    def start_job(self, key: str, name: str, task, done, progress=None,
                  cancelled=None) -> Job:
        """Run ``task`` in a :class:`~vo_al.gui.workers.Job` and hand its result to
        ``done`` on the GUI thread; failures become error dialogs.

        Parameters
        ----------
        key : str
            One job per key: a running job of the same key is cancelled
            and its result ignored.
        name : str
            What the job does, for messages.
        task : callable
            ``task(progress, cancel) -> result``.
        done : callable
            ``done(result)``.
        progress, cancelled : callable, optional
            ``progress(step, done, total, text)`` for each report, and
            ``cancelled()``; connected before the job starts, so that no
            early report is lost.

        Returns
        -------
        Job or None
            None once the window is closed.
        """
        if self._closed:
            return None
        old = self._jobs.pop(key, None)
        if old is not None:
            old.cancel()
        job = Job(name, task, self)
        self._jobs[key] = job
        self._threads.add(job)
        job.finished.connect(lambda: self._threads.discard(job))
        job.sigDone.connect(lambda result: self._job_done(key, job, done, result))
        job.sigFailed.connect(lambda message, details: self._job_failed(key, job, message,
                                                                         details))
        job.sigCancelled.connect(lambda: self._jobs.pop(key, None) if
                                 self._jobs.get(key) is job else None)
        if progress is not None:
            job.sigProgress.connect(progress)
        if cancelled is not None:
            job.sigCancelled.connect(cancelled)
        job.finished.connect(job.deleteLater)
        job.start()
        return job

    def _job_done(self, key, job, done, result):
        if self._jobs.get(key) is not job:
            return  # replaced by a newer request
        del self._jobs[key]
        done(result)

    def _job_failed(self, key, job, message, details):
        if self._jobs.get(key) is not job:
            return
        del self._jobs[key]
        if key == "iterate":
            self._iteration_ended()
        elif key == "crossmatch":
            self._crossmatch_ended()
        show_error(self, f"vo-al: {job.name} failed", f"{message}\n\n{SAFE_LABELS}", details)
        self.show_message(f"{job.name} failed: {message}", error=True)

    def busy(self) -> bool:
        """Whether a job or an original-spectrum read is still running."""
        return bool(self._jobs) or self._original_timer.isActive() or self.loader.busy()

    # ------------------------------------------------------------------ refreshing

    def refresh_all(self):
        """Rebuild the current list, the status bar and the plots."""
        self.queue_panel.set_lists(self.workspace.iteration, self.workspace.config.interesting,
                                   self._list)
        self.load_list(*self._list)
        self.refresh_summary()
        self.refresh_histogram()
        self.refresh_matches()

    def load_list(self, kind: str, class_name: str = ""):
        """Build a list in the background and show it when ready.

        Parameters
        ----------
        kind : {'batch', 'candidates'}
        class_name : str
            The class of a candidate list.
        """
        self._list = (kind, class_name)
        workspace, k = self.workspace, self.preferences.candidates

        def task(progress, cancel):
            if kind == BATCH:
                return workspace.batch()
            return workspace.candidates(class_name, k, cancel=cancel)

        self.start_job("queue", "Building the list", task, self.show_queue)

    def search(self, text: str):
        """List the spectra matching ``text`` (ids, or parts of ids/designations)."""
        workspace = self.workspace
        self.start_job("queue", "Searching",
                       lambda progress, cancel: workspace.search(text, cancel=cancel),
                       self._search_done)

    def _search_done(self, queue: Queue):
        self.show_queue(queue)
        self.show_message(f"{len(queue)} spectra found" if len(queue)
                          else "nothing found: ids must be exact, or a part of an id "
                               "or designation", error=not len(queue))

    def _list_chosen(self, kind: str, class_name: str):
        self.load_list(kind, class_name)

    def show_queue(self, queue: Queue):
        """Show a queue, keeping the current spectrum when it is in it (and shown)."""
        previous = self.current_id()
        self.model.reset(queue, self._hidden_rows(queue))
        self._update_remaining()
        self._rows_changed(previous)

    def _hidden_rows(self, queue: Queue):
        """The rows the "new objects only" filter hides (None: the filter is off)."""
        return self.known.hidden(queue.ids) if self.queue_panel.new_only.isChecked() else None

    def _rows_changed(self, previous: str):
        """Title the queue and show ``previous`` again, else its first unanswered row."""
        queue, shown = self.model.queue, self.model.rowCount()
        hidden = f", {len(queue) - shown:,} known hidden" if shown < len(queue) else ""
        self.queue_dock.setWindowTitle(f"Queue — {queue.title} ({len(queue):,}{hidden})")
        if previous and self._select(previous):
            return
        if shown:
            unanswered = np.flatnonzero(~queue.answered[self.model.order])
            self.queue_panel.select_view_row(int(unanswered[0]) if len(unanswered) else 0)
        else:
            self.viewer.show_record(None)

    def _select(self, spectrum_id: str) -> bool:
        """Make the first shown row of a spectrum current; False when none is shown."""
        rows = [self.model.view_row(i) for i in self.model.queue.positions(spectrum_id)]
        rows = [r for r in rows if r >= 0]
        if rows:
            self.queue_panel.select_view_row(rows[0])
        return bool(rows)

    def _new_only_toggled(self, _on: bool):
        previous = self.current_id()
        self.model.set_hidden(self._hidden_rows(self.model.queue))
        self._rows_changed(previous)

    def schedule_summary(self):
        """Refresh the status bar and plots soon (labels come in bursts)."""
        self._summary_timer.start()

    def refresh_summary(self):
        """Read label counts and the learning curve in the background."""
        workspace = self.workspace
        self.start_job("summary", "Reading the learning curve",
                       lambda progress, cancel: workspace.summary(), self._show_summary)

    def _show_summary(self, summary: SessionSummary):
        self.summary = summary
        self.iteration_label.setText(f"iteration {summary.iteration}")
        counts = ", ".join(f"{name} {n:,}" for name, n in summary.label_counts.items())
        skips = f", {summary.skips:,} skipped" if summary.skips else ""
        self.labels_label.setText(f" | {summary.n_labels:,} labels ({counts}{skips})")
        latest = summary.curve[-1] if summary.curve else None
        tip = "\n".join(f"{name}: {format_precision(latest, name)}"
                        for name in [*summary.interesting, "overall"]) if latest else ""
        sample = (f" ({latest['labelled']}/{latest['sample']} of its sample labelled)"
                  if latest else "")
        self.precision_label.setText(f" | precision of iteration {summary.iteration}: "
                                     f"{format_precision(latest)}{sample}")
        self.precision_label.setToolTip(tip or "label the estimate sample to measure it")
        self.plots.show_summary(summary)

    def refresh_histogram(self):
        """Recompute the uncertainty histogram of the latest scores."""
        if self.workspace.iteration < 1:
            self.plots.show_histogram(None)
            return
        workspace = self.workspace
        self.start_job("histogram", "Histogram of uncertainty",
                       lambda progress, cancel: workspace.histogram(cancel=cancel),
                       self.plots.show_histogram)

    # ------------------------------------------------------------------ the current spectrum

    def current_row(self) -> int:
        """The queue row on screen, −1 when none."""
        row = self.queue_panel.current_view_row()
        return self.model.queue_row(row) if row >= 0 else -1

    def current_id(self) -> str:
        """The spectrum id on screen, '' when none."""
        i = self.current_row()
        return self.model.queue.ids[i] if i >= 0 else ""

    def _show(self, queue_row: int):
        if queue_row < 0:
            self.viewer.show_record(None)
            return
        record = self.workspace.record(self.model.queue, queue_row)
        self.viewer.show_record(record)
        self.viewer.show_known(self.known.describe(record.spectrum_id))
        if self.viewer.expects_original():
            self._original_timer.start()

    def _request_original(self):
        if not self.viewer.expects_original():
            return
        original = self.loader.request(self.viewer.record.source)
        if original is not None:
            self.viewer.set_original(original)

    def _original_loaded(self, _path, original):
        self.viewer.set_original(original)

    def _original_failed(self, path, message):
        self.viewer.original_failed(path, message)

    def _original_toggled(self, on: bool):
        self.preferences.show_original = on
        self._request_original()

    def go_to(self, spectrum_id: str):
        """Show a spectrum: its row when listed (turning the "new objects only"
        filter off when it hides it), else a search list holding it."""
        if self.model.queue.positions(spectrum_id):
            if not self._select(spectrum_id):
                self.queue_panel.new_only.setChecked(False)  # asked for by name
                self._select(spectrum_id)
            return
        workspace = self.workspace
        self.start_job("queue", "Finding the spectrum",
                       lambda progress, cancel: workspace.search(spectrum_id, cancel=cancel),
                       self._found)

    def _found(self, queue: Queue):
        self.show_queue(queue)
        if self.model.rowCount():
            self.queue_panel.select_view_row(0)

    def move(self, step: int):
        """Go ``step`` rows down the list (up when negative)."""
        n = self.model.rowCount()
        if n == 0:
            return
        row = self.queue_panel.current_view_row()
        target = min(max(row + step, 0), n - 1) if row >= 0 else 0
        if target == row:
            self.show_message("end of the list" if step > 0 else "start of the list")
            return
        self.queue_panel.select_view_row(target)

    def _next_unanswered(self, row: int) -> int:
        """The first view row after ``row`` without an answer, or −1."""
        answered, order = self.model.queue.answered, self.model.order
        for r in range(row + 1, min(row + 65, len(order))):  # usually the very next one
            if not answered[order[r]]:
                return r
        rest = ~answered[order[row + 65:]]
        return row + 65 + int(rest.argmax()) if rest.any() else -1

    # ------------------------------------------------------------------ labelling

    def label_current(self, class_name: str):
        """Label the spectrum on screen and show the next one.

        The label is committed to the session's log (source ``viewer``)
        before the next spectrum appears; a refused label is explained in
        the status bar and the spectrum stays.
        """
        i = self.current_row()
        if i < 0:
            self.show_message("no spectrum selected", error=True)
            return
        queue = self.model.queue
        spectrum_id = queue.ids[i]
        try:
            entry = self.workspace.label(spectrum_id, class_name, source=VIEWER_SOURCE,
                                       sender=self.preferences.user,
                                       iteration=queue.iteration or None)
        except LabelRefused as exc:
            self.show_message(f"label refused: {exc.reason}", error=True)
            return
        self._undo.append(spectrum_id)
        self.show_message(f"{spectrum_id}: {entry.label or entry.action} "
                          f"(#{entry.seq}, {entry.purpose})")
        row = self.queue_panel.current_view_row()
        following = self._next_unanswered(row) if self.preferences.skip_answered else -1
        if following < 0:
            following = row + 1
        if following < self.model.rowCount():
            self._answer_changed(spectrum_id, entry, reshow=False)
            self.queue_panel.select_view_row(following)
        else:
            self._answer_changed(spectrum_id, entry)  # the last row: show its new answer
            self.show_message("end of the list")

    def undo(self):
        """Take back the latest answer given in this window and go back to it."""
        while self._undo:
            spectrum_id = self._undo.pop()
            entry = self.workspace.undo(source=VIEWER_SOURCE, sender=self.preferences.user,
                                      spectrum_id=spectrum_id)
            if entry is None:
                continue  # already taken back elsewhere
            in_force = self.workspace.entries(spectrum_id, include_undone=False)
            self._answer_changed(spectrum_id, in_force[-1] if in_force else None)
            self._select(spectrum_id)
            self.show_message(f"undone: answer #{entry.undoes} for {spectrum_id}")
            return
        self.show_message("nothing to undo from this window", error=True)

    def apply_answers(self, entries):
        """Show answers that arrived through another door (SAMP, ...).

        Parameters
        ----------
        entries : iterable of Entry
            Log entries just committed (labels, skips or undos).
        """
        for entry in entries:
            in_force = entry
            if entry.action == "undo":  # the answer before the undone one is back
                rest = self.workspace.entries(entry.spectrum_id, include_undone=False)
                in_force = rest[-1] if rest else None
            self._answer_changed(entry.spectrum_id, in_force)

    def poll_log(self):
        """Look for answers another process committed (the CLI, a headless
        SAMP bridge); the workspace announces them as events."""
        if not self._closed:
            self.workspace.poll_labels()

    def _labels_changed(self, event):
        """Show answers given through any door but this window's own keys
        (those are shown as they are given)."""
        entries = [e for e in event.entries if not (event.here and e.source == VIEWER_SOURCE)]
        if entries:
            self.apply_answers(entries)

    def _answer_changed(self, spectrum_id: str, entry: Entry | None, reshow: bool = True):
        rows = self.model.queue.set_answer(spectrum_id, entry)
        self.model.answer_changed(rows)
        self._update_remaining()
        if reshow and self.current_id() == spectrum_id:
            self._show(self.current_row())  # its history changed
        self.schedule_summary()

    def _update_remaining(self):
        self.queue_panel.set_remaining(*self.model.queue.remaining())

    # ------------------------------------------------------------------ the loop

    def iterate(self):
        """Start one iteration (train, score, choose) in the background."""
        if "iterate" in self._jobs:
            self.show_message("an iteration is already running")
            return
        settings = self.preferences.iterate()
        options = settings.options(self.strategy.currentData())
        job = self.start_job("iterate", "Iteration",
                             iterate_task(self.workspace, options, *settings.cluster()),
                             self._iteration_done, self.progress.report,
                             self._iteration_cancelled)
        if job is None:
            return
        self.progress.start(f"iteration {self.workspace.iteration + 1}: starting")
        self.iterate_action.setEnabled(False)
        self.cancel_action.setEnabled(True)
        self._tick_timer.start()

    def cancel_iteration(self):
        """Stop the running iteration; the previous one stays in force."""
        job = self._jobs.get("iterate")
        if job is not None:
            job.cancel()
            self.progress.cancel.setEnabled(False)
            self.progress.text.setText("cancelling…")

    def _tick(self):
        running = False
        for key, widget in (("iterate", self.progress), ("crossmatch", self.crossmatch_progress)):
            job = self._jobs.get(key)
            if job is not None:
                widget.tick(job.elapsed())
                running = True
        if not running:
            self._tick_timer.stop()

    def _iteration_ended(self):
        self.progress.hide()
        self.iterate_action.setEnabled(True)
        self.cancel_action.setEnabled(False)

    def _iteration_done(self, result):
        self._iteration_ended()
        self.show_message(f"iteration {result.iteration} is ready: {len(result.query)} "
                          f"queried, {len(result.estimate)} in the estimate sample")
        self._list = (BATCH, "")
        self.refresh_all()
        self.sigIterationDone.emit(result.iteration)

    def _iteration_cancelled(self):
        self._iteration_ended()
        self.show_message(f"iteration cancelled: iteration {self.workspace.iteration} "
                          "stays in force")

    # ------------------------------------------------------------------ catalogues

    def crossmatch(self):
        """Ask which catalogues to match the candidates with, and match them."""
        dialog = CrossmatchDialog(self.known.catalogues, self)
        if dialog.exec_() == QtWidgets.QDialog.Accepted:
            self.start_crossmatch(dialog.catalogues, dialog.refresh)

    def start_crossmatch(self, catalogues=None, refresh: bool = False) -> Job | None:
        """Match the candidates with catalogues in the background.

        Parameters
        ----------
        catalogues : list of vo_al.catalogues.Catalogue, optional
            Default: those matched before.
        refresh : bool
            Match every candidate again, not only those not matched yet.

        Returns
        -------
        Job or None
            None when a cross-match runs already (or the window is closed).
        """
        if "crossmatch" in self._jobs:
            self.show_message("a cross-match is already running")
            return None
        self.crossmatch_progress.start("cross-match: reading the candidates")
        self.crossmatch_action.setEnabled(False)
        self._tick_timer.start()
        return self.start_job("crossmatch", "Cross-match",
                              crossmatch_task(self.workspace, catalogues, refresh),
                              self._crossmatch_done, self.crossmatch_progress.report,
                              self._crossmatch_cancelled)

    def cancel_crossmatch(self):
        """Stop the running cross-match; the matches stored so far stay."""
        job = self._jobs.get("crossmatch")
        if job is not None:
            job.cancel()
            self.crossmatch_progress.cancel.setEnabled(False)
            self.crossmatch_progress.text.setText("cancelling…")

    def _crossmatch_ended(self):
        self.crossmatch_progress.hide()
        self.crossmatch_action.setEnabled(True)
        self.refresh_matches()
        if self.report_dialog is not None and self.report_dialog.isVisible():
            self.refresh_report()

    def _crossmatch_done(self, summaries):
        self._crossmatch_ended()
        self.show_message(describe_summaries(summaries))

    def _crossmatch_cancelled(self):
        self._crossmatch_ended()
        self.show_message("cross-match cancelled: the matches stored before it stay")

    def refresh_matches(self):
        """Read what the spectra are known as, in the background."""
        workspace = self.workspace
        self.start_job("matches", "Reading the cross-matches",
                       lambda progress, cancel: KnownAs.read(workspace), self._show_matches)

    def _show_matches(self, known: KnownAs):
        self.known = known
        self.queue_panel.set_new_only_available(bool(known.catalogues))
        if self.queue_panel.new_only.isChecked():
            self._new_only_toggled(True)
        if self.viewer.record is not None:
            self.viewer.show_known(known.describe(self.viewer.record.spectrum_id))

    def show_report(self):
        """Show the discovery report (computed in the background)."""
        if self.report_dialog is None:
            self.report_dialog = ReportDialog(self)
        self.report_dialog.show()
        self.report_dialog.raise_()
        self.refresh_report()

    def refresh_report(self):
        """Recompute the discovery report of the latest iteration."""
        workspace, dialog = self.workspace, self.report_dialog
        self.start_job("report", "Discovery report",
                       lambda progress, cancel: workspace.report(), dialog.show_report)

    def edit_iterate_options(self):
        """Edit the training and scoring options of "Iterate"."""
        dialog = IterateOptionsDialog(self.preferences.iterate(), self)
        if dialog.exec_() == QtWidgets.QDialog.Accepted:
            self.preferences.set_iterate(dialog.options())

    def edit_preferences(self):
        """Edit the preferences."""
        PreferencesDialog(self.preferences, self).exec_()

    # ------------------------------------------------------------------ export

    def export(self):
        """Write the candidate table of the latest iteration to a file."""
        if self.workspace.iteration < 1:
            self.show_message("nothing to export before the first iteration", error=True)
            return
        filters = "VOTable (*.vot *.xml);;FITS (*.fits);;CSV (*.csv)"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export candidates", str(self.workspace.directory / "candidates.vot"), filters)
        if path:
            self.export_to(path)

    def export_to(self, path: str):
        """Write the candidate table to ``path`` in the background."""
        if not any(path.lower().endswith(s) for s in FORMATS):
            path += ".vot"
        workspace = self.workspace

        def task(progress, cancel):
            return workspace.export(path)

        self.start_job("export", "Export", task,
                       lambda n: self.show_message(f"wrote {n:,} candidates to {path}"))

    # ------------------------------------------------------------------ closing

    def closeEvent(self, event):  # noqa: N802 (Qt API)
        """Save the layout and stop the threads, then unregister from SAMP in a
        worker (the window hides meanwhile: a hub never holds it) and close
        the session, once."""
        if not self._closed:
            self._closed = True
            self._stop_work()
            if self.samp.shutdown(self._samp_closed):
                event.ignore()
                self.hide()
                return
        if not self.released:
            self._release()
        super().closeEvent(event)

    def _stop_work(self):
        for timer in (self._summary_timer, self._original_timer, self._tick_timer,
                      self._message_timer, self._log_timer):
            timer.stop()
        self.preferences.set_geometry(self.saveGeometry(), self.saveState())
        self.preferences.last_session = str(self.workspace.directory)
        self.preferences.settings.sync()
        for job in list(self._threads):
            job.cancel()
        for job in list(self._threads):
            job.wait()
        self._jobs.clear()
        self._threads.clear()
        self.loader.stop()

    def _samp_closed(self):
        self._release()
        self.close()

    def _release(self):
        self.events.close()
        self.workspace.close()
        self.released = True
