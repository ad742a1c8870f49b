"""One active-learning iteration: train → score the pool → choose the query
batch → draw the performance-estimate sample → record metrics.

Every door (CLI, GUI, SAMP, the simulated oracle) runs iterations through
:func:`run_iteration`; its artefacts go to the session's iteration folder
and count only once the iteration is marked done, so a kill at any moment
leaves the previous iteration in force.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .features import FeatureCache
from .idindex import read_rows
from .lock import iteration_lock
from .options import DEFAULT_MC_SAMPLES, IterationOptions
from .pool import PoolReader
from .scoring import ScoreConfig, ScoresReader, score_pool
from .session import Session, precision_estimate
from .strategies import TopK, select_diverse, utilities
from .train import (TrainConfig, TrainResult, load_checkpoint, paper_config, save_checkpoint,
                    train)

__all__ = ["IterationOptions", "IterationResult", "run_iteration", "training_set",
           "precision_curve", "labelled_rows", "estimate_rows"]

#: The session's cache of trunk features (see :mod:`vo_al.features`).
FEATURE_CACHE = "features.h5"


@dataclass
class IterationResult:
    """What one iteration produced."""

    iteration: int
    query: list
    estimate: list
    metrics: dict = field(default_factory=dict)


def training_set(session: Session) -> tuple[np.ndarray, np.ndarray, int]:
    """Vectors and class indices to train on: the training pool's labels
    (mapped through the session's aliases), then the session's own labels
    (every answer in force except estimate-sample spectra); and how many
    rows come from the training pool (they come first)."""
    config = session.config
    with PoolReader(config.train_path) as train_pool:
        names = train_pool.class_names
        labels = train_pool.read("label")
        keep = np.flatnonzero((labels >= 0) & (train_pool.read("quality") == 0))
        x_train = read_rows(train_pool, "spectra", keep)
        mapping = np.array([config.class_index(name) for name in names], dtype=np.int64)
        y_train = mapping[labels[keep]]
    rows, classes = session.training_labels()
    with session.pool() as pool:
        x_pool = read_rows(pool, "spectra", rows) if len(rows) else np.empty((0, pool.length),
                                                                              np.float32)
    return np.concatenate([x_train, x_pool]), np.concatenate([y_train, classes]), len(y_train)


def estimate_rows(session: Session) -> np.ndarray:
    """Sorted pool rows of every spectrum ever drawn into an estimate sample:
    never queried, never trained on."""
    ids = [i for i, role in session.roles().items() if role == "estimate"]
    rows = session.index.rows(ids) if ids else np.empty(0, np.int64)
    return np.unique(rows[rows >= 0])


def labelled_rows(session: Session) -> np.ndarray:
    """Sorted pool rows of every spectrum with an answer in force (labels and skips)."""
    ids = list(session.log.current())
    rows = session.index.rows(ids) if ids else np.empty(0, np.int64)
    return np.unique(rows[rows >= 0])


def _train_config(session, n, options) -> TrainConfig:
    seed = session.config.seed + n
    if options.paper:
        return paper_config(seed=seed)
    warm = options.mode != "scratch" and n > 1  # the first iteration has nothing to start from
    return TrainConfig(seed=seed, mode=options.mode if warm else "scratch",
                       max_epochs=options.max_epochs, patience=options.patience)


def _train(session, n, options, progress, cancel):
    """Train iteration ``n``'s model; validation comes from the training pool
    alone, so every oracle answer is trained on."""
    x, y, n_source = training_set(session)
    n_answers = len(y) - n_source
    config = _train_config(session, n, options)
    init_state = None
    if config.mode != "scratch":
        previous = load_checkpoint(session.iteration_file(n - 1, "checkpoint"),
                                   expected_preprocess_attrs=session.config.preprocess)
        init_state = previous.model.state_dict()
    holdout = np.arange(len(y)) < n_source
    weight = np.where(holdout, 1.0, 1.0 if options.paper else options.answer_weight)
    result = train(x, y, session.config.class_names, config, progress=progress, cancel=cancel,
                   init_state=init_state, holdout=holdout, sample_weight=weight)
    sizes = {"n_train": n_source + n_answers, "n_answers": n_answers,
             "n_val": int(len(result.val_index)),
             "n_val_answers": int(np.count_nonzero(result.val_index >= n_source))}
    save_checkpoint(session.iteration_file(n, "checkpoint"), result.model,
                    session.config.class_names, session.config.preprocess,
                    extra={"iteration": n, "mode": config.mode, **sizes})
    return result, sizes


def _adopt(session, n, path):
    """Use the checkpoint at ``path`` as iteration ``n``'s model."""
    checkpoint = load_checkpoint(path, expected_preprocess_attrs=session.config.preprocess)
    names = tuple(session.config.class_names)
    if checkpoint.class_names != names:
        raise ValueError(f"{path} predicts {checkpoint.class_names}, the session has {names}")
    sizes = {key: int(checkpoint.extra.get(key, 0))
             for key in ("n_train", "n_answers", "n_val", "n_val_answers")}
    save_checkpoint(session.iteration_file(n, "checkpoint"), checkpoint.model, names,
                    session.config.preprocess,
                    extra={**checkpoint.extra, "iteration": n, "adopted_from": str(path)})
    return TrainResult(checkpoint.model, [], 0, names, False), sizes


def _feature_cache(session, options) -> FeatureCache | None:
    if options.cache_features or options.mode == "head":
        return FeatureCache(session.directory / FEATURE_CACHE)
    return None


def _chunk_utility(strategy, chunk):
    if strategy == "bald":
        return chunk["bald"].astype(np.float64)
    if strategy == "random":
        return None  # drawn by the caller with the seeded generator
    return utilities(strategy, probs=chunk["probs"])


def _choose(scores_path, strategy, k, excluded, rng):
    """Top-k rows by utility, never choosing ``excluded`` (sorted rows) or unusable ones."""
    top = TopK(k)
    columns = ("probs", "bald") if strategy == "bald" else ("probs",)
    with ScoresReader(scores_path) as scores:
        for start, chunk in scores.iter_chunks(columns=columns):
            n = len(chunk["probs"])
            utility = _chunk_utility(strategy, chunk)
            if utility is None:
                utility = np.where(np.isnan(chunk["probs"][:, 0]), np.nan, rng.random(n))
            rows = np.arange(start, start + n)
            top.update(utility, np.isin(rows, excluded, assume_unique=True))
    return top.indices(), top.utilities()


_CANDIDATE_FACTOR = 10


def _diverse(session, model, rows, utility, k, method, rng):
    """``k`` of the candidate ``rows`` spread out in the model's feature space."""
    with session.pool() as pool:
        spectra = read_rows(pool, "spectra", rows)
    with torch.inference_mode():
        features = model.eval().features(torch.from_numpy(spectra)).numpy()
    return rows[select_diverse(utility, features, k, method=method, rng=rng,
                               candidate_factor=_CANDIDATE_FACTOR)]


def _estimate_sample(scores_path, k, interesting, excluded, rng):
    """``k`` random rows predicted as an interesting class, outside ``excluded``."""
    top = TopK(k)
    with ScoresReader(scores_path) as scores:
        for start, chunk in scores.iter_chunks(columns=("predicted",)):
            n = len(chunk["predicted"])
            candidate = np.isin(chunk["predicted"], interesting)
            keys = np.where(candidate, rng.random(n), np.nan)
            top.update(keys, np.isin(np.arange(start, start + n), excluded, assume_unique=True))
    return top.indices()


def run_iteration(session: Session, options: IterationOptions = IterationOptions(),
                  progress: Callable[[str, object], None] | None = None,
                  cancel=None, client=None) -> IterationResult:
    """Run one full iteration and mark it done.

    Parameters
    ----------
    session : Session
    options : IterationOptions
    progress : callable, optional
        ``progress(step, event)`` with step ``'train'`` (event: an
        :class:`~vo_al.train.EpochProgress`), ``'score'`` (event:
        ``(rows_done, rows_total)``) or ``'query'``.
    cancel : threading.Event-like, optional
        Stops training or scoring with :class:`vo_al.cancel.Cancelled`;
        the iteration then does not count.
    client : distributed.Client, optional
        Score the pool on this Dask cluster (see
        :func:`vo_al.scoring.score_pool`); training stays here. A cluster
        that fails leaves no half iteration either.

    Returns
    -------
    IterationResult

    Raises
    ------
    vo_al.lock.IterationLocked
        When an iteration of this session is running (in any process);
        nothing is written then.
    """
    config = session.config
    strategy = options.strategy or config.strategy
    mc_samples = options.mc_samples
    if mc_samples is None:
        mc_samples = DEFAULT_MC_SAMPLES if strategy == "bald" else 0
    report = progress or (lambda step, event: None)
    with iteration_lock(session.directory, f"iteration {session.iteration + 1}"):
        n = session.begin_iteration()
        try:
            return _run(session, n, options, strategy, mc_samples, report, cancel, client)
        except BaseException:  # cancelled, interrupted or failed: leave no half iteration
            session.discard_iteration(n)
            raise


def _run(session, n, options, strategy, mc_samples, report, cancel, client) -> IterationResult:
    """The steps of :func:`run_iteration` in iteration ``n``'s fresh folder."""
    config = session.config
    timings = {}

    started = time.perf_counter()
    if options.model:
        result, sizes = _adopt(session, n, options.model)
    else:
        result, sizes = _train(session, n, options, lambda e: report("train", e), cancel)
    timings["train_s"] = time.perf_counter() - started

    started = time.perf_counter()
    summary = score_pool(
        result.model, config.pool_path, session.iteration_file(n, "scores"), config.class_names,
        ScoreConfig(**{**options.score.__dict__, "mc_samples": mc_samples,
                       "seed": config.seed + n}),
        progress=lambda done, total: report("score", (done, total)), cancel=cancel,
        feature_cache=_feature_cache(session, options), client=client)
    timings["score_s"] = time.perf_counter() - started

    started = time.perf_counter()
    report("query", None)
    rng = np.random.default_rng([config.seed, n])
    excluded = np.union1d(labelled_rows(session), estimate_rows(session))
    k = options.query_size or config.query_size
    factor = _CANDIDATE_FACTOR if options.diversity else 1
    query, utility = _choose(summary.path, strategy, k * factor, excluded, rng)
    if options.diversity:
        query = _diverse(session, result.model, query, utility, k, options.diversity, rng)
    estimate = _estimate_sample(summary.path, options.estimate_size or config.estimate_size,
                                config.interesting_indices, np.union1d(excluded, query), rng)
    metrics = _record(session, n, query, estimate, summary, result, sizes, strategy, timings,
                      started)
    session.mark_done(n)
    return IterationResult(n, session.read_batch(n, "query"), session.read_batch(n, "estimate"),
                           metrics)


def _record(session, n, query, estimate, summary, result, sizes, strategy, timings, started):
    with session.pool() as pool:
        query_ids = read_rows(pool, "id", query).tolist() if len(query) else []
        estimate_ids = read_rows(pool, "id", estimate).tolist() if len(estimate) else []
    with ScoresReader(summary.path) as scores:
        predicted = scores.rows("predicted", estimate) if len(estimate) else np.empty(0)
    session.write_batch(n, "query", query_ids)
    session.write_batch(n, "estimate", estimate_ids)
    timings["query_s"] = time.perf_counter() - started
    metrics = {
        "strategy": strategy,
        **sizes,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "val_accuracy": result.history[result.best_epoch - 1].val_accuracy
        if result.history else None,
        "predicted_counts": summary.class_counts,
        "n_scored": summary.n_scored,
        "scoring_precision": summary.precision,
        "features_reused": summary.features_reused,
        "spectra_per_second": summary.spectra_per_second,
        "estimate_predicted": dict(zip(estimate_ids, map(int, predicted))),
        **timings,
    }
    session.write_metrics(n, metrics)
    return metrics


def precision_curve(session: Session) -> list[dict]:
    """The learning curve: per completed iteration, the precision estimated
    from its labelled estimate sample, per interesting class and overall,
    each as a dict ``precision``, ``low``, ``high`` (95 % exact binomial interval)
    and ``n`` (spectra predicted as the class); precision is None when n = 0.

    The overall figure is the paper's: the fraction of the sample whose
    predicted class is the label given.
    """
    curve = []
    names = session.config.class_names
    for n in range(1, session.iteration + 1):
        predicted = session.read_metrics(n).get("estimate_predicted", {})
        labels = session.estimate_labels(n)
        ids = [i for i in predicted if i in labels]
        p = [predicted[i] for i in ids]
        y = [labels[i] for i in ids]
        point = {"iteration": n, "labelled": len(ids), "sample": len(predicted)}
        for c in session.config.interesting_indices:
            point[names[c]] = _interval(precision_estimate(p, y, c))
        point["overall"] = _interval(precision_estimate(p, y, session.config.interesting_indices))
        curve.append(point)
    return curve


def _interval(estimate) -> dict:
    precision, low, high, n = estimate
    return {"precision": None if n == 0 else precision, "low": low, "high": high, "n": n}
