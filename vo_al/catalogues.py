"""The catalogues candidates are matched against: where they are, which of
their columns hold the identifier, the position and the object type.

A :class:`Catalogue` is a TAP table (SIMBAD's ``basic``, a VizieR
catalogue, any TAP service's table) or a local table file. It is stored
with its matches (:mod:`vo_al.crossmatch`), so a rerun needs no flags.
Columns are found from what the catalogue says about them (UCDs), then
from SIMBAD's usual names, or are given.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

__all__ = ["Catalogue", "CrossmatchError", "ROLES", "SIMBAD_TAP", "VIZIER_TAP",
           "DEFAULT_RADIUS_ARCSEC", "simbad", "tap_catalogue", "file_catalogue",
           "resolve_columns", "catalogue_name"]

#: SIMBAD's public TAP service (``VO_AL_SIMBAD_TAP`` overrides it).
SIMBAD_TAP = "https://simbad.cds.unistra.fr/simbad/sim-tap"
#: VizieR's public TAP service (for the docs and ``--tap``).
VIZIER_TAP = "http://tapvizier.cds.unistra.fr/TAPVizieR/tap"
#: LAMOST fibres are 3.3″ across.
DEFAULT_RADIUS_ARCSEC = 3.0

#: Column role → (UCD the catalogue marks it with, usual name, required).
ROLES = {
    "id": ("meta.id;meta.main", "main_id", True),
    "ra": ("pos.eq.ra;meta.main", "ra", True),
    "dec": ("pos.eq.dec;meta.main", "dec", True),
    "type": ("src.class", "otype", False),
}


class CrossmatchError(Exception):
    """A catalogue could not be matched: the message names the service or
    file and what failed."""


@dataclass(frozen=True)
class Catalogue:
    """One catalogue to match candidates with.

    Attributes
    ----------
    name : str
        Short name (letters, digits, ``_``): the prefix of its export
        columns (``NAME_id``) and its key in the report.
    kind : {'tap', 'file'}
    source : str
        The TAP service's URL, or the absolute path of the table file.
    table : str
        The ADQL table name (TAP); empty for a file.
    radius_arcsec : float
        Match radius.
    columns : dict
        Role (``id``, ``ra``, ``dec``, ``type``) → column name, as given;
        the rest are found by :func:`resolve_columns`.
    """

    name: str
    kind: str
    source: str
    table: str = ""
    radius_arcsec: float = DEFAULT_RADIUS_ARCSEC
    columns: dict | None = None

    def __post_init__(self):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise CrossmatchError(f"catalogue name {self.name!r}: use lower-case letters, "
                                  f"digits and _, starting with a letter (--as NAME)")
        if self.kind not in ("tap", "file"):
            raise CrossmatchError(f"catalogue kind {self.kind!r}: use 'tap' or 'file'")
        if not self.radius_arcsec > 0:
            raise CrossmatchError(f"match radius {self.radius_arcsec}″: must be positive")
        object.__setattr__(self, "columns", {k: v for k, v in (self.columns or {}).items() if v})

    @property
    def where(self) -> str:
        """The catalogue as a user would name it in a message."""
        if self.kind == "tap":
            return f"{self.name} (table {self.table} at TAP service {self.source})"
        return f"{self.name} (file {self.source})"

    def to_dict(self) -> dict:
        """The catalogue as plain values (kept with its matches)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Catalogue":
        """The catalogue :meth:`to_dict` gave."""
        return cls(**values)

    def with_options(self, radius_arcsec: float | None = None,
                     columns: dict | None = None) -> "Catalogue":
        """A copy with another radius and more given columns."""
        merged = {**self.columns, **{k: v for k, v in (columns or {}).items() if v}}
        return replace(self, radius_arcsec=radius_arcsec or self.radius_arcsec,
                       columns=merged)


def catalogue_name(text: str) -> str:
    """A valid :attr:`Catalogue.name` made from a table or file name
    (``"J/ApJS/259/38/table1"`` → ``table1``, ``voaltest.hou2016`` → ``hou2016``)."""
    tail = re.split(r"[./\\]", text.strip('"').rstrip("/"))[-1] or "catalogue"
    name = re.sub(r"[^a-z0-9_]", "_", tail.lower())
    return name if name[0].isalpha() else f"c_{name}"


def simbad(radius_arcsec: float | None = None, columns: dict | None = None,
           name: str = "simbad") -> Catalogue:
    """SIMBAD's ``basic`` table on its TAP service.

    ``VO_AL_SIMBAD_TAP`` and ``VO_AL_SIMBAD_TABLE`` point it elsewhere (a
    mirror, or a local test server).
    """
    return Catalogue(name, "tap", os.environ.get("VO_AL_SIMBAD_TAP", SIMBAD_TAP),
                     os.environ.get("VO_AL_SIMBAD_TABLE", "basic"),
                     radius_arcsec or DEFAULT_RADIUS_ARCSEC,
                     {"id": "main_id", "ra": "ra", "dec": "dec", "type": "otype",
                      **(columns or {})})


def tap_catalogue(url: str, table: str, name: str | None = None,
                  radius_arcsec: float | None = None,
                  columns: dict | None = None) -> Catalogue:
    """A table of any TAP service (e.g. a VizieR catalogue)."""
    return Catalogue(name or catalogue_name(table), "tap", url, table,
                     radius_arcsec or DEFAULT_RADIUS_ARCSEC, columns)


def file_catalogue(path, name: str | None = None, radius_arcsec: float | None = None,
                   columns: dict | None = None) -> Catalogue:
    """A local table file (VOTable, FITS, CSV, ECSV) that astropy reads."""
    path = Path(path).expanduser().absolute()
    return Catalogue(name or catalogue_name(path.stem), "file", str(path), "",
                     radius_arcsec or DEFAULT_RADIUS_ARCSEC, columns)


def resolve_columns(fields, given: dict, where: str) -> dict:
    """Which column plays each role.

    Parameters
    ----------
    fields : iterable of (str, str or None)
        The catalogue's ``(column name, UCD)``.
    given : dict
        Role → column name the user gave (wins when present).
    where : str
        The catalogue, for messages.

    Returns
    -------
    dict
        Role → column name; ``type`` is None when the catalogue has none.

    Raises
    ------
    CrossmatchError
        When a given column is missing or a required role is not found.
    """
    fields = list(fields)
    names = {name.lower(): name for name, _ in fields}
    found = {}
    for role, (ucd, usual, required) in ROLES.items():
        if given.get(role):
            if given[role].lower() not in names:
                raise CrossmatchError(f"{where}: no column {given[role]!r} "
                                      f"(it has {', '.join(n for n, _ in fields)})")
            found[role] = names[given[role].lower()]
            continue
        by_ucd = [name for name, u in fields if (u or "").lower() == ucd.lower()]
        found[role] = by_ucd[0] if by_ucd else names.get(usual)
        if found[role] is None and required:
            raise CrossmatchError(
                f"{where}: no column marked {ucd} or named {usual}; give it with "
                f"--{role}-column (it has {', '.join(n for n, _ in fields)})")
    return found
