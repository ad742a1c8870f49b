"""The owner side without any hub: peer tables and their ids, and the
receiver's checks, actions and replies."""

from __future__ import annotations

import os
import shutil
import socket
import warnings
from pathlib import Path

import pytest
from astropy.io.votable import parse_single_table
from astropy.table import Table
from astropy.units import UnitsWarning

from test_samp_support import build_session
from vo_al.samp.bridge import SampBridge
from vo_al.samp.errors import MessageRejected
from vo_al.samp.files import PeerFiles
from vo_al.samp.inbox import Call, QueueInbox, Step
from vo_al.samp.link import SampLink
from vo_al.samp.publisher import Publisher
from vo_al.samp.receiver import FIRST_SLICE, Receiver
from vo_al.samp.tables import SentTable, TableRegistry
from vo_al.samp.trust import Trust
from vo_al.session import Session
from vo_al.workspace import Workspace


@pytest.fixture(scope="module")
def template(real_data, manifest, tmp_path_factory):
    return build_session(real_data, manifest, tmp_path_factory.mktemp("receiver"))


class Parts:
    """A receiver and a publisher around a session, with no hub: replies and
    events are collected, and the receiver's steps queue in an inbox."""

    def __init__(self, session, **options):
        self.replies, self.events = [], []
        self.inbox = QueueInbox()
        self.files = PeerFiles(session.directory)
        self.tables = TableRegistry(self.files)
        self.workspace = Workspace(session)  # the session stays the caller's to close
        self.receiver = Receiver(self.workspace, self.tables, self.files,
                                 lambda msg_id, response: self.replies.append((msg_id, response)),
                                 self.inbox.put,
                                 on_event=lambda kind, detail: self.events.append((kind, detail)),
                                 **options)
        self.publisher = Publisher(session, SampBridge(list.append), self.files, self.tables,
                                   access_limit=3)

    def serve(self, call) -> dict:
        """Process a call and then the steps it queues, as an owner loop does, to its answer."""
        response = self.receiver.process(call)
        while response is None:
            step = self.inbox.get(timeout=60)
            assert isinstance(step, Step), f"no answer within 60 s: {step!r}"
            response = self.receiver.process(step)
        return response

    def close(self):
        self.receiver.close()
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
    return link.serve(Call(mtype, params, "c9", sender, msg_id))


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
    link.receiver.workspace.label(first.ids[0], "emission", source="cli")
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


def call_error(link, mtype, params, sender="topcat"):
    response = call(link, mtype, params, sender=sender)
    assert response["samp.status"] == "samp.error"
    return response["samp.error"]["samp.errortxt"]


def test_highlight_and_selection_with_and_without_an_armed_label(link):
    sent = link.publisher.prepare_table("candidates")
    response = call(link, "table.highlight.row", {"table-id": sent.table_id, "row": "2"})
    assert response == {"samp.status": "samp.ok", "samp.result": {"spectrum-id": sent.ids[2]}}
    assert link.receiver.current == sent.ids[2] and link.replies[-1] == ("m1", response)
    call(link, "table.select.rowList", {"table-id": sent.table_id, "row-list": ["1", "0"]})
    assert link.receiver.selection == [sent.ids[1], sent.ids[0]]
    assert link.receiver.workspace.entries() == []
    link.receiver.armed = "Absorption"  # an alias, any case
    assert link.receiver.armed == "other"
    response = call(link, "table.select.rowList",
                    {"table-id": sent.table_id, "row-list": ["3", "4"]}, sender="TOPCAT")
    assert response["samp.result"] == {"selected": "2", "labelled": "2", "label": "other"}
    log = link.receiver.workspace.entries()
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
    session = link.receiver.workspace.session
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
    assert link.receiver.workspace.entries() == []


