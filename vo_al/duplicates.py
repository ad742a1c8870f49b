"""Refuse duplicate spectrum ids while a pool is consolidated, on disk.

Every spectrum read is a row, numbered in input order; a row is a
duplicate when an earlier row's id has the same 64-bit BLAKE2b hash (the
first occurrence is kept). The decision is taken in three streamed passes
over files in a scratch folder, so that neither the memory nor the cost per
row grows with the pool:

1. :meth:`DuplicateIndex.add` appends the hashes of each shard's ids to
   ``hashes.u8`` (8 bytes per row, in row order).
2. :meth:`DuplicateIndex.resolve` splits them by hash range into bucket
   files of ``(hash, row)`` pairs, in row order, with :data:`BUCKET_ROWS`
   rows per bucket on average (:class:`HashBuckets`): equal hashes share a
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

:class:`HashBuckets` also sorts the session's id index on disk
(:mod:`vo_al.idindex`): its buckets are hash ranges, so that the buckets
sorted one at a time and written in order are one sorted table.
"""

from __future__ import annotations

import hashlib
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["BUCKET_ROWS", "DuplicateIndex", "HashBuckets", "hash_ids"]

#: Rows per bucket on average, and most rows held in memory at once.
BUCKET_ROWS = 1 << 19


def hash_ids(ids) -> np.ndarray:
    """64-bit BLAKE2b hashes of ids (UTF-8), as uint64."""
    digests = b"".join(hashlib.blake2b(str(i).encode(), digest_size=8).digest() for i in ids)
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


class HashBuckets:
    """``(hash, row)`` pairs split by hash range into bucket files on disk.

    Bucket ``b`` of ``n`` holds the hashes ``h`` whose top 32 bits ``t``
    give ``⌊t·n / 2³²⌋ = b``: equal hashes share a bucket, every hash of
    bucket ``b`` is below every hash of bucket ``b + 1``, and hashes spread
    evenly. A file holds its pairs (two uint64 each) in the order they were
    appended.

    Parameters
    ----------
    folder : path-like
        An existing folder; the files are ``bucket-NNNNN.u8`` there.
    n_rows : int
        Rows that will be appended: sets the number of buckets.
    bucket_rows : int
        Rows per bucket on average.

    Attributes
    ----------
    n_rows : int
    paths : list of Path
        The bucket files, in hash order.
    """

    def __init__(self, folder, n_rows: int, bucket_rows: int):
        self.n_rows = n_rows
        n_buckets = -(-n_rows // bucket_rows)  # none for no rows
        self.paths = [Path(folder) / f"bucket-{b:05d}.u8" for b in range(n_buckets)]
        for path in self.paths:
            path.write_bytes(b"")

    def __len__(self) -> int:
        return len(self.paths)

    def append(self, hashes: np.ndarray, start: int) -> None:
        """Append rows ``start, start + 1, …``, whose ids hash to ``hashes``.

        Parameters
        ----------
        hashes : ndarray of uint64
        start : int
            The row of ``hashes[0]``.
        """
        top = (hashes >> np.uint64(32)) * np.uint64(len(self.paths))
        bucket = (top >> np.uint64(32)).astype(np.intp)
        order = np.argsort(bucket, kind="stable")
        pairs = np.empty((hashes.size, 2), dtype=np.uint64)
        pairs[:, 0] = hashes[order]
        pairs[:, 1] = order
        pairs[:, 1] += np.uint64(start)
        bounds = np.concatenate(([0], np.cumsum(np.bincount(bucket, minlength=len(self.paths)))))
        for path, low, high in zip(self.paths, bounds[:-1], bounds[1:]):
            if high > low:
                with open(path, "ab") as fh:
                    fh.write(pairs[low:high])

    def slices(self, bucket: int, rows: int | None = None) -> Iterator[np.ndarray]:
        """Read one bucket back once, in appended order; its file is then removed.

        Parameters
        ----------
        bucket : int
        rows : int, optional
            Most pairs per slice; default: the whole bucket in one slice.

        Yields
        ------
        ndarray of uint64, shape (k, 2)
            ``(hash, row)`` pairs.
        """
        path = self.paths[bucket]
        count = -1 if rows is None else 2 * rows
        with open(path, "rb") as fh:
            while (pairs := np.fromfile(fh, dtype=np.uint64, count=count).reshape(-1, 2)).size:
                yield pairs
        path.unlink()


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
        duplicates = sum(self._resolve_bucket(buckets.slices(b, self.bucket_rows), flags)
                         for b in range(len(buckets)))
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

    def _split(self) -> HashBuckets:
        """Write the ``(hash, row)`` pairs into bucket files, in row order."""
        buckets = HashBuckets(self.folder, self.n_rows, self.bucket_rows)
        with open(self.folder / "hashes.u8", "rb") as source:
            for start in range(0, self.n_rows, self.bucket_rows):
                buckets.append(np.fromfile(source, dtype=np.uint64, count=self.bucket_rows),
                               start)
        (self.folder / "hashes.u8").unlink()
        return buckets

    @staticmethod
    def _resolve_bucket(slices: Iterator[np.ndarray], flags: Path) -> int:
        """Flag the rows of one bucket's ``slices`` whose hash came earlier."""
        seen, found = _SeenHashes(), 0
        for pairs in slices:
            rows = pairs[~seen.add_new(pairs[:, 0]), 1]
            found += rows.size
            if rows.size:
                _set_flags(flags, rows)
        return found


def _set_flags(flags: Path, rows: np.ndarray) -> None:
    """Set the flag bytes of ``rows``, through a mapping released at once."""
    mapped = np.memmap(flags, dtype=np.uint8, mode="r+")
    mapped[rows] = 1
    mapped.flush()
    del mapped
