"""Latency of one active-learning iteration: from the last label of a batch
to the next batch ready (train → score the whole pool → query), on large
pools, for full retraining, warm start and head-only fine-tuning.

    python benchmarks/iteration.py --train train.h5 --pool pool.h5 \
        [--sizes 100000 1000000] [--max-epochs 50] [--patience 10]

``train.h5`` and ``pool.h5`` come from ``vo-al ingest`` of a synthetic
survey (see docs/cli.md §6). The pool is tiled (its rows repeated under new
ids) up to each size: scoring cost depends on the number of spectra, not on
their content.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from vo_al.loop import IterationOptions, run_iteration
from vo_al.runtime import tune_allocator
from vo_al.session import Session

_COLUMNS = ("spectra", "id", "designation", "source", "ra", "dec", "quality")


def tile_pool(source: Path, out: Path, rows: int, chunk: int = 65536):
    """Write a pool of ``rows`` rows by repeating ``source``'s rows under new ids."""
    with h5py.File(source, "r") as src, h5py.File(out, "w") as dst:
        n = src["spectra"].shape[0]
        for name in _COLUMNS:
            shape = (rows,) + src[name].shape[1:]
            dst.create_dataset(name, shape, src[name].dtype,
                               chunks=(min(4096, rows),) + src[name].shape[1:])
        for start in range(0, rows, chunk):
            stop = min(rows, start + chunk)
            index = np.arange(start, stop) % n
            lo, hi = index.min(), index.max() + 1
            for name in _COLUMNS:
                values = src[name][lo:hi][index - lo]
                if name == "id":
                    values = np.array([f"t{r // n}-{v.decode() if isinstance(v, bytes) else v}"
                                       for r, v in zip(range(start, stop), values)], dtype=object)
                dst[name][start:stop] = values
        dst["wavelength"] = src["wavelength"][:]
        dst.attrs.update(dict(src.attrs))


def iteration_latency(session: Session, options: IterationOptions) -> dict:
    started = time.perf_counter()
    result = run_iteration(session, options)
    total = time.perf_counter() - started
    m = result.metrics
    return {"total": total, "train": m["train_s"], "score": m["score_s"], "query": m["query_s"],
            "epochs": m["epochs"], "rate": m["spectra_per_second"], "query_ids": result.query,
            "reused": m["features_reused"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=(100000, 1000000))
    parser.add_argument("--max-epochs", type=int, default=50)
    parser.add_argument("--patience", type=int, default=10)
    args = parser.parse_args()
    tune_allocator()
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            pool = Path(tmp) / "pool.h5"
            tile_pool(args.pool, pool, size)
            with Session.create(Path(tmp) / "s", args.train, pool) as session:
                for mode in ("scratch", "warm", "head"):
                    options = IterationOptions(mode=mode, max_epochs=args.max_epochs,
                                               patience=args.patience, cache_features=True)
                    t = iteration_latency(session, options)
                    session.label_many([(i, "other") for i in t["query_ids"]], source="simulated")
                    print(f"pool {size:>9,}  {mode:<7}: next batch ready in {t['total']:6.1f} s "
                          f"(train {t['train']:.1f} s / {t['epochs']} epochs, score "
                          f"{t['score']:.1f} s at {t['rate']:,.0f}/s"
                          f"{', cached trunk features' if t['reused'] else ''}, "
                          f"query {t['query']:.1f} s)",
                          flush=True)


if __name__ == "__main__":
    main()
