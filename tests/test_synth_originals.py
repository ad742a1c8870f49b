"""Originals of a survey written straight to HDF5 (`vo-al synth --pool`, the
demo's route): each row's `synth:` source is read as the file it stands for,
made again, so the viewer's overlay, `vo-al inspect` and the SDM file sent to
SPLAT-VO work without FITS files, and give what the files would give."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from astropy.units import UnitsWarning

from conftest import require_qt
from vo_al.cli import main
from vo_al.pool import PoolReader
from vo_al.records import load_original
from vo_al.samp.bridge import SampBridge
from vo_al.samp.files import PeerFiles
from vo_al.samp.publisher import Publisher
from vo_al.samp.sdm import full_spectrum, write_sdm
from vo_al.samp.tables import TableRegistry
from vo_al.spectra import CorruptFile, UnsupportedFormat, identify_format, read_spectrum
from vo_al.synth import generate_pools, generate_survey, read_truth
from vo_al.synth.lamost_files import lamost_file
from vo_al.workspace import Workspace

SEED, FRACTION = 4, 0.1
#: Every LAMOST layout (a 20-file cycle, two of them gzipped) and both CCD700 ones.
N_LAMOST, N_ONDREJOV = 20, 4
FIELDS = ("id", "format", "medium", "ra", "dec", "designation", "object_name", "instrument",
          "resolving_power", "survey_class", "survey_subclass", "meta")


def pool_sources(path) -> dict[str, str]:
    """id → source of a pool."""
    with PoolReader(path) as pool:
        return {str(i): str(s) for i, s in zip(pool.read("id"), pool.read("source"))}


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """The same survey as FITS files and as pools: (files folder, pools folder)."""
    files = tmp_path_factory.mktemp("files")
    generate_survey(files, N_LAMOST, N_ONDREJOV, seed=SEED, emission_fraction=FRACTION,
                    workers=1)
    pools = tmp_path_factory.mktemp("pools")
    generate_pools(pools, N_LAMOST, N_ONDREJOV, seed=SEED, emission_fraction=FRACTION,
                   workers=1)
    return files, pools


@pytest.fixture(scope="module")
def truth(survey) -> dict[str, dict]:
    """id → truth.csv row of the files."""
    return {row["id"]: row for row in read_truth(survey[0] / "truth.csv")}


@pytest.fixture(scope="module")
def sources(survey) -> dict[str, str]:
    """id → source of both pools."""
    return {**pool_sources(survey[1] / "pool.h5"), **pool_sources(survey[1] / "train.h5")}


def test_a_source_names_the_file_and_the_generators_arguments(truth, sources):
    assert sorted(sources) == sorted(truth)
    for spectrum_id, row in truth.items():
        fraction = f"fraction={FRACTION}&" if row["instrument"] == "lamost" else ""
        assert sources[spectrum_id] == \
            f"synth:{row['file']}?seed={SEED}&{fraction}index={row['index']}"


def test_every_source_reads_as_the_file_it_stands_for(survey, truth, sources):
    assert len({row["layout"] for row in truth.values()}) == 6
    for spectrum_id, source in sources.items():
        path = survey[0] / truth[spectrum_id]["file"]
        made, written = read_spectrum(source), read_spectrum(path)
        for name in ("wavelength", "flux", "ivar", "bad"):
            mine, theirs = getattr(made, name), getattr(written, name)
            assert (mine is None) == (theirs is None), name
            if mine is not None:
                np.testing.assert_array_equal(mine, theirs, err_msg=f"{path.name} {name}")
        assert {f: getattr(made, f) for f in FIELDS} == {f: getattr(written, f) for f in FIELDS}
        assert made.source == source
        assert identify_format(source) == identify_format(path) == made.format


def test_inspect_describes_a_source_as_its_file(survey, truth, sources, capsys):
    for spectrum_id in (next(iter(sources)), list(sources)[-1]):  # a LAMOST and a CCD700 one
        source, path = sources[spectrum_id], survey[0] / truth[spectrum_id]["file"]
        assert main(["inspect", "--json", source]) == 0
        made = json.loads(capsys.readouterr().out)
        assert main(["inspect", "--json", str(path)]) == 0
        written = json.loads(capsys.readouterr().out)
        assert made.pop("source") == source and written.pop("source") == str(path)
        assert made == written and made["id"] == spectrum_id
    assert main(["inspect", source]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == source and lines[1].split() == ["format", "ccd700-sdm"]


def test_a_source_without_the_emission_fraction_is_refused_by_name(sources, capsys):
    lamost, ondrejov = next(iter(sources.values())), list(sources.values())[-1]
    old = lamost.replace(f"&fraction={FRACTION}", "")  # as pools written before it held it
    with pytest.raises(UnsupportedFormat, match="the source lacks fraction .the survey's "
                       "emission fraction: pools written by `vo-al synth --pool` before"):
        read_spectrum(old)
    assert main(["inspect", old]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"vo-al inspect: {old}: cannot regenerate "
                                               "this lamost spectrum: the source lacks fraction")
    assert "fraction" not in ondrejov and read_spectrum(ondrejov).source == ondrejov


@pytest.mark.parametrize("change, error, message", [
    (("index=0", "index=1"), CorruptFile, "these arguments make lamost/spec-.*, not "
     "lamost/spec-.*: the source was edited or written by another version"),
    (("index=0", "index=0&exposure=2"), UnsupportedFormat,
     "unknown parameter exposure in a synthetic lamost source .expected seed, fraction, index"),
    (("index=0", "index=-1"), UnsupportedFormat, "index must be an integer >= 0, not -1"),
    (("index=0", f"index={10**30}"), UnsupportedFormat, "the generator cannot make this file"),
    ((f"fraction={FRACTION}", "fraction=2"), UnsupportedFormat,
     r"emission_fraction must be in \[0, 1\]"),
    (("synth:lamost/", "synth:sdss/"), UnsupportedFormat,
     "not a synthetic spectrum: expected synth:lamost/<file>.seed=…&fraction=…&index=… or "
     "synth:ondrejov/<file>.seed=…&index=…"),
])
def test_a_source_that_names_no_generated_file_is_refused(sources, change, error, message):
    first = next(iter(sources.values()))
    assert "index=0" in first
    with pytest.raises(error, match=message):
        read_spectrum(first.replace(*change))


# ---------------------------------------------------------------- a demo-like session


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A session on a survey made by `vo-al synth --pool`, after one iteration."""
    root = tmp_path_factory.mktemp("demo")
    assert main(["synth", str(root / "survey"), "--lamost", "300", "--ondrejov", "300",
                 "--pool", "--seed", str(SEED), "--emission-fraction", str(FRACTION),
                 "--workers", "1"]) == 0
    session = root / "session"
    assert main(["init", str(session), "--train", str(root / "survey/train.h5"),
                 "--pool", str(root / "survey/pool.h5"), "--query-size", "5",
                 "--estimate-size", "3"]) == 0
    assert main(["iterate", str(session), "--max-epochs", "1"]) == 0
    return root


