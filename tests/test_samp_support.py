"""Helpers shared by the SAMP tests (imported by the other ``test_samp_*``
modules), and checks of the helpers themselves.

Tests that need JSAMP, TOPCAT, Xvfb or STILTS call :func:`require`: with the
environment variable ``CI`` set a missing tool is a failure, otherwise the
test is skipped with the reason.
"""

from __future__ import annotations

import http.server
import os
import socketserver
import threading
import time
import xmlrpc.client
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
from pyvo.samp import SAMPHubError, SAMPIntegratedClient, SAMPProxyError
from pyvo.samp import conf as samp_conf

from vo_al.loop import IterationOptions, run_iteration
from vo_al.samp.callable import harden
from vo_al.samp.headless import Runner
from vo_al.samp.hub import LOOPBACK
from peers import TOOLS, PeerEnvironment, missing_tools, wait_for
from vo_al.session import Session
from vo_al.workspace import Workspace
from conftest import build_real_pools

APT = "apt-get install jsamp topcat stilts xvfb"


def require(*tools: str):
    """Skip (or, with ``CI`` set, fail) unless every tool is installed."""
    missing = missing_tools(*tools)
    if not missing:
        return
    text = f"needs {', '.join(TOOLS[m] for m in missing)} on the PATH (Debian: {APT})"
    if os.environ.get("CI"):
        pytest.fail(f"{text}; CI is set, so the SAMP peer tests must run", pytrace=False)
    pytest.skip(text)


def build_session(real_data: Path, manifest: list[dict], folder: Path, rows: int = 0,
                  labelled: int = 0) -> Path:
    """A session on the real files with one completed iteration.

    Training set: the Ondřejov spectra labelled from MANIFEST.tsv; pool: the
    LAMOST spectra, repeated under new ids up to ``rows`` rows when given,
    the first ``labelled`` of them labelled ``emission``. Returns the
    session directory.
    """
    train, pool = build_real_pools(real_data, manifest, folder)
    if rows:
        pool = tile_pool(pool, folder / "tiled.h5", rows)
    directory = folder / "session"
    with Session.create(directory, train, pool, query_size=5, estimate_size=3) as session:
        run_iteration(session, IterationOptions(max_epochs=1, query_size=5, estimate_size=3))
        with h5py.File(pool, "r") as h5:
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in h5["id"][:labelled]]
        session.label_many([(i, "emission") for i in ids], source="cli")
    return directory


def tile_pool(source: Path, out: Path, rows: int) -> Path:
    """A pool of ``rows`` rows repeating ``source``'s, the copies under new ids."""
    with h5py.File(source, "r") as src, h5py.File(out, "w") as dst:
        n = len(src["id"])
        index = np.arange(rows) % n
        for name, data in src.items():
            if isinstance(data, h5py.Dataset) and data.shape[:1] == (n,):
                values = data[:][index]
                if name == "id":
                    values = np.array([f"t{k // n}-{v.decode() if isinstance(v, bytes) else v}"
                                       for k, v in enumerate(values)], dtype=object)
                dst.create_dataset(name, data=values, dtype=data.dtype)
            else:
                src.copy(data, dst, name)
        dst.attrs.update(dict(src.attrs))
    return out


@contextmanager
def peer_environment(folder: Path):
    """A :class:`PeerEnvironment` whose ``HOME`` and ``SAMP_HUB`` this process uses too."""
    peers = PeerEnvironment(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(peers.home))
        patch.setenv("SAMP_HUB", peers.samp_hub)
        yield peers


class Sender:
    """An independent SAMP client (``pyvo``'s integrated client) that sends
    calls and times the replies.

    Parameters
    ----------
    name : str
        Its ``samp.name``.
    """

    def __init__(self, name: str = "tester"):
        with samp_conf.set_temp("use_internet", False):
            self.client = SAMPIntegratedClient(name=name, addr=LOOPBACK)
            self.client.connect()
        harden(self.client.client.client)  # as vo-al's own: a killed hub never hangs pytest

    def close(self):
        """Unregister (a hub that is gone or stopping already needs nothing)."""
        try:
            self.client.disconnect()
        except (OSError, xmlrpc.client.Error, SAMPHubError, SAMPProxyError):
            pass  # the hub is gone; disconnect() stopped the client before raising

    def id_of(self, name: str, timeout: float = 30.0) -> str:
        """The id of the client called ``name``, once it is registered."""
        def find():
            for client_id in self.client.get_registered_clients():
                if self.client.get_metadata(client_id).get("samp.name") == name:
                    return client_id
            return None

        return wait_for(find, timeout, f"a SAMP client named {name}", interval=0.1)

    def call(self, recipient: str, mtype: str, params: dict, timeout: int = 20):
        """``callAndWait``; returns the response and the seconds it took."""
        started = time.perf_counter()
        response = self.client.call_and_wait(
            recipient, {"samp.mtype": mtype, "samp.params": params}, str(timeout))
        return response, time.perf_counter() - started


@contextmanager
def running(session_dir: Path, **options):
    """A :class:`Runner` serving ``session_dir`` on a thread; yields it and its log lines."""
    lines: list[str] = []
    stop = threading.Event()
    with Workspace.open(session_dir) as workspace:
        runner = Runner(workspace, log=lines.append, check_interval=0.25, **options)
        thread = threading.Thread(target=runner.serve, args=(stop,), name="vo-al owner")
        thread.start()
        try:
            yield runner, lines
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive(), "the runner did not stop"


class Trickle(http.server.BaseHTTPRequestHandler):
    """A hostile peer's server: promises a megabyte and sends one byte at a time."""

    def do_GET(self):  # noqa: N802 (http.server API)
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"<")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            return  # the reader hung up

    def log_message(self, *args):
        pass


@contextmanager
def serving(handler):
    """An HTTP server on a free loopback port with ``handler``; yields its base URL."""
    server = socketserver.ThreadingTCPServer((LOOPBACK, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def entries(session_dir: Path) -> list:
    """The label log, read through a connection of its own."""
    with Session.open(session_dir) as session:
        return session.log.entries()


# --------------------------------------------------------------------------
# Checks of the helpers


def test_require_fails_in_ci_and_skips_otherwise(monkeypatch):
    monkeypatch.setitem(TOOLS, "jsamp", "no-such-tool-for-vo-al")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require("jsamp")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-for-vo-al"):
        require("jsamp")


def test_peer_environment_isolates_home_and_lockfile(tmp_path):
    with peer_environment(tmp_path) as peers:
        assert os.environ["HOME"] == str(tmp_path / "home")
        assert os.environ["SAMP_HUB"] == f"std-lockurl:{(tmp_path / 'hub.lock').as_uri()}"
        env = peers.env(DISPLAY=":9")
        assert env["JAVA_TOOL_OPTIONS"] == f"-Duser.home={tmp_path / 'home'}"
        assert env["DISPLAY"] == ":9" and not peers.hub_running()
