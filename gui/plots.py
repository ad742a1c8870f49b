"""The session's plots: the learning curve (estimated precision per class
with its 95 % interval), the pool's predicted class counts per iteration,
and the histogram of the latest model's uncertainty over the pool.

Each class keeps one colour in every plot; one key above the plots names
the colours, so no legend box hides a point.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtWidgets

from vo_al.workspace import SessionSummary, UncertaintyHistogram

__all__ = ["PlotsPanel", "IterationAxis", "COLOURS", "OVERALL_COLOUR"]

#: Colour of class ``k`` of the session (cycled).
COLOURS = ("#7f7f7f", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
#: Colour of the overall precision (all interesting classes together).
OVERALL_COLOUR = "#000000"


_TITLE_SIZE = "9pt"


class IterationAxis(pg.AxisItem):
    """An axis of iterations: ticks only at whole numbers.

    pyqtgraph's spacings are 1, 2 or 5 times a power of ten; the levels
    finer than 1 are dropped, and a short range gets a tick per iteration.
    """

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802, N803 (pyqtgraph API)
        """The ``(spacing, offset)`` of each tick level, every spacing a whole number."""
        levels = [(float(round(spacing)), offset)
                  for spacing, offset in super().tickSpacing(minVal, maxVal, size)
                  if spacing > 0.999]
        return levels or [(1.0, 0.0)]


def _plot(left: str, bottom: str, log_y: bool = False,
          iterations: bool = False) -> pg.PlotWidget:
    axes = {"bottom": IterationAxis("bottom")} if iterations else None
    widget = pg.PlotWidget(background="w", axisItems=axes)
    item = widget.getPlotItem()
    item.setLabel("left", left)
    item.setLabel("bottom", bottom)
    item.showGrid(x=True, y=True, alpha=0.15)
    item.setLogMode(y=log_y)
    widget.setMinimumHeight(150)
    return widget


def _key(named: list[tuple[str, str]]) -> str:
    """Each name after a square of its colour."""
    return "&nbsp; ".join(f"<span style='color:{colour}'>■</span>&nbsp;{html.escape(name)}"
                          for name, colour in named)


class PlotsPanel(QtWidgets.QWidget):
    """Three stacked plots, redrawn from :class:`~vo_al.summary.SessionSummary`
    and :class:`~vo_al.summary.UncertaintyHistogram` objects.

    Parameters
    ----------
    parent : QWidget, optional

    Attributes
    ----------
    key : QLabel
        The colour of each class.
    curve, counts, histogram : pyqtgraph.PlotWidget
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.key = QtWidgets.QLabel()
        self.key.setWordWrap(True)
        self.curve = _plot("estimated precision", "iteration", iterations=True)
        self.curve.setTitle("Learning curve (95 % intervals)", size=_TITLE_SIZE)
        self.curve.setYRange(0, 1.05)
        self.counts = _plot("spectra", "iteration", log_y=True, iterations=True)
        self.counts.setTitle("Pool spectra predicted per class", size=_TITLE_SIZE)
        self.histogram = _plot("spectra", "entropy / log C", log_y=True)
        self.histogram.setTitle("Uncertainty (no scores yet)", size=_TITLE_SIZE)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 6, 0)  # the last tick label is not on the edge
        for widget in (self.key, self.curve, self.counts, self.histogram):
            layout.addWidget(widget)

    def show_summary(self, summary: SessionSummary):
        """Redraw the learning curve and the class counts."""
        named = [(name, COLOURS[k % len(COLOURS)]) for k, name in enumerate(summary.class_names)]
        self.key.setText(_key([*named, ("overall (precision)", OVERALL_COLOUR)]))
        self._draw_curve(summary)
        self._draw_counts(summary)

    def _draw_curve(self, summary: SessionSummary):
        item = self.curve.getPlotItem()
        item.clear()
        names = [*summary.interesting, "overall"] if len(summary.interesting) > 1 else ["overall"]
        colours = {name: COLOURS[summary.class_names.index(name) % len(COLOURS)]
                   for name in summary.interesting}
        colours["overall"] = OVERALL_COLOUR
        for k, name in enumerate(names):
            points = [(p["iteration"], p[name]) for p in summary.curve
                      if p[name]["precision"] is not None]
            if not points:
                continue
            offset = 0.08 * (k - (len(names) - 1) / 2)  # side by side, not on top of each other
            x = np.array([i for i, _ in points], float) + offset
            y = np.array([q["precision"] for _, q in points])
            low = np.array([q["low"] for _, q in points])
            high = np.array([q["high"] for _, q in points])
            pen = pg.mkPen(colours[name], width=2)
            item.addItem(pg.ErrorBarItem(x=x, y=y, top=high - y, bottom=y - low, beam=0.12,
                                         pen=pg.mkPen(colours[name])))
            item.plot(x, y, pen=pen, symbol="o", symbolSize=6, symbolBrush=colours[name],
                      symbolPen=None)
        item.setXRange(0.5, max(summary.iteration, 1) + 0.5)
        item.setYRange(0, 1.05)

    def _draw_counts(self, summary: SessionSummary):
        item = self.counts.getPlotItem()
        item.clear()
        x = np.arange(1, len(summary.predicted_counts) + 1, dtype=float)
        for k, name in enumerate(summary.class_names):
            y = np.array([c.get(name, 0) for c in summary.predicted_counts], float)
            y[y <= 0] = np.nan  # no spectra: nothing to draw on a log axis
            colour = COLOURS[k % len(COLOURS)]
            if np.isnan(y).all():
                continue
            item.plot(x, y, pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=5,
                      symbolBrush=colour, symbolPen=None, connect="finite")
        item.setXRange(0.5, max(len(x), 1) + 0.5)

    def show_histogram(self, histogram: UncertaintyHistogram | None):
        """Redraw the uncertainty histogram (None clears it)."""
        item = self.histogram.getPlotItem()
        item.clear()
        if histogram is None:
            item.setTitle("Uncertainty (no scores yet)", size=_TITLE_SIZE)
            return
        item.setTitle(f"Uncertainty, iteration {histogram.iteration} "
                      f"({int(histogram.counts.sum()):,} spectra)", size=_TITLE_SIZE)
        counts = histogram.counts.astype(float)
        counts[counts <= 0] = np.nan  # empty bins: nothing to draw on the log axis
        if np.isnan(counts).all():
            return
        item.plot(histogram.edges, counts, stepMode="center", pen=pg.mkPen("#1f77b4", width=2))
        item.setXRange(0, 1)
