"""Labelling latency of the desktop app: from a label key press to the next
spectrum drawn, with a queue of 100,000 rows.

    python benchmarks/gui_latency.py [--rows 100000] [--presses 300] [--real DIR]

The real LAMOST and Ondřejov files (``../shared/data/real`` or
``$VO_AL_REAL_DATA``) are ingested; the LAMOST pool is tiled (its rows
repeated under new ids) to ``--rows`` spectra, one fast iteration scores it,
and the window lists the ``--rows`` most probable emission-line spectra.
Each press of 1, 2 or 3 (``QTest.keyClick``) labels the spectrum on screen
(committed to the SQLite log with fsync) and moves to the next; the clock
stops when every pending repaint of the window is done. A second figure is
the time until the original spectrum file, read in the loader thread, is
drawn too (its cache is off, so every press reads a FITS file).

Runs offscreen unless a display is set (e.g. under ``xvfb-run``).
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

_COLUMNS = ("spectra", "id", "designation", "source", "ra", "dec", "quality")
_TARGET_MS = 30.0


def tile_pool(source: Path, out: Path, rows: int):
    """Write a pool of ``rows`` rows repeating ``source``'s rows under new ids."""
    with h5py.File(source, "r") as src, h5py.File(out, "w") as dst:
        n = src["spectra"].shape[0]
        index = np.arange(rows) % n
        for name in _COLUMNS:
            values = src[name][:][index]
            if name == "id":
                values = np.array([f"t{r // n}-{v.decode() if isinstance(v, bytes) else v}"
                                   for r, v in enumerate(values)], dtype=object)
            dst.create_dataset(name, data=values, chunks=(min(4096, rows),) + values.shape[1:],
                               dtype=src[name].dtype)
        dst["wavelength"] = src["wavelength"][:]
        dst.attrs.update(dict(src.attrs))


def build_session(real: Path, folder: Path, rows: int):
    """Ingest the real files, tile the pool, create a session, run one iteration."""
    from vo_al.labelfile import read_label_csv
    from vo_al.loop import IterationOptions, run_iteration
    from vo_al.pool import ingest
    from vo_al.session import Session

    labels = folder / "labels.csv"
    with open(real / "MANIFEST.tsv", newline="") as fh, open(labels, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["file", "label"])
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["file"].startswith("ondrejov/"):
                writer.writerow([real / row["file"], row["halpha_profile"]])
    ingest([real / "ondrejov"], folder / "train.h5", labels=read_label_csv(labels), workers=1)
    ingest([real / "lamost"], folder / "small.h5", workers=1)
    tile_pool(folder / "small.h5", folder / "pool.h5", rows)
    session = Session.create(folder / "session", folder / "train.h5", folder / "pool.h5")
    started = time.perf_counter()
    run_iteration(session, IterationOptions(max_epochs=1))
    print(f"pool of {rows:,} spectra scored in {time.perf_counter() - started:.1f} s")
    session.close()
    return folder / "session"


def measure(session_path: Path, rows: int, presses: int, settings_path: Path) -> dict:
    """Open the window on a ``rows``-long candidate list and time the presses."""
    from PyQt5 import QtCore, QtWidgets
    from PyQt5.QtTest import QTest

    from vo_al.gui.app import application, wait_until_idle
    from vo_al.gui.main_window import MainWindow
    from vo_al.gui.queue_panel import CANDIDATES
    from vo_al.gui.settings import Preferences
    from vo_al.workspace import Workspace

    app = application()
    preferences = Preferences(QtCore.QSettings(str(settings_path), QtCore.QSettings.IniFormat))
    preferences.candidates = rows
    preferences.show_original = True
    window = MainWindow(Workspace.open(session_path), preferences)
    window.show()
    window.activateWindow()  # key shortcuts go to the active window (no window manager here)
    QTest.qWaitForWindowActive(window)
    wait_until_idle(window)
    window.loader.cache_size = 0  # every original spectrum is read from its file
    started = time.perf_counter()
    window.load_list(CANDIDATES, "emission")
    wait_until_idle(window)
    print(f"candidate list of {window.model.rowCount():,} rows built in "
          f"{time.perf_counter() - started:.2f} s ({app.platformName()} platform)")
    keys = (QtCore.Qt.Key_1, QtCore.Qt.Key_2, QtCore.Qt.Key_3)
    drawn, original = [], []
    for k in range(presses):
        expected = window.model.queue.ids[window.model.queue_row(
            window.queue_panel.current_view_row() + 1)]
        t0 = time.perf_counter()
        QTest.keyClick(window, keys[k % 3])
        QtWidgets.QApplication.processEvents()  # every pending repaint of the window
        drawn.append(time.perf_counter() - t0)
        assert window.viewer.record.spectrum_id == expected, "the next spectrum is not shown"
        source = str(Path(window.viewer.record.source))
        while window.viewer._original_path != source and time.perf_counter() - t0 < 5:
            app.processEvents(QtCore.QEventLoop.AllEvents, 5)
        original.append(time.perf_counter() - t0)
        time.sleep(0.02)  # a human is slower; let the loader thread go idle
    labels = len(window.workspace.entries())
    window.close()
    return {"drawn": np.array(drawn) * 1e3, "original": np.array(original) * 1e3,
            "labels": labels}


def main():
    """Build the session, measure, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--presses", type=int, default=300)
    default_real = os.environ.get("VO_AL_REAL_DATA",
                                  Path(__file__).resolve().parents[2] / "shared/data/real")
    parser.add_argument("--real", type=Path, default=Path(default_real))
    args = parser.parse_args()
    if not (os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from vo_al.runtime import tune_allocator

    tune_allocator()
    with tempfile.TemporaryDirectory(prefix="vo-al-gui-latency-") as scratch:
        folder = Path(scratch)
        session = build_session(args.real, folder, args.rows)
        result = measure(session, args.rows, args.presses, folder / "settings.ini")
    for name, what in (("drawn", "key press → next spectrum drawn"),
                       ("original", "key press → original spectrum file drawn")):
        values = result[name]
        print(f"{what}: median {np.median(values):.1f} ms, 95th percentile "
              f"{np.percentile(values, 95):.1f} ms, max {values.max():.1f} ms "
              f"({len(values)} presses)")
    p95 = np.percentile(result["drawn"], 95)
    print(f"{result['labels']} labels committed; target < {_TARGET_MS:.0f} ms: "
          f"{'met' if p95 < _TARGET_MS else 'NOT met'} at the 95th percentile")


if __name__ == "__main__":
    main()
