"""Small dialogs: start a session, the "Iterate" options, preferences."""

from __future__ import annotations

from pathlib import Path

from PyQt5 import QtWidgets

from vo_al.workspace import SessionConfig, SessionError, Workspace

from .errors import show_error
from .settings import IterateSettings, Preferences

__all__ = ["SessionDialog", "IterateOptionsDialog", "PreferencesDialog", "choose_session"]

_H5_FILTER = "HDF5 pools (*.h5 *.hdf5);;All files (*)"


def choose_session(parent=None) -> Workspace | None:
    """Ask for an existing session directory and open it (None if cancelled).

    An unreadable directory is reported in a dialog and None returned.
    """
    directory = QtWidgets.QFileDialog.getExistingDirectory(parent, "Open a vo-al session")
    if not directory:
        return None
    try:
        return Workspace.open(directory)
    except SessionError as exc:
        show_error(parent, "Cannot open the session", str(exc))
        return None


class _PathField(QtWidgets.QWidget):
    """A line edit with a "Browse…" button."""

    def __init__(self, caption: str, directory: bool, parent=None):
        super().__init__(parent)
        self.edit = QtWidgets.QLineEdit()
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(lambda: self._browse(caption, directory))
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def _browse(self, caption, directory):
        if directory:
            path = QtWidgets.QFileDialog.getExistingDirectory(self, caption)
        else:
            path = QtWidgets.QFileDialog.getOpenFileName(self, caption, "", _H5_FILTER)[0]
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text().strip()


class SessionDialog(QtWidgets.QDialog):
    """Create a session from a training pool and a pool, or open one.

    After ``exec_()`` returns ``Accepted``, :attr:`workspace` is the open
    session.

    Parameters
    ----------
    preferences : Preferences
        Offers to reopen the last session.
    parent : QWidget, optional
    """

    def __init__(self, preferences: Preferences, parent=None):
        super().__init__(parent)
        self.setWindowTitle("vo-al: start a session")
        self.workspace: Workspace | None = None
        defaults = SessionConfig(train_path="", pool_path="")
        self.directory = _PathField("A new, empty directory for the session", True)
        self.train = _PathField("Training pool (vo-al ingest --labels)", False)
        self.pool = _PathField("Pool to search (vo-al ingest)", False)
        self.classes = QtWidgets.QLineEdit(", ".join(defaults.class_names))
        self.classes.setToolTip("The loop's classes; the first one is 'not interesting'")
        self.query_size = _spin(1, 100000, defaults.query_size)
        self.estimate_size = _spin(0, 100000, defaults.estimate_size)
        form = QtWidgets.QFormLayout()
        form.addRow("Session directory", self.directory)
        form.addRow("Training set", self.train)
        form.addRow("Pool", self.pool)
        form.addRow("Classes", self.classes)
        form.addRow("Query size", self.query_size)
        form.addRow("Estimate sample", self.estimate_size)
        buttons = QtWidgets.QDialogButtonBox()
        create = buttons.addButton("Create", QtWidgets.QDialogButtonBox.AcceptRole)
        create.clicked.connect(self._create)
        existing = buttons.addButton("Open existing…", QtWidgets.QDialogButtonBox.ActionRole)
        existing.clicked.connect(self._open_existing)
        last = preferences.last_session
        if last and Path(last, "config.json").is_file():
            reopen = buttons.addButton(f"Reopen {Path(last).name}",
                                       QtWidgets.QDialogButtonBox.ActionRole)
            reopen.clicked.connect(lambda: self._open(last))
        buttons.addButton(QtWidgets.QDialogButtonBox.Cancel).clicked.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel(
            "A session needs a labelled training pool and the pool to search, both built "
            "with <tt>vo-al ingest</tt> using the same settings."))
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(640, self.sizeHint().height())

    def _create(self):
        classes = [c.strip() for c in self.classes.text().split(",") if c.strip()]
        try:
            self.workspace = Workspace.create(
                self.directory.text(), self.train.text(), self.pool.text(),
                class_names=classes, query_size=self.query_size.value(),
                estimate_size=self.estimate_size.value())
        except (SessionError, ValueError, OSError) as exc:
            show_error(self, "Cannot create the session", str(exc))
            return
        self.accept()

    def _open_existing(self):
        workspace = choose_session(self)
        if workspace is not None:
            self.workspace = workspace
            self.accept()

    def _open(self, path):
        try:
            self.workspace = Workspace.open(path)
        except SessionError as exc:
            show_error(self, "Cannot open the session", str(exc))
            return
        self.accept()


