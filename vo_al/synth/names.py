"""Small helpers for names, dates and coordinates in synthetic headers."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

__all__ = ["MJD_EPOCH", "mjd_to_datetime", "iso", "sky_position", "designation",
           "sexagesimal", "spectral_type"]

MJD_EPOCH = datetime(1858, 11, 17)
#: Spectral classes: (letter, hottest teff, coolest teff) in K.
_CLASSES = (("O", 50_000.0, 30_000.0), ("B", 30_000.0, 10_000.0), ("A", 10_000.0, 7_500.0),
            ("F", 7_500.0, 6_000.0), ("G", 6_000.0, 5_200.0), ("K", 5_200.0, 3_900.0),
            ("M", 3_900.0, 2_400.0))


def mjd_to_datetime(mjd: float) -> datetime:
    """The UTC date and time of a modified Julian date."""
    return MJD_EPOCH + timedelta(days=float(mjd))


def iso(mjd: float, decimals: int = 0) -> str:
    """ISO-8601 ``YYYY-MM-DDThh:mm:ss[.ss]`` of a modified Julian date."""
    when = mjd_to_datetime(mjd)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if decimals:
        text += f"{when.microsecond / 1e6:.{decimals}f}"[1:]
    return text


def sky_position(rng: np.random.Generator, dec_min: float) -> tuple[float, float]:
    """A position uniform on the sky north of ``dec_min`` (degrees)."""
    ra = float(rng.uniform(0.0, 360.0))
    dec = math.degrees(math.asin(rng.uniform(math.sin(math.radians(dec_min)), 1.0)))
    return ra, dec


def _split(value: float, decimals: int) -> tuple[int, int, float]:
    """Whole units, minutes and truncated seconds of a non-negative value."""
    seconds = math.floor(value * 3600.0 * 10**decimals) / 10**decimals
    whole, rest = divmod(seconds, 3600.0)
    minutes, seconds = divmod(rest, 60.0)
    return int(whole), int(minutes), seconds


def designation(ra: float, dec: float) -> str:
    """IAU-style LAMOST designation, ``LAMOST Jhhmmss.ss+ddmmss.s`` (truncated)."""
    h, m, s = _split(ra / 15.0, 2)
    d, dm, ds = _split(abs(dec), 1)
    sign = "-" if dec < 0 else "+"
    return f"LAMOST J{h:02d}{m:02d}{s:05.2f}{sign}{d:02d}{dm:02d}{ds:04.1f}"


def sexagesimal(ra: float, dec: float, plus_sign: bool) -> tuple[str, str]:
    """RA as ``hh:mm:ss.s`` and Dec as ``[+]dd:mm:ss.s`` (IRAF style)."""
    h, m, s = _split(ra / 15.0, 1)
    d, dm, ds = _split(abs(dec), 1)
    sign = "-" if dec < 0 else ("+" if plus_sign else "")
    return f"{h:02d}:{m:02d}:{s:04.1f}", f"{sign}{d:02d}:{dm:02d}:{ds:04.1f}"


def spectral_type(teff: float) -> str:
    """MK-like spectral type of a temperature (``A2V`` style for A stars)."""
    for letter, hot, cool in _CLASSES:
        if teff >= cool:
            number = min(9, max(0, int(10.0 * (hot - teff) / (hot - cool))))
            return f"{letter}{number}" + ("V" if letter == "A" else "")
    return "M9"
