"""The labelling queue as plain numpy arrays: what the table shows and the
viewer walks through. No Qt here, so it is tested and benchmarked without
a window; :mod:`vo_al.gui.queue_model` only adapts it to ``QAbstractTableModel``.

A queue is built by one of three functions, all of which stream the pool
and the scores file instead of loading them:

- :func:`batch_queue`: the latest iteration's query batch, then its
  estimate sample (what the astronomer is asked to label);
- :func:`candidate_queue`: the ``k`` spectra most probably of one class,
  chosen from ``scores.h5`` with a streamed :class:`~vo_al.strategies.TopK`;
- :func:`search_queue`: spectra found by id (exact, or by part of an id or
  designation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .cancel import check_cancel
from .idindex import read_rows
from .labellog import Entry
from .scoring import ScoresReader
from .session import Session
from .strategies import TopK, entropy

__all__ = [
    "BATCH_KINDS",
    "Queue",
    "batch_queue",
    "candidate_queue",
    "search_queue",
    "answer_in_force",
]

#: Kinds of rows that count for "how many of the batch are left".
BATCH_KINDS = ("query", "estimate")

_NO_PROBS = np.float32(np.nan)
_SCAN_CHUNK = 65536


def answer_in_force(entry: Entry | None, skip_name: str) -> str:
    """What a row shows as its answer: a class name, the skip name or ''."""
    if entry is None:
        return ""
    return entry.label if entry.action == "label" else skip_name


@dataclass
class Queue:
    """Rows to label or browse, one array per column (all of length ``n``).

    Parameters
    ----------
    title : str
        What the list is ("iteration 7 batch", "top emission", ...).
    iteration : int
        The iteration whose scores and batch the rows come from (0: none);
        labels given from this queue are recorded against it.
    class_names : list of str
        The session's classes, in probability column order.
    skip_name : str
        The session's answer "unsure".
    rows : ndarray of int64
        Pool rows.
    ids, designation, source, kind : ndarray of object (str)
        Spectrum id, designation, file path and why the row is listed
        (``query``, ``estimate``, ``candidate`` or ``search``).
    ra, dec : ndarray of float64
        Degrees (NaN when unknown).
    probs : ndarray of float32, shape (n, C)
        The iteration's class probabilities (NaN when unscored).
    answer, answer_source : ndarray of object (str)
        The answer in force ('' for none) and the door it came through.

    Attributes
    ----------
    uncertainty : ndarray of float32
        Predictive entropy divided by ``log C``: 0 = certain, 1 = no idea.
    answered : ndarray of bool
        Whether each row has an answer in force (kept in step with
        ``answer`` by :meth:`set_answer`).
    """

    title: str
    iteration: int
    class_names: list
    skip_name: str
    rows: np.ndarray
    ids: np.ndarray
    designation: np.ndarray
    source: np.ndarray
    kind: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    probs: np.ndarray
    answer: np.ndarray
    answer_source: np.ndarray
    uncertainty: np.ndarray = field(init=False)
    answered: np.ndarray = field(init=False)

    def __post_init__(self):
        n = len(self.rows)
        if any(len(a) != n for a in (self.ids, self.designation, self.source, self.kind,
                                     self.ra, self.dec, self.probs, self.answer,
                                     self.answer_source)):
            raise ValueError("every queue column must have one value per row")
        with np.errstate(invalid="ignore", divide="ignore"):
            self.uncertainty = (entropy(self.probs) / np.log(len(self.class_names))).astype(
                np.float32) if n else np.empty(0, np.float32)
        self.answered = np.array([bool(a) for a in self.answer], dtype=bool)
        self._in_batch = np.isin(self.kind.astype(str), BATCH_KINDS) if n else np.zeros(0, bool)
        self._positions: dict[str, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def empty(cls, title: str, class_names, skip_name: str, iteration: int = 0) -> "Queue":
        """A queue without rows."""
        none = np.empty(0, dtype=object)
        return cls(title, iteration, list(class_names), skip_name, np.empty(0, np.int64), none,
                   none, none, none, np.empty(0), np.empty(0),
                   np.empty((0, len(class_names)), np.float32), none, none)

    # ------------------------------------------------------------------ columns

    def columns(self) -> list[tuple[str, str]]:
        """``(key, header)`` of every column, in display order."""
        return [("kind", "list"), ("id", "id"), ("answer", "answer"), ("predicted", "predicted"),
                *[(f"p:{c}", f"p({name})") for c, name in enumerate(self.class_names)],
                ("uncertainty", "uncertainty"), ("source", "by"),
                ("designation", "designation")]

    def predicted(self, i: int) -> str:
        """Predicted class of row ``i`` ('' when unscored)."""
        p = self.probs[i]
        return "" if np.isnan(p).any() else self.class_names[int(np.argmax(p))]

    def value(self, i: int, key: str):
        """The value of one cell: str, float (NaN when missing)."""
        if key.startswith("p:"):
            return float(self.probs[i, int(key[2:])])
        if key == "predicted":
            return self.predicted(i)
        if key == "uncertainty":
            return float(self.uncertainty[i])
        if key == "id":
            return self.ids[i]
        if key == "source":
            return self.answer_source[i]
        return getattr(self, key)[i]

    def sort_keys(self, key: str) -> np.ndarray:
        """An array that orders the rows by column ``key`` (NaN last)."""
        if key.startswith("p:"):
            return self.probs[:, int(key[2:])]
        if key == "uncertainty":
            return self.uncertainty
        if key == "predicted":
            scored = ~np.isnan(self.probs).any(axis=1)
            best = np.argmax(np.nan_to_num(self.probs, nan=-1.0), axis=1)
            return np.where(scored, best, np.nan)
        if key == "id":
            return self.ids
        if key == "source":
            return self.answer_source
        return getattr(self, key)

    def sort_order(self, key: str, descending: bool = False) -> np.ndarray:
        """Row indices sorted by column ``key`` (stable; NaN and '' go last).

        Parameters
        ----------
        key : str
            A key from :meth:`columns`.
        descending : bool

        Returns
        -------
        ndarray of int64
        """
        values = self.sort_keys(key)
        if values.dtype == object:
            values = values.astype(str)
            missing = values == ""
        else:
            missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(self), bool)
        present = np.flatnonzero(~missing)
        if descending:  # sort the reversed rows, so equal values keep their order
            order = present[::-1][np.argsort(values[present][::-1], kind="stable")][::-1]
        else:
            order = present[np.argsort(values[present], kind="stable")]
        return np.concatenate([order, np.flatnonzero(missing)]).astype(np.int64)

    # ------------------------------------------------------------------ answers

    def positions(self, spectrum_id: str) -> list[int]:
        """Row indices holding ``spectrum_id`` (a search may list one twice)."""
        if self._positions is None:
            self._positions = {}
            for i, spectrum in enumerate(self.ids):
                self._positions.setdefault(spectrum, []).append(i)
        return self._positions.get(spectrum_id, [])

    def set_answer(self, spectrum_id: str, entry: Entry | None) -> list[int]:
        """Record the answer now in force for one spectrum.

        Parameters
        ----------
        spectrum_id : str
        entry : Entry or None
            The label or skip in force, None when there is none any more.

        Returns
        -------
        list of int
            The rows that changed.
        """
        rows = self.positions(spectrum_id)
        for i in rows:
            self.answer[i] = answer_in_force(entry, self.skip_name)
            self.answer_source[i] = entry.source if entry else ""
            self.answered[i] = entry is not None
        return rows

    def remaining(self) -> tuple[int, int]:
        """``(left, total)``: unanswered rows of the batch, and its size."""
        return int((self._in_batch & ~self.answered).sum()), int(self._in_batch.sum())


def _current_answers(session: Session, ids) -> tuple[np.ndarray, np.ndarray]:
    current = session.log.current()
    entries = [current.get(i) for i in ids]
    skip = session.config.skip_name
    return (_strings(answer_in_force(e, skip) for e in entries),
            _strings(e.source if e else "" for e in entries))


def _strings(values) -> np.ndarray:
    """A 1-D object array of ``str`` (never a 2-D array of characters)."""
    values = [str(v) for v in values]
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _assemble(session: Session, title: str, iteration: int, rows, kinds) -> Queue:
    """A queue of pool ``rows`` (in this order) with their pool columns,
    the iteration's probabilities and the answers in force."""
    config = session.config
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return Queue.empty(title, config.class_names, config.skip_name, iteration)
    with session.pool() as pool:
        columns = {name: read_rows(pool, name, rows)
                   for name in ("id", "designation", "source", "ra", "dec")}
    probs = np.full((len(rows), len(config.class_names)), _NO_PROBS, np.float32)
    scores = session.iteration_file(iteration, "scores") if iteration else None
    if scores is not None and scores.is_file():
        with ScoresReader(scores) as reader:
            probs = reader.rows("probs", rows).astype(np.float32)
    ids = _strings(columns["id"])
    answer, source = _current_answers(session, ids)
    return Queue(title, iteration, list(config.class_names), config.skip_name, rows, ids,
                 _strings(columns["designation"]), _strings(columns["source"]),
                 _strings(kinds), columns["ra"].astype(np.float64),
                 columns["dec"].astype(np.float64), probs, answer, source)


