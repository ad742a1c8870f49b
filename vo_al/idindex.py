"""Find pool rows by spectrum id, in memory that does not grow with the pool.

The index is a table in a file, read through a memory map: a header, the
sorted 64-bit BLAKE2b hashes of the pool's ids, then the row of each hash
(16 bytes per spectrum on disk, 320 MB for 20 M). A lookup binary-searches
the mapped hashes, touching O(log n) pages, which the operating system
caches outside the process. A hit is confirmed by reading the real id at
that row, so a hash collision can never turn into a label on the wrong
spectrum.

Building streams the pool's ``id`` column in chunks into hash-range buckets
on disk (:class:`~vo_al.duplicates.HashBuckets`), then sorts one bucket at a
time and writes it after the previous ones, so at most one bucket
(:data:`~vo_al.duplicates.BUCKET_ROWS` pairs on average) is in memory. The
table records the pool's size and modification time and is rebuilt when
they change or when it cannot be read; it is written through
:func:`~vo_al.atomic.atomic_path`.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import duplicates
from .atomic import atomic_path
from .duplicates import HashBuckets, hash_ids
from .pool import PoolReader

__all__ = ["IdIndex", "hash_ids", "read_rows"]

_MAGIC = b"vo-al-ix"
_VERSION = 2  # 1 was an .npz loaded whole
#: The table's header; ``count`` hashes (<u8), then ``count`` rows (<i8) follow.
_HEADER = np.dtype([("magic", "S8"), ("version", "<u8"), ("pool_size", "<u8"),
                    ("pool_mtime_ns", "<i8"), ("count", "<u8")])

#: Rows closer than this are read in one slice when reading scattered rows.
_READ_GAP = 256


def read_rows(pool: PoolReader, column: str, rows) -> np.ndarray:
    """Values of one pool column at scattered rows, read in few slices.

    Parameters
    ----------
    pool : PoolReader
    column : str
    rows : array-like of int
        Row numbers, in any order, repeats allowed.

    Returns
    -------
    ndarray
        ``values[i]`` is the column at ``rows[i]``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    unique = np.unique(rows)
    groups = np.split(unique, np.flatnonzero(np.diff(unique) > _READ_GAP) + 1)
    parts = [pool.read(column, int(g[0]), int(g[-1]) + 1)[g - g[0]] for g in groups if g.size]
    values = np.concatenate(parts) if parts else pool.read(column, 0, 0)
    return values[np.searchsorted(unique, rows)]


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _header(stamp: tuple[int, int], count: int) -> bytes:
    return np.array([(_MAGIC, _VERSION, *stamp, count)], dtype=_HEADER).tobytes()


def _open_table(path: Path, stamp: tuple[int, int]):
    """Mapped ``(hashes, rows)`` of a table made for this pool state, else None."""
    try:  # one open file throughout: a table renamed over it meanwhile is not mixed in
        with open(path, "rb") as fh:
            header = np.fromfile(fh, dtype=_HEADER, count=1)
            size = os.fstat(fh.fileno()).st_size
            if header.size == 0 or not _matches(header[0], stamp, size):
                return None  # unreadable, another version or another pool state: rebuilt
            return _map(fh, int(header[0]["count"]))
    except OSError:
        return None


def _matches(header, stamp: tuple[int, int], size: int) -> bool:
    """Whether a table header is this version's, for this pool state and whole."""
    count = int(header["count"])
    return (header["magic"] == _MAGIC and int(header["version"]) == _VERSION
            and (int(header["pool_size"]), int(header["pool_mtime_ns"])) == stamp
            and size == _HEADER.itemsize + 16 * count)


