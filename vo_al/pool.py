"""The HDF5 pool: build it from spectrum files (parallel, streamed,
resumable, with a report of bad files) and stream it back in chunks.

Building works in two stages so that a kill at any moment loses at most the
shard being written:

1. Workers read and preprocess files; the main process gathers their
   results into shards of ``shard_rows`` inputs and writes each shard
   atomically (temporary file, then rename) into ``POOL.h5.parts/``. A
   second run re-reads the shards, checks that they came from the same
   input paths, and continues after the last one.
2. When every input is done, the shards are streamed into ``POOL.h5``
   (written to a temporary file and renamed), duplicate ids are dropped,
   labels attached, and ``POOL.rejected.csv`` written; then the shards go.

The per-item step is pluggable: :func:`write_shards` takes a *record
maker* (``item -> (Spectrum, extra)``); :func:`ingest` passes file paths
and :func:`read_file_record`, ``vo-al synth --pool`` generator indices and
:class:`vo_al.synth.pools.SynthRecords`. Everything else (preprocessing,
shards, consolidation, attributes, id hashing) is shared.

Memory does not grow with the number of files: duplicate ids are refused
through an index on disk (:mod:`vo_al.duplicates`) in ``POOL.h5.parts/``.
The layout of the file is documented in ``docs/pool-format.md``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

import h5py
import multiprocessing
import numpy as np

from . import __version__
from .atomic import atomic_path
from .duplicates import DuplicateIndex, hash_ids
from .inputs import RejectedPath, count_input_paths, iter_input_paths
from .labelfile import LabelTable
from .preprocess import PreprocessConfig, Quality, preprocess
from .spectra import SpectrumReadError, read_spectrum, utf8_text

__all__ = [
    "POOL_FORMAT_VERSION",
    "IngestReport",
    "PoolExistsError",
    "InputsChangedError",
    "NoSpectraError",
    "ingest",
    "rejected_csv_path",
    "PoolReader",
    "hash_ids",
    "read_file_record",
    "write_shards",
    "consolidate",
    "parts_path",
]

POOL_FORMAT_VERSION = 1
_STRING = h5py.string_dtype("utf-8")
_BATCH = 32  # files per worker task
#: The duplicate-id index's scratch folder in the shard folder.
_DUPLICATES = "duplicate-ids"


class PoolExistsError(FileExistsError):
    """The output pool exists and no interrupted run is there to resume."""


class NoSpectraError(ValueError):
    """An ingest found no readable spectrum at all."""


class InputsChangedError(RuntimeError):
    """A resumed run was given other inputs than the interrupted one."""


@dataclass
class IngestReport:
    """What an ingest run did; ``vo-al ingest`` prints it."""

    pool: str
    n_inputs: int = 0
    n_spectra: int = 0
    n_usable: int = 0
    n_unusable: int = 0
    n_rejected: int = 0
    n_duplicates: int = 0
    n_labelled: int = 0
    resumed_inputs: int = 0
    seconds: float = 0.0
    quality_counts: dict = field(default_factory=dict)

    @property
    def files_per_second(self) -> float:
        """Inputs processed by this run per wall-clock second."""
        done = self.n_inputs - self.resumed_inputs
        return done / self.seconds if self.seconds > 0 else float("nan")


def rejected_csv_path(pool_path) -> Path:
    """``pool.h5`` → ``pool.rejected.csv``, beside the pool."""
    pool_path = Path(pool_path)
    return pool_path.with_name(pool_path.stem + ".rejected.csv")


# --------------------------------------------------------------------------
# Stage 1: workers


def read_file_record(path: str):
    """The record maker of :func:`ingest`: read the spectrum file at ``path``.

    A record maker turns one input item (a string) into ``(spectrum,
    extra)``: the :class:`~vo_al.spectra.Spectrum` as a reader gives it, and
    a string kept verbatim in the shards and handed to the ``extra_sink`` of
    :func:`consolidate` (``""`` here). It raises
    :class:`~vo_al.spectra.SpectrumReadError` or ``OSError`` for an item that
    cannot be read; that item is then listed as rejected. It must be
    picklable (a module-level function or an instance of a module-level
    class) to run in worker processes.
    """
    return read_spectrum(path), ""


def _process_batch(items: list[str], config_attrs: dict,
                   make_record: Callable = read_file_record) -> list[tuple]:
    """Make and preprocess the records of ``items``; one result tuple per item, never raises.

    A :class:`~vo_al.inputs.RejectedPath` (a directory the walk did not
    follow) is rejected with its reason.
    """
    config = PreprocessConfig.from_attrs(config_attrs)
    results = []
    for item in items:
        if isinstance(item, RejectedPath):
            results.append(("rejected", item, item.reason))
            continue
        try:
            spectrum, extra = make_record(item)
        except (SpectrumReadError, OSError) as exc:
            reason = exc.reason if isinstance(exc, SpectrumReadError) else str(exc)
            results.append(("rejected", item, reason))
            continue
        except Exception as exc:  # a reader bug must not stop a 4-million-file run
            results.append(("rejected", item, f"unexpected {type(exc).__name__}: {exc}"))
            continue
        done = preprocess(spectrum, config)
        results.append((
            "ok", item, spectrum.id, spectrum.designation or spectrum.object_name or "",
            spectrum.ra, spectrum.dec, int(done.quality), done.reason, done.vector,
            spectrum.source, extra,
        ))
    return results


def _batches(paths: Iterator[str], size: int) -> Iterator[list[str]]:
    while batch := list(islice(paths, size)):
        yield batch


def _run_batches(batches, config_attrs, workers,
                 make_record: Callable = read_file_record, client=None) -> Iterator[list[tuple]]:
    """Results of every batch, in input order, with a bounded number in flight."""
    if client is not None:
        from .distributed import map_ordered

        yield from map_ordered(client, _process_batch,
                               ((batch, config_attrs, make_record) for batch in batches))
        return
    if workers <= 1:
        for batch in batches:
            yield _process_batch(batch, config_attrs, make_record)
        return
    context = multiprocessing.get_context("spawn")  # safe beside threads (GUI, torch)
    with ProcessPoolExecutor(workers, mp_context=context) as executor:
        pending = []
        for batch in batches:
            pending.append(executor.submit(_process_batch, batch, config_attrs, make_record))
            if len(pending) >= 4 * workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


# --------------------------------------------------------------------------
# Stage 1: shards


def _fingerprint(paths: list[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def _shard_files(parts: Path) -> list[Path]:
    return sorted(parts.glob("shard-*.npz"))


def _write_shard(parts: Path, number: int, paths: list[str], results: list[tuple]):
    ok = [r for r in results if r[0] == "ok"]
    rejected = [r for r in results if r[0] == "rejected"]
    arrays = {
        "fingerprint": np.array(_fingerprint(paths)),
        "n_inputs": np.array(len(paths)),
        "source": np.array([r[9] for r in ok], dtype=str),
        "id": np.array([r[2] for r in ok], dtype=str),
        "designation": np.array([r[3] for r in ok], dtype=str),
        "ra": np.array([r[4] for r in ok], dtype=np.float64),
        "dec": np.array([r[5] for r in ok], dtype=np.float64),
        "quality": np.array([r[6] for r in ok], dtype=np.uint8),
        "reason": np.array([r[7] for r in ok], dtype=str),
        "spectra": (np.array([r[8] for r in ok], dtype=np.float32) if ok
                    else np.empty((0, 0), np.float32)),  # a shard of rejected files only
        "extra": np.array([r[10] for r in ok], dtype=str),
        "rejected_path": np.array([r[1] for r in rejected], dtype=str),
        "rejected_reason": np.array([r[2] for r in rejected], dtype=str),
    }
    final = parts / f"shard-{number:07d}.npz"
    with atomic_path(final) as temporary, open(temporary, "wb") as fh:
        np.savez(fh, **arrays)


def _load_shard(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _skip_done(parts: Path, paths: Iterator[str]) -> int:
    """Consume the inputs already in shards, checking they are the same paths."""
    done = 0
    for shard in _shard_files(parts):
        with np.load(shard, allow_pickle=False) as data:
            n, expected = int(data["n_inputs"]), str(data["fingerprint"])
        if _fingerprint(list(islice(paths, n))) != expected:
            raise InputsChangedError(
                f"the inputs differ from those of the interrupted run in {parts} "
                f"(at input {done + 1}); remove {parts} to start over"
            )
        done += n
    return done


# --------------------------------------------------------------------------
# Stage 2: consolidation


def _create_datasets(h5: h5py.File, length: int, with_labels: bool):
    chunk = 4096
    h5.create_dataset("spectra", (0, length), np.float32, maxshape=(None, length),
                      chunks=(chunk, length))
    for name, dtype in (("id", _STRING), ("designation", _STRING), ("source", _STRING),
                        ("ra", np.float64), ("dec", np.float64), ("quality", np.uint8)):
        h5.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(chunk,))
    if with_labels:
        h5.create_dataset("label", (0,), np.int8, maxshape=(None,), chunks=(chunk,))


def _append(h5: h5py.File, columns: dict):
    start = h5["spectra"].shape[0]
    stop = start + len(columns["id"])
    if stop == start:
        return
    for name, values in columns.items():
        dataset = h5[name]
        dataset.resize(stop, axis=0)
        dataset[start:stop] = values


def _label_codes(labels: LabelTable | None, class_names, ids, sources) -> np.ndarray:
    codes = np.full(len(ids), -1, dtype=np.int8)
    for i, (spectrum_id, source) in enumerate(zip(ids, sources)):
        name = labels.lookup(str(spectrum_id), str(source))
        if name is not None:
            codes[i] = class_names.index(name)
    return codes


def consolidate(parts, out, config: PreprocessConfig = PreprocessConfig(),
                labels: LabelTable | None = None, report: IngestReport | None = None,
                class_names: list[str] | None = None,
                extra_sink: Callable[[np.ndarray], None] | None = None) -> IngestReport:
    """Stage 2: stream the shards in ``parts`` into ``out`` and its rejected CSV.

    ``out`` is written to a temporary file and renamed, so it only ever appears
    complete. The shards are left in place (the caller removes them once
    everything it builds from them is done). Duplicate ids are found first,
    on disk, in ``parts/duplicate-ids/`` (:class:`~vo_al.duplicates.DuplicateIndex`),
    which is rebuilt by every call and removed at its end.

    Parameters
    ----------
    parts : path-like
        The shard folder filled by :func:`write_shards`.
    out : path-like
        The pool file.
    config : PreprocessConfig
        The settings the shards were made with (stored as attributes).
    labels : LabelTable, optional
        Adds the ``label`` dataset: ``labels.lookup(id, source)``.
    report : IngestReport, optional
        Counts are added to it; a new one is made by default.
    class_names : list of str, optional
        The ``class_names`` attribute; default ``labels.class_names()``.
    extra_sink : callable, optional
        Called with each shard's ``extra`` strings (one per spectrum read,
        duplicates included, in input order).
    """
    parts, out = Path(parts), Path(out)
    report = IngestReport(pool=str(out)) if report is None else report
    if labels is not None and class_names is None:
        class_names = labels.class_names()
    csv_path = rejected_csv_path(out)
    shards = _shard_files(parts)
    with DuplicateIndex(parts / _DUPLICATES) as index, \
            atomic_path(out) as temporary, atomic_path(csv_path) as csv_temporary, \
            h5py.File(temporary, "w") as h5, \
            open(csv_temporary, "w", newline="", encoding="utf-8") as fh:
        _find_duplicates(index, shards)
        writer = csv.writer(fh)
        writer.writerow(["path", "reason", "action"])
        _create_datasets(h5, config.n_points, labels is not None)
        for shard_path in shards:
            shard = _load_shard(shard_path)
            if extra_sink is not None:
                extra_sink(shard.get("extra", np.full(len(shard["id"]), "")))
            _consolidate_shard(h5, writer, shard, index, labels, class_names, report)
        _write_attributes(h5, config, class_names, report)
    return report


def _find_duplicates(index: DuplicateIndex, shards: list[Path]):
    """Give ``index`` the ids of every shard, in order, and resolve it."""
    for shard_path in shards:
        with np.load(shard_path, allow_pickle=False) as data:
            index.add(_utf8_array(data["id"]))
    index.resolve()


def _utf8_array(values) -> np.ndarray:
    """Strings as :func:`~vo_al.spectra.utf8_text` (file names that are not
    UTF-8 are stored with ``\\xNN`` escapes); one check for a column of
    valid text, which is returned as it is."""
    values = np.asarray(values, dtype=str)
    try:
        "".join(values.tolist()).encode("utf-8")
        return values
    except UnicodeEncodeError:
        return np.array([utf8_text(v) for v in values.tolist()], dtype=str)


def _utf8_columns(shard: dict) -> dict:
    """The shard with its text columns as :func:`_utf8_array`."""
    text = ("id", "designation", "source", "reason", "rejected_path", "rejected_reason")
    return {key: _utf8_array(values) if key in text else values
            for key, values in shard.items()}


def _consolidate_shard(h5, writer, shard, index, labels, class_names, report):
    shard = _utf8_columns(shard)
    report.n_inputs += int(shard["n_inputs"])
    for path, reason in zip(shard["rejected_path"], shard["rejected_reason"]):
        writer.writerow([path, reason, "rejected"])
    report.n_rejected += len(shard["rejected_path"])
    fresh = index.fresh(len(shard["id"]))
    for path, spectrum_id in zip(shard["source"][~fresh], shard["id"][~fresh]):
        writer.writerow([path, f"duplicate id {spectrum_id} of an earlier spectrum", "rejected"])
    report.n_duplicates += int((~fresh).sum())
    columns = {name: shard[name][fresh] for name in
               ("spectra", "id", "designation", "source", "ra", "dec", "quality")}
    kept_unusable = columns["quality"] != Quality.OK
    for path, reason in zip(columns["source"][kept_unusable], shard["reason"][fresh][kept_unusable]):
        writer.writerow([path, reason, "kept, quality > 0"])
    for code in np.unique(columns["quality"]):
        name = Quality(int(code)).name
        report.quality_counts[name] = report.quality_counts.get(name, 0) + int(
            (columns["quality"] == code).sum())
    if labels is not None:
        columns["label"] = _label_codes(labels, class_names, columns["id"], columns["source"])
        report.n_labelled += int((columns["label"] >= 0).sum())
    columns = {k: (v.astype(object) if v.dtype.kind == "U" else v) for k, v in columns.items()}
    _append(h5, columns)
    report.n_spectra += len(columns["id"])
    report.n_unusable += int(kept_unusable.sum())
    report.n_usable += int((~kept_unusable).sum())


def _write_attributes(h5, config, class_names, report):
    h5["wavelength"] = config.grid()
    h5.attrs["format_version"] = POOL_FORMAT_VERSION
    h5.attrs["vo_al_version"] = __version__
    h5.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    h5.attrs["n_inputs"] = report.n_inputs
    h5.attrs["n_rejected"] = report.n_rejected + report.n_duplicates
    for key, value in config.to_attrs().items():
        h5.attrs[f"preprocess.{key}"] = value
    if class_names is not None:
        h5.attrs["class_names"] = class_names
    h5.attrs["quality_names"] = [q.name for q in Quality]


# --------------------------------------------------------------------------
# The public entry point


def ingest(
    inputs,
    out,
    labels: LabelTable | None = None,
    workers: int | None = None,
    config: PreprocessConfig = PreprocessConfig(),
    shard_rows: int = 4096,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    client=None,
) -> IngestReport:
    """Build (or resume building) a pool from spectrum files.

    Parameters
    ----------
    inputs : iterable of str or path-like
        Files, directories (recursive) and text files listing paths.
    out : str or path-like
        The HDF5 file to write; ``<stem>.rejected.csv`` goes beside it.
    labels : LabelTable, optional
        Labels to attach (a training set); adds the ``label`` dataset.
    workers : int, optional
        Worker processes; default all cores. 1 runs in this process.
    config : PreprocessConfig
        The preprocessing applied to every spectrum.
    shard_rows : int
        Inputs per shard: the most a kill can lose.
    overwrite : bool
        Replace an existing, completed pool.
    progress : callable, optional
        ``progress(inputs_done, inputs_total)`` after each shard.
    client : distributed.Client, optional
        Read and preprocess the files on this Dask cluster (its workers see
        the files at the same paths); this process still writes the shards
        and the pool, which are those of a local ingest. None: ``workers``.

    Returns
    -------
    IngestReport

    Raises
    ------
    PoolExistsError
        ``out`` exists, no interrupted run is there, and not ``overwrite``.
    InputsChangedError
        An interrupted run is there but was given other inputs.
    NoSpectraError
        No input was a readable spectrum (no pool is left; the rejected
        CSV says why each input was refused).
    """
    started = time.perf_counter()
    out = Path(out)
    parts = parts_path(out)
    if out.exists() and not parts.exists() and not overwrite:
        raise PoolExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    report = IngestReport(pool=str(out))
    report.resumed_inputs = write_shards(
        iter_input_paths(inputs), parts, total=count_input_paths(inputs), workers=workers,
        config=config, shard_rows=shard_rows, progress=progress, client=client)
    consolidate(parts, out, config, labels, report)
    shutil.rmtree(parts)
    report.seconds = time.perf_counter() - started
    if report.n_spectra == 0:
        out.unlink()
        raise NoSpectraError(
            f"no readable spectrum among {report.n_inputs} inputs "
            f"({report.n_rejected} rejected: see {rejected_csv_path(out)}); no pool was written")
    return report


def parts_path(out) -> Path:
    """``POOL.h5`` → ``POOL.h5.parts``, the shard folder of an unfinished build."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def write_shards(items, parts, make_record: Callable = read_file_record,
                 total: int | None = None, workers: int | None = None,
                 config: PreprocessConfig = PreprocessConfig(), shard_rows: int = 4096,
                 progress: Callable[[int, int], None] | None = None, client=None) -> int:
    """Stage 1: make and preprocess every item's record into shards, resuming.

    Parameters
    ----------
    items : iterable of str
        The inputs in order (file paths for :func:`ingest`); their sequence
        is fingerprinted per shard so that a resumed run with other inputs
        is refused.
    parts : path-like
        The shard folder (created; shards already there are kept and skipped).
    make_record : callable
        ``make_record(item) -> (Spectrum, extra)``, picklable; see
        :func:`read_file_record`, the default.
    total : int, optional
        Number of items, for ``progress``.
    workers : int, optional
        Worker processes; default all cores. 1 runs in this process.
    config : PreprocessConfig
    shard_rows : int
        Items per shard: the most a kill can lose.
    progress : callable, optional
        ``progress(items_done, total)`` after each shard.
    client : distributed.Client, optional
        Make the records on this Dask cluster, a few hundred items per task
        (:func:`vo_al.distributed.files_per_task`: the shards are cut where
        a local run cuts them); ``workers`` is then ignored.

    Returns
    -------
    int
        Items found already done in earlier shards.

    Raises
    ------
    InputsChangedError
        The shards there came from other items.
    """
    parts = Path(parts)
    parts.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    items = iter(items)
    resumed = done = _skip_done(parts, items)
    number = len(_shard_files(parts))
    if progress:
        progress(done, total)
    shard: list[tuple] = []
    size = min(_BATCH, shard_rows)
    if client is not None:
        from .distributed import files_per_task

        size = files_per_task(shard_rows, size)
    batches = _batches(items, size)
    for results in _run_batches(batches, config.to_attrs(), workers, make_record, client):
        shard.extend(results)
        if len(shard) >= shard_rows:
            _write_shard(parts, number, [r[1] for r in shard], shard)
            number, done, shard = number + 1, done + len(shard), []
            if progress:
                progress(done, total)
    if shard:
        _write_shard(parts, number, [r[1] for r in shard], shard)
        if progress:
            progress(done + len(shard), total)
    return resumed


