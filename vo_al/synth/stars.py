"""Who is in the synthetic survey: classes, hard cases and stellar parameters.

A file's class comes from a golden-ratio (Weyl) sequence over the file index,
so every prefix of a survey holds very nearly the requested class fractions
while each file still depends only on (seed, index). The hard-case kind and
the stellar parameters are drawn from the file's own random generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ABSORPTION",
    "EMISSION",
    "DOUBLE_PEAK",
    "CLASSES",
    "ONDREJOV_MIX",
    "EMISSION_SHARE",
    "KINDS",
    "Ranges",
    "LAMOST_RANGES",
    "ONDREJOV_RANGES",
    "Star",
    "file_rng",
    "class_for",
    "draw_star",
]

ABSORPTION = "absorption"
EMISSION = "emission"
DOUBLE_PEAK = "double-peak"
CLASSES = (ABSORPTION, EMISSION, DOUBLE_PEAK)
#: Class mix of the paper's Ondřejov training set (6102 / 5301 / 1533 spectra).
ONDREJOV_MIX = {ABSORPTION: 0.47, EMISSION: 0.41, DOUBLE_PEAK: 0.12}
#: Share of single-peaked emission among the interesting LAMOST spectra.
EMISSION_SHARE = 0.75
#: Hard-case kinds per class and their probabilities.
KINDS = {
    ABSORPTION: (("clean", 0.76), ("cosmic-ray", 0.08), ("sky-residual", 0.08),
                 ("low-snr", 0.08)),
    EMISSION: (("clean", 0.65), ("p-cygni", 0.12), ("weak-emission-infill", 0.13),
               ("low-snr", 0.10)),
    DOUBLE_PEAK: (("clean", 0.75), ("shell", 0.15), ("low-snr", 0.10)),
}
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_LOW_SNR = (3.0, 8.0)


@dataclass(frozen=True)
class Ranges:
    """Instrument-dependent parameter ranges.

    Attributes
    ----------
    snr : tuple of float
        Range of the continuum S/N at Hα for ordinary spectra (log-uniform).
    separation : tuple of float
        Double-peak separations (km/s) that the instrument resolves.
    width : tuple of float
        σ of each double peak as a fraction of the separation.
    pcygni : tuple of float
        Blue shift (km/s) of the P Cygni absorption beyond 1.5 σ of the
        emission peak.
    """

    snr: tuple[float, float]
    separation: tuple[float, float]
    width: tuple[float, float]
    pcygni: tuple[float, float]


# At R = 1800 (σ ≈ 71 km/s) a double peak must be ≳ 300 km/s apart to be seen.
LAMOST_RANGES = Ranges(snr=(10.0, 150.0), separation=(330.0, 650.0), width=(0.12, 0.2),
                       pcygni=(250.0, 600.0))
ONDREJOV_RANGES = Ranges(snr=(40.0, 300.0), separation=(100.0, 500.0), width=(0.15, 0.25),
                         pcygni=(100.0, 450.0))


@dataclass
class Star:
    """Parameters of one synthetic star (velocities in km/s, EW in Å).

    ``em_excess`` is the Hα emission equivalent width above the photospheric
    absorption, except for ``weak-emission-infill`` where it is the fraction of
    the absorption that the emission fills. Zero means "not present".
    """

    cls: str
    kind: str
    teff: float
    vsini: float
    rv: float
    metal: float
    snr: float
    em_excess: float = 0.0
    em_sigma: float = 0.0
    em_eta: float = 0.0
    peak_sep: float = 0.0
    vr_ratio: float = 0.0
    pcyg_v: float = 0.0
    pcyg_depth: float = 0.0
    pcyg_sigma: float = 0.0
    shell_depth: float = 0.0
    shell_sigma: float = 0.0
    fe2_ew: float = 0.0


def file_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The random generator of one file: depends only on (seed, stream, index)."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream, index]))


def class_for(seed: int, stream: int, index: int, mix: dict) -> str:
    """Class of file ``index`` for a class ``mix`` (fractions summing to ≤ 1).

    The absorption class takes whatever the other classes leave.
    """
    offset = np.random.SeedSequence([seed, stream]).generate_state(1, np.uint64)[0] / 2.0**64
    u = (float(offset) + index * _GOLDEN) % 1.0
    edge = 0.0
    for cls in (EMISSION, DOUBLE_PEAK):
        edge += mix.get(cls, 0.0)
        if u < edge:
            return cls
    return ABSORPTION


def _loguniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _teff(rng, cls, kind, instrument):
    if cls != ABSORPTION:
        if kind == "weak-emission-infill":
            return _loguniform(rng, 9000.0, 25_000.0)
        hot = rng.random() < 0.9
        return _loguniform(rng, *((10_500.0, 28_000.0) if hot else (8000.0, 10_500.0)))
    if instrument == "ondrejov":
        return _loguniform(rng, 6500.0, 30_000.0)
    # LAMOST stars: 62 % FGK, 26 % A/late B, 12 % hot B
    u = rng.random()
    if u < 0.62:
        return _loguniform(rng, 4000.0, 7000.0)
    return _loguniform(rng, *((7000.0, 10_500.0) if u < 0.88 else (10_500.0, 28_000.0)))


def _vsini(rng, cls, teff):
    if cls != ABSORPTION:
        return float(rng.uniform(150.0, 400.0))
    if teff < 6500.0:
        return float(rng.uniform(2.0, 15.0))
    return float(rng.uniform(20.0, 250.0 if teff < 10_500.0 else 300.0))


def _kind(rng, cls):
    names, weights = zip(*KINDS[cls])
    return names[int(rng.choice(len(names), p=np.asarray(weights) / sum(weights)))]


def draw_star(rng: np.random.Generator, cls: str, instrument: str, ranges: Ranges) -> Star:
    """Draw the kind and parameters of a star of class ``cls``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The file's generator.
    cls : str
        One of :data:`CLASSES`.
    instrument : {'lamost', 'ondrejov'}
    ranges : Ranges

    Returns
    -------
    Star
    """
    kind = _kind(rng, cls)
    teff = _teff(rng, cls, kind, instrument)
    snr = float(rng.uniform(*_LOW_SNR)) if kind == "low-snr" else _loguniform(rng, *ranges.snr)
    star = Star(
        cls=cls, kind=kind, teff=teff, vsini=_vsini(rng, cls, teff),
        rv=float(np.clip(rng.normal(0.0, 35.0), -300.0, 300.0)),
        metal=float(np.clip(math.exp(rng.normal(0.0, 0.3)), 0.3, 2.0)), snr=snr,
    )
    if cls == EMISSION:
        _single_peak(rng, star, ranges)
    elif cls == DOUBLE_PEAK:
        _double_peak(rng, star, ranges)
    if cls != ABSORPTION and rng.random() < 0.5:
        star.fe2_ew = float(rng.uniform(0.1, 0.6))
    return star


def _single_peak(rng, star, ranges):
    if star.kind == "weak-emission-infill":
        star.em_excess = float(rng.uniform(0.3, 0.8))
        star.em_sigma = float(rng.uniform(50.0, 100.0))
        return
    star.em_sigma = float(rng.uniform(80.0, 200.0))
    star.em_eta = float(rng.uniform(0.0, 0.4))
    if star.kind == "p-cygni":
        star.em_excess = _loguniform(rng, 3.0, 30.0)
        star.em_sigma = float(rng.uniform(60.0, 150.0))
        # the trough sits clear of the emission peak
        star.pcyg_v = -float(rng.uniform(*ranges.pcygni)) - 1.5 * star.em_sigma
        star.pcyg_depth = float(rng.uniform(0.25, 0.6))
        star.pcyg_sigma = float(rng.uniform(50.0, 120.0))
    else:
        star.em_excess = _loguniform(rng, 3.0, 50.0)


def _double_peak(rng, star, ranges):
    star.em_excess = _loguniform(rng, 3.0, 35.0)
    star.peak_sep = float(rng.uniform(*ranges.separation))
    star.em_sigma = max(15.0, star.peak_sep * float(rng.uniform(*ranges.width)))
    star.vr_ratio = _loguniform(rng, 0.6, 1.6)
    if star.kind == "shell":
        star.shell_depth = float(rng.uniform(0.35, 0.75))
        star.shell_sigma = float(rng.uniform(25.0, 60.0))
