"""The one preprocessing path for training and pool spectra alike.

A :class:`~vo_al.spectra.record.Spectrum` becomes a fixed-length vector:

1. reject a missing, non-finite or non-increasing wavelength solution;
2. convert the wavelengths to the working medium (vacuum by default, the
   LAMOST medium), using the VALD air/vacuum formula;
3. check that the window is covered (to within one output step);
4. cut a slice around the window with a margin for the blur;
5. refuse a window with no usable pixel (all bad, or none with ivar > 0),
   then interpolate over bad pixels (``Spectrum.bad``) from their good
   neighbours; pixels with ivar = 0 but real flux are kept (LAMOST's zeroed
   Hα emission cores);
6. blur: ``"resolution"`` degrades the spectrum to the target resolving power
   (σ in Å from the two resolving powers, converted to native pixels),
   ``"fixed"`` is the paper's 7 px Gaussian on native pixels, applied only to
   spectra whose resolving power is above the target, ``"none"`` skips it;
7. ``np.interp`` onto ``linspace(wave_min, wave_max, n_points)``;
8. min–max scale to [−1, 1].

Unusable data never raise: :func:`preprocess` returns a zero vector with a
:class:`Quality` code and a reason. See ``docs/preprocessing.md``.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .options import BLUR_MODES, PREPROCESS_VERSION, PreprocessConfig

__all__ = [
    "Quality",
    "QUALITY_REASONS",
    "PreprocessConfig",
    "Preprocessed",
    "preprocess",
    "air_to_vacuum",
    "vacuum_to_air",
    "to_working_medium",
    "blur_sigma_angstrom",
    "FWHM_PER_SIGMA",
    "BLUR_MODES",
    "PREPROCESS_VERSION",
]

#: FWHM of a Gaussian in units of its σ, 2·sqrt(2·ln 2).
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))

#: Gaussian kernels are cut at this many σ (scipy's ``truncate``); the slice
#: cut around the window keeps at least this margin.
_TRUNCATE = 4.0

#: A window whose flux range is below this fraction of its largest absolute
#: flux is taken as flat (it carries no shape to learn from).
_FLAT_RELATIVE_RANGE = 2e-5


class Quality(enum.IntEnum):
    """Why a spectrum is (un)usable; stored as uint8 in the pool, 0 = usable.

    The values are part of the pool file format: never renumber them.
    """

    OK = 0
    NO_WAVELENGTH = 1
    WINDOW_NOT_COVERED = 2
    ALL_BAD = 3
    FLAT_OR_ZERO = 4
    TOO_MANY_BAD = 5

    @property
    def reason(self) -> str:
        """Generic one-line description of the code."""
        return QUALITY_REASONS[self]


#: Generic description of each :class:`Quality` code.
QUALITY_REASONS = {
    Quality.OK: "",
    Quality.NO_WAVELENGTH: "no usable wavelength solution (missing, non-finite or not increasing)",
    Quality.WINDOW_NOT_COVERED: "the spectrum does not cover the wavelength window",
    Quality.ALL_BAD: "no usable pixel in the window (all NaN or masked, or none with ivar > 0)",
    Quality.FLAT_OR_ZERO: "the flux in the window is flat or zero",
    Quality.TOO_MANY_BAD: "too many bad pixels in the window",
}


@dataclass
class Preprocessed:
    """Result of :func:`preprocess`.

    Attributes
    ----------
    vector : ndarray of float32, shape (n_points,)
        The scaled spectrum; zeros when ``quality`` is not OK.
    quality : Quality
    reason : str
        Human-readable detail; ``''`` when OK.
    """

    vector: np.ndarray
    quality: Quality
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when the vector is usable."""
        return self.quality == Quality.OK


def _refractive_index_air(wavelength_air):
    """VALD (Piskunov) refractive index of air at an air wavelength in Å."""
    s2 = (1e4 / wavelength_air) ** 2
    return 1.0 + 8.336624212083e-5 + 2.408926869968e-2 / (130.1065924522 - s2) + 1.599740894897e-4 / (
        38.92568793293 - s2
    )


def air_to_vacuum(wavelength):
    """Convert air wavelengths to vacuum with the VALD formula.

    Parameters
    ----------
    wavelength : float or array_like
        Air wavelengths in Å (valid above ≈2000 Å).

    Returns
    -------
    float or ndarray
        Vacuum wavelengths in Å; 6562.801 → 6564.614.
    """
    wavelength = np.asarray(wavelength, dtype=np.float64)
    return wavelength * _refractive_index_air(wavelength)


