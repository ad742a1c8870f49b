"""Small dialogs: start a session, the "Iterate" options, preferences, a
cross-match and the discovery report."""

from __future__ import annotations

from pathlib import Path

from PyQt5 import QtCore, QtWidgets

from vo_al.catalogues import (DEFAULT_RADIUS_ARCSEC, VIZIER_TAP, CrossmatchError,
                              file_catalogue, simbad, tap_catalogue)
from vo_al.workspace import SessionConfig, SessionError, Workspace

from .errors import show_error
from .settings import IterateSettings, Preferences

__all__ = ["SessionDialog", "IterateOptionsDialog", "PreferencesDialog", "CrossmatchDialog",
           "ReportDialog", "choose_session"]

_H5_FILTER = "HDF5 pools (*.h5 *.hdf5);;All files (*)"
_SCHEDULER_FILTER = "Dask scheduler files (*.json);;All files (*)"
_TABLE_FILTER = "Tables (*.vot *.xml *.fits *.fit *.csv *.ecsv);;All files (*)"
_ERROR_STYLE = "color: #b52b27"
#: ``--dask local:N``: N worker processes started by vo-al (docs/cluster.md).
_LOCAL = "local:"


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
    """A line edit with a "Browse…" button (for a folder, or a file of ``file_filter``)."""

    def __init__(self, caption: str, directory: bool, parent=None,
                 file_filter: str = _H5_FILTER):
        super().__init__(parent)
        self.edit = QtWidgets.QLineEdit()
        self._filter = file_filter
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
            path = QtWidgets.QFileDialog.getOpenFileName(self, caption, "", self._filter)[0]
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
        self._build_dask(options)
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
        form.addRow(QtWidgets.QLabel("<b>Dask cluster</b> (scoring; docs/cluster.md)"))
        form.addRow("Score on", self.dask)
        form.addRow("Worker processes", self.dask_workers)
        form.addRow("Scheduler address", self.dask_address)
        form.addRow("Scheduler file", self.dask_file)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok
                                             | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _build_dask(self, options: IterateSettings):
        """The cluster choice: none, ``local:N``, an address or a scheduler file."""
        local = options.dask.startswith(_LOCAL)
        kind = ("local" if local else "address" if options.dask
                else "file" if options.dask_scheduler_file else "")
        self.dask = _combo([("this process (no cluster)", ""),
                            ("a local cluster started for the iteration", "local"),
                            ("a running scheduler, by address", "address"),
                            ("a running scheduler, by its scheduler file", "file")], kind)
        workers = options.dask[len(_LOCAL):] if local else ""
        self.dask_workers = _spin(1, 1024, int(workers) if workers.isdigit() else 2)
        self.dask_address = QtWidgets.QLineEdit("" if local else options.dask)
        self.dask_address.setPlaceholderText("tcp://host:8786")
        self.dask_file = _PathField("The scheduler file (dask scheduler --scheduler-file)",
                                    False, file_filter=_SCHEDULER_FILTER)
        self.dask_file.edit.setText(options.dask_scheduler_file)
        self.dask.currentIndexChanged.connect(self._dask_kind_changed)
        self._dask_kind_changed()

    def _dask_kind_changed(self):
        kind = self.dask.currentData()
        self.dask_workers.setEnabled(kind == "local")
        self.dask_address.setEnabled(kind == "address")
        self.dask_file.setEnabled(kind == "file")

    def _cluster(self) -> dict:
        """``dask`` and ``dask_scheduler_file`` as chosen."""
        kind = self.dask.currentData()
        if kind == "local":
            return {"dask": f"{_LOCAL}{self.dask_workers.value()}"}
        if kind == "address":
            return {"dask": self.dask_address.text().strip()}
        if kind == "file":
            return {"dask_scheduler_file": self.dask_file.text()}
        return {}

    def options(self) -> IterateSettings:
        """The options as edited."""
        return IterateSettings(
            query_size=self.query_size.value(), estimate_size=self.estimate_size.value(),
            mode=self.mode.currentData(), max_epochs=self.max_epochs.value(),
            patience=self.patience.value(), diversity=self.diversity.currentData(),
            mc_samples=self.mc_samples.value(), precision=self.precision.currentData(),
            batch_size=self.batch_size.value(), **self._cluster())


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


