"""The one in-memory record every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Spectrum", "AIR", "VACUUM", "utf8_text"]

AIR = "air"
VACUUM = "vacuum"


@dataclass
class Spectrum:
    """A 1-D spectrum as read from a file, before any preprocessing.

    Parameters
    ----------
    wavelength : ndarray of float64
        Wavelength of each pixel in Ångström, increasing.
    flux : ndarray of float64
        Flux of each pixel (any unit; NaN allowed).
    medium : {'air', 'vacuum'}
        The medium the wavelengths refer to.
    id : str
        Survey-unique identifier (LAMOST: OBSID, else the FILENAME stem).
    format : str
        Name of the reader that produced the record.
    source : str
        Path of the file it was read from.
    ivar : ndarray of float64 or None
        Inverse variance per pixel; 0 marks a bad pixel. None when the file
        has no error information.
    bad : ndarray of bool or None
        Per-pixel mask of flux values that must not be used (True = bad).
        The reader's mask (LAMOST: the and-mask, and the or-mask where
        ivar = 0, see :func:`vo_al.spectra.lamost.lamost_bad_pixels`) is
        widened to non-finite flux and to pixels with ``ivar == 0`` *and*
        zero flux. A pixel with ``ivar == 0``, real flux and no mask bit is
        kept: LAMOST's pipeline zeroes ivar over the cores of strong Hα
        emission lines (all three real LAMOST emission stars in
        shared/data/real), and masking those would erase the very feature
        vo-al looks for. Preprocessing still refuses a window in which no
        pixel has ivar > 0 (see ``docs/preprocessing.md``).
    designation, object_name, instrument : str or None
        Catalogue designation, target name and instrument.
    ra, dec : float
        ICRS/FK5 coordinates in degrees; NaN when unknown.
    resolving_power : float
        R = λ/Δλ of the instrument at Hα.
    survey_class, survey_subclass : str or None
        The survey pipeline's classification, when the file carries one.
    meta : dict
        Further header values worth keeping (dates, pipeline version, ...).
    """

    wavelength: np.ndarray
    flux: np.ndarray
    medium: str
    id: str
    format: str
    source: str
    ivar: np.ndarray | None = None
    bad: np.ndarray | None = None
    designation: str | None = None
    object_name: str | None = None
    instrument: str | None = None
    ra: float = float("nan")
    dec: float = float("nan")
    resolving_power: float = float("nan")
    survey_class: str | None = None
    survey_subclass: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.wavelength = np.asarray(self.wavelength, dtype=np.float64)
        self.flux = np.asarray(self.flux, dtype=np.float64)
        if self.medium not in (AIR, VACUUM):
            raise ValueError(f"medium must be {AIR!r} or {VACUUM!r}, not {self.medium!r}")
        if self.wavelength.shape != self.flux.shape or self.flux.ndim != 1:
            raise ValueError(
                f"wavelength {self.wavelength.shape} and flux {self.flux.shape} "
                "must be 1-D arrays of one length"
            )
        if self.ivar is not None:
            self.ivar = np.asarray(self.ivar, dtype=np.float64)
        bad = ~np.isfinite(self.flux)
        if self.ivar is not None:
            bad |= ~(self.ivar > 0) & (self.flux == 0)
        if self.bad is not None:
            bad |= np.asarray(self.bad, dtype=bool)
        self.bad = bad

    @property
    def n_pixels(self) -> int:
        """Number of pixels."""
        return int(self.flux.size)

    @property
    def error(self) -> np.ndarray | None:
        """1-σ flux error from the inverse variance (inf where ivar is 0)."""
        if self.ivar is None:
            return None
        with np.errstate(divide="ignore"):
            return 1.0 / np.sqrt(self.ivar)

    def summary(self) -> dict:
        """The facts ``vo-al inspect`` prints, as JSON-ready values (text as
        :func:`utf8_text`)."""
        finite = self.wavelength[np.isfinite(self.wavelength)]
        facts = {
            "format": self.format,
            "id": self.id,
            "designation": self.designation,
            "object": self.object_name,
            "ra": _float_or_none(self.ra),
            "dec": _float_or_none(self.dec),
            "n_pixels": self.n_pixels,
            "wavelength_min": _float_or_none(finite.min() if finite.size else np.nan),
            "wavelength_max": _float_or_none(finite.max() if finite.size else np.nan),
            "medium": self.medium,
            "resolving_power": _float_or_none(self.resolving_power),
            "instrument": self.instrument,
            "survey_class": self.survey_class,
            "survey_subclass": self.survey_subclass,
            "source": self.source,
        }
        return {key: utf8_text(value) if isinstance(value, str) else value
                for key, value in facts.items()}


def utf8_text(text: str) -> str:
    r"""``text`` made encodable as UTF-8, for files, HDF5 and terminals.

    A file name that is not valid UTF-8 reaches Python with each bad byte
    as a lone surrogate (``os.fsdecode``'s ``surrogateescape``); such a
    byte is written ``\xNN`` instead, e.g. ``b"bad\xff.fits"`` becomes
    ``"bad\\xff.fits"`` (Python's ``backslashreplace``). Valid text is
    returned unchanged.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape" if _only_escapes(text) else "backslashreplace")
        return raw.decode("utf-8", "backslashreplace")


def _only_escapes(text: str) -> bool:
    """True when every surrogate in ``text`` stands for an undecodable byte."""
    return all("\udc80" <= c <= "\udcff" for c in text if "\ud800" <= c <= "\udfff")


def _float_or_none(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
