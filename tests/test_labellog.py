"""The append-only label log: semantics, concurrency and crash safety."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing

import pytest

from vo_al.labellog import SCHEMA_VERSION, LabelLog, LabelLogError

_ENTRY = dict(source="cli", sender="ann", iteration=0, purpose="query")


@pytest.fixture
def log(tmp_path):
    with LabelLog(tmp_path / "labels.sqlite") as log:
        yield log


def _raw(path):
    """A plain sqlite connection, closed by ``with closing(...)``."""
    return closing(sqlite3.connect(path))


def test_append_records_provenance_and_commits(log):
    entry = log.append("a", "emission", **_ENTRY)
    assert (entry.seq, entry.spectrum_id, entry.label, entry.action) == (
        1, "a", "emission", "label")
    assert (entry.source, entry.sender, entry.iteration, entry.purpose) == (
        "cli", "ann", 0, "query")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry.time)
    with _raw(log.path) as db:  # another connection sees it: committed
        rows = db.execute("SELECT spectrum_id, label FROM entries").fetchall()
        assert rows == [("a", "emission")]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert log.entries() == [entry]


def test_entries_after_sees_what_another_connection_committed(log):
    assert log.last_seq() == 0
    log.append("a", "emission", **_ENTRY)
    with LabelLog(log.path) as other:  # another door on the same session
        other.append("b", "other", **_ENTRY)
        other.undo(source="cli")
    assert log.last_seq() == 3
    later = log.entries_after(1)
    assert [(e.seq, e.spectrum_id, e.action) for e in later] == [(2, "b", "label"), (3, "b", "undo")]
    assert later[0].undone and log.entries_after(3) == []


def test_current_and_counts_follow_the_latest_answer(log):
    log.append("a", "other", **_ENTRY)
    log.append("b", "emission", **_ENTRY)
    log.append("a", "emission", **_ENTRY)
    skip = log.append("c", None, action="skip", **_ENTRY)
    current = log.current()
    assert list(current) == ["b", "a", "c"]
    assert current["a"].label == "emission" and current["c"] == skip
    assert log.counts() == {"emission": 2}


def test_current_of_some_spectra_is_the_whole_answer_in_force_restricted(log):
    """What an import checks against: the answers in force of its own
    spectra only (more of them than one query binds), undos included."""
    rows = [dict(spectrum_id=f"s{i}", label="other", **_ENTRY) for i in range(2500)]
    log.append_many(rows)
    log.append("s7", "emission", **_ENTRY)
    log.undo(source="viewer", spectrum_id="s7")
    log.append("s8", None, action="skip", **_ENTRY)
    log.undo(source="viewer", spectrum_id="s9")
    wanted = [f"s{i}" for i in range(0, 2500, 2)] + ["s9", "s8", "absent", "s8"]
    whole = log.current()
    some = log.current(wanted)
    assert some == {i: e for i, e in whole.items() if i in set(wanted)}
    assert list(some) == [i for i in whole if i in set(wanted)]  # log order
    assert some["s8"].action == "skip" and "s9" not in some and "absent" not in some
    assert log.current([]) == {}


def test_undo_walks_back_and_restores_the_previous_label(log):
    first = log.append("a", "other", **_ENTRY)
    second = log.append("a", "emission", **_ENTRY)
    undo = log.undo(source="viewer", sender="ann", iteration=3)
    assert (undo.action, undo.undoes, undo.spectrum_id, undo.label) == (
        "undo", second.seq, "a", None)
    assert undo.iteration == 3 and undo.purpose is None
    assert log.current()["a"].seq == first.seq
    assert log.undo(source="viewer").undoes == first.seq
    assert log.current() == {} and log.counts() == {}
    assert log.undo(source="viewer") is None
    flags = [(e.seq, e.action, e.undone) for e in log.entries()]
    assert flags == [(1, "label", True), (2, "label", True), (3, "undo", False), (4, "undo", False)]
    assert log.entries(include_undone=False) == []


def test_undo_of_one_spectrum_leaves_the_others(log):
    log.append("a", "other", **_ENTRY)
    log.append("b", "emission", **_ENTRY)
    assert log.undo(source="cli", spectrum_id="a").undoes == 1
    assert list(log.current()) == ["b"]
    assert log.undo(source="cli", spectrum_id="a") is None
    assert [e.seq for e in log.entries(spectrum_id="a")] == [1, 3]


def test_rows_are_never_updated_or_deleted(log):
    log.append("a", "other", **_ENTRY)
    with _raw(log.path) as db:
        for statement in ("UPDATE entries SET label = 'emission'", "DELETE FROM entries"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)
    assert log.current()["a"].label == "other"


@pytest.mark.parametrize("bad", [
    dict(spectrum_id=""), dict(label=None), dict(label="x", action="skip"),
    dict(action="undo"), dict(purpose="whatever"), dict(source=""), dict(iteration="1"),
])
def test_invalid_entries_are_refused(log, bad):
    row = dict(spectrum_id="a", label="other", **_ENTRY) | bad
    with pytest.raises(ValueError):
        log.append(**row)
    assert log.entries() == []


def test_append_many_is_one_transaction(log):
    rows = [dict(spectrum_id=f"s{i}", label="other", **_ENTRY) for i in range(3)]
    assert [e.seq for e in log.append_many(rows)] == [1, 2, 3]
    with pytest.raises(ValueError):
        log.append_many(rows + [dict(rows[0], purpose="bad")])
    assert len(log.entries()) == 3
    log.append("t", "other", **_ENTRY)  # the log still works after the rollback


def test_a_second_log_on_the_same_file_reads_and_writes(log):
    log.append("a", "other", **_ENTRY)
    with LabelLog(log.path) as other:
        assert other.current()["a"].label == "other"
        other.append("b", "emission", **_ENTRY)
    assert list(log.current()) == ["a", "b"]


def test_other_databases_and_newer_schemas_are_refused(tmp_path):
    with _raw(tmp_path / "other.sqlite") as db:
        db.execute("CREATE TABLE t (x)")
        db.commit()
    with pytest.raises(LabelLogError, match="not a vo-al label log"):
        LabelLog(tmp_path / "other.sqlite")
    (tmp_path / "text.sqlite").write_text("not a database at all, just some text" * 50)
    with pytest.raises(LabelLogError, match="not a vo-al label log"):
        LabelLog(tmp_path / "text.sqlite")
    LabelLog(tmp_path / "new.sqlite").close()
    with _raw(tmp_path / "new.sqlite") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LabelLogError, match="upgrade"):
        LabelLog(tmp_path / "new.sqlite")


# --------------------------------------------------------------------------
# Crash safety: a child process is killed with SIGKILL.

_CHILD = """
import sys, time
from vo_al.labellog import LabelLog
log = LabelLog(sys.argv[1])
{body}
"""

_APPEND_LOOP = """
for i in range(100_000):
    entry = log.append(f"s{i}", ("other", "emission")[i % 2], source="simulated",
                       sender="child", iteration=i // 10, purpose="query")
    print(entry.seq, entry.spectrum_id, entry.label, flush=True)
"""

_BIG_BATCHES = """
def rows(n, pause_at=None):
    for i in range(n):
        if i == pause_at:
            print("inside", flush=True)
            time.sleep(60)
        yield dict(spectrum_id=f"b{i}", label="emission", source="import",
                   iteration=0, purpose="import")
print(len(log.append_many(rows(2000))), flush=True)
log.append_many(rows(50_000, pause_at=40_000))
"""


def _child(path, body):
    code = textwrap.dedent(_CHILD).format(body=textwrap.dedent(body))
    return subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            text=True)


def _kill(child):
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL


def _integrity(path):
    with _raw(path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def test_every_confirmed_label_survives_a_kill(tmp_path):
    path = tmp_path / "labels.sqlite"
    child = _child(path, _APPEND_LOOP)
    confirmed = [child.stdout.readline().split() for _ in range(60)]
    _kill(child)
    assert _integrity(path) == "ok"
    with LabelLog(path) as log:
        stored = {e.seq: [str(e.seq), e.spectrum_id, e.label] for e in log.entries()}
        for seq, spectrum_id, label in confirmed:
            assert stored[int(seq)] == [seq, spectrum_id, label]
        assert len(stored) >= len(confirmed)
        entry = log.append("after", "other", source="cli", iteration=0, purpose="browse")
        assert entry.seq == max(stored) + 1


def test_a_killed_batch_leaves_all_rows_or_none(tmp_path):
    path = tmp_path / "labels.sqlite"
    child = _child(path, _BIG_BATCHES)
    assert child.stdout.readline().strip() == "2000"  # the first batch committed
    assert child.stdout.readline().strip() == "inside"  # 40,000 rows into the second
    _kill(child)
    assert _integrity(path) == "ok"
    with LabelLog(path) as log:
        assert len(log.entries()) == 2000
        assert log.append("after", "other", source="cli", iteration=0, purpose="browse").seq == 2001
