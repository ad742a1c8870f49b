"""LAMOST low-resolution spectra: the 5-row image layout (DR1–DR8) and the
BINTABLE ``COADD`` layout (DR9+).

Both are vacuum, heliocentric, log-linear wavelengths, R ≈ 1800.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from .headers import file_stem, number, pick, text
from .record import VACUUM, Spectrum
from .registry import CorruptFile, register_reader

__all__ = ["LAMOST_RESOLVING_POWER", "loglinear_wavelength"]

LAMOST_RESOLVING_POWER = 1800.0
#: Largest tolerated difference (Å) between a wavelength row and the header's
#: log-linear solution; float32 rounding gives ≈0.003 Å.
WAVELENGTH_TOLERANCE = 0.05
_META_KEYS = (
    "OBSID", "FILENAME", "PLANID", "LMJD", "MJD", "SPID", "FIBERID", "OBJTYPE",
    "Z", "Z_ERR", "VERSPIPE", "DATA_V", "DATE-OBS", "EXTEN0",
)


def loglinear_wavelength(header, n_pixels: int) -> np.ndarray:
    """λᵢ = 10^(CRVAL1 + CD1_1·(i + 1 − CRPIX1)) for i = 0 … n−1 (Å).

    LAMOST writes ``CTYPE1 = 'LINEAR'`` although the scale is log-linear.
    """
    step = header.get("CD1_1", header.get("CDELT1"))
    if step is None or "CRVAL1" not in header:
        raise CorruptFile(header.get("FILENAME", "?"), "no CRVAL1/CD1_1 wavelength solution")
    pixel = np.arange(n_pixels, dtype=np.float64) + 1.0 - float(header.get("CRPIX1", 1.0))
    return 10.0 ** (float(header["CRVAL1"]) + float(step) * pixel)


def _is_image(hdul) -> bool:
    header = hdul[0].header
    return (
        header.get("NAXIS") == 2
        and header.get("NAXIS2") == 5
        and header.get("NAXIS1", 0) > 100
        and (str(header.get("TELESCOP", "")).strip().upper() == "LAMOST" or "EXTEN0" in header)
    )


def _is_table(hdul) -> bool:
    if "COADD" not in hdul:
        return False
    names = {name.upper() for name in hdul["COADD"].columns.names}
    return {"FLUX", "WAVELENGTH"} <= names


def _identity(header, path) -> dict:
    obsid = header.get("OBSID")
    name = text(header, "FILENAME") or path
    return {
        "id": str(obsid).strip() if obsid not in (None, "") else file_stem(name),
        "designation": text(header, "DESIG"),
        "object_name": text(header, "OBJNAME"),
        "ra": number(header, "RA"),
        "dec": number(header, "DEC"),
        "survey_class": text(header, "CLASS"),
        "survey_subclass": text(header, "SUBCLASS"),
        "meta": pick(header, _META_KEYS),
    }


@register_reader(
    "lamost-image",
    "LAMOST low-res primary image of 5 rows (flux, ivar, wavelength or "
    "subcontinuum, andmask, ormask)",
    identify=_is_image,
    priority=10,
)
def read_lamost_image(hdul, path) -> Spectrum:
    """Read the DR1–DR8 image layout; DR1's 'Subcontinuum' row gets the header solution."""
    header = hdul[0].header
    data = np.asarray(hdul[0].data, dtype=np.float64)
    if data.shape[0] != 5:
        raise CorruptFile(path, f"expected 5 rows, found shape {data.shape}")
    formula = loglinear_wavelength(header, data.shape[1])
    if "WAVELENGTH" in str(header.get("EXTEN0", "")).upper():
        wavelength = data[2]
        worst = np.max(np.abs(wavelength - formula))
        if not worst <= WAVELENGTH_TOLERANCE:
            raise CorruptFile(
                path, f"wavelength row disagrees with CRVAL1/CD1_1 by {worst:.3g} Å"
            )
    else:  # DR1: row 2 is the continuum-normalised flux
        wavelength = formula
    return Spectrum(
        wavelength=wavelength, flux=data[0], ivar=data[1], bad=data[3] != 0,
        medium=VACUUM, format="lamost-image", source=str(path),
        instrument="LAMOST LRS", resolving_power=LAMOST_RESOLVING_POWER,
        **_identity(header, path),
    )


@register_reader(
    "lamost-table",
    "LAMOST DR9+ BINTABLE 'COADD' with array columns FLUX, IVAR, WAVELENGTH, ANDMASK",
    identify=_is_table,
    priority=10,
)
def read_lamost_table(hdul, path) -> Spectrum:
    """Read the DR9+ layout: one row of array columns in the ``COADD`` extension."""
    header = fits.Header(hdul[0].header)
    header.extend(hdul["COADD"].header, unique=True)
    table = hdul["COADD"].data
    if len(table) < 1:
        raise CorruptFile(path, "COADD table has no row")
    row = table[0]
    columns = {name.upper(): name for name in table.columns.names}

    def column(name):
        return np.asarray(row[columns[name]], dtype=np.float64) if name in columns else None

    andmask = column("ANDMASK")
    return Spectrum(
        wavelength=column("WAVELENGTH"), flux=column("FLUX"), ivar=column("IVAR"),
        bad=None if andmask is None else andmask != 0,
        medium=VACUUM, format="lamost-table", source=str(path),
        instrument="LAMOST LRS", resolving_power=LAMOST_RESOLVING_POWER,
        **_identity(header, path),
    )
