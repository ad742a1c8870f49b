"""The append-only label log: every answer of the human (or of a simulated
oracle) with its provenance, in one SQLite file that survives a crash.

Rows are only ever inserted: triggers refuse ``UPDATE`` and ``DELETE``.
Taking a label back appends an ``undo`` entry that names the entry it
compensates, so the full history stays readable. The file runs in WAL mode
with ``synchronous=FULL``: a call that returned has committed, and its entry
is on disk. One process writes; any number of processes may read at the
same time. The schema is documented in ``docs/session.md``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

__all__ = [
    "SCHEMA_VERSION",
    "ACTIONS",
    "PURPOSES",
    "Entry",
    "LabelLog",
    "LabelLogError",
    "utc_now",
]

#: Stored as ``PRAGMA user_version``; bumped with every schema change.
SCHEMA_VERSION = 1

#: ``label``: a class; ``skip``: "unsure", recorded but never trained on;
#: ``undo``: compensates an earlier label or skip.
ACTIONS = ("label", "skip", "undo")

#: Why a spectrum was shown: it was queried, it belongs to the performance
#: estimate sample, the user browsed to it, or the label came from a file.
PURPOSES = ("query", "estimate", "browse", "import")

_COLUMNS = ("seq", "spectrum_id", "label", "action", "undoes", "source", "sender",
            "time", "iteration", "purpose")
_SELECT = ", ".join(f"e.{c}" for c in _COLUMNS)
_UNDONE = "EXISTS (SELECT 1 FROM entries u WHERE u.undoes = e.seq)"
_EFFECTIVE = f"e.action IN ('label', 'skip') AND NOT {_UNDONE}"
#: Ids bound in one query (SQLite allows 32,766 variables; older builds 999).
_IDS_PER_QUERY = 900
#: The entry in force of each id of ``wanted``: the latest effective one, found by
#: walking that spectrum's index backwards (its older history is never read).
_LATEST = (f"SELECT {', '.join(f'o.{c}' for c in _COLUMNS)}, 0 FROM entries o WHERE o.seq IN "
           f"(SELECT (SELECT e.seq FROM entries e WHERE e.spectrum_id = w.id AND {_EFFECTIVE} "
           "ORDER BY e.seq DESC LIMIT 1) FROM wanted w)")
_INSERT = (f"INSERT INTO entries ({', '.join(_COLUMNS[1:])}) "
           f"VALUES ({', '.join('?' * (len(_COLUMNS) - 1))})")

_SCHEMA = (
    """CREATE TABLE entries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        spectrum_id TEXT NOT NULL CHECK (spectrum_id <> ''),
        label TEXT CHECK ((action = 'label') = (label IS NOT NULL AND label <> '')),
        action TEXT NOT NULL CHECK (action IN ('label', 'skip', 'undo')),
        undoes INTEGER REFERENCES entries (seq)
            CHECK ((action = 'undo') = (undoes IS NOT NULL)),
        source TEXT NOT NULL CHECK (source <> ''),
        sender TEXT NOT NULL,
        time TEXT NOT NULL,
        iteration INTEGER,
        purpose TEXT
    )""",
    "CREATE INDEX entries_by_spectrum ON entries (spectrum_id, seq)",
    "CREATE UNIQUE INDEX entries_by_undone ON entries (undoes) WHERE undoes IS NOT NULL",
    """CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
       BEGIN SELECT RAISE(ABORT, 'the label log is append-only'); END""",
    """CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
       BEGIN SELECT RAISE(ABORT, 'the label log is append-only'); END""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


class LabelLogError(Exception):
    """The file is not a label log, or one of a newer schema."""


