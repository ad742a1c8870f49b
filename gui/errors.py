"""Errors as readable dialogs: for failed jobs and for anything uncaught."""

from __future__ import annotations

import sys
import traceback

from PyQt5 import QtCore, QtWidgets

__all__ = ["show_error", "install_excepthook", "SAFE_LABELS"]

#: Said with every unexpected error, because it is what the user fears most.
SAFE_LABELS = "Every label confirmed so far is safe in the session's log."

_open_without_parent: set = set()  # keeps parentless dialogs alive until closed


def show_error(parent, title: str, message: str, details: str = "") -> QtWidgets.QMessageBox:
    """Show an error dialog without blocking (window-modal, deleted on close).

    Parameters
    ----------
    parent : QWidget or None
    title : str
    message : str
        What went wrong, in words.
    details : str, optional
        A traceback or log, behind the dialog's "Show Details..." button.

    Returns
    -------
    QMessageBox
    """
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Critical, title, message,
                                QtWidgets.QMessageBox.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.setAttribute(QtCore.Qt.WA_DeleteOnClose)
    if parent is None:
        _open_without_parent.add(box)
        box.finished.connect(lambda _result: _open_without_parent.discard(box))
    box.open()
    return box


def install_excepthook():
    """Show uncaught exceptions (from slots, timers, ...) as dialogs.

    The traceback is still written to stderr; ``KeyboardInterrupt`` keeps
    its default handling.

    Returns
    -------
    callable
        The hook that was replaced.
    """
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt) or QtWidgets.QApplication.instance() is None:
            previous(kind, value, tb)
            return
        details = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(details)
        message = str(value).strip() or kind.__name__
        show_error(QtWidgets.QApplication.activeWindow(), "vo-al: unexpected error",
                   f"{message}\n\n{SAFE_LABELS}", details)

    sys.excepthook = hook
    return previous
