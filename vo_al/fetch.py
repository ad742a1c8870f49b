"""Downloading the spectra of SSA records into a folder that ``vo-al
ingest`` reads: in parallel, resumably, and only what vo-al can read.

Each record's spectrum becomes one file named after the record's
publisher DID (``ivo://asu.cas.cz/stel/ccd700/a201402030013`` →
``asu.cas.cz_stel_ccd700_a201402030013.fits``), or, without a DID, after a
hash of its access URL. A record whose access format is DataLink is
followed to its ``#this`` link. Records of one data set (the same DID
published twice, e.g. as FITS and through DataLink) give one file, from
the FITS record where there is one.

Every download goes to a hidden temporary file in the folder, is checked
with vo-al's readers (:func:`vo_al.spectra.read_spectrum`), and is renamed
into place only when it is a spectrum vo-al reads: a kill leaves no half
file, and a file that is there is complete. A rerun skips the files that
are there, so a killed fetch run again ends with the same folder.

``DIR/manifest.csv`` has a row per record (see :data:`MANIFEST_COLUMNS`),
sorted by file name; it is replaced atomically as downloads finish (at
most every :data:`MANIFEST_EVERY_S` seconds, and at the end), and kept
across runs: rows of records that a later search does not return stay.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import itertools
import math
import os
import re
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from pyvo.dal.adhoc import DatalinkResults

from .atomic import atomic_path, write_text_atomic
from .cancel import Cancelled, check_cancel
from .spectra import SpectrumReadError, read_spectrum
from .spectra.fitsbytes import MAX_FITS_BYTES
from .ssa import SERVICE_ERRORS, FetchError, FetchOptions, SsaRecord, search
from .vohttp import GaveUp, TimeoutSession, with_retries

__all__ = ["MANIFEST_NAME", "MANIFEST_COLUMNS", "FetchError", "FetchOptions", "FetchReport",
           "file_stem", "fetch", "fetch_service", "read_manifest"]

#: The manifest's name in the folder.
MANIFEST_NAME = "manifest.csv"
#: Its columns: the file (empty when none), what became of the record
#: (``ok``, ``refused``: not a spectrum vo-al reads, ``failed``: could not
#: be downloaded, ``no-access-url``, ``duplicate``: another record of the
#: same data set gave the file), why, the record's metadata, and the
#: file's size in bytes.
MANIFEST_COLUMNS = ("file", "status", "reason", "did", "title", "target", "ra", "dec",
                    "format", "access_url", "size")
#: Most seconds between two writes of the manifest during a fetch.
MANIFEST_EVERY_S = 1.0
_SUFFIXES = (".fits", ".fits.gz")
_LOCK_NAME = ".fetch.lock"
_CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_CLEAN_DID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*(/[A-Za-z0-9.\-]+)*")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The spectra's permissions: those of any new file (temporary files are 0600).
_FILE_MODE = 0o666 & ~_umask()


class _Refused(Exception):
    """The download is not a spectrum vo-al reads (the reason is the message)."""


class _Incomplete(requests.RequestException):
    """The connection closed before the announced number of bytes came."""


@dataclass
class FetchReport:
    """What a fetch did.

    Attributes
    ----------
    directory : Path
    records : int
        Records the search gave.
    files : int
        Their files now in the folder.
    fetched, present : int
        Of those, downloaded now, and there before.
    fetched_bytes : int
    via_datalink : int
        Files reached through a DataLink ``#this`` link (now or before).
    duplicates : int
        Records of a data set another record gave the file of.
    refused, failed, no_access : list of (str, str)
        ``(record, reason)``: not a spectrum vo-al reads (kept out of the
        folder), could not be downloaded (a rerun tries again), no access URL.
    seconds : float
    """

    directory: Path
    records: int = 0
    files: int = 0
    fetched: int = 0
    present: int = 0
    fetched_bytes: int = 0
    via_datalink: int = 0
    duplicates: int = 0
    refused: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    no_access: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def manifest(self) -> Path:
        """The manifest's path."""
        return self.directory / MANIFEST_NAME

    @property
    def files_per_second(self) -> float:
        """Downloads per second of this run."""
        return self.fetched / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- names