@dataclass(frozen=True)
class Entry:
    """One row of the log.

    Attributes
    ----------
    seq : int
        Position in the log, increasing, never reused.
    spectrum_id : str
        The pool's id of the spectrum.
    label : str or None
        The class name for a ``label`` entry, else None.
    action : {'label', 'skip', 'undo'}
    undoes : int or None
        For an ``undo``, the ``seq`` of the entry it compensates.
    source : str
        The door the answer came through: ``cli``, ``viewer``, ``topcat``,
        ``splat``, ``samp:<client>``, ``import``, ``simulated``, ...
    sender : str
        The user, or the SAMP client's name.
    time : str
        UTC, ISO 8601 with milliseconds (``2024-05-01T12:00:00.123Z``).
    iteration : int or None
        The session's number of completed iterations when answered.
    purpose : str or None
        One of :data:`PURPOSES`; None for an ``undo``.
    undone : bool
        Whether a later ``undo`` entry compensates this one.
    """

    seq: int
    spectrum_id: str
    label: str | None
    action: str
    undoes: int | None
    source: str
    sender: str
    time: str
    iteration: int | None
    purpose: str | None
    undone: bool = False


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_row(spectrum_id, label, *, source, sender="", iteration, purpose,
             action="label") -> tuple:
    """Check one label or skip; the row for :data:`_INSERT` (undoes is None)."""
    if not isinstance(spectrum_id, str) or not spectrum_id:
        raise ValueError(f"spectrum_id must be a non-empty string, not {spectrum_id!r}")
    if action == "label" and (not isinstance(label, str) or not label):
        raise ValueError(f"a label needs a class name, not {label!r}")
    if action == "skip" and label is not None:
        raise ValueError(f"a skip carries no class name, got {label!r}")
    if action not in ("label", "skip"):
        raise ValueError(f"action must be 'label' or 'skip' (undo through undo()), not {action!r}")
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, not {purpose!r}")
    if not isinstance(source, str) or not source:
        raise ValueError(f"source must be a non-empty string, not {source!r}")
    if iteration is not None and not isinstance(iteration, int):
        raise ValueError(f"iteration must be an int or None, not {iteration!r}")
    return (spectrum_id, label, action, None, source, sender, utc_now(), iteration, purpose)


