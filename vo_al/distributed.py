"""Ingest and scoring on a Dask cluster (``dask.distributed``): the same
results as on one machine, from a laptop's ``LocalCluster`` to SLURM.

The client (the ``vo-al`` process) stays the only writer of every HDF5
file; workers read the pool from a file system they share with it and send
results back:

- Ingest: batches of a few hundred files per task (one file per task costs
  ≈10 CPU-ms of overhead each); results come back in input order, so the
  shards, the pool and its rejected list are those of a local ingest.
- Scoring: one task per chunk of pool rows, aligned to the pool's HDF5
  chunks, with at least :data:`TASKS_PER_THREAD` tasks per worker thread
  where the pool allows it. The model's weights go to each worker once, in
  a :class:`ModelPlugin` that also tunes the worker's allocator and torch
  threads; tasks return probabilities (12 B per spectrum), and trunk
  features only when the feature cache is being written.

Every task first checks that its worker runs the client's versions (a
:class:`VersionPlugin`, which reaches workers that join mid-job too); a
worker that does not fails the job with :class:`ClusterError`. A worker
that dies is replaced and its tasks run again (Dask's own recovery); a
scheduler that goes away raises :class:`ClusterError`. See
``docs/cluster.md``.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import uuid
import warnings
from collections import deque
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import dask
import h5py
from distributed import Client, LocalCluster, as_completed, get_worker
from distributed.comm.core import CommClosedError
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.scheduler import KilledWorker

from .cancel import check_cancel
from .pool import PoolReader

if TYPE_CHECKING:  # torch is imported where scoring needs it: ingest runs without it
    import torch

    from .model import SpectrumCNN

__all__ = [
    "ClusterError",
    "LOCAL_PREFIX",
    "WORKER_ENVIRON",
    "WORKER_CONFIG",
    "FILES_PER_TASK",
    "TASKS_PER_THREAD",
    "CHECKED_PACKAGES",
    "connect",
    "check_versions",
    "VersionPlugin",
    "total_threads",
    "files_per_task",
    "task_rows",
    "map_ordered",
    "map_unordered",
    "ModelPlugin",
    "model_on_workers",
    "score_chunks",
]

#: ``--dask local:N`` starts a LocalCluster of N worker processes here.
LOCAL_PREFIX = "local:"
#: Most files per ingest task (DESIGN.md §8: ≈250).
FILES_PER_TASK = 256
#: Scoring tasks wanted per worker thread, so that no core idles at the end.
TASKS_PER_THREAD = 8
#: Tasks in flight per worker thread: scoring (unordered) and ingest (in order).
SCORE_IN_FLIGHT = 2
INGEST_IN_FLIGHT = 4
#: Environment of the worker processes vo-al starts (``local:N``); give it to
#: the workers of any cluster (see :func:`vo_al.runtime.share_main_arena`).
WORKER_ENVIRON = {"MALLOC_ARENA_MAX": "1"}
#: Dask configuration of the workers vo-al starts: no statistical profiler
#: sampling the task threads' stacks every 10 ms (it costs pure-Python file
#: parsing CPU time; it only feeds the dashboard's profile page).
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}
_PRE_SPAWN_ENVIRON = "distributed.nanny.pre-spawn-environ"
#: Distributions whose versions must be the same on the client and every worker.
CHECKED_PACKAGES = ("vo-al", "torch", "numpy", "h5py", "astropy")


class ClusterError(RuntimeError):
    """The Dask cluster cannot do the job: unreachable, gone mid-job, or
    running other versions of vo-al or its libraries than this process."""


# --------------------------------------------------------------------------
# Connecting


@contextmanager
def connect(address: str | None = None, scheduler_file=None) -> Iterator[Client | None]:
    """A checked Dask client, closed on exit; None when no cluster is named.

    Parameters
    ----------
    address : str, optional
        A scheduler address (``tcp://host:8786``), or ``local:N`` for a
        :class:`~distributed.LocalCluster` of N single-threaded worker
        processes started here and stopped on exit.
    scheduler_file : path-like, optional
        The scheduler file of a running cluster (``dask scheduler
        --scheduler-file``); used when ``address`` is None.

    Yields
    ------
    distributed.Client or None

    Raises
    ------
    ClusterError
        The scheduler cannot be reached, or :func:`check_versions` fails.
    """
    if address is None and scheduler_file is None:
        yield None
        return
    with _open_client(address, scheduler_file) as client:
        client.wait_for_workers(1)
        check_versions(client)
        yield client


@contextmanager
def _open_client(address, scheduler_file) -> Iterator[Client]:
    if address is not None and address.startswith(LOCAL_PREFIX):
        with _local_cluster(address) as cluster, Client(cluster, set_as_default=False) as client:
            yield client
        return
    target = address if address is not None else f"scheduler file {scheduler_file}"
    try:
        client = (Client(address, set_as_default=False) if address is not None
                  else Client(scheduler_file=str(scheduler_file), set_as_default=False))
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {target}: {exc}") from exc
    try:
        yield client
    finally:
        _close(client)


def _close(client: Client):
    """Close ``client``; when its scheduler has gone, without the traceback
    Dask logs for the reconnection that closing abandons."""
    logger = logging.getLogger("distributed.client")
    level = logger.level
    if client.status != "running":
        logger.setLevel(logging.CRITICAL)
    try:
        client.close()
    finally:
        logger.setLevel(level)


def _local_cluster(address: str) -> LocalCluster:
    """N single-threaded worker processes with :data:`WORKER_CONFIG`."""
    count = address[len(LOCAL_PREFIX):]
    if not count.isdigit() or int(count) < 1:
        raise ClusterError(f"--dask {address}: expected local:N with N >= 1 worker processes")
    config = {**WORKER_CONFIG, _PRE_SPAWN_ENVIRON: {**dask.config.get(_PRE_SPAWN_ENVIRON),
                                                    **WORKER_ENVIRON}}
    with dask.config.set(config):  # each nanny keeps the configuration it was made with
        return LocalCluster(n_workers=int(count), threads_per_worker=1, processes=True,
                            dashboard_address=":0")


def check_versions(client: Client) -> dict:
    """Refuse a cluster whose versions differ from this process's.

    ``client.get_versions(check=True)`` compares Python, Dask's own
    packages and :data:`CHECKED_PACKAGES` on the client, the scheduler and
    every worker; it only warns, so the warning is turned into an error
    here: workers with another vo-al or torch would score differently, or
    fail to unpickle the tasks. It sees the workers there now; those that
    join later are checked by every job's :class:`VersionPlugin`.

    Returns
    -------
    dict
        The versions, as ``get_versions`` returns them.

    Raises
    ------
    ClusterError
        Naming each package that differs and where.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Mismatched versions")
        try:
            return client.get_versions(check=True, packages=list(CHECKED_PACKAGES))
        except UserWarning as exc:
            raise ClusterError("the Dask cluster runs other versions than this process; "
                               "install one environment on every node (docs/cluster.md).\n"
                               f"{exc}") from exc


def total_threads(client: Client) -> int:
    """Worker threads in the cluster now (at least 1)."""
    return max(1, sum(client.nthreads().values()))


# --------------------------------------------------------------------------
# Running tasks


def _local_versions() -> dict[str, str | None]:
    """Python's and :data:`CHECKED_PACKAGES`' versions in this process.

    Returns
    -------
    dict
        ``{"python": "3.11.9", "vo-al": "0.1.0", …}``; None for a package
        that is not installed.
    """
    versions = {"python": platform.python_version()}
    for name in CHECKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _version_mismatch(expected: dict, found: dict, address: str) -> str | None:
    """One line naming what a worker runs that differs, or None.

    Parameters
    ----------
    expected : dict
        The client's :func:`_local_versions`.
    found : dict
        The worker's.
    address : str
        The worker's address.

    Returns
    -------
    str or None
    """
    differing = [f"{name} {found.get(name)} (this process: {version})"
                 for name, version in expected.items() if found.get(name) != version]
    if not differing:
        return None
    return (f"the Dask worker at {address} runs other versions than this process: "
            f"{', '.join(differing)}; install one environment on every node "
            "(docs/cluster.md)")


class VersionPlugin(WorkerPlugin):
    """The client's versions, compared in ``setup`` with the worker's own on
    every worker, those that join or restart during a job too.

    ``client.get_versions`` (:func:`check_versions`) sees only the workers
    there before the job; an adaptive cluster adds more while it runs. Each
    task of :func:`map_ordered` and :func:`map_unordered` reads
    :attr:`mismatch` on its worker first and fails with
    :class:`ClusterError` where it is set.

    Attributes
    ----------
    versions : dict
        The client's :func:`_local_versions`.
    mismatch : str or None
        Set by ``setup``: :func:`_version_mismatch` of this worker.
    """

    def __init__(self):
        self.name = f"vo-al-versions-{uuid.uuid4().hex}"
        self.versions = _local_versions()
        self.mismatch: str | None = None

    def setup(self, worker):
        """Compare the client's versions with this worker's."""
        self.mismatch = _version_mismatch(self.versions, _local_versions(), worker.address)


@contextmanager
def _on_workers(client: Client, plugin: WorkerPlugin) -> Iterator[str]:
    """Register ``plugin`` (with a ``name``); yield its name; unregister it
    on exit (while the scheduler is there)."""
    client.register_plugin(plugin)
    try:
        yield plugin.name
    finally:
        if client.status == "running":
            client.unregister_worker_plugin(plugin.name)


def _checked(plugin: str, function: Callable, *args):
    """``function(*args)`` on a worker, unless it runs other versions than the client."""
    mismatch = get_worker().plugins[plugin].mismatch
    if mismatch is not None:
        raise ClusterError(mismatch)
    return function(*args)


def _submit(client: Client, plugin: str, function: Callable, args: tuple):
    """Submit one checked task, keyed by ``function``'s name (as the dashboard shows it)."""
    return client.submit(_checked, plugin, function, *args,
                         key=f"{function.__name__}-{uuid.uuid4().hex}")


@contextmanager
def _cluster_failures(client: Client, job: str):
    """Turn a lost scheduler, a task that keeps killing workers, or HDF5 file
    locks that a shared file system refuses into :class:`ClusterError`."""
    try:
        yield
    except KilledWorker as exc:
        raise ClusterError(f"{job} stopped: a task was running on every worker that died "
                           f"({exc}); look for workers running out of memory") from exc
    except (CancelledError, CommClosedError) as exc:
        if client.status == "running":
            raise
        raise ClusterError(f"{job} stopped: the connection to the Dask scheduler at "
                           f"{client.scheduler.address} was lost ({exc})") from exc
    except OSError as exc:  # after CommClosedError, an OSError too
        if "unable to lock file" not in str(exc):
            raise
        raise ClusterError(f"{job} stopped: a worker could not lock an HDF5 file ({exc}); on a "
                           "shared file system without locks, start the workers with "
                           "HDF5_USE_FILE_LOCKING=FALSE (docs/cluster.md)") from exc


def _cancel(client: Client, futures):
    if futures and client.status == "running":
        client.cancel(list(futures))


@contextmanager
def _job(client: Client, job: str, pending) -> Iterator[str]:
    """Run a job's tasks: yield the name of its :class:`VersionPlugin`;
    cancel the tasks still ``pending`` on exit; raise its failures as
    :class:`ClusterError` (see :func:`_cluster_failures`)."""
    with _cluster_failures(client, job), _on_workers(client, VersionPlugin()) as plugin:
        try:
            yield plugin
        finally:
            _cancel(client, pending)


def map_ordered(client: Client, function: Callable, calls: Iterable[tuple],
                in_flight: int | None = None, job: str = "ingest") -> Iterator:
    """``function(*args)`` for every ``args`` of ``calls`` on the cluster,
    yielded in the order of ``calls``, with at most ``in_flight`` tasks
    submitted ahead (default :data:`INGEST_IN_FLIGHT` per worker thread).

    Raises
    ------
    ClusterError
        The scheduler went away, a task killed every worker it ran on, or
        a task ran on a worker with other versions (:class:`VersionPlugin`).
    """
    in_flight = in_flight or INGEST_IN_FLIGHT * total_threads(client)
    pending: deque = deque()
    with _job(client, job, pending) as plugin:
        for args in calls:
            pending.append(_submit(client, plugin, function, args))
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def map_unordered(client: Client, function: Callable, calls: Iterable[tuple],
                  in_flight: int | None = None, job: str = "scoring") -> Iterator:
    """Like :func:`map_ordered`, but results come as tasks finish
    (default :data:`SCORE_IN_FLIGHT` tasks per worker thread)."""
    in_flight = in_flight or SCORE_IN_FLIGHT * total_threads(client)
    calls, pending = iter(calls), set()
    with _job(client, job, pending) as plugin:
        def submit(args):
            future = _submit(client, plugin, function, args)
            pending.add(future)
            return future

        running = as_completed([submit(args) for args in _take(calls, in_flight)],
                               loop=client.loop)
        for future in running:
            pending.discard(future)
            result = future.result()
            for args in _take(calls, 1):
                running.add(submit(args))
            yield result


def _take(iterator, n: int) -> list:
    return [args for _, args in zip(range(n), iterator)]


# --------------------------------------------------------------------------
# Ingest


def files_per_task(shard_rows: int, local_batch: int) -> int:
    """Files per ingest task that cut shards where a local ingest cuts them.

    A local ingest fills a shard with batches of ``local_batch`` files
    until it holds ``shard_rows`` or more; the largest divisor of that
    shard size up to :data:`FILES_PER_TASK` cuts the same shards, so an
    ingest can be interrupted on one and resumed on the other.
    """
    shard = -(-shard_rows // local_batch) * local_batch
    return max(d for d in range(1, min(FILES_PER_TASK, shard) + 1) if shard % d == 0)


# --------------------------------------------------------------------------
# Scoring


def task_rows(n_rows: int, chunk_rows: int, aligned: int, threads: int) -> int:
    """Pool rows per scoring task: ``chunk_rows``, halved (staying a
    multiple of the pool's HDF5 chunk, ``aligned``) while the pool would
    give fewer than :data:`TASKS_PER_THREAD` tasks per worker thread."""
    rows = chunk_rows
    while rows % (2 * aligned) == 0 and n_rows < TASKS_PER_THREAD * threads * rows:
        rows //= 2
    return rows


class ModelPlugin(WorkerPlugin):
    """A network for the scoring tasks, built once on every worker (new and
    restarted ones too) from weights sent once per worker.

    ``setup`` raises glibc's allocator thresholds (Dask's nanny starts
    workers with ``MALLOC_TRIM_THRESHOLD_=65536``, and untuned they score at
    half speed), puts the task threads started from then on in the main
    arena, whose thresholds those are (``MALLOC_ARENA_MAX=1`` in the
    workers' environment does it for every thread), and gives torch one
    thread per task: a worker runs as many tasks at once as it has threads.

    Parameters
    ----------
    model : SpectrumCNN
    """

    def __init__(self, model: SpectrumCNN):
        self.name = f"vo-al-model-{uuid.uuid4().hex}"
        self.hparams = dict(model.hparams)
        self.state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        self.model: SpectrumCNN | None = None

    def setup(self, worker):
        """Tune the allocator and torch threads; build the model."""
        import torch

        from .model import SpectrumCNN
        from .runtime import share_main_arena, tune_allocator

        tune_allocator()
        share_main_arena()
        torch.set_num_threads(1)
        hparams = {**self.hparams, "conv_channels": tuple(self.hparams["conv_channels"])}
        model = SpectrumCNN(**hparams)
        model.load_state_dict(self.state)
        self.model, self.state = model.eval(), None

    def teardown(self, worker):
        """Free the model."""
        self.model = None


def model_on_workers(client: Client, model: SpectrumCNN):
    """A context that registers a :class:`ModelPlugin` for ``model``,
    yields its name and unregisters it on exit (while the scheduler is there)."""
    return _on_workers(client, ModelPlugin(model))


def _score_task(plugin: str, pool_path: str, start: int, stop: int, config, dtype,
                features_path: str | None, want_features: bool):
    """One chunk scored on a worker, as :func:`score_chunks` yields it."""
    from .runtime import resolve_device
    from .scoring import score_chunk

    model = get_worker().plugins[plugin].model
    device = resolve_device(config.device)
    with PoolReader(pool_path) as pool:
        quality = pool.read("quality", start, stop)
        inputs = pool.read("spectra", start, stop) if features_path is None else None
    if features_path is not None:
        with h5py.File(features_path, "r") as h5:
            inputs = h5["features"][start:stop]
    usable, probs, uncertainty, features = score_chunk(
        model.to(device), inputs, quality, config, device, dtype,
        from_features=features_path is not None)
    return start, stop - start, usable, probs, uncertainty, features if want_features else None


def _pool_chunk_rows(pool_path) -> int:
    """Rows of the pool's HDF5 chunks (all its rows when it is not chunked)."""
    with h5py.File(pool_path, "r") as h5:
        spectra = h5["spectra"]
        return spectra.chunks[0] if spectra.chunks else max(1, spectra.shape[0])


def score_chunks(client: Client, model: SpectrumCNN, pool_path, n_rows: int, config,
                 dtype: torch.dtype | None, features_path=None, want_features: bool = False,
                 cancel=None) -> Iterator[tuple]:
    """Score a pool on the cluster, chunk by chunk, as chunks finish.

    Parameters
    ----------
    client : distributed.Client
    model : SpectrumCNN
    pool_path : path-like
        The pool, at a path the workers see.
    n_rows : int
        Rows in the pool.
    config : vo_al.scoring.ScoreConfig
    dtype : torch.dtype or None
        Autocast dtype chosen by the caller.
    features_path : path-like, optional
        A complete feature cache to score from (dense head only).
    want_features : bool
        Return the trunk features (to write the cache).
    cancel : threading.Event-like, optional

    Yields
    ------
    tuple
        ``(start, n_rows, usable, probs, uncertainty, features)`` as
        :func:`vo_al.scoring.score_chunk` gives them for rows
        ``start:start + n_rows``; ``features`` is None unless wanted.
    """
    pool_path = os.path.abspath(pool_path)
    rows = task_rows(n_rows, config.chunk_rows, _pool_chunk_rows(pool_path),
                     total_threads(client))
    task_config = replace(config, chunk_rows=rows)
    features_path = None if features_path is None else os.path.abspath(features_path)
    with model_on_workers(client, model) as plugin:
        calls = ((plugin, pool_path, start, min(start + rows, n_rows), task_config, dtype,
                  features_path, want_features) for start in range(0, n_rows, rows))
        for result in map_unordered(client, _score_task, calls):
            check_cancel(cancel, "scoring")
            yield result

