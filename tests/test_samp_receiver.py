"""The owner side without any hub: peer tables and their ids, and the
receiver's checks, actions and replies."""

from __future__ import annotations

import shutil
import warnings

import pytest
from astropy.io.votable import parse_single_table
from astropy.table import Table
from astropy.units import UnitsWarning

from test_samp_support import build_session
from vo_al.samp.bridge import SampBridge
from vo_al.samp.errors import MessageRejected
from vo_al.samp.files import PeerFiles
from vo_al.samp.inbox import Call
from vo_al.samp.link import SampLink
from vo_al.samp.publisher import Publisher
from vo_al.samp.receiver import Receiver
from vo_al.samp.tables import SentTable, TableRegistry
from vo_al.session import Session


@pytest.fixture(scope="module")
def template(real_data, manifest, tmp_path_factory):
    return build_session(real_data, manifest, tmp_path_factory.mktemp("receiver"))


class Parts:
    """A receiver and a publisher around a session, with no hub: replies and
    events are collected."""

    def __init__(self, session):
        self.replies, self.events = [], []
        self.files = PeerFiles(session.directory)
        self.tables = TableRegistry(self.files)
        self.receiver = Receiver(session, self.tables, self.files,
                                 lambda msg_id, response: self.replies.append((msg_id, response)),
                                 on_event=lambda kind, detail: self.events.append((kind, detail)))
        self.publisher = Publisher(session, SampBridge(list.append), self.files, self.tables,
                                   access_limit=3)

    def close(self):
        self.publisher.close()
        self.tables.close()
        self.files.close()


@pytest.fixture
def link(template, tmp_path):
    directory = tmp_path / "session"
    shutil.copytree(template, directory)
    with Session.open(directory) as session:
        parts = Parts(session)
        yield parts
        parts.close()


def call(link, mtype, params, msg_id="m1", sender="topcat"):
    return link.receiver.process(Call(mtype, params, "c9", sender, msg_id))


def test_peer_table_has_ucds_utypes_and_access_urls(link):
    sent = link.publisher.prepare_table("candidates")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        table = parse_single_table(sent.url.removeprefix("file://"))
    fields = {f.name: f for f in table.fields}
    assert fields["dec"].ucd == "pos.eq.dec;meta.main" and fields["entropy"].ucd == \
        "stat.uncertainty"
    assert fields["access_url"].utype == "ssa:Access.Reference"
    urls = [str(u) for u in table.array["access_url"]]
    assert all(urls[:3]) and not any(urls[3:])  # access_limit=3
    assert [str(f) for f in table.array["access_format"][:3]] == ["application/fits"] * 3
    assert list(table.array["id"]) == list(sent.ids) and len(sent.ids) == 18
    assert link.files.held() == 4  # the table and three spectra


def test_table_ids_are_stable_and_change_with_the_labels(link):
    first = link.publisher.prepare_table("query")
    assert link.publisher.prepare_table("query").table_id == first.table_id
    assert first.table_id.startswith("vo-al:") and ":1:query:" in first.table_id
    link.receiver.session.label(first.ids[0], "emission", source="cli")
    second = link.publisher.prepare_table("query")
    assert second.table_id != first.table_id and second.ids == first.ids
    assert link.tables.get(first.table_id).ids == first.ids  # older copies still answer


def test_the_registry_forgets_the_oldest_and_releases_their_files(link):
    registry = TableRegistry(link.files, keep=2)
    held = [link.files.acquire(("t", k), ".txt", lambda p: p.write_text("x")) for k in range(3)]
    for k in range(3):
        registry.add(SentTable(f"id{k}", "candidates", 1, "n", "u", ("a", "b"), (("t", k),)))
    assert not held[0].exists() and held[1].exists() and held[2].exists()
    with pytest.raises(MessageRejected, match="unknown table-id 'id0': not a table vo-al sent"):
        registry.get("id0")
    assert registry.get("id1").ids == ("a", "b")
    assert [(t.table_id, row) for t, row in registry.containing("b")] == [("id2", 1)]
    registry.close()
    assert not held[1].exists() and not held[2].exists()


def call_error(link, mtype, params):
    response = call(link, mtype, params)
    assert response["samp.status"] == "samp.error"
    return response["samp.error"]["samp.errortxt"]


def test_highlight_and_selection_with_and_without_an_armed_label(link):
    sent = link.publisher.prepare_table("candidates")
    response = call(link, "table.highlight.row", {"table-id": sent.table_id, "row": "2"})
    assert response == {"samp.status": "samp.ok", "samp.result": {"spectrum-id": sent.ids[2]}}
    assert link.receiver.current == sent.ids[2] and link.replies[-1] == ("m1", response)
    call(link, "table.select.rowList", {"table-id": sent.table_id, "row-list": ["1", "0"]})
    assert link.receiver.selection == [sent.ids[1], sent.ids[0]]
    assert link.receiver.session.log.entries() == []
    link.receiver.armed = "Absorption"  # an alias, any case
    assert link.receiver.armed == "other"
    response = call(link, "table.select.rowList",
                    {"table-id": sent.table_id, "row-list": ["3", "4"]}, sender="TOPCAT")
    assert response["samp.result"] == {"selected": "2", "labelled": "2", "label": "other"}
    log = link.receiver.session.log.entries()
    assert [(e.spectrum_id, e.label, e.source, e.sender) for e in log] == [
        (sent.ids[3], "other", "samp:TOPCAT", "TOPCAT"),
        (sent.ids[4], "other", "samp:TOPCAT", "TOPCAT")]
    assert [kind for kind, _ in link.events] == ["current", "selection", "selection", "labelled"]
    with pytest.raises(ValueError, match="cannot arm 'violet'"):
        link.receiver.armed = "violet"
    link.receiver.armed = None


