"""The spectrum viewer: a pyqtgraph plot of the window the network sees,
optionally the original spectrum around it, the marked lines, the model's
opinion beside a button per answer (with its key) and the spectrum's label
history.

The widget only draws :class:`vo_al.records.SpectrumRecord` and
:class:`vo_al.records.OriginalSpectrum` objects it is handed; reading and
labelling happen in the core, called by the main window.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from vo_al.workspace import (OriginalSpectrum, PreprocessConfig, SpectrumRecord,
                             describe_entry, sexagesimal)

__all__ = ["SpectrumViewer", "ORIGINAL_MARGIN"]

#: Å shown on each side of the window when the original spectrum is on.
ORIGINAL_MARGIN = 120.0

_WINDOW_PEN = pg.mkPen("#1f4e9c", width=2)
_ORIGINAL_PEN = pg.mkPen("#8c8c8c", width=1)
_LINE_PEN = pg.mkPen("#d9534f", width=1, style=QtCore.Qt.DashLine)
_BAR_STEPS = 1000
_FLUX_RANGE = (-1.12, 1.12)


class SpectrumViewer(QtWidgets.QWidget):
    """Plot and facts of the current spectrum.

    Parameters
    ----------
    parent : QWidget, optional

    Attributes
    ----------
    plot : pyqtgraph.PlotWidget
        Takes the keyboard focus when clicked, so the label keys work there.
    record : SpectrumRecord or None
        What is shown.
    answer_buttons : list of QPushButton
        One per class, then the skip, each named with its key ("2  emission").
    bars : list of QProgressBar
        The model's probability of each class, then the uncertainty.
    known : QLabel
        What the spectrum is known as in the matched catalogues.
    """

    #: the "original spectrum" toggle changed
    sigOriginalToggled = QtCore.pyqtSignal(bool)
    #: an answer button was clicked (a class name or the skip name)
    sigLabel = QtCore.pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.record: SpectrumRecord | None = None
        self._config = PreprocessConfig()
        self._build()

    # ------------------------------------------------------------------ layout

    def _build(self):
        self.title = QtWidgets.QLabel("No spectrum")
        self.title.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.title.setFont(font)
        self.original_box = QtWidgets.QCheckBox("Original spectrum")
        self.original_box.setToolTip("Overlay the original file, scaled like the window, "
                                     f"with {ORIGINAL_MARGIN:.0f} Å around it (O)")
        self.original_box.setFocusPolicy(QtCore.Qt.NoFocus)
        self.original_box.toggled.connect(self._original_toggled)
        self.reset_button = QtWidgets.QPushButton("Reset view")
        self.reset_button.setToolTip("Back to the default range (R); drag to pan, "
                                     "wheel to zoom, right-drag to stretch")
        self.reset_button.setFocusPolicy(QtCore.Qt.NoFocus)
        self.reset_button.clicked.connect(self.reset_view)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.original_box)
        top.addWidget(self.reset_button)

        self.setFocusPolicy(QtCore.Qt.ClickFocus)  # a click here takes the keys from a text field
        self.plot = pg.PlotWidget(background="w")
        self.plot.setFocusPolicy(QtCore.Qt.ClickFocus)
        item = self.plot.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setLabel("left", "scaled flux")
        item.getViewBox().disableAutoRange()  # a calm, fixed frame; see reset_view
        item.addLegend(offset=(-10, 10))
        self.window_region = pg.LinearRegionItem(movable=False, brush=(31, 78, 156, 18),
                                                 pen=pg.mkPen(None))
        self.window_region.setZValue(-20)
        item.addItem(self.window_region)
        self.original_curve = item.plot(pen=_ORIGINAL_PEN, name="original", connect="finite")
        self.original_curve.setZValue(-10)
        self.window_curve = item.plot(pen=_WINDOW_PEN, name="network input")
        self._lines: list[pg.InfiniteLine] = []

        # fixed heights: a new spectrum never re-lays out (and repaints) the plot.
        # The facts take the whole width; the answers and the model's opinion
        # sit beside the history, below them.
        lines = self.fontMetrics().lineSpacing()
        self.identity = _fact_label(2 * lines + 4)
        self.known = _fact_label(lines + 4)
        self.original_note = _fact_label(lines + 4)
        self.history = QtWidgets.QLabel()
        self.history.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.history.setAlignment(QtCore.Qt.AlignTop | QtCore.Qt.AlignLeft)
        self.history.setWordWrap(True)
        self.history_area = QtWidgets.QScrollArea()
        self.history_area.setWidget(self.history)
        self.history_area.setWidgetResizable(True)
        self.history_area.setFrameShape(QtWidgets.QFrame.NoFrame)
        self.history_area.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.history_area.setFocusPolicy(QtCore.Qt.NoFocus)
        self._history_height = 5 * lines + 8
        self.answer_buttons: list[QtWidgets.QPushButton] = []
        self.bars: list[QtWidgets.QProgressBar] = []  # one per class, then uncertainty
        self.answers = QtWidgets.QWidget()
        self.answers.setSizePolicy(QtWidgets.QSizePolicy.Fixed, QtWidgets.QSizePolicy.Fixed)
        self.answers_layout = QtWidgets.QGridLayout(self.answers)
        self.answers_layout.setContentsMargins(0, 0, 0, 0)
        self.answers_layout.setVerticalSpacing(2)
        for column, text in enumerate(("your answer (key)", "the model's probability")):
            self.answers_layout.addWidget(_column_title(text), 0, column)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.answers, 0, QtCore.Qt.AlignTop)
        bottom.addSpacing(8)
        bottom.addWidget(self.history_area, 1)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.identity)
        layout.addWidget(self.known)
        layout.addWidget(self.original_note)
        layout.addLayout(bottom)

    def configure(self, config: PreprocessConfig, lines: dict[str, float], class_names,
                  skip_name: str = "skip"):
        """Set the pool's window, medium, marked lines and answers.

        Parameters
        ----------
        config : PreprocessConfig
        lines : dict
            Name → wavelength in the pool's medium.
        class_names : list of str
            The session's classes: keys 1 … 9 label the first nine.
        skip_name : str
            The "unsure" answer (key S).
        """
        self._config = config
        medium = "vacuum" if config.vacuum else "air"
        self.plot.getPlotItem().setLabel("bottom", f"wavelength (Å, {medium})")
        self.window_region.setRegion((config.wave_min, config.wave_max))
        for line in self._lines:
            self.plot.removeItem(line)
        self._lines = [pg.InfiniteLine(w, angle=90, pen=_LINE_PEN, movable=False, label=name,
                                       labelOpts={"position": 0.93, "color": "#b52b27"})
                       for name, w in lines.items()]
        for line in self._lines:
            self.plot.addItem(line)
        self._build_answers(list(class_names), skip_name)
        self.reset_view()

    def _build_answers(self, class_names: list[str], skip_name: str):
        """A button per answer, named with its key, beside the model's opinion."""
        for widget in [*self.answer_buttons, *self.bars]:
            self.answers_layout.removeWidget(widget)
            widget.deleteLater()
        keys = [str(k + 1) if k < 9 else "" for k in range(len(class_names))] + ["S"]
        names = [*class_names, skip_name]
        tips = [f"Label the spectrum as {name}" for name in class_names]
        tips.append("Record that you are unsure; never trained on")
        self.answer_buttons = [_answer_button(key, name, tip)
                               for key, name, tip in zip(keys, names, tips)]
        self.bars = [_bar(f"the model's probability of {name}") for name in class_names]
        self.bars.append(_bar("the model's uncertainty: entropy / log C, 0 = sure, 1 = no idea"))
        for row, (name, button, bar) in enumerate(zip(names, self.answer_buttons, self.bars),
                                                  start=1):
            button.clicked.connect(lambda _=False, n=name: self.sigLabel.emit(n))
            self.answers_layout.addWidget(button, row, 0)
            self.answers_layout.addWidget(bar, row, 1)
        self.answers.adjustSize()
        self.history_area.setFixedHeight(max(self._history_height,
                                             self.answers.sizeHint().height()))

    # ------------------------------------------------------------------ showing

    def show_record(self, record: SpectrumRecord | None):
        """Draw a spectrum (None clears the viewer)."""
        self.record = record
        self.original_curve.setData([], [])
        self.original_note.setText("")
        if record is None:
            self.title.setText("No spectrum")
            self.window_curve.setData([], [])
            self.identity.setText("")
            self.known.setText("")
            self.history.setText("")
            for bar in self.bars:
                _set_bar(bar, math.nan, "")
            return
        self.window_curve.setData(record.wavelength, record.flux)
        self.title.setText(html.escape(record.designation or record.spectrum_id))
        coordinates = sexagesimal(record.ra, record.dec)
        position = ("position unknown" if not coordinates else
                    f"ra, dec {record.ra:.5f} {record.dec:+.5f} · {coordinates}")
        self.identity.setText(
            f"<b>id</b> {html.escape(record.spectrum_id)} · <b>list</b> {record.kind}"
            f" (row {record.index + 1})<br>{position}")
        self.identity.setToolTip(self.identity.text())
        prefixes = [""] * len(record.probs) + ["uncertainty "]
        for value, bar, prefix in zip([*record.probs, record.uncertainty], self.bars, prefixes):
            value = float(value)
            _set_bar(bar, value, "not scored" if math.isnan(value) else f"{prefix}{value:.3f}")
        self.history.setText(_history_html(record))

    def show_known(self, text: str):
        """Say what the spectrum is known as in the matched catalogues
        (rich text; '' says nothing)."""
        self.known.setText(text)
        self.known.setToolTip(text)

    def expects_original(self) -> bool:
        """Whether the original spectrum is wanted for the current record."""
        return self.original_box.isChecked() and self.record is not None

    def set_original(self, original: OriginalSpectrum):
        """Draw the original spectrum, if it belongs to the current record."""
        if self.record is None or original.path != _normal(self.record.source):
            return
        self.original_curve.setData(original.wavelength, original.flux)
        self.original_note.setText(f"original: {html.escape(original.name)}")
        self.original_note.setToolTip(original.path)

    def original_failed(self, path: str, message: str):
        """Say why the original spectrum cannot be shown."""
        if self.record is not None and path == _normal(self.record.source):
            self.original_note.setText(f"<span style='color:#b52b27'>original spectrum "
                                       f"unavailable: {html.escape(message)}</span>")

    def reset_view(self):
        """The default range: the window (with a margin when the original is on)
        and the scaled flux range, −1 to 1.

        The range stays as the user zoomed it from one spectrum to the next
        (every window is scaled to [−1, 1]); pyqtgraph's "A" button fits
        it to the data."""
        margin = ORIGINAL_MARGIN if self.original_box.isChecked() else 0.0
        self.plot.getPlotItem().getViewBox().setRange(
            xRange=(self._config.wave_min - margin, self._config.wave_max + margin),
            yRange=_FLUX_RANGE, padding=0.0)

    def _original_toggled(self, on: bool):
        if not on:
            self.original_curve.setData([], [])
            self.original_note.setText("")
        self.reset_view()
        self.sigOriginalToggled.emit(on)


