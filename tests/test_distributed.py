"""Ingest, scoring and whole iterations on a real Dask ``LocalCluster``
(two single-threaded worker processes), compared bit for bit with the
local path; a worker killed mid-job, a scheduler that goes away, and a
worker running another vo-al, there from the start or joining mid-job."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from vo_al.cli import main
from vo_al.distributed import ClusterError, check_versions, connect, files_per_task, task_rows
from vo_al.features import FeatureCache
from vo_al.loop import IterationOptions, run_iteration
from vo_al.model import build_model
from vo_al.pool import ingest, parts_path
from vo_al.scoring import ScoreConfig, score_pool
from vo_al.session import Session
from vo_al.synth import generate_pools, generate_survey

CLASSES = ["other", "emission", "double-peak"]
#: Small chunks, so that a tiny pool still makes many tasks.
CONFIG = ScoreConfig(precision="fp32", chunk_rows=128, batch_size=48)


@pytest.fixture(scope="module")
def client():
    with connect("local:2") as client:
        yield client


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """``pool.h5`` (1,200 spectra), ``train.h5`` (150, labelled), ``truth.csv``."""
    folder = tmp_path_factory.mktemp("survey")
    generate_pools(folder, n_lamost=1200, n_ondrejov=150, seed=5, emission_fraction=0.05,
                   workers=1)
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """200 LAMOST-layout files and 4 broken ones."""
    folder = tmp_path_factory.mktemp("files")
    generate_survey(folder, n_lamost=200, corrupt=4, seed=6, workers=1)
    return folder / "lamost"


def _assert_same_h5(a, b, skip_attrs=()):
    """Every dataset and attribute of two HDF5 files equal, bit for bit."""
    with h5py.File(a, "r") as x, h5py.File(b, "r") as y:
        assert sorted(x) == sorted(y)
        for name in x:
            assert x[name].dtype == y[name].dtype, name
            first, second = x[name][()], y[name][()]
            if first.dtype.kind == "O":  # strings
                assert list(first) == list(second), name
            else:
                assert first.tobytes() == second.tobytes(), name
        attrs = [{k: v for k, v in h.attrs.items() if k not in skip_attrs} for h in (x, y)]
        assert attrs[0].keys() == attrs[1].keys()
        for key in attrs[0]:
            np.testing.assert_array_equal(attrs[0][key], attrs[1][key], err_msg=key)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# ------------------------------------------------------------------- ingest


def test_ingest_on_the_cluster_equals_a_local_ingest(client, files, tmp_path):
    local = ingest([files], tmp_path / "local.h5", workers=1, shard_rows=64)
    remote = ingest([files], tmp_path / "dask.h5", shard_rows=64, client=client)
    assert (remote.n_inputs, remote.n_spectra, remote.n_rejected) == \
        (local.n_inputs, local.n_spectra, local.n_rejected) and local.n_inputs == 204
    _assert_same_h5(tmp_path / "local.h5", tmp_path / "dask.h5", skip_attrs=("created",))
    assert _rows(tmp_path / "local.rejected.csv") == _rows(tmp_path / "dask.rejected.csv")


def test_an_interrupted_local_ingest_resumes_on_the_cluster(client, files, tmp_path):
    def stop_after_two_shards(done, total):
        if done >= 128:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest([files], tmp_path / "pool.h5", workers=1, shard_rows=64,
               progress=stop_after_two_shards)
    assert len(list(parts_path(tmp_path / "pool.h5").glob("shard-*.npz"))) == 2
    report = ingest([files], tmp_path / "pool.h5", shard_rows=64, client=client)
    assert report.resumed_inputs == 128
    ingest([files], tmp_path / "local.h5", workers=1, shard_rows=64)
    _assert_same_h5(tmp_path / "local.h5", tmp_path / "pool.h5", skip_attrs=("created",))


def test_ingest_tasks_cut_the_shards_a_local_ingest_cuts():
    assert files_per_task(4096, 32) == 256
    assert files_per_task(64, 32) == 64
    assert files_per_task(100, 32) == 128  # a local shard of 100 rows holds 4 batches of 32
    assert files_per_task(4128, 32) == 172  # the largest divisor of 4128 up to 256


# ------------------------------------------------------------------ scoring


@pytest.mark.parametrize("mc_samples", [0, 4])
def test_scores_on_the_cluster_equal_local_scores(client, survey, tmp_path, mc_samples):
    model, config = build_model(seed=3), ScoreConfig(**{**CONFIG.__dict__,
                                                        "mc_samples": mc_samples, "seed": 9})
    local = score_pool(model, survey / "pool.h5", tmp_path / "local.h5", CLASSES, config)
    remote = score_pool(model, survey / "pool.h5", tmp_path / "dask.h5", CLASSES, config,
                        client=client)
    _assert_same_h5(tmp_path / "local.h5", tmp_path / "dask.h5")
    assert remote.n_scored == local.n_scored and remote.class_counts == local.class_counts


def test_the_feature_cache_is_written_and_read_on_the_cluster(client, survey, tmp_path):
    model = build_model(seed=4)
    for where, on in (("local", None), ("dask", client)):
        cache = FeatureCache(tmp_path / f"{where}-features.h5")
        first = score_pool(model, survey / "pool.h5", tmp_path / f"{where}-1.h5", CLASSES,
                           CONFIG, feature_cache=cache, client=on)
        again = score_pool(model, survey / "pool.h5", tmp_path / f"{where}-2.h5", CLASSES,
                           CONFIG, feature_cache=cache, client=on)
        assert not first.features_reused and again.features_reused
    _assert_same_h5(tmp_path / "local-features.h5", tmp_path / "dask-features.h5")
    _assert_same_h5(tmp_path / "local-2.h5", tmp_path / "dask-2.h5")


def test_scoring_tasks_follow_the_pools_chunks():
    assert task_rows(4_136_482, 16384, 4096, threads=16) == 16384
    assert task_rows(4_136_482, 16384, 4096, threads=128) == 4096
    assert task_rows(1000, 16384, 4096, threads=2) == 4096  # never below one HDF5 chunk
    assert task_rows(1000, 128, 4096, threads=2) == 128


# --------------------------------------------------------------- iterations


def _session(survey, folder):
    return Session.create(folder, survey / "train.h5", survey / "pool.h5", query_size=6,
                          estimate_size=4, seed=2)


def test_a_full_iteration_on_the_cluster_equals_a_local_one(client, survey, tmp_path):
    options = IterationOptions(max_epochs=1, strategy="bald", mc_samples=4,
                               cache_features=True, score=CONFIG)
    results = {}
    for where, on in (("local", None), ("dask", client)):
        with _session(survey, tmp_path / where) as session:
            results[where] = run_iteration(session, options, client=on)
            scores = session.iteration_file(1, "scores")
        results[where + "-scores"] = scores
    assert results["dask"].query == results["local"].query
    assert results["dask"].estimate == results["local"].estimate
    _assert_same_h5(results["local-scores"], results["dask-scores"])


# ------------------------------------------------------------------- faults


def _worker_pids(client) -> set[int]:
    return set(client.run(os.getpid).values())


def test_a_worker_killed_mid_scoring_changes_nothing(client, survey, tmp_path):
    model = build_model(seed=7)
    config = ScoreConfig(**{**CONFIG.__dict__, "chunk_rows": 64})
    score_pool(model, survey / "pool.h5", tmp_path / "local.h5", CLASSES, config)
    victim = min(_worker_pids(client))
    killed = []

    def kill_once(done, total):
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    score_pool(model, survey / "pool.h5", tmp_path / "dask.h5", CLASSES, config,
               progress=kill_once, client=client)
    client.wait_for_workers(2)
    assert killed[0] < 1200 and victim not in _worker_pids(client)  # the nanny started another
    _assert_same_h5(tmp_path / "local.h5", tmp_path / "dask.h5")


def _dask(*args):
    return [sys.executable, "-m", "dask", *args]


@pytest.fixture
def own_scheduler(tmp_path):
    """A scheduler and two workers in processes of their own (to kill)."""
    scheduler_file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(_dask("scheduler", "--scheduler-file", str(scheduler_file),
                                       "--port", "0", "--no-dashboard"), **quiet)
    workers = subprocess.Popen(_dask("worker", "--scheduler-file", str(scheduler_file),
                                     "--nworkers", "2", "--nthreads", "1", "--no-dashboard"),
                               **quiet)
    try:
        while not scheduler_file.exists():
            assert scheduler.poll() is None, "the scheduler did not start"
            time.sleep(0.1)
        yield scheduler, scheduler_file
    finally:
        for process in (workers, scheduler):
            process.kill()
            process.wait()


def test_a_scheduler_gone_mid_iteration_leaves_the_session_as_it_was(own_scheduler, survey,
                                                                      tmp_path):
    scheduler, scheduler_file = own_scheduler

    def kill_scheduler(step, event):
        if step == "score" and scheduler.poll() is None:
            scheduler.kill()

    options = IterationOptions(max_epochs=1, score=CONFIG)
    with connect(scheduler_file=scheduler_file) as client, \
            _session(survey, tmp_path / "s") as session:
        with pytest.raises(ClusterError, match="connection to the Dask scheduler .* was lost"):
            run_iteration(session, options, progress=kill_scheduler, client=client)
        assert session.iteration == 0
        assert not session.iteration_file(1, "scores").parent.exists()


def _other_vo_al_site(folder):
    """A folder whose ``vo_al-99.0.dist-info`` makes vo-al 99.0 where it comes first on the path."""
    info = folder / "vo_al-99.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vo-al\nVersion: 99.0\n")
    return folder


def test_a_worker_with_another_vo_al_is_refused(client, tmp_path):
    fake = _other_vo_al_site(tmp_path / "site")

    def install(on: bool):
        from distributed.versions import _version_cached

        (sys.path.insert(0, str(fake)) if on else sys.path.remove(str(fake)))
        _version_cached.cache_clear()

    client.run(install, True)
    try:
        with pytest.raises(ClusterError, match=r"(?s)other versions.*vo-al.*99\.0"):
            check_versions(client)
    finally:
        client.run(install, False)
    check_versions(client)


def _wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def other_vo_al(client, tmp_path):
    """``join()`` adds to ``client``'s cluster a worker process of its own
    whose environment has vo-al 99.0 (a dist-info first on its PYTHONPATH)
    and returns it; ``leave(process)`` stops it. Those left are stopped at
    the end."""
    path = [str(_other_vo_al_site(tmp_path / "site")), os.environ.get("PYTHONPATH")]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    workers = len(client.nthreads())
    started = []

    def join() -> subprocess.Popen:
        started.append(subprocess.Popen(
            _dask("worker", client.scheduler.address, "--nthreads", "1", "--no-nanny",
                  "--no-dashboard"),
            env=environment, cwd=tmp_path,  # not the source tree: its vo_al.egg-info says 0.1
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client.wait_for_workers(workers + 1, timeout=120)
        return started[-1]

    def leave(process: subprocess.Popen):
        process.kill()
        process.wait()
        _wait_for(lambda: len(client.nthreads()) == workers, "the worker to leave")

    join.leave = leave
    yield join
    for process in started:
        if process.poll() is None:
            leave(process)


#: The one line of a job refused because a worker runs vo-al 99.0.
OTHER_VO_AL = (r"^the Dask worker at tcp://\S+ runs other versions than this process: "
               r"vo-al 99\.0 \(this process: [^)]+\); install one environment on every node "
               r"\(docs/cluster\.md\)$")


def test_a_worker_with_another_vo_al_joining_mid_ingest_stops_it(client, other_vo_al, files,
                                                                 tmp_path):
    joined = []

    def join_after_the_first_shard(done, total):
        if done and not joined:
            joined.append(other_vo_al())

    with pytest.raises(ClusterError, match=OTHER_VO_AL):
        ingest([files], tmp_path / "pool.h5", shard_rows=8, client=client,
               progress=join_after_the_first_shard)
    assert not (tmp_path / "pool.h5").exists()
    other_vo_al.leave(joined[0])
    report = ingest([files], tmp_path / "pool.h5", shard_rows=8, client=client)
    assert 0 < report.resumed_inputs < report.n_inputs
    ingest([files], tmp_path / "local.h5", workers=1, shard_rows=8)
    _assert_same_h5(tmp_path / "local.h5", tmp_path / "pool.h5", skip_attrs=("created",))


def test_a_worker_with_another_vo_al_joining_mid_iteration_leaves_the_session_as_it_was(
        client, other_vo_al, survey, tmp_path):
    joined = []

    def join_while_scoring(step, event):
        if step == "score" and not joined:
            joined.append(other_vo_al())

    options = IterationOptions(max_epochs=1, score=ScoreConfig(**{**CONFIG.__dict__,
                                                                   "chunk_rows": 64}))
    with _session(survey, tmp_path / "s") as session:
        with pytest.raises(ClusterError, match=OTHER_VO_AL):
            run_iteration(session, options, progress=join_while_scoring, client=client)
        assert joined and session.iteration == 0
        assert not session.iteration_file(1, "scores").parent.exists()


# ---------------------------------------------------------------------- CLI


def test_cli_ingest_with_a_local_cluster(files, tmp_path, capsys):
    assert main(["ingest", str(files), "--out", str(tmp_path / "dask.h5"),
                 "--dask", "local:1", "--shard-rows", "64"]) == 0
    ingest([files], tmp_path / "local.h5", workers=1, shard_rows=64)
    _assert_same_h5(tmp_path / "local.h5", tmp_path / "dask.h5", skip_attrs=("created",))
    assert main(["ingest", str(files), "--out", str(tmp_path / "x.h5"),
                 "--dask", "local:none"]) == 2
    assert "expected local:N" in capsys.readouterr().err
