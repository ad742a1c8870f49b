"""Searching a Simple Spectral Access (SSA) service: the records of the
spectra around a position, around each row of a table of positions, or all
of them.

pyvo does the protocol (:class:`pyvo.dal.SSAService`); this module turns
its records into plain :class:`SsaRecord` values, tries a query again
after transient failures, and says in one line which service failed and
how.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io.votable.exceptions import E19
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning
from pyvo.dal import SSAService
from pyvo.dal.exceptions import (DALFormatError, DALOverflowWarning, DALQueryError,
                                 DALServiceError)

from .options import FetchOptions
from .vohttp import GaveUp, TimeoutSession, unwrap, with_retries

__all__ = ["FetchError", "FetchOptions", "SsaRecord", "DATALINK_FORMAT", "search",
           "read_positions"]

#: The access format of a record whose access URL is a DataLink document.
DATALINK_FORMAT = "application/x-votable+xml;content=datalink"
#: The failures of a request that are told to the user (anything else is a bug).
SERVICE_ERRORS = (DALServiceError, DALQueryError, DALFormatError, requests.RequestException,
                  TimeoutError)
_RA_NAMES = ("ra", "ra_deg", "raj2000", "_raj2000", "ra_icrs", "s_ra")
_DEC_NAMES = ("dec", "dec_deg", "dej2000", "_dej2000", "de_icrs", "dec_icrs", "s_dec")


class FetchError(Exception):
    """A fetch cannot go on: the message names the service or file and
    what failed."""


@dataclass(frozen=True)
class SsaRecord:
    """One record of an SSA answer (one spectrum as the archive describes it).

    Attributes
    ----------
    did : str
        Publisher DID (``ssa:Curation.PublisherDID``); empty when absent.
    title, target : str
        Data set title and target name.
    ra, dec : float
        ICRS degrees; NaN when the record gives no position.
    format : str
        Access format (MIME type).
    access_url : str
        Empty when the record has none.
    size : int
        Size the archive gives, bytes (-1: not given).
    """

    did: str
    title: str
    target: str
    ra: float
    dec: float
    format: str
    access_url: str
    size: int = -1

    @property
    def is_datalink(self) -> bool:
        """The access URL leads to a DataLink document, not to the data."""
        return "content=datalink" in self.format.replace(" ", "").lower()

    @property
    def key(self) -> str:
        """What tells this record from another one of the same service."""
        return self.access_url or self.did or self.title


def _text(value) -> str:
    if value is None or value is np.ma.masked:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _position(record) -> tuple[float, float]:
    """The target position, else the aperture's centre, else NaN."""
    for utype in ("ssa:Target.Pos", "ssa:Char.SpatialAxis.Coverage.Location.Value"):
        value = record.getbyutype(utype)
        if value is not None and value is not np.ma.masked and np.size(value) == 2:
            ra, dec = (_number(v) for v in np.ravel(value))
            if not (math.isnan(ra) or math.isnan(dec)):
                return ra, dec
    return math.nan, math.nan


def _record(record) -> SsaRecord:
    """An :class:`SsaRecord` from a pyvo ``SSARecord``."""
    ra, dec = _position(record)
    size = _number(record.getbyutype("ssa:Access.Size"))
    return SsaRecord(
        did=_text(record.getbyutype("ssa:Curation.PublisherDID")),
        title=_text(record.getbyutype("ssa:DataID.Title")),
        target=_text(record.getbyutype("ssa:Target.Name")),
        ra=ra, dec=dec, format=_text(record.getbyutype("ssa:Access.Format")),
        access_url=_text(record.getdataurl()),
        size=-1 if math.isnan(size) else int(size))


def _reason(exc: Exception) -> str:
    exc = unwrap(exc)
    if isinstance(exc, requests.ConnectionError):
        return "no answer (cannot connect)"
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    if isinstance(exc, E19):
        return "its answer is not a VOTable (is this an SSA service's URL?)"
    if isinstance(exc, DALQueryError):
        return f"the service answered with an error: {exc.reason}"
    if isinstance(exc, DALFormatError):
        return f"its answer is not an SSA VOTable ({exc.reason or exc})"
    if isinstance(exc, DALServiceError):
        what = f"HTTP {exc.code}: " if exc.code else ""
        return f"{what}{exc.reason or exc}"
    return str(exc)


def _query(service: SSAService, url: str, params: dict, options: FetchOptions, cancel,
           http: TimeoutSession):
    """One SSA query, tried again after transient failures."""

    def attempt():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DALOverflowWarning)  # checked below
                warnings.simplefilter("ignore", AstropyWarning)  # VOTable pedantry
                return service.search(maxrec=options.maxrec, **params)
        finally:
            http.release()

    try:
        results = with_retries(attempt, tries=options.tries, backoff_s=options.backoff_s,
                               errors=SERVICE_ERRORS, cancel=cancel, what="the SSA search")
    except GaveUp as failed:
        tries = f" after {failed.tries} tries" if failed.tries > 1 else ""
        raise FetchError(f"SSA service {url}: the query failed{tries}: "
                         f"{_reason(failed.error)}") from failed.error
    status = str((results.status or ("OK",))[0] or "OK").upper()
    if status == "OVERFLOW":
        raise FetchError(f"SSA service {url}: more than {options.maxrec} records match; "
                         f"narrow the search (--pos with a smaller --radius, or --positions)")
    return results


