"""The discovery report: of the candidates of each interesting class, how
many spectra and objects are new, and how many each catalogue knows.

It counts the spectra labelled with an interesting class, and the
unlabelled ones an iteration's model predicts as one (optionally only
above a probability), among those cross-matched (:mod:`vo_al.crossmatch`).
A spectrum known to two catalogues counts under each, and once in the
total; an object (repeated observations of one star) is known to a
catalogue when one of its spectra is.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .crossmatch import OBJECT_RADIUS_ARCSEC, match_table
from .export import candidate_rows, rows_table
from .session import Session

__all__ = ["discovery_report", "format_report"]


def _classified(session: Session, n: int, labelled_only: bool,
                min_probability: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, class)`` of the counted candidates (class '' is not counted)."""
    current = session.log.current()
    if n == 0:
        ids = np.array([i for i, e in current.items() if e.action == "label"], dtype=str)
        return ids, np.array([current[i].label for i in ids], dtype=str)
    table = rows_table(session, n, candidate_rows(session, n))
    classes = np.asarray(table["label"]).astype(object)
    unlabelled = classes == ""
    if not labelled_only:
        predicted = np.asarray(table["predicted"]).astype(object)
        if min_probability is not None:
            names = session.config.class_names
            probs = np.column_stack([np.asarray(table[f"p_{c}"]) for c in names])
            index = np.array([names.index(c) for c in predicted], dtype=np.int64)
            predicted[probs[np.arange(len(index)), index] < min_probability] = ""
        classes[unlabelled] = predicted[unlabelled]
    return np.asarray(table["id"]).astype(str), classes.astype(str)


def _counts(names: list, matches, rows: np.ndarray, keys: np.ndarray) -> dict:
    """Counts over the units ``keys`` (spectrum or object ids) of ``rows``."""
    units = np.unique(keys)
    known_any = np.zeros(len(units), bool)
    known, several, types = {}, np.zeros(len(units), int), {}
    for name in names:
        hit = np.asarray(matches[f"{name}_id"])[rows] != ""
        unit_hit = np.isin(units, keys[hit])
        known[name] = int(unit_hit.sum())
        several += unit_hit
        known_any |= unit_hit
        types[name] = _types(matches, name, rows[hit], keys[hit])
    return {"total": len(units), "new": int((~known_any).sum()), "known": known,
            "several": int((several > 1).sum()), "types": types}


def _types(matches, name: str, rows: np.ndarray, keys: np.ndarray) -> dict:
    """Type counts of the units: each takes the type of its nearest match."""
    order = np.lexsort((np.asarray(matches[f"{name}_sep_arcsec"])[rows], keys))
    first = np.r_[True, keys[order][1:] != keys[order][:-1]] if len(order) else order
    kinds = np.asarray(matches[f"{name}_type"])[rows][order][first] if len(order) else []
    return dict(sorted(Counter(str(k) or "(none)" for k in kinds).items()))


def _lookup(sorted_ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``wanted`` in ``sorted_ids``, and which were found."""
    where = np.searchsorted(sorted_ids, wanted)
    found = np.zeros(len(wanted), bool)
    inside = where < len(sorted_ids)
    found[inside] = sorted_ids[where[inside]] == wanted[inside]
    return where[found], found


def _counted(n: int, labelled_only: bool, min_probability: float | None) -> str:
    if n == 0 or labelled_only:
        return "spectra labelled with an interesting class"
    above = "" if min_probability is None else f" with probability >= {min_probability:g}"
    return (f"spectra labelled with an interesting class, and unlabelled ones iteration "
            f"{n}'s model predicts as one{above}")


def discovery_report(session: Session, iteration: int | None = None,
                     min_probability: float | None = None, labelled_only: bool = False,
                     radius_arcsec: float = OBJECT_RADIUS_ARCSEC) -> dict:
    """The discovery report of a session.

    Parameters
    ----------
    session : Session
    iteration : int, optional
        Whose predictions count (default: the latest; before the first
        iteration only labels count).
    min_probability : float, optional
        Count an unlabelled spectrum only when the model gives its
        predicted class at least this probability.
    labelled_only : bool
        Count labelled spectra only.
    radius_arcsec : float
        Spectra closer than this are one object.

    Returns
    -------
    dict
        ``{"iteration": N, "counted": text, "catalogues": {NAME: definition},
        "classes": {CLASS: {"spectra": COUNTS, "objects": COUNTS,
        "not_matched": k}}}`` where COUNTS is ``{"total": T, "new": n,
        "known": {NAME: k}, "several": k, "types": {NAME: {type: k}}}`` and
        ``not_matched`` counts the class's spectra no catalogue was asked
        about yet (not in the counts).

    Raises
    ------
    ValueError
        When ``iteration`` is not complete.
    """
    n = session.scored_iteration(iteration) if iteration or session.iteration else 0
    ids, classes = _classified(session, n, labelled_only, min_probability)
    matches = match_table(session.directory, radius_arcsec)
    names = sorted(matches.meta["catalogues"])
    matched_ids = np.asarray(matches["id"]).astype(str)
    report = {}
    for name in (session.config.class_names[i] for i in session.config.interesting_indices):
        rows, found = _lookup(matched_ids, ids[classes == name])
        objects = np.asarray(matches["object_id"]).astype(str)[rows]
        report[name] = {"spectra": _counts(names, matches, rows, matched_ids[rows]),
                        "objects": _counts(names, matches, rows, objects),
                        "not_matched": int((~found).sum())}
    return {"iteration": n, "counted": _counted(n, labelled_only, min_probability),
            "min_probability": min_probability, "labelled_only": labelled_only,
            "catalogues": matches.meta["catalogues"], "classes": report}


def format_report(report: dict) -> str:
    """The report as a text table, one block per class."""
    lines = [f"iteration {report['iteration']}; counted: {report['counted']}"]
    for name, entry in report["classes"].items():
        spectra, objects = entry["spectra"], entry["objects"]
        lines += ["", f"{name:<24}{'spectra':>10}{'objects':>10}",
                  f"  {'total':<22}{spectra['total']:>10}{objects['total']:>10}",
                  f"  {'new':<22}{spectra['new']:>10}{objects['new']:>10}"]
        for catalogue, count in spectra["known"].items():
            types = ", ".join(f"{t} {k}" for t, k in objects["types"][catalogue].items())
            lines.append(f"  {'in ' + catalogue:<22}{count:>10}{objects['known'][catalogue]:>10}"
                         + (f"   objects: {types}" if types else ""))
        if len(spectra["known"]) > 1:
            lines.append(f"  {'in several':<22}{spectra['several']:>10}{objects['several']:>10}")
        if entry["not_matched"]:
            lines.append(f"  {'not matched yet':<22}{entry['not_matched']:>10}")
    if not report["catalogues"]:
        lines += ["", "no catalogue matched yet: run `vo-al crossmatch` first"]
    return "\n".join(lines)