def vacuum_to_air(wavelength):
    """Convert vacuum wavelengths to air, the exact inverse of :func:`air_to_vacuum`.

    Solves λ_vac = λ_air·n(λ_air) by fixed-point iteration (n varies so slowly
    that three steps reach 1e-9 Å).

    Parameters
    ----------
    wavelength : float or array_like
        Vacuum wavelengths in Å.

    Returns
    -------
    float or ndarray
        Air wavelengths in Å.
    """
    vacuum = np.asarray(wavelength, dtype=np.float64)
    air = vacuum / _refractive_index_air(vacuum)
    for _ in range(3):
        air = vacuum / _refractive_index_air(air)
    return air


def blur_sigma_angstrom(source_R, target_R, wavelength) -> float:
    """σ in Å of the Gaussian that degrades resolving power ``source_R`` to ``target_R``.

    σ = sqrt(FWHM_target² − FWHM_source²) / 2.3548 with FWHM = λ / R.

    Parameters
    ----------
    source_R, target_R : float
        Resolving powers λ/Δλ of the spectrum and of the target.
    wavelength : float
        Wavelength in Å where the widths are evaluated.

    Returns
    -------
    float
        0 when the source is already at or below the target resolution, or
        when ``source_R`` is unknown (NaN or not positive).
    """
    source_R, target_R = float(source_R), float(target_R)
    if not (np.isfinite(source_R) and source_R > 0) or source_R <= target_R:
        return 0.0
    fwhm_t = wavelength / target_R
    fwhm_s = wavelength / source_R
    return float(np.sqrt(fwhm_t * fwhm_t - fwhm_s * fwhm_s) / FWHM_PER_SIGMA)


def _convert(wavelength, to_vacuum: bool | None):
    """Convert between media: True air→vacuum, False vacuum→air, None no change."""
    if to_vacuum is None:
        return wavelength
    return air_to_vacuum(wavelength) if to_vacuum else vacuum_to_air(wavelength)


@functools.lru_cache(maxsize=16)
def _grid(config: PreprocessConfig) -> np.ndarray:
    """Cached, read-only :meth:`PreprocessConfig.grid`."""
    grid = config.grid()
    grid.flags.writeable = False
    return grid


def _fail(config: PreprocessConfig, quality: Quality, detail: str = "") -> Preprocessed:
    reason = QUALITY_REASONS[quality] + (f": {detail}" if detail else "")
    return Preprocessed(np.zeros(config.n_points, dtype=np.float32), quality, reason)


def _blur_sigma(spectrum, config: PreprocessConfig, mean_step: float) -> float:
    """Blur σ in Å for this spectrum (0 for none)."""
    if config.blur == "resolution":
        return blur_sigma_angstrom(spectrum.resolving_power, config.target_resolving_power, config.centre)
    if config.blur == "fixed":
        R = float(spectrum.resolving_power)
        if np.isfinite(R) and R > config.target_resolving_power:
            return config.fixed_blur_pixels * mean_step
    return 0.0


def _valid_wavelength(wavelength: np.ndarray) -> str:
    """'' when the wavelengths are finite and strictly increasing, else why not."""
    if wavelength.size < 2:
        return f"{wavelength.size} pixel(s)"
    if not np.isfinite(wavelength).all():
        return "non-finite wavelengths"
    if not (np.diff(wavelength) > 0).all():
        return "wavelengths not strictly increasing"
    return ""


def to_working_medium(wavelength, medium: str, config: PreprocessConfig) -> np.ndarray:
    """Wavelengths in a spectrum's medium → the pool's working medium.

    Parameters
    ----------
    wavelength : array-like
        Å, in ``medium``.
    medium : {'air', 'vacuum'}
    config : PreprocessConfig
        Its ``vacuum`` flag names the working medium.

    Returns
    -------
    ndarray
    """
    return _convert(np.asarray(wavelength, dtype=np.float64), _conversion(medium, config))


def _conversion(medium: str, config: PreprocessConfig) -> bool | None:
    """True: convert air→vacuum, False: vacuum→air, None: already in the working medium."""
    if medium == "air" and config.vacuum:
        return True
    if medium == "vacuum" and not config.vacuum:
        return False
    return None


def _coverage(wavelength, to_vacuum, config: PreprocessConfig) -> str:
    """'' when the window is covered to within one output step, else why not."""
    first, last = _convert(wavelength[[0, -1]], to_vacuum)
    step = config.step
    if first > config.wave_min + step or last < config.wave_max - step:
        return (f"spectrum spans {first:.1f}–{last:.1f} Å, "
                f"window {config.wave_min:g}–{config.wave_max:g} Å")
    return ""


