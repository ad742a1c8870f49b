"""Turning the INPUT arguments of ``vo-al ingest`` into a stream of file paths.

An input is a spectrum file, a directory (walked recursively, in sorted
order, so that a second run sees the same sequence), or a text file listing
one path per line (relative paths are taken from the list's folder; blank
lines and ``#`` comments are skipped). Nothing is held in memory: the paths
are generated one at a time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

__all__ = ["SPECTRUM_SUFFIXES", "iter_input_paths", "count_input_paths"]

#: File names that are taken as spectra when walking a directory.
SPECTRUM_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
_FITS_MAGIC = b"SIMPLE  ="
_GZIP_MAGIC = b"\x1f\x8b"


def _is_spectrum_name(name: str) -> bool:
    return name.lower().endswith(SPECTRUM_SUFFIXES)


def _walk(directory: str) -> Iterator[str]:
    """Spectrum files below ``directory``, depth first, sorted by name."""
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=True):
            yield from _walk(entry.path)
        elif _is_spectrum_name(entry.name):
            yield entry.path


def _is_list_file(path: Path) -> bool:
    """A text file of paths, as opposed to a (possibly broken) spectrum file."""
    if _is_spectrum_name(path.name):
        return False
    with open(path, "rb") as fh:
        head = fh.read(512)
    return not head.startswith((_FITS_MAGIC, _GZIP_MAGIC)) and b"\0" not in head


def _read_list(path: Path) -> Iterator[str]:
    base = path.parent
    with open(path, encoding="utf-8") as fh:
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
        reports it as a rejected file instead of stopping.
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