@pytest.fixture
def session_dir(demo, tmp_path):
    shutil.copytree(demo / "session", tmp_path / "session")
    return tmp_path / "session"


def first_query(workspace):
    queue = workspace.batch()
    return workspace.record(queue, list(queue.kind).index("query"))


def written_file(source: str, truth_rows: list[dict], folder: Path) -> Path:
    """The FITS file of a LAMOST source, written by the generator into ``folder``."""
    row = next(r for r in truth_rows if source.startswith(f"synth:{r['file']}?"))
    made = lamost_file(int(row["seed"]), int(row["index"]), FRACTION)
    path = folder / made.name
    path.write_bytes(made.data)
    return path


def test_workspace_original_is_the_files_original(demo, tmp_path):
    with Workspace.open(demo / "session") as workspace:
        record = first_query(workspace)
        assert record.source.startswith("synth:lamost/")
        original = workspace.original(record.source)
        file = written_file(record.source, read_truth(demo / "survey/truth.csv"), tmp_path)
        from_file = load_original(str(file), workspace.preprocess)
        config = workspace.preprocess
    assert original.path == record.source
    np.testing.assert_array_equal(original.wavelength, from_file.wavelength)
    np.testing.assert_array_equal(original.flux, from_file.flux)
    inside = (original.wavelength >= config.wave_min) & (original.wavelength <= config.wave_max)
    assert original.wavelength.size > 3800 and inside.sum() > 50  # the whole spectrum
    assert np.nanmin(original.flux[inside]) == -1.0 and np.nanmax(original.flux[inside]) == 1.0