def batch_queue(session: Session, iteration: int | None = None) -> Queue:
    """The query batch, then the estimate sample, of an iteration.

    Parameters
    ----------
    session : Session
    iteration : int, optional
        Default: the latest completed one.

    Returns
    -------
    Queue
        Empty (iteration 0) before the first iteration.
    """
    n = session.iteration if iteration is None else iteration
    ids, kinds = [], []
    for kind in BATCH_KINDS:
        batch = session.read_batch(n, kind) if n else []
        ids += batch
        kinds += [kind] * len(batch)
    rows = session.index.rows(ids) if ids else np.empty(0, np.int64)
    found = rows >= 0
    return _assemble(session, f"iteration {n} batch", n, rows[found],
                     np.asarray(kinds, dtype=object)[found])


def candidate_queue(session: Session, class_name: str, k: int, iteration: int | None = None,
                    cancel=None) -> Queue:
    """The ``k`` spectra most probably of one class, most probable first.

    ``scores.h5`` is streamed chunk by chunk through a
    :class:`~vo_al.strategies.TopK`; only the chosen rows are read from
    the pool.

    Parameters
    ----------
    session : Session
    class_name : str
        A class of the session.
    k : int
        How many to list.
    iteration : int, optional
        Default: the latest completed one.
    cancel : threading.Event-like, optional
        Checked between chunks.

    Returns
    -------
    Queue

    Raises
    ------
    ValueError
        When the session has no completed iteration.
    """
    n = session.scored_iteration(iteration)
    c = session.config.class_index(class_name)
    top = TopK(k)
    with ScoresReader(session.iteration_file(n, "scores")) as scores:
        for _, chunk in scores.iter_chunks(_SCAN_CHUNK, ("probs",)):
            check_cancel(cancel, "candidate list")
            top.update(chunk["probs"][:, c].astype(np.float64))
    rows = top.indices()
    name = session.config.class_names[c]
    return _assemble(session, f"top {name}", n, rows, ["candidate"] * len(rows))