class CrossmatchDialog(QtWidgets.QDialog):
    """Choose the catalogues to match the candidates with.

    After ``exec_()`` returns ``Accepted``, :attr:`catalogues` holds them
    (None: the catalogues matched before) and :attr:`refresh` says whether
    every candidate is matched again.

    Parameters
    ----------
    remembered : list of vo_al.catalogues.Catalogue
        The catalogues matched before (offered first when there are some).
    parent : QWidget, optional
    """

    def __init__(self, remembered, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Cross-match candidates")
        self.catalogues = None
        self.refresh = False
        again = ", ".join(f"{c.name} ({c.radius_arcsec:g}″)" for c in remembered)
        sources = [("SIMBAD", "simbad"), ("a table of a TAP service (VizieR, …)", "tap"),
                   ("a local table file", "file")]
        if remembered:
            sources.insert(0, (f"the catalogues matched before: {again}", "again"))
        self.source = _combo(sources, sources[0][1])
        self.url = QtWidgets.QLineEdit()
        self.url.setPlaceholderText(VIZIER_TAP)
        self.table = QtWidgets.QLineEdit()
        self.table.setPlaceholderText("J/ApJS/259/38/table1")
        self.file = _PathField("A catalogue table (VOTable, FITS, CSV, ECSV)", False,
                               file_filter=_TABLE_FILTER)
        self.name = QtWidgets.QLineEdit()
        self.name.setPlaceholderText("from the table or file name")
        self.name.setToolTip("Lower-case letters, digits and _: the prefix of the export's "
                             "columns (NAME_id, …) and the report's key")
        self.radius = QtWidgets.QDoubleSpinBox()
        self.radius.setRange(0.1, 3600.0)
        self.radius.setDecimals(1)
        self.radius.setSuffix(" ″")
        self.radius.setValue(DEFAULT_RADIUS_ARCSEC)
        self.refresh_box = QtWidgets.QCheckBox("match every candidate again, not only the "
                                               "ones not matched yet")
        self.error = QtWidgets.QLabel()
        self.error.setStyleSheet(_ERROR_STYLE)
        self.error.setWordWrap(True)
        form = QtWidgets.QFormLayout(self)
        form.addRow("Catalogue", self.source)
        form.addRow("TAP service URL", self.url)
        form.addRow("TAP table", self.table)
        form.addRow("File", self.file)
        form.addRow("Name", self.name)
        form.addRow("Radius", self.radius)
        form.addRow(self.refresh_box)
        form.addRow(self.error)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok
                                             | QtWidgets.QDialogButtonBox.Cancel)
        buttons.button(QtWidgets.QDialogButtonBox.Ok).setText("Match")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.source.currentIndexChanged.connect(self._source_changed)
        self._source_changed()
        self.resize(620, self.sizeHint().height())

    def _source_changed(self):
        kind = self.source.currentData()
        self.url.setEnabled(kind == "tap")
        self.table.setEnabled(kind == "tap")
        self.file.setEnabled(kind == "file")
        self.name.setEnabled(kind != "again")
        self.radius.setEnabled(kind != "again")
        self.error.setText("")

    def chosen(self):
        """The catalogues as chosen (None: those matched before).

        Raises
        ------
        vo_al.catalogues.CrossmatchError
            When a field is missing or the name is not valid.
        """
        kind = self.source.currentData()
        name, radius = self.name.text().strip(), self.radius.value()
        if kind == "again":
            return None
        if kind == "simbad":
            return [simbad(radius, name=name or "simbad")]
        if kind == "tap":
            if not (self.url.text().strip() and self.table.text().strip()):
                raise CrossmatchError("give the TAP service's URL and the table's name")
            return [tap_catalogue(self.url.text().strip(), self.table.text().strip(),
                                  name or None, radius)]
        if not self.file.text():
            raise CrossmatchError("choose the catalogue's file")
        return [file_catalogue(self.file.text(), name or None, radius)]

    def accept(self):
        """Keep the choice and close, or say in the dialog what is wrong."""
        try:
            self.catalogues = self.chosen()
        except CrossmatchError as exc:
            self.error.setText(str(exc))
            return
        self.refresh = self.refresh_box.isChecked()
        super().accept()


class ReportDialog(QtWidgets.QDialog):
    """The discovery report (:meth:`~vo_al.workspace.Workspace.report`) as a table.

    One row per class and count: the class's candidates in total, the new
    ones, those in each catalogue (with the objects' types), those in
    several and those not matched yet; in spectra and in objects.

    Parameters
    ----------
    parent : QWidget, optional

    Attributes
    ----------
    statement : QLabel
        Which candidates the report counts, and which iteration's model.
    table : QTableWidget
    """

    #: the columns of :attr:`table`
    COLUMNS = ("class", "count", "spectra", "objects", "object types")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Discovery report")
        self.statement = QtWidgets.QLabel()
        self.statement.setWordWrap(True)
        self.statement.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.table = QtWidgets.QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.statement)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(640, 420)

    def show_report(self, report: dict):
        """Fill the table from a report."""
        catalogues = ", ".join(report["catalogues"]) or "none yet (Catalogues → Cross-match…)"
        self.statement.setText(f"Iteration {report['iteration']}. Counted: "
                               f"{report['counted']}. Catalogues: {catalogues}.")
        rows = [row for name, entry in report["classes"].items()
                for row in _report_rows(name, entry)]
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                item = QtWidgets.QTableWidgetItem("" if value is None else str(value))
                if isinstance(value, int):
                    item.setTextAlignment(int(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()


def _report_rows(name: str, entry: dict) -> list[tuple]:
    """``(class, count, spectra, objects, types)`` rows of one class."""
    spectra, objects = entry["spectra"], entry["objects"]
    rows = [(name, "total", spectra["total"], objects["total"], None),
            (name, "new", spectra["new"], objects["new"], None)]
    for catalogue, count in spectra["known"].items():
        types = ", ".join(f"{t} {k}" for t, k in objects["types"][catalogue].items())
        rows.append((name, f"in {catalogue}", count, objects["known"][catalogue], types))
    if len(spectra["known"]) > 1:
        rows.append((name, "in several", spectra["several"], objects["several"], None))
    rows.append((name, "not matched yet", entry["not_matched"], None, None))
    return rows
