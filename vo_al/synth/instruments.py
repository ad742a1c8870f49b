"""The two instruments: pixels, continuum, Earth's atmosphere, noise and artefacts.

:func:`observe_lamost` and :func:`observe_ccd700` turn a :class:`~.stars.Star`
into the arrays one file holds (an :class:`Observation`). The star's
normalised spectrum comes from :mod:`vo_al.synth.physics`; here it is put on
a continuum, seen through telluric and interstellar absorption, sky lines
and noise, and given the instrument's artefacts. LAMOST files also get the
pipeline's habits seen in the real files: ivar = 0 over the core of strong
emission lines (flux kept), and, in half the files with cosmic rays or sky
residuals, those spikes flagged in the or-mask with ivar = 0.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from . import physics
from .physics import C_KMS, FWHM_TO_SIGMA, HALPHA, FineGrid
from .stars import Star

__all__ = [
    "LAMOST_R",
    "CCD700_R",
    "LAMOST_CRVAL1",
    "LAMOST_CD1_1",
    "LAMOST_MASK",
    "CCD700_ERAS",
    "Observation",
    "lamost_wavelength",
    "star_spectrum",
    "observe_lamost",
    "observe_ccd700",
]

LAMOST_R = 1800.0
CCD700_R = 13_000.0
LAMOST_CRVAL1 = 3.5682
LAMOST_CD1_1 = 1e-4
#: LAMOST pipeline pixel-mask bits: the six the data releases document, and
#: 64, undocumented (the name is ours), which the real DR2 (v2.7.5) files set
#: on sky-line and spike pixels, with ivar = 0 where the value is unusable.
LAMOST_MASK = {"BADCCD": 1, "BADPROFILE": 2, "NOSKY": 4, "BRIGHTSKY": 8, "BADCENTER": 16,
               "NODATA": 32, "OUTLIER": 64}
#: Pixel counts of real LAMOST files and how often they occur.
_LAMOST_LENGTHS = ((3909, 0.7), (3906, 0.1), (3899, 0.1), (3890, 0.1))
#: CCD700 set-ups: pixel scale (Å/px), first-pixel range (Å, air) and pixel
#: count for the IRAF image and for the (cropped) archive SSAP product.
CCD700_ERAS = {
    "old": {"step": (0.25665, 0.25672), "iraf_start": (6250.0, 6268.0), "iraf_n": 1997,
            "ssap_start": (6281.95, 6282.15), "ssap_n": 1757, "detector": "SITe 2000x800"},
    "new": {"step": (0.23088, 0.23094), "iraf_start": (6279.0, 6284.0), "iraf_n": 1953,
            "ssap_start": (6282.0, 6282.2), "ssap_n": 1953, "detector": "PyLoN 2048x512BX"},
}
_CCD700_GAIN = 1.07  # e-/ADU
_CCD700_READ_NOISE = 7.0  # e-
# Fine grids: LAMOST at 5 points per pixel, CCD700 at ≈10 per pixel.
_LAMOST_GRID = (3600.0, 9300.0, 2e-5 * math.log(10.0))
_CCD700_GRID = (6215.0, 6800.0, 4e-6)
#: Telluric bands (air Å): range, number of lines, largest depth.
_TELLURIC_BANDS = (
    (6276.0, 6310.0, 24, 0.35), (6468.0, 6600.0, 40, 0.08), (6867.0, 6885.0, 30, 0.5),
    (7160.0, 7340.0, 80, 0.25), (7594.0, 7621.0, 40, 0.8), (8130.0, 8350.0, 80, 0.2),
    (8950.0, 9100.0, 60, 0.3),
)
#: Diffuse interstellar bands and interstellar Na D (vacuum Å): centre, σ (Å),
#: depth per magnitude of E(B−V).
_ISM = ((4429.3, 6.0, 0.08), (5782.1, 1.0, 0.06), (5798.8, 0.5, 0.04), (6285.6, 2.0, 0.10),
        (6615.4, 0.5, 0.04), (5891.58, 0.15, 0.6), (5897.56, 0.15, 0.5))
#: Night-sky emission lines: air wavelength (Å; [O I] 5577/6300/6364, Na D,
#: and OH lines of the Osterbrock et al. 1996 sky atlas, the three next to Hα
#: included) and brightness (1 ≈ the sky continuum noise at Hα).
_SKY_LINES_AIR = ((5577.338, 3.0), (5889.953, 0.8), (5895.923, 0.6), (6300.304, 1.5),
                  (6363.776, 0.5), (6553.617, 0.3), (6568.779, 0.3), (6577.284, 0.3),
                  (6863.955, 0.8), (7340.885, 0.8), (7913.708, 1.0), (8344.602, 1.2),
                  (8399.170, 1.0), (8430.174, 1.0), (8827.096, 1.2), (8885.850, 1.0))
#: The same lines at their vacuum wavelengths (Å), where LAMOST sees them.
_SKY_LINES = tuple((float(physics.air_to_vacuum(air)), height) for air, height in _SKY_LINES_AIR)
_TELLURIC_SEED = 6_867
#: Photometric bands for the LAMOST S/N keys (Å).
_BANDS = (("U", 3700.0, 4000.0), ("G", 4000.0, 5500.0), ("R", 5600.0, 6900.0),
          ("I", 6900.0, 8300.0), ("Z", 8300.0, 9100.0))
#: Hα region kept free of masked pixels so that the class stays visible.
_HALPHA_CLEAR = (6500.0, 6650.0)
#: LAMOST zeroes ivar, keeping the flux, over the core of strong emission: in
#: the three real emission files Hα peaks of 2.5, 3.5 and 6.5 × the continuum
#: lose 11, 11 and 14 pixels, those above ≈1.15 × the continuum, while Hβ at
#: 1.5× and the Ca II / O I lines at 1.2–1.4× keep their ivar. Runs of the
#: normalised model above ``_CORE_LEVEL`` that peak at ``_CORE_PEAK`` or more
#: get ivar = 0.
_CORE_LEVEL = 1.15
_CORE_PEAK = 2.0
#: Share of LAMOST files whose cosmic-ray / sky-residual spikes the pipeline
#: flags (or-mask OUTLIER, ivar = 0, flux kept); spikes of a sky residual are
#: its pixels beyond ``_SPIKE_SIGMAS`` σ of the noise.
_FLAG_SPIKES = 0.5
_SPIKE_SIGMAS = 3.0


@dataclass
class Observation:
    """Arrays and facts of one synthetic observation.

    Attributes
    ----------
    wave : ndarray
        Pixel wavelengths as the file gives them (vacuum for LAMOST, air for
        CCD700), Å.
    flux : ndarray
        Observed flux (LAMOST: calibrated-looking units; CCD700: ADU).
    continuum : ndarray
        The smooth continuum a pipeline would divide by.
    model : ndarray
        Noise-free flux divided by the true continuum (star × atmosphere).
    noiseless : ndarray
        Noise-free flux before artefacts (cosmic rays, sky residuals, masks).
    ivar : ndarray or None
        Inverse variance (0 = bad pixel); None for CCD700.
    andmask, ormask : ndarray or None
        LAMOST pixel masks.
    truth : dict
        Generating values worth keeping in truth.csv.
    header : dict
        Values the file headers quote (S/N per band, heliocentric correction).
    """

    wave: np.ndarray
    flux: np.ndarray
    continuum: np.ndarray
    model: np.ndarray
    noiseless: np.ndarray
    ivar: np.ndarray | None = None
    andmask: np.ndarray | None = None
    ormask: np.ndarray | None = None
    truth: dict = field(default_factory=dict)
    header: dict = field(default_factory=dict)


def lamost_wavelength(n_pixels: int) -> np.ndarray:
    """LAMOST vacuum wavelengths 10^(3.5682 + 1e-4·i), i = 0 … n−1 (Å)."""
    return 10.0 ** (LAMOST_CRVAL1 + LAMOST_CD1_1 * np.arange(n_pixels, dtype=np.float64))


def _lsf_sigma(resolving_power: float, pixel_dloglam: float) -> float:
    """σ (in ln λ) of the line-spread function combined with the pixel boxcar."""
    return math.hypot(FWHM_TO_SIGMA / resolving_power, pixel_dloglam / math.sqrt(12.0))


def star_spectrum(grid: FineGrid, star: Star) -> tuple[np.ndarray, dict]:
    """Rest-frame normalised spectrum of ``star``, with its Hα measurements.

    Returns
    -------
    flux : ndarray
        Normalised flux on ``grid``.
    truth : dict
        ``halpha_abs_ew`` (photospheric Hα EW), ``em_ew`` (added Hα emission
        EW, NaN when none) and ``halpha_ew`` (net Hα EW; negative = emission),
        all in Å.
    """
    flux = physics.photosphere(grid, star.teff, star.vsini, star.metal)
    abs_ew = physics.equivalent_width(flux, grid)
    em_ew = math.nan
    if star.em_excess > 0.0:
        if star.kind == "weak-emission-infill":
            core = flux[grid.span(HALPHA, 60.0)].min()
            height = star.em_excess * (1.0 - core)
            em_ew = height * star.em_sigma * math.sqrt(2.0 * math.pi) * HALPHA / C_KMS
        else:
            em_ew = abs_ew + star.em_excess
        shape = {"eta": star.em_eta, "separation": star.peak_sep,
                 "vr_ratio": star.vr_ratio or 1.0}
        physics.add_emission(flux, grid, HALPHA, em_ew, star.em_sigma, **shape)
        for center, share in physics.BALMER_EMISSION:
            physics.add_emission(flux, grid, center, share * em_ew, star.em_sigma, **shape)
        physics.add_emission(flux, grid, physics.FE_II, star.fe2_ew, min(star.em_sigma, 80.0))
        for center in (HALPHA, 4862.68):
            physics.absorb_component(flux, grid, center, star.pcyg_depth, star.pcyg_sigma,
                                     star.pcyg_v)
            physics.absorb_component(flux, grid, center, star.shell_depth, star.shell_sigma)
    truth = {"halpha_abs_ew": abs_ew, "em_ew": em_ew,
             "halpha_ew": physics.equivalent_width(flux, grid)}
    return flux, truth


@functools.lru_cache(maxsize=None)
def _atmosphere(instrument: str) -> tuple[FineGrid, np.ndarray, np.ndarray, float]:
    """Fine grid, telluric and interstellar optical depth at the instrument's
    resolution (unit airmass / unit E(B−V)), and the LSF σ in ln λ. Built once."""
    if instrument == "lamost":
        grid = physics.fine_grid(*_LAMOST_GRID)
        sigma = _lsf_sigma(LAMOST_R, LAMOST_CD1_1 * math.log(10.0))
    else:
        grid = physics.fine_grid(*_CCD700_GRID)
        sigma = _lsf_sigma(CCD700_R, 0.2567 / HALPHA)
    rng = np.random.default_rng(_TELLURIC_SEED)
    lines = [(float(physics.air_to_vacuum(rng.uniform(lo, hi))), depth * rng.random() ** 2,
              3.0) for lo, hi, n, depth in _TELLURIC_BANDS for _ in range(n)]
    ism = [(center, depth, sigma_a / center * C_KMS) for center, sigma_a, depth in _ISM]
    return grid, _optical_depth(grid, lines, sigma), _optical_depth(grid, ism, sigma), sigma


def _optical_depth(grid, lines, sigma_lsf):
    """Sum of Gaussian lines (centre Å, depth, σ km/s), blurred by the LSF."""
    tau = np.zeros(grid.loglam.size)
    floor = grid.step * C_KMS
    for center, depth, sigma in lines:
        sigma = max(sigma, floor)
        where = grid.span(center, 5.0 * sigma)
        v = grid.velocity(where, center)
        tau[where] -= np.log1p(-min(depth, 0.95) * np.exp(-0.5 * (v / sigma) ** 2))
    tau = gaussian_filter1d(tau, sigma_lsf / grid.step, mode="nearest", truncate=4.0)
    tau.setflags(write=False)
    return tau


def _foreground(instrument, loglam, airmass, ebv):
    """Transmission of the Earth's atmosphere and the interstellar medium."""
    grid, tellurics, interstellar, _ = _atmosphere(instrument)
    tau = airmass * np.interp(loglam, grid.loglam, tellurics)
    if ebv > 0.0:
        tau += ebv * np.interp(loglam, grid.loglam, interstellar)
    return np.exp(-tau)


