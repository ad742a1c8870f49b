"""Cross-matching candidates with catalogues: who is already known.

The candidates (:func:`vo_al.export.candidate_rows`: every spectrum the
latest model predicts interesting and every answered one) are matched with
each catalogue, on a TAP service (:mod:`vo_al.tapmatch`) or in a local
file (astropy's ``search_around_sky``). The nearest catalogue object within
the radius is kept per spectrum, with its type, the separation and the
query time, in ``SESSION/crossmatch/NAME.ecsv``, one file per catalogue,
with the catalogue's definition in its header (so a rerun needs no flags).
Files are replaced atomically after each chunk: a kill or a cancel leaves
the matches of the chunks done, never half a file. A rerun queries only
the candidates not matched before.

Repeated observations of one star are grouped into objects
(:func:`group_objects`); :func:`match_table` gives every matched spectrum
its object and what it is known as.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, search_around_sky
from astropy.io.registry import IORegistryError
from astropy.table import Table, vstack
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .atomic import atomic_path
from .cancel import check_cancel
from .catalogues import Catalogue, CrossmatchError, resolve_columns
from .export import candidate_rows
from .idindex import read_rows
from .session import Session
from .tapmatch import TapCatalogue, TapOptions

__all__ = ["MatchSummary", "MatchStore", "crossmatch", "candidate_positions", "nearest",
           "match_file", "group_objects", "match_table", "OBJECT_RADIUS_ARCSEC"]

#: Spectra closer than this are one object (LAMOST fibres are 3.3″ across).
OBJECT_RADIUS_ARCSEC = 3.0
_FOLDER = "crossmatch"
_SUFFIX = ".ecsv"


@dataclass(frozen=True)
class MatchSummary:
    """What one catalogue's run did.

    Attributes
    ----------
    catalogue : Catalogue
    queried : int
        Candidates matched in this run.
    found : int
        Of them, those with a catalogue object within the radius.
    stored : int
        Spectra now in the catalogue's file.
    known : int
        Of them, those with a match.
    seconds : float
    """

    catalogue: Catalogue
    queried: int
    found: int
    stored: int
    known: int
    seconds: float


class MatchStore:
    """The matches of a session, one ECSV file per catalogue.

    Parameters
    ----------
    directory : path-like
        The session directory.
    """

    def __init__(self, directory):
        self.folder = Path(directory) / _FOLDER

    def path(self, name: str) -> Path:
        """The file of catalogue ``name``."""
        return self.folder / f"{name}{_SUFFIX}"

    def names(self) -> list[str]:
        """Catalogues matched so far, by name."""
        return sorted(p.stem for p in self.folder.glob(f"*{_SUFFIX}"))

    def catalogue(self, name: str) -> Catalogue:
        """The stored definition of catalogue ``name``.

        Raises
        ------
        CrossmatchError
            When the session has no matches with it.
        """
        return _definition(self.read(name), self.path(name))

    def catalogues(self) -> list[Catalogue]:
        """Every catalogue matched so far."""
        return [self.catalogue(name) for name in self.names()]

    def read(self, name: str) -> Table:
        """The stored matches of catalogue ``name`` (:func:`nearest`'s columns
        plus ``id``, ``ra``, ``dec``, ``query_time``)."""
        path = self.path(name)
        if not path.is_file():
            known = ", ".join(self.names()) or "none yet"
            raise CrossmatchError(f"no matches with a catalogue named {name!r} in "
                                  f"{self.folder.parent} (matched: {known})")
        try:
            table = Table.read(path, format="ascii.ecsv")
        except (ValueError, OSError) as exc:
            raise CrossmatchError(f"{path}: not a vo-al match file ({exc}); remove it and "
                                  f"match that catalogue again") from exc
        _definition(table, path)
        for column in ("id", "match_id", "match_type", "query_time"):
            if hasattr(table[column], "filled"):
                table[column] = table[column].filled("")
        return table

    def write(self, catalogue: Catalogue, columns: dict, table: Table):
        """Replace the matches of ``catalogue`` atomically."""
        self.folder.mkdir(exist_ok=True)
        table.meta.update(catalogue=catalogue.to_dict(), columns=columns,
                          description=f"vo-al matches with {catalogue.where}")
        with atomic_path(self.path(catalogue.name), suffix=_SUFFIX) as temporary:
            table.write(temporary, format="ascii.ecsv", overwrite=True)


def _definition(table: Table, path) -> Catalogue:
    """The catalogue a match file says it holds."""
    try:
        return Catalogue.from_dict(table.meta["catalogue"])
    except (KeyError, TypeError) as exc:
        raise CrossmatchError(f"{path}: not a vo-al match file (no catalogue definition); "
                              f"remove it and match that catalogue again") from exc


def candidate_positions(session: Session, iteration: int | None = None) -> Table:
    """``id``, ``ra``, ``dec`` of the candidates with a position.

    Parameters
    ----------
    session : Session
    iteration : int, optional
        Whose predictions (default: the latest).
    """
    rows = candidate_rows(session, iteration)
    with session.pool() as pool:
        columns = {name: read_rows(pool, name, rows) if len(rows) else pool.read(name, 0, 0)
                   for name in ("id", "ra", "dec")}
    table = Table(columns)
    table["id"] = table["id"].astype(str)
    return table[np.isfinite(table["ra"]) & np.isfinite(table["dec"])]


def nearest(pairs: Table, count: int) -> Table:
    """The nearest catalogue object of each of ``count`` candidates.

    Parameters
    ----------
    pairs : astropy.table.Table
        ``n`` (candidate 0..count-1), ``match_id``, ``match_type``,
        ``sep_arcsec``: every catalogue row within the radius.
    count : int

    Returns
    -------
    astropy.table.Table
        One row per candidate: ``match_id`` and ``match_type`` (empty when
        none), ``sep_arcsec`` (NaN when none), ``n_matches``.
    """
    n = np.asarray(pairs["n"], np.int64)
    order = np.lexsort((np.asarray(pairs["sep_arcsec"]), n))
    first = order[np.r_[True, n[order][1:] != n[order][:-1]]] if len(order) else order
    match_id = np.full(count, "", dtype=object)
    match_type = np.full(count, "", dtype=object)
    sep = np.full(count, np.nan)
    match_id[n[first]] = np.asarray(pairs["match_id"])[first]
    match_type[n[first]] = np.asarray(pairs["match_type"])[first]
    sep[n[first]] = np.asarray(pairs["sep_arcsec"])[first]
    return Table({"match_id": match_id.astype(str), "match_type": match_type.astype(str),
                  "sep_arcsec": sep, "n_matches": np.bincount(n, minlength=count)})


def _sky(ra, dec) -> SkyCoord:
    """Positions from numeric (degrees, or their unit) or sexagesimal columns."""
    if np.asarray(ra).dtype.kind in "US":
        return SkyCoord(np.asarray(ra).astype(str), np.asarray(dec).astype(str),
                        unit=(u.hourangle, u.deg))
    unit_ra = getattr(ra, "unit", None) or u.deg
    unit_dec = getattr(dec, "unit", None) or u.deg
    return SkyCoord(np.asarray(ra, np.float64) * u.Unit(unit_ra),
                    np.asarray(dec, np.float64) * u.Unit(unit_dec))


def _read_file(catalogue: Catalogue) -> Table:
    try:
        return Table.read(catalogue.source)
    except (OSError, ValueError, IORegistryError) as exc:
        raise CrossmatchError(f"{catalogue.where}: cannot read it as a table: {exc}") from exc


def match_file(catalogue: Catalogue, ra, dec, table: Table | None = None) -> tuple[dict, Table]:
    """Match positions with a local catalogue file (astropy).

    Parameters
    ----------
    catalogue : Catalogue
        Of kind ``file``.
    ra, dec : array of float
        Candidate positions, ICRS degrees.
    table : astropy.table.Table, optional
        The catalogue's rows, when already read.

    Returns
    -------
    (dict, astropy.table.Table)
        The columns used (role → name) and every pair within the radius
        (as :meth:`vo_al.tapmatch.TapCatalogue.match` gives them).
    """
    table = _read_file(catalogue) if table is None else table
    fields = [(name, table[name].meta.get("ucd")) for name in table.colnames]
    columns = resolve_columns(fields, catalogue.columns, catalogue.where)
    keep = ~(_masked(table[columns["ra"]]) | _masked(table[columns["dec"]]))
    table = table[keep]
    try:
        objects = _sky(table[columns["ra"]], table[columns["dec"]])
    except (ValueError, u.UnitsError) as exc:
        raise CrossmatchError(f"{catalogue.where}: positions in {columns['ra']}, "
                              f"{columns['dec']} are not degrees or sexagesimal: {exc}") from exc
    candidates = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)
    if len(candidates) == 0 or len(objects) == 0:
        found, matched, separation = np.empty(0, int), np.empty(0, int), np.empty(0) * u.deg
    else:
        found, matched, separation, _ = search_around_sky(
            candidates, objects, catalogue.radius_arcsec * u.arcsec)
    kinds = (_strings(table[columns["type"]])[matched] if columns.get("type")
             else np.full(len(found), ""))
    return columns, Table({"n": found.astype(np.int64),
                           "match_id": _strings(table[columns["id"]])[matched],
                           "match_type": kinds, "sep_arcsec": separation.to_value(u.arcsec)})


def _masked(column) -> np.ndarray:
    return np.asarray(getattr(column, "mask", np.zeros(len(column), bool)), bool)


def _strings(column) -> np.ndarray:
    values = column.filled("") if hasattr(column, "filled") else column
    return np.asarray(values).astype(str)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _chunk_rows(todo: Table, start: int, stop: int, pairs: Table) -> Table:
    """Stored rows of candidates ``start:stop`` from their pairs."""
    shifted = pairs.copy(copy_data=False)
    shifted["n"] = np.asarray(pairs["n"], np.int64) - start
    rows = todo[start:stop]
    best = nearest(shifted, stop - start)
    table = Table({"id": rows["id"], "ra": rows["ra"], "dec": rows["dec"]})
    for name in best.colnames:
        table[name] = best[name]
    table["query_time"] = np.full(len(table), _now())
    return table


def _run_one(store: MatchStore, catalogue: Catalogue, candidates: Table, refresh: bool,
             options: TapOptions, progress, cancel) -> MatchSummary:
    started = time.perf_counter()
    kept, todo = _split(_stored_rows(store, catalogue), candidates, refresh)
    parts = [] if kept is None else [kept]
    found = 0

    def report(n, total):
        if progress is not None:
            progress(catalogue.name, n, total)

    report(0, len(todo))
    for start, stop, pairs, columns in _matches(catalogue, todo, options, cancel, report):
        parts.append(_chunk_rows(todo, start, stop, pairs))
        found += int(np.count_nonzero(parts[-1]["n_matches"]))
        table = vstack(parts, metadata_conflicts="silent") if len(parts) > 1 else parts[0]
        parts = [table]
        store.write(catalogue, columns, table)
    if not parts:  # nothing to query and nothing stored: still remember the catalogue
        store.write(catalogue, _columns_of(catalogue, options, cancel), _empty_rows())
        parts = [store.read(catalogue.name)]
    table = parts[0]
    return MatchSummary(catalogue, len(todo), found, len(table),
                        int(np.count_nonzero(table["n_matches"])),
                        time.perf_counter() - started)


def _stored_rows(store: MatchStore, catalogue: Catalogue) -> Table | None:
    """The stored rows still valid for ``catalogue`` (None: start afresh)."""
    if not store.path(catalogue.name).is_file():
        return None
    stored = store.read(catalogue.name)
    if _definition(stored, store.path(catalogue.name)) != catalogue:
        return None  # another radius, service or column: the old matches do not apply
    return stored


def _split(stored: Table | None, candidates: Table, refresh: bool):
    """``(kept, todo)``: stored rows to keep (or None) and candidates to match."""
    if stored is None:
        return None, candidates
    if refresh:  # every candidate again; rows of former candidates stay
        current = set(candidates["id"])
        return stored[[i not in current for i in stored["id"]]], candidates
    done = set(stored["id"])
    return stored, candidates[[i not in done for i in candidates["id"]]]


def _matches(catalogue, todo, options, cancel, report):
    """``(start, stop, pairs, columns)`` chunk by chunk."""
    if catalogue.kind == "tap":
        with TapCatalogue(catalogue, options, cancel) as service:
            if len(todo):
                for start, stop, pairs in service.match(todo["ra"], todo["dec"], report):
                    yield start, stop, pairs, service.columns
        return
    if len(todo):
        check_cancel(cancel, f"matching {catalogue.name}")
        columns, pairs = match_file(catalogue, todo["ra"], todo["dec"])
        yield 0, len(todo), pairs, columns
        report(len(todo), len(todo))


def _columns_of(catalogue, options, cancel) -> dict:
    """The catalogue's columns, checked without matching anything."""
    if catalogue.kind == "tap":
        with TapCatalogue(catalogue, options, cancel) as service:
            return service.columns
    table = _read_file(catalogue)
    fields = [(name, table[name].meta.get("ucd")) for name in table.colnames]
    return resolve_columns(fields, catalogue.columns, catalogue.where)


