"""Spectra for peers as IVOA Spectrum Data Model (SDM) tables.

One row per pixel: ``spectral`` (Å), ``flux`` and, when the file has an
inverse variance, ``error`` = 1/√ivar (NaN where ivar = 0), each with its
SDM utype and UCD, written as FITS (a BINTABLE after an empty primary HDU)
or as VOTable. SPLAT-VO picks its reader from ``meta["Access.Format"]``,
names the spectrum from ``Target.Name`` and takes its columns from
``vox:spectrum_axes`` (DESIGN.md §2), so :func:`sdm_meta` always sends
those three.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.units import UnitsWarning

from ..spectra import Spectrum
from .messages import FITS_MIME, VOTABLE_MIME

__all__ = ["SdmSpectrum", "FORMATS", "full_spectrum", "window_spectrum", "write_sdm",
           "sdm_meta"]

#: ``format name -> (MIME type, file suffix)``.
FORMATS = {"fits": (FITS_MIME, ".fits"), "votable": (VOTABLE_MIME, ".vot")}

_COLUMNS = {  # name -> (utype, ucd)
    "spectral": ("spec:Spectrum.Data.SpectralAxis.Value", "em.wl"),
    "flux": ("spec:Spectrum.Data.FluxAxis.Value", "phot.flux.density;em.wl"),
    "error": ("spec:Spectrum.Data.FluxAxis.Accuracy.StatError",
              "stat.error;phot.flux.density;em.wl"),
}


@dataclass
class SdmSpectrum:
    """A spectrum ready to be written for peers.

    Attributes
    ----------
    wavelength, flux : ndarray
        Å (in ``medium``) and flux per pixel.
    error : ndarray or None
        1-σ flux error per pixel (NaN where unknown); None for no column.
    name : str
        Target name (designation or id).
    title : str
        What the file holds, e.g. ``"... full spectrum"``.
    medium : {'air', 'vacuum'}
    ra, dec : float
        Degrees; NaN when unknown.
    flux_unit : str
        Flux unit, ``''`` when unknown or arbitrary.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    error: np.ndarray | None
    name: str
    title: str
    medium: str
    ra: float = math.nan
    dec: float = math.nan
    flux_unit: str = ""
    axes: tuple = field(init=False)

    def __post_init__(self):
        self.axes = ("spectral", "flux") if self.error is None else ("spectral", "flux", "error")


def full_spectrum(spectrum: Spectrum) -> SdmSpectrum:
    """The whole spectrum as read from its file, error from the inverse variance."""
    error = None
    if spectrum.ivar is not None:
        error = np.where(spectrum.ivar > 0, spectrum.error, np.nan)
    name = spectrum.designation or spectrum.object_name or spectrum.id
    return SdmSpectrum(spectrum.wavelength, spectrum.flux, error, name,
                       f"{name}: full spectrum ({spectrum.format})", spectrum.medium,
                       spectrum.ra, spectrum.dec, spectrum.meta.get("BUNIT", ""))


def window_spectrum(name: str, wavelength, vector, medium: str, ra: float = math.nan,
                    dec: float = math.nan) -> SdmSpectrum:
    """The preprocessed window the network sees (scaled to [−1, 1], no error)."""
    return SdmSpectrum(np.asarray(wavelength, np.float64), np.asarray(vector, np.float64), None,
                       name, f"{name}: preprocessed window", medium, ra, dec)


def _columns(sdm: SdmSpectrum) -> dict:
    values = {"spectral": sdm.wavelength, "flux": sdm.flux, "error": sdm.error}
    return {name: np.asarray(values[name], dtype=np.float64) for name in sdm.axes}


def _write_fits(sdm: SdmSpectrum, path):
    units = {"spectral": "Angstrom", "flux": sdm.flux_unit or None, "error": sdm.flux_unit or None}
    columns = [fits.Column(name=name, format="D", unit=units[name], array=values)
               for name, values in _columns(sdm).items()]
    table = fits.BinTableHDU.from_columns(columns, name="SPECTRUM")
    for i, name in enumerate(sdm.axes, start=1):
        table.header[f"TUTYP{i}"] = _COLUMNS[name][0]
        table.header[f"TUCD{i}"] = _COLUMNS[name][1]
    header = table.header
    header["VOCLASS"] = ("Spectrum-1.0", "IVOA Spectrum Data Model")
    header["VOSEGT"] = "Spectrum"
    header["OBJECT"] = sdm.name
    header["TITLE"] = sdm.title
    header["AIRORVAC"] = ("air" if sdm.medium == "air" else "vac", "wavelength medium")
    if math.isfinite(sdm.ra) and math.isfinite(sdm.dec):
        header["RA"], header["DEC"] = sdm.ra, sdm.dec
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)


def _write_votable(sdm: SdmSpectrum, path):
    table = Table(_columns(sdm))
    table["spectral"].unit = "Angstrom"
    for name in sdm.axes:
        table[name].meta.update(utype=_COLUMNS[name][0], ucd=_COLUMNS[name][1])
    table.meta["description"] = f"{sdm.title}; wavelengths in {sdm.medium}"
    with warnings.catch_warnings():
        # VOUnit prefers "0.1nm"; SPLAT-VO, TOPCAT and STILTS all read "Angstrom"
        warnings.simplefilter("ignore", UnitsWarning)
        table.write(path, format="votable")


def write_sdm(sdm: SdmSpectrum, path, fmt: str = "fits"):
    """Write ``sdm`` to a new file at ``path``.

    Parameters
    ----------
    sdm : SdmSpectrum
    path : path-like
    fmt : {'fits', 'votable'}
    """
    if fmt not in FORMATS:
        raise ValueError(f"SDM format must be one of {sorted(FORMATS)}, not {fmt!r}")
    (_write_fits if fmt == "fits" else _write_votable)(sdm, path)


def sdm_meta(sdm: SdmSpectrum, url: str, fmt: str) -> dict:
    """The ``meta`` map of ``spectrum.load.ssa-generic`` for a written file."""
    meta = {"Access.Reference": url, "Access.Format": FORMATS[fmt][0],
            "Target.Name": sdm.name, "vox:spectrum_axes": " ".join(sdm.axes)}
    if sdm.flux_unit:
        meta["vox:spectrum_units"] = " ".join(["Angstrom"] + [sdm.flux_unit] * (len(sdm.axes) - 1))
    return meta