def _sky_lines(wave_vac, sigma_lsf, lines):
    """Sky lines (centre Å, peak height) with the LSF's width, at the pixels."""
    sky = np.zeros(wave_vac.size)
    for center, height in lines:
        width = sigma_lsf * center
        near = np.abs(wave_vac - center) < 5.0 * width
        sky[near] += height * np.exp(-0.5 * ((wave_vac[near] - center) / width) ** 2)
    return sky


def _stellar_model(instrument, star, loglam_pixels, rv_obs):
    """Normalised star at the pixels, and its Hα truth."""
    grid, _, _, sigma = _atmosphere(instrument)
    flux, truth = star_spectrum(grid, star)
    return physics.observe(flux, grid, loglam_pixels, rv_obs, sigma), truth


def _cosmic_rays(rng, wave, continuum, flux, near_halpha):
    """Add 1–3 spikes of 1–2 pixels; the first lands near Hα when asked.

    Returns
    -------
    truth : dict
        ``n_cosmic`` and ``artefact_waves``.
    hit : list of int
        The pixels the spikes landed on.
    """
    waves, hit = [], []
    for k in range(int(rng.integers(1, 4))):
        if k == 0 and near_halpha:
            target = HALPHA + rng.uniform(-15.0, 15.0)
            i = int(np.clip(np.searchsorted(wave, target), 0, wave.size - 2))
        else:
            i = int(rng.integers(0, wave.size - 1))
        height = rng.uniform(0.5, 4.0) * continuum[i]
        flux[i] += height
        hit.append(i)
        if rng.random() < 0.5:
            flux[i + 1] += rng.uniform(0.3, 1.0) * height
            hit.append(i + 1)
        waves.append(f"{wave[i]:.2f}")
    return {"n_cosmic": len(waves), "artefact_waves": ";".join(waves)}, hit