@pytest.fixture
def publisher(session_dir):
    """The SAMP publisher of a synthetic session, with a bridge never started
    (writing the tables and SDM files it hands to peers needs no hub)."""
    with Workspace.open(session_dir) as workspace:
        files = PeerFiles(session_dir)
        tables = TableRegistry(files)
        publisher = Publisher(workspace.session, SampBridge(lambda item: None), files, tables,
                              access_limit=3)
        yield publisher, workspace
        publisher.close()
        tables.close()
        files.close()


def read_votable(url: str) -> Table:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        return Table.read(url.removeprefix("file://"), format="votable")


def test_a_synthetic_spectrum_goes_to_splat_as_an_sdm_votable(publisher, tmp_path):
    """The SDM file the publisher sends for a pool spectrum ("full"), on a synthetic one."""
    _, workspace = publisher
    record = first_query(workspace)
    spectrum = read_spectrum(record.source)
    sdm = full_spectrum(spectrum)
    write_sdm(sdm, tmp_path / "sdm.vot", "votable")
    table = read_votable(str(tmp_path / "sdm.vot"))
    assert table.colnames == ["spectral", "flux", "error"]
    np.testing.assert_array_equal(table["spectral"], spectrum.wavelength)
    np.testing.assert_array_equal(table["flux"], spectrum.flux)
    assert np.isfinite(table["error"]).sum() > 3000
    assert sdm.name == spectrum.designation


def test_the_candidate_table_links_sdm_files_of_synthetic_spectra(publisher):
    publisher, _ = publisher
    sent = publisher.prepare_table("candidates")
    table = read_votable(sent.url)
    urls = [str(u) for u in table["access_url"]]
    assert all(urls[:3]) and not any(urls[3:])  # access_limit=3; none lost to a read error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        sdm = Table.read(urls[0].removeprefix("file://"), format="fits")
    np.testing.assert_array_equal(sdm["spectral"],
                                  read_spectrum(str(table["source"][0])).wavelength)


def test_the_viewer_overlays_the_regenerated_original(qtbot, session_dir, tmp_path):
    require_qt()
    from PyQt5 import QtCore

    from vo_al.gui.main_window import MainWindow
    from vo_al.gui.settings import Preferences

    preferences = Preferences(QtCore.QSettings(str(tmp_path / "settings.ini"),
                                               QtCore.QSettings.IniFormat))
    preferences.show_original = True
    preferences.samp_connect = False
    window = MainWindow(Workspace.open(session_dir), preferences)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.busy() and window.model.rowCount() > 0, timeout=20000)
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.original_note.text().startswith("original:"), timeout=10000)
    source = viewer.record.source
    assert source.startswith("synth:lamost/") and "unavailable" not in viewer.original_note.text()
    np.testing.assert_array_equal(viewer.original_curve.xData, read_spectrum(source).wavelength)
    assert viewer.original_note.toolTip() == source
    file_name = source.removeprefix("synth:lamost/").split("?")[0]
    assert viewer.original_note.text() == f"original: {file_name} (regenerated)"
