"""Positional matching on a TAP service: the candidates' positions are
uploaded (``TAP_UPLOAD``) in chunks and joined with the catalogue in ADQL.

pyvo does the protocol (sync queries, UWS jobs for async ones, uploads,
VOTable parsing); this module adds what a long match over a public service
needs: chunks small enough for its upload and result limits, a retry with
backoff for transient failures, a chunk split in two when a result
overflows MAXREC, cancellation between (and inside) jobs, and messages
that name the service.
"""

from __future__ import annotations

import io
import re
import time
import warnings

import numpy as np
import requests
from astropy.table import Table, vstack
from pyvo.dal import TAPService
from pyvo.dal.exceptions import (DALFormatError, DALOverflowWarning, DALQueryError,
                                 DALServiceError)

from .cancel import Cancelled, check_cancel
from .catalogues import Catalogue, CrossmatchError, resolve_columns
from .options import TapOptions
from .vohttp import GaveUp, TimeoutSession, sleep_unless_cancelled, with_retries

__all__ = ["TapOptions", "TapCatalogue"]

def _identifier(name: str) -> str:
    """An ADQL column reference: quoted only when it is not a regular identifier."""
    return name if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) else f'"{name}"'


def _table_name(name: str) -> str:
    """VizieR's table names (``J/ApJS/259/38/table1``) need quotes in ADQL."""
    return f'"{name}"' if "/" in name and '"' not in name else name


def _reason(exc: Exception) -> str:
    if isinstance(exc, DALServiceError) and exc.code:
        return f"HTTP {exc.code}: {exc.reason}"
    if isinstance(exc, DALFormatError):
        return f"not a readable VOTable ({exc.reason})"
    if isinstance(exc, DALQueryError):
        hint = "; try a smaller --chunk-rows" if "upload" in str(exc.reason).lower() else ""
        return f"the service answered with an error: {exc.reason}{hint}"
    return str(getattr(exc, "reason", None) or exc)


#: The failures of a query that are told to the user (anything else is a bug).
_SERVICE_ERRORS = (DALServiceError, DALQueryError, DALFormatError, requests.RequestException,
                   TimeoutError)