def _empty_rows() -> Table:
    return Table({"id": np.array([], str), "ra": np.array([]), "dec": np.array([]),
                  "match_id": np.array([], str), "match_type": np.array([], str),
                  "sep_arcsec": np.array([]), "n_matches": np.array([], np.int64),
                  "query_time": np.array([], str)})


def crossmatch(session: Session, catalogues=None, *, refresh: bool = False,
               iteration: int | None = None, options: TapOptions = TapOptions(),
               progress=None, cancel=None) -> list[MatchSummary]:
    """Match the session's candidates with catalogues and store the matches.

    Parameters
    ----------
    session : Session
    catalogues : list of Catalogue, optional
        Default: every catalogue matched before. A catalogue whose name was
        matched before with another definition (radius, service, columns)
        replaces it, and all candidates are matched again.
    refresh : bool
        Match every candidate again, not only the new ones.
    iteration : int, optional
        Whose predictions make the candidates (default: the latest).
    options : TapOptions
        Chunks, retries and timeouts of TAP services.
    progress : callable, optional
        ``progress(name, done, total)``.
    cancel : threading.Event-like, optional

    Returns
    -------
    list of MatchSummary

    Raises
    ------
    CrossmatchError
        When a catalogue cannot be matched (the matches stored so far stay).
    vo_al.cancel.Cancelled
    """
    store = MatchStore(session.directory)
    catalogues = store.catalogues() if catalogues is None else list(catalogues)
    if not catalogues:
        raise CrossmatchError("no catalogue to match: give one (e.g. --simbad, --tap URL "
                              "--table TABLE, --file PATH)")
    candidates = candidate_positions(session, iteration)
    return [_run_one(store, catalogue, candidates, refresh, options, progress, cancel)
            for catalogue in catalogues]


