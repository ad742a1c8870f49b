"""The session's id index (vo_al.idindex): a sorted table on disk, read
through memory maps, built with bounded memory; on synthetic pools.

``write_id_pool`` is also the benchmark's pool maker (``benchmarks/idindex.py``).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import pytest

from vo_al.idindex import IdIndex

_WRITE_ROWS = 1 << 18


def write_id_pool(path, n: int, make_id=lambda row: f"spec-{row:010d}") -> None:
    """A pool file in the layout of ``docs/pool-format.md`` with only what the
    index reads: ``n`` ids (``make_id(row)``), and ``spectra`` never written."""
    with h5py.File(path, "w") as h5:
        h5.attrs["format_version"] = 1
        h5.create_dataset("spectra", (n, 1), np.float32, maxshape=(None, 1), chunks=(4096, 1))
        ids = h5.create_dataset("id", (n,), h5py.string_dtype("utf-8"), maxshape=(None,),
                                chunks=(4096,))
        for start in range(0, n, _WRITE_ROWS):
            stop = min(start + _WRITE_ROWS, n)
            ids[start:stop] = np.array([make_id(row) for row in range(start, stop)], dtype=object)


def _set_id(pool, row: int, value: str) -> None:
    """Rewrite one stored id, and move the pool's mtime on by a second."""
    with h5py.File(pool, "r+") as h5:
        h5["id"][row] = value
    _touch(pool)