def _spin(low: int, high: int, value: int) -> QtWidgets.QSpinBox:
    spin = QtWidgets.QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin


def _combo(items, current: str) -> QtWidgets.QComboBox:
    combo = QtWidgets.QComboBox()
    for text, data in items:
        combo.addItem(text, data)
    combo.setCurrentIndex(max(0, combo.findData(current)))
    return combo


class IterateOptionsDialog(QtWidgets.QDialog):
    """Edit :class:`~vo_al.gui.settings.IterateSettings` (train and score choices).

    Parameters
    ----------
    options : IterateSettings
    parent : QWidget, optional
    """

    def __init__(self, options: IterateSettings, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Iterate options")
        self.mode = _combo([("retrain from scratch (the paper)", "scratch"),
                            ("warm start from the last weights", "warm"),
                            ("fine-tune the dense head only", "head")], options.mode)
        self.max_epochs = _spin(1, 10000, options.max_epochs)
        self.patience = _spin(1, 1000, options.patience)
        self.query_size = _spin(0, 100000, options.query_size)
        self.query_size.setSpecialValueText("the session's")
        self.estimate_size = _spin(0, 100000, options.estimate_size)
        self.estimate_size.setSpecialValueText("the session's")
        self.diversity = _combo([("none", ""), ("k-means++", "kmeans++"),
                                 ("core-set", "coreset")], options.diversity)
        self.mc_samples = _spin(-1, 1000, options.mc_samples)
        self.mc_samples.setSpecialValueText("default (20 for BALD)")
        self.precision = _combo([("auto", "auto"), ("fp32", "fp32"), ("bf16", "bf16")],
                                options.precision)
        self.batch_size = _spin(1, 1 << 20, options.batch_size)
        form = QtWidgets.QFormLayout(self)
        form.addRow(QtWidgets.QLabel("<b>Training</b>"))
        form.addRow("Mode", self.mode)
        form.addRow("Max epochs", self.max_epochs)
        form.addRow("Patience", self.patience)
        form.addRow(QtWidgets.QLabel("<b>Scoring and the next batch</b>"))
        form.addRow("Query size", self.query_size)
        form.addRow("Estimate sample", self.estimate_size)
        form.addRow("Diversity", self.diversity)
        form.addRow("MC-dropout samples", self.mc_samples)
        form.addRow("Precision", self.precision)
        form.addRow("Batch size", self.batch_size)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok
                                             | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def options(self) -> IterateSettings:
        """The options as edited."""
        return IterateSettings(
            query_size=self.query_size.value(), estimate_size=self.estimate_size.value(),
            mode=self.mode.currentData(), max_epochs=self.max_epochs.value(),
            patience=self.patience.value(), diversity=self.diversity.currentData(),
            mc_samples=self.mc_samples.value(), precision=self.precision.currentData(),
            batch_size=self.batch_size.value())


class PreferencesDialog(QtWidgets.QDialog):
    """Edit the :class:`~vo_al.gui.settings.Preferences` of the viewer and queue.

    Parameters
    ----------
    preferences : Preferences
        Written when the dialog is accepted.
    parent : QWidget, optional
    """

    def __init__(self, preferences: Preferences, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self._preferences = preferences
        self.user = QtWidgets.QLineEdit(preferences.user)
        self.user.setToolTip("Recorded as the sender of every label given in this window")
        self.skip_answered = QtWidgets.QCheckBox("After a label, jump over answered spectra")
        self.skip_answered.setChecked(preferences.skip_answered)
        self.show_original = QtWidgets.QCheckBox("Show the original spectrum by default")
        self.show_original.setChecked(preferences.show_original)
        self.candidates = _spin(10, 10_000_000, preferences.candidates)
        form = QtWidgets.QFormLayout(self)
        form.addRow("Your name", self.user)
        form.addRow(self.skip_answered)
        form.addRow(self.show_original)
        form.addRow("Candidate list length", self.candidates)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok
                                             | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self):
        """Store the preferences and close."""
        self._preferences.user = self.user.text()
        self._preferences.skip_answered = self.skip_answered.isChecked()
        self._preferences.show_original = self.show_original.isChecked()
        self._preferences.candidates = self.candidates.value()
        super().accept()
