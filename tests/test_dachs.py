"""Cross-matching through TAP against a real VO server: GAVO DaCHS on this
machine (``scripts/dachs``), serving a SIMBAD-like ``basic`` table and a
VizieR-like catalogue filled with rows planted around a synthetic
session's candidates (tests/vo_support.py), and the failures a public
service can give: an error document, HTTP 500, a truncated VOTable, a
port nobody listens on, MAXREC overflow, a cancel in the middle."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import urllib.request
from contextlib import contextmanager

import numpy as np
import pytest
from astropy.table import Table

from test_crossmatch import write_catalogues
from vo_al.cancel import Cancelled
from vo_al.catalogues import CrossmatchError, file_catalogue, tap_catalogue
from vo_al.cli import main
from vo_al.crossmatch import MatchStore, match_file
from vo_al.tapmatch import TapCatalogue, TapOptions
from vo_al.workspace import Workspace

pytestmark = [pytest.mark.dachs]

#: No waiting between tries in tests.
QUICK = TapOptions(backoff_s=0.01, timeout_s=60)


@pytest.fixture
def session_dir(vo_survey, tmp_path):
    shutil.copytree(vo_survey.directory, tmp_path / "s")
    return tmp_path / "s"


@pytest.fixture
def simbad_env(dachs_tables, monkeypatch):
    """``--simbad`` pointed at the local server."""
    monkeypatch.setenv("VO_AL_SIMBAD_TAP", dachs_tables)
    monkeypatch.setenv("VO_AL_SIMBAD_TABLE", "voaltest.basic")
    return dachs_tables


def test_crossmatch_then_report_give_the_counts_the_planted_rows_imply(
        vo_survey, session_dir, simbad_env, capsys):
    assert main(["crossmatch", str(session_dir), "--simbad"]) == 0
    assert main(["crossmatch", str(session_dir), "--tap", simbad_env, "--table",
                 "voaltest.hou2016"]) == 0  # named hou2016 after its table
    capsys.readouterr()
    assert main(["report", str(session_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    print(f"\nreport: {json.dumps(report['classes'])}")
    for name, expected in vo_survey.expected.items():
        for unit in ("spectra", "objects"):
            got = report["classes"][name][unit]
            assert {k: got[k] for k in expected[unit]} == expected[unit], (name, unit)
    catalogue = MatchStore(session_dir).catalogue("hou2016")
    assert (catalogue.source, catalogue.table) == (simbad_env, "voaltest.hou2016")
    columns = MatchStore(session_dir).read("hou2016").meta["columns"]
    assert columns == {"id": "LAMOST", "ra": "RAJ2000", "dec": "DEJ2000", "type": "Class"}


def test_a_rerun_without_flags_queries_only_new_candidates(vo_survey, session_dir,
                                                           simbad_env, capsys):
    assert main(["crossmatch", str(session_dir), "--simbad"]) == 0
    with Workspace.open(session_dir) as workspace:
        matched = set(MatchStore(session_dir).read("simbad")["id"])
        with workspace.session.pool() as pool:
            extra = next(str(i) for i in pool.read("id", 0, len(pool)) if str(i) not in matched)
        workspace.label(extra, "double-peak", source="cli")
    capsys.readouterr()
    assert main(["crossmatch", str(session_dir), "--json"]) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    assert summary["queried"] == 1 and summary["stored"] == len(matched) + 1


def test_tap_and_the_local_file_match_alike_in_sync_async_and_chunks(
        vo_survey, dachs_tables, tmp_path):
    simbad_file, _ = write_catalogues(vo_survey, tmp_path)
    rng = np.random.default_rng(3)
    rows = Table(rows=vo_survey.basic)[:300]
    ra = np.asarray(rows["ra"]) + rng.uniform(-2, 2, len(rows)) / 3600
    dec = np.asarray(rows["dec"]) + rng.uniform(-2, 2, len(rows)) / 3600
    _, local = match_file(file_catalogue(simbad_file), ra, dec)
    expected = sorted(zip(local["n"], local["match_id"]))
    catalogue = tap_catalogue(dachs_tables, "voaltest.basic", "simbad")
    for options in (TapOptions(mode="sync"), TapOptions(mode="async", chunk_rows=120),
                    TapOptions(chunk_rows=100, mode="sync")):
        with TapCatalogue(catalogue, options) as service:
            chunks = list(service.match(ra, dec))
        pairs = [(n, i) for _, _, t in chunks for n, i in zip(t["n"], t["match_id"])]
        assert sorted(pairs) == expected, options
        assert [(a, b) for a, b, _ in chunks] == [
            (s, min(s + options.chunk_rows, len(ra))) for s in range(0, len(ra),
                                                                      options.chunk_rows)]
    with TapCatalogue(catalogue, QUICK) as service:
        seps = [t["sep_arcsec"] for _, _, t in service.match(ra, dec)]
    tap_sep = np.sort(np.concatenate([np.asarray(t) for t in seps]))
    assert np.allclose(tap_sep, np.sort(local["sep_arcsec"]), atol=1e-3)


def test_far_candidates_give_an_empty_result(dachs_tables):
    with TapCatalogue(tap_catalogue(dachs_tables, "voaltest.basic")) as service:
        pairs = list(service.match([180.0, 181.0], [-89.0, -88.0]))
    assert len(pairs) == 1 and len(pairs[0][2]) == 0


def test_an_overflowing_chunk_is_split_and_one_candidate_over_maxrec_is_an_error(
        vo_survey, dachs_tables):
    catalogue = tap_catalogue(dachs_tables, "voaltest.basic", "simbad")
    singles = Table(rows=vo_survey.basic)[10:22]
    small = TapOptions(maxrec=5, chunk_rows=12, backoff_s=0.01)
    with TapCatalogue(catalogue, small) as service:
        (_, _, pairs), = service.match(singles["ra"], singles["dec"])
        assert sorted(pairs["match_id"]) == sorted(singles["main_id"])
        with pytest.raises(CrossmatchError, match=r"voaltest.basic.*more than 5 rows"):
            list(service.match([0.0002], [-60.0]))  # the 30-row cluster


def test_an_error_document_names_the_service_and_is_not_retried(dachs_tables):
    catalogue = tap_catalogue(dachs_tables, "voaltest.nosuchtable", "nosuch")
    with TapCatalogue(catalogue, QUICK) as service, pytest.raises(CrossmatchError) as error:
        list(service.match([1.0], [2.0]))
    text = str(error.value)
    assert dachs_tables in text and "voaltest.nosuchtable" in text
    assert "answered with an error" in text and "tries" not in text


def test_a_port_nobody_listens_on_is_retried_then_named(unused_port):
    url = f"http://127.0.0.1:{unused_port}/tap"
    with TapCatalogue(tap_catalogue(url, "basic"), QUICK) as service:
        with pytest.raises(CrossmatchError, match=rf"{url}.*failed after 4 tries"):
            list(service.match([1.0], [2.0]))


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Breaker(http.server.BaseHTTPRequestHandler):
    """Forwards to DaCHS, but answers HTTP 500, or 503 to the first upload,
    or cuts the VOTable in half."""

    def do_GET(self):
        self._forward(None)

    def do_POST(self):
        self._forward(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def _forward(self, body):
        self.server.requests += 1
        if self.server.mode == "500":
            self.send_error(500, "database gone")
            return
        if self.server.mode == "503-once" and b"UPLOAD" in (body or b""):
            self.server.mode = "pass"
            self.send_error(503, "busy, come back later")
            return
        request = urllib.request.Request(self.server.target + self.path, data=body,
                                         method=self.command)
        if self.headers.get("Content-Type"):
            request.add_header("Content-Type", self.headers["Content-Type"])
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
            kind = response.headers.get("Content-Type", "text/xml")
        payload = payload[:len(payload) // 2] if self.server.mode == "truncate" else payload
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@contextmanager
def breaker(target: str, mode: str):
    """A local HTTP server in front of DaCHS that breaks its answers."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Breaker)
    server.target, server.mode, server.requests = target.rsplit("/tap", 1)[0], mode, 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}/tap"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode, reason", [("500", "HTTP 500"),
                                          ("truncate", "not a readable VOTable")])
