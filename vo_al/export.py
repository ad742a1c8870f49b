"""Candidate tables: the spectra the latest model predicts as interesting,
plus every labelled one, with probabilities, uncertainty, labels and their
provenance — as an astropy Table, written as VOTable, FITS or CSV.

The pool is streamed; only the candidates (≈0.3 % of a survey) are held.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from .idindex import read_rows
from .loop import labelled_rows
from .scoring import ScoresReader
from .session import Session
from .strategies import entropy

__all__ = ["candidate_table", "rows_table", "write_table", "FORMATS"]

FORMATS = {".vot": "votable", ".xml": "votable", ".fits": "fits", ".csv": "ascii.csv"}
_UCDS = {
    "id": "meta.id;meta.main",
    "designation": "meta.id",
    "ra": "pos.eq.ra;meta.main",
    "dec": "pos.eq.dec;meta.main",
    "predicted": "meta.code.class",
    "entropy": "stat.uncertainty",
    "bald": "stat.uncertainty",
    "label": "meta.code.class",
}


def _candidate_rows(session: Session, scores_path) -> np.ndarray:
    interesting = session.config.interesting_indices
    parts = []
    with ScoresReader(scores_path) as scores:
        for start, chunk in scores.iter_chunks(columns=("predicted",)):
            parts.append(start + np.flatnonzero(np.isin(chunk["predicted"], interesting)))
    return np.union1d(np.concatenate(parts) if parts else [], labelled_rows(session)).astype(
        np.int64)


def candidate_table(session: Session, iteration: int | None = None) -> Table:
    """The candidate list of an iteration (default: the latest).

    Columns: ``id``, ``designation``, ``ra``, ``dec``, ``predicted``,
    ``p_<class>`` for each class, ``entropy`` (and ``bald`` when the
    iteration used MC dropout), ``label``, ``label_source``,
    ``label_sender``, ``label_time``, ``iteration``, ``source`` (file path).
    Sorted by decreasing probability of being interesting.

    Raises
    ------
    ValueError
        When the session has no completed iteration.
    """
    n = session.scored_iteration(iteration)
    table = rows_table(session, n, _candidate_rows(session, session.iteration_file(n, "scores")))
    table["iteration"] = np.full(len(table), n, dtype=np.int32)
    table.meta["description"] = f"vo-al candidates, iteration {n}"
    interesting = 1.0 - table[f"p_{session.config.class_names[0]}"]
    table.add_column(interesting, name="p_interesting", index=5)
    table.sort("p_interesting", reverse=True)
    return table


def rows_table(session: Session, n: int, rows) -> Table:
    """Pool rows with iteration ``n``'s scores and the answers in force.

    Parameters
    ----------
    session : Session
    n : int
        A completed iteration.
    rows : array of int64
        Pool rows, in the order wanted.

    Returns
    -------
    astropy.table.Table
        Columns ``id``, ``designation``, ``ra``, ``dec``, ``source``,
        ``predicted``, ``p_<class>``, ``entropy`` (``bald`` with MC dropout),
        ``label``, ``label_source``, ``label_sender``, ``label_time``, with
        UCDs on the identifying, position and class columns.
    """
    table = _pool_columns(session, rows)
    _add_scores(table, session, session.iteration_file(n, "scores"), rows)
    _add_labels(table, session)
    for name, ucd in _UCDS.items():
        if name in table.colnames:
            table[name].meta["ucd"] = ucd
    return table


def _pool_columns(session, rows) -> Table:
    columns = {}
    with session.pool() as pool:
        for name in ("id", "designation", "ra", "dec", "source"):
            values = read_rows(pool, name, rows) if len(rows) else pool.read(name, 0, 0)
            columns[name] = values.astype(str) if values.dtype == object else values
    return Table(columns)


def _add_scores(table, session, scores_path, rows):
    names = session.config.class_names
    with ScoresReader(scores_path) as scores:
        probs = scores.rows("probs", rows) if len(rows) else np.empty((0, len(names)))
        bald = scores.rows("bald", rows) if scores.has_bald and len(rows) else None
    predicted = np.nanargmax(np.nan_to_num(probs, nan=-1.0), axis=1) if len(rows) else []
    table["predicted"] = np.array([names[i] for i in predicted], dtype=str)
    for i, name in enumerate(names):
        table[f"p_{name}"] = probs[:, i].astype(np.float32)
    table["entropy"] = entropy(np.nan_to_num(probs, nan=1.0 / len(names))).astype(np.float32)
    if bald is not None:
        table["bald"] = bald


def _add_labels(table, session):
    current = session.log.current()
    entries = [current.get(i) for i in table["id"]]
    table["label"] = [e.label if e and e.action == "label" else "" for e in entries]
    table["label_source"] = [e.source if e else "" for e in entries]
    table["label_sender"] = [e.sender if e else "" for e in entries]
    table["label_time"] = [e.time if e else "" for e in entries]


def write_table(table: Table, path) -> None:
    """Write ``table`` in the format given by the file name's suffix.

    Raises
    ------
    ValueError
        For an unknown suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"unknown table format {suffix!r}: use one of {sorted(FORMATS)}")
    if FORMATS[suffix] != "votable":  # FITS and CSV have no table description
        table = table.copy(copy_data=False)
        table.meta["comments"] = [table.meta.pop("description", "")]
    table.write(path, format=FORMATS[suffix], overwrite=True)
