"""Start the desktop app: ``vo-al gui [SESSION] [--screenshot FILE]``."""

from __future__ import annotations

import importlib.resources
import os
import sys
import tempfile
import time
from pathlib import Path

import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets

from vo_al.runtime import tune_allocator
from vo_al.workspace import SessionError, Workspace

from .dialogs import SessionDialog
from .errors import install_excepthook
from .main_window import MainWindow
from .settings import APPLICATION, ORGANISATION, Preferences

__all__ = ["main", "application", "wait_until_idle", "ICON"]

#: The application icon (package data of vo_al.resources).
ICON = importlib.resources.files("vo_al.resources") / "vo-al.svg"

_SCREENSHOT_TIMEOUT_S = 120.0

_application: QtWidgets.QApplication | None = None  # the one we created, kept alive


def _has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def application() -> QtWidgets.QApplication:
    """The process's ``QApplication``, created (with name and icon) if needed.

    One created here lives as long as the process.
    """
    global _application
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = _application = QtWidgets.QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    if ICON.is_file():
        app.setWindowIcon(QtGui.QIcon(str(ICON)))
    pg.setConfigOptions(antialias=True)
    return app


def wait_until_idle(window: MainWindow, timeout: float = _SCREENSHOT_TIMEOUT_S,
                    settle: float = 0.5) -> bool:
    """Process events until the window's lists, plots and spectrum are loaded.

    Returns
    -------
    bool
        False when ``timeout`` seconds passed first.
    """
    app = QtWidgets.QApplication.instance()
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        app.processEvents(QtCore.QEventLoop.AllEvents, 50)
        if not window.busy() and time.monotonic() - started > settle:
            app.processEvents()
            return True
        time.sleep(0.01)
    return False


class _Windows(QtCore.QObject):
    """Keeps the open window; replaces it when another session is asked for."""

    def __init__(self, preferences: Preferences):
        super().__init__()
        self.preferences = preferences
        self.window: MainWindow | None = None

    def show(self, workspace: Workspace):
        """Open a window on ``workspace`` and close the previous one."""
        old = self.window
        self.window = MainWindow(workspace, self.preferences)
        self.window.sigOpenSession.connect(self.choose)
        self.window.show()
        if old is not None:
            old.setAttribute(QtCore.Qt.WA_DeleteOnClose)  # once SAMP let go of it
            old.close()

    def choose(self, _path: str = ""):
        """Ask for another session (create or open) and show it."""
        dialog = SessionDialog(self.preferences, self.window)
        if dialog.exec_() == QtWidgets.QDialog.Accepted:
            self.show(dialog.workspace)


def main(session_path=None, screenshot=None) -> int:
    """Run the desktop app.

    Parameters
    ----------
    session_path : path-like, optional
        A session to open; without it a dialog offers to create one from
        a training pool and a pool, or to open one.
    screenshot : path-like, optional
        Render the main window to this PNG once its lists, plots and
        spectrum are loaded, then exit. Uses fresh preferences (default
        layout, 1500 × 900) and needs no display.

    Returns
    -------
    int
        The exit status: 0, or 2 when the session cannot be opened or
        there is no display.
    """
    tune_allocator()  # before torch's first large buffers (training in the worker)
    if screenshot is not None and not _has_display():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if not _has_display():
        print("vo-al gui: no display (DISPLAY is not set): run it on a desktop, under "
              "xvfb-run, or use the headless commands (vo-al --help)", file=sys.stderr)
        return 2
    if screenshot is not None and session_path is None:
        print("vo-al gui: --screenshot needs a SESSION", file=sys.stderr)
        return 2
    app = application()
    with tempfile.TemporaryDirectory(prefix="vo-al-gui-") as scratch:
        if screenshot is not None:
            settings = QtCore.QSettings(str(Path(scratch) / "settings.ini"),
                                        QtCore.QSettings.IniFormat)
        else:
            settings = QtCore.QSettings(ORGANISATION, APPLICATION)
            install_excepthook()
        preferences = Preferences(settings)
        if session_path is not None:
            try:
                workspace = Workspace.open(session_path)
            except SessionError as exc:
                print(f"vo-al gui: {exc}", file=sys.stderr)
                return 2
        else:
            dialog = SessionDialog(preferences)
            if dialog.exec_() != QtWidgets.QDialog.Accepted:
                return 0
            workspace = dialog.workspace
        windows = _Windows(preferences)
        windows.show(workspace)
        if screenshot is not None:
            return _screenshot(windows.window, Path(screenshot))
        return app.exec_()


def _screenshot(window: MainWindow, path: Path) -> int:
    window.resize(1500, 900)
    if not wait_until_idle(window):
        print(f"vo-al gui: still loading after {_SCREENSHOT_TIMEOUT_S:.0f} s; "
              "the screenshot shows the window as it is", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok = window.grab().save(str(path), "PNG")
    window.close()
    while not window.released:  # unregistering from a SAMP hub in a worker
        QtWidgets.QApplication.processEvents(QtCore.QEventLoop.WaitForMoreEvents, 100)
    if not ok:
        print(f"vo-al gui: cannot write {path}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