def _tokens(text: str) -> list[str]:
    """Parts of a search: separated by commas, semicolons, tabs or new lines
    (a designation such as ``LAMOST J075703.80+025653.6`` holds a blank)."""
    return [t.strip() for t in re.split(r"[,;\t\n\r]+", text) if t.strip()]


def search_queue(session: Session, text: str, limit: int = 1000, cancel=None) -> Queue:
    """Spectra found by id: exact ids first; a part that is no id matches
    any id or designation containing it (case-insensitive, streamed).

    Parameters
    ----------
    session : Session
    text : str
        One or more ids or parts of ids/designations, separated by commas,
        semicolons or new lines.
    limit : int
        Most rows listed.
    cancel : threading.Event-like, optional

    Returns
    -------
    Queue
        Scored by the latest iteration when there is one.
    """
    words = _tokens(text)
    exact = session.index.rows(words) if words else np.empty(0, np.int64)
    rows = list(dict.fromkeys(int(r) for r in exact if r >= 0))
    partial = [w.casefold() for w, r in zip(words, exact) if r < 0]
    if partial and len(rows) < limit:
        rows += _scan_for(session, partial, limit - len(rows), set(rows), cancel)
    n = session.iteration
    return _assemble(session, f"search {text.strip()!r}", n, rows[:limit],
                     ["search"] * len(rows[:limit]))


def _scan_for(session, words, limit, seen, cancel) -> list[int]:
    found = []
    with session.pool() as pool:
        for start, chunk in pool.iter_chunks(_SCAN_CHUNK, ("id", "designation")):
            check_cancel(cancel, "search")
            text = np.char.lower(np.char.add(np.char.add(chunk["id"].astype(str), " "),
                                             chunk["designation"].astype(str)))
            hit = np.zeros(len(text), bool)
            for word in words:
                hit |= np.char.find(text, word) >= 0
            found += [start + int(i) for i in np.flatnonzero(hit) if start + int(i) not in seen]
            if len(found) >= limit:
                break
    return found[:limit]