# --------------------------------------------------------------------------
# Reading


class PoolReader:
    """Streamed, read-only access to a pool file.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`ingest`.

    Examples
    --------
    >>> with PoolReader("pool.h5") as pool:  # doctest: +SKIP
    ...     for start, chunk in pool.iter_chunks(4096, ("spectra", "quality")):
    ...         score(chunk["spectra"][chunk["quality"] == 0])
    """

    def __init__(self, path):
        self.path = Path(path)
        self._h5 = h5py.File(self.path, "r")
        version = self._h5.attrs.get("format_version")
        if version != POOL_FORMAT_VERSION or "spectra" not in self._h5:
            self._h5.close()
            raise ValueError(
                f"{self.path} is not a vo-al pool of format {POOL_FORMAT_VERSION} "
                f"(format_version={version!r})"
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the file."""
        self._h5.close()

    def __len__(self) -> int:
        return int(self._h5["spectra"].shape[0])

    @property
    def length(self) -> int:
        """Points per preprocessed spectrum."""
        return int(self._h5["spectra"].shape[1])

    @property
    def wavelength(self) -> np.ndarray:
        """The common wavelength grid (Å, vacuum)."""
        return self._h5["wavelength"][:]

    @property
    def config(self) -> PreprocessConfig:
        """The preprocessing the pool was built with."""
        return PreprocessConfig.from_attrs(self.preprocess_attrs)

    @property
    def preprocess_attrs(self) -> dict:
        """The preprocessing settings as stored (``preprocess.*`` attributes)."""
        prefix = "preprocess."
        return {k[len(prefix):]: _plain(v) for k, v in self._h5.attrs.items()
                if k.startswith(prefix)}

    @property
    def class_names(self) -> list[str] | None:
        """Class names of the ``label`` codes, or None for an unlabelled pool."""
        names = self._h5.attrs.get("class_names")
        return None if names is None else [str(n) for n in names]

    @property
    def columns(self) -> list[str]:
        """Per-spectrum datasets in the file."""
        return [name for name in self._h5 if self._h5[name].shape[:1] == (len(self),)]

    def read(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of one column; strings come back as ``str``."""
        values = self._h5[name][start:stop]
        if self._h5[name].dtype.kind == "O":
            values = self._h5[name].asstr()[start:stop]
        return values

    def iter_chunks(self, chunk_rows: int = 4096, columns=("spectra",)):
        """Yield ``(start, {column: rows})`` over the whole pool, chunk by chunk."""
        for start in range(0, len(self), chunk_rows):
            stop = min(start + chunk_rows, len(self))
            yield start, {name: self.read(name, start, stop) for name in columns}


def _plain(value):
    """HDF5 attribute value → plain Python (for configs and comparisons)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
