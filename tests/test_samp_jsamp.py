"""vo-al on a real JSAMP hub: JSAMP's message sender, snooper and STILTS
talk to it, every malformed message gets ``samp.error`` and changes
nothing, an untrusted client's labels are refused, and vo-al registers
again after each of twenty hub restarts.

One hub per module (own lockfile, HOME and ``-Duser.home``); vo-al's
headless runner serves a small session built from the real files, and
trusts the test's own clients (``tester``, ``selector``).
"""

from __future__ import annotations

import logging
import shlex
import signal
import socket
import threading
import warnings
from pathlib import Path

import pytest
from astropy.io.votable import parse_single_table
from astropy.table import Table
from astropy.units import UnitsWarning

from test_samp_support import (Sender, Trickle, build_session, entries, peer_environment,
                               require, running, serving)
from vo_al.samp.hub import running_hub
from vo_al.samp.messages import HANDLED
from peers import (PeerProcess, messagesender_args, run_tool, start_jsamp_hub,
                              wait_for)
from vo_al.session import Session

pytestmark = [pytest.mark.jsamp]

#: Rows in the "huge" row list (the table has 18). XML-RPC encoding and
#: parsing at sender, hub and vo-al cost ≈10 µs a row: 100,000 take ≈1 s.
HUGE = 20_000


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    require("jsamp")
    with peer_environment(tmp_path_factory.mktemp("jsamp")) as peers:
        hub = start_jsamp_hub(peers)
        peers.hub = hub
        try:
            yield peers
        finally:
            peers.hub.stop()


@pytest.fixture(scope="module")
def session_dir(real_data, manifest, tmp_path_factory):
    return build_session(real_data, manifest, tmp_path_factory.mktemp("jsamp-session"))


@pytest.fixture(scope="module")
def vo_al(peers, session_dir):
    with running(session_dir, trust=("tester", "selector")) as (runner, lines):
        assert runner.link.bridge.wait_connected(30), lines
        runner.table = runner.link.publisher.prepare_table("candidates")
        runner.lines = lines
        yield runner


@pytest.fixture(scope="module")
def sender(vo_al):
    sender = Sender()
    sender.vo_al = sender.id_of("vo-al")
    yield sender
    sender.close()


def send(peers, mtype, params, sender="tester", mode="sync"):
    """``jsamp messagesender`` to vo-al; its output."""
    result = run_tool(messagesender_args(mtype, params, "vo-al", sender, mode), peers.env())
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_registered_with_metadata_and_subscriptions(vo_al, sender):
    meta = sender.client.get_metadata(sender.vo_al)
    assert meta["samp.name"] == "vo-al" and meta["vo-al.version"]
    assert "candidate tables" in meta["samp.description.text"]
    assert meta["samp.icon.url"].startswith("file:///") and meta["samp.icon.url"].endswith(
        "resources/vo-al.svg")
    assert set(HANDLED) <= set(sender.client.get_subscriptions(sender.vo_al))


def test_messagesender_highlight_makes_the_spectrum_current(peers, vo_al):
    output = send(peers, "table.highlight.row", {"table-id": vo_al.table.table_id, "row": "1"})
    assert "samp.ok" in output and vo_al.table.ids[1] in output
    assert vo_al.link.receiver.current == vo_al.table.ids[1]


def test_messagesender_selection_with_an_armed_label_labels_every_row(peers, vo_al,
                                                                      session_dir):
    vo_al.link.receiver.armed = "emission"
    try:
        output = send(peers, "table.select.rowList",
                      {"table-id": vo_al.table.table_id, "row-list": ["0", "2", "3"]},
                      sender="selector")
    finally:
        vo_al.link.receiver.armed = None
    assert "samp.ok" in output
    chosen = [vo_al.table.ids[k] for k in (0, 2, 3)]
    assert vo_al.link.receiver.selection == chosen
    labelled = [e for e in entries(session_dir) if e.source == "samp:selector"]
    assert [e.spectrum_id for e in labelled] == chosen
    assert {(e.label, e.sender, e.action) for e in labelled} == {("emission", "selector", "label")}


def test_messagesender_sets_and_undoes_labels(peers, vo_al, session_dir):
    first, second = vo_al.table.ids[4], vo_al.table.ids[5]
    assert "samp.ok" in send(peers, "voal.label.set",
                             {"spectrum-id": first, "label": "double-peak"})
    assert "samp.ok" in send(peers, "voal.label.set",
                             {"table-id": vo_al.table.table_id, "row": "5", "label": "skip"})
    log = entries(session_dir)
    assert (log[-2].spectrum_id, log[-2].label, log[-2].source) == (first, "double-peak",
                                                                  "samp:tester")
    assert (log[-1].spectrum_id, log[-1].action) == (second, "skip")
    output = send(peers, "voal.label.undo", {"spectrum-id": first})
    assert "samp.ok" in output
    undo = entries(session_dir)[-1]
    assert undo.action == "undo" and undo.undoes == log[-2].seq and undo.sender == "tester"


