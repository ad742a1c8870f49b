"""The queue table: a ``QAbstractTableModel`` over a :class:`gui.queue.Queue`.

Cells are computed from the queue's numpy arrays when the view asks for
them (only the visible rows), so a list of 100,000 spectra costs no more
than one of 100. Sorting permutes an index array; the queue itself never
moves; rows can be hidden (the "new objects only" filter), which only
shortens that index array.
"""

from __future__ import annotations

import math

import numpy as np
from PyQt5 import QtCore, QtGui

from vo_al.workspace import Queue

__all__ = ["QueueModel", "ANSWERED_BRUSH", "SKIPPED_BRUSH"]

#: Background of rows with a label, and of skipped rows.
ANSWERED_BRUSH = QtGui.QBrush(QtGui.QColor(206, 234, 214))
SKIPPED_BRUSH = QtGui.QBrush(QtGui.QColor(236, 236, 236))

_RIGHT = int(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)


class QueueModel(QtCore.QAbstractTableModel):
    """Table model of a queue; row ``r`` of the view is queue row ``order[r]``.

    Parameters
    ----------
    queue : Queue
    parent : QObject, optional

    Attributes
    ----------
    order : ndarray of int64
        The queue rows shown, in view order (hidden rows left out).
    """

    #: emitted after the queue was replaced (``reset``)
    sigQueueChanged = QtCore.pyqtSignal()

    def __init__(self, queue: Queue, parent=None):
        super().__init__(parent)
        self._set(queue, None)

    def _set(self, queue: Queue, hidden):
        self.queue = queue
        self._columns = queue.columns()
        self._sorted = np.arange(len(queue), dtype=np.int64)
        self._hidden = hidden
        self._arrange()

    def _arrange(self):
        """``order`` and its inverse from the sorted rows and the hidden ones."""
        self.order = (self._sorted if self._hidden is None
                      else self._sorted[~self._hidden[self._sorted]])
        self._view_row = np.full(len(self.queue), -1, dtype=np.int64)
        self._view_row[self.order] = np.arange(len(self.order))

    def reset(self, queue: Queue, hidden=None):
        """Show another queue (unsorted).

        Parameters
        ----------
        queue : Queue
        hidden : ndarray of bool, optional
            Queue rows not to show.
        """
        self.beginResetModel()
        self._set(queue, hidden)
        self.endResetModel()
        self.sigQueueChanged.emit()

    def set_hidden(self, hidden):
        """Hide some queue rows (a bool array), or none (None); the order stays."""
        self.beginResetModel()
        self._hidden = hidden
        self._arrange()
        self.endResetModel()

    # ------------------------------------------------------------ Qt model API

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: N802 (Qt API)
        """Rows shown (0 under a valid parent: the table is flat)."""
        return 0 if parent.isValid() else len(self.order)

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: N802
        """Columns of the queue."""
        return 0 if parent.isValid() else len(self._columns)

    def headerData(self, section, orientation, role=QtCore.Qt.DisplayRole):  # noqa: N802
        """Column headers; row headers are 1-based positions."""
        if role != QtCore.Qt.DisplayRole:
            return None
        if orientation == QtCore.Qt.Horizontal:
            return self._columns[section][1]
        return str(section + 1)

    def data(self, index, role=QtCore.Qt.DisplayRole):
        """Text, alignment, tooltip and row colour of one cell."""
        if not index.isValid():
            return None
        i = int(self.order[index.row()])
        key = self._columns[index.column()][0]
        if role == QtCore.Qt.DisplayRole:
            return _display(self.queue.value(i, key))
        if role == QtCore.Qt.BackgroundRole:
            answer = self.queue.answer[i]
            if answer:
                return SKIPPED_BRUSH if answer == self.queue.skip_name else ANSWERED_BRUSH
            return None
        if role == QtCore.Qt.TextAlignmentRole and isinstance(self.queue.value(i, key), float):
            return _RIGHT
        if role == QtCore.Qt.ToolTipRole and key in ("id", "designation"):
            return f"{self.queue.ids[i]}\n{self.queue.source[i]}"
        return None

    def sort(self, column: int, order=QtCore.Qt.AscendingOrder):
        """Sort by one column (numpy argsort of the whole column); a negative
        column restores the queue's own order."""
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        old_rows = [int(self.order[ix.row()]) for ix in old]
        if column < 0:
            self._sorted = np.arange(len(self.queue), dtype=np.int64)
        else:
            self._sorted = self.queue.sort_order(self._columns[column][0],
                                                 descending=order == QtCore.Qt.DescendingOrder)
        self._arrange()
        self.changePersistentIndexList(
            old, [self.index(int(self._view_row[i]), ix.column()) for i, ix in zip(old_rows, old)])
        self.layoutChanged.emit()

    # ------------------------------------------------------------ queue access

    def queue_row(self, view_row: int) -> int:
        """Queue row shown at ``view_row``."""
        return int(self.order[view_row])

    def view_row(self, queue_row: int) -> int:
        """View row showing ``queue_row``; −1 when it is hidden."""
        return int(self._view_row[queue_row])

    def answer_changed(self, queue_rows):
        """Repaint the given queue rows after their answer changed."""
        last = self.columnCount() - 1
        for r in (self.view_row(i) for i in queue_rows):
            if r >= 0:
                self.dataChanged.emit(self.index(r, 0), self.index(r, last))


def _display(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value)
