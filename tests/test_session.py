"""Sessions, their id index and the precision estimate, on pools of real files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from vo_al import idindex
from vo_al.idindex import IdIndex
from vo_al.labelfile import read_label_csv
from vo_al.pool import PoolReader, ingest
from vo_al.preprocess import PreprocessConfig
from vo_al.session import (
    LabelRefused,
    Session,
    SessionConfig,
    SessionError,
    precision_estimate,
)


@pytest.fixture(scope="module")
def pools(real_data, tmp_path_factory):
    """A labelled training pool (Ondřejov) and a pool (LAMOST)."""
    folder = tmp_path_factory.mktemp("pools")
    table = folder / "labels.csv"
    table.write_text("id,label\na201402030013,absorption\nuk220017,emission\n"
                     "oe270005,double-peak\n")
    train, pool = folder / "train.h5", folder / "pool.h5"
    ingest([real_data / "ondrejov"], train, labels=read_label_csv(table), workers=1)
    ingest([real_data / "lamost"], pool, workers=1)
    with PoolReader(pool) as reader:
        ids = list(reader.read("id"))
    return train, pool, ids


@pytest.fixture
def session(pools, tmp_path):
    train, pool, _ = pools
    with Session.create(tmp_path / "session", train, pool, seed=7) as session:
        yield session


@pytest.fixture
def ids(pools):
    return pools[2]


# --------------------------------------------------------------------------
# The id index on real pools (its table file and memory: tests/test_idindex.py)


def test_index_finds_every_row_and_refuses_unknown_ids(pools, tmp_path):
    _, pool, ids = pools
    index = IdIndex.build(pool, tmp_path / "index.bin", chunk_rows=5)
    assert len(index) == len(ids)
    rows = index.rows(ids[::-1] + ["nope", ids[3]])
    assert rows.dtype == np.int64
    assert rows.tolist() == list(range(len(ids)))[::-1] + [-1, 3]
    assert index.rows([]).size == 0


def test_hash_collisions_never_give_a_wrong_row(pools, monkeypatch):
    _, pool, ids = pools
    monkeypatch.setattr(idindex, "hash_ids", lambda ids: np.zeros(len(list(ids)), np.uint64))
    index = IdIndex.build(pool)
    assert index.rows([ids[5], "nope", ids[0]]).tolist() == [5, -1, 0]


def test_the_index_cache_of_earlier_versions_is_replaced(session, pools):
    """A session made by an earlier vo-al keeps a pool-index.npz (16 bytes per
    spectrum, loaded whole); the first lookup writes the table and deletes it."""
    _, _, ids = pools
    old = session.directory / "pool-index.npz"
    old.write_bytes(b"PK\x03\x04 an old cache")
    assert session.index.rows(ids[:2]).tolist() == [0, 1]
    assert not old.exists() and (session.directory / "pool-index.bin").is_file()


# --------------------------------------------------------------------------
# Creating and opening


def test_create_and_open_round_trip(session, pools, ids):
    train, pool, _ = pools
    config = session.config
    assert config.train_path == str(train.resolve()) and config.pool_path == str(pool.resolve())
    assert config.class_names == ["other", "emission", "double-peak"]
    assert config.aliases == {"absorption": "other"}
    assert config.interesting == config.class_names[1:]
    assert (config.query_size, config.estimate_size, config.seed) == (100, 30, 7)
    assert config.preprocess == PreprocessConfig().to_attrs()
    assert config.interesting_indices == [1, 2]
    assert session.iteration == 0
    session.label(ids[0], "emission", source="cli")
    directory = session.directory
    session.close()
    with Session.open(directory) as again:
        assert again.config == config
        assert again.log.counts() == {"emission": 1}
    assert SessionConfig.from_json(config.to_json()) == config


def test_not_a_session_and_bad_configs_are_refused(session, tmp_path):
    with pytest.raises(SessionError, match="not a vo-al session"):
        Session.open(tmp_path)
    with pytest.raises(SessionError, match="not empty"):
        Session.create(session.directory, session.config.train_path, session.config.pool_path)
    config = json.loads(session.config.to_json())
    for change in ({"version": 99}, {"colour": "red"}):
        (tmp_path / "config.json").write_text(json.dumps(config | change))
        with pytest.raises(SessionError, match="config"):
            Session.open(tmp_path)
    with pytest.raises(ValueError, match="distinct"):
        SessionConfig("t", "p", class_names=["other", "skip"])


def test_a_session_moves_with_its_survey(pools, tmp_path, ids):
    import shutil

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    for path in pools[:2]:
        shutil.copy(path, project / "data" / path.name)
    with Session.create(project / "run", project / "data" / "train.h5",
                        project / "data" / "pool.h5") as created:
        created.label(ids[0], "emission", source="cli")
    stored = json.loads((project / "run" / "config.json").read_text())
    assert stored["pool_relative"] == os.path.join("..", "data", "pool.h5")
    shutil.copytree(project / "run", tmp_path / "alone")  # moved alone: the absolute path holds
    with Session.open(tmp_path / "alone") as alone:
        assert alone.config.pool_path == str(project / "data" / "pool.h5")
    project.rename(tmp_path / "moved")
    with Session.open(tmp_path / "moved" / "run") as moved:
        assert moved.config.pool_path == str(tmp_path / "moved" / "data" / "pool.h5")
        assert moved.log.current()[ids[0]].label == "emission"


def test_a_moved_pool_is_named_with_the_fix_and_relocate_applies_it(pools, tmp_path, ids):
    from vo_al.cli import main

    train, pool = tmp_path / "train.h5", tmp_path / "pool.h5"
    for source, target in zip(pools[:2], (train, pool)):
        target.write_bytes(source.read_bytes())
    with Session.create(tmp_path / "run", train, pool) as created:
        created.label(ids[0], "emission", source="cli")
    pool.rename(tmp_path / "elsewhere.h5")
    with pytest.raises(SessionError, match=r"pool file .*pool\.h5 is missing.*vo-al relocate"):
        Session.open(tmp_path / "run")
    assert main(["relocate", str(tmp_path / "run"), "--pool", str(train)]) == 2  # another pool
    assert main(["relocate", str(tmp_path / "run"), "--pool",
                 str(tmp_path / "elsewhere.h5")]) == 0
    with Session.open(tmp_path / "run") as session:
        assert session.index.rows([ids[0]])[0] >= 0


def test_mismatched_preprocessing_is_refused(real_data, pools, tmp_path):
    train, _, _ = pools
    other = tmp_path / "pool-100.h5"
    ingest([real_data / "lamost"], other, workers=1, config=PreprocessConfig(n_points=100))
    with pytest.raises(SessionError, match=r"n_points \(train 140, pool 100\)"):
        Session.create(tmp_path / "s", train, other)
    assert not (tmp_path / "s").exists()


def test_unlabelled_or_unknown_training_classes_are_refused(pools, tmp_path):
    train, pool, _ = pools
    with pytest.raises(SessionError, match="no labels"):
        Session.create(tmp_path / "s", pool, pool)
    with pytest.raises(SessionError, match=r"\['absorption'\].*aliases"):
        Session.create(tmp_path / "s", train, pool, aliases={})


# --------------------------------------------------------------------------
# Labels


def test_labels_aliases_skips_and_provenance(session, ids):
    entry = session.label(ids[0], "absorption", source="topcat", sender="topcat-1")
    assert (entry.label, entry.action, entry.purpose, entry.iteration) == (
        "other", "label", "browse", 0)
    assert (entry.source, entry.sender) == ("topcat", "topcat-1")
    skip = session.label(f"  {ids[1]} ", "Skip", source="viewer")
    assert (skip.spectrum_id, skip.label, skip.action) == (ids[1], None, "skip")
    assert session.label(ids[2], "EMISSION", source="cli").label == "emission"


def test_unknown_classes_ids_and_empty_ids_are_refused(session, ids):
    with pytest.raises(LabelRefused, match="unknown class 'star'.*other, emission, double-peak"):
        session.label(ids[0], "star", source="cli")
    with pytest.raises(LabelRefused, match="not in the pool: labels for spectra from elsewhere"):
        session.label("uk220017", "emission", source="cli")
    with pytest.raises(LabelRefused, match="empty spectrum id"):
        session.label(" ", "emission", source="cli")
    assert session.log.entries() == []


def test_unusable_spectra_are_refused(real_data, pools, tmp_path):
    from astropy.io import fits

    with fits.open(real_data / "lamost/spec-56266-GAC080N32V4_sp15-012.fits") as hdul:
        hdul[0].data[0] = 0.0
        hdul.writeto(tmp_path / "zero.fits")
    pool = tmp_path / "pool.h5"
    ingest([tmp_path / "zero.fits"], pool, workers=1)
    with Session.create(tmp_path / "s", pools[0], pool) as session:
        with pytest.raises(LabelRefused, match="unusable .*flat or zero"):
            session.label("spec-56266-GAC080N32V4_sp15-012", "other", source="cli")


def test_label_many_accepts_the_valid_ones_in_one_go(session, ids):
    accepted, refused = session.label_many(
        [(ids[0], "emission"), ("nope", "emission"), (ids[1], "star"), (ids[2], "skip")],
        source="topcat", sender="topcat-1")
    assert [(e.spectrum_id, e.action) for e in accepted] == [(ids[0], "label"), (ids[2], "skip")]
    assert [i for i, _ in refused] == ["nope", ids[1]]
    assert "not in the pool" in refused[0][1] and "unknown class" in refused[1][1]


def test_purpose_is_the_spectrums_role_in_any_completed_iteration(session, ids):
    n = session.begin_iteration()
    session.write_batch(n, "query", ids[:2])
    session.write_batch(n, "estimate", ids[2:4])
    assert session.read_batch(n, "query") == ids[:2]
    assert session.label(ids[0], "emission", source="cli").purpose == "browse"  # not done yet
    session.mark_done(n)
    assert [session.label(i, "other", source="cli").purpose for i in ids[1:5]] == [
        "query", "estimate", "estimate", "browse"]
    assert session.log.current()[ids[1]].iteration == 1
    session.mark_done(session.begin_iteration())  # iteration 2 lists nothing
    assert session.label(ids[2], "emission", source="samp:stilts").purpose == "estimate"
    rows, _ = session.training_labels()
    assert session.index.rows([ids[2]])[0] not in rows and session.roles()[ids[3]] == "estimate"
    assert session.index.rows([ids[1]])[0] in rows  # a query answer is trained on


def test_undo_restores_the_previous_label(session, ids):
    session.label(ids[0], "other", source="viewer")
    session.label(ids[0], "emission", source="viewer")
    undo = session.undo(source="viewer", sender="ann")
    assert undo.action == "undo" and undo.sender == "ann"
    assert session.log.current()[ids[0]].label == "other"


def test_training_labels_leave_out_estimate_skips_and_undone(session, ids):
    n = session.begin_iteration()
    session.write_batch(n, "estimate", [ids[3], ids[4]])
    session.mark_done(n)
    session.label(ids[0], "emission", source="cli")
    session.label(ids[1], "double-peak", source="cli")
    session.label(ids[2], "skip", source="cli")
    session.label(ids[3], "emission", source="cli")  # estimate sample
    session.label(ids[4], "skip", source="cli")  # estimate sample, unsure
    session.label(ids[5], "other", source="cli")
    session.undo(source="cli")
    rows, classes = session.training_labels()
    assert rows.dtype == classes.dtype == np.int64
    assert rows.tolist() == [0, 1] and classes.tolist() == [1, 2]
    assert session.estimate_labels(n) == {ids[3]: 1}


def test_an_iteration_counts_only_once_done(session):
    with pytest.raises(ValueError, match="no completed iteration"):
        session.scored_iteration()
    n = session.begin_iteration()
    assert n == 1 and session.iteration_dir(1).is_dir()
    session.write_metrics(1, {"precision": 0.9})
    assert session.iteration == 0 and session.learning_curve() == []
    with pytest.raises(ValueError, match="cannot be marked done"):
        session.mark_done(2)
    session.mark_done(1)
    session.iteration_dir(2).mkdir()
    (session.iteration_dir(2) / "model.pt").write_bytes(b"partial")  # killed mid-iteration
    session.write_metrics(2, {"precision": 0.5})
    assert session.iteration == 1
    assert session.begin_iteration() == 2 and not (session.iteration_dir(2) / "model.pt").exists()
    assert session.learning_curve() == [{"precision": 0.9, "iteration": 1}]
    assert session.read_metrics(2) == {} and session.read_batch(2, "query") == []
    assert session.iteration_file(2, "checkpoint").name == "model.pt"
    assert session.scored_iteration() == session.scored_iteration(1) == 1
    with pytest.raises(ValueError, match="iteration 2 is not complete"):
        session.scored_iteration(2)


# --------------------------------------------------------------------------
# The precision estimate


def test_exact_interval_of_a_known_example():
    # Clopper-Pearson for 27 of 30: [0.7347, 0.9789] (the beta-distribution quantiles)
    p, low, high, n = precision_estimate([1] * 30, [1] * 27 + [0] * 3, 1)
    assert (p, n) == (0.9, 30)
    assert low == pytest.approx(0.7347, abs=1e-4) and high == pytest.approx(0.9789, abs=1e-4)


def test_interval_keeps_room_below_a_perfect_sample():
    p, low, high, n = precision_estimate([1] * 30, [1] * 30, 1)
    assert (p, high) == (1.0, 1.0) and low == pytest.approx(0.8843, abs=1e-4)


def test_precision_counts_only_spectra_predicted_as_the_class():
    predicted = [0, 1, 2, 1, 2, 0]
    labelled = [1, 1, 1, 0, 2, 0]
    assert precision_estimate(predicted, labelled, 1)[::3] == (0.5, 2)
    assert precision_estimate(predicted, labelled, [1, 2])[::3] == (0.5, 4)
    p, low, high, n = precision_estimate(predicted, labelled, 3)
    assert np.isnan(p) and (low, high, n) == (0.0, 1.0, 0)
    assert precision_estimate([1] * 5, [1] * 5, 1)[2] == 1.0
