"""The two id indexes at several pool sizes, as ratios to the smallest,
measured in one run: consolidation's duplicate-id index (default) or, with
``--session``, the session's id → row index.

    python benchmarks/idindex.py [--sizes 10000 100000 1000000 4000000]
                                 [--shard-rows 4096] [--duplicates 0.01] [--repeats 3]
    python benchmarks/idindex.py --session [--sizes 100000 1000000 4000000] [--20m]
                                 [--repeats 3]

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

``--session``: for each size (``--20m`` adds 20 M) a pool of that many ids
is written to a temporary folder (``tests/test_idindex.py``'s
``write_id_pool``), and a fresh Python process measures
:meth:`vo_al.idindex.IdIndex.build` there: seconds per million ids (best of
``--repeats`` builds, each from scratch) and the peak of its resident
memory over the process's memory before it (``VmHWM``, reset through
``/proc/self/clear_refs``; Linux), both also as ratios to the smallest size;
then the index opened from its cache file (seconds, and the memory it holds
then: anonymous, and mapped file pages, which the kernel can drop), and
``rows`` of 1,000 random ids in one call and of one id (best of
``--repeats``). To measure other code, e.g. the committed one, put it first
on ``PYTHONPATH``: ``git archive HEAD vo_al | tar -x -C /tmp/before;
PYTHONPATH=/tmp/before python benchmarks/idindex.py --session``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from vo_al.duplicates import DuplicateIndex

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the pool maker
from test_idindex import write_id_pool  # noqa: E402


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


_SESSION_CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np
import vo_al
from vo_al.idindex import IdIndex, read_rows
from vo_al.pool import PoolReader

def status_kb(field):
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(l for l in lines if l.startswith(field + ":")).split()[1])

def best(repeats, call):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)

pool, cache, repeats = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
result, builds = {"code": str(Path(vo_al.__file__).parent)}, []
for turn in range(repeats):
    cache.unlink(missing_ok=True)
    Path("/proc/self/clear_refs").write_text("5")  # the peak so far becomes the current size
    before = status_kb("VmRSS")
    start = time.perf_counter()
    IdIndex.build(pool, cache)
    builds.append(time.perf_counter() - start)
    if turn == 0:
        result["build_peak"] = 1024 * (status_kb("VmHWM") - before)
result["build_s"] = min(builds)
with PoolReader(pool) as reader:
    rows = np.random.default_rng(0).integers(0, len(reader), 1000)
    ids = read_rows(reader, "id", rows).tolist()
anon, mapped = status_kb("RssAnon"), status_kb("RssFile")
start = time.perf_counter()
index = IdIndex.build(pool, cache)
result["open_s"] = time.perf_counter() - start
assert index.rows(ids).tolist() == rows.tolist()
result["lookup_1000_s"] = best(repeats, lambda: index.rows(ids))
result["lookup_1_s"] = best(repeats, lambda: index.rows(ids[:1]))
result["held_anon"] = 1024 * (status_kb("RssAnon") - anon)
result["held_file"] = 1024 * (status_kb("RssFile") - mapped)
print(json.dumps(result))
"""


def session_index(folder: Path, size: int, repeats: int) -> dict:
    """Measures of the session's id index on a pool of ``size`` ids, in a fresh process."""
    pool = folder / f"pool-{size}.h5"
    write_id_pool(pool, size)
    child = subprocess.run([sys.executable, "-c", _SESSION_CHILD, str(pool),
                            str(folder / f"index-{size}"), str(repeats)],
                           capture_output=True, text=True, check=True, cwd=folder)
    pool.unlink()
    return json.loads(child.stdout)


def print_session(sizes: list[int], results: dict) -> None:
    """The session index's table, ratios to the smallest size."""
    base = results[sizes[0]]
    per_million = {size: results[size]["build_s"] / size * 1e6 for size in sizes}
    print(f"code: {base['code']}")
    print(f"{'ids':>10} {'build s/M':>9} {'ratio':>6} {'peak MB':>8} {'ratio':>6} "
          f"{'open ms':>8} {'held MB':>8} {'mapped MB':>9} {'1,000 ids ms':>12} {'1 id ms':>8}")
    for size in sizes:
        r = results[size]
        print(f"{size:>10,} {per_million[size]:>9.2f} "
              f"{per_million[size] / per_million[sizes[0]]:>6.2f} "
              f"{r['build_peak'] / 1e6:>8.1f} {r['build_peak'] / base['build_peak']:>6.2f} "
              f"{1e3 * r['open_s']:>8.1f} {r['held_anon'] / 1e6:>8.1f} "
              f"{r['held_file'] / 1e6:>9.1f} {1e3 * r['lookup_1000_s']:>12.1f} "
              f"{1e3 * r['lookup_1_s']:>8.2f}")


def consolidation_index(sizes: list[int], args) -> None:
    """Measure and print consolidation's duplicate-id index."""
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


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--session", action="store_true",
                        help="the session's id index instead of consolidation's")
    parser.add_argument("--sizes", type=int, nargs="+", help="default: 10,000, 100,000, "
                        "1,000,000, 4,000,000 ids; with --session 100,000, 1,000,000, 4,000,000")
    parser.add_argument("--20m", dest="twenty_million", action="store_true",
                        help="with --session, also 20,000,000 ids")
    parser.add_argument("--shard-rows", type=int, default=4096)
    parser.add_argument("--duplicates", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.session:
        consolidation_index(sorted(args.sizes or [10_000, 100_000, 1_000_000, 4_000_000]), args)
        return
    sizes = sorted(set(args.sizes or [100_000, 1_000_000, 4_000_000])
                   | ({20_000_000} if args.twenty_million else set()))
    with tempfile.TemporaryDirectory(prefix="vo-al-idindex-") as work:
        results = {size: session_index(Path(work), size, args.repeats) for size in sizes}
    print_session(sizes, results)


if __name__ == "__main__":
    main()