def test_a_broken_answer_is_retried_then_named_and_stored_matches_stay(
        dachs_tables, session_dir, mode, reason):
    catalogue = tap_catalogue(dachs_tables, "voaltest.basic", "simbad")
    with Workspace.open(session_dir) as workspace:
        workspace.crossmatch([catalogue], options=QUICK)
    before = MatchStore(session_dir).path("simbad").read_bytes()
    with breaker(dachs_tables, mode) as (server, url), Workspace.open(session_dir) as workspace:
        with pytest.raises(CrossmatchError, match=rf"{url}.*after 4 tries: {reason}"):
            workspace.crossmatch([tap_catalogue(url, "voaltest.basic", "simbad")],
                                 refresh=True, options=QUICK)
        assert server.requests == QUICK.tries
    assert MatchStore(session_dir).path("simbad").read_bytes() == before


def test_a_transient_failure_of_an_upload_is_retried_with_the_whole_upload(
        dachs_tables, session_dir):
    with Workspace.open(session_dir) as workspace:
        (direct,) = workspace.crossmatch([tap_catalogue(dachs_tables, "voaltest.basic",
                                                        "simbad")], options=QUICK)
        expected = MatchStore(session_dir).read("simbad")
        with breaker(dachs_tables, "503-once") as (server, url):
            (retried,) = workspace.crossmatch([tap_catalogue(url, "voaltest.basic", "simbad")],
                                              options=QUICK)
    got = MatchStore(session_dir).read("simbad")
    assert server.mode == "pass" and retried.queried == direct.queried
    assert list(got["match_id"]) == list(expected["match_id"])


def test_a_cancel_keeps_the_chunks_done_and_nothing_half_written(dachs_tables, session_dir):
    cancel = threading.Event()

    def progress(name, done, total):
        if done:
            cancel.set()  # after the first chunk

    catalogue = tap_catalogue(dachs_tables, "voaltest.basic", "simbad")
    with Workspace.open(session_dir) as workspace:
        with pytest.raises(Cancelled):
            workspace.crossmatch([catalogue], options=TapOptions(chunk_rows=10, mode="sync"),
                                 progress=progress, cancel=cancel)
        assert len(MatchStore(session_dir).read("simbad")) == 10
        assert not list((session_dir / "crossmatch").glob(".*"))
        (rest,) = workspace.crossmatch()  # a rerun goes on where it stopped
    assert rest.queried == rest.stored - 10
