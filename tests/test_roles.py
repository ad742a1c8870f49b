"""A spectrum's role is decided by the session, whatever door its label
comes through and whenever: a spectrum drawn into an estimate sample is
never trained on (it still counts for the estimate of the iteration that
drew it), and every other answer is trained on, none held out for
validation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.table import Table

from test_samp_receiver import Parts, call
from test_samp_support import build_session
from vo_al.cli import main
from vo_al.idindex import read_rows
from vo_al.loop import IterationOptions, precision_curve, run_iteration, training_set
from vo_al.session import Session
from vo_al.simulate import simulate

FAST = IterationOptions(max_epochs=1, query_size=5, estimate_size=3)


@pytest.fixture(scope="module")
def template(real_data, manifest, tmp_path_factory):
    """A session after two iterations: iteration 1's estimate sample is
    answered only later, after iteration 2, as a user might."""
    directory = build_session(real_data, manifest, tmp_path_factory.mktemp("roles"))
    with Session.open(directory) as session:
        assert len(session.read_batch(1, "estimate")) == 3
        run_iteration(session, FAST)
    return directory


@pytest.fixture
def session(template, tmp_path):
    shutil.copytree(template, tmp_path / "s")
    with Session.open(tmp_path / "s") as opened:
        yield opened


def trained_ids(session) -> set[str]:
    """Ids of the pool spectra the next iteration would train on."""
    rows, _ = session.training_labels()
    with session.pool() as pool:
        return {str(i) for i in read_rows(pool, "id", rows)} if len(rows) else set()


def estimate_id(session) -> str:
    return session.read_batch(1, "estimate")[0]


def assert_estimate_only(session, spectrum_id):
    """The answer is recorded as an estimate answer, counts for iteration 1's
    estimate, and is not in what the next iteration trains on."""
    entry = session.log.current()[spectrum_id]
    assert entry.action == "label" and entry.purpose == "estimate"
    assert spectrum_id not in trained_ids(session)
    assert precision_curve(session)[0]["labelled"] == 1
    result = run_iteration(session, FAST)
    assert result.metrics["n_answers"] == 0  # nothing of the pool was trained on
    assert spectrum_id not in result.query + result.estimate


def test_the_role_outlives_the_iteration_that_drew_it(session):
    roles = session.roles()
    assert all(roles[i] == "estimate" for i in session.read_batch(1, "estimate"))
    assert all(roles[i] == "query" for i in session.read_batch(2, "query"))
    assert session.iteration == 2  # iteration 1's lists are no longer the latest


def test_cli_label_door(session):
    assert main(["label", str(session.directory), estimate_id(session), "emission"]) == 0
    assert_estimate_only(session, estimate_id(session))


def test_cli_import_door(session, tmp_path):
    path = tmp_path / "answers.csv"
    Table({"id": [estimate_id(session)], "label": ["other"]}).write(path)
    assert main(["import-labels", str(session.directory), str(path)]) == 0
    assert_estimate_only(session, estimate_id(session))


@pytest.fixture
def samp(session):
    parts = Parts(session)
    yield parts
    parts.close()


def sent_row(samp, spectrum_id) -> tuple[str, str]:
    """A table of iteration 1's batch sent to a peer, and the spectrum's row in it."""
    sent = samp.publisher.prepare_table("query", iteration=1)
    return sent.table_id, str(sent.ids.index(spectrum_id))


def test_samp_highlight_then_label_door(session, samp):
    table_id, row = sent_row(samp, estimate_id(session))
    call(samp, "table.highlight.row", {"table-id": table_id, "row": row})
    call(samp, "voal.label.set", {"spectrum-id": samp.receiver.current, "label": "emission"})
    assert_estimate_only(session, estimate_id(session))


def test_samp_row_list_door(session, samp):
    table_id, row = sent_row(samp, estimate_id(session))
    samp.receiver.armed = "emission"
    response = call(samp, "table.select.rowList", {"table-id": table_id, "row-list": [row]})
    assert response["samp.result"]["labelled"] == "1"
    assert_estimate_only(session, estimate_id(session))


def test_samp_label_table_door(session, samp, tmp_path):
    path = tmp_path / "labels.vot"
    Table({"id": [estimate_id(session)], "label": ["double-peak"]}).write(path, format="votable")
    response = call(samp, "table.load.votable", {"url": path.as_uri()}, sender="stilts")
    assert response["samp.result"]["imported"] == "1"
    assert_estimate_only(session, estimate_id(session))


def test_samp_label_set_door(session, samp):
    table_id, row = sent_row(samp, estimate_id(session))
    response = call(samp, "voal.label.set", {"table-id": table_id, "row": row, "label": "other"})
    assert response["samp.result"]["purpose"] == "estimate"
    assert_estimate_only(session, estimate_id(session))


def test_simulated_oracle_door(session, tmp_path):
    truth = tmp_path / "truth.csv"
    with session.pool() as pool:
        ids = [str(i) for i in pool.read("id")]
    Table({"id": ids, "class": ["emission"] * len(ids)}).write(truth)
    simulate(session, truth, 1, FAST, baseline=None)  # answers iteration 3's batches
    roles = session.roles()
    trained = trained_ids(session)
    answered = set(session.log.current())
    assert trained == {i for i in answered if roles.get(i) != "estimate"}
    assert not trained & {i for i, role in roles.items() if role == "estimate"}


def test_every_answer_is_trained_on_and_none_validates(session):
    queried = session.read_batch(2, "query")
    session.label_many([(i, "emission") for i in queried], source="cli")
    x, y, n_source = training_set(session)
    assert len(y) - n_source == len(queried)
    result = run_iteration(session, FAST)
    metrics = session.read_metrics(result.iteration)
    assert metrics["n_answers"] == len(queried)
    assert metrics["n_val_answers"] == 0 and metrics["n_val"] >= 1
    assert metrics["n_train"] == len(y)
    assert np.all(y[n_source:] == session.config.class_index("emission"))
