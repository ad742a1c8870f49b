"""Fetching spectra from an SSA archive, against a real VO server: GAVO
DaCHS on this machine serving synthetic spectra in the Ondřejov CCD700
archive's SDM layout (tests/dachs/voalssa, tests/ssa_support.py) — some as
FITS files, some through DataLink, one as an HTML page, one as a FITS file
without a spectrum, one without an access URL."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from ssa_support import SSA_URL, import_archive, write_archive
from vo_al.cancel import Cancelled
from vo_al.cli import main
from vo_al.fetch import MANIFEST_NAME, fetch, fetch_service, file_stem, read_manifest
from vo_al.pool import PoolReader
from vo_al.spectra import read_spectrum
from vo_al.ssa import FetchError, FetchOptions, SsaRecord

pytestmark = [pytest.mark.dachs]

#: No waiting between tries in tests.
QUICK = FetchOptions(workers=4, backoff_s=0.01, timeout_s=60)
COUNTS = {"fits": 30, "dl": 12, "junk": 1, "nonspec": 1, "noaccess": 1}


@pytest.fixture(scope="module")
def archive(dachs, tmp_path_factory):
    """The synthetic archive, imported into the local DaCHS."""
    archive = write_archive(tmp_path_factory.mktemp("ssa"), COUNTS, seed=7, twins=1)
    import_archive(archive)
    return archive


def expected_file(spectrum) -> str:
    return f"asu.cas.cz_stel_ccd700_{spectrum.name}.fits"


def spectra_in(folder) -> dict:
    """File name → bytes of the spectra in a fetch folder."""
    return {p.name: p.read_bytes() for p in folder.glob("*.fits*")}


def everything_in(folder) -> dict:
    """Every file of a folder (hidden ones too) → its bytes."""
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_fetch_all_gives_every_readable_spectrum_named_by_its_did(archive, tmp_path, capsys):
    out = tmp_path / "all"
    assert main(["fetch", SSA_URL, "--all", "--out", str(out)]) == 0
    files = spectra_in(out)
    assert sorted(files) == sorted(expected_file(s) for s in archive.readable)
    for spectrum in archive.readable:  # the archive's own files, DataLink ones included
        source = archive.resource / "data" / spectrum.route / f"{spectrum.name}.fits"
        assert files[expected_file(spectrum)] == source.read_bytes()
        assert read_spectrum(out / expected_file(spectrum)).id == spectrum.name
    text = capsys.readouterr().out
    assert f"{len(archive.readable)} spectrum files for {len(archive.spectra)} records" in text
    assert f"{COUNTS['dl'] - 1} through DataLink" in text


def test_datalink_records_end_as_the_fits_files_their_this_link_names(archive, tmp_path):
    report = fetch_service(SSA_URL, tmp_path / "f", options=QUICK)
    rows = {r["did"]: r for r in read_manifest(tmp_path / "f") if r["status"] == "ok"}
    through_datalink = [s for s in archive.by_route("dl") if rows[s.did]["format"].endswith(
        "content=datalink")]
    assert len(through_datalink) == report.via_datalink == COUNTS["dl"] - 1
    for spectrum in through_datalink:
        with fits.open(tmp_path / "f" / rows[spectrum.did]["file"]) as hdul:
            assert hdul[1].header["DS_IDPUB"] == spectrum.did
            assert hdul[1].columns.names == ["spectral", "flux"]


def test_records_that_give_no_spectrum_are_reported_and_kept_out(archive, tmp_path, capsys):
    out = tmp_path / "f"
    assert main(["fetch", SSA_URL, "--all", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rows = {r["did"]: r for r in read_manifest(out)}
    (junk,), (nonspec,), (noaccess,) = (archive.by_route(r) for r in ("junk", "nonspec",
                                                                      "noaccess"))
    assert rows[junk.did]["status"] == "refused" and "not FITS" in rows[junk.did]["reason"]
    assert rows[nonspec.did]["status"] == "refused"
    assert "no reader recognises" in rows[nonspec.did]["reason"]
    assert rows[noaccess.did]["status"] == "no-access-url"
    assert rows[noaccess.did]["access_url"] == ""
    for spectrum in (junk, nonspec, noaccess):
        assert rows[spectrum.did]["file"] == ""
        assert not list(out.glob(f"*{spectrum.name}*"))
        assert f"{spectrum.did}: " in text
    assert "No file for 2 refused, 0 failed, 1 no access URL" in text
    assert not list(out.glob(".*.part"))


def test_one_data_set_published_twice_gives_one_file(archive, tmp_path):
    fetch_service(SSA_URL, tmp_path / "f", options=QUICK)
    twin = archive.by_route("dl")[0]
    rows = [r for r in read_manifest(tmp_path / "f") if r["did"] == twin.did]
    assert sorted(r["status"] for r in rows) == ["duplicate", "ok"]
    assert {r["file"] for r in rows} == {expected_file(twin)}
    assert next(r for r in rows if r["status"] == "ok")["format"] == "application/fits"


def test_fetch_by_position_and_by_a_table_of_positions(archive, tmp_path):
    target = archive.by_route("dl")[3]
    assert main(["fetch", SSA_URL, "--pos", str(target.ra), str(target.dec), "--radius",
                 "0.001", "--out", str(tmp_path / "one")]) == 0
    assert sorted(spectra_in(tmp_path / "one")) == [expected_file(target)]
    chosen = [archive.by_route("fits")[5], archive.by_route("dl")[2], archive.by_route("junk")[0]]
    Table({"name": [s.name for s in chosen], "RA": [s.ra for s in chosen],
           "DEC": [s.dec for s in chosen]}).write(tmp_path / "targets.csv")
    assert main(["fetch", SSA_URL, "--positions", str(tmp_path / "targets.csv"), "--radius",
                 "0.001", "--out", str(tmp_path / "some")]) == 0
    assert sorted(spectra_in(tmp_path / "some")) == sorted(expected_file(s) for s in chosen[:2])
    assert {r["did"] for r in read_manifest(tmp_path / "some")} == {s.did for s in chosen}


def test_a_rerun_fetches_nothing_new(archive, tmp_path):
    first = fetch_service(SSA_URL, tmp_path / "f", options=QUICK)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "f").iterdir()
              if p.name != MANIFEST_NAME}
    manifest = (tmp_path / "f" / MANIFEST_NAME).read_bytes()
    again = fetch_service(SSA_URL, tmp_path / "f", options=QUICK)
    assert first.fetched == first.files == len(archive.readable)
    assert (again.fetched, again.present, again.files) == (0, first.files, first.files)
    assert [r for r, _ in again.refused] == [r for r, _ in first.refused]
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / "f").iterdir()
             if p.name != MANIFEST_NAME}
    assert after == before
    assert (tmp_path / "f" / MANIFEST_NAME).read_bytes() == manifest


def test_a_fetch_killed_midway_then_run_again_ends_as_an_uninterrupted_one(archive, tmp_path):
    whole = tmp_path / "whole"
    assert main(["fetch", SSA_URL, "--all", "--out", str(whole)]) == 0
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "vo_al.cli", "fetch", SSA_URL, "--all", "--out",
               str(killed), "--workers", "1"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list(killed.glob("*.fits"))) < 2 and child.poll() is None:
            assert time.monotonic() < deadline, "the fetch never started"
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the fetch ended before it was killed"
    cut = spectra_in(killed)
    assert 2 <= len(cut) < len(archive.readable)
    assert all(cut[name] == data for name, data in spectra_in(whole).items() if name in cut)
    assert main(["fetch", SSA_URL, "--all", "--out", str(killed)]) == 0
    assert everything_in(killed) == everything_in(whole)


def test_a_cancel_keeps_the_files_done_and_a_rerun_completes(archive, tmp_path):
    cancel = threading.Event()

    def progress(done, total):
        if done >= 10:
            cancel.set()

    options = FetchOptions(workers=2, backoff_s=0.01)
    with pytest.raises(Cancelled):
        fetch_service(SSA_URL, tmp_path / "c", options=options, progress=progress,
                      cancel=cancel)
    done = spectra_in(tmp_path / "c")
    assert 0 < len(done) < len(archive.readable)
    assert all(read_spectrum(tmp_path / "c" / name) for name in done)
    listed = {r["file"] for r in read_manifest(tmp_path / "c") if r["status"] == "ok"}
    assert listed <= set(done) and not list((tmp_path / "c").glob(".*.part"))
    report = fetch_service(SSA_URL, tmp_path / "c", options=QUICK)
    assert report.present == len(done) and report.files == len(archive.readable)


def _label_table(archive, tmp_path, kind: str):
    """The truth's classes, keyed by observation id (CSV) or DID (VOTable);
    also rows for a spectrum that gives no file and one the archive lacks."""
    spectra = archive.readable + archive.by_route("junk")
    if kind == "csv":
        path = tmp_path / "labels-in.csv"
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["obs_id", "class"])
            writer.writerows([(s.name, s.label) for s in spectra] + [("nosuch", "emission")])
        return path
    path = tmp_path / "labels-in.vot"
    Table({"ssa_pubDID": [s.did for s in spectra] + ["ivo://x/nosuch"],
           "label": [s.label for s in spectra] + ["emission"]}).write(path, format="votable")
    return path


@pytest.mark.parametrize("kind", ["csv", "votable"])
def test_labels_from_a_table_give_a_labelled_training_pool(archive, tmp_path, capsys, kind):
    out = tmp_path / "train"
    table = _label_table(archive, tmp_path, kind)
    assert main(["fetch", SSA_URL, "--all", "--out", str(out), "--labels-from", str(table)]) == 0
    assert "2 table rows named no fetched file" in capsys.readouterr().out
    assert main(["ingest", str(out), "--labels", str(out / "labels.csv"), "--out",
                 str(tmp_path / "train.h5"), "--workers", "1"]) == 0
    with PoolReader(tmp_path / "train.h5") as pool:
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in pool.read("id")]
        names = pool.class_names
        labels = [names[c] for c in pool.read("label")]
    truth = {s.name: s.label for s in archive.readable}
    assert sorted(ids) == sorted(truth)
    assert dict(zip(ids, labels)) == truth
    assert len(set(truth.values())) > 1  # more than one class to tell apart


def test_a_download_that_fails_is_listed_and_tried_again_by_a_rerun(archive, tmp_path):
    missing = SsaRecord("ivo://asu.cas.cz/stel/ccd700/gone", "gone", "HD 1", 10.0, 20.0,
                        "application/fits", "http://127.0.0.1:8080/getproduct/voalssa/gone.fits")
    present = archive.by_route("fits")[0]
    url = f"http://127.0.0.1:8080/getproduct/voalssa/data/fits/{present.name}.fits"
    good = SsaRecord(present.did, "", "", present.ra, present.dec, "application/fits", url)
    report = fetch([missing, good], tmp_path / "f", options=QUICK)
    assert report.files == 1 and len(report.failed) == 1
    assert report.failed[0][0] == missing.did and "HTTP 404" in report.failed[0][1]
    rows = {r["did"]: r for r in read_manifest(tmp_path / "f")}
    assert rows[missing.did]["status"] == "failed" and rows[good.did]["status"] == "ok"
    again = fetch([missing, good], tmp_path / "f", options=QUICK)
    assert (again.present, again.fetched, len(again.failed)) == (1, 0, 1)


def test_a_service_that_is_not_ssa_is_one_line_and_exit_2(dachs, tmp_path, capsys):
    tap = dachs  # DaCHS's TAP service: a web page for an SSA query
    assert main(["fetch", tap, "--all", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and tap in err and "not a VOTable" in err
    assert not (tmp_path / "f").exists()


def test_a_port_nobody_listens_on_is_tried_again_then_named(tmp_path, unused_port):
    url = f"http://127.0.0.1:{unused_port}/ssa/ssap.xml"
    with pytest.raises(FetchError, match=rf"^SSA service {url}: the query failed after 4 "
                                         rf"tries: no answer \(cannot connect\)$"):
        fetch_service(url, tmp_path / "f", options=QUICK)
    assert not (tmp_path / "f").exists()


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("name,colour\na,red\n")
    for argv, said in (
            (["--all", "--labels-from", str(tmp_path / "labels.csv")], "no record column"),
            (["--all", "--workers", "0"], "--workers at least 1"),
            (["--positions", str(tmp_path / "none.csv")], "cannot read it as a table")):
        assert main(["fetch", SSA_URL, *argv, "--out", str(tmp_path / "f")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("did, stem", [
    ("ivo://asu.cas.cz/stel/ccd700/a201402030013", "asu.cas.cz_stel_ccd700_a201402030013"),
    ("ivo://org/coll?file_1.fits", None), ("ivo://org/coll?file/1.fits", None)])
def test_file_names_come_from_the_did_and_never_collide(did, stem):
    record = SsaRecord(did, "", "", np.nan, np.nan, "application/fits", "http://x/1")
    name = file_stem(record)
    assert name == stem if stem else (name.startswith("org_coll_file") and "/" not in name)
    other = SsaRecord("ivo://org/coll?file_1/fits", "", "", np.nan, np.nan, "", "http://x/2")
    assert file_stem(other) != name
    no_did = SsaRecord("", "", "", np.nan, np.nan, "", "http://x/1")
    assert file_stem(no_did).startswith("url-") and file_stem(no_did) != name
    assert os.sep not in name
