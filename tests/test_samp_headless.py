"""``vo-al samp`` without external tools: vo-al's own hub (``pyvo.samp``),
reconnection when the hub goes and comes back (and when it answers only
faults), the broadcast to clients that take tables (and to them only),
and a clean exit on SIGINT and SIGTERM, also in the middle of writing a
large table."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCServer

import pytest

from test_samp_support import Sender, build_session, peer_environment, running
from vo_al.samp.headless import run
from vo_al.samp.hub import LOOPBACK, OwnHub, running_hub
from peers import wait_for

RUN = """
import sys
from vo_al.samp.headless import run
sys.exit(run(sys.argv[1], own_hub=True, broadcast="--broadcast" in sys.argv,
             log=lambda line: print(line, flush=True)))
"""

#: Generous: only a hang fails the tests (nothing here asserts a duration).
HANG_S = 120


@pytest.fixture(scope="module")
def session_dir(real_data, manifest, tmp_path_factory):
    return build_session(real_data, manifest, tmp_path_factory.mktemp("headless"))


@pytest.fixture
def peers(tmp_path):
    with peer_environment(tmp_path / "peers") as peers:
        yield peers


def test_own_hub_is_started_when_none_runs_and_stopped_on_close(peers, session_dir):
    with running(session_dir, own_hub=True, trust=("tester",)) as (runner, lines):
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


def test_a_hub_answering_faults_or_nothing_is_no_hub_and_the_watchdog_goes_on(peers,
                                                                              session_dir):
    """A JSAMP hub that is starting or stopping answers every call with the fault
    "Hub is stopped" (this stand-in answers nothing else); then it hangs: it
    takes connections and never answers (as a hub stopped with SIGSTOP)."""
    pings = []

    def stopped(*args):
        pings.append(args)
        raise xmlrpc.client.Fault(1, "org.astrogrid.samp.client.SampException: Hub is stopped")

    server = SimpleXMLRPCServer((LOOPBACK, 0), logRequests=False, allow_none=True)
    server.register_function(stopped, "samp.hub.ping")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    peers.lockfile.write_text(f"samp.secret=s\nsamp.hub.xmlrpc.url=http://{LOOPBACK}:"
                              f"{server.server_address[1]}/\nsamp.profile.version=1.3\n")
    try:
        assert running_hub() is None
        with running(session_dir) as (runner, lines):
            wait_for(lambda: len(pings) >= 4, HANG_S, "the watchdog to meet the fault again")
            server.shutdown()  # still listening, never answering: a hung hub
            hub = OwnHub()
            assert hub.start()  # after its own check of the hung hub timed out
            try:
                assert runner.link.bridge.wait_connected(HANG_S), lines
            finally:
                hub.stop()
        assert lines[0] == "samp: no SAMP hub yet; waiting for one"
    finally:
        server.server_close()


def test_broadcasts_the_candidates_once_registered(peers, session_dir):
    hub = OwnHub()
    hub.start()
    sender, received = _listener()
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


class Bridge:
    """``vo-al samp`` in a subprocess (own hub if none runs), its lines read as they come."""

    def __init__(self, session_dir, *args):
        self.process = subprocess.Popen([sys.executable, "-c", RUN, str(session_dir), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout))
        self._reader.start()

    def wait_line(self, text: str) -> int:
        """The index of the first line holding ``text``, once there is one."""
        def seen():
            return next((k + 1 for k, line in enumerate(list(self.lines)) if text in line), 0)

        return wait_for(seen, HANG_S, f"a line with {text!r}") - 1

    def index(self, text: str) -> int:
        return next(k for k, line in enumerate(self.lines) if text in line)

    def stop(self, sig) -> int:
        """Send ``sig``; the exit status (a hang fails after ``HANG_S``)."""
        self.process.send_signal(sig)
        return self.process.wait(HANG_S)

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self._reader.join(30)
        self.process.stdout.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_cleanly(peers, session_dir, sig):
    bridge = Bridge(session_dir)
    try:
        bridge.wait_line("registered with the SAMP hub")
        assert bridge.stop(sig) == 128 + sig, "".join(bridge.lines)
    finally:
        bridge.close()
    assert bridge.lines[-2:] == ["samp: unregistered; files removed\n",
                                 f"samp: stopped by {signal.Signals(sig).name}\n"]
    assert not peers.lockfile.exists() and not (session_dir / "samp").exists()


def test_a_broadcast_without_clients_writes_nothing_until_one_subscribes(peers, session_dir):
    bridge = Bridge(session_dir, "--broadcast")
    try:
        bridge.wait_line("no client takes tables yet")
        run_dir, = (session_dir / "samp").iterdir()
        assert [p.name for p in run_dir.iterdir()] == [".lock"]  # no table, no spectrum file
        listener, received = _listener()
        try:
            bridge.wait_line("listener answered table.load.votable with samp.ok")
        finally:
            listener.close()
        assert bridge.stop(signal.SIGINT) == 130, "".join(bridge.lines)
    finally:
        bridge.close()
    order = [bridge.index(text) for text in (
        "registered with the SAMP hub", "no client takes tables yet",
        "writing the candidate table for listener", "sent 18 candidates",
        "unregistered; files removed", "stopped by SIGINT")]
    assert order == sorted(order), "".join(bridge.lines)
    assert len(received) == 1 and received[0]["url"].startswith("file:///")


def _listener():
    """A client that takes tables and answers samp.ok; returns it and what it received."""
    received = []
    sender = Sender("listener")

    def take(private_key, sender_id, msg_id, mtype, params, extra):
        received.append(params)
        sender.client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})

    sender.client.bind_receive_call("table.load.votable", take)
    return sender, received


@pytest.fixture(scope="module")
def big_session(real_data, manifest, tmp_path_factory):
    """2,000 spectra, 600 of them labelled: the candidate table needs 500 spectrum files."""
    return build_session(real_data, manifest, tmp_path_factory.mktemp("big"), rows=2000,
                         labelled=600)


def test_sigint_while_the_table_is_written_stops_the_writing(peers, big_session):
    hub = OwnHub()
    hub.start()
    listener, received = _listener()  # a client takes tables: the writing starts at once
    bridge = Bridge(big_session, "--broadcast")
    try:
        bridge.wait_line("writing the candidate table for listener")
        assert bridge.stop(signal.SIGINT) == 130, "".join(bridge.lines)
    finally:
        bridge.close()
        listener.close()
        hub.stop()
    order = [bridge.index(text) for text in (
        "writing the candidate table", "stopped writing the candidate table",
        "unregistered; files removed", "stopped by SIGINT")]
    assert order == sorted(order), "".join(bridge.lines)
    assert not any("candidates as" in line for line in bridge.lines) and received == []
    assert not (big_session / "samp").exists()


def test_run_refuses_a_missing_session_or_an_unknown_label(peers, session_dir, tmp_path):
    lines = []
    assert run(tmp_path / "nothing", stop=threading.Event(), log=lines.append) == 2
    assert run(session_dir, arm="violet", stop=threading.Event(), log=lines.append) == 2
    assert "is not a vo-al session" in lines[0] and "cannot arm 'violet'" in lines[1]