def _hash(text: str, n: int) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def file_stem(record: SsaRecord) -> str:
    """The file name of a record's spectrum, without its extension.

    The publisher DID without its scheme, ``/`` made ``_``
    (``ivo://asu.cas.cz/stel/ccd700/a201402030013`` →
    ``asu.cas.cz_stel_ccd700_a201402030013``). A DID with other characters
    than letters, digits, ``.``, ``-`` and ``/``, or longer than 120, keeps
    only those and gains ``-`` and a hash of the whole DID, so two DIDs
    never share a name. A record without a DID: ``url-`` and a hash of its
    access URL; empty when it has neither.

    Parameters
    ----------
    record : SsaRecord

    Returns
    -------
    str
    """
    if not record.did:
        return f"url-{_hash(record.access_url, 16)}" if record.access_url else ""
    body = re.sub(r"^[A-Za-z][A-Za-z0-9+.\-]*://", "", record.did)
    stem = "_".join(p for p in re.split(r"[^A-Za-z0-9.\-]+", body) if p).lstrip(".-_")
    if _CLEAN_DID.fullmatch(body) and len(stem) <= 120:
        return stem
    return f"{stem[:100] or 'did'}-{_hash(record.did, 10)}"


def _present(directory: Path, stem: str) -> Path | None:
    for suffix in _SUFFIXES:
        path = directory / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


# ---------------------------------------------------------------- manifest


def _row(record: SsaRecord, status: str, reason: str = "", file: str = "",
         size: int | str = "") -> dict:
    def degrees(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.7f}"

    return {"file": file, "status": status, "reason": reason, "did": record.did,
            "title": record.title, "target": record.target, "ra": degrees(record.ra),
            "dec": degrees(record.dec), "format": record.format,
            "access_url": record.access_url, "size": str(size)}


def _row_key(row: dict) -> str:
    return row.get("access_url") or row.get("did") or row.get("title") or ""


def read_manifest(directory) -> list[dict]:
    """The rows of ``DIR/manifest.csv`` (none when there is no manifest).

    Raises
    ------
    FetchError
        When the file is not a fetch manifest.
    """
    path = Path(directory) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    reader = csv.DictReader(io.StringIO(text))
    missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise FetchError(f"{path}: not a vo-al fetch manifest (no column "
                         f"{', '.join(sorted(missing))}); fetch into another folder")
    return list(reader)