def _touch(pool) -> None:
    stat = os.stat(pool)
    os.utime(pool, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _table_bytes(n: int) -> int:
    return 40 + 16 * n  # header, then 8 bytes of hash and 8 of row per spectrum


@pytest.fixture
def pool(tmp_path):
    """1,000 ids of varied text (non-ASCII too), ``id-0-é`` … ``id-999-é``."""
    path = tmp_path / "pool.h5"
    write_id_pool(path, 1000, lambda row: f"id-{row}-é")
    return path


IDS = [f"id-{row}-é" for row in range(1000)]


def test_every_id_finds_its_row_and_others_give_minus_one(pool, tmp_path):
    # 64 rows per bucket: 16 buckets, ids streamed in chunks of 100
    index = IdIndex.build(pool, tmp_path / "index.bin", chunk_rows=100, bucket_rows=64)
    assert len(index) == 1000
    order = np.random.default_rng(1).permutation(1000)
    rows = index.rows([IDS[i] for i in order] + ["nope", "", IDS[3], "id-3-e"])
    assert rows.dtype == np.int64
    assert rows.tolist() == order.tolist() + [-1, -1, 3, -1]
    assert index.rows([]).tolist() == []
    assert index.rows(["id-7-é"]).tolist() == [7]  # one id at a time, as search asks
    assert (tmp_path / "index.bin").stat().st_size == _table_bytes(1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.bin", "pool.h5"]  # no scratch


def test_an_empty_pool(tmp_path):
    write_id_pool(tmp_path / "pool.h5", 0)
    index = IdIndex.build(tmp_path / "pool.h5", tmp_path / "index.bin")
    assert len(index) == 0 and index.rows(["a"]).tolist() == [-1]
    assert len(IdIndex.build(tmp_path / "pool.h5", tmp_path / "index.bin")) == 0  # from the file


def test_without_a_cache_the_table_is_temporary(pool, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    index = IdIndex.build(pool, bucket_rows=64)
    assert list(scratch.iterdir()) == []  # removed; the mapping outlives the file
    assert index.rows([IDS[999], IDS[0]]).tolist() == [999, 0]


def test_a_hit_is_confirmed_by_the_stored_id(tmp_path):
    """A table entry whose row holds another id (what a hash collision looks
    like to the lookup) is refused; another candidate of the same hash wins."""
    pool = tmp_path / "pool.h5"
    write_id_pool(pool, 12, lambda row: f"s{row % 11}")  # row 11 repeats row 0's id
    index = IdIndex.build(pool, tmp_path / "index.bin", bucket_rows=4)
    _set_id(pool, 0, "changed")
    _set_id(pool, 5, "s6")  # the table still says hash(s5) → 5
    assert index.rows(["s0", "changed", "s5", "s6", "s1"]).tolist() == [11, -1, -1, 6, 1]
    rebuilt = IdIndex.build(pool, tmp_path / "index.bin", bucket_rows=4)  # the pool changed
    assert rebuilt.rows(["s0", "changed", "s5", "s1"]).tolist() == [11, 0, -1, 1]


def test_the_table_is_reused_until_the_pool_changes(pool, tmp_path):
    cache = tmp_path / "index.bin"
    IdIndex.build(pool, cache)
    first = cache.stat()
    assert IdIndex.build(pool, cache).rows([IDS[2]]).tolist() == [2]
    assert (cache.stat().st_ino, cache.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    _touch(pool)
    assert IdIndex.build(pool, cache).rows([IDS[2]]).tolist() == [2]
    assert cache.stat().st_ino != first.st_ino  # written again, renamed into place


def _old_npz_cache(pool) -> bytes:
    """The cache of format version 1, for this pool: an ``.npz`` loaded whole."""
    stat, buffer = os.stat(pool), io.BytesIO()
    np.savez(buffer, version=1, pool_size=stat.st_size, pool_mtime_ns=stat.st_mtime_ns,
             hashes=np.zeros(1000, np.uint64), rows=np.zeros(1000, np.int64))
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "header only", "empty",
                                    "other version", "old npz"])
def test_an_unreadable_table_is_rebuilt(pool, tmp_path, damage):
    cache = tmp_path / "index.bin"
    IdIndex.build(pool, cache)
    table = cache.read_bytes()
    cache.write_bytes({
        "garbage": lambda: b"garbage",
        "truncated": lambda: table[:-8],
        "header only": lambda: table[:40],
        "empty": lambda: b"",
        "other version": lambda: table[:8] + np.uint64(1).tobytes() + table[16:],
        "old npz": lambda: _old_npz_cache(pool),
    }[damage]())
    assert IdIndex.build(pool, cache).rows([IDS[1], "nope"]).tolist() == [1, -1]
    assert cache.read_bytes() == table


def test_a_build_killed_midway_leaves_nothing_behind_the_next_one(pool, tmp_path):
    """The bucket folder of a killed build (its process is gone) is removed by
    the next build; the folder of a build still running is left alone."""
    cache = tmp_path / "index.bin"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    killed = tmp_path / f".index.bin.{dead}.x1y2.buckets"
    running = tmp_path / f".index.bin.{os.getpid()}.z3w4.buckets"
    for folder in (killed, running):
        folder.mkdir()
        (folder / "bucket-0").write_bytes(b"\0" * 4096)
    IdIndex.build(pool, cache)
    assert not killed.exists() and running.exists()
    assert sorted(p.name for p in tmp_path.glob(".index.bin.*")) == [running.name]


def test_hash_buckets_are_ranges_in_order():
    """What the table relies on: buckets read in order, each sorted, are sorted."""
    from vo_al.duplicates import HashBuckets

    rng = np.random.default_rng(2)
    hashes = rng.integers(0, 2**64, 1000, dtype=np.uint64, endpoint=False)
    hashes[:3] = [0, 2**64 - 1, 2**63]
    with tempfile.TemporaryDirectory() as folder:
        buckets = HashBuckets(folder, hashes.size, 100)
        buckets.append(hashes[:600], 0)
        buckets.append(hashes[600:], 600)
        parts = [next(buckets.slices(b)) for b in range(len(buckets))]
    assert len(parts) == 10
    for low, high in zip(parts[:-1], parts[1:]):
        assert low[:, 0].max() < high[:, 0].min()
    for part in parts:
        assert np.all(np.diff(part[:, 1].astype(np.int64)) > 0)  # appended (row) order
        np.testing.assert_array_equal(hashes[part[:, 1]], part[:, 0])
    assert sorted(np.concatenate([p[:, 1] for p in parts]).tolist()) == list(range(1000))


_BUILD_IN_A_CHILD = r"""
import sys
from pathlib import Path
from vo_al.idindex import IdIndex

def status_kb(field):
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(l for l in lines if l.startswith(field + ":")).split()[1])

Path("/proc/self/clear_refs").write_text("5")  # the peak so far becomes the current size
before = status_kb("VmRSS")
IdIndex.build(sys.argv[1], sys.argv[2], chunk_rows=16384, bucket_rows=65536)
print(1024 * (status_kb("VmHWM") - before))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="reads /proc (Linux)")
def test_building_memory_does_not_grow_with_the_pool(tmp_path):
    """The peak memory of a build, over the process's memory before it, in a
    fresh process: the same for 200 k and 2 M ids (16 bytes per id would be
    32 MB more, the old sort in memory three times that)."""
    grown = {}
    for n in (200_000, 2_000_000):
        write_id_pool(tmp_path / f"{n}.h5", n)
        child = subprocess.run([sys.executable, "-c", _BUILD_IN_A_CHILD, str(tmp_path / f"{n}.h5"),
                                str(tmp_path / f"{n}.bin")], capture_output=True, text=True,
                               check=True)
        grown[n] = int(child.stdout)
        assert (tmp_path / f"{n}.bin").stat().st_size == _table_bytes(n)
    assert grown[2_000_000] < 1.5 * grown[200_000] + 8e6, grown
