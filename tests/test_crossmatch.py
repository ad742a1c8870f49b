"""Cross-matching with local catalogue files, object grouping, the stored
matches, the discovery report and the export's match columns — no server
needed (tests/test_dachs.py does the same through TAP)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from astropy.table import Table

from vo_al.catalogues import CrossmatchError, file_catalogue, resolve_columns
from vo_al.cli import EXIT_USAGE, main
from vo_al.crossmatch import MatchStore, group_objects, match_file, nearest
from vo_al.workspace import Workspace
from vo_support import require_dachs

ARCSEC = 1 / 3600.0


def write_catalogues(survey, folder):
    """The planted rows as files: SIMBAD-like CSV (usual names, no UCDs) and
    the Hou-like table as a VOTable (UCDs, VizieR's column names)."""
    basic = Table(rows=survey.basic)
    basic.write(folder / "simbad.csv", format="ascii.csv")
    hou = Table(rows=survey.hou)
    for name, ucd in (("LAMOST", "meta.id;meta.main"), ("RAJ2000", "pos.eq.ra;meta.main"),
                      ("DEJ2000", "pos.eq.dec;meta.main"), ("Class", "src.class")):
        hou[name].meta["ucd"] = ucd
    hou.write(folder / "hou2016.vot", format="votable")
    return folder / "simbad.csv", folder / "hou2016.vot"


@pytest.fixture
def session_dir(vo_survey, tmp_path):
    shutil.copytree(vo_survey.directory, tmp_path / "s")
    return tmp_path / "s"


@pytest.fixture
def files(vo_survey, tmp_path):
    return write_catalogues(vo_survey, tmp_path)


# ------------------------------------------------------------------ pieces


def test_spectra_closer_than_the_radius_are_one_object_named_after_its_smallest_id():
    dec = np.array([10.0, 10.0 + 2 * ARCSEC, 10.0 + 4 * ARCSEC, 30.0, 30.0 + 10 * ARCSEC])
    objects = group_objects(["c", "b", "a", "e", "d"], np.full(5, 40.0), dec, 3.0)
    assert list(objects) == ["a", "a", "a", "e", "d"]  # a chain c-b-a is one star


def test_the_nearest_catalogue_object_is_kept_and_the_others_counted():
    pairs = Table({"n": [2, 0, 2], "match_id": ["far", "x", "near"],
                   "match_type": ["Em*", "Be*", "Be*"], "sep_arcsec": [2.5, 1.0, 0.4]})
    best = nearest(pairs, 3)
    assert list(best["match_id"]) == ["x", "", "near"]
    assert list(best["n_matches"]) == [1, 0, 2]
    assert np.isnan(best["sep_arcsec"][1])


def test_columns_come_from_ucds_then_usual_names_then_the_user():
    fields = [("RAJ2000", "pos.eq.ra;meta.main"), ("DEJ2000", "pos.eq.dec;meta.main"),
              ("main_id", None), ("Name", "meta.id;meta.main"), ("otype", None)]
    assert resolve_columns(fields, {}, "cat") == {"id": "Name", "ra": "RAJ2000",
                                                  "dec": "DEJ2000", "type": "otype"}
    assert resolve_columns(fields, {"id": "MAIN_ID"}, "cat")["id"] == "main_id"
    assert resolve_columns(fields[:4], {}, "cat")["type"] is None  # a type is optional
    with pytest.raises(CrossmatchError, match="no column 'nope'"):
        resolve_columns(fields, {"type": "nope"}, "cat")
    with pytest.raises(CrossmatchError, match="--ra-column"):
        resolve_columns([("x", None), ("dec", None), ("main_id", None)], {}, "cat")


def test_a_file_with_sexagesimal_positions_matches_as_well(tmp_path):
    path = tmp_path / "stars.csv"
    Table({"main_id": ["gam Cas"], "ra": ["00 56 42.53"], "dec": ["+60 43 00.3"],
           "otype": ["Be*"]}).write(path, format="ascii.csv")
    columns, pairs = match_file(file_catalogue(path), [14.177208], [60.716750])
    assert columns["id"] == "main_id" and list(pairs["match_id"]) == ["gam Cas"]
    assert pairs["sep_arcsec"][0] < 0.1


def test_a_file_that_is_not_a_table_is_named_in_the_error(tmp_path):
    path = tmp_path / "broken.vot"
    path.write_text("<VOTABLE><RESOURCE>")
    with pytest.raises(CrossmatchError, match="broken.vot"):
        match_file(file_catalogue(path), [1.0], [2.0])


# ------------------------------------------------------------------ sessions


def test_matches_are_stored_remembered_and_only_new_candidates_matched_again(
        vo_survey, session_dir, files):
    simbad, hou = files
    with Workspace.open(session_dir) as workspace:
        first = workspace.crossmatch([file_catalogue(simbad, "simbad"),
                                      file_catalogue(hou, "hou2016")])
        assert [s.queried for s in first] == [s.stored for s in first] > [0, 0]
        assert [c.name for c in workspace.matched_catalogues()] == ["hou2016", "simbad"]
        stored = MatchStore(session_dir).read("simbad")
        assert {"catalogue", "columns"} <= set(stored.meta)
        assert set(stored.colnames) >= {"id", "match_id", "match_type", "sep_arcsec",
                                        "query_time"}
        again = workspace.crossmatch()  # no catalogue given: the remembered ones
        assert [s.queried for s in again] == [0, 0]
        extra = next(i for i in _pool_ids(workspace) if i not in set(stored["id"]))
        workspace.label(extra, "emission", source="cli")
        assert [s.queried for s in workspace.crossmatch()] == [1, 1]
        refreshed = workspace.crossmatch(refresh=True)
        assert refreshed[0].queried == refreshed[0].stored == first[0].stored + 1
        wider = workspace.crossmatch([file_catalogue(simbad, "simbad", radius_arcsec=5.0)])
        assert wider[0].queried == wider[0].stored  # another radius: all matched again
    assert not list((session_dir / "crossmatch").glob(".*"))  # no temporary file left


def _pool_ids(workspace) -> list:
    with workspace.session.pool() as pool:
        return [str(i) for i in pool.read("id", 0, len(pool))]


def test_report_counts_new_and_known_spectra_and_objects_as_planted(
        vo_survey, session_dir, files):
    simbad, hou = files
    with Workspace.open(session_dir) as workspace:
        workspace.crossmatch([file_catalogue(simbad, "simbad"), file_catalogue(hou, "hou2016")])
        report = workspace.report()
    assert report["iteration"] == 1
    for name, expected in vo_survey.expected.items():
        for unit in ("spectra", "objects"):
            got = report["classes"][name][unit]
            assert {k: got[k] for k in expected[unit]} == expected[unit], (name, unit)
    types = report["classes"]["emission"]["objects"]["types"]["simbad"]
    assert types["Be*"] >= 2 and sum(types.values()) == vo_survey.expected[
        "emission"]["objects"]["known"]["simbad"]


def test_export_gains_object_known_and_catalogue_columns_with_ucds(
        vo_survey, session_dir, files, tmp_path):
    simbad, hou = files
    with Workspace.open(session_dir) as workspace:
        workspace.crossmatch([file_catalogue(simbad, "simbad"), file_catalogue(hou, "hou2016")])
        for suffix in (".vot", ".fits", ".csv"):
            workspace.export(tmp_path / f"candidates{suffix}")
    table = Table.read(tmp_path / "candidates.vot")
    e = vo_survey.labelled
    row = {i: k for k, i in enumerate(table["id"])}
    assert table["object_id"][row[e[1]]] == table["object_id"][row[e[0]]] == min(e[0], e[1])
    assert table["known"][row[e[0]]] and not table["known"][row[e[5]]]
    assert table["simbad_type"][row[e[4]]] == "Be*" and table["hou2016_id"][row[e[4]]] == "H e4"
    ucds = {name: table[name].meta.get("ucd") for name in table.colnames}
    assert ucds["simbad_id"] == "meta.id.cross" and ucds["hou2016_type"] == "src.class"
    assert ucds["simbad_sep_arcsec"] == "pos.angDistance"
    assert str(table["simbad_sep_arcsec"].unit) == "arcsec"
    fits = Table.read(tmp_path / "candidates.fits")
    assert fits["known"].dtype == bool and "hou2016_sep_arcsec" in fits.colnames
    assert "object_id" in Table.read(tmp_path / "candidates.csv").colnames


def test_the_cli_matches_a_file_then_reports_as_json(vo_survey, session_dir, files, capsys,
                                                     tmp_path):
    simbad, hou = files
    assert main(["crossmatch", str(session_dir), "--file", str(hou), "--as", "hou2016"]) == 0
    assert main(["crossmatch", str(session_dir), "--file", str(simbad), "--as", "simbad",
                 "--radius", "3"]) == 0
    capsys.readouterr()
    assert main(["report", str(session_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = vo_survey.expected["emission"]["spectra"]
    assert report["classes"]["emission"]["spectra"]["new"] == expected["new"]
    assert main(["report", str(session_dir), "--out", str(tmp_path / "r.txt")]) == 0
    assert "in simbad" in (tmp_path / "r.txt").read_text()


def test_the_cli_says_what_is_missing(session_dir, capsys, tmp_path):
    assert main(["crossmatch", str(session_dir)]) == EXIT_USAGE
    assert "no catalogue to match" in capsys.readouterr().err
    assert main(["crossmatch", str(session_dir), "--file", str(tmp_path / "none.csv")]) \
        == EXIT_USAGE
    assert "none.csv" in capsys.readouterr().err
    assert main(["report", str(session_dir)]) == 0
    assert "run `vo-al crossmatch` first" in capsys.readouterr().out


def test_dachs_tests_fail_under_ci_and_skip_elsewhere_when_dachs_is_missing(monkeypatch,
                                                                           tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dachs on it
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_dachs()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="scripts/dachs install"):
        require_dachs()
