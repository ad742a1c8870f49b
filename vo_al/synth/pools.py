"""A synthetic survey written straight to HDF5 pools, without FITS files.

:func:`generate_pools` runs the same generator as :func:`generate_survey`
(:func:`~vo_al.synth.lamost_files.lamost_spectrum` and
:func:`~vo_al.synth.ccd700_files.ccd700_spectrum` give the
:class:`~vo_al.spectra.Spectrum` a reader would make of the file; its
``source`` is a ``synth:`` source that :func:`vo_al.spectra.read_spectrum`
regenerates, see :mod:`vo_al.synth.regenerate`) through
the pool builder of :mod:`vo_al.pool` (:func:`~vo_al.pool.write_shards`
and :func:`~vo_al.pool.consolidate`, the machinery of ``vo-al ingest``), so
``OUTDIR/pool.h5`` (LAMOST, unlabelled) and ``OUTDIR/train.h5`` (Ondřejov,
labelled) are what ``vo-al ingest`` makes of the FITS files, and
``OUTDIR/truth.csv`` is the survey's truth table. See ``docs/synth.md``.

>>> from vo_al.synth import generate_pools
>>> report = generate_pools("big", n_lamost=500_000, n_ondrejov=13_000)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_path
from ..labelfile import LabelTable
from ..pool import (
    IngestReport,
    PoolExistsError,
    consolidate,
    parts_path,
    rejected_csv_path,
    write_shards,
)
from ..preprocess import PreprocessConfig
from .ccd700_files import ccd700_spectrum
from .lamost_files import lamost_spectrum
from .regenerate import SynthSource
from .survey import checked_arguments
from .truth import TRUTH_COLUMNS

__all__ = ["SynthRecords", "PoolsReport", "generate_pools", "POOL_NAME", "TRAIN_NAME"]

POOL_NAME = "pool.h5"
TRAIN_NAME = "train.h5"
TRUTH_NAME = "truth.csv"


@dataclass(frozen=True)
class SynthRecords:
    """Record maker for :func:`vo_al.pool.write_shards`: generator index → spectrum.

    Items are ``synth:<instrument>:<seed>:<emission_fraction>:<index>``
    (the fingerprint of a resumed run thus covers the parameters); the
    ``extra`` string is the file's truth.csv row as JSON; the spectrum's
    ``source`` is its ``synth:`` source (:mod:`vo_al.synth.regenerate`).
    Picklable, for the worker processes.
    """

    instrument: str
    seed: int
    emission_fraction: float

    def items(self, n: int):
        """The item strings of files 0 … n−1."""
        prefix = f"synth:{self.instrument}:{self.seed}:{self.emission_fraction!r}:"
        return (f"{prefix}{index}" for index in range(n))

    def __call__(self, item: str):
        index = int(item.rsplit(":", 1)[1])
        if self.instrument == "lamost":
            spectrum, row = lamost_spectrum(self.seed, index, self.emission_fraction)
        else:
            spectrum, row = ccd700_spectrum(self.seed, index)
        spectrum.source = str(SynthSource(row["file"], self.seed, index, self.emission_fraction))
        row.update(seed=self.seed, index=index)
        return spectrum, json.dumps(row)


@dataclass
class PoolsReport:
    """What :func:`generate_pools` wrote."""

    outdir: str
    truth: str
    pool: IngestReport | None
    train: IngestReport | None
    workers: int
    seconds: float
    classes: dict = field(default_factory=dict)
    resumed: int = 0

    @property
    def n_spectra(self) -> int:
        """Spectra in both pools."""
        return sum(r.n_spectra for r in (self.pool, self.train) if r is not None)

    @property
    def spectra_per_second(self) -> float:
        """Spectra made by this run per wall-clock second."""
        made = self.n_spectra - self.resumed
        return made / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        """A few human-readable lines for the command line."""
        lines = []
        for name, report in (("pool", self.pool), ("training set", self.train)):
            if report is None:
                continue
            labelled = f", labelled {report.n_labelled}" if report.n_labelled else ""
            lines.append(f"{name} {report.pool}: {report.n_spectra} spectra, usable "
                         f"{report.n_usable}, quality > 0: {report.n_unusable} "
                         f"{report.quality_counts}{labelled}")
        classes = ", ".join(f"{k} {v}" for k, v in sorted(self.classes.items()))
        resumed = f" (resumed after {self.resumed})" if self.resumed else ""
        lines.append(f"classes: {classes}; truth in {self.truth}")
        lines.append(f"{self.seconds:.1f} s with {self.workers} workers, "
                     f"{self.spectra_per_second:.0f} spectra/s{resumed}")
        return "\n".join(lines)


class _TruthSink:
    """Streams the truth rows of the shards into an open truth.csv."""

    def __init__(self, fh):
        self.classes = Counter()
        self._writer = csv.DictWriter(fh, fieldnames=TRUTH_COLUMNS, restval="",
                                      lineterminator="\n")
        self._writer.writeheader()

    def __call__(self, extras):
        rows = [json.loads(str(text)) for text in extras]
        self.classes.update(row["class"] for row in rows if row["class"])
        self._writer.writerows(rows)


def _training_labels(parts: Path) -> LabelTable:
    """id → class of every spectrum in the training shards (a few MB at most)."""
    import numpy as np

    by_id = {}
    for shard in sorted(parts.glob("shard-*.npz")):
        with np.load(shard, allow_pickle=False) as data:
            for spectrum_id, text in zip(data["id"], data["extra"]):
                label = json.loads(str(text))["class"]
                if label:
                    by_id[str(spectrum_id)] = label
    return LabelTable(by_id, {})


def generate_pools(outdir, n_lamost=1000, n_ondrejov=0, seed=0, emission_fraction=0.003,
                   workers=None, config: PreprocessConfig = PreprocessConfig(),
                   shard_rows: int = 4096, overwrite: bool = False,
                   progress=None) -> PoolsReport:
    """Write a synthetic survey as HDF5 pools: ``pool.h5``, ``train.h5``, ``truth.csv``.

    The spectra are those :func:`~vo_al.synth.generate_survey` would write
    as files with the same arguments (same ids, same truth rows), and the
    pools are what ``vo-al ingest lamost/`` and ``vo-al ingest ondrejov/
    --labels truth.csv`` would build from them (row order aside: here it is
    the generator's, there the sorted file names').

    Parameters
    ----------
    outdir : str or path-like
        Output directory (created).
    n_lamost : int
        LAMOST spectra, into ``pool.h5`` (no labels); 0 writes no pool.
    n_ondrejov : int
        Ondřejov CCD700 spectra, into ``train.h5`` with ``label`` codes and
        ``class_names`` as ``--labels truth.csv`` gives them; 0 writes none.
    seed : int
    emission_fraction : float
        As for :func:`~vo_al.synth.generate_survey`.
    workers : int or None
        Worker processes; None uses every core, 1 runs in this process. The
        output does not depend on it.
    config : PreprocessConfig
        The preprocessing (the ``vo-al ingest`` defaults by default).
    shard_rows : int
        Spectra per shard: the most a kill can lose.
    overwrite : bool
        Replace completed outputs.
    progress : callable or None
        ``progress(n_done, n_total)`` after each shard (both pools together).

    Returns
    -------
    PoolsReport

    Raises
    ------
    PoolExistsError
        An output exists, no interrupted run is there to resume, and not
        ``overwrite``.
    vo_al.pool.InputsChangedError
        An interrupted run with other seed or emission fraction is there.

    Notes
    -----
    Stage 1 writes atomic shards to ``pool.h5.parts/`` and
    ``train.h5.parts/`` (resumed by a second run with the same arguments, or
    a larger count); stage 2 writes ``pool.h5``, ``train.h5`` and
    ``truth.csv`` each through a temporary file that is renamed when
    complete (:func:`~vo_al.atomic.atomic_path`), and only then removes the
    shards. While a ``.parts`` folder exists the run is unfinished, whatever
    else is there.
    """
    workers = checked_arguments({"n_lamost": n_lamost, "n_ondrejov": n_ondrejov, "seed": seed},
                                emission_fraction, workers)
    started = time.perf_counter()
    root = Path(outdir)
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(root / POOL_NAME, SynthRecords("lamost", seed, float(emission_fraction)), n_lamost),
            (root / TRAIN_NAME, SynthRecords("ondrejov", seed, float(emission_fraction)),
             n_ondrejov)]
    jobs = [job for job in jobs if job[2] > 0]
    unfinished = any(parts_path(out).exists() for out, _, _ in jobs)
    outputs = [out for out, _, _ in jobs] + [root / TRUTH_NAME]
    if not unfinished and not overwrite and any(p.exists() for p in outputs):
        present = ", ".join(p.name for p in outputs if p.exists())
        raise PoolExistsError(f"{root} already holds {present}; "
                              "pass overwrite=True (--overwrite) to replace them")
    total = n_lamost + n_ondrejov
    resumed, offset = 0, 0
    for out, records, n in jobs:
        def shifted(done, _total, offset=offset):
            if progress is not None:
                progress(offset + done, total)

        resumed += write_shards(records.items(n), parts_path(out), records, total=n,
                                workers=workers, config=config, shard_rows=shard_rows,
                                progress=shifted)
        offset += n

    reports = {}
    with atomic_path(root / TRUTH_NAME) as temporary, \
            open(temporary, "w", newline="", encoding="utf-8") as fh:
        sink = _TruthSink(fh)
        for out, records, _ in jobs:
            labels = class_names = None
            if records.instrument == "ondrejov":
                labels = _training_labels(parts_path(out))
                class_names = sorted(set(labels.class_names()) | set(sink.classes))
            reports[records.instrument] = consolidate(
                parts_path(out), out, config, labels, IngestReport(pool=str(out)),
                class_names=class_names, extra_sink=sink)
    for out, _, _ in jobs:
        shutil.rmtree(parts_path(out))
    for stale in (root / POOL_NAME, root / TRAIN_NAME):
        if overwrite and stale not in [out for out, _, _ in jobs] and stale.exists():
            stale.unlink()
            rejected_csv_path(stale).unlink(missing_ok=True)
    return PoolsReport(
        outdir=str(root), truth=str(root / TRUTH_NAME), pool=reports.get("lamost"),
        train=reports.get("ondrejov"), workers=workers,
        seconds=time.perf_counter() - started, classes=dict(sink.classes), resumed=resumed)
