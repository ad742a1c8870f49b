"""Candidate and query tables for peers, and the tables vo-al has sent.

A peer table is the candidate list (:func:`vo_al.export.candidate_table`)
or an iteration's query and estimate batch, with UCDs, the label and its
source, the iteration, and an SSA access column pair (``access_url`` with
utype ``ssa:Access.Reference``, ``access_format`` with ``ssa:Access.Format``)
pointing at SDM files of the full spectra, so TOPCAT can pass a row's
spectrum on to SPLAT-VO by itself.

Each sent table has a ``table-id`` fixed by the session, the iteration, the
kind and the table's content (the ids in row order and their labels):
sending the same table again gives the same id (TOPCAT answers that it has
it already), and different rows never share one, so a peer's later message
about row *k* always names the right spectrum.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..export import candidate_table, describe_columns, rows_table
from ..queues import batch_queue
from ..session import Session
from .errors import MessageRejected
from .messages import FITS_MIME

__all__ = ["KINDS", "peer_table", "add_access_columns", "make_table_id", "SentTable",
           "TableRegistry"]

#: Kinds of peer table.
KINDS = ("candidates", "query")


def _batch_table(session: Session, n: int) -> Table:
    """Iteration ``n``'s query and estimate spectra, with a ``batch`` column."""
    queue = batch_queue(session, n)
    table = rows_table(session, n, queue.rows)
    table.add_column(np.array(queue.kind, dtype=str), name="batch", index=5)
    table.meta["description"] = f"vo-al query and estimate batch, iteration {n}"
    return describe_columns(table)


def peer_table(session: Session, kind: str, iteration: int | None = None) -> Table:
    """The candidate list or the query batch of an iteration (default: the latest).

    Raises
    ------
    ValueError
        For an unknown kind or a session without a completed iteration.
    """
    if kind not in KINDS:
        raise ValueError(f"table kind must be one of {KINDS}, not {kind!r}")
    n = session.scored_iteration(iteration)
    return candidate_table(session, n) if kind == "candidates" else _batch_table(session, n)


def add_access_columns(table: Table, urls, mime: str = FITS_MIME):
    """Add the SSA access pair: ``access_url`` and ``access_format`` (empty where no URL)."""
    urls = [str(u) for u in urls]
    table["access_url"] = np.array(urls, dtype=str)
    table["access_format"] = np.array([mime if u else "" for u in urls], dtype=str)
    table["access_url"].meta.update(utype="ssa:Access.Reference", ucd="meta.ref.url")
    table["access_format"].meta.update(utype="ssa:Access.Format", ucd="meta.code.mime")


def make_table_id(session_dir, iteration: int, kind: str, content) -> str:
    """``vo-al:<session>:<iteration>:<kind>:<content>`` with short digests of
    the session path and of the table's content.

    Parameters
    ----------
    session_dir : path-like
    iteration : int
    kind : str
    content : iterable of str
        What makes the table what it is: the ids in row order, then the
        label columns. TOPCAT refuses a table-id it has already received,
        so a table whose labels changed needs a new id.
    """
    place = hashlib.blake2b(str(Path(session_dir).resolve()).encode(), digest_size=4).hexdigest()
    rows = hashlib.blake2b("\0".join(content).encode(), digest_size=6).hexdigest()
    return f"vo-al:{place}:{iteration}:{kind}:{rows}"


@dataclass(frozen=True)
class SentTable:
    """A table vo-al has handed to peers.

    Attributes
    ----------
    table_id, kind, name, url : str
    iteration : int
    ids : tuple of str
        Spectrum id of each row, in row order.
    keys : tuple
        The :class:`~vo_al.samp.files.PeerFiles` keys the table holds.
    """

    table_id: str
    kind: str
    iteration: int
    name: str
    url: str
    ids: tuple
    keys: tuple = ()

    @cached_property
    def _rows(self) -> dict:
        return {spectrum_id: row for row, spectrum_id in enumerate(self.ids)}

    def row_of(self, spectrum_id: str) -> int | None:
        """The row of a spectrum, or None."""
        return self._rows.get(spectrum_id)


class TableRegistry:
    """The tables sent in this run, newest last; the oldest are forgotten.

    Parameters
    ----------
    files : PeerFiles
        Where the tables' files are held; a forgotten table releases them.
    keep : int
        Tables remembered; messages about a forgotten one are refused.

    Notes
    -----
    Thread-safe.
    """

    def __init__(self, files, keep: int = 8):
        self._files = files
        self._keep = keep
        self._tables: OrderedDict[str, SentTable] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, table: SentTable):
        """Remember a sent table (again, if its id is known: the newer copy wins)."""
        with self._lock:
            previous = self._tables.pop(table.table_id, None)
            self._tables[table.table_id] = table
            dropped = [previous] if previous else []
            while len(self._tables) > self._keep:
                dropped.append(self._tables.popitem(last=False)[1])
        for old in dropped:
            for key in old.keys:
                self._files.release(key)

    def get(self, table_id: str) -> SentTable:
        """The table of an id.

        Raises
        ------
        MessageRejected
            For an id vo-al did not send in this run (or has forgotten).
        """
        with self._lock:
            table = self._tables.get(table_id)
        if table is None:
            raise MessageRejected(f"unknown table-id {table_id!r}: not a table vo-al sent in "
                                  "this run (send it again from vo-al)"[:300])
        return table

    def containing(self, spectrum_id: str) -> list[tuple[SentTable, int]]:
        """``(table, row)`` of the newest table of each kind holding a spectrum."""
        with self._lock:
            tables = list(reversed(self._tables.values()))
        found, kinds = [], set()
        for table in tables:
            row = table.row_of(spectrum_id)
            if table.kind not in kinds and row is not None:
                found.append((table, row))
                kinds.add(table.kind)
        return found

    def close(self):
        """Forget every table, releasing their files."""
        with self._lock:
            tables, self._tables = list(self._tables.values()), OrderedDict()
        for table in tables:
            for key in table.keys:
                self._files.release(key)