def _write_manifest(directory: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: (r["file"] == "", r["file"], r["status"],
                                       r["access_url"], r["did"], r["title"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(directory / MANIFEST_NAME, buffer.getvalue())


# ---------------------------------------------------------------- plan


def _rank(record: SsaRecord) -> int:
    """Which record of a data set gives its file: FITS, then DataLink, then others."""
    if record.is_datalink:
        return 1
    return 0 if "fits" in record.format.lower() else 2


@dataclass
class _Plan:
    """One record per file to fetch, and the other records."""

    jobs: dict = field(default_factory=dict)        # stem → record
    duplicates: list = field(default_factory=list)  # (record, stem)
    no_access: list = field(default_factory=list)   # records


def _plan(records) -> _Plan:
    plan = _Plan()
    groups: dict = {}
    for record in records:
        groups.setdefault(file_stem(record), []).append(record)
    for stem, group in groups.items():
        reachable = sorted((r for r in group if r.access_url), key=_rank)
        if not stem or not reachable:
            plan.no_access.extend(group)
            continue
        plan.jobs[stem] = reachable[0]
        plan.duplicates.extend((r, stem) for r in group if r is not reachable[0])
    return plan


def _name(record: SsaRecord) -> str:
    """The record as a message names it."""
    return record.did or record.title or record.access_url or "a record"


# ---------------------------------------------------------------- downloads


def _reason(exc: Exception, options: FetchOptions) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code}: {response.reason}"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {options.timeout_s:g} s"
    if isinstance(exc, requests.ConnectionError):
        url = getattr(exc.request, "url", None) or ""
        return f"cannot connect to {urlsplit(url).netloc or 'the server'}"
    return str(getattr(exc, "reason", None) or exc)


def _stream(url: str, part: Path, stop: threading.Event, http: TimeoutSession) -> int:
    """Write the bytes at ``url`` to ``part``; their number."""
    try:
        with http.get(url, stream=True) as response:
            response.raise_for_status()
            announced = response.headers.get("Content-Length")
            written = 0
            with open(part, "wb") as fh:
                for chunk in response.iter_content(_CHUNK):
                    check_cancel(stop, "the fetch")
                    written += len(chunk)
                    if written > MAX_FITS_BYTES:
                        raise _Refused(f"larger than {MAX_FITS_BYTES >> 20} MiB: not a "
                                       f"spectrum vo-al reads")
                    fh.write(chunk)
        if (announced and announced.isdigit() and not response.headers.get("Content-Encoding")
                and int(announced) != written):
            raise _Incomplete(f"got {written} of {announced} bytes")
        return written
    finally:
        http.release()


def _this_link(record: SsaRecord, options: FetchOptions, stop, http) -> str:
    """The ``#this`` link of the record's DataLink document."""

    def attempt():
        try:
            return DatalinkResults.from_result_url(record.access_url, session=http)
        finally:
            http.release()

    try:
        links = with_retries(attempt, tries=options.tries, backoff_s=options.backoff_s,
                             errors=SERVICE_ERRORS, cancel=stop, what="the fetch")
    except GaveUp as failed:
        raise GaveUp(RuntimeError(f"its DataLink document failed: "
                                  f"{_reason(failed.error, options)}"), failed.tries) from None
    this = list(links.bysemantics("#this", include_narrower=False))
    for link in this:
        if link.access_url:
            return str(link.access_url)
    said = [str(link.error_message) for link in this if link.error_message]
    raise GaveUp(RuntimeError("its DataLink document has no #this link"
                              + (f" ({said[0]})" if said else "")), 1)


def _check(part: Path) -> None:
    """Raise :class:`_Refused` unless vo-al reads ``part`` as a spectrum."""
    try:
        read_spectrum(part)
    except SpectrumReadError as exc:
        reason = exc.reason if hasattr(exc, "reason") else str(exc)
        raise _Refused(f"not a spectrum vo-al reads: {reason}") from exc


def _place(part: Path, directory: Path, stem: str) -> Path:
    """Rename the checked download into place (atomically); its final path."""
    with open(part, "rb") as fh:
        gzipped = fh.read(2) == _GZIP_MAGIC
    final = directory / f"{stem}{'.fits.gz' if gzipped else '.fits'}"
    os.chmod(part, _FILE_MODE)
    with atomic_path(final) as target:
        os.replace(part, target)
    for suffix in _SUFFIXES:  # an older download of another kind
        other = directory / f"{stem}{suffix}"
        if other != final:
            other.unlink(missing_ok=True)
    return final


def _download(url: str, directory: Path, stem: str, options, stop, http) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=directory)
    os.close(fd)
    part = Path(name)
    try:
        with_retries(lambda: _stream(url, part, stop, http), tries=options.tries,
                     backoff_s=options.backoff_s, errors=(requests.RequestException,),
                     cancel=stop, what="the fetch")
        _check(part)
        return _place(part, directory, stem)
    finally:
        part.unlink(missing_ok=True)


def _fetch_one(record: SsaRecord, stem: str, directory: Path, options, stop,
               sessions: "_Sessions") -> dict:
    """Download one record's spectrum; its manifest row."""
    http = sessions.get()
    try:
        url = _this_link(record, options, stop, http) if record.is_datalink else record.access_url
        path = _download(url, directory, stem, options, stop, http)
    except _Refused as refused:
        return _row(record, "refused", str(refused))
    except GaveUp as failed:
        tries = f" after {failed.tries} tries" if failed.tries > 1 else ""
        return _row(record, "failed", f"{_reason(failed.error, options)}{tries}")
    return _row(record, "ok", file=path.name, size=path.stat().st_size)


class _Sessions:
    """One HTTP session per download thread."""

    def __init__(self, timeout_s: float):
        self._local = threading.local()
        self._all, self._lock, self._timeout_s = [], threading.Lock(), timeout_s

    def get(self) -> TimeoutSession:
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = TimeoutSession(self._timeout_s)
            with self._lock:
                self._all.append(http)
        return http

    def close(self):
        for http in self._all:
            http.close()


# ---------------------------------------------------------------- the folder


def _lock(directory: Path) -> int:
    """Hold the folder for this fetch (released when the process ends)."""
    fd = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FetchError(f"{directory}: another vo-al fetch is writing this folder; wait "
                         f"for it to finish") from None
    return fd


def _remove_parts(directory: Path) -> None:
    """Temporary files a killed fetch left (no other fetch holds the folder)."""
    for part in directory.glob(".*.part"):
        part.unlink(missing_ok=True)


def _known(directory: Path, stem: str, record: SsaRecord, manifest: "_Manifest"):
    """The row of a record that needs no download, or None.

    A file that is there is complete (only checked files are renamed into
    place), unless the manifest gives it another size; a refusal of the
    same access URL stands.
    """
    before = manifest.old.get(record.key)
    path = _present(directory, stem)
    if path is not None:
        size = path.stat().st_size
        recorded = manifest.sizes.get(path.name)
        if not recorded or str(size) in recorded:
            return _row(record, "ok", file=path.name, size=size)
    if before and before["status"] == "refused" and before["access_url"] == record.access_url:
        return _row(record, "refused", before["reason"])
    return None


def _duplicate_rows(plan: _Plan, rows: dict) -> list:
    out = []
    for record, stem in plan.duplicates:
        first = rows.get(plan.jobs[stem].key)
        file = first["file"] if first and first["status"] == "ok" else ""
        out.append(_row(record, "duplicate", f"the same data set as {_name(plan.jobs[stem])}",
                        file=file, size=first["size"] if file else ""))
    return out


class _Manifest:
    """The manifest's rows: those of earlier runs and this run's."""

    def __init__(self, directory: Path, plan: _Plan):
        self.directory, self.plan = directory, plan
        self.old = {_row_key(r): r for r in read_manifest(directory)}
        self.sizes: dict = {}  # file → the sizes the manifest gives it
        for row in self.old.values():
            if row["file"]:
                self.sizes.setdefault(row["file"], set()).add(row["size"])
        self.rows: dict = {}
        self._written = 0.0

    def write(self, now: bool = True):
        if not now and time.monotonic() - self._written < MANIFEST_EVERY_S:
            return
        current = list(self.rows.values()) + _duplicate_rows(self.plan, self.rows)
        keys = {_row_key(r) for r in current}
        kept = [r for k, r in self.old.items() if k not in keys]
        _write_manifest(self.directory, kept + current)
        self._written = time.monotonic()


# ---------------------------------------------------------------- fetch


def _start(plan: _Plan, manifest: _Manifest, report: FetchReport) -> list:
    """Rows of the records that need no download; the (stem, record) to fetch."""
    for record in plan.no_access:
        manifest.rows[record.key] = _row(record, "no-access-url", "the record has no "
                                         "access URL")
    todo = []
    for stem, record in plan.jobs.items():
        row = _known(manifest.directory, stem, record, manifest)
        if row is None:
            todo.append((stem, record))
        else:
            manifest.rows[record.key] = row
            report.present += row["status"] == "ok"
    return todo


def _record(rows, manifest: _Manifest, report: FetchReport) -> None:
    for row in rows:
        manifest.rows[_row_key(row)] = row
        report.fetched += row["status"] == "ok"
        report.fetched_bytes += int(row["size"] or 0)


def _run(todo: list, manifest: _Manifest, report: FetchReport, options, progress, cancel):
    """Download ``todo`` in a thread pool, recording each row as it finishes.

    Only a few jobs are queued ahead of the threads: waiting on all of them
    would cost O(n) per file, and a cancel would have to drop them all.
    """
    total, stop, sessions = report.records, threading.Event(), _Sessions(options.timeout_s)
    done, workers = total - len(todo), max(1, options.workers)
    if progress is not None:
        progress(done, total)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="vo-al-fetch")
    jobs, pending = iter(todo), set()
    try:
        while True:
            for stem, record in itertools.islice(jobs, 2 * workers - len(pending)):
                pending.add(pool.submit(_fetch_one, record, stem, manifest.directory,
                                        options, stop, sessions))
            if not pending:
                break
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _record((f.result() for f in finished), manifest, report)
            done += len(finished)
            if finished and progress is not None:
                progress(done, total)
            manifest.write(now=False)
            if cancel is not None and cancel.is_set():
                raise Cancelled("the fetch cancelled")
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        sessions.close()


