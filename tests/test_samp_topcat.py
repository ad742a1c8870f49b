"""TOPCAT under Xvfb on a JSAMP hub takes vo-al's tables, then our row
highlights and selections on them.

One hub, one X display and one TOPCAT for the module (≈2 s to start, ≈8 s
for a full round trip on this kind of machine; DESIGN.md §3).
"""

from __future__ import annotations

import time
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest
from astropy.table import Table

from test_samp_support import Sender, build_session, peer_environment, require, running
from vo_al.catalogues import file_catalogue
from peers import start_jsamp_hub, start_topcat, start_xvfb, wait_for
from vo_al.workspace import Workspace

pytestmark = [pytest.mark.jsamp, pytest.mark.topcat]

#: Generous: TOPCAT is a JVM GUI and the test machine may be loaded.
START_S = 120


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    require("jsamp", "topcat", "xvfb")
    with peer_environment(tmp_path_factory.mktemp("topcat")) as peers:
        started = time.perf_counter()
        hub = start_jsamp_hub(peers)
        xvfb, display = start_xvfb(peers)
        topcat = start_topcat(peers, display)
        sender = Sender("watcher")
        try:
            peers.topcat_id = sender.id_of("topcat", START_S)
            wait_for(lambda: "table.load.votable" in sender.client.get_subscriptions(
                peers.topcat_id), START_S, "TOPCAT's subscriptions")
            print(f"\nhub, Xvfb and TOPCAT up in {time.perf_counter() - started:.1f} s")
            yield peers
        finally:
            sender.close()
            topcat.stop()
            xvfb.stop()
            hub.stop()


@pytest.fixture(scope="module")
def session_dir(real_data, manifest, tmp_path_factory):
    return build_session(real_data, manifest, tmp_path_factory.mktemp("topcat-session"))


@pytest.fixture(scope="module")
def vo_al(peers, session_dir):
    with running(session_dir) as (runner, lines):
        assert runner.link.bridge.wait_connected(30), lines
        yield runner


def _ok_once_loaded(send, what: str):
    """TOPCAT answers table.load before its table list has the table: retry until ok."""
    def attempt():
        responses = [pending.wait(30) for pending in send()]
        statuses = {r["samp.status"] for answer in responses for r in answer.values()}
        return statuses == {"samp.ok"}

    return wait_for(attempt, 30, what, interval=0.2)


def test_topcat_takes_the_candidate_table_then_our_highlight_and_selection(peers, vo_al):
    publisher = vo_al.link.publisher
    started = time.perf_counter()
    sent, pending = publisher.send_table("candidates", recipient=peers.topcat_id)
    response = pending.wait(60)[peers.topcat_id]
    loaded = time.perf_counter() - started
    assert response["samp.status"] == "samp.ok", response
    _ok_once_loaded(lambda: publisher.highlight(sent.ids[3], peers.topcat_id), "a highlight")
    highlighted = time.perf_counter() - started
    _ok_once_loaded(lambda: publisher.select(sent.ids[:4], peers.topcat_id), "a selection")
    print(f"\n{len(sent.ids)}-row candidate table: samp.ok after {loaded:.2f} s, "
          f"row highlighted after {highlighted:.2f} s")
    pointed = publisher.point_at(sent.ids[0], peers.topcat_id).wait(30)[peers.topcat_id]
    assert pointed["samp.status"] in ("samp.ok", "samp.warning")  # no sky view open


def test_topcat_takes_the_query_batch(peers, vo_al):
    publisher = vo_al.link.publisher
    sent, pending = publisher.send_table("query", recipient=peers.topcat_id)
    assert pending.wait(60)[peers.topcat_id]["samp.status"] == "samp.ok"
    _ok_once_loaded(lambda: publisher.select(sent.ids, peers.topcat_id), "a selection")


def test_topcat_takes_the_candidate_table_with_cross_match_columns(peers, vo_al, session_dir,
                                                                    tmp_path):
    with Workspace.open(session_dir) as workspace:
        table = workspace.candidate_table()
        Table({"main_id": ["star A", "star B"], "ra": table["ra"][:2] + 1 / 3600,
               "dec": table["dec"][:2], "otype": ["Be*", "Em*"]}).write(
            tmp_path / "simbad.csv", format="ascii.csv")
        workspace.crossmatch([file_catalogue(tmp_path / "simbad.csv", "simbad")])
    publisher = vo_al.link.publisher
    sent, pending = publisher.send_table("candidates", recipient=peers.topcat_id)
    response = pending.wait(60)[peers.topcat_id]
    assert response["samp.status"] == "samp.ok", response
    loaded = Table.read(url2pathname(urlparse(sent.url).path), format="votable")
    assert {"object_id", "known", "simbad_id", "simbad_type", "simbad_sep_arcsec"} <= set(
        loaded.colnames)
    assert sorted(loaded["simbad_id"][loaded["known"]]) == ["star A", "star B"]
    assert loaded["simbad_sep_arcsec"].meta["ucd"] == "pos.angDistance"