def _normal(path: str) -> str:
    return str(Path(path))


def _fact_label(height: int) -> QtWidgets.QLabel:
    """A selectable line of facts of fixed height, as wide as the viewer."""
    label = QtWidgets.QLabel()
    label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
    label.setFixedHeight(height)
    label.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Fixed)
    return label


def _column_title(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setStyleSheet("color: #666666")
    return label


def _answer_button(key: str, name: str, tip: str) -> QtWidgets.QPushButton:
    """An answer's button, its key first ("2  emission"); it never takes the keyboard."""
    text = name.replace("&", "&&")  # no mnemonic: the keys are 1 … 9 and S
    button = QtWidgets.QPushButton(f"{key}  {text}" if key else text)
    button.setToolTip(f"{tip} (key {key})" if key else tip)
    button.setFocusPolicy(QtCore.Qt.NoFocus)
    button.setStyleSheet("text-align: left; padding: 2px 8px")
    return button


def _bar(tip: str) -> QtWidgets.QProgressBar:
    bar = QtWidgets.QProgressBar()
    bar.setRange(0, _BAR_STEPS)
    bar.setTextVisible(True)
    bar.setMinimumWidth(180)
    bar.setToolTip(tip)
    return bar


def _set_bar(bar: QtWidgets.QProgressBar, value: float, text: str):
    bar.setValue(0 if math.isnan(value) else int(round(np.clip(value, 0, 1) * _BAR_STEPS)))
    bar.setFormat(text)


def _history_html(record: SpectrumRecord) -> str:
    if not record.history:
        return "<i>no earlier answers</i>"
    lines = []
    for entry in record.history:
        text = html.escape(describe_entry(entry, record.skip_name))
        lines.append(f"<s>{text}</s>" if entry.undone else text)
    return "<b>answers</b><br>" + "<br>".join(lines)