def test_messagesender_spectrum_of_a_real_ondrejov_file_is_classified(peers, vo_al, real_data):
    url = (real_data / "ondrejov" / "gamma-cas-emission.fits").as_uri()
    output = send(peers, "spectrum.load.ssa-generic", {"url": url, "name": "gamma-Cas"})
    assert "samp.ok" in output and '"iteration": "1"' in output
    result = vo_al.link.receiver.classified[-1]
    assert result.spectrum.source == url and result.iteration == 1
    assert result.predicted in ("other", "emission", "double-peak")
    assert abs(sum(result.probabilities.values()) - 1) < 1e-5


@pytest.mark.stilts
def test_stilts_sends_a_label_table_and_the_valid_rows_are_imported(peers, vo_al, session_dir,
                                                                     tmp_path):
    require("stilts")
    ids = vo_al.table.ids
    table = Table({"id": [ids[6], ids[7], "not-in-the-pool", ids[8]],
                   "label": ["emission", "other", "emission", "violet"]})
    table.write(tmp_path / "labels.vot", format="votable")
    before = len(entries(session_dir))
    result = run_tool(["stilts", "tpipe", f"in={tmp_path / 'labels.vot'}", "omode=samp",
                       "client=vo-al"], peers.env())
    assert result.returncode == 0, result.stderr
    assert "samp.warning" in result.stdout + result.stderr  # two rows refused
    new = entries(session_dir)[before:]
    with Session.open(session_dir) as session:  # the session decides each one's role
        roles = session.roles()
    assert [(e.spectrum_id, e.label, e.purpose) for e in new] == [
        (ids[6], "emission", roles.get(ids[6], "browse")),
        (ids[7], "other", roles.get(ids[7], "browse"))]
    assert new[0].source.startswith("samp:") and new[0].sender