def _summarise(plan: _Plan, manifest: _Manifest, report: FetchReport) -> FetchReport:
    for record in plan.jobs.values():
        row = manifest.rows[record.key]
        if row["status"] == "ok":
            report.files += 1
            report.via_datalink += record.is_datalink
        elif row["status"] in ("refused", "failed"):
            getattr(report, row["status"]).append((_name(record), row["reason"]))
    report.no_access = [(_name(r), "the record has no access URL") for r in plan.no_access]
    report.duplicates = len(plan.duplicates)
    return report


def fetch(records, directory, *, options: FetchOptions = FetchOptions(), progress=None,
          cancel=None) -> FetchReport:
    """Download the spectra of SSA records into a folder.

    Parameters
    ----------
    records : iterable of SsaRecord
        As :func:`vo_al.ssa.search` gives them.
    directory : path-like
        Created if missing; may hold an earlier fetch (resumed).
    options : FetchOptions
        ``workers`` downloads at a time, each tried ``tries`` times.
    progress : callable, optional
        ``progress(done, total)``: records handled, of all.
    cancel : threading.Event-like, optional
        Stops the downloads soon after it is set; the files done stay.

    Returns
    -------
    FetchReport

    Raises
    ------
    FetchError
        When another fetch writes the folder, or its manifest is not one.
    vo_al.cancel.Cancelled
    """
    started = time.perf_counter()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    records = list(records)
    fd = _lock(directory)
    try:
        _remove_parts(directory)
        plan = _plan(records)
        manifest = _Manifest(directory, plan)
        report = FetchReport(directory, records=len(records))
        todo = _start(plan, manifest, report)
        try:
            _run(todo, manifest, report, options, progress, cancel)
        finally:
            manifest.write()
        report.seconds = time.perf_counter() - started
        return _summarise(plan, manifest, report)
    finally:
        os.close(fd)


def fetch_service(url: str, directory, positions=None, *,
                  options: FetchOptions = FetchOptions(), progress=None,
                  cancel=None) -> FetchReport:
    """Search an SSA service and download the spectra it lists.

    Parameters
    ----------
    url : str
        The SSA service.
    directory : path-like
    positions : list of (ra, dec, radius), optional
        Degrees; None: every record of the service.
    options, progress, cancel
        As :func:`fetch`.

    Returns
    -------
    FetchReport

    Raises
    ------
    FetchError
        Naming the service and what failed.
    vo_al.cancel.Cancelled
    """
    records = search(url, positions, options, cancel)
    return fetch(records, directory, options=options, progress=progress, cancel=cancel)
