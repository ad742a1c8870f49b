"""``vo-al samp`` without external tools: vo-al's own hub (``pyvo.samp``),
reconnection when the hub goes and comes back, the broadcast on start, and
a clean exit on SIGINT and SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from test_samp_support import Sender, build_session, peer_environment, running
from vo_al.samp.headless import run
from vo_al.samp.hub import OwnHub, running_hub
from vo_al.samp.peers import wait_for

RUN = """
import sys
from vo_al.samp.headless import run
sys.exit(run(sys.argv[1], own_hub=True, log=lambda line: print(line, flush=True)))
"""


@pytest.fixture(scope="module")
def session_dir(real_data, manifest, tmp_path_factory):
    return build_session(real_data, manifest, tmp_path_factory.mktemp("headless"))


@pytest.fixture
def peers(tmp_path):
    with peer_environment(tmp_path / "peers") as peers:
        yield peers


def test_own_hub_is_started_when_none_runs_and_stopped_on_close(peers, session_dir):
    with running(session_dir, own_hub=True) as (runner, lines):
        assert runner.link.bridge.wait_connected(30), lines
        assert peers.lockfile.is_file() and running_hub() is not None
        sender = Sender()
        try:
            vo_al = sender.id_of("vo-al")
            response, _ = sender.call(vo_al, "voal.label.undo", {})
            assert response["samp.error"]["samp.errortxt"] == "nothing to undo"
        finally:
            sender.close()
        assert (session_dir / "samp").is_dir()
    assert "samp: started vo-al's own SAMP hub (loopback only)" in lines
    assert not peers.lockfile.exists() and not (session_dir / "samp").exists()


def test_an_existing_hub_is_used_rather_than_a_second_one(peers, session_dir):
    other = OwnHub()
    assert other.start()
    try:
        with running(session_dir, own_hub=True) as (runner, lines):
            assert runner.link.bridge.wait_connected(30), lines
        assert not any("own SAMP hub" in line for line in lines)
        assert running_hub() is not None  # the other hub still runs
    finally:
        other.stop()


def test_reconnects_when_the_hub_goes_away_and_comes_back(peers, session_dir):
    first = OwnHub()
    first.start()
    with running(session_dir) as (runner, lines):
        bridge = runner.link.bridge
        try:
            assert bridge.wait_connected(30), lines
        finally:
            first.stop()
        wait_for(lambda: not bridge.connected, 30, "vo-al to notice the hub left")
        second = OwnHub()
        second.start()
        try:
            assert bridge.wait_connected(30), lines
            sender = Sender()
            assert sender.id_of("vo-al") == bridge.public_id
            sender.close()
        finally:
            second.stop()
    assert any("the SAMP hub went away" in line for line in lines)
    assert sum("registered with the SAMP hub" in line for line in lines) == 2


def test_broadcasts_the_candidates_once_registered(peers, session_dir):
    hub = OwnHub()
    hub.start()
    received = []
    sender = Sender("listener")

    def take(private_key, sender_id, msg_id, mtype, params, extra):
        received.append(params)
        sender.client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})

    sender.client.bind_receive_call("table.load.votable", take)
    try:
        with running(session_dir, broadcast=True) as (runner, lines):
            wait_for(lambda: any("listener answered table.load.votable with samp.ok" in line
                                 for line in lines), 30, "the broadcast's answer")
        assert received[0]["table-id"].startswith("vo-al:") and received[0]["url"].startswith(
            "file:///")
        assert any(line.startswith("samp: sent 18 candidates as vo-al:") for line in lines)
    finally:
        sender.close()
        hub.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_cleanly(peers, session_dir, sig):
    process = subprocess.Popen([sys.executable, "-c", RUN, str(session_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []

    def read():
        lines.extend(process.stdout)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        wait_for(lambda: any("registered with the SAMP hub" in line for line in lines), 60,
                 "the subprocess to register")
        process.send_signal(sig)
        assert process.wait(30) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(30)
        process.stdout.close()
    assert "samp: unregistered; files removed\n" in lines
    assert not peers.lockfile.exists() and not (session_dir / "samp").exists()


def test_run_refuses_a_missing_session_or_an_unknown_label(peers, session_dir, tmp_path):
    lines = []
    assert run(tmp_path / "nothing", stop=threading.Event(), log=lines.append) == 2
    assert run(session_dir, arm="violet", stop=threading.Event(), log=lines.append) == 2
    assert "is not a vo-al session" in lines[0] and "cannot arm 'violet'" in lines[1]
