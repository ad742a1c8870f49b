"""Turning the INPUT arguments of ``vo-al ingest`` into a stream of file paths.

An input is a spectrum file, a directory (walked recursively, in sorted
order, so that a second run sees the same sequence), or a text file listing
one path per line (relative paths are taken from the list's folder; blank
lines and ``#`` comments are skipped). Nothing is held in memory: the paths
are generated one at a time.

The walk follows symbolic links to directories but never enters a
directory that is already on the path being walked (told by device and
inode), so a link back to a parent (``ln -s . loop/self``) is walked once.
Such a link, and a directory that cannot be listed, is yielded as a
:class:`RejectedPath` carrying the reason, so that the ingest lists it
among the rejected files and goes on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

__all__ = ["SPECTRUM_SUFFIXES", "RejectedPath", "iter_input_paths", "count_input_paths"]

#: File names that are taken as spectra when walking a directory.
SPECTRUM_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
_FITS_MAGIC = b"SIMPLE  ="
_GZIP_MAGIC = b"\x1f\x8b"


class RejectedPath(str):
    """A path the walk did not follow, with the reason; a ``str`` otherwise.

    Parameters
    ----------
    path : str
        The directory (or link to one).
    reason : str
        Why it was not walked, as listed in the rejected-files CSV.
    """

    def __new__(cls, path: str, reason: str):
        self = super().__new__(cls, path)
        self.reason = reason
        return self

    def __reduce__(self):
        return RejectedPath, (str(self), self.reason)


def _is_spectrum_name(name: str) -> bool:
    return name.lower().endswith(SPECTRUM_SUFFIXES)


def _walk(top: str) -> Iterator[str]:
    """Spectrum files below ``top``, depth first, sorted by name.

    Iterative, so that depth is not limited by Python's recursion limit.
    ``on_path`` maps the (device, inode) of each directory being walked to
    its path.
    """
    on_path: dict[tuple[int, int], str] = {}
    stack: list[tuple[tuple[int, int], Iterator[os.DirEntry]]] = []
    refused = _enter(top, on_path, stack)
    if refused:
        yield refused
    while stack:
        entry = next(stack[-1][1], None)
        if entry is None:
            del on_path[stack.pop()[0]]
        elif _is_dir(entry):
            refused = _enter(entry.path, on_path, stack)
            if refused:
                yield refused
        elif _is_spectrum_name(entry.name):
            yield entry.path


def _is_dir(entry: os.DirEntry) -> bool:
    """A directory or a link to one; False when that cannot be told (the reader will say why)."""
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _enter(directory: str, on_path: dict, stack: list) -> RejectedPath | None:
    """Push ``directory``'s sorted entries on ``stack``; a RejectedPath if it cannot be walked."""
    try:
        info = os.stat(directory)
        key = (info.st_dev, info.st_ino)
        if key in on_path:
            return RejectedPath(directory, f"directory loop: leads back to {on_path[key]}, "
                                           "which is being walked; not walked again")
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as exc:
        return RejectedPath(directory, f"directory could not be listed ({exc.strerror or exc})")
    on_path[key] = directory
    stack.append((key, iter(entries)))
    return None


def _is_list_file(path: Path) -> bool:
    """A text file of paths, as opposed to a (possibly broken) spectrum file."""
    if _is_spectrum_name(path.name):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:  # unreadable: the reader will say why
        return False
    return not head.startswith((_FITS_MAGIC, _GZIP_MAGIC)) and b"\0" not in head


def _read_list(path: Path) -> Iterator[str]:
    base = path.parent
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:  # names as os.fsdecode
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                yield str(base / line) if not os.path.isabs(line) else line


def iter_input_paths(inputs: Iterable) -> Iterator[str]:
    """Yield every spectrum path named by ``inputs``, in a reproducible order.

    Parameters
    ----------
    inputs : iterable of str or path-like
        Files, directories and list files, as given on the command line.

    Yields
    ------
    str
        Absolute paths. A missing path is yielded as is, so that the ingest
        reports it as a rejected file instead of stopping; a directory that
        could not be walked comes as a :class:`RejectedPath`.
    """
    for item in inputs:
        path = Path(item).absolute()
        if path.is_dir():
            yield from _walk(str(path))
        elif path.is_file() and _is_list_file(path):
            yield from (str(Path(p).absolute()) for p in _read_list(path))
        else:
            yield str(path)


def count_input_paths(inputs: Iterable) -> int:
    """Number of paths :func:`iter_input_paths` will yield (one streamed pass)."""
    return sum(1 for _ in iter_input_paths(inputs))
