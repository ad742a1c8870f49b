"""Writing a file so that a kill, a crash or a second writer leaves either
the old file or the new one, never a half-written one.

Every writer of a session or pool file goes through :func:`atomic_path`:
the data go to a temporary file with a unique name in the target's
directory (so the rename stays on one file system and two writers never
share a temporary file), the file and then its directory are flushed to
disk, and the temporary file is renamed over the target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_text_atomic", "fsync_directory"]


def fsync_directory(directory) -> None:
    """Flush a directory's entries (a rename into it) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path, *, suffix: str = "") -> Iterator[Path]:
    """A temporary path to write; renamed to ``path`` when the block succeeds.

    Parameters
    ----------
    path : path-like
        The file to create or replace.
    suffix : str
        Ending of the temporary name (some writers, e.g. h5py or torch,
        do not care; astropy picks a format from it).

    Yields
    ------
    Path
        An empty file in ``path``'s directory, with a unique name, that the
        block writes (by any library) and closes.

    Notes
    -----
    On an exception the temporary file is removed and ``path`` is left as
    it was.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".part",
                                dir=path.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_text_atomic(path, text: str) -> None:
    """Replace a small text file atomically (UTF-8).

    Parameters
    ----------
    path : path-like
    text : str
    """
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
