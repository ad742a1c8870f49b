"""Why a file could not be read: the exceptions every reader raises."""

from __future__ import annotations

import os

__all__ = ["SpectrumReadError", "UnsupportedFormat", "CorruptFile", "RefusedFile"]


class SpectrumReadError(Exception):
    """A file could not be turned into a :class:`~vo_al.spectra.Spectrum`.

    Parameters
    ----------
    path : str or path-like
        The file.
    reason : str
        One line saying why, as listed in a pool's rejected-files CSV.
    """

    def __init__(self, path, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsupportedFormat(SpectrumReadError):
    """The file is readable FITS, but no reader recognises its layout."""


class CorruptFile(SpectrumReadError):
    """The file is not valid FITS, is truncated, or its data are inconsistent."""


class RefusedFile(SpectrumReadError):
    """The path is not a regular file that can be opened, or the file is over
    the size bounds of :mod:`vo_al.spectra.fitsbytes`; nothing was read."""