def _window_slice(spectrum, config: PreprocessConfig, to_vacuum, margin: float):
    """Working-medium wavelengths, flux, bad mask and weight mask (ivar > 0, all
    True without ivar) of the pixels within ``margin`` Å of the window."""
    wavelength = spectrum.wavelength
    i0 = max(int(np.searchsorted(wavelength, config.wave_min - margin)) - 1, 0)
    i1 = int(np.searchsorted(wavelength, config.wave_max + margin)) + 1
    flux = spectrum.flux[i0:i1]
    bad = ~np.isfinite(flux)
    if spectrum.bad is not None:
        bad |= spectrum.bad[i0:i1]
    weighted = np.ones(flux.size, bool) if spectrum.ivar is None else spectrum.ivar[i0:i1] > 0
    return _convert(wavelength[i0:i1], to_vacuum), flux, bad, weighted


def _check_bad(wave, bad, weighted, config: PreprocessConfig) -> Preprocessed | None:
    """ALL_BAD / TOO_MANY_BAD result when the window has too few good pixels, else None.

    Pixels with ivar = 0 but real flux count as good (LAMOST's zeroed emission
    cores), but at least one good pixel of the window must have ivar > 0.
    """
    inside = (wave >= config.wave_min) & (wave <= config.wave_max)
    n_bad, n_inside = int(np.count_nonzero(bad & inside)), int(np.count_nonzero(inside))
    detail = f"{n_bad} of {n_inside} pixels in the window"
    if bad.all() or (n_inside and n_bad == n_inside):
        return _fail(config, Quality.ALL_BAD, detail)
    if n_inside and not np.any(weighted & ~bad & inside):
        return _fail(config, Quality.ALL_BAD, f"none of the {n_inside} pixels in the window "
                                              "has ivar > 0")
    if n_bad > config.max_bad_fraction * n_inside:
        return _fail(config, Quality.TOO_MANY_BAD, detail)
    return None


def _fill_bad(wavelength, flux, bad) -> np.ndarray:
    """Replace bad pixels by linear interpolation between good neighbours."""
    if not bad.any():
        return flux
    good = ~bad
    flux = flux.copy()
    flux[bad] = np.interp(wavelength[bad], wavelength[good], flux[good])
    return flux


def _scale(values: np.ndarray):
    """Min–max scale to [−1, 1]; None when the values are flat or not finite."""
    lo, hi = values.min(), values.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    if hi - lo <= _FLAT_RELATIVE_RANGE * max(abs(lo), abs(hi)) or hi == lo:
        return None
    return (2.0 * ((values - lo) / (hi - lo)) - 1.0).astype(np.float32)


def preprocess(spectrum, config: PreprocessConfig = PreprocessConfig()) -> Preprocessed:
    """Turn one spectrum into the fixed-length vector the model sees.

    Parameters
    ----------
    spectrum : vo_al.spectra.record.Spectrum
        Needs ``wavelength``, ``flux``, ``medium``, ``bad``, ``ivar`` (None
        when unknown) and ``resolving_power``.
    config : PreprocessConfig

    Returns
    -------
    Preprocessed
        Never raises for bad data: an unusable spectrum gets a zero vector,
        a :class:`Quality` code and a reason.
    """
    wavelength = spectrum.wavelength
    why = _valid_wavelength(wavelength)
    if why:
        return _fail(config, Quality.NO_WAVELENGTH, why)
    to_vacuum = _conversion(spectrum.medium, config)
    why = _coverage(wavelength, to_vacuum, config)
    if why:
        return _fail(config, Quality.WINDOW_NOT_COVERED, why)

    mean_step = (wavelength[-1] - wavelength[0]) / (wavelength.size - 1)
    sigma = _blur_sigma(spectrum, config, mean_step)
    margin = _TRUNCATE * sigma + config.step + 2.0 * mean_step + 5.0  # 5 Å > any air/vacuum shift
    wave, flux, bad, weighted = _window_slice(spectrum, config, to_vacuum, margin)
    failure = _check_bad(wave, bad, weighted, config)
    if failure is not None:
        return failure
    flux = _fill_bad(wave, flux, bad)
    size = np.abs(flux).max()  # normalise first: no flux unit may overflow below
    if not size > 0:
        return _fail(config, Quality.FLAT_OR_ZERO)
    flux = flux / size

    if sigma > 0:
        pixel = (wave[-1] - wave[0]) / (wave.size - 1)
        flux = gaussian_filter1d(flux, sigma / pixel, mode="nearest", truncate=_TRUNCATE)
    vector = _scale(np.interp(_grid(config), wave, flux))
    if vector is None:
        return _fail(config, Quality.FLAT_OR_ZERO)
    return Preprocessed(vector, Quality.OK, "")
