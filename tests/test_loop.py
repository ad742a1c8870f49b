"""A tiny end-to-end loop on real files, through the library and the CLI,
and the crash guarantees: kill -9 during labelling or training loses no
confirmed label and leaves a session that opens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.table import Table

from vo_al.cli import main
from vo_al.loop import IterationOptions, labelled_rows, precision_curve, run_iteration
from vo_al.scoring import ScoresReader
from vo_al.session import LabelRefused, Session

FAST = IterationOptions(max_epochs=2, query_size=4, estimate_size=3)


@pytest.fixture
def session(pools, tmp_path):
    train, pool = pools
    with Session.create(tmp_path / "s", train, pool, query_size=4, estimate_size=3) as s:
        yield s


def test_one_iteration_then_labels_then_a_warm_iteration(session):
    first = run_iteration(session, FAST)
    assert session.iteration == 1 and len(first.query) == 4
    assert not set(first.query) & set(first.estimate)
    with ScoresReader(session.iteration_file(1, "scores")) as scores:
        assert len(scores) == 18
    for spectrum_id in first.query[:2]:
        assert session.label(spectrum_id, "emission", source="cli").purpose == "query"
    session.label(first.query[2], "skip", source="cli")
    assert len(labelled_rows(session)) == 3
    second = run_iteration(session, IterationOptions(max_epochs=2, query_size=4, mode="warm"))
    assert second.metrics["n_train"] == 15 + 2  # the skip is not trained on
    assert not set(second.query) & set(first.query[:3])  # answered spectra are not asked again
    assert [p["iteration"] for p in precision_curve(session)] == [1, 2]


def test_estimate_labels_make_the_learning_curve(session):
    result = run_iteration(session, IterationOptions(max_epochs=1, query_size=2, estimate_size=18))
    predicted = session.read_metrics(1)["estimate_predicted"]
    assert set(predicted) == set(result.estimate)
    for spectrum_id in result.estimate:
        name = session.config.class_names[predicted[spectrum_id]]
        session.label(spectrum_id, name, source="simulated")
    point = precision_curve(session)[-1]
    assert result.estimate, "the first model predicts no spectrum interesting: nothing to check"
    assert point["overall"]["precision"] == 1.0 and point["labelled"] == len(result.estimate)
    rows, _ = session.training_labels()
    assert len(rows) == 0  # estimate answers are never trained on


def test_refused_labels(session):
    with pytest.raises(LabelRefused, match="not in the pool"):
        session.label("spec-from-elsewhere", "emission", source="samp:topcat")
    with pytest.raises(LabelRefused, match="unknown class"):
        session.label("359910161", "blue", source="cli")
    assert session.log.entries() == []


def test_cli_round_trip(pools, tmp_path, capsys):
    train, pool = pools
    s = str(tmp_path / "cli")
    assert main(["init", s, "--train", str(train), "--pool", str(pool), "--query-size", "3",
                 "--estimate-size", "2"]) == 0
    assert main(["iterate", s, "--max-epochs", "1", "--precision", "fp32"]) == 0
    capsys.readouterr()
    assert main(["queue", s, "--json"]) == 0
    queue = json.loads(capsys.readouterr().out)["queue"]
    first = queue[0]["id"]
    assert main(["label", s, first, "emission"]) == 0
    assert main(["label", s, first, "violet"]) == 2
    assert main(["undo", s]) == 0
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text(f"id,label\n{first},double-peak\nnot-mine,emission\n")
    assert main(["import-labels", s, str(labels_csv)]) == 2  # not-mine is refused: non-zero
    capsys.readouterr()
    assert main(["labels", s, "--json"]) == 0
    log = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in log] == ["label", "undo", "label"]
    assert log[0]["undone"] and log[2]["source"] == "import" and log[2]["label"] == "double-peak"
    for suffix in ("vot", "fits", "csv"):
        assert main(["export", s, str(tmp_path / f"c.{suffix}")]) == 0
    table = Table.read(tmp_path / "c.vot")
    assert first in list(table["id"])
    row = table[list(table["id"]).index(first)]
    assert row["label"] == "double-peak" and row["label_source"] == "import"
    from astropy.io.votable import parse_single_table

    fields = {f.name: f.ucd for f in parse_single_table(tmp_path / "c.vot").fields}
    assert fields["ra"] == "pos.eq.ra;meta.main" and fields["id"] == "meta.id;meta.main"
    assert set(Table.read(tmp_path / "c.fits")["id"]) == set(table["id"])
    capsys.readouterr()
    assert main(["status", s, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["iteration"] == 1 and status["label_counts"] == {"double-peak": 1}


LABELLER = r"""
import sys
from vo_al.session import Session
session = Session.open(sys.argv[1])
ids = sys.argv[2:]
k = 0
while True:
    entry = session.label(ids[k % len(ids)], ("emission", "other")[k % 2], source="cli")
    print(entry.seq, flush=True)
    k += 1
