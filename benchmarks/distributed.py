"""Ingest and scoring throughput on Dask against the local path, in one run.

    python benchmarks/distributed.py [--files 2000] [--rows 49152] [--clusters 1 2]
                                     [--repeats 2]

For each N of ``--clusters``, measured in turn ``--repeats`` times (best
kept: these machines are shared and noisy, so only ratios from one run
mean much):

1. Ingest of ``--files`` synthetic LAMOST files: the local path with N
   processes against ``--dask local:N`` (N single-threaded worker
   processes). Stage 1 (reading and preprocessing, spread over the
   workers) and stage 2 (consolidation into the pool: the client alone)
   are timed apart; stage 2's rate is what no cluster can speed up.
2. Scoring (fp32) of a ``--rows`` random pool: the local path with N
   torch threads against ``local:N``, sending the weights included.
3. Dask's cost per task: the extra wall time of each Dask run over its
   local twin divided by its tasks, and empty tasks through the scheduler.
4. What no cluster can spread, timed here: the client's own work per
   spectrum (unpickling a task's results and writing them: an ingest
   shard, a chunk of scores), and its CPU load beside a running
   ``local:N`` (heartbeats; a LocalCluster's scheduler and nannies live in
   the client's process too).

A cluster's start-up is timed apart: ``--dask local:N`` pays it once per
command. Prints a table and, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

# This file's name is the `distributed` package's: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vo_al.distributed import (connect, files_per_task, map_unordered, task_rows,  # noqa: E402
                               total_threads)
from vo_al.inputs import iter_input_paths  # noqa: E402
from vo_al.model import build_model  # noqa: E402
from vo_al.pool import POOL_FORMAT_VERSION, consolidate, parts_path, write_shards  # noqa: E402
from vo_al.runtime import cpu_flags, tune_allocator  # noqa: E402
from vo_al.scoring import ScoreConfig, score_pool  # noqa: E402
from vo_al.synth import generate_survey  # noqa: E402

CLASSES = ["other", "emission", "double-peak"]


def write_random_pool(path: Path, rows: int, length: int = 140):
    """A pool of random spectra in 4,096-row chunks (scoring cost does not depend on content)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("spectra", data=rng.uniform(-1, 1, (rows, length)).astype(np.float32),
                          chunks=(4096, length))
        h5["quality"] = np.zeros(rows, np.uint8)
        h5.attrs["format_version"] = POOL_FORMAT_VERSION


def timed(function) -> float:
    """Wall seconds of ``function()``."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def client_cpu(function) -> tuple[float, float]:
    """Wall seconds of ``function()`` and the CPU seconds this process spent on it."""
    cpu = time.process_time()
    return timed(function), time.process_time() - cpu


def _noop(i):
    return i


def seconds_per_empty_task(client, n: int = 2000) -> float:
    """Wall seconds per empty task, pipelined as vo-al submits them."""
    return timed(lambda: list(map_unordered(client, _noop, ((i,) for i in range(n))))) / n


def client_seconds_per_spectrum(work: Path, rows: int = 4096) -> dict:
    """The client's share of a Dask ingest and scoring, per spectrum: one
    task's results unpickled and written (a shard of ``rows`` files; a
    chunk of ``rows`` scores), as :mod:`vo_al.distributed` does."""
    from vo_al.pool import _process_batch, _write_shard
    from vo_al.preprocess import PreprocessConfig
    from vo_al.scoring import _create_outputs, _write_chunk

    paths = list(iter_input_paths([work / "lamost"]))[:256]
    batch = pickle.dumps(_process_batch(paths, PreprocessConfig().to_attrs()))
    copies = -(-rows // len(paths))
    (work / "bench.parts").mkdir(exist_ok=True)

    def shard():
        results = [r for _ in range(copies) for r in pickle.loads(batch)]
        _write_shard(work / "bench.parts", 0, [r[1] for r in results], results)

    usable, probs = np.arange(rows), np.random.default_rng(0).random((rows, 3), np.float32)
    result = pickle.dumps((0, rows, usable, probs, None, None))
    with h5py.File(work / "bench-scores.h5", "w") as h5:
        _create_outputs(h5, rows, 3, 0, rows)
        scores = timed(lambda: _write_chunk(h5, *pickle.loads(result)[:5])) / rows
    return {"ingest": timed(shard) / (copies * len(paths)), "score": scores}


def ingest_seconds(files: Path, out: Path, client=None, workers: int = 1) -> np.ndarray:
    """Wall seconds of ingest's stage 1 (shards) and stage 2 (consolidation),
    and this process's CPU seconds in stage 1."""
    parts = parts_path(out)
    shutil.rmtree(parts, ignore_errors=True)
    stage1, cpu = client_cpu(lambda: write_shards(iter_input_paths([files]), parts,
                                                  workers=workers, client=client))
    stage2 = timed(lambda: consolidate(parts, out))
    shutil.rmtree(parts)
    return np.array([stage1, stage2, cpu])


