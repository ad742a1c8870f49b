"""Generate a synthetic survey: files in the real layouts plus truth.csv.

Every file depends only on (seed, file index), so the result is the same for
any number of worker processes, and a survey of N files is the first N files
of any larger survey with the same seed and class fractions.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .ccd700_files import ccd700_file
from .corrupt import corrupt_file
from .lamost_files import lamost_file
from .truth import write_truth

__all__ = ["SynthReport", "generate_survey"]

_MIN_CHUNK = 16
_MAX_CHUNK = 64


@dataclass
class SynthReport:
    """What :func:`generate_survey` wrote.

    Attributes
    ----------
    outdir : str
        The survey directory.
    truth : str
        Path of truth.csv.
    n_files : int
        Files written, corrupt ones included.
    n_lamost, n_ondrejov, n_corrupt : int
        Files per kind of output.
    classes : dict
        Class → number of (non-corrupt) files.
    kinds : dict
        Kind (clean, p-cygni, ..., corrupt) → number of files.
    layouts : dict
        Layout → number of files.
    workers : int
        Worker processes used.
    seconds : float
        Wall-clock time.
    files_per_second : float
        ``n_files / seconds``.
    """

    outdir: str
    truth: str
    n_files: int
    n_lamost: int
    n_ondrejov: int
    n_corrupt: int
    classes: dict
    kinds: dict
    layouts: dict
    workers: int
    seconds: float
    files_per_second: float

    def summary(self) -> str:
        """A few human-readable lines for the command line."""
        def counts(mapping):
            return ", ".join(f"{key} {value}" for key, value in sorted(mapping.items()))

        return "\n".join([
            f"{self.n_files} files in {self.outdir} ({self.n_lamost} LAMOST, "
            f"{self.n_ondrejov} Ondřejov, {self.n_corrupt} corrupt)",
            f"classes: {counts(self.classes)}",
            f"kinds: {counts(self.kinds)}",
            f"layouts: {counts(self.layouts)}",
            f"{self.seconds:.1f} s with {self.workers} workers, "
            f"{self.files_per_second:.0f} files/s; truth in {self.truth}",
        ])


@dataclass(frozen=True)
class _Job:
    """What every worker needs to know (picklable)."""

    outdir: str
    seed: int
    emission_fraction: float
    n_lamost: int


def _make(job: _Job, task: tuple[str, int]) -> dict:
    survey, index = task
    if survey == "lamost":
        made = lamost_file(job.seed, index, job.emission_fraction)
    elif survey == "ondrejov":
        made = ccd700_file(job.seed, index)
    else:
        made = corrupt_file(job.seed, index, job.n_lamost, job.emission_fraction)
    relative = f"{'ondrejov' if survey == 'ondrejov' else 'lamost'}/{made.name}"
    Path(job.outdir, relative).write_bytes(made.data)
    return {"file": relative, **made.row, "seed": job.seed, "index": index}


def _run_chunk(job: _Job, tasks: list) -> list[dict]:
    """Worker entry point: make the files of one chunk, return their truth rows."""
    return [_make(job, task) for task in tasks]


def _execute(job: _Job, tasks: list, workers: int, progress) -> tuple[list[dict], int]:
    """Run all tasks, in-process or on a spawn pool.

    Returns the truth rows in task order and the number of processes used.
    """
    # ≈8 chunks per worker, but never so small that process start-up dominates
    size = max(_MIN_CHUNK, min(_MAX_CHUNK, -(-len(tasks) // (8 * workers))))
    chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    results: list = [None] * len(chunks)
    done = 0
    used = min(workers, len(chunks)) if len(chunks) > 1 else 1
    if used == 1:
        for k, chunk in enumerate(chunks):
            results[k] = _run_chunk(job, chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, len(tasks))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(used, mp_context=context) as pool:
            futures = {pool.submit(_run_chunk, job, chunk): k for k, chunk in enumerate(chunks)}
            for future in as_completed(futures):
                k = futures[future]
                results[k] = future.result()
                done += len(chunks[k])
                if progress is not None:
                    progress(done, len(tasks))
    return [row for chunk_rows in results for row in chunk_rows], used


def _check(name, value, low=0):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")


def checked_arguments(counts: dict, emission_fraction, workers) -> int:
    """Check a survey's counts (integers >= 0) and emission fraction (in
    [0, 1]); return the number of worker processes (None: every core).

    Raises
    ------
    ValueError
        For a count, fraction or worker number out of range.
    """
    for name, value in counts.items():
        _check(name, value)
    if not 0.0 <= float(emission_fraction) <= 1.0:
        raise ValueError(f"emission_fraction must be in [0, 1], not {emission_fraction!r}")
    workers = (os.cpu_count() or 1) if workers is None else workers
    _check("workers", workers, low=1)
    return workers


def generate_survey(outdir, n_lamost=1000, n_ondrejov=0, seed=0, emission_fraction=0.003,
                    corrupt=0, workers=None, progress=None) -> SynthReport:
    """Write a synthetic survey of LAMOST and Ondřejov files with ground truth.

    Parameters
    ----------
    outdir : str or path-like
        Output directory; ``lamost/``, ``ondrejov/`` and ``truth.csv`` are
        created in it (files of the same name are overwritten).
    n_lamost : int
        Number of LAMOST low-resolution files (four layouts, some gzipped).
    n_ondrejov : int
        Number of Ondřejov CCD700 files (IRAF image and SSAP table), with the
        paper's training mix: 47 % absorption, 41 % emission, 12 % double-peak.
    seed : int
        Seed (≥ 0); the same seed gives byte-identical files.
    emission_fraction : float
        Share of LAMOST spectra that are emission (75 %) or double-peak (25 %);
        the default 0.003 is close to the rate in LAMOST DR2.
    corrupt : int
        Number of broken files added to ``lamost/`` (truncated, random bytes,
        empty, all-NaN, wrong shape, ...).
    workers : int or None
        Worker processes; None uses every core, 1 runs in this process.
    progress : callable or None
        Called as ``progress(n_done, n_total)`` as files are finished.

    Returns
    -------
    SynthReport

    Raises
    ------
    ValueError
        For negative counts or seed, or a fraction outside [0, 1].
    """
    workers = checked_arguments({"n_lamost": n_lamost, "n_ondrejov": n_ondrejov, "seed": seed,
                                 "corrupt": corrupt}, emission_fraction, workers)
    started = time.perf_counter()
    root = Path(outdir)
    for sub in ("lamost", "ondrejov"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tasks = ([("lamost", i) for i in range(n_lamost)]
             + [("ondrejov", i) for i in range(n_ondrejov)]
             + [("corrupt", j) for j in range(corrupt)])
    job = _Job(str(root), seed, float(emission_fraction), n_lamost)
    rows, used = _execute(job, tasks, workers, progress)
    truth = root / "truth.csv"
    write_truth(truth, rows)
    seconds = time.perf_counter() - started
    return SynthReport(
        outdir=str(root), truth=str(truth), n_files=len(rows), n_lamost=n_lamost,
        n_ondrejov=n_ondrejov, n_corrupt=corrupt,
        classes=dict(Counter(row["class"] for row in rows if row["class"])),
        kinds=dict(Counter(row["kind"] for row in rows)),
        layouts=dict(Counter(row["layout"] for row in rows)),
        workers=used, seconds=seconds,
        files_per_second=len(rows) / seconds if seconds > 0 else 0.0,
    )