class TapCatalogue:
    """A catalogue on a TAP service, matched by uploads of positions.

    Parameters
    ----------
    catalogue : Catalogue
        Of kind ``tap``.
    options : TapOptions
    cancel : threading.Event-like, optional
        Checked between chunks, between tries and while a job runs.

    Notes
    -----
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, catalogue: Catalogue, options: TapOptions = TapOptions(),
                 cancel=None):
        self.catalogue = catalogue
        self.options = options
        self.cancel = cancel
        self._http = TimeoutSession(options.timeout_s)
        self.service = TAPService(catalogue.source, session=self._http)
        self._columns = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the HTTP connections."""
        self._http.close()

    @property
    def columns(self) -> dict:
        """Role → column name (asked of the service once: ``SELECT TOP 0 *``)."""
        if self._columns is None:
            result = self._query(f"SELECT TOP 0 * FROM {_table_name(self.catalogue.table)}",
                                 None, 1, "sync", "reading the table's columns")
            fields = [(f.name, f.ucd) for f in result.resultstable.fields]
            self._columns = resolve_columns(fields, self.catalogue.columns,
                                            self.catalogue.where)
        return self._columns

    def adql(self, radius_deg: float) -> str:
        """The positional join of the uploaded ``cand`` table (``n``, ``ra``, ``dec``)."""
        c = {role: _identifier(name) for role, name in self.columns.items() if name}
        kind = f", s.{c['type']} AS match_type" if "type" in c else ""
        position = f"POINT('ICRS', s.{c['ra']}, s.{c['dec']})"
        return (f"SELECT c.n, s.{c['id']} AS match_id{kind}, "
                f"3600 * DISTANCE({position}, POINT('ICRS', c.ra, c.dec)) AS sep_arcsec "
                f"FROM TAP_UPLOAD.cand AS c JOIN {_table_name(self.catalogue.table)} AS s "
                f"ON 1 = CONTAINS({position}, CIRCLE('ICRS', c.ra, c.dec, {radius_deg!r}))")

    def match(self, ra, dec, progress=None):
        """Match positions chunk by chunk.

        Parameters
        ----------
        ra, dec : array of float
            Candidate positions, ICRS degrees.
        progress : callable, optional
            ``progress(done, total)`` after each chunk.

        Yields
        ------
        (int, int, astropy.table.Table)
            ``(start, stop, pairs)``: the candidates ``start:stop`` are
            done; ``pairs`` holds every catalogue row within the radius of
            one of them: ``n`` (the candidate, counting from 0 over
            all candidates), ``match_id``, ``match_type`` (empty when the
            catalogue has no type column), ``sep_arcsec``.

        Raises
        ------
        CrossmatchError
            Naming the service and what failed.
        vo_al.cancel.Cancelled
        """
        ra, dec = np.asarray(ra, np.float64), np.asarray(dec, np.float64)
        total = len(ra)
        options = self.options
        mode = options.mode
        if mode == "auto":
            mode = "sync" if total <= options.chunk_rows else "async"
        adql = self.adql(self.catalogue.radius_arcsec / 3600.0)
        for start in range(0, total, options.chunk_rows):
            stop = min(start + options.chunk_rows, total)
            check_cancel(self.cancel, f"matching {self.catalogue.name}")
            yield start, stop, self._chunk(adql, ra, dec, start, stop, mode)
            if progress is not None:
                progress(stop, total)

    def _chunk(self, adql, ra, dec, start, stop, mode) -> Table:
        """Pairs of candidates ``start:stop``; halves the chunk on overflow."""
        result = self._query(adql, {"cand": _upload(ra, dec, start, stop)},
                             self.options.maxrec, mode,
                             f"matching candidates {start + 1}–{stop}")
        if result.query_status.lower() != "overflow":
            return _pairs(result.to_table())
        if stop - start == 1:
            raise CrossmatchError(
                f"{self.catalogue.where}: more than {self.options.maxrec} rows within "
                f"{self.catalogue.radius_arcsec}″ of one candidate (MAXREC); use a smaller "
                f"radius")
        middle = (start + stop) // 2
        return _stack([self._chunk(adql, ra, dec, start, middle, mode),
                       self._chunk(adql, ra, dec, middle, stop, mode)])

    def _query(self, adql, uploads, maxrec, mode, what):
        """One query, tried again after transient failures."""

        def attempt():
            for upload in (uploads or {}).values():
                upload.seek(0)  # a try before may have sent it
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DALOverflowWarning)  # checked by the caller
                    if mode == "sync":
                        return self.service.run_sync(adql, maxrec=maxrec, uploads=uploads)
                    return self._run_job(adql, uploads, maxrec)
            finally:
                self._http.release()

        options = self.options
        try:
            return with_retries(attempt, tries=options.tries, backoff_s=options.backoff_s,
                                errors=_SERVICE_ERRORS, cancel=self.cancel,
                                what=f"matching {self.catalogue.name}")
        except GaveUp as failed:
            tries = f" after {failed.tries} tries" if failed.tries > 1 else ""
            raise CrossmatchError(f"{self.catalogue.where}: {what} failed{tries}: "
                                  f"{_reason(failed.error)}") from failed.error

    def _sleep(self, seconds):
        """Wait, unless cancelled first."""
        sleep_unless_cancelled(seconds, self.cancel, f"matching {self.catalogue.name}")

    def _run_job(self, adql, uploads, maxrec):
        """An async job, polled so that a cancel aborts it on the service."""
        job = self.service.submit_job(adql, maxrec=maxrec, uploads=uploads)
        try:
            job.run()
            deadline = time.monotonic() + self.options.timeout_s
            interval = 0.2
            while job.phase not in ("COMPLETED", "ERROR", "ABORTED"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the job ran longer than {self.options.timeout_s:g} s")
                try:
                    self._sleep(interval)
                except Cancelled:
                    job.abort()
                    raise
                interval = min(5.0, interval * 1.5)
            job.raise_if_error()
            return job.fetch_result()
        finally:
            try:
                job.delete()
            except DALServiceError:
                pass  # the service forgets old jobs by itself


def _upload(ra, dec, start: int, stop: int) -> io.BytesIO:
    """Candidates ``start:stop`` as a BINARY2 VOTable: a quarter of
    TABLEDATA's size, so a chunk fits services' upload limits (DaCHS: 500 kB
    for sync, which 5,000 rows of TABLEDATA exceed). DaCHS 2.7 cannot read
    some BINARY (1) uploads."""
    table = Table({"n": np.arange(start, stop, dtype=np.int32), "ra": ra[start:stop],
                   "dec": dec[start:stop]})
    buffer = io.BytesIO()
    table.write(buffer, format="votable", tabledata_format="binary2")
    buffer.seek(0)
    return buffer


def _text(column) -> np.ndarray:
    """A string column from a VOTable column (bytes, masked or numbers)."""
    values = column.filled("") if hasattr(column, "filled") else column
    values = np.asarray(values)
    if values.dtype.kind == "S":
        values = np.char.decode(values, "utf-8")
    return values.astype(str)


def _pairs(result: Table) -> Table:
    """A query result as ``n``, ``match_id``, ``match_type``, ``sep_arcsec``."""
    n = len(result)
    kinds = _text(result["match_type"]) if "match_type" in result.colnames else np.full(n, "")
    return Table({"n": np.asarray(result["n"], np.int64),
                  "match_id": _text(result["match_id"]) if n else np.array([], str),
                  "match_type": kinds if n else np.array([], str),
                  "sep_arcsec": np.asarray(result["sep_arcsec"], np.float64)})


def _stack(parts: list) -> Table:
    return vstack(parts, metadata_conflicts="silent")