def _sky_residuals(rng, wave_vac, sigma_lsf, scale):
    """Badly subtracted sky lines (±), always one of the OH lines next to Hα
    when it is in range. Returns the additive residual and its truth."""
    in_range = [line for line in _SKY_LINES if wave_vac[0] < line[0] < wave_vac[-1]]
    near = [line for line in in_range if abs(line[0] - HALPHA) < 20.0]
    others = [line for line in in_range if line not in near]
    count = min(len(others), int(rng.integers(1, 4)))
    chosen = [near[int(rng.integers(len(near)))]] if near else []
    chosen += [others[i] for i in rng.choice(len(others), count, replace=False)]
    lines = [(c, h ** 0.5 * rng.uniform(0.15, 0.8) * rng.choice((-1.0, 1.0), p=(0.3, 0.7)))
             for c, h in chosen]
    residual = scale * _sky_lines(wave_vac, sigma_lsf, lines)
    truth = {"artefact_waves": ";".join(f"{c:.1f}" for c, _ in lines)}
    return residual, truth


@functools.lru_cache(maxsize=None)
def _lamost_sky(n_pixels: int) -> np.ndarray:
    """Sky brightness at the LAMOST pixels (1 = the continuum under Hα)."""
    _, _, _, sigma = _atmosphere("lamost")
    sky = 1.0 + _sky_lines(lamost_wavelength(n_pixels), sigma, _SKY_LINES)
    sky.setflags(write=False)
    return sky