def _map(fh, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The table's hashes and rows, as arrays over one read-only map of the file.

    Lookups read a few scattered pages, so the kernel is told not to read
    ahead around them (a table not in its page cache is read a page per probe).
    """
    mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mapped, "madvise"):  # not on Windows
        mapped.madvise(mmap.MADV_RANDOM)
    hashes = np.frombuffer(mapped, dtype="<u8", count=count, offset=_HEADER.itemsize)
    rows = np.frombuffer(mapped, dtype="<i8", count=count, offset=_HEADER.itemsize + 8 * count)
    return hashes, rows


def _split_ids(pool_path: Path, folder: Path, chunk_rows: int, bucket_rows: int) -> HashBuckets:
    """Stream the pool's id column into hash-range buckets in ``folder``."""
    with PoolReader(pool_path) as pool:
        buckets = HashBuckets(folder, len(pool), bucket_rows)
        for start, chunk in pool.iter_chunks(chunk_rows, ("id",)):
            buckets.append(hash_ids(chunk["id"]), start)
    return buckets


def _write_sorted(fh, buckets: HashBuckets) -> None:
    """Write the table's hashes and rows after its header, one bucket at a time.

    A bucket is read in one slice, so each is sorted whole; the buckets are
    hash ranges in order, so the table is sorted.
    """
    done = 0
    for bucket in range(len(buckets)):
        for pairs in buckets.slices(bucket):
            order = np.argsort(pairs[:, 0], kind="stable")
            for column, first in ((0, 0), (1, buckets.n_rows)):
                fh.seek(_HEADER.itemsize + 8 * (first + done))
                fh.write(pairs[order, column])
            done += order.size


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _remove_killed_builds(cache_path: Path) -> None:
    """Remove the bucket folders of builds whose process is gone (killed
    mid-build: up to 32 bytes per spectrum), never one still building."""
    for folder in cache_path.parent.glob(f".{cache_path.name}.*.buckets"):
        pid = folder.name[len(cache_path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _build_table(pool_path: Path, cache_path: Path, stamp: tuple[int, int], chunk_rows: int,
                 bucket_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Write the pool's table to ``cache_path`` atomically; its mapped arrays."""
    _remove_killed_builds(cache_path)
    with tempfile.TemporaryDirectory(dir=cache_path.parent,
                                     prefix=f".{cache_path.name}.{os.getpid()}.",
                                     suffix=".buckets") as scratch:
        buckets = _split_ids(pool_path, Path(scratch), chunk_rows, bucket_rows)
        with atomic_path(cache_path) as temporary:
            with open(temporary, "wb") as fh:
                fh.write(_header(stamp, buckets.n_rows))
                _write_sorted(fh, buckets)
            return _open_table(temporary, stamp)  # mapped before the rename: no race


class IdIndex:
    """Spectrum id → pool row, through a sorted table on disk.

    Build it with :meth:`build`; the constructor takes ready arrays.

    Parameters
    ----------
    pool_path : path-like
        The pool the index describes (read to confirm hits).
    hashes : ndarray of uint64
        Sorted id hashes (see :func:`hash_ids`), usually memory-mapped.
    rows : ndarray of int64
        ``rows[i]`` is the pool row whose id hashes to ``hashes[i]``.
    """

    def __init__(self, pool_path, hashes: np.ndarray, rows: np.ndarray):
        self.pool_path = Path(pool_path)
        self._hashes = hashes
        self._rows = rows

    @classmethod
    def build(cls, pool_path, cache_path=None, *, chunk_rows: int = 16384,
              bucket_rows: int | None = None) -> "IdIndex":
        """The index of a pool, from its table file when it matches the pool.

        Parameters
        ----------
        pool_path : path-like
            A pool file.
        cache_path : path-like, optional
            The table file. Used when it records the pool's current size and
            modification time; otherwise the pool's ids are streamed and the
            file (re)written. Without one the table goes to a temporary
            folder (``TMPDIR``) and is removed once the index is gone.
        chunk_rows : int
            Ids read per chunk while streaming.
        bucket_rows : int, optional
            Ids sorted in memory at once while building, on average; default
            :data:`vo_al.duplicates.BUCKET_ROWS`.

        Returns
        -------
        IdIndex
        """
        pool_path = Path(pool_path)
        if cache_path is None:
            with tempfile.TemporaryDirectory(prefix="vo-al-idindex-") as folder:
                return cls.build(pool_path, Path(folder) / "index", chunk_rows=chunk_rows,
                                 bucket_rows=bucket_rows)
        cache_path, stamp = Path(cache_path), _stamp(pool_path)
        table = _open_table(cache_path, stamp) or _build_table(
            pool_path, cache_path, stamp, chunk_rows, bucket_rows or duplicates.BUCKET_ROWS)
        return cls(pool_path, *table)

    def __len__(self) -> int:
        return int(self._rows.size)

    def rows(self, ids) -> np.ndarray:
        """Pool rows of ids, confirmed against the ids stored in the pool.

        Parameters
        ----------
        ids : sequence of str

        Returns
        -------
        ndarray of int64
            The row of each id, −1 for ids not in the pool.
        """
        ids = np.asarray(list(ids), dtype=object)
        found = np.full(ids.size, -1, dtype=np.int64)
        if ids.size == 0 or len(self) == 0:
            return found
        query, candidates = self._candidates(hash_ids(ids))
        if candidates.size:
            with PoolReader(self.pool_path) as pool:
                real = read_rows(pool, "id", candidates)
            match = real == ids[query]
            found[query[match]] = candidates[match]
        return found

    def _candidates(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (query index, pool row) pair whose hashes are equal."""
        low = np.searchsorted(self._hashes, hashes, side="left")
        counts = np.searchsorted(self._hashes, hashes, side="right") - low
        query = np.repeat(np.arange(hashes.size), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return query, self._rows[np.repeat(low, counts) + offsets]