def _documented_stilts_command() -> list[str]:
    """The STILTS command of docs/samp.md that sends a CSV of labels to vo-al."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "samp.md").read_text()
    line = next(line for line in docs.splitlines() if line.startswith("stilts tpipe in=my-"))
    return shlex.split(line)


@pytest.mark.stilts
def test_the_documented_stilts_command_sends_a_csv_of_text_ids(peers, vo_al, session_dir,
                                                               tmp_path):
    require("stilts")
    labelled = {e.spectrum_id for e in entries(session_dir)}
    ids = [i for i in vo_al.table.ids if not i.isdigit() and i not in labelled][:2]
    assert len(ids) == 2
    csv = tmp_path / "my-labels.csv"
    csv.write_text("id,label\n" + "".join(f"{i},other\n" for i in ids))
    command = [f"in={csv}" if arg == "in=my-labels.csv" else arg
               for arg in _documented_stilts_command()]
    assert f"in={csv}" in command
    plain = [arg for arg in command if not arg.startswith("ifmt=")]
    before = len(entries(session_dir))
    logged = len(vo_al.lines)
    result = run_tool(plain, peers.env())  # every column is text: the header is read as data
    assert "Response samp.error" in result.stdout
    assert any("no column 'id'" in line for line in vo_al.lines[logged:])
    result = run_tool(command, peers.env())
    assert result.returncode == 0, result.stdout + result.stderr
    new = entries(session_dir)[before:]
    assert [(e.spectrum_id, e.label, e.source) for e in new] == [
        (i, "other", new[0].source) for i in ids]
    assert new[0].source.startswith("samp:")


def test_snooper_sees_our_broadcasts(peers, vo_al):
    snooper = PeerProcess(["jsamp", "snooper", "-clientname", "snooper"], peers.env(),
                          peers.folder / "snooper.log")
    sender = Sender("watcher")
    try:
        snooper_id = sender.id_of("snooper")
        wait_for(lambda: "*" in sender.client.get_subscriptions(snooper_id),
                 30, "the snooper's subscriptions")
        sent, pending = vo_al.link.publisher.send_table("query")
        highlights = vo_al.link.publisher.highlight(sent.ids[0])
        responses = pending.wait(30)
        assert list(responses) == [snooper_id], responses
        assert all(p.wait(30) for p in highlights)
        wait_for(lambda: sent.table_id in snooper.log.read_text()
                 and "table.highlight.row" in snooper.log.read_text(), 30, "the snooper's log")
    finally:
        sender.close()
        snooper.stop()


@pytest.mark.stilts
def test_our_table_and_spectrum_files_load_in_stilts(peers, vo_al):
    require("stilts")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        path = vo_al.table.url.removeprefix("file://")
        fields = {f.name: f for f in parse_single_table(path).fields}
    assert fields["ra"].ucd == "pos.eq.ra;meta.main" and fields["id"].ucd == "meta.id;meta.main"
    assert fields["access_url"].utype == "ssa:Access.Reference"
    assert fields["access_format"].utype == "ssa:Access.Format"
    assert fields["p_emission"].ucd == "stat.probability"
    assert {"label", "label_source", "iteration", "entropy"} <= set(fields)
    urls = [str(u) for u in Table.read(path, format="votable")["access_url"]]
    assert len(urls) == len(vo_al.table.ids) and all(u.startswith("file:///") for u in urls)
    for url in (vo_al.table.url, urls[0]):
        result = run_tool(["stilts", "tpipe", f"in={url.removeprefix('file://')}",
                           "omode=count"], peers.env())
        assert result.returncode == 0 and "rows:" in result.stdout, result.stderr


# --------------------------------------------------------------------------
# Malformed messages


def _malformed(vo_al, tmp_path):
    table = vo_al.table.table_id
    text = tmp_path / "not-a-table.txt"
    text.write_text("this is not a VOTable\n")
    no_label = tmp_path / "ids-only.vot"
    Table({"id": list(vo_al.table.ids[:2])}).write(no_label, format="votable")
    missing = (tmp_path / "missing.vot").as_uri()
    return [
        ("table.highlight.row", {"table-id": "vo-al:nope", "row": "0"}, "unknown table-id"),
        ("table.highlight.row", {"table-id": table, "row": "99"}, "out of range"),
        ("table.highlight.row", {"table-id": table, "row": "1.5"}, "integer string"),
        ("table.highlight.row", {"table-id": table, "row": "-1"}, "integer string"),
        ("table.highlight.row", {"table-id": table, "row": ["1"]}, "integer string"),
        ("table.highlight.row", {"table-id": table}, "missing parameter 'row'"),
        ("table.select.rowList", {"table-id": table, "row-list": "0,1"}, "must be a list"),
        ("table.select.rowList", {"table-id": table, "row-list": ["0", "x"]}, "item 1"),
        ("table.select.rowList", {"table-id": table, "row-list": [str(i) for i in range(HUGE)]},
         f"has {HUGE} rows"),
        ("table.select.rowList", {"row-list": ["0"]}, "missing parameter 'table-id'"),
        ("table.load.votable", {}, "missing parameter 'url'"),
        ("table.load.votable", {"url": missing}, "cannot read"),
        ("table.load.votable", {"url": "http://127.0.0.1:9/t.vot"}, "cannot read"),
        ("table.load.votable", {"url": "ftp://example.org/t.vot"}, "only file"),
        ("table.load.votable", {"url": text.as_uri()}, "cannot read a table"),
        ("table.load.votable", {"url": no_label.as_uri()}, "no column"),
        ("table.load.votable", {"url": {"a": "b"}}, "must be a string"),
        ("spectrum.load.ssa-generic", {"url": text.as_uri()}, "FITS"),
        ("spectrum.load.ssa-generic", {"name": "x"}, "missing parameter 'url'"),
        ("spectrum.load.ssa-generic", {"url": missing, "meta": "x"}, "must be a map"),
        ("voal.label.set", {"spectrum-id": vo_al.table.ids[0]}, "missing parameter 'label'"),
        ("voal.label.set", {"label": "emission"}, "give 'spectrum-id'"),
        ("voal.label.set", {"spectrum-id": "elsewhere", "label": "emission"}, "not in the pool"),
        ("voal.label.set", {"spectrum-id": vo_al.table.ids[0], "label": "violet"},
         "unknown class"),
        ("voal.label.set", {"table-id": table, "row": "500", "label": "emission"},
         "out of range"),
        ("voal.label.undo", {"spectrum-id": "never-labelled"}, "nothing to undo"),
    ]


def test_malformed_messages_get_samp_error_and_change_nothing(
        vo_al, sender, session_dir, tmp_path):
    receiver = vo_al.link.receiver
    before = (entries(session_dir), receiver.current, list(receiver.selection),
              len(receiver.classified))
    slowest = 0.0
    for mtype, params, text in _malformed(vo_al, tmp_path):
        response, seconds = sender.call(sender.vo_al, mtype, params)
        assert response["samp.status"] == "samp.error", (mtype, params, response)
        assert text in response["samp.error"]["samp.errortxt"], (mtype, response)
        slowest = max(slowest, seconds)
    after = (entries(session_dir), receiver.current, list(receiver.selection),
             len(receiver.classified))
    assert after == before
    print(f"\nslowest samp.error reply: {slowest * 1000:.0f} ms")


def test_notifications_are_acted_on_without_a_reply(peers, vo_al):
    send(peers, "table.highlight.row", {"table-id": vo_al.table.table_id, "row": "2"},
         mode="notify")
    wait_for(lambda: vo_al.link.receiver.current == vo_al.table.ids[2], 30, "the notification")


def test_an_untrusted_client_gets_a_refusal_that_says_how_to_trust_it(peers, vo_al,
                                                                       session_dir, tmp_path):
    table = tmp_path / "labels.vot"
    Table({"id": [vo_al.table.ids[9]], "label": ["emission"]}).write(table, format="votable")
    before = entries(session_dir)
    output = send(peers, "table.load.votable", {"url": table.as_uri()}, sender="webpage")
    assert "samp.error" in output and "'webpage' is not one" in output
    assert "vo-al samp SESSION --trust webpage" in output
    assert entries(session_dir) == before


# --------------------------------------------------------------------------
# Last: the hub goes away and comes back, twenty times

ROUNDS = 20


def test_a_peer_hanging_up_inside_a_request_costs_no_thread(vo_al, sender):
    """A POST to vo-al's callback that announces more body than it sends, then
    hangs up (as a hub killed mid-delivery does): pyvo's handler read nothing
    forever at full CPU; vo-al drops the request and answers the next call."""
    before = {t.ident for t in threading.enumerate()}
    for _ in range(3):
        with socket.create_connection(vo_al.link.bridge.callback_address) as peer:
            peer.sendall(b"POST / HTTP/1.0\r\nContent-Length: 100000\r\n\r\n<?xml")

    def requests_running():
        return [t for t in threading.enumerate()
                if t.ident not in before and "process_request" in t.name]

    wait_for(lambda: not requests_running(), 60, "the requests cut short to end")
    response, _ = sender.call(sender.vo_al, "samp.app.ping", {})
    assert response["samp.status"] == "samp.ok"


def _registered_with_the_running_hub(bridge):
    hub = running_hub()
    return bridge.connected and hub is not None and \
        bridge.hub_url == hub["samp.hub.xmlrpc.url"]


def _call_in_flight(vo_al, url: str) -> Sender:
    """A client whose table.load.votable vo-al is busy reading (a server trickles it)."""
    sender = Sender("tester")
    busy = vo_al.link.receiver.in_progress
    sender.client.call(sender.id_of("vo-al"), "in-flight", {
        "samp.mtype": "table.load.votable", "samp.params": {"url": url}})
    wait_for(lambda: vo_al.link.receiver.in_progress > busy, 30, "vo-al to start reading")
    return sender


def test_registered_again_after_each_of_twenty_hub_restarts(peers, vo_al, caplog):
    """SIGTERM (a JSAMP hub that is stopping answers "Hub is stopped") and SIGKILL
    (a stale lockfile) in turn; every other round while vo-al is reading a
    peer's table, so its reply meets a hub that is gone."""
    bridge = vo_al.link.bridge
    caplog.set_level(logging.WARNING, logger="vo_al.samp.bridge")
    with serving(Trickle) as url:
        for k in range(ROUNDS):
            sender = _call_in_flight(vo_al, f"{url}/t.vot") if k % 2 else None
            peers.hub.stop(sig=signal.SIGTERM if k % 4 < 2 else signal.SIGKILL)
            if sender is not None:
                sender.close()
            peers.hub = start_jsamp_hub(peers)
            wait_for(lambda: _registered_with_the_running_hub(bridge), 60,
                     f"vo-al to register again after restart {k + 1}")
    registered = [line for line in vo_al.lines if "registered with the SAMP hub" in line]
    assert len(registered) >= ROUNDS + 1
    assert not [r for r in caplog.records if "checking the SAMP registration failed" in
                r.getMessage()]
    sender = Sender("after-restarts")
    try:
        assert sender.id_of("vo-al") == bridge.public_id
        response, _ = sender.call(bridge.public_id, "voal.label.undo",
                                  {"spectrum-id": "never-labelled"})
        assert "'after-restarts' is not one" in response["samp.error"]["samp.errortxt"]
    finally:
        sender.close()
