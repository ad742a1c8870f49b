"""Refuse duplicate spectrum ids while a pool is consolidated, on disk.

Every spectrum read is a row, numbered in input order; a row is a
duplicate when an earlier row's id has the same 64-bit BLAKE2b hash (the
first occurrence is kept). The decision is taken in three streamed passes
over files in a scratch folder, so that neither the memory nor the cost per
row grows with the pool:

1. :meth:`DuplicateIndex.add` appends the hashes of each shard's ids to
   ``hashes.u8`` (8 bytes per row, in row order).
2. :meth:`DuplicateIndex.resolve` splits them by ``hash % n_buckets`` into
   bucket files of ``(hash, row)`` pairs, in row order, with
   :data:`BUCKET_ROWS` rows per bucket on average: equal hashes share a
   bucket. Each bucket is read back in slices of at most
   :data:`BUCKET_ROWS` rows against the sorted set of its hashes seen so
   far, and the rows found again are flagged in ``duplicate.u1`` (one byte
   per row).
3. :meth:`DuplicateIndex.fresh` reads the flags back in row order.

Each row is hashed once, its hash (8 bytes), its pair (16) and its flag (1)
go to disk and back once, and it is sorted within one slice, whatever the
pool's size: about 5 ms per 4,096-row shard, most of it hashing, and at
most about 45 MB of memory: one slice and one bucket's distinct hashes
(``benchmarks/idindex.py``).
"""

from __future__ import annotations

import hashlib
import shutil
from contextlib import ExitStack
from pathlib import Path

import numpy as np

__all__ = ["BUCKET_ROWS", "DuplicateIndex", "hash_ids"]

#: Rows per bucket on average, and most rows held in memory at once.
BUCKET_ROWS = 1 << 19


def hash_ids(ids) -> np.ndarray:
    """64-bit BLAKE2b hashes of ids (UTF-8), as uint64."""
    digests = b"".join(hashlib.blake2b(str(i).encode(), digest_size=8).digest() for i in ids)
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


class _SeenHashes:
    """Sorted distinct hashes seen so far, to tell first occurrences."""

    def __init__(self):
        self._hashes = np.empty(0, dtype=np.uint64)

    def add_new(self, hashes: np.ndarray) -> np.ndarray:
        """Record ``hashes``; return a mask of those not seen before (first wins)."""
        _, first = np.unique(hashes, return_index=True)
        fresh = np.zeros(hashes.size, dtype=bool)
        fresh[first] = True
        position = np.searchsorted(self._hashes, hashes)
        seen = position < self._hashes.size
        seen[seen] = self._hashes[position[seen]] == hashes[seen]
        fresh &= ~seen
        self._hashes = np.insert(self._hashes, position[fresh], hashes[fresh])
        self._hashes.sort(kind="stable")
        return fresh


class DuplicateIndex:
    """The duplicate rows of a stream of ids, computed in a scratch folder.

    Use it as a context manager: the folder is emptied on entry (a run
    killed earlier leaves one behind) and removed on exit.

    Parameters
    ----------
    folder : path-like
        Scratch folder (created), on a disk with room for 25 bytes per row.
    bucket_rows : int, optional
        Rows per bucket on average and most rows in memory at once;
        default :data:`BUCKET_ROWS` (tests make it small).

    Examples
    --------
    >>> with DuplicateIndex(tmp / "ids") as index:  # doctest: +SKIP
    ...     index.add(["a", "b"]); index.add(["a", "c"])
    ...     index.resolve()
    ...     index.fresh(2), index.fresh(2)
    (array([ True,  True]), array([False,  True]))
    """

    def __init__(self, folder, bucket_rows: int | None = None):
        self.folder = Path(folder)
        self.bucket_rows = bucket_rows or BUCKET_ROWS
        self.n_rows = 0
        self._stack = ExitStack()
        self._hash_file = None
        self._flag_file = None

    def __enter__(self) -> "DuplicateIndex":
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self._hash_file = self._stack.enter_context(open(self.folder / "hashes.u8", "wb"))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def add(self, ids) -> None:
        """Append the next rows' ids (pass 1).

        Parameters
        ----------
        ids : sequence of str
        """
        hashes = hash_ids(ids)
        self._hash_file.write(hashes)
        self.n_rows += hashes.size

    def resolve(self) -> int:
        """Flag every row whose id hash an earlier row has (pass 2).

        Returns
        -------
        int
            Duplicate rows.
        """
        self._hash_file.close()
        flags = self.folder / "duplicate.u1"
        with open(flags, "wb") as fh:
            fh.truncate(self.n_rows)
        buckets = self._split()
        duplicates = sum(self._resolve_bucket(bucket, flags) for bucket in buckets)
        self._flag_file = self._stack.enter_context(open(flags, "rb"))
        return duplicates

    def fresh(self, n: int) -> np.ndarray:
        """Mask of the next ``n`` rows: True for a first occurrence (pass 3).

        Parameters
        ----------
        n : int
            Rows, following those of the previous call (the first row at first).

        Returns
        -------
        ndarray of bool
        """
        return np.fromfile(self._flag_file, dtype=np.uint8, count=n) == 0

    def _split(self) -> list[Path]:
        """Write the ``(hash, row)`` pairs into bucket files, in row order."""
        n_buckets = -(-self.n_rows // self.bucket_rows)  # none for no rows
        paths = [self.folder / f"bucket-{b:05d}.u8" for b in range(n_buckets)]
        with open(self.folder / "hashes.u8", "rb") as source:
            for start in range(0, self.n_rows, self.bucket_rows):
                hashes = np.fromfile(source, dtype=np.uint64, count=self.bucket_rows)
                _append_buckets(paths, hashes, start)
        (self.folder / "hashes.u8").unlink()
        return paths

    def _resolve_bucket(self, path: Path, flags: Path) -> int:
        """Flag the rows of one bucket whose hash came earlier; remove the bucket."""
        seen, found = _SeenHashes(), 0
        with open(path, "rb") as fh:
            while (pairs := np.fromfile(fh, dtype=np.uint64,
                                        count=2 * self.bucket_rows).reshape(-1, 2)).size:
                rows = pairs[~seen.add_new(pairs[:, 0]), 1]
                found += rows.size
                if rows.size:
                    _set_flags(flags, rows)
        path.unlink()
        return found


def _append_buckets(paths: list[Path], hashes: np.ndarray, start: int) -> None:
    """Append rows ``start…`` (their ``hashes``) to the bucket files ``paths``
    as ``(hash, row)`` pairs, each file in row order."""
    bucket = (hashes % np.uint64(len(paths))).astype(np.uint32)
    order = np.argsort(bucket, kind="stable")
    pairs = np.empty((hashes.size, 2), dtype=np.uint64)
    pairs[:, 0] = hashes[order]
    pairs[:, 1] = order
    pairs[:, 1] += np.uint64(start)
    bounds = np.concatenate(([0], np.cumsum(np.bincount(bucket, minlength=len(paths)))))
    for path, low, high in zip(paths, bounds[:-1], bounds[1:]):
        with open(path, "ab") as fh:  # created even when empty
            fh.write(pairs[low:high])


def _set_flags(flags: Path, rows: np.ndarray) -> None:
    """Set the flag bytes of ``rows``, through a mapping released at once."""
    mapped = np.memmap(flags, dtype=np.uint8, mode="r+")
    mapped[rows] = 1
    mapped.flush()
    del mapped
