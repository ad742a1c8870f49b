"""Broken files, for checking that ingest reports and skips them.

Corrupt file ``j`` starts as LAMOST file ``n_lamost + j`` of the survey (so
its name is unique and realistic) and is then damaged in one of the
:data:`DEFECTS` ways, taken in turn.
"""

from __future__ import annotations

import numpy as np

from .fitsfile import BLOCK, empty_primary, fits_bytes, image_hdu
from .lamost_files import file_rows, header_cards, lamost_id, lamost_parts
from .truth import SynthFile

__all__ = ["DEFECTS", "STREAM", "corrupt_file"]

STREAM = 3
#: Defect name → whether the primary header is still readable (the file then
#: still has the reader's id).
DEFECTS = {
    "truncated": True,  # a valid image cut in the middle of its data
    "random-bytes": False,  # noise with a .fits name
    "empty-file": False,  # zero bytes
    "all-nan-flux": True,  # valid FITS, flux row all NaN
    "wrong-shape": True,  # valid FITS image of 3 rows instead of 5
    "truncated-gzip": False,  # a .fits.gz cut in half
    "all-zero-flux": True,  # valid FITS, flux and ivar all zero
    "no-data": True,  # the full LAMOST header, no data array
}


def _damaged(defect: str, rows: np.ndarray, cards, rng) -> bytes:
    if defect == "random-bytes":
        return rng.bytes(int(rng.integers(2_000, 60_000)))
    if defect == "empty-file":
        return b""
    if defect == "no-data":
        return empty_primary(cards)
    if defect == "all-nan-flux":
        rows[0] = np.nan
    elif defect == "all-zero-flux":
        rows[:2] = 0.0
    elif defect == "wrong-shape":
        rows = rows[:3]
    whole = image_hdu(rows, cards)
    if defect == "truncated":
        return whole[: int(rng.integers(len(whole) // 2, len(whole) - BLOCK))]
    if defect == "truncated-gzip":
        packed = fits_bytes(whole, compress=True)
        return packed[: len(packed) // 2]
    return whole


def corrupt_file(seed: int, j: int, n_lamost: int, emission_fraction: float) -> SynthFile:
    """Generate corrupt file ``j`` of a survey with ``n_lamost`` LAMOST files.

    Parameters
    ----------
    seed, j, n_lamost : int
    emission_fraction : float

    Returns
    -------
    SynthFile
        Its truth row has an empty class, kind ``corrupt`` and the defect.
    """
    defect = list(DEFECTS)[j % len(DEFECTS)]
    layout = ("lamost-dr2-image", "lamost-dr7-image")[j % 2]
    header_rng, star, where, obs = lamost_parts(seed, n_lamost + j, emission_fraction)
    cards = header_cards(layout, where, star, obs, header_rng)
    rng = np.random.default_rng(np.random.SeedSequence([seed, STREAM, j]))
    data = _damaged(defect, file_rows(layout, obs), cards, rng)
    row = {"id": lamost_id(layout, where) if DEFECTS[defect] else "", "class": "",
           "kind": "corrupt", "defect": defect, "layout": layout, "instrument": "lamost",
           "medium": "vacuum", "gzip": int(defect == "truncated-gzip")}
    return SynthFile(where.filename + (".gz" if defect == "truncated-gzip" else ""), data, row)