def test_a_binary_votable_is_read_too(link, tmp_path):
    sent = link.publisher.prepare_table("candidates")
    path = tmp_path / "binary.vot"
    Table({"id": [sent.ids[0]], "label": ["other"]}).write(path, format="votable",
                                                           tabledata_format="binary")
    response = call(link, "table.load.votable", {"url": path.as_uri()})
    assert response["samp.result"] == {"imported": "1", "refused": "0", "unchanged": "0"}


def test_a_votable_declaring_entities_is_refused(link, tmp_path):
    path = tmp_path / "laughs.vot"
    path.write_text('<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><VOTABLE>&b;</VOTABLE>')
    assert "entity declarations are not read" in call_error(
        link, "table.load.votable", {"url": path.as_uri()})


def label_table(path, ids, label="emission"):
    """A TABLEDATA VOTable of ids and one label, written fast (no astropy)."""
    rows = "".join(f"<TR><TD>{i}</TD><TD>{label}</TD></TR>" for i in ids)
    path.write_text('<?xml version="1.0"?><VOTABLE><RESOURCE><TABLE>'
                    '<FIELD name="id" datatype="char" arraysize="*"/>'
                    '<FIELD name="label" datatype="char" arraysize="*"/>'
                    f"<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>")


def test_a_large_table_is_imported_in_slices_with_other_calls_answered_between(link, tmp_path):
    sent = link.publisher.prepare_table("candidates")
    elsewhere = 8 * FIRST_SLICE  # slices start at FIRST_SLICE and at most double
    ids = [f"elsewhere-{k}" for k in range(elsewhere)] + list(sent.ids)
    label_table(tmp_path / "big.vot", ids)
    table_call = Call("table.load.votable", {"url": (tmp_path / "big.vot").as_uri()}, "c9",
                      "stilts", "big")
    assert link.receiver.process(table_call) is None  # a worker reads it
    steps = []
    while not any(msg_id == "big" for msg_id, _ in link.replies):
        item = link.inbox.get(timeout=60)
        assert isinstance(item, Step)
        steps.append(item)
        link.receiver.process(item)
        if len(steps) == 2:  # the first slice is recorded: another call comes meanwhile
            call(link, "table.highlight.row", {"table-id": sent.table_id, "row": "0"},
                 msg_id="between")
    order = [msg_id for msg_id, _ in link.replies]
    assert order == ["between", "big"]
    response = link.replies[-1][1]
    assert response["samp.result"] == {"imported": str(len(sent.ids)),
                                       "refused": str(elsewhere), "unchanged": "0"}
    assert response["samp.error"]["samp.errortxt"].endswith(f"and {elsewhere - 20} more")
    progress = [detail.text for kind, detail in link.events if kind == "progress"]
    recorded = [int(text.split()[1].replace(",", "")) for text in progress]
    assert len(recorded) >= 3 and recorded == sorted(recorded) and recorded[0] == FIRST_SLICE
    assert all(text.endswith(f"of {len(ids):,} labels") for text in progress)
    imported = [e for kind, detail in link.events if kind == "imported" for e in detail]
    assert [e.spectrum_id for e in imported] == list(sent.ids)


def test_closing_answers_the_calls_still_in_progress(link, tmp_path):
    with socket.socket() as silent:  # accepts, never answers: the download waits
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/t.vot"
        assert link.receiver.process(Call("table.load.votable", {"url": url}, "c9", "topcat",
                                          "slow")) is None
        assert link.receiver.in_progress == 1
        link.receiver.close()
    assert link.replies == [("slow", {"samp.status": "samp.error", "samp.error": {
        "samp.errortxt": "vo-al closed its SAMP link before it finished table.load.votable"}})]


# --------------------------------------------------------------------------
# Trust


