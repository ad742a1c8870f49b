"""The ground truth of a synthetic survey: one truth.csv row per file."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

from .instruments import Observation
from .stars import Star

__all__ = ["TRUTH_COLUMNS", "SynthFile", "star_columns", "write_truth", "read_truth"]

#: Columns of truth.csv, in order. Velocities in km/s (``rv_kms``
#: heliocentric, ``rv_obs_kms`` in the file's frame), EWs in Å (> 0 =
#: absorption), wavelengths in Å as the file gives them except
#: ``artefact_waves`` (vacuum).
TRUTH_COLUMNS = (
    "file", "id", "class", "kind", "defect", "layout", "instrument", "medium", "gzip",
    "n_pixels", "wave_min", "wave_max", "object", "ra", "dec",
    "teff", "vsini_kms", "rv_kms", "rv_obs_kms", "metal", "ebv", "snr",
    "halpha_abs_ew", "em_ew", "halpha_ew", "em_sigma_kms", "peak_sep_kms", "vr_ratio",
    "pcyg_v_kms", "pcyg_depth", "shell_depth", "fe2_ew",
    "n_cosmic", "artefact_waves", "seed", "index",
)


@dataclass
class SynthFile:
    """One generated file: where it goes, its bytes and its truth row."""

    name: str
    data: bytes
    row: dict
    star: Star | None = None
    observation: Observation | None = None


def _rounded(value, digits=3):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return round(float(value), digits)


def _present(value, digits=3):
    """The value, or blank when it is the "absent" zero."""
    return _rounded(value, digits) if value else ""


def star_columns(star: Star, obs: Observation) -> dict:
    """The physical truth.csv columns of a generated spectrum."""
    return {
        "class": star.cls, "kind": star.kind,
        "n_pixels": obs.wave.size, "wave_min": _rounded(obs.wave[0]),
        "wave_max": _rounded(obs.wave[-1]),
        "teff": _rounded(star.teff, 0), "vsini_kms": _rounded(star.vsini, 1),
        "rv_kms": _rounded(star.rv, 2), "rv_obs_kms": _rounded(obs.truth["rv_obs_kms"], 2),
        "metal": _rounded(star.metal),
        "ebv": _rounded(obs.truth.get("ebv")), "snr": _rounded(star.snr, 2),
        "halpha_abs_ew": _rounded(obs.truth["halpha_abs_ew"]),
        "em_ew": _rounded(obs.truth["em_ew"]), "halpha_ew": _rounded(obs.truth["halpha_ew"]),
        "em_sigma_kms": _present(star.em_sigma, 1), "peak_sep_kms": _present(star.peak_sep, 1),
        "vr_ratio": _present(star.vr_ratio), "pcyg_v_kms": _present(star.pcyg_v, 1),
        "pcyg_depth": _present(star.pcyg_depth), "shell_depth": _present(star.shell_depth),
        "fe2_ew": _present(star.fe2_ew),
        "n_cosmic": obs.truth.get("n_cosmic", ""),
        "artefact_waves": obs.truth.get("artefact_waves", ""),
    }


def write_truth(path, rows) -> None:
    """Write ``rows`` (dicts) to ``path`` with :data:`TRUTH_COLUMNS`."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=TRUTH_COLUMNS, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_truth(path) -> list[dict]:
    """Read a truth.csv back as a list of dicts of strings."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
