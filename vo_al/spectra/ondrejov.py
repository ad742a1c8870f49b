"""Ondřejov 2-m telescope CCD700 spectra: the IRAF 1-D image and the
archive's SSAP/SDM binary table. Air wavelengths, R ≈ 13,000 around Hα."""

from __future__ import annotations

import math

import numpy as np
from astropy.coordinates import Angle

from .headers import file_stem, number, pick, text
from .record import AIR, Spectrum
from .registry import CorruptFile, register_reader

__all__ = ["CCD700_RESOLVING_POWER"]

CCD700_RESOLVING_POWER = 13000.0
_INSTRUMENT = "Ondrejov 2m CCD700"
_META_KEYS = ("DATE-OBS", "HJD", "VHELIO", "TMID", "DS_IDPUB", "TITLE", "BUNIT", "FILENAME")


def _is_ccd700_header(header) -> bool:
    instrument = str(header.get("INSTRUME", "")).upper()
    telescope = str(header.get("TELESCOP", "")).upper()
    return "COUDE" in instrument or "CCD700" in instrument or "ZEISS-2M" in telescope


def _is_iraf_image(hdul) -> bool:
    header = hdul[0].header
    return (
        header.get("NAXIS") == 1
        and "CRVAL1" in header
        and ("CDELT1" in header or "CD1_1" in header)
        and _is_ccd700_header(header)
    )


def _sdm_table(hdul):
    """The BINTABLE with ``spectral`` and ``flux`` columns, or None."""
    for hdu in hdul[1:]:
        columns = getattr(hdu, "columns", None)
        if columns is not None and {"spectral", "flux"} <= {n.lower() for n in columns.names}:
            return hdu
    return None


def _is_sdm_table(hdul) -> bool:
    hdu = _sdm_table(hdul)
    if hdu is None:
        return False
    header = hdu.header
    return "ccd700" in str(header.get("DS_IDPUB", "")).lower() or _is_ccd700_header(header)


def _sexagesimal(value, unit) -> float:
    if value is None:
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(Angle(str(value).strip(), unit=unit).degree)
    except ValueError:
        return math.nan


@register_reader(
    "ccd700-iraf",
    "Ondřejov CCD700 IRAF 1-D image (NAXIS=1, CRVAL1/CDELT1, INSTRUME COUDE700)",
    identify=_is_iraf_image,
    priority=5,
)
def read_ccd700_iraf(hdul, path) -> Spectrum:
    """Read a CCD700 IRAF image: λ = CRVAL1 + (i + 1 − CRPIX1)·CDELT1, in air."""
    header = hdul[0].header
    flux = np.asarray(hdul[0].data, dtype=np.float64)
    step = float(header.get("CDELT1", header.get("CD1_1")))
    pixel = np.arange(flux.size, dtype=np.float64) + 1.0 - float(header.get("CRPIX1", 1.0))
    wavelength = float(header["CRVAL1"]) + step * pixel
    return Spectrum(
        wavelength=wavelength, flux=flux, medium=AIR, format="ccd700-iraf",
        source=str(path), id=file_stem(text(header, "FILENAME") or path),
        object_name=text(header, "OBJECT"), designation=text(header, "OBJECT"),
        ra=_sexagesimal(header.get("RA"), "hourangle"),
        dec=_sexagesimal(header.get("DEC"), "deg"),
        instrument=_INSTRUMENT, resolving_power=CCD700_RESOLVING_POWER,
        meta=pick(header, _META_KEYS),
    )


@register_reader(
    "ccd700-sdm",
    "Ondřejov CCD700 archive SSAP/SDM BINTABLE (columns spectral [Å, air], flux)",
    identify=_is_sdm_table,
    priority=5,
)
def read_ccd700_sdm(hdul, path) -> Spectrum:
    """Read the archive's SDM table; id = last component of ``DS_IDPUB``."""
    hdu = _sdm_table(hdul)
    header = hdu.header
    columns = {n.lower(): n for n in hdu.columns.names}
    if len(hdu.data) < 2:
        raise CorruptFile(path, "SDM table has fewer than 2 rows")
    wavelength = np.asarray(hdu.data[columns["spectral"]], dtype=np.float64)
    flux = np.asarray(hdu.data[columns["flux"]], dtype=np.float64)
    publisher_id = text(header, "DS_IDPUB")
    return Spectrum(
        wavelength=wavelength, flux=flux, medium=AIR, format="ccd700-sdm",
        source=str(path),
        id=publisher_id.rstrip("/").rsplit("/", 1)[-1] if publisher_id else file_stem(path),
        object_name=text(header, "OBJECT"), designation=text(header, "OBJECT"),
        ra=number(header, "RA"), dec=number(header, "DEC"),
        instrument=_INSTRUMENT, resolving_power=CCD700_RESOLVING_POWER,
        meta=pick(header, _META_KEYS),
    )