def _near(records: list, ra: float, dec: float, radius: float) -> list:
    """The records within ``radius`` degrees of (ra, dec), and those without
    a position (servers differ on whether SIZE is a diameter or a radius)."""
    placed = [r for r in records if not math.isnan(r.ra)]
    if not placed:
        return list(records)
    where = SkyCoord([r.ra for r in placed] * u.deg, [r.dec for r in placed] * u.deg)
    distance = where.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    near = {id(r) for r, d in zip(placed, distance) if d <= radius * (1 + 1e-9)}
    return [r for r in records if math.isnan(r.ra) or id(r) in near]


def search(url: str, positions=None, options: FetchOptions = FetchOptions(),
           cancel=None) -> list[SsaRecord]:
    """The records of an SSA service.

    Parameters
    ----------
    url : str
        The service's base URL (``.../ssap.xml``).
    positions : iterable of (float, float, float), optional
        ``(ra, dec, radius)`` in ICRS degrees: one query each (SIZE is sent
        as the diameter, as SSA says, and records further than ``radius``
        are dropped). None: one query without a position (all records).
    options : FetchOptions
    cancel : threading.Event-like, optional

    Returns
    -------
    list of SsaRecord
        In the order the service gave them, each record once.

    Raises
    ------
    FetchError
        Naming the service and what failed.
    vo_al.cancel.Cancelled
    """
    http = TimeoutSession(options.timeout_s)
    try:
        service = SSAService(url, session=http)
        if positions is None:
            return _unique(_record(r) for r in _query(service, url, {}, options, cancel, http))
        found = []
        for ra, dec, radius in positions:
            params = {"pos": (ra, dec), "diameter": 2 * radius}
            records = [_record(r) for r in _query(service, url, params, options, cancel, http)]
            found.extend(_near(records, ra, dec, radius))
        return _unique(found)
    finally:
        http.close()


def _unique(records) -> list:
    """Each record once (a record near two positions is found twice)."""
    seen, kept = set(), []
    for record in records:
        identity = (record.did, record.access_url, record.title, record.format)
        if identity not in seen:
            seen.add(identity)
            kept.append(record)
    return kept


def _column(table: Table, ucd: str, names: tuple, what: str, path) -> str:
    by_ucd = [c for c in table.colnames
              if (table[c].meta.get("ucd") or "").lower().startswith(ucd)]
    lower = {c.lower(): c for c in table.colnames}
    found = by_ucd[:1] or [lower[n] for n in names if n in lower][:1]
    if not found:
        raise FetchError(f"{path}: no {what} column (marked {ucd}, or named "
                         f"{', '.join(names[:4])}); it has {', '.join(table.colnames)}")
    return found[0]


def read_positions(path, radius: float) -> list[tuple[float, float, float]]:
    """Positions to search around, from a table file (CSV, VOTable, FITS, ECSV).

    Parameters
    ----------
    path : path-like
    radius : float
        Search radius, degrees, for rows without a ``radius`` column value.

    Returns
    -------
    list of (ra, dec, radius)
        ICRS degrees. Positions are degrees or sexagesimal (``00 56 42.5``).

    Raises
    ------
    FetchError
        When the file cannot be read or has no position columns.
    """
    path = Path(path)
    try:
        kind = {".csv": "ascii.csv", ".tsv": "ascii.tab"}.get(path.suffix.lower())
        table = Table.read(path, format=kind) if kind else Table.read(path)
    except Exception as exc:  # astropy raises many kinds for an unreadable table
        raise FetchError(f"{path}: cannot read it as a table: {exc}") from exc
    ra = _column(table, "pos.eq.ra", _RA_NAMES, "right ascension", path)
    dec = _column(table, "pos.eq.dec", _DEC_NAMES, "declination", path)
    try:
        sky = _sky(table[ra], table[dec])
    except (ValueError, u.UnitsError) as exc:
        raise FetchError(f"{path}: positions in {ra}, {dec} are not degrees or "
                         f"sexagesimal: {exc}") from exc
    radii = _radii(table, radius)
    return [(float(a), float(d), float(r)) for a, d, r in zip(sky.ra.deg, sky.dec.deg, radii)
            if math.isfinite(a) and math.isfinite(d)]


def _sky(ra, dec) -> SkyCoord:
    if np.asarray(ra).dtype.kind in "US":
        return SkyCoord(np.asarray(ra).astype(str), np.asarray(dec).astype(str),
                        unit=(u.hourangle, u.deg))
    return SkyCoord(np.ma.filled(np.ma.asarray(ra, np.float64), np.nan) * u.deg,
                    np.ma.filled(np.ma.asarray(dec, np.float64), np.nan) * u.deg)


def _radii(table: Table, radius: float) -> np.ndarray:
    lower = {c.lower(): c for c in table.colnames}
    if "radius" not in lower:
        return np.full(len(table), radius)
    values = np.ma.filled(np.ma.asarray(table[lower["radius"]], np.float64), np.nan)
    return np.where(np.isfinite(values) & (values > 0), values, radius)
