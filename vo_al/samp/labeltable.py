"""Label pairs from a table a peer sent, streamed.

A peer's label table can have a million rows. astropy's VOTable reader
takes minutes for that and cannot report progress, so the ``TABLEDATA``
serialization (what TOPCAT and STILTS send) is read here with expat, one
row at a time, keeping only the id and label columns, with progress and a
cancel switch. Other serializations (``BINARY``, ``BINARY2``, ``FITS``)
and CSV files go through :func:`vo_al.labelfile.read_label_pairs`.

Entity declarations are refused (no entity expansion), and so is any
``STREAM href`` (data fetched from elsewhere, beyond the bounds of
:mod:`vo_al.samp.download`).
"""

from __future__ import annotations

import threading
import warnings
import xml.parsers.expat
from pathlib import Path
from typing import Callable

from astropy.io.votable.exceptions import VOWarning

from ..cancel import check_cancel
from ..labelfile import LabelFileError, read_label_pairs
from .download import refuse_remote_streams
from .errors import MessageRejected

__all__ = ["read_pairs"]

_CHUNK = 1 << 20
_PROGRESS_ROWS = 50_000


class _NotTabledata(Exception):
    """The table's data are not in TABLEDATA: read it with astropy."""


class _Rows:
    """expat handlers collecting the two columns of the first TABLE."""

    def __init__(self, path: Path, id_column: str, label_column: str, progress):
        self._path = path
        self._wanted = (id_column.casefold(), label_column.casefold())
        self._progress = progress
        self.fields: list[str] = []
        self.pairs: list[tuple[str, str]] = []
        self._columns: tuple[int, int] | None = None
        self._in_table = False
        self._done = False
        self._cell: list[str] | None = None
        self._row: list[str] = []
        self.rows = 0

    def start(self, tag: str, attrs: dict):
        tag = tag.rpartition(":")[2]
        if self._done:
            return
        if tag == "TABLE":
            self._in_table = True
        elif not self._in_table:
            return
        elif tag == "FIELD":
            self.fields.append(str(attrs.get("name", "")))
        elif tag in ("BINARY", "BINARY2", "FITS"):
            raise _NotTabledata(tag)
        elif tag == "TABLEDATA":
            self._columns = self._find_columns()
        elif tag == "TR":
            self._row = []
        elif tag == "TD":
            self._cell = []

    def _find_columns(self) -> tuple[int, int]:
        names = [name.casefold() for name in self.fields]
        id_name, label_name = self._wanted
        if label_name not in names and "class" in names:
            label_name = "class"
        for name in (id_name, label_name):
            if name not in names:
                raise LabelFileError(f"{self._path}: no column {name!r}; found {self.fields}")
        return names.index(id_name), names.index(label_name)

    def end(self, tag: str):
        tag = tag.rpartition(":")[2]
        if self._done or not self._in_table:
            return
        if tag == "TD" and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "TR" and self._columns is not None:
            self._add_row()
        elif tag == "TABLE":
            self._done = True  # only the first table, as astropy reads it

    def _add_row(self):
        self.rows += 1
        if self.rows % _PROGRESS_ROWS == 0:
            self._progress(self.rows)
        first, second = self._columns
        if max(first, second) >= len(self._row):
            raise LabelFileError(f"{self._path}: row {self.rows} has {len(self._row)} cells; "
                                 f"the table has {len(self.fields)} columns")
        label = self._row[second].strip()
        if label:
            self.pairs.append((self._row[first].strip(), label))

    def text(self, data: str):
        if self._cell is not None:
            self._cell.append(data)


def _refuse_entities(*args):
    raise xml.parsers.expat.ExpatError("entity declarations are not read")


def _read_tabledata(path: Path, rows: _Rows, cancel: threading.Event | None):
    parser = xml.parsers.expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = rows.start
    parser.EndElementHandler = rows.end
    parser.CharacterDataHandler = rows.text
    parser.EntityDeclHandler = _refuse_entities
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            check_cancel(cancel, "reading the table")
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    if rows._columns is None:
        raise LabelFileError(f"{path}: no table data found")


def read_pairs(path: Path, url: str, id_column: str = "id", label_column: str = "label", *,
               progress: Callable[[int], None] = lambda rows: None,
               cancel: threading.Event | None = None) -> list[tuple[str, str]]:
    """``(spectrum id, label)`` pairs of the first table of a downloaded VOTable.

    Parameters
    ----------
    path : Path
        The downloaded file (suffix ``.vot``).
    url : str
        Where it came from, for messages.
    id_column, label_column : str
        Column names, any case; ``class`` is taken for a missing label column.
    progress : callable
        ``progress(rows)`` every 50,000 rows read (TABLEDATA only).
    cancel : threading.Event, optional
        Stops the reading (:class:`vo_al.cancel.Cancelled`).

    Returns
    -------
    list of (str, str)
        Blanks stripped; rows with an empty label left out.

    Raises
    ------
    MessageRejected
        When the file is not a VOTable with those columns, or its data are
        behind a ``STREAM href``.
    """
    refuse_remote_streams(path, url)
    rows = _Rows(path, id_column, label_column, progress)
    try:
        try:
            _read_tabledata(path, rows, cancel)
            return rows.pairs
        except _NotTabledata:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", VOWarning)
                return read_label_pairs(path, id_column, label_column)
        except xml.parsers.expat.ExpatError as exc:
            raise LabelFileError(f"{path}: cannot read a table ({exc})") from None
    except LabelFileError as exc:
        raise MessageRejected(str(exc).replace(str(path), url[:300])[:500]) from None