def score_seconds(model, pool: Path, out: Path, client=None, threads: int = 1) -> np.ndarray:
    """Wall and this process's CPU seconds of scoring ``pool``."""
    torch.set_num_threads(threads)  # the local path's threads; workers set their own
    config = ScoreConfig(precision="fp32")
    return np.array(client_cpu(lambda: score_pool(model, pool, out, CLASSES, config,
                                                  client=client)))


def measure(args, work, model, n, client) -> dict:
    """Best seconds of the four runs for ``n`` cores, taking turns ``args.repeats`` times."""
    runs = {
        f"ingest local path {n}": lambda: ingest_seconds(work / "lamost", work / "local.h5",
                                                         workers=n),
        f"ingest local:{n}": lambda: ingest_seconds(work / "lamost", work / "dask.h5",
                                                    client=client),
        f"score local path {n}": lambda: score_seconds(model, work / "pool.h5",
                                                       work / "local-scores.h5", threads=n),
        f"score local:{n}": lambda: score_seconds(model, work / "pool.h5",
                                                  work / "dask-scores.h5", client=client),
    }
    best = {}
    for _ in range(args.repeats):
        for name, run in runs.items():
            seconds = run()
            best[name] = seconds if name not in best else np.minimum(best[name], seconds)
    return {name: np.asarray(seconds).tolist() for name, seconds in best.items()}


def run_cluster(args, work, model, n) -> dict:
    """Start ``local:n``, measure against the local path, and count its tasks."""
    started = time.perf_counter()
    with connect(f"local:{n}") as client:
        results = {f"start local:{n}": time.perf_counter() - started}
        results.update(measure(args, work, model, n, client))
        results[f"empty task local:{n}"] = seconds_per_empty_task(client)
        rows = task_rows(args.rows, ScoreConfig().chunk_rows, 4096, total_threads(client))
    results[f"tasks local:{n}"] = {"ingest": -(-args.files // files_per_task(4096, 32)),
                                   "score": -(-args.rows // rows)}
    return results


def _lines(args, results, n) -> list[str]:
    tasks = results[f"tasks local:{n}"]
    local, dask = results[f"ingest local path {n}"][:2], results[f"ingest local:{n}"][:2]
    score_local, score_dask = results[f"score local path {n}"][0], results[f"score local:{n}"]
    return [
        f"{n} core(s): ingest local path {args.files / sum(local):8,.0f} files/s, local:{n} "
        f"{args.files / sum(dask):8,.0f} files/s, ratio {sum(local) / sum(dask):.3f}, "
        f"{(sum(dask) - sum(local)) / tasks['ingest'] * 1e3:+.1f} ms per task "
        f"({tasks['ingest']} tasks)",
        f"{'':11}stage 2 (the client alone) {args.files / local[1]:,.0f} and "
        f"{args.files / dask[1]:,.0f} spectra/s; client + scheduler CPU in stage 1 "
        f"{results[f'ingest local:{n}'][2] / dask[0] * 100:.1f} % of a core",
        f"{'':11}score  local path {args.rows / score_local:8,.0f} spectra/s, local:{n} "
        f"{args.rows / score_dask[0]:8,.0f} spectra/s, ratio {score_local / score_dask[0]:.3f}, "
        f"{(score_dask[0] - score_local) / tasks['score'] * 1e3:+.1f} ms per task "
        f"({tasks['score']} tasks); client + scheduler CPU "
        f"{score_dask[1] / score_dask[0] * 100:.1f} % of a core",
        f"{'':11}local:{n} starts in {results[f'start local:{n}']:.2f} s; an empty task "
        f"costs {results[f'empty task local:{n}'] * 1e3:.2f} ms",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=49152)
    parser.add_argument("--clusters", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    tune_allocator()
    machine = {"cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
               "avx512f": "avx512f" in cpu_flags(), "amx": "amx_bf16" in cpu_flags()}
    results = {}
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        work = Path(folder)
        generate_survey(work, n_lamost=args.files, seed=1, workers=max(args.clusters))
        write_random_pool(work / "pool.h5", args.rows)
        model = build_model(seed=0)
        results["client s/spectrum"] = client_seconds_per_spectrum(work)
        print(f"client's work per spectrum: ingest "
              f"{results['client s/spectrum']['ingest'] * 1e6:.1f} µs, scoring "
              f"{results['client s/spectrum']['score'] * 1e6:.2f} µs", flush=True)
        for n in args.clusters:
            results.update(run_cluster(args, work, model, n))
            print("\n".join(_lines(args, results, n)), flush=True)
    print(json.dumps({"machine": machine, "files": args.files, "rows": args.rows, **results}))


if __name__ == "__main__":
    main()
