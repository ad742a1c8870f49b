"""Labels for fetched spectra: a table that names archive records (by
publisher DID, observation id, file name or title) and gives each a class,
written as the ``labels.csv`` that ``vo-al ingest --labels`` reads.

A table row matches a fetched file when its key is the record's DID, the
DID's last part (``ivo://asu.cas.cz/stel/ccd700/a201402030013`` →
``a201402030013``, the id vo-al's reader gives an Ondřejov spectrum), the
file's name with or without its extension, or the record's title or its
last part without extension.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from .atomic import write_text_atomic
from .fetch import read_manifest
from .options import KEY_COLUMNS
from .ssa import FetchError

__all__ = ["LABELS_NAME", "KEY_COLUMNS", "LabelsReport", "read_record_labels",
           "write_labels"]

#: The labels file's name in the fetch folder.
LABELS_NAME = "labels.csv"
_LABEL_COLUMNS = ("label", "class")



@dataclass
class LabelsReport:
    """What :func:`write_labels` wrote.

    Attributes
    ----------
    path : Path
        The labels CSV.
    labelled : int
        Fetched files given a label.
    unmatched : list of str
        Table keys that name no fetched file.
    conflicts : list of str
        Files the table gives two different labels (left unlabelled).
    """

    path: Path
    labelled: int = 0
    unmatched: list = field(default_factory=list)
    conflicts: list = field(default_factory=list)


def _read_table(path: Path) -> Table:
    kind = {".csv": "ascii.csv", ".tsv": "ascii.tab"}.get(path.suffix.lower())
    try:
        return Table.read(path, format=kind) if kind else Table.read(path)
    except Exception as exc:  # astropy raises many kinds for an unreadable table
        raise FetchError(f"{path}: cannot read it as a table: {exc}") from exc


def _pick(table: Table, given: str | None, candidates: tuple, what: str, path) -> str:
    lower = {c.lower(): c for c in table.colnames}
    if given:
        if given.lower() not in lower:
            raise FetchError(f"{path}: no column {given!r} ({what}); it has "
                             f"{', '.join(table.colnames)}")
        return lower[given.lower()]
    for name in candidates:
        if name in lower:
            return lower[name]
    raise FetchError(f"{path}: no {what} column (one of {', '.join(candidates)}); it has "
                     f"{', '.join(table.colnames)}")


def _strings(column) -> list:
    values = column.filled("") if hasattr(column, "filled") else column
    values = np.asarray(values)
    if values.dtype.kind == "S":
        values = np.char.decode(values, "utf-8")
    return [str(v).strip() for v in values]


def read_record_labels(path, id_column: str | None = None,
                       label_column: str | None = None) -> list[tuple[str, str]]:
    """``(record key, label)`` pairs from a CSV, VOTable, FITS or ECSV table.

    Parameters
    ----------
    path : path-like
    id_column : str, optional
        The column naming the record (default: the first of
        :data:`KEY_COLUMNS` the table has).
    label_column : str, optional
        Default: ``label``, else ``class``.

    Raises
    ------
    FetchError
        When the table cannot be read or lacks the columns.
    """
    path = Path(path)
    table = _read_table(path)
    key = _pick(table, id_column, KEY_COLUMNS, "record", path)
    label = _pick(table, label_column, _LABEL_COLUMNS, "label", path)
    return [(k, v) for k, v in zip(_strings(table[key]), _strings(table[label]))
            if k and v and v != "--"]


def _tail(text: str) -> str:
    """The last part of a DID or path, without a spectrum file extension."""
    last = re.split(r"[/?#~]", text.rstrip("/"))[-1]
    return re.sub(r"\.(fits?|fts)(\.gz)?$", "", last, flags=re.IGNORECASE)


def _keys(row: dict) -> set:
    keys = {row["did"], _tail(row["did"]), row["file"], _tail(row["file"]), row["title"],
            _tail(row["title"])}
    return {k for k in keys if k}


def _index(rows) -> dict:
    """Key → the fetched files it names."""
    index: dict = {}
    for row in rows:
        if row["file"] and row["status"] in ("ok", "duplicate"):
            for key in _keys(row):
                index.setdefault(key, set()).add(row["file"])
    return index


def write_labels(directory, pairs) -> LabelsReport:
    """Write ``DIR/labels.csv`` (``file``, ``did``, ``label``) for the
    fetched files the pairs name.

    Parameters
    ----------
    directory : path-like
        A fetch folder (with its manifest).
    pairs : list of (str, str)
        As :func:`read_record_labels` gives them.

    Returns
    -------
    LabelsReport
    """
    directory = Path(directory)
    rows = read_manifest(directory)
    index = _index(rows)
    did_of = {r["file"]: r["did"] for r in rows if r["file"] and r["status"] == "ok"}
    report = LabelsReport(directory / LABELS_NAME)
    given: dict = {}
    for key, label in pairs:
        files = index.get(key)
        if not files:
            report.unmatched.append(key)
        for file in files or ():
            given.setdefault(file, set()).add(label)
    report.conflicts = sorted(f for f, labels in given.items() if len(labels) > 1)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "did", "label"])
    for file in sorted(given):
        if len(given[file]) == 1:
            writer.writerow([file, did_of.get(file, ""), next(iter(given[file]))])
            report.labelled += 1
    write_text_atomic(report.path, buffer.getvalue())
    return report
