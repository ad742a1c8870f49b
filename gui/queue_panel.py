"""The queue panel: which list to show, a search field, the "new objects
only" filter, the table and how many of the batch are left."""

from __future__ import annotations

from PyQt5 import QtCore, QtGui, QtWidgets

from .queue_model import QueueModel

__all__ = ["QueuePanel", "BATCH", "CANDIDATES"]

#: List kinds offered by the panel.
BATCH = "batch"
CANDIDATES = "candidates"

_COLUMN_WIDTHS = {"list": 58, "id": 118, "answer": 78, "predicted": 78, "uncertainty": 78,
                  "by": 90, "designation": 170}


class QueuePanel(QtWidgets.QWidget):
    """The list chooser, the table view and the batch indicator.

    Parameters
    ----------
    model : QueueModel
    parent : QWidget, optional

    Attributes
    ----------
    table : QTableView
    new_only : QCheckBox
        Hide the spectra of objects a matched catalogue knows.
    """

    #: kind (BATCH or CANDIDATES), class name ('' for the batch)
    sigListChosen = QtCore.pyqtSignal(str, str)
    #: text to search for
    sigSearch = QtCore.pyqtSignal(str)
    #: queue row now current (−1: none)
    sigCurrentChanged = QtCore.pyqtSignal(int)
    #: the "new objects only" filter turned on or off
    sigNewOnly = QtCore.pyqtSignal(bool)

    def __init__(self, model: QueueModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.lists = QtWidgets.QComboBox()
        self.lists.setToolTip("What to list: the batch to label, or a candidate list")
        self.lists.setFocusPolicy(QtCore.Qt.NoFocus)
        self.lists.activated.connect(self._list_chosen)
        self.search = QtWidgets.QLineEdit()
        self.search.setPlaceholderText("find id or designation…")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("An id, several ids, or a part of an id or designation; "
                               "Enter searches, Escape goes back to labelling (Ctrl+F)")
        self.search.returnPressed.connect(self._search)
        self.new_only = QtWidgets.QCheckBox("new objects only")
        self.new_only.setFocusPolicy(QtCore.Qt.NoFocus)
        self.new_only.toggled.connect(self.sigNewOnly)
        self.set_new_only_available(False)
        QtWidgets.QShortcut(QtGui.QKeySequence("Escape"), self.search, self.focus_table,
                            context=QtCore.Qt.WidgetShortcut)
        self.table = QtWidgets.QTableView()
        self.table.setModel(model)
        self.table.horizontalHeader().setSortIndicator(-1, QtCore.Qt.AscendingOrder)
        self.table.setSortingEnabled(True)  # the queue's own order until a header is clicked
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(False)
        rows = self.table.verticalHeader()
        rows.setSectionResizeMode(QtWidgets.QHeaderView.Fixed)  # never measures 100,000 rows
        rows.setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        model.sigQueueChanged.connect(self._queue_replaced)  # a filter keeps the sort
        self.left = QtWidgets.QLabel()
        font = self.left.font()
        font.setBold(True)
        self.left.setFont(font)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.lists, 1)
        top.addWidget(self.search, 1)
        top.addWidget(self.new_only)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.left)
        self._queue_replaced()

    def set_lists(self, iteration: int, classes, current=(BATCH, "")):
        """Offer the batch of ``iteration`` and a top list per class.

        Parameters
        ----------
        iteration : int
        classes : list of str
        current : tuple
            ``(kind, class name)`` of the list shown.
        """
        self.lists.clear()
        self.lists.addItem(f"Batch to label (iteration {iteration})", (BATCH, ""))
        for name in classes:
            self.lists.addItem(f"Top {name} (most probable)", (CANDIDATES, name))
        self.lists.setCurrentIndex(max(0, self.list_index(*current)))

    def list_index(self, kind: str, class_name: str = "") -> int:
        """Index of a list in the chooser, −1 when not offered.

        (``QComboBox.findData`` compares Python objects by identity.)
        """
        wanted = (kind, class_name)
        return next((i for i in range(self.lists.count())
                     if tuple(self.lists.itemData(i)) == wanted), -1)

    def set_remaining(self, left: int, total: int):
        """Show how many of the batch are still unanswered."""
        if total == 0:
            self.left.setText("no batch in this list")
        elif left == 0:
            self.left.setText(f"batch done: all {total} answered — press Iterate")
        else:
            self.left.setText(f"batch: {left} of {total} left")

    def set_new_only_available(self, available: bool):
        """Offer the "new objects only" filter once some catalogue was matched."""
        self.new_only.setEnabled(available)
        self.new_only.setToolTip(
            "Hide the spectra of objects a matched catalogue knows (spectra never "
            "cross-matched stay)" if available else
            "Cross-match the candidates first (Catalogues → Cross-match…)")

    def current_view_row(self) -> int:
        """The current view row, −1 when none."""
        index = self.table.currentIndex()
        return index.row() if index.isValid() else -1

    def select_view_row(self, row: int):
        """Make a view row current, visible and selected."""
        index = self.model.index(row, max(0, self.table.currentIndex().column()))
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)

    def focus_table(self):
        """Give the keyboard to the table, where the label keys work."""
        self.table.setFocus(QtCore.Qt.OtherFocusReason)

    def focus_search(self):
        """Give the keyboard to the search field, its text selected."""
        self.search.setFocus(QtCore.Qt.ShortcutFocusReason)
        self.search.selectAll()

    def _queue_replaced(self):
        self.table.horizontalHeader().setSortIndicator(-1, QtCore.Qt.AscendingOrder)
        for column in range(self.model.columnCount()):
            header = self.model.headerData(column, QtCore.Qt.Horizontal)
            self.table.setColumnWidth(column, _COLUMN_WIDTHS.get(header, 72))

    def _list_chosen(self, index: int):
        kind, name = self.lists.itemData(index)
        self.sigListChosen.emit(kind, name)

    def _search(self):
        text = self.search.text().strip()
        if text:
            self.sigSearch.emit(text)
            self.focus_table()  # the keys label again

    def _current_changed(self, current, _previous):
        self.sigCurrentChanged.emit(self.model.queue_row(current.row()) if current.isValid()
                                    else -1)