def _lamost_continuum(rng, wave, teff, ebv, level):
    """Flux-calibrated-looking continuum: black body, reddening, calibration
    ripples and a small step at the dichroic (5900 Å)."""
    extinction = ebv * 3.1 * ((5500.0 / wave) ** 1.2 - (5500.0 / 6500.0) ** 1.2)
    x = (wave - 3700.0) / 5400.0
    ripple = 1.0 + sum(rng.normal(0.0, 0.025) * np.sin(2.0 * np.pi * k * x + rng.uniform(0, 6.3))
                       for k in (1, 2, 3))
    ripple *= 1.0 + rng.normal(0.0, 0.02) * np.tanh((wave - 5900.0) / 30.0)
    return level * physics.planck(wave, teff) * 10.0 ** (-0.4 * extinction) * ripple


def _lamost_masks(rng, wave):
    """And/or masks: a few runs of bad pixels, sometimes a dead red end."""
    andmask = np.zeros(wave.size, dtype=np.int32)
    clear = (wave > _HALPHA_CLEAR[0]) & (wave < _HALPHA_CLEAR[1])
    for _ in range(int(rng.poisson(1.2))):
        start = int(rng.integers(0, wave.size))
        stop = min(wave.size, start + int(rng.geometric(0.12)))
        bits = LAMOST_MASK[str(rng.choice(("BADCCD", "BADPROFILE", "NOSKY", "BADCENTER")))]
        andmask[start:stop] |= bits
    if rng.random() < 0.3:
        andmask[wave.size - int(rng.integers(5, 60)):] |= LAMOST_MASK["NODATA"]
    andmask[clear] = 0
    return andmask


