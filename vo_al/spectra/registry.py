"""The reader registry: each reader has a cheap identify check and a priority.

A file is opened once; every registered reader's ``identify`` looks at the
open HDU list (headers only), the highest-priority reader that claims it
reads it. An ``identify`` that raises is taken as "not mine".

A source that starts with :data:`SYNTH_PREFIX` is no file: it names a
file of the synthetic survey that ``vo-al synth --pool`` did not write;
:mod:`vo_al.synth.regenerate` makes its bytes again, and they are read
like a file's.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Callable

from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from .errors import CorruptFile, RefusedFile, SpectrumReadError, UnsupportedFormat
from .fitsbytes import read_fits_bytes
from .record import Spectrum

__all__ = [
    "SpectrumReadError",
    "UnsupportedFormat",
    "CorruptFile",
    "RefusedFile",
    "Reader",
    "register_reader",
    "readers",
    "identify_format",
    "read_spectrum",
    "SYNTH_PREFIX",
]

#: Sources of synthetic spectra, regenerated instead of read (docs/synth.md).
SYNTH_PREFIX = "synth:"


@dataclass(frozen=True)
class Reader:
    """One registered reader."""

    name: str
    description: str
    identify: Callable[[fits.HDUList], bool]
    read: Callable[[fits.HDUList, str], Spectrum]
    priority: int


_READERS: list[Reader] = []


def register_reader(name: str, description: str, identify, priority: int = 0):
    """Register the decorated ``read(hdul, path) -> Spectrum`` function.

    Parameters
    ----------
    name : str
        Short format name, shown by ``vo-al inspect``.
    description : str
        What the reader expects, quoted in :class:`UnsupportedFormat` errors.
    identify : callable
        ``identify(hdul) -> bool``; must only look at headers.
    priority : int
        Higher is tried first.
    """

    def decorator(read):
        _READERS.append(Reader(name, description, identify, read, priority))
        _READERS.sort(key=lambda r: -r.priority)
        return read

    return decorator


def readers() -> list[Reader]:
    """The registered readers, highest priority first."""
    _load_builtin_readers()
    return list(_READERS)


def _load_builtin_readers():
    from . import lamost, ondrejov  # noqa: F401  (registration side effect)


def _claims(reader: Reader, hdul) -> bool:
    try:
        return bool(reader.identify(hdul))
    except Exception:
        return False


def _regenerated(source: str) -> bytes:
    """The FITS bytes a ``synth:`` source stands for (imported here: vo_al.synth uses
    this package)."""
    from ..synth.regenerate import regenerate_file

    return regenerate_file(source)


def _open(path) -> fits.HDUList:
    """The HDUs of ``path``, read within the bounds of :mod:`vo_al.spectra.fitsbytes`,
    or of the file a ``synth:`` source stands for."""
    synthetic = isinstance(path, str) and path.startswith(SYNTH_PREFIX)
    data = _regenerated(path) if synthetic else read_fits_bytes(path)
    try:
        return fits.HDUList.fromstring(data)
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError, ...
        raise CorruptFile(path, f"not a readable FITS file ({exc})") from exc


def identify_format(path) -> str:
    """Name of the reader that would read ``path``.

    ``path`` may be a ``synth:`` source: the file it stands for.

    Raises
    ------
    UnsupportedFormat
        When no reader recognises the file.
    CorruptFile
        When the file is not readable FITS.
    RefusedFile
        When the path is not a regular file or the file is over the size
        bounds (:mod:`vo_al.spectra.fitsbytes`).
    FileNotFoundError
        When the path does not exist.
    """
    path = os.fspath(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        with _open(path) as hdul:
            return _choose(hdul, path).name


def _choose(hdul, path) -> Reader:
    for reader in readers():
        if _claims(reader, hdul):
            return reader
    expected = "; ".join(f"{r.name}: {r.description}" for r in readers())
    layout = ", ".join(
        f"{h.name or type(h).__name__}{tuple(h.shape) if getattr(h, 'shape', None) else ''}"
        for h in hdul
    )
    raise UnsupportedFormat(
        path, f"no reader recognises this FITS layout [{layout}]; expected one of: {expected}"
    )


def read_spectrum(path) -> Spectrum:
    """Read one spectrum file with the reader that claims it.

    Parameters
    ----------
    path : str or path-like
        A FITS file, optionally gzipped; or a ``synth:`` source, read as
        the file it stands for, made again by
        :func:`vo_al.synth.regenerate.regenerate_file`.

    Returns
    -------
    Spectrum

    Raises
    ------
    UnsupportedFormat, CorruptFile, RefusedFile
        All are :class:`SpectrumReadError`, carrying ``path`` and ``reason``;
        a :class:`RefusedFile` (not a regular file, or over the size bounds
        of :mod:`vo_al.spectra.fitsbytes`) is raised before any data is read.
        A ``synth:`` source that names no file of the generator raises
        :class:`UnsupportedFormat` (a parameter missing, as in pools written
        before sources held the emission fraction) or :class:`CorruptFile`
        (arguments that make another file).
    FileNotFoundError
        When the path does not exist.
    """
    path = os.fspath(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        with _open(path) as hdul:
            reader = _choose(hdul, path)
            try:
                return reader.read(hdul, path)
            except SpectrumReadError:
                raise
            except Exception as exc:
                raise CorruptFile(path, f"{reader.name} file could not be read: {exc}") from exc