"""


def _kill_after(process, lines):
    confirmed = []
    while len(confirmed) < lines:
        confirmed.append(int(process.stdout.readline()))
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    return confirmed


def test_kill_9_while_labelling_loses_no_confirmed_label(session, pools):
    with session.pool() as pool:
        ids = list(pool.read("id"))[:5]
    process = subprocess.Popen([sys.executable, "-c", LABELLER, str(session.directory), *ids],
                               stdout=subprocess.PIPE, text=True)
    confirmed = _kill_after(process, 40)
    with Session.open(session.directory) as reopened:
        seqs = {e.seq for e in reopened.log.entries()}
        assert set(confirmed) <= seqs
        reopened.label(ids[0], "emission", source="cli")


def test_kill_9_while_training_keeps_labels_and_previous_iteration(session, tmp_path):
    with session.pool() as pool:
        ids = list(pool.read("id"))[:3]
    for spectrum_id in ids:
        session.label(spectrum_id, "emission", source="cli")
    before = [(e.seq, e.spectrum_id, e.label) for e in session.log.entries()]
    process = subprocess.Popen(
        [sys.executable, "-m", "vo_al.cli", "iterate", str(session.directory),
         "--max-epochs", "100000"], stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not session.iteration_dir(1).is_dir() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # well inside training
    assert process.poll() is None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with Session.open(session.directory) as reopened:
        assert reopened.iteration == 0
        assert [(e.seq, e.spectrum_id, e.label) for e in reopened.log.entries()] == before
        result = run_iteration(reopened, FAST)
        assert result.iteration == 1 and reopened.iteration == 1


@pytest.mark.parametrize("options", [
    IterationOptions(max_epochs=1, query_size=3, estimate_size=2, diversity="coreset"),
    IterationOptions(max_epochs=1, query_size=3, estimate_size=2, diversity="kmeans++"),
    IterationOptions(max_epochs=1, query_size=3, estimate_size=2, strategy="bald"),
    IterationOptions(max_epochs=1, query_size=3, estimate_size=2, strategy="random"),
], ids=["coreset", "kmeans++", "bald", "random"])
def test_other_strategies_choose_fresh_distinct_spectra(session, options):
    session.label("359910161", "other", source="cli")
    result = run_iteration(session, options)
    assert len(set(result.query)) == 3 and "359910161" not in result.query
    with ScoresReader(session.iteration_file(1, "scores")) as scores:
        assert scores.has_bald == (options.strategy == "bald")


def test_head_only_iteration_rescores_from_cached_trunk_features(session):
    first = run_iteration(session, IterationOptions(max_epochs=1, query_size=3, estimate_size=2,
                                                    cache_features=True))
    assert (session.directory / "features.h5").is_file()
    assert first.metrics["features_reused"] is False
    second = run_iteration(session, IterationOptions(max_epochs=2, query_size=3, estimate_size=2,
                                                     mode="head"))
    assert second.metrics["features_reused"] is True
    from vo_al.scoring import ScoreConfig, score_pool
    from vo_al.train import load_checkpoint

    model = load_checkpoint(session.iteration_file(2, "checkpoint")).model
    full = score_pool(model, session.config.pool_path, session.directory / "full.h5",
                      session.config.class_names, ScoreConfig(precision="fp32"))
    assert not full.features_reused
    with ScoresReader(full.path) as a, ScoresReader(session.iteration_file(2, "scores")) as b:
        np.testing.assert_allclose(a.read("probs"), b.read("probs"), atol=0.02)
        assert (a.read("predicted") == b.read("predicted")).mean() >= 0.9
