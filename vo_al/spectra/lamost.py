"""LAMOST low-resolution spectra: the 5-row image layout (DR1–DR8) and the
BINTABLE ``COADD`` layout (DR9+).

Both are vacuum, heliocentric, log-linear wavelengths, R ≈ 1800.

Wavelengths: a file's own wavelength row (column) is trusted when it is
plausible (finite, strictly increasing, inside :data:`WAVELENGTH_RANGE`,
log-linear to :data:`LOGLINEAR_TOLERANCE`), whatever the header says: real
DR5 files carry the placeholder ``CRPIX1 = -9999`` next to a valid row. The
header solution is used only where row 2 is not a wavelength (DR1's
'Subcontinuum', told by EXTEN0) and must then be plausible too.

Bad pixels: the and-mask (bad in every exposure) marks a pixel bad, and so
does the or-mask (bad in at least one exposure) *where ivar = 0*: there no
exposure was kept and the value is a sky-line or cosmic-ray residual. An
or-masked pixel with ivar > 0 was combined from the clean exposures and is
kept, as is ivar = 0 with real flux and no mask bit (LAMOST's zeroed Hα
emission cores). See ``docs/preprocessing.md`` for the evidence.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from .headers import file_stem, number, pick, text
from .record import VACUUM, Spectrum
from .registry import CorruptFile, register_reader

__all__ = ["LAMOST_RESOLVING_POWER", "WAVELENGTH_RANGE", "LOGLINEAR_TOLERANCE",
           "loglinear_wavelength", "lamost_bad_pixels"]

LAMOST_RESOLVING_POWER = 1800.0
#: Range (Å) a LAMOST low-resolution wavelength solution must lie within
#: (the real files span 3700–9100 Å).
WAVELENGTH_RANGE = (3000.0, 10500.0)
#: Largest relative deviation of a pixel's log-wavelength step from the median
#: step for a solution to count as log-linear (float32 rows: 5e-4).
LOGLINEAR_TOLERANCE = 0.01
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
    with np.errstate(over="ignore"):  # absurd keys give inf, refused by the caller
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


def _implausible(wavelength: np.ndarray) -> str:
    """'' when ``wavelength`` is a plausible LAMOST solution, else why not."""
    lo, hi = WAVELENGTH_RANGE
    if wavelength.size < 2 or not np.isfinite(wavelength).all():
        return "is not finite"
    if not (np.diff(wavelength) > 0).all():
        return "is not strictly increasing"
    if wavelength[0] < lo or wavelength[-1] > hi:
        return f"spans {wavelength[0]:.6g}–{wavelength[-1]:.6g} Å, outside {lo:g}–{hi:g} Å"
    step = np.diff(np.log10(wavelength))
    spread = np.max(np.abs(step / np.median(step) - 1.0))
    if not spread <= LOGLINEAR_TOLERANCE:
        return f"is not log-linear (its log-step varies by {spread:.1%})"
    return ""


def _checked(wavelength: np.ndarray, what: str, path) -> np.ndarray:
    """``wavelength`` when plausible; :class:`CorruptFile` naming ``what`` otherwise."""
    why = _implausible(wavelength)
    if why:
        raise CorruptFile(path, f"{what} {why}")
    return wavelength


def lamost_bad_pixels(ivar, andmask, ormask) -> np.ndarray | None:
    """LAMOST's pixel masks turned into vo-al's bad-pixel mask.

    Parameters
    ----------
    ivar : ndarray or None
        Inverse variance (0 = no weight); None when the file has none.
    andmask, ormask : ndarray or None
        Pixel bits set in every exposure / in at least one exposure.

    Returns
    -------
    ndarray of bool or None
        True where the and-mask is set, or where the or-mask is set and
        ivar = 0; None when the file has neither mask. (The record adds
        non-finite flux and ivar = 0 with zero flux.)
    """
    masks = [np.asarray(andmask) != 0] if andmask is not None else []
    if ormask is not None and ivar is not None:
        masks.append((np.asarray(ormask) != 0) & ~(np.asarray(ivar) > 0))
    return np.logical_or.reduce(masks) if masks else None


@register_reader(
    "lamost-image",
    "LAMOST low-res primary image of 5 rows (flux, ivar, wavelength or "
    "subcontinuum, andmask, ormask)",
    identify=_is_image,
    priority=10,
)
def read_lamost_image(hdul, path) -> Spectrum:
    """Read the DR1–DR8 image layout.

    Row 2 is used as the wavelength whenever EXTEN0 names it so and it is
    plausible (the header may hold placeholders such as ``CRPIX1 = -9999``);
    DR1's 'Subcontinuum' row gets the header's log-linear solution.
    """
    header = hdul[0].header
    data = np.asarray(hdul[0].data, dtype=np.float64)
    if data.shape[0] != 5:
        raise CorruptFile(path, f"expected 5 rows, found shape {data.shape}")
    if "WAVELENGTH" in str(header.get("EXTEN0", "")).upper():
        wavelength = _checked(data[2], "wavelength row", path)
    else:  # DR1: row 2 is the continuum-normalised flux
        wavelength = _checked(loglinear_wavelength(header, data.shape[1]),
                              "header wavelength solution (CRVAL1/CD1_1/CRPIX1)", path)
    return Spectrum(
        wavelength=wavelength, flux=data[0], ivar=data[1],
        bad=lamost_bad_pixels(data[1], data[3], data[4]),
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

    ivar = column("IVAR")
    return Spectrum(
        wavelength=_checked(column("WAVELENGTH"), "WAVELENGTH column", path),
        flux=column("FLUX"), ivar=ivar,
        bad=lamost_bad_pixels(ivar, column("ANDMASK"), column("ORMASK")),
        medium=VACUUM, format="lamost-table", source=str(path),
        instrument="LAMOST LRS", resolving_power=LAMOST_RESOLVING_POWER,
        **_identity(header, path),
    )
