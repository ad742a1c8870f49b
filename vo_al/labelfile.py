"""Reading tables of labels: a column naming the spectrum (``id`` or
``file``) and a column naming its class (``label``, or ``class`` as in a
synthetic survey's ``truth.csv``)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LabelTable", "LabelFileError", "read_label_csv"]

LABEL_COLUMNS = ("label", "class")


class LabelFileError(ValueError):
    """A label table lacks the columns it needs."""


@dataclass
class LabelTable:
    """Labels keyed by spectrum id and by absolute file path.

    Attributes
    ----------
    by_id : dict
        ``id -> class name``.
    by_file : dict
        ``absolute path -> class name``; relative paths in the table are
        taken from the table's own folder.
    """

    by_id: dict
    by_file: dict

    def lookup(self, spectrum_id: str, source: str) -> str | None:
        """The class name for a spectrum, by id first and then by file."""
        label = self.by_id.get(spectrum_id)
        if label is None:
            label = self.by_file.get(os.path.abspath(source))
        return label

    def class_names(self) -> list[str]:
        """Every class name in the table, sorted."""
        return sorted(set(self.by_id.values()) | set(self.by_file.values()))


def read_label_csv(path) -> LabelTable:
    """Read a CSV of labels.

    Parameters
    ----------
    path : str or path-like
        CSV with a header; needs ``id`` and/or ``file``, and ``label`` or
        ``class``. Rows with an empty label are skipped.

    Returns
    -------
    LabelTable

    Raises
    ------
    LabelFileError
        When the needed columns are missing.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or ())
        label_column = next((c for c in LABEL_COLUMNS if c in columns), None)
        if label_column is None or not columns & {"id", "file"}:
            raise LabelFileError(
                f"{path}: needs an 'id' or 'file' column and a 'label' or 'class' "
                f"column; found {sorted(columns)}"
            )
        by_id, by_file = {}, {}
        for row in reader:
            label = (row.get(label_column) or "").strip()
            if not label:
                continue
            if row.get("id"):
                by_id[row["id"].strip()] = label
            if row.get("file"):
                by_file[os.path.abspath(path.parent / row["file"].strip())] = label
    return LabelTable(by_id, by_file)


def read_label_pairs(path, id_column: str = "id", label_column: str = "label") -> list:
    """``(spectrum id, label)`` pairs from a CSV or VOTable file.

    Parameters
    ----------
    path : str or path-like
        ``.csv`` (any other suffix but ``.vot``/``.xml`` is read as CSV too)
        or VOTable.
    id_column, label_column : str
        Column names (matched case-insensitively); ``class`` is accepted
        for a missing ``label`` column.

    Raises
    ------
    LabelFileError
        When a column is missing or the file cannot be parsed.
    """
    from astropy.table import Table

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".vot", ".xml", ".votable"):
            table = Table.read(path, format="votable")
        else:
            table = Table.read(path, format="ascii.csv")
    except Exception as exc:
        raise LabelFileError(f"{path}: cannot read a table ({exc})") from exc
    columns = {name.lower(): name for name in table.colnames}
    wanted = [id_column.lower()]
    wanted.append(label_column.lower() if label_column.lower() in columns else "class")
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise LabelFileError(f"{path}: no column {missing[0]!r}; found {table.colnames}")
    ids, labels = table[columns[wanted[0]]], table[columns[wanted[1]]]
    return [(str(i).strip(), str(label).strip()) for i, label in zip(ids, labels)
            if str(label).strip() and str(label) != "--"]