def test_a_notification_acts_without_a_reply(link):
    sent = link.publisher.prepare_table("query")
    call(link, "table.highlight.row", {"table-id": sent.table_id, "row": "0"}, msg_id=None)
    assert link.receiver.current == sent.ids[0] and link.replies == []


def role(session, spectrum_id) -> str:
    """What the session says a label of this spectrum is for (any door)."""
    return session.roles().get(spectrum_id, "browse")


def test_a_label_table_imports_the_valid_rows_and_lists_the_rest(link, tmp_path):
    sent = link.publisher.prepare_table("candidates")
    session = link.receiver.session
    session.label(sent.ids[2], "emission", source="cli")
    path = tmp_path / "labels.vot"
    Table({"ID": [sent.ids[0], sent.ids[1], "elsewhere", sent.ids[2], sent.ids[3]],
           "class": ["emission", "violet", "other", "emission", "skip"]}).write(path,
                                                                             format="votable")
    response = call(link, "table.load.votable", {"url": path.as_uri()}, sender="stilts")
    assert response["samp.status"] == "samp.warning"
    assert response["samp.result"] == {"imported": "2", "refused": "2", "unchanged": "1"}
    text = response["samp.error"]["samp.errortxt"]
    assert text.startswith("2 labels refused:") and "'elsewhere' is not in the pool" in text
    assert "unknown class 'violet'" in text
    new = session.log.entries()[1:]
    assert [(e.spectrum_id, e.label, e.action, e.purpose, e.source) for e in new] == [
        (sent.ids[0], "emission", "label", role(session, sent.ids[0]), "samp:stilts"),
        (sent.ids[3], None, "skip", role(session, sent.ids[3]), "samp:stilts")]


def test_a_label_table_with_only_bad_rows_changes_nothing(link, tmp_path):
    path = tmp_path / "bad.vot"
    Table({"id": ["elsewhere"], "label": ["emission"]}).write(path, format="votable")
    text = call_error(link, "table.load.votable", {"url": path.as_uri()})
    assert text.endswith("nothing was imported")
    link.receiver.id_column = "obsid"
    assert "no column 'obsid'" in call_error(link, "table.load.votable", {"url": path.as_uri()})
    assert link.receiver.session.log.entries() == []


def test_label_set_by_table_row_and_undo(link):
    sent = link.publisher.prepare_table("query")
    response = call(link, "voal.label.set",
                    {"table-id": sent.table_id, "row": "1", "label": "double-peak"})
    assert response["samp.result"] == {"seq": "1", "spectrum-id": sent.ids[1],
                                       "label": "double-peak", "purpose": "query"}
    response = call(link, "voal.label.undo", {})
    assert response["samp.result"] == {"seq": "2", "undone": "1", "spectrum-id": sent.ids[1]}
    assert call_error(link, "voal.label.undo", {}) == "nothing to undo"


def test_spectrum_load_without_a_model_is_a_warning(link, template, real_data, tmp_path):
    config = link.receiver.session.config
    with Session.create(tmp_path / "fresh", config.train_path, config.pool_path) as fresh:
        bare = SampLink(fresh, list.append)
        try:
            url = (real_data / "ondrejov" / "bt-cmi-ondrejov.fits").as_uri()
            response = bare.receiver.process(Call("spectrum.load.ssa-generic", {"url": url},
                                                  "c1", "splat", None))
        finally:
            bare.close()
    assert response["samp.status"] == "samp.warning"
    assert response["samp.error"]["samp.errortxt"].startswith("no trained model yet")
    assert response["samp.result"]["quality"] == "OK" and response["samp.result"]["iteration"] \
        == "0"


def test_a_failing_handler_still_replies(link, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(link.receiver.session, "label", broken)
    text = call_error(link, "voal.label.set", {"spectrum-id": "x", "label": "other"})
    assert text == "vo-al failed on voal.label.set: RuntimeError: disk on fire"
    assert len(link.replies) == 1


def test_closing_the_link_removes_the_files(template, tmp_path):
    directory = tmp_path / "session"
    shutil.copytree(template, directory)
    with Session.open(directory) as session:
        link = SampLink(session, list.append)  # never started: no hub needed
        link.publisher.prepare_table("candidates")
        folder = link.files.directory
        assert any(folder.iterdir())
        link.close()
    assert not folder.exists() and not folder.parent.exists()
