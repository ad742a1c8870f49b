"""Files handed to SAMP peers (and the temporary files of downloads,
:mod:`vo_al.samp.download`).

Peers get tables and spectra as ``file:`` URLs (vo-al opens no listener of
its own). The files live in ``SESSION/samp/run-<token>/``, one folder per
running bridge, under names no other local user can guess
(:func:`secrets.token_hex`). Each file is held by the tables and messages
that refer to it and removed when the last of them lets go; the folder goes
when the bridge closes. A folder whose bridge died without closing (its
lock is free) is removed by the next bridge on the same session.
"""

from __future__ import annotations

import fcntl
import secrets
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

__all__ = ["PeerFiles"]

_FOLDER = "samp"
_RUN_PREFIX = "run-"
_LOCK = ".lock"


def _lock_is_free(run_dir: Path) -> bool:
    """Whether no live bridge holds the folder's lock."""
    try:
        with open(run_dir / _LOCK, "rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
    except (BlockingIOError, FileNotFoundError):  # held, or a bridge is just starting
        return False


def _remove_stale(folder: Path):
    for run_dir in folder.glob(f"{_RUN_PREFIX}*"):
        if run_dir.is_dir() and _lock_is_free(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)


class PeerFiles:
    """The folder of files for peers of one running bridge.

    Parameters
    ----------
    session_dir : path-like
        The session; files go to ``session_dir/samp/run-<token>/``.

    Notes
    -----
    Thread-safe: tables may be written on a worker thread while the owner
    thread answers messages.
    """

    def __init__(self, session_dir):
        folder = Path(session_dir) / _FOLDER
        folder.mkdir(mode=0o700, exist_ok=True)
        _remove_stale(folder)
        self.directory = folder / f"{_RUN_PREFIX}{secrets.token_hex(8)}"
        self.directory.mkdir(mode=0o700)
        self._lock_file = open(self.directory / _LOCK, "wb")
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self._lock = threading.Lock()
        self._held: dict = {}  # key -> [path, count]

    def new_path(self, suffix: str) -> Path:
        """An unused, unguessable path in the folder (not created)."""
        return self.directory / f"{secrets.token_hex(16)}{suffix}"

    @staticmethod
    def url(path: Path) -> str:
        """The ``file://`` URL of a path."""
        return Path(path).resolve().as_uri()

    def acquire(self, key, suffix: str, write: Callable[[Path], None]) -> Path:
        """Hold the file of ``key``, writing it with ``write(path)`` the first time.

        Raises
        ------
        Exception
            Whatever ``write`` raises; nothing is held then.
        """
        with self._lock:
            if key in self._held:
                self._held[key][1] += 1
                return self._held[key][0]
        path = self.new_path(suffix)
        try:
            write(path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        with self._lock:
            if key in self._held:  # written meanwhile by another thread
                path.unlink(missing_ok=True)
                self._held[key][1] += 1
                return self._held[key][0]
            self._held[key] = [path, 1]
        return path

    def release(self, key):
        """Let go of ``key``'s file; the last holder's release removes it."""
        with self._lock:
            held = self._held.get(key)
            if held is None:
                return
            held[1] -= 1
            if held[1] > 0:
                return
            del self._held[key]
        held[0].unlink(missing_ok=True)

    def held(self) -> int:
        """Number of files held."""
        with self._lock:
            return len(self._held)

    @contextmanager
    def temporary(self, suffix: str):
        """A path for a short-lived file, removed on exit."""
        path = self.new_path(suffix)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def close(self):
        """Remove every file and the folder (and ``samp/`` when it is empty)."""
        with self._lock:
            self._held.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
        self._lock_file.close()
        try:
            self.directory.parent.rmdir()
        except OSError:
            pass  # another bridge's folder is still there

