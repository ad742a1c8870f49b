"""Candidate tables: the spectra the latest model predicts as interesting,
plus every labelled one, with probabilities, uncertainty, labels and their
provenance — as an astropy Table, written as VOTable, FITS or CSV.

The pool is streamed; only the candidates (≈0.3 % of a survey) are held.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from .atomic import atomic_path
from .idindex import read_rows
from .loop import labelled_rows
from .scoring import ScoresReader
from .session import Session
from .strategies import entropy

__all__ = ["candidate_table", "candidate_rows", "rows_table", "write_table", "describe_columns",
           "COLUMNS", "MATCH_COLUMNS", "FORMATS"]

FORMATS = {".vot": "votable", ".xml": "votable", ".fits": "fits", ".csv": "ascii.csv"}
#: Column → (unit, UCD, description); ``p_<class>`` columns are described by
#: :func:`describe_columns` itself. One source for exported and SAMP tables.
COLUMNS = {
    "id": (None, "meta.id;meta.main", "spectrum id in the pool (obsid or file name)"),
    "designation": (None, "meta.id", "object designation from the file header"),
    "ra": ("deg", "pos.eq.ra;meta.main", "right ascension (ICRS)"),
    "dec": ("deg", "pos.eq.dec;meta.main", "declination (ICRS)"),
    "p_interesting": (None, "stat.probability",
                      "probability of any interesting class (1 - p of the first class)"),
    "predicted": (None, "meta.code.class", "class the model predicts (highest probability)"),
    "entropy": (None, "stat.uncertainty", "entropy of the class probabilities, nat"),
    "bald": (None, "stat.uncertainty",
             "BALD mutual information from MC dropout (model uncertainty), nat"),
    "label": (None, "meta.code.class", "class given by a person (empty: none, or skipped)"),
    "label_source": (None, "meta.note", "door the label came through (viewer, cli, samp, ...)"),
    "label_sender": (None, "meta.note", "who gave the label (user or SAMP client)"),
    "label_time": (None, "time.creation", "when the label was given (UTC, ISO 8601)"),
    "iteration": (None, "meta.version", "iteration whose model scored the row"),
    "batch": (None, "meta.code", "query (asked to improve the model) or estimate "
                                 "(random sample for the precision estimate)"),
    "source": (None, "meta.ref.url", "path of the original spectrum file"),
    "object_id": (None, "meta.id.parent",
                  "object of the spectrum: repeated observations of one star share it (the "
                  "smallest spectrum id among them); empty: not cross-matched"),
    "known": (None, "meta.code", "the spectrum is in at least one cross-matched catalogue"),
}
#: Per catalogue NAME: column ``NAME_<key>`` → (unit, UCD, description).
MATCH_COLUMNS = {
    "id": (None, "meta.id.cross", "identifier of the nearest object in {name} (empty: none)"),
    "type": (None, "src.class", "object type of the nearest object in {name}"),
    "sep_arcsec": ("arcsec", "pos.angDistance", "separation from the nearest object in {name}"),
}


def _match_column(name: str, catalogues) -> tuple | None:
    """(unit, UCD, description) of a ``NAME_<key>`` column of a catalogue."""
    for catalogue in catalogues:
        key = name[len(catalogue) + 1:] if name.startswith(f"{catalogue}_") else None
        if key in MATCH_COLUMNS:
            unit, ucd, description = MATCH_COLUMNS[key]
            return unit, ucd, description.format(name=catalogue)
    return None


def describe_columns(table: Table, catalogues=()) -> Table:
    """Set the unit, UCD and description of every known column (in place).

    Parameters
    ----------
    table : astropy.table.Table
    catalogues : sequence of str
        Names of the cross-matched catalogues, whose ``NAME_id``,
        ``NAME_type`` and ``NAME_sep_arcsec`` columns are described by
        :data:`MATCH_COLUMNS`.

    Returns
    -------
    astropy.table.Table
        The same table.
    """
    for name in table.colnames:
        if name in COLUMNS:
            unit, ucd, description = COLUMNS[name]
        elif name.startswith("p_"):
            unit, ucd, description = None, "stat.probability", f"probability of class {name[2:]}"
        elif _match_column(name, catalogues):
            unit, ucd, description = _match_column(name, catalogues)
        else:
            continue
        column = table[name]
        column.unit = unit
        column.description = description
        column.meta["ucd"] = ucd
    return table


def candidate_rows(session: Session, iteration: int | None = None) -> np.ndarray:
    """Sorted pool rows of the candidates: every spectrum iteration
    ``iteration``'s model (default: the latest; none before the first)
    predicts as an interesting class, and every answered one.

    Raises
    ------
    ValueError
        When ``iteration`` is given and not complete.
    """
    if iteration is None and session.iteration == 0:
        return labelled_rows(session).astype(np.int64)
    n = session.scored_iteration(iteration)
    interesting = session.config.interesting_indices
    parts = []
    with ScoresReader(session.iteration_file(n, "scores")) as scores:
        for start, chunk in scores.iter_chunks(columns=("predicted",)):
            parts.append(start + np.flatnonzero(np.isin(chunk["predicted"], interesting)))
    return np.union1d(np.concatenate(parts) if parts else [], labelled_rows(session)).astype(
        np.int64)


def candidate_table(session: Session, iteration: int | None = None) -> Table:
    """The candidate list of an iteration (default: the latest).

    Columns: ``id``, ``designation``, ``ra``, ``dec``, ``predicted``,
    ``p_<class>`` for each class, ``entropy`` (and ``bald`` when the
    iteration used MC dropout), ``label``, ``label_source``,
    ``label_sender``, ``label_time``, the cross-match columns when there
    are any (:func:`rows_table`), ``iteration``, ``source`` (file path).
    Sorted by decreasing probability of being interesting.

    Raises
    ------
    ValueError
        When the session has no completed iteration.
    """
    n = session.scored_iteration(iteration)
    table = rows_table(session, n, candidate_rows(session, n))
    table.meta["description"] = f"vo-al candidates, iteration {n}"
    interesting = 1.0 - table[f"p_{session.config.class_names[0]}"]
    table.add_column(interesting, name="p_interesting", index=5)
    table.sort("p_interesting", reverse=True)
    return describe_columns(table)


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
        ``label``, ``label_source``, ``label_sender``, ``label_time``, when
        the session has cross-matches ``object_id``, ``known`` and per
        catalogue NAME ``NAME_id``, ``NAME_type``, ``NAME_sep_arcsec``
        (:mod:`vo_al.crossmatch`), then ``iteration``, each with its unit, UCD
        and description (:data:`COLUMNS`, :data:`MATCH_COLUMNS`).
    """
    table = _pool_columns(session, rows)
    _add_scores(table, session, session.iteration_file(n, "scores"), rows)
    _add_labels(table, session)
    catalogues = _add_matches(table, session)
    table["iteration"] = np.full(len(table), n, dtype=np.int32)
    return describe_columns(table, catalogues)


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


def _add_matches(table, session) -> list[str]:
    """``object_id``, ``known`` and each catalogue's columns, when the
    session has cross-matches (:func:`vo_al.crossmatch.match_table`);
    returns the catalogue names."""
    from .crossmatch import match_table

    matches = match_table(session.directory)
    if not matches.meta["catalogues"]:
        return []
    ids = np.asarray(matches["id"]).astype(str)
    wanted = np.asarray(table["id"]).astype(str)
    where = np.minimum(np.searchsorted(ids, wanted), max(len(ids) - 1, 0))
    found = ids[where] == wanted if len(ids) else np.zeros(len(wanted), bool)
    for name in matches.colnames[1:]:
        column = np.asarray(matches[name])
        empty = {"b": False, "f": np.nan}.get(column.dtype.kind, "")
        values = np.full(len(wanted), empty, dtype=column.dtype if empty != "" else object)
        values[found] = column[where[found]]
        table[name] = values.astype(str) if empty == "" else values
    return sorted(matches.meta["catalogues"])


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
    with atomic_path(path, suffix=suffix) as temporary:
        table.write(temporary, format=FORMATS[suffix], overwrite=True)