def group_objects(ids, ra, dec, radius_arcsec: float = OBJECT_RADIUS_ARCSEC) -> np.ndarray:
    """One object id per spectrum: spectra linked by separations below the
    radius (friends of friends) are one object, named after its smallest
    spectrum id.

    Parameters
    ----------
    ids : sequence of str
    ra, dec : array of float
        ICRS degrees.
    radius_arcsec : float

    Returns
    -------
    ndarray of str
    """
    ids = np.asarray(ids).astype(str)
    if len(ids) == 0:
        return ids
    coords = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)
    i, j, _, _ = search_around_sky(coords, coords, radius_arcsec * u.arcsec)
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(len(ids), len(ids)))
    _, labels = connected_components(graph, directed=False)
    order = np.lexsort((ids, labels))
    first = np.r_[True, labels[order][1:] != labels[order][:-1]]
    names = np.empty(labels.max() + 1, dtype=ids.dtype)
    names[labels[order][first]] = ids[order][first]
    return names[labels]


def match_table(directory, radius_arcsec: float = OBJECT_RADIUS_ARCSEC) -> Table:
    """Every matched spectrum with its object and its matches.

    Parameters
    ----------
    directory : path-like
        The session directory.
    radius_arcsec : float
        Spectra closer than this are one object.

    Returns
    -------
    astropy.table.Table
        ``id``, ``object_id``, ``known`` (matched in some catalogue), then
        per catalogue NAME: ``NAME_id``, ``NAME_type`` (empty: no match, or
        not matched with it) and ``NAME_sep_arcsec`` (NaN); one row per
        spectrum matched with at least one catalogue, sorted by id. The
        catalogue definitions are in ``meta["catalogues"]``.
    """
    store = MatchStore(directory)
    tables = {name: store.read(name) for name in store.names()}
    if not tables:
        return Table({"id": np.array([], str), "object_id": np.array([], str),
                      "known": np.array([], bool)}, meta={"catalogues": {}})
    everything = vstack([t["id", "ra", "dec"] for t in tables.values()],
                        metadata_conflicts="silent")
    ids, first = np.unique(np.asarray(everything["id"]).astype(str), return_index=True)
    result = Table({"id": ids, "object_id": group_objects(
        ids, everything["ra"][first], everything["dec"][first], radius_arcsec)})
    known = np.zeros(len(ids), bool)
    for name, table in tables.items():
        where = np.searchsorted(ids, np.asarray(table["id"]).astype(str))
        for suffix, column, empty in (("id", "match_id", ""), ("type", "match_type", ""),
                                      ("sep_arcsec", "sep_arcsec", np.nan)):
            values = np.full(len(ids), empty, dtype=object if empty == "" else np.float64)
            values[where] = np.asarray(table[column])
            result[f"{name}_{suffix}"] = values.astype(str) if empty == "" else values
        known |= result[f"{name}_id"] != ""
    result.add_column(known, name="known", index=2)
    result.meta["catalogues"] = {name: t.meta["catalogue"] for name, t in tables.items()}
    return result