class LabelLog:
    """The append-only label log in one SQLite file (WAL mode).

    Parameters
    ----------
    path : str or path-like
        The database; created with the schema when missing or empty.

    Raises
    ------
    LabelLogError
        When the file is another SQLite database, or a log of a newer
        schema than this vo-al knows.

    Notes
    -----
    One connection, shared by the threads of this process under a lock.
    Another process writing at the same time waits up to 30 s for the lock.

    Examples
    --------
    >>> with LabelLog("labels.sqlite") as log:  # doctest: +SKIP
    ...     log.append("359910161", "emission", source="cli", iteration=0, purpose="browse")
    ...     log.undo(source="cli")
    """

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        try:
            self._configure()
        except BaseException:
            self._db.close()
            raise

    def _configure(self):
        try:
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise LabelLogError(f"{self.path} is not a vo-al label log: {exc}") from None
        if mode != "wal":
            raise LabelLogError(f"{self.path}: cannot use WAL mode (got {mode!r})")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        if self._version() == 0:
            self._create_schema()
        if self._version() > SCHEMA_VERSION:
            raise LabelLogError(
                f"{self.path} has label-log schema {self._version()}; this vo-al reads up to "
                f"{SCHEMA_VERSION}: upgrade vo-al")

    def _version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _create_schema(self):
        """Create the tables in a new file (unless another process just did)."""
        with self._write():
            if self._version() != 0:
                return
            if self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise LabelLogError(f"{self.path} is an SQLite database but not a vo-al label log")
            for statement in _SCHEMA:
                self._db.execute(statement)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the database (every entry is already committed)."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self):
        """One write transaction: committed on exit, rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, parameters=()) -> list[Entry]:
        """Entries from a query selecting :data:`_COLUMNS` then the undone flag."""
        with self._lock:
            rows = self._db.execute(sql, parameters).fetchall()
        return [Entry(*row[:-1], undone=bool(row[-1])) for row in rows]

    def _insert(self, row: tuple) -> Entry:
        seq = self._db.execute(_INSERT, row).lastrowid
        return Entry(seq, *row)

    def append(self, spectrum_id: str, label: str | None, *, source: str, sender: str = "",
               iteration: int | None, purpose: str, action: str = "label") -> Entry:
        """Record one answer; committed to disk before returning.

        Parameters
        ----------
        spectrum_id : str
            The pool's id of the spectrum.
        label : str or None
            The class name; None for a skip.
        source, sender : str
            Provenance, see :class:`Entry`.
        iteration : int or None
            The session's number of completed iterations.
        purpose : str
            One of :data:`PURPOSES`.
        action : {'label', 'skip'}

        Returns
        -------
        Entry

        Raises
        ------
        ValueError
            When a value is missing or of the wrong kind; nothing is written.
        """
        row = _new_row(spectrum_id, label, source=source, sender=sender,
                       iteration=iteration, purpose=purpose, action=action)
        with self._write():
            return self._insert(row)

    def append_many(self, rows) -> list[Entry]:
        """Record many answers in one transaction: all of them or none.

        Parameters
        ----------
        rows : iterable of dict
            Keyword arguments of :meth:`append` (``spectrum_id``, ``label``,
            ``source``, ``iteration``, ``purpose``, optionally ``sender``
            and ``action``). Consumed inside the transaction.

        Returns
        -------
        list of Entry

        Raises
        ------
        ValueError, TypeError
            When a row is invalid; the whole batch is rolled back.
        """
        with self._write():
            return [self._insert(_new_row(**row)) for row in rows]

    def undo(self, *, source: str, sender: str = "", spectrum_id: str | None = None,
             iteration: int | None = None) -> Entry | None:
        """Take back the most recent label or skip not taken back yet.

        Appends an ``undo`` entry; nothing is deleted. Repeated calls walk
        back through the history. Undo entries themselves are not undone.

        Parameters
        ----------
        source, sender : str
            Provenance of the undo.
        spectrum_id : str, optional
            Only consider entries of this spectrum.
        iteration : int, optional
            Recorded with the undo entry.

        Returns
        -------
        Entry or None
            The undo entry, or None when there was nothing to undo.
        """
        if not isinstance(source, str) or not source:
            raise ValueError(f"source must be a non-empty string, not {source!r}")
        where, parameters = ("", ()) if spectrum_id is None else (" AND e.spectrum_id = ?",
                                                                  (spectrum_id,))
        with self._write() as db:
            target = db.execute(
                f"SELECT e.seq, e.spectrum_id FROM entries e WHERE {_EFFECTIVE}{where} "
                "ORDER BY e.seq DESC LIMIT 1", parameters).fetchone()
            if target is None:
                return None
            seq, target_id = target
            return self._insert((target_id, None, "undo", seq, source, sender, utc_now(),
                                 iteration, None))

    def entries(self, include_undone: bool = True, spectrum_id: str | None = None) -> list[Entry]:
        """Entries in log order, each with its ``undone`` flag.

        Parameters
        ----------
        include_undone : bool
            When False, leave out undone entries and the undo entries
            themselves: what remains is the effective history.
        spectrum_id : str, optional
            Only this spectrum's entries (its history).

        Returns
        -------
        list of Entry
        """
        where, parameters = ("", ()) if spectrum_id is None else (" WHERE e.spectrum_id = ?",
                                                                  (spectrum_id,))
        entries = self._read(f"SELECT {_SELECT}, {_UNDONE} FROM entries e{where} ORDER BY e.seq",
                             parameters)
        if include_undone:
            return entries
        return [e for e in entries if not e.undone and e.action != "undo"]

    def entries_after(self, seq: int) -> list[Entry]:
        """Entries committed after entry ``seq`` (by any process), in log order.

        Lets a window that shows the log pick up answers given through
        other doors (another process's CLI or SAMP bridge) cheaply.
        """
        return self._read(f"SELECT {_SELECT}, {_UNDONE} FROM entries e WHERE e.seq > ? "
                          "ORDER BY e.seq", (int(seq),))

    def last_seq(self) -> int:
        """The seq of the latest entry (0 for an empty log)."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM entries").fetchone()[0])

    def current(self, spectrum_ids=None) -> dict[str, Entry]:
        """The answer in force for each spectrum: its latest label or skip
        that is not undone (undoing the latest brings back the one before).

        Parameters
        ----------
        spectrum_ids : iterable of str, optional
            Only these spectra (found through the log's index: the cost
            follows their number, not the log's size).

        Returns
        -------
        dict
            ``spectrum_id -> Entry``, in the order of those entries.
        """
        if spectrum_ids is None:
            entries = self._read(f"SELECT {_SELECT}, 0 FROM entries e WHERE {_EFFECTIVE} "
                                 "ORDER BY e.seq")
        else:
            ids = list(dict.fromkeys(str(i) for i in spectrum_ids))
            entries = []
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start:start + _IDS_PER_QUERY]
                wanted = ", ".join(["(?)"] * len(chunk))
                entries += self._read(f"WITH wanted(id) AS (VALUES {wanted}) {_LATEST}", chunk)
            entries.sort(key=lambda e: e.seq)
        current = {e.spectrum_id: e for e in entries}
        return dict(sorted(current.items(), key=lambda item: item[1].seq))

    def counts(self) -> dict[str, int]:
        """Number of spectra per class among the answers in force (skips excluded).

        Returns
        -------
        dict
            ``class name -> count``.
        """
        return dict(Counter(e.label for e in self.current().values() if e.action == "label"))
