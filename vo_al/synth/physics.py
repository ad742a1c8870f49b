"""The physics of the synthetic spectra: line lists, the fine grid, line profiles.

Everything here is in the star's rest frame and in **vacuum** wavelengths
(Å). A spectrum is first built, normalised to its continuum, on a fine
log-uniform grid; :func:`observe` then blurs it with the instrument's
Gaussian line-spread function, Doppler-shifts it and samples it at the
instrument's pixels. Continuum shapes, noise and instrument artefacts live in
:mod:`vo_al.synth.instruments`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = [
    "C_KMS",
    "FWHM_TO_SIGMA",
    "HALPHA",
    "FineGrid",
    "fine_grid",
    "air_to_vacuum",
    "planck",
    "balmer_strength",
    "photosphere",
    "add_emission",
    "absorb_component",
    "equivalent_width",
    "observe",
]

C_KMS = 299_792.458
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
#: Hα in vacuum (6562.80 Å in air).
HALPHA = 6564.61
#: Balmer lines (vacuum Å) with the width multiplier of their Stark wings.
BALMER = (
    (6564.61, 1.0), (4862.68, 1.25), (4341.68, 1.4), (4102.89, 1.5),
    (3971.20, 1.4), (3890.16, 1.2), (3836.47, 1.0), (3798.98, 0.9),
)
#: He I lines (vacuum Å; 6679.99 is the 6678.15 Å air line) and relative depth.
HELIUM = (
    (4027.33, 0.5), (4472.73, 1.0), (4923.30, 0.5), (5017.08, 0.4),
    (5877.25, 1.0), (6679.99, 0.75), (7067.14, 0.5),
)
#: Strong lines of cool stars (vacuum Å): centre, depth per unit strength,
#: Lorentz half width at unit strength (km/s).
METALS = (
    (4227.92, 0.6, 120.0),  # Ca I
    (4384.78, 0.35, 40.0),  # Fe I
    (4046.95, 0.35, 40.0),  # Fe I
    (5168.76, 0.4, 90.0), (5174.13, 0.45, 100.0), (5185.05, 0.5, 110.0),  # Mg b
    (5270.99, 0.3, 40.0), (5329.52, 0.25, 30.0),  # Fe I
    (5891.58, 0.6, 80.0), (5897.56, 0.55, 70.0),  # Na D
    (6548.05, 0.15, 15.0),  # Fe I 6546.24 (air) next to Hα
)
CALCIUM_HK = ((3934.78, 1.0), (3969.59, 0.9))
CALCIUM_TRIPLET = ((8500.36, 0.7), (8544.44, 1.0), (8664.52, 0.9))
#: Lines of hot stars: (centre vacuum Å, depth, log-teff centre, log width).
HOT_METALS = (
    (4482.39, 0.3, math.log(10_000.0), 0.35),  # Mg II 4481
    (6348.86, 0.12, math.log(12_000.0), 0.25),  # Si II 6347
    (6373.13, 0.09, math.log(12_000.0), 0.25),  # Si II 6371
    (6579.87, 0.08, math.log(20_000.0), 0.2),  # C II 6578
    (6584.70, 0.06, math.log(20_000.0), 0.2),  # C II 6583
)
#: Where the G band of CH sits (vacuum Å) and its Gaussian width (km/s).
G_BAND = (4305.0, 400.0)
#: Fe II emission of Be stars next to Hα (6516.08 Å air).
FE_II = 6517.88
#: Higher Balmer emission relative to Hα for Be stars (Balmer decrement).
BALMER_EMISSION = ((4862.68, 0.22), (4341.68, 0.09))
#: Number of weak metal lines in the fixed "forest" of cool-star lines.
FOREST_LINES = 2000
_FOREST_SEED = 20_200_122
_THERMAL_KMS = 10.0
_HC_K = 1.438_776_877e8  # h c / k in Å K


def air_to_vacuum(wave_air):
    """Vacuum wavelength of an air wavelength (VALD / Piskunov formula).

    Parameters
    ----------
    wave_air : float or ndarray
        Air wavelength in Å.

    Returns
    -------
    float or ndarray
        Vacuum wavelength in Å (6562.801 → 6564.614).
    """
    s2 = (1e4 / np.asarray(wave_air, dtype=np.float64)) ** 2
    n = (
        1.0 + 8.336624212083e-5 + 2.408926869968e-2 / (130.1065924522 - s2)
        + 1.599740894897e-4 / (38.92568793293 - s2)
    )
    return wave_air * n


def planck(wave, teff):
    """Black-body B_λ(T) in arbitrary units, normalised to 1 at 6500 Å.

    Parameters
    ----------
    wave : ndarray
        Wavelength in Å.
    teff : float
        Temperature in K.

    Returns
    -------
    ndarray
    """
    def shape(lam):
        return lam ** -5.0 / np.expm1(_HC_K / (lam * teff))

    return shape(np.asarray(wave, dtype=np.float64)) / shape(6500.0)


@dataclass(frozen=True, eq=False)
class FineGrid:
    """A log-uniform vacuum wavelength grid.

    Attributes
    ----------
    loglam : ndarray
        Natural logarithm of the wavelengths.
    step : float
        Step in ln λ (a velocity step of ``step * C_KMS`` km/s).
    """

    loglam: np.ndarray
    step: float

    @property
    def wave(self) -> np.ndarray:
        """Wavelengths in Å."""
        return np.exp(self.loglam)

    def span(self, center: float, half_kms: float) -> slice:
        """The slice of grid points within ±``half_kms`` of ``center`` (Å)."""
        mid = (math.log(center) - self.loglam[0]) / self.step
        half = half_kms / C_KMS / self.step
        lo = max(int(mid - half), 0)
        hi = min(int(mid + half) + 2, self.loglam.size)
        return slice(lo, max(lo, hi))

    def velocity(self, where: slice, center: float) -> np.ndarray:
        """Velocity (km/s) of the points in ``where`` relative to ``center`` (Å)."""
        return (self.loglam[where] - math.log(center)) * C_KMS


@functools.lru_cache(maxsize=None)
def fine_grid(wave_min: float, wave_max: float, step: float) -> FineGrid:
    """The fine grid from ``wave_min`` to ``wave_max`` (Å), built once per process.

    Parameters
    ----------
    wave_min, wave_max : float
        Range in Å (vacuum, rest frame).
    step : float
        Step in ln λ.

    Returns
    -------
    FineGrid
    """
    n = int(math.ceil(math.log(wave_max / wave_min) / step)) + 1
    loglam = math.log(wave_min) + step * np.arange(n, dtype=np.float64)
    loglam.setflags(write=False)
    return FineGrid(loglam, step)


@functools.lru_cache(maxsize=None)
def _forest(grid: FineGrid) -> np.ndarray:
    """Optical depth of a fixed forest of weak metal lines (strength 1)."""
    rng = np.random.default_rng(_FOREST_SEED)
    wave = grid.wave
    # line density grows to the blue like the real line blanketing
    u = rng.random(FOREST_LINES)
    centers = 1.0 / (1.0 / wave[-1] + u * (1.0 / wave[0] - 1.0 / wave[-1]))
    depths = 0.45 * rng.random(FOREST_LINES) ** 3
    tau = np.zeros_like(wave)
    for center, depth in zip(centers, depths):
        where = grid.span(center, 40.0)
        v = grid.velocity(where, center)
        tau[where] -= np.log1p(-depth * np.exp(-0.5 * (v / 8.0) ** 2))
    tau.setflags(write=False)
    return tau


def _profile(grid, center, sigma, gamma, eta):
    """Unit-height pseudo-Voigt around ``center`` (Å) and the slice it covers.

    ``sigma`` is the Gaussian σ and ``gamma`` the Lorentzian half width, both
    in km/s; ``eta`` is the Lorentzian fraction.
    """
    where = grid.span(center, max(5.0 * sigma, 40.0 * gamma if eta > 0.0 else 0.0))
    v = grid.velocity(where, center)
    profile = (1.0 - eta) * np.exp(-0.5 * (v / sigma) ** 2)
    if eta > 0.0:
        profile += eta / (1.0 + (v / gamma) ** 2)
    return where, profile


def _absorb(flux, grid, center, depth, sigma, gamma=0.0, eta=0.0):
    """Multiply ``flux`` by 1 − depth·(pseudo-Voigt profile) around ``center``."""
    if depth > 0.0:
        where, profile = _profile(grid, center, sigma, gamma, eta)
        flux[where] *= 1.0 - min(depth, 0.97) * profile


def _bump(teff, center, width):
    """A log-normal strength curve in teff peaking at ``center`` (both as ln)."""
    return math.exp(-0.5 * ((math.log(teff) - center) / width) ** 2)


def balmer_strength(teff: float) -> float:
    """Relative strength of the Balmer lines, 1 at ≈9500 K (A0)."""
    width = 0.35 if teff < 9500.0 else 0.7
    return _bump(teff, math.log(9500.0), width)


def photosphere(grid: FineGrid, teff: float, vsini: float, metal: float = 1.0) -> np.ndarray:
    """Continuum-normalised absorption spectrum of a star at rest.

    Parameters
    ----------
    grid : FineGrid
    teff : float
        Effective temperature (K): sets the Balmer, He I, Ca II and metal lines.
    vsini : float
        Projected rotation (km/s); broadens every line.
    metal : float
        Scale of the metal lines (≈ metallicity).

    Returns
    -------
    ndarray
        Normalised flux on ``grid`` (1 = continuum).
    """
    flux = np.ones(grid.loglam.size)
    core = math.hypot(_THERMAL_KMS, 0.5 * vsini)
    s_h = balmer_strength(teff)
    for center, wing in BALMER:
        _absorb(flux, grid, center, 0.3 + 0.42 * s_h, core,
                wing * (30.0 + 260.0 * s_h**2), 0.25 + 0.6 * s_h)
    s_he = _bump(teff, math.log(20_000.0), 0.3) if teff > 10_500.0 else 0.0
    for center, rel in HELIUM:
        _absorb(flux, grid, center, 0.25 * rel * s_he, math.hypot(15.0, 0.5 * vsini))
    for center, depth, log_t, width in HOT_METALS:
        _absorb(flux, grid, center, depth * _bump(teff, log_t, width), core)
    s_ca = min(max((10_000.0 - teff) / 4000.0, 0.0), 1.0)
    hot_fade = min(max((16_000.0 - teff) / 6000.0, 0.0), 1.0)
    for center, rel in CALCIUM_HK:
        _absorb(flux, grid, center, rel * (0.2 * hot_fade + 0.7 * s_ca), core,
                40.0 + 250.0 * s_ca**2, 0.5)
    for center, rel in CALCIUM_TRIPLET:
        _absorb(flux, grid, center, rel * (0.1 * hot_fade + 0.45 * s_ca), core,
                30.0 + 120.0 * s_ca, 0.4)
    s_m = metal * min(max((7200.0 - teff) / 2400.0, 0.0), 1.2)
    if s_m > 0.0:
        for center, depth, gamma in METALS:
            _absorb(flux, grid, center, depth * s_m, core, 5.0 + gamma * s_m, 0.5)
        _absorb(flux, grid, G_BAND[0], 0.25 * s_m, G_BAND[1])
        flux *= np.exp(-s_m * _forest(grid))
    return flux


def add_emission(flux, grid, center, ew, sigma, *, eta=0.0, separation=0.0, vr_ratio=1.0):
    """Add an emission line of equivalent width ``ew`` (Å) to ``flux`` in place.

    Parameters
    ----------
    flux : ndarray
        Normalised flux on ``grid``.
    grid : FineGrid
    center : float
        Rest wavelength of the line (Å).
    ew : float
        Equivalent width of the added emission (Å, positive).
    sigma : float
        Gaussian σ of each peak (km/s).
    eta : float
        Lorentzian fraction (Be-star wings); the Lorentzian has the Gaussian's
        half width.
    separation : float
        Peak separation (km/s); 0 gives one peak.
    vr_ratio : float
        Height of the violet peak over the red one (double peaks only).
    """
    if ew <= 0.0:
        return
    if separation > 0.0:
        peaks = ((-separation / 2, 2.0 * vr_ratio / (1.0 + vr_ratio)),
                 (separation / 2, 2.0 / (1.0 + vr_ratio)))
    else:
        peaks = ((0.0, 1.0),)
    shapes = []
    area = 0.0
    for velocity, height in peaks:
        where, profile = _profile(grid, center * (1.0 + velocity / C_KMS), sigma,
                                  sigma * math.sqrt(2.0 * math.log(2.0)), eta)
        profile *= height
        area += float(np.sum(profile * np.exp(grid.loglam[where])) * grid.step)
        shapes.append((where, profile))
    if area <= 0.0:  # the line is off the grid
        return
    for where, profile in shapes:
        flux[where] += (ew / area) * profile


def absorb_component(flux, grid, center, depth, sigma, offset=0.0):
    """Multiply ``flux`` by a Gaussian absorption (shell or P Cygni trough)."""
    _absorb(flux, grid, center * (1.0 + offset / C_KMS), depth, sigma)


def equivalent_width(flux, grid, center=HALPHA, half_width=30.0) -> float:
    """Equivalent width ∫(1 − F) dλ over ``center ± half_width`` Å.

    Positive for absorption, negative for emission (the astronomers' sign).
    """
    where = grid.span(center, half_width / center * C_KMS)
    wave = np.exp(grid.loglam[where])
    return float(np.sum((1.0 - flux[where]) * wave) * grid.step)


def observe(flux, grid, loglam_pixels, rv_kms, sigma_lsf):
    """Blur, Doppler-shift and sample a rest-frame spectrum at pixels.

    Parameters
    ----------
    flux : ndarray
        Rest-frame normalised flux on ``grid``.
    grid : FineGrid
    loglam_pixels : ndarray
        ln of the observed vacuum wavelength of each pixel centre.
    rv_kms : float
        Radial velocity (km/s, positive = receding).
    sigma_lsf : float
        σ of the Gaussian line-spread function plus pixel width, in ln λ.

    Returns
    -------
    ndarray
        The normalised flux seen in each pixel.
    """
    blurred = gaussian_filter1d(flux, sigma_lsf / grid.step, mode="nearest", truncate=4.0)
    rest = loglam_pixels - math.log1p(rv_kms / C_KMS)
    return np.interp(rest, grid.loglam, blurred)
