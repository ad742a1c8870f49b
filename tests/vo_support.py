"""A synthetic survey session for the cross-match tests, the catalogue
rows planted around its candidates (with the counts they imply), and the
local GAVO DaCHS server (``scripts/dachs``) that serves them.

With ``CI`` set a test marked ``dachs`` fails when DaCHS is missing;
otherwise it is skipped (``scripts/dachs install`` installs it).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest

from vo_al.crossmatch import candidate_positions
from vo_al.loop import IterationOptions, run_iteration
from vo_al.session import Session
from vo_al.synth.pools import generate_pools

REPO = Path(__file__).resolve().parents[1]
DACHS_SCRIPT = REPO / "scripts" / "dachs"
DACHS_URL = "http://127.0.0.1:8080"
TAP_URL = f"{DACHS_URL}/tap"
RESOURCE = REPO / "tests" / "dachs" / "voaltest"
ARCSEC = 1 / 3600.0
#: Labelled emission spectra: two pairs of repeated observations and two singles.
N_LABELLED = 6


def require_dachs():
    """Skip (or, with ``CI`` set, fail) unless DaCHS is installed."""
    if shutil.which("dachs"):
        return
    text = "needs GAVO DaCHS (scripts/dachs install)"
    if os.environ.get("CI"):
        pytest.fail(f"{text}; CI is set, so the DaCHS tests must run", pytrace=False)
    pytest.skip(text)


def dachs_available() -> bool:
    try:
        with urllib.request.urlopen(f"{TAP_URL}/availability", timeout=5) as response:
            return b"true" in response.read()
    except OSError:
        return False


@pytest.fixture(scope="session")
def dachs():
    """The TAP URL of the local DaCHS, started for the session if it was not
    running (and then stopped at the end)."""
    require_dachs()
    started = not dachs_available()
    subprocess.run(["bash", str(DACHS_SCRIPT), "start"], check=True)
    yield TAP_URL
    if started:
        subprocess.run(["bash", str(DACHS_SCRIPT), "stop"], check=False)


@dataclass
class Survey:
    """The session and what the test data implies.

    Attributes
    ----------
    directory : Path
        Session directory (copy it before changing it).
    labelled : list of str
        The labelled emission spectra e0..e5: e1 is a repeat of e0 (1.5″
        away), e3 of e2 (2″ away).
    counted : dict
        Interesting class → ids the report counts (labelled, or predicted
        and not labelled).
    basic, hou : list of dict
        Rows of the SIMBAD-like and of the VizieR-like table.
    expected : dict
        Class → the report's ``{"spectra": ..., "objects": ...}`` counts.
    """

    directory: Path
    labelled: list
    counted: dict
    basic: list = field(default_factory=list)
    hou: list = field(default_factory=list)
    expected: dict = field(default_factory=dict)


def _repeat(pool: Path, rows: list, offsets_arcsec: list):
    """Move spectrum rows[2k+1] ``offsets_arcsec[k]`` north of rows[2k]:
    repeated observations of one star."""
    with h5py.File(pool, "r+") as h5:
        ra, dec = h5["ra"][:], h5["dec"][:]
        for (first, second), offset in zip(zip(rows[::2], rows[1::2]), offsets_arcsec):
            ra[second], dec[second] = ra[first], dec[first] + offset * ARCSEC
        h5["ra"][:], h5["dec"][:] = ra, dec


def build_survey(folder: Path) -> Survey:
    """A synthetic survey, one iteration, six emission labels (two repeat pairs)."""
    generate_pools(folder, n_lamost=400, n_ondrejov=150, seed=5, emission_fraction=0.05,
                   workers=1)
    with open(folder / "truth.csv", newline="") as fh:
        emission = [r["id"] for r in csv.DictReader(fh)
                    if r["class"] == "emission" and r["file"].startswith("lamost/")]
    labelled = emission[:N_LABELLED]
    with h5py.File(folder / "pool.h5", "r") as h5:
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in h5["id"][:]]
    _repeat(folder / "pool.h5", [ids.index(i) for i in labelled[:4]], [1.5, 2.0])
    directory = folder / "session"
    options = IterationOptions(max_epochs=1, query_size=5, estimate_size=3)
    with Session.create(directory, folder / "train.h5", folder / "pool.h5", query_size=5,
                        estimate_size=3) as session:
        run_iteration(session, options)
        session.label_many([(i, "emission") for i in labelled], source="cli")
    return Survey(directory, labelled, _counted(directory))


def _counted(directory: Path) -> dict:
    from vo_al.export import candidate_table

    with Session.open(directory) as session:
        table = candidate_table(session)
        names = [session.config.class_names[i] for i in session.config.interesting_indices]
    label, predicted = np.asarray(table["label"]), np.asarray(table["predicted"])
    return {name: sorted(np.asarray(table["id"])[(label == name) | ((label == "") & (
        predicted == name))].astype(str)) for name in names}


def _offset(position, arcsec_north: float, arcsec_east: float = 0.0) -> tuple:
    ra, dec = position
    return (ra + arcsec_east * ARCSEC / np.cos(np.radians(dec)), dec + arcsec_north * ARCSEC)


def plant(survey: Survey) -> Survey:
    """Catalogue rows around the candidates, and the counts they imply.

    - e0, e1 (one object): a SIMBAD Be* 0.5″ south of e0 (2″ from e1);
    - e2, e3 (one object): a Hou star 2.5″ north of e3 (4.5″ from e2);
    - e4: in SIMBAD (Be*, 1″) and in Hou (0.8″);
    - e5: a SIMBAD object 4″ away (outside the 3″ radius): new;
    - the first three predicted-only candidates in SIMBAD (Em*, HAeBe*, Be*),
      the next two in Hou;
    - background rows far from every candidate, and a cluster of 30 SIMBAD
      rows around (0°, −60°) for MAXREC tests.
    """
    with Session.open(survey.directory) as session:
        positions = candidate_positions(session)
    where = {i: (float(r), float(d)) for i, r, d in zip(positions["id"], positions["ra"],
                                                      positions["dec"])}
    e = survey.labelled
    emission = survey.counted["emission"]
    predicted = [i for i in emission if i not in e]
    simbad = [("S e0", "Be*", _offset(where[e[0]], -0.5)),
              ("S e4", "Be*", _offset(where[e[4]], 0.0, 1.0)),
              ("S e5", "Em*", _offset(where[e[5]], 4.0))]
    simbad += [(f"S p{k}", kind, _offset(where[i], 0.3 + 0.3 * k))
               for k, (i, kind) in enumerate(zip(predicted[:3], ("Em*", "HAeBe*", "Be*")))]
    hou = [("H e3", "CEL", _offset(where[e[3]], 2.5)), ("H e4", "CEL", _offset(where[e[4]], 0.8))]
    hou += [(f"H p{k}", "PN", _offset(where[i], -0.7)) for k, i in enumerate(predicted[3:5])]
    rng = np.random.default_rng(11)
    survey.basic = _rows(simbad + _background(rng, 2000, positions, "Star")
                         + [(f"C{k}", "Star", (rng.uniform(0, 1.5) * ARCSEC,
                                               -60 + rng.uniform(-1.5, 1.5) * ARCSEC))
                            for k in range(30)], simbad=True)
    survey.hou = _rows(hou + _background(rng, 1000, positions, "CEL"), simbad=False)
    in_simbad = {e[0], e[1], e[4], *predicted[:3]}
    in_hou = {e[3], e[4], *predicted[3:5]}
    survey.expected = {"emission": _expected(emission, in_simbad, in_hou,
                                             {e[1]: e[0], e[3]: e[2]})}
    for name, ids in survey.counted.items():
        if name != "emission":
            survey.expected[name] = _expected(ids, set(), set(), {})
    return survey


def _background(rng, n: int, positions, kind: str) -> list:
    """``n`` random rows at least 1′ from every candidate."""
    from astropy.coordinates import SkyCoord

    ra, dec = rng.uniform(0, 360, 3 * n), np.degrees(np.arcsin(rng.uniform(-1, 1, 3 * n)))
    candidates = SkyCoord(positions["ra"], positions["dec"], unit="deg")
    _, separation, _ = SkyCoord(ra, dec, unit="deg").match_to_catalog_sky(candidates)
    far = np.flatnonzero(separation.arcmin > 1)[:n]
    return [(f"B{kind}{k}", kind, (ra[k], dec[k])) for k in far]


def _rows(planted: list, simbad: bool) -> list:
    if simbad:
        return [{"oid": k + 1, "main_id": name, "ra": ra, "dec": dec, "otype": kind}
                for k, (name, kind, (ra, dec)) in enumerate(planted)]
    return [{"LAMOST": name, "RAJ2000": ra, "DEJ2000": dec, "Class": kind}
            for name, kind, (ra, dec) in planted]


def _expected(ids, in_simbad: set, in_hou: set, repeat_of: dict) -> dict:
    """The report's counts, from the plan (objects: repeats join their first)."""
    ids = set(ids)
    objects = {i: repeat_of.get(i, i) for i in ids}

    def counts(unit):
        units = set(unit.values())
        simbad = {unit[i] for i in ids & in_simbad}
        hou = {unit[i] for i in ids & in_hou}
        return {"total": len(units), "new": len(units - simbad - hou),
                "known": {"hou2016": len(hou), "simbad": len(simbad)},
                "several": len(simbad & hou)}

    return {"spectra": counts({i: i for i in ids}), "objects": counts(objects)}


def write_resource(survey: Survey, folder: Path) -> Path:
    """The DaCHS resource folder: the committed q.rd and the generated CSVs."""
    resource = folder / RESOURCE.name
    shutil.copytree(RESOURCE, resource)
    for name, rows in (("basic", survey.basic), ("hou2016", survey.hou)):
        with open(resource / f"{name}.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return resource


@pytest.fixture(scope="session")
def vo_survey(tmp_path_factory) -> Survey:
    """The planted survey (read-only: copy its session before changing it)."""
    return plant(build_survey(tmp_path_factory.mktemp("vo-survey")))


@pytest.fixture(scope="session")
def dachs_tables(dachs, vo_survey, tmp_path_factory) -> str:
    """The TAP URL once DaCHS serves ``voaltest.basic`` and ``voaltest.hou2016``
    filled with the planted rows."""
    resource = write_resource(vo_survey, tmp_path_factory.mktemp("dachs-resource"))
    subprocess.run(["bash", str(DACHS_SCRIPT), "import", str(resource)], check=True,
                   capture_output=True)
    return dachs