def _emission_cores(model: np.ndarray) -> np.ndarray:
    """Pixels of the runs where ``model`` ≥ ``_CORE_LEVEL`` that peak at ≥ ``_CORE_PEAK``."""
    above = np.r_[False, model >= _CORE_LEVEL, False]
    edges = np.flatnonzero(above[1:] != above[:-1])
    core = np.zeros(model.size, dtype=bool)
    for start, stop in zip(edges[::2], edges[1::2]):
        if model[start:stop].max() >= _CORE_PEAK:
            core[start:stop] = True
    return core


def _lamost_artefacts(rng, star, wave, continuum, flux, sigma_flux, level):
    """Add the star kind's sky residual or cosmic rays to ``flux`` (in place).

    Returns
    -------
    truth : dict
        The artefacts' truth values.
    flagged : ndarray of bool
        Spike pixels the pipeline flags (in ``_FLAG_SPIKES`` of the files
        that have spikes).
    """
    spikes = np.zeros(wave.size, dtype=bool)
    truth = {}
    if star.kind == "sky-residual":
        _, _, _, sigma = _atmosphere("lamost")
        residual, truth = _sky_residuals(rng, wave, sigma, level)
        flux += residual
        spikes |= np.abs(residual) > _SPIKE_SIGMAS * sigma_flux
    if star.kind == "cosmic-ray":
        truth, hit = _cosmic_rays(rng, wave, continuum, flux, rng.random() < 0.6)
        spikes[hit] = True
    if spikes.any() and rng.random() < _FLAG_SPIKES:
        return truth, spikes
    return truth, np.zeros(wave.size, dtype=bool)


def observe_lamost(rng: np.random.Generator, star: Star) -> Observation:
    """A LAMOST low-resolution observation of ``star``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The file's generator (continues the one that drew ``star``).
    star : Star

    Returns
    -------
    Observation
        Vacuum wavelengths on the log-linear LAMOST grid, R = 1800. ivar is
        0 over and-masked pixels, strong emission cores (flux kept) and
        flagged spikes (or-mask OUTLIER, flux kept).
    """
    lengths, weights = zip(*_LAMOST_LENGTHS)
    wave = lamost_wavelength(int(rng.choice(lengths, p=weights)))
    loglam = np.log(wave)
    model, truth = _stellar_model("lamost", star, loglam, star.rv)
    ebv = float(min(rng.exponential(0.25), 1.5))
    model *= _foreground("lamost", loglam, float(rng.uniform(1.0, 1.8)), ebv)
    level = 10.0 ** rng.uniform(1.7, 4.2)
    continuum = _lamost_continuum(rng, wave, star.teff, ebv, level)
    clean = continuum * model
    sky = _lamost_sky(wave.size)
    edge = 1.0 + 3.0 * np.exp(-(wave - 3700.0) / 120.0) + 1.5 * np.exp((wave - 9100.0) / 150.0)
    # photon noise of star (60 % at Hα) and sky (40 %), worse at the CCD edges
    photons = 0.6 * np.maximum(clean, 0.0) / level + 0.4 * sky
    sigma_flux = (level / star.snr) * np.sqrt(photons) * edge
    flux = clean + sigma_flux * rng.standard_normal(wave.size)
    truth.update(ebv=ebv, rv_obs_kms=star.rv)
    extra, flagged = _lamost_artefacts(rng, star, wave, continuum, flux, sigma_flux, level)
    truth.update(extra)
    andmask = _lamost_masks(rng, wave)
    ormask = (andmask | np.where(sky > 2.0, LAMOST_MASK["BRIGHTSKY"], 0)
              | np.where(flagged, LAMOST_MASK["OUTLIER"], 0)).astype(np.int32)
    ivar = 1.0 / sigma_flux**2
    ivar[(andmask != 0) | flagged | _emission_cores(model)] = 0.0
    flux[(andmask & LAMOST_MASK["NODATA"]) != 0] = 0.0
    good = ivar > 0
    header = {f"SNR{band}": _median_snr(clean, sigma_flux, good & (wave >= lo) & (wave < hi))
              for band, lo, hi in _BANDS}
    header["HELIO_RV"] = float(rng.uniform(-30.0, 30.0))
    normaliser = continuum * (1.0 + rng.normal(0.0, 0.02) * (wave - 6400.0) / 2700.0)
    return Observation(wave=wave, flux=flux, continuum=normaliser, model=model,
                       noiseless=clean, ivar=ivar, andmask=andmask, ormask=ormask,
                       truth=truth, header=header)


