"""Small helpers shared by the readers for pulling typed values out of headers."""

from __future__ import annotations

import math
import os

__all__ = ["text", "number", "file_stem", "pick"]


def text(header, key) -> str | None:
    """A header value as stripped text, or None when absent or blank."""
    value = header.get(key)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def number(header, key) -> float:
    """A header value as float, NaN when absent or not numeric."""
    try:
        value = float(header.get(key))
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def file_stem(name: str) -> str:
    """File name without directories and FITS extensions (``.fits``, ``.fit``, ``.gz``)."""
    name = os.path.basename(name)
    for suffix in (".gz", ".bz2", ".fits", ".fit", ".fts"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def pick(header, keys) -> dict:
    """The present, non-blank ``keys`` of a header as plain Python values."""
    out = {}
    for key in keys:
        value = header.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        out[key] = value.strip() if isinstance(value, str) else value
    return out
