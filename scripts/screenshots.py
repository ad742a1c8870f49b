"""Render the documentation's screenshots of a session.

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py SESSION docs/images \
        [--row N] [--samp]

Writes ``main-window.png``, ``viewer.png``, ``plots.png``, ``queue.png`` and
``samp.png`` into the folder. The window uses fresh preferences (default
layout, 1500 × 900) and changes nothing in the session; with ``--samp`` it
registers with the running SAMP hub and sends the candidate table and, once
the peers have loaded it, the shown spectrum, so the panel shows real peers
answering. A screenshot whose SAMP log holds an error is written all the same,
with a warning on stderr.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PyQt5 import QtCore

from vo_al.workspace import Workspace

from vo_al.gui.app import application, wait_until_idle
from vo_al.gui.main_window import MainWindow
from vo_al.gui.settings import Preferences

__all__ = ["render"]

#: How long a peer may take to answer a message before the window is captured.
_ANSWER_S = 60.0


def _settle(window: MainWindow, seconds: float):
    app = application()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents(QtCore.QEventLoop.AllEvents, 50)
        time.sleep(0.01)
    wait_until_idle(window)


def _await_answer(window: MainWindow, mtype: str, timeout: float = _ANSWER_S):
    """Process events until a peer's answer to ``mtype`` is in the SAMP log
    (a warning on stderr after ``timeout`` seconds)."""
    app = application()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents(QtCore.QEventLoop.AllEvents, 50)
        if any("answered" in line and mtype in line
               for line in window.samp.log.toPlainText().splitlines()):
            return
        time.sleep(0.01)
    print(f"screenshots: no peer answered {mtype} within {timeout:.0f} s", file=sys.stderr)


def _send(window: MainWindow):
    """Send the candidate table, then, once it is loaded, the shown spectrum."""
    _settle(window, 3.0)  # registration and the clients' names
    window.samp.send_table("candidates")
    _await_answer(window, "table.load.votable")
    _settle(window, 5.0)  # TOPCAT says samp.ok before the table takes highlights
    window.samp.send_current()
    _await_answer(window, "table.highlight.row")
    _settle(window, 1.0)
    if "samp.error" in window.samp.log.toPlainText():
        print("screenshots: the SAMP log shows an error; it is in the pictures",
              file=sys.stderr)


def render(session_path, folder, row: int = 0, samp: bool = False) -> list[Path]:
    """Open a window on a session and save its parts as PNG files.

    Parameters
    ----------
    session_path : path-like
    folder : path-like
        Created when missing.
    row : int
        Queue row shown in the viewer.
    samp : bool
        Connect to the running hub and send the candidates and the spectrum.

    Returns
    -------
    list of Path
        The files written.
    """
    application()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vo-al-shots-") as scratch:
        preferences = Preferences(QtCore.QSettings(str(Path(scratch) / "settings.ini"),
                                                   QtCore.QSettings.IniFormat))
        preferences.samp_connect = samp
        window = MainWindow(Workspace.open(session_path), preferences)
        window.resize(1500, 900)
        window.show()
        wait_until_idle(window)
        window.queue_panel.select_view_row(row)
        wait_until_idle(window)
        if samp:
            _send(window)
        shots = {"main-window": window, "viewer": window.viewer, "plots": window.plots,
                 "queue": window.queue_panel, "samp": window.samp}
        written = []
        for name, widget in shots.items():
            path = folder / f"{name}.png"
            if not widget.grab().save(str(path), "PNG"):
                raise OSError(f"cannot write {path}")
            written.append(path)
        window.close()
    return written


def main(argv=None) -> int:
    """Command line of :func:`render`."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("session", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--row", type=int, default=0, help="queue row shown in the viewer")
    parser.add_argument("--samp", action="store_true",
                        help="connect to the running SAMP hub and send to its clients first")
    args = parser.parse_args(argv)
    for path in render(args.session, args.folder, args.row, args.samp):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