def _median_snr(signal, noise, where):
    return round(float(np.median(signal[where] / noise[where])), 2) if where.any() else 0.0


def observe_ccd700(rng: np.random.Generator, star: Star, era: str, layout: str) -> Observation:
    """An Ondřejov 2-m CCD700 observation of ``star`` around Hα.

    Parameters
    ----------
    rng : numpy.random.Generator
    star : Star
    era : {'old', 'new'}
        Set-up: 0.2567 Å/px (before 2014) or 0.2309 Å/px (2014 on).
    layout : {'iraf', 'ssap'}
        Which product; the SSAP one is cropped to ≈6282–6733 Å.

    Returns
    -------
    Observation
        Air wavelengths, R = 13,000; flux in ADU (``continuum`` is the ADU
        continuum, divide by it for the normalised SSAP flux).
    """
    setup = CCD700_ERAS[era]
    step = float(rng.uniform(*setup["step"]))
    start = float(rng.uniform(*setup[f"{layout}_start"]))
    wave = start + step * np.arange(setup[f"{layout}_n"], dtype=np.float64)
    wave_vac = physics.air_to_vacuum(wave)
    loglam = np.log(wave_vac)
    vhelio = float(rng.uniform(-30.0, 30.0))
    model, truth = _stellar_model("ccd700", star, loglam, star.rv - vhelio)
    ebv = float(min(rng.exponential(0.2), 1.2))
    model *= _foreground("ccd700", loglam, float(rng.uniform(1.0, 2.0)), ebv)
    level = star.snr**2 / _CCD700_GAIN
    x = (wave - 6563.0) / 250.0
    continuum = level * (1.0 + rng.uniform(-0.35, -0.1) * x + rng.uniform(-0.15, 0.05) * x**2)
    clean = continuum * model
    electrons = np.maximum(clean, 0.0) * _CCD700_GAIN
    sigma_adu = np.sqrt(electrons + _CCD700_READ_NOISE**2) / _CCD700_GAIN
    flux = clean + sigma_adu * rng.standard_normal(wave.size)
    truth.update(ebv=ebv, rv_obs_kms=star.rv - vhelio)
    _, _, _, sigma = _atmosphere("ccd700")
    if star.kind == "sky-residual":
        residual, extra = _sky_residuals(rng, wave_vac, sigma, 0.3 * level)
        flux += residual
        truth.update(extra)
    if star.kind == "cosmic-ray":
        truth.update(_cosmic_rays(rng, wave_vac, continuum, flux, rng.random() < 0.6)[0])
    normaliser = continuum * (1.0 + rng.normal(0.0, 0.005) * x)
    return Observation(wave=wave, flux=flux, continuum=normaliser, model=model,
                       noiseless=clean, truth=truth,
                       header={"VHELIO": vhelio, "DETECTOR": setup["detector"]})