def test_untrusted_clients_may_not_touch_labels_or_local_files(link, tmp_path):
    sent = link.publisher.prepare_table("candidates")
    secret = tmp_path / "labels.vot"
    label_table(secret, sent.ids[:2])
    os.mkfifo(tmp_path / "fifo.fits")
    table, row = {"table-id": sent.table_id}, {"row-list": ["0"]}
    asked = [("table.load.votable", {"url": secret.as_uri()}, "import labels from a table"),
             ("table.load.votable", {"url": "http://127.0.0.1:9/t.vot"},
              "import labels from a table"),
             ("voal.label.set", {"spectrum-id": sent.ids[0], "label": "emission"},
              "change labels"),
             ("voal.label.undo", {}, "change labels")]
    files = [secret, tmp_path / "missing.fits", tmp_path / "fifo.fits", Path("/etc/passwd")]
    asked += [("spectrum.load.ssa-generic", {"url": path.as_uri()}, "have a local file read")
              for path in files]
    for mtype, params, what in asked:
        text = call_error(link, mtype, params, sender="webpage")
        assert text.startswith("vo-al takes labels and reads local files only for clients "
                               "the user trusts, and 'webpage' is not one: it may not " + what)
        assert "--trust webpage" in text
    link.receiver.armed = "emission"
    assert "label a selection as emission" in call_error(link, "table.select.rowList",
                                                         {**table, **row}, sender="webpage")
    link.receiver.armed = None
    assert call(link, "table.select.rowList", {**table, **row}, sender="webpage")[
        "samp.status"] == "samp.ok"
    remote = call_error(link, "spectrum.load.ssa-generic", {"url": "http://127.0.0.1:9/s.fits"},
                        sender="webpage")
    assert remote.startswith("cannot read")  # http is open to everyone: it was tried
    assert link.receiver.workspace.entries() == []
    link.receiver.trust.add("webpage")
    assert call(link, "voal.label.set", {"spectrum-id": sent.ids[0], "label": "emission"},
                sender="WebPage")["samp.status"] == "samp.ok"


def test_desktop_tools_are_trusted_by_default_and_names_can_be_added(template, tmp_path):
    directory = tmp_path / "session"
    shutil.copytree(template, directory)
    with Session.open(directory) as session:
        parts = Parts(session, trust=Trust(["my-script"]))
        try:
            for name in ("topcat", "STILTS", "my-script"):
                assert parts.receiver.needs_trust(Call("voal.label.undo", {}, "c1", name)) == ""
            assert parts.receiver.needs_trust(Call("voal.label.undo", {}, "c1", "c5")) == \
                "change labels"
        finally:
            parts.close()
    with pytest.raises(ValueError, match="non-empty"):
        Trust([" "])


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
    config = link.receiver.workspace.config
    with Session.create(tmp_path / "fresh", config.train_path, config.pool_path) as fresh:
        bare = Parts(fresh)
        try:
            url = (real_data / "ondrejov" / "bt-cmi-ondrejov.fits").as_uri()
            response = bare.serve(Call("spectrum.load.ssa-generic", {"url": url}, "c1", "splat",
                                       None))
        finally:
            bare.close()
    assert response["samp.status"] == "samp.warning"
    assert response["samp.error"]["samp.errortxt"].startswith("no trained model yet")
    assert response["samp.result"]["quality"] == "OK" and response["samp.result"]["iteration"] \
        == "0"


def test_a_failing_handler_still_replies(link, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(link.receiver.workspace.session, "label", broken)
    text = call_error(link, "voal.label.set", {"spectrum-id": "x", "label": "other"})
    assert text == "vo-al failed on voal.label.set: RuntimeError: disk on fire"
    assert len(link.replies) == 1


def test_closing_the_link_removes_the_files(template, tmp_path):
    directory = tmp_path / "session"
    shutil.copytree(template, directory)
    with Session.open(directory) as session:
        link = SampLink(Workspace(session), list.append)  # never started: no hub needed
        link.publisher.prepare_table("candidates")
        folder = link.files.directory
        assert any(folder.iterdir())
        link.close()
    assert not folder.exists() and not folder.parent.exists()
