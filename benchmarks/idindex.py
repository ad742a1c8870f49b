"""The duplicate-id index of consolidation: its cost per shard and its memory
at several pool sizes, as ratios to the smallest, measured in one run.

    python benchmarks/idindex.py [--sizes 10000 100000 1000000 4000000]
                                 [--shard-rows 4096] [--duplicates 0.01] [--repeats 3]

For each size, synthetic ids (``--duplicates`` of them repeating an
earlier id) go through :class:`vo_al.duplicates.DuplicateIndex` shard by
shard, as :func:`vo_al.pool.consolidate` sends them: pass 1 (hashing,
appending), pass 2 (buckets) and pass 3 (reading the flags back). Printed:
the index's seconds per shard (the best of ``--repeats`` turns: this
machine is shared), its ratio to the smallest size's (flat
means the cost per shard does not grow with the pool), and the peak of the
memory Python and numpy allocated inside the index (tracemalloc, measured
in a second turn: tracing slows the first), also as a ratio. Ids are made
outside the timed calls.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from vo_al.duplicates import DuplicateIndex


def shard_ids(size: int, shard_rows: int, duplicates: float, seed: int = 0):
    """Yield the ids of each shard: ``spec-N``, a fraction repeating an earlier one."""
    rng = np.random.default_rng(seed)
    for start in range(0, size, shard_rows):
        rows = np.arange(start, min(start + shard_rows, size))
        again = rng.random(rows.size) < duplicates
        rows[again] = rng.integers(0, rows[again] + 1)
        yield [f"spec-{row:010d}" for row in rows]


def run_index(folder: Path, size: int, shard_rows: int, duplicates: float) -> tuple[float, int]:
    """Seconds spent inside the index for one pool, and the duplicates it found."""
    spent = 0.0
    with DuplicateIndex(folder) as index:
        counts = []
        for ids in shard_ids(size, shard_rows, duplicates):
            start = time.perf_counter()
            index.add(ids)
            spent += time.perf_counter() - start
            counts.append(len(ids))
        start = time.perf_counter()
        found = index.resolve()
        for n in counts:
            index.fresh(n)
        spent += time.perf_counter() - start
    return spent, found


def peak_bytes(folder: Path, size: int, shard_rows: int, duplicates: float) -> int:
    """Peak bytes allocated while the index runs (ids included, one shard at a time)."""
    tracemalloc.start()
    try:
        run_index(folder, size, shard_rows, duplicates)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[10_000, 100_000, 1_000_000, 4_000_000])
    parser.add_argument("--shard-rows", type=int, default=4096)
    parser.add_argument("--duplicates", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    with tempfile.TemporaryDirectory(prefix="vo-al-idindex-") as work:
        folder = Path(work) / "ids"
        timings = {size: min(run_index(folder, size, args.shard_rows, args.duplicates)
                             for _ in range(args.repeats)) for size in sizes}
        peaks = {size: peak_bytes(folder, size, args.shard_rows, args.duplicates)
                 for size in sizes}
    base = sizes[0]
    per_shard = {size: seconds / -(-size // args.shard_rows)
                 for size, (seconds, _) in timings.items()}
    print(f"{'ids':>10} {'duplicates':>10} {'ms/shard':>9} {'ratio':>6} "
          f"{'peak MB':>8} {'ratio':>6}")
    for size in sizes:
        print(f"{size:>10,} {timings[size][1]:>10,} {1e3 * per_shard[size]:>9.2f} "
              f"{per_shard[size] / per_shard[base]:>6.2f} {peaks[size] / 1e6:>8.1f} "
              f"{peaks[size] / peaks[base]:>6.2f}")


if __name__ == "__main__":
    main()
