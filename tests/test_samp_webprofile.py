"""A web page on a hub with SAMP's Web Profile (a JSAMP hub, as TOPCAT's own
hub offers it) cannot give vo-al labels or have it read files, even
calling itself ``topcat``: vo-al's subscriptions mark those MTypes as not
harmless and the hub refuses to pass them on; harmless ones still arrive.

The web client speaks the Web Profile's XML-RPC itself, as a browser's
``samp.js`` would. The Web Profile listens on the fixed port 21012.
"""

from __future__ import annotations

import socket
import xmlrpc.client

import pytest

from test_samp_support import build_session, entries, peer_environment, require, running
from peers import PeerProcess, wait_for

pytestmark = [pytest.mark.jsamp]

WEB = "http://127.0.0.1:21012/"


def _web_port_open() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 21012), 1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    require("jsamp")
    with peer_environment(tmp_path_factory.mktemp("webprofile")) as peers:
        if _web_port_open():
            pytest.fail("port 21012 (SAMP Web Profile) is taken by another program")
        hub = PeerProcess(["jsamp", "hub", "-mode", "no-gui", "-profiles", "std,web",
                           "-web:auth", "true"], peers.env(), peers.folder / "hub.log")
        try:
            wait_for(lambda: (peers.hub_running() and _web_port_open()) or not hub.alive(), 60,
                     "the JSAMP hub with the Web Profile")
            assert hub.alive(), hub.log.read_text()[-2000:]
            yield peers
        finally:
            hub.stop()


@pytest.fixture(scope="module")
def session_dir(real_data, manifest, tmp_path_factory):
    return build_session(real_data, manifest, tmp_path_factory.mktemp("webprofile-session"))


@pytest.fixture(scope="module")
def vo_al(peers, session_dir):
    with running(session_dir) as (runner, lines):
        assert runner.link.bridge.wait_connected(30), lines
        runner.table = runner.link.publisher.prepare_table("candidates")
        yield runner


def test_a_web_page_calling_itself_topcat_gets_no_labels_in(vo_al, session_dir, tmp_path):
    web = xmlrpc.client.ServerProxy(WEB)
    key = web.samp.webhub.register({"samp.name": "topcat"})["samp.private-key"]
    try:
        web.samp.webhub.declareMetadata(key, {"samp.name": "topcat"})
        vo_al_id = next(c for c in web.samp.webhub.getRegisteredClients(key)
                        if web.samp.webhub.getMetadata(key, c).get("samp.name") == "vo-al")
        table = tmp_path / "labels.vot"
        table.write_text("<VOTABLE/>")
        before = entries(session_dir)
        for mtype, params in [
                ("table.load.votable", {"url": table.as_uri()}),
                ("voal.label.set", {"spectrum-id": vo_al.table.ids[0], "label": "emission"}),
                ("spectrum.load.ssa-generic", {"url": "file:///etc/passwd"}),
                ("table.select.rowList", {"table-id": vo_al.table.table_id,
                                          "row-list": ["0"]})]:
            with pytest.raises(xmlrpc.client.Fault):
                web.samp.webhub.callAndWait(key, vo_al_id, {"samp.mtype": mtype,
                                                            "samp.params": params}, "10")
        assert entries(session_dir) == before
        response = web.samp.webhub.callAndWait(key, vo_al_id, {
            "samp.mtype": "table.highlight.row",
            "samp.params": {"table-id": vo_al.table.table_id, "row": "1"}}, "10")
        assert response["samp.status"] == "samp.ok"  # harmless messages still arrive
        assert vo_al.link.receiver.current == vo_al.table.ids[1]
    finally:
        web.samp.webhub.unregister(key)
