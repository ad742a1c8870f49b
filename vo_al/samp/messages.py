"""SAMP messages: building them, checking the ones that come in.

Everything in a SAMP message is a string, a list or a map with string keys:
JSAMP's hub rejects integers, floats and None anywhere in a message, so
numbers are sent as decimal strings and rows as 0-based integer strings.
SAMP strings hold only the characters 0x01–0x7f (JSAMP refuses a reply
holding "→"): :func:`to_ascii` makes any text fit.
The checkers raise :class:`~vo_al.samp.errors.MessageRejected` with a text
meant for the sender's user; it becomes the ``samp.errortxt`` of the reply.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import MessageRejected

__all__ = [
    "TABLE_LOAD",
    "TABLE_HIGHLIGHT",
    "TABLE_SELECT",
    "SPECTRUM_LOAD",
    "POINT_AT",
    "LABEL_SET",
    "LABEL_UNDO",
    "PING",
    "HANDLED",
    "HUB_EVENTS",
    "VOTABLE_MIME",
    "FITS_MIME",
    "check_samp_value",
    "to_ascii",
    "message",
    "load_table",
    "highlight_row",
    "select_rows",
    "point_at",
    "load_spectrum",
    "ok",
    "warning",
    "error",
    "number",
    "params_of",
    "string_param",
    "optional_string",
    "map_param",
    "row_param",
    "row_list_param",
]

TABLE_LOAD = "table.load.votable"
TABLE_HIGHLIGHT = "table.highlight.row"
TABLE_SELECT = "table.select.rowList"
SPECTRUM_LOAD = "spectrum.load.ssa-generic"
POINT_AT = "coord.pointAt.sky"
LABEL_SET = "voal.label.set"
LABEL_UNDO = "voal.label.undo"
PING = "samp.app.ping"

#: The MTypes vo-al acts on (its subscriptions besides ping and hub events).
HANDLED = (TABLE_HIGHLIGHT, TABLE_SELECT, TABLE_LOAD, SPECTRUM_LOAD, LABEL_SET, LABEL_UNDO)

#: Hub events the bridge itself follows (shutdown, client names, clients, subscriptions).
HUB_EVENTS = ("samp.hub.event.shutdown", "samp.hub.event.metadata",
              "samp.hub.event.register", "samp.hub.event.unregister",
              "samp.hub.event.subscriptions")

VOTABLE_MIME = "application/x-votable+xml"
FITS_MIME = "application/fits"

_ROW = re.compile(r"[0-9]{1,12}")


def check_samp_value(value, where: str = "message"):
    """Refuse anything but strings, lists and string-keyed maps, at any depth.

    Raises
    ------
    TypeError
        Naming the first offending value and where it is.
    """
    if isinstance(value, str):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_samp_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: map key {key!r} is not a string")
            check_samp_value(item, f"{where}.{key}")
        return
    raise TypeError(f"{where} is {type(value).__name__} {value!r}: SAMP takes only strings, "
                    "lists and maps")


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c) and c != "\0")
    return kept.encode("ascii", "backslashreplace").decode("ascii")


def to_ascii(value):
    """``value`` with every string (map keys too) made SAMP-safe ASCII.

    Accents are dropped (``Ondřejov`` → ``Ondrejov``), other characters
    escaped (``→`` → ``\\u2192``); anything but strings, lists and maps is
    returned as it is, for :func:`check_samp_value` to refuse.
    """
    if isinstance(value, str):
        return value if value.isascii() and "\0" not in value else _ascii(value)
    if isinstance(value, (list, tuple)):
        return [to_ascii(item) for item in value]
    if isinstance(value, dict):
        return {to_ascii(key) if isinstance(key, str) else key: to_ascii(item)
                for key, item in value.items()}
    return value


def message(mtype: str, **params) -> dict:
    """A SAMP message; keyword names use ``_`` for ``-`` (``table_id``)."""
    return {"samp.mtype": mtype,
            "samp.params": {name.replace("_", "-"): value for name, value in params.items()}}


def load_table(url: str, table_id: str, name: str) -> dict:
    """``table.load.votable``."""
    return message(TABLE_LOAD, url=url, table_id=table_id, name=name)


def highlight_row(table_id: str, url: str, row: int) -> dict:
    """``table.highlight.row`` for a 0-based row."""
    return message(TABLE_HIGHLIGHT, table_id=table_id, url=url, row=str(int(row)))


def select_rows(table_id: str, url: str, rows) -> dict:
    """``table.select.rowList`` for 0-based rows."""
    return message(TABLE_SELECT, table_id=table_id, url=url,
                   row_list=[str(int(r)) for r in rows])


def number(value: float) -> str:
    """A float as the decimal string SAMP carries (``repr`` precision)."""
    return repr(float(value))


def point_at(ra: float, dec: float) -> dict:
    """``coord.pointAt.sky`` (ICRS degrees)."""
    return message(POINT_AT, ra=number(ra), dec=number(dec))


def load_spectrum(url: str, name: str, meta: dict) -> dict:
    """``spectrum.load.ssa-generic``; ``meta`` holds SSA keys (strings)."""
    return message(SPECTRUM_LOAD, url=url, name=name, meta=dict(meta))


def ok(result: dict | None = None) -> dict:
    """A ``samp.ok`` response."""
    return {"samp.status": "samp.ok", "samp.result": dict(result or {})}


def warning(text: str, result: dict | None = None) -> dict:
    """A ``samp.warning`` response: done, with a caveat."""
    return {"samp.status": "samp.warning", "samp.result": dict(result or {}),
            "samp.error": {"samp.errortxt": text}}


def error(text: str) -> dict:
    """A ``samp.error`` response."""
    return {"samp.status": "samp.error", "samp.error": {"samp.errortxt": text}}


# --------------------------------------------------------------------------
# Checking incoming parameters


def params_of(params) -> dict:
    """The ``samp.params`` map of a message.

    Raises
    ------
    MessageRejected
        When it is not a map.
    """
    if not isinstance(params, dict):
        raise MessageRejected(f"samp.params must be a map, not {type(params).__name__}")
    return params


def string_param(params: dict, name: str) -> str:
    """A required, non-empty string parameter (surrounding blanks removed)."""
    if name not in params:
        raise MessageRejected(f"missing parameter {name!r}")
    value = optional_string(params, name)
    if not value:
        raise MessageRejected(f"parameter {name!r} is empty")
    return value


def optional_string(params: dict, name: str) -> str:
    """A string parameter, ``''`` when absent."""
    value = params.get(name, "")
    if not isinstance(value, str):
        raise MessageRejected(f"parameter {name!r} must be a string, not a "
                              f"{type(value).__name__}")
    return value.strip()


def map_param(params: dict, name: str) -> dict:
    """A map parameter, ``{}`` when absent."""
    value = params.get(name, {})
    if not isinstance(value, dict):
        raise MessageRejected(f"parameter {name!r} must be a map, not a {type(value).__name__}")
    return value


def _row(text, n_rows: int, what: str) -> int:
    if not isinstance(text, str) or not _ROW.fullmatch(text.strip()):
        raise MessageRejected(f"{what} must be a 0-based integer string, not {text!r}"[:200])
    row = int(text)
    if row >= n_rows:
        raise MessageRejected(f"{what} {row} is out of range: the table has {n_rows} rows "
                              f"(0 to {n_rows - 1})")
    return row


def row_param(params: dict, n_rows: int, name: str = "row") -> int:
    """A 0-based row number given as an integer string, checked against the table."""
    if name not in params:
        raise MessageRejected(f"missing parameter {name!r}")
    return _row(params[name], n_rows, f"parameter {name!r}")


def row_list_param(params: dict, n_rows: int, name: str = "row-list") -> list[int]:
    """A list of 0-based row strings, checked against the table; repeats dropped.

    A list longer than the table is refused before its items are read, so a
    huge list costs no more than its length check.
    """
    if name not in params:
        raise MessageRejected(f"missing parameter {name!r}")
    value = params[name]
    if not isinstance(value, list):
        raise MessageRejected(f"parameter {name!r} must be a list of row strings, not a "
                              f"{type(value).__name__}")
    if len(value) > n_rows:
        raise MessageRejected(f"parameter {name!r} has {len(value)} rows; the table has only "
                              f"{n_rows}")
    rows = [_row(item, n_rows, f"{name} item {k}") for k, item in enumerate(value)]
    return list(dict.fromkeys(rows))
