"""Spectrum readers: one registry, one record type.

>>> from vo_al.spectra import read_spectrum
>>> spectrum = read_spectrum("spec-55916-B5591606_sp01-001.fits")  # doctest: +SKIP
"""

from .record import AIR, VACUUM, Spectrum, utf8_text
from .registry import (
    SYNTH_PREFIX,
    CorruptFile,
    RefusedFile,
    SpectrumReadError,
    UnsupportedFormat,
    identify_format,
    read_spectrum,
    readers,
    register_reader,
)

__all__ = [
    "AIR",
    "VACUUM",
    "Spectrum",
    "SpectrumReadError",
    "UnsupportedFormat",
    "CorruptFile",
    "RefusedFile",
    "identify_format",
    "read_spectrum",
    "readers",
    "SYNTH_PREFIX",
    "register_reader",
    "utf8_text",
]
