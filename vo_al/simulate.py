"""The paper's loop with a simulated oracle: every query and estimate
spectrum is answered from the ground truth of a synthetic survey.

Each iteration's model is judged on the spectra it has not been told about
(no answer in force when it was trained): that error is the number that
matters. Beside it stand the paper's estimate (from the labelled estimate
sample, with its interval), the discoveries made by queries, the labels
spent, and the same figures for a random-query baseline run on the same
survey. The figure over the whole pool, which counts the answered (trained
on) spectra too, is kept under ``whole_pool`` and labelled as such.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from .labelfile import read_label_csv
from .loop import FEATURE_CACHE, IterationOptions, labelled_rows, precision_curve, run_iteration
from .scoring import ScoresReader
from .session import Session

__all__ = ["simulate", "pool_truth", "judge", "baseline_session", "share_first_model",
           "ORACLE_SOURCE", "BASELINE_STRATEGY"]

ORACLE_SOURCE = "simulated"
#: The query strategy every simulation is compared with.
BASELINE_STRATEGY = "random"
_BASELINES = "baselines"


def pool_truth(session: Session, truth_path) -> tuple[np.ndarray, dict]:
    """Class index of every pool spectrum from a truth table (−1 unknown),
    and the ``id -> class name`` map used to answer queries."""
    table = read_label_csv(truth_path)
    answers = {}
    for spectrum_id, name in table.by_id.items():
        try:
            answers[spectrum_id] = session.config.class_names[session.config.class_index(name)]
        except (KeyError, ValueError):
            continue
    codes = []
    with session.pool() as pool:
        for _, chunk in pool.iter_chunks(65536, ("id",)):
            codes.append(np.array([session.config.class_index(answers[i]) if i in answers else -1
                                   for i in chunk["id"]], dtype=np.int8))
    return (np.concatenate(codes) if codes else np.empty(0, np.int8)), answers


def judge(predicted: np.ndarray, truth: np.ndarray, interesting) -> dict:
    """The paper's error and the recall of predictions against the truth.

    Parameters
    ----------
    predicted, truth : ndarray of int
        Predicted and true class of the same spectra (−1: unusable/unknown).
    interesting : sequence of int
        The interesting classes.

    Returns
    -------
    dict
        ``error``: share of the spectra predicted interesting whose true
        class is not the predicted one (the paper's measure; None when none
        is predicted); ``recall``: share of the truly interesting ones
        predicted interesting; ``predicted``, ``interesting``, ``spectra``:
        the counts behind them.
    """
    chosen = np.isin(predicted, interesting)
    positive = np.isin(truth, interesting)
    wrong = int(np.count_nonzero(chosen & (truth != predicted)))
    return {
        "error": _ratio(wrong, chosen.sum()),
        "recall": _ratio(np.count_nonzero(chosen & positive), positive.sum()),
        "predicted": int(chosen.sum()),
        "interesting": int(positive.sum()),
        "spectra": int(len(truth)),
    }


def _ratio(a, b) -> float | None:
    return float(a) / float(b) if b else None


def _answer(session: Session, n: int, answers: dict) -> int:
    ids = session.read_batch(n, "query") + session.read_batch(n, "estimate")
    pairs = [(i, answers.get(i, session.config.skip_name)) for i in ids]
    accepted, _ = session.label_many(pairs, source=ORACLE_SOURCE, sender="truth")
    return len(accepted)


def _discoveries(session: Session) -> int:
    """Interesting spectra found by the loop: labels in force of an
    interesting class, outside the estimate samples."""
    interesting = {session.config.class_names[c] for c in session.config.interesting_indices}
    roles = session.roles()
    return sum(1 for i, e in session.log.current().items()
               if e.action == "label" and e.label in interesting and roles.get(i) != "estimate")


def _judge_iteration(session: Session, n: int, truth: np.ndarray, seen: np.ndarray) -> dict:
    """Iteration ``n``'s predictions judged on the unseen spectra and on the whole pool."""
    with ScoresReader(session.iteration_file(n, "scores")) as scores:
        predicted = scores.read("predicted")
    usable = predicted >= 0
    unseen = usable.copy()
    unseen[seen] = False
    interesting = session.config.interesting_indices
    return {"unseen": judge(predicted[unseen], truth[unseen], interesting),
            "whole_pool": judge(predicted[usable], truth[usable], interesting)}


def _iterate(session, truth, answers, options, progress, client) -> dict:
    """One iteration answered from the truth, and its report."""
    seen = labelled_rows(session)  # what the model about to be trained has been told
    result = run_iteration(session, options, progress=progress, client=client)
    started = time.perf_counter()
    judged = _judge_iteration(session, result.iteration, truth, seen)
    added = _answer(session, result.iteration, answers)
    estimate = precision_curve(session)[-1]
    metrics = result.metrics
    return {
        "iteration": result.iteration,
        "strategy": metrics["strategy"],
        **judged,
        "estimated": {k: v for k, v in estimate.items() if k != "iteration"},
        "labels_added": added,
        "labels_spent": len(session.log.current()),
        "discoveries": _discoveries(session),
        **{key: metrics[key] for key in ("n_train", "n_answers", "n_val", "n_val_answers",
                                         "epochs", "train_s", "score_s", "query_s")},
        "label_s": time.perf_counter() - started,
    }


def baseline_session(session: Session, strategy: str = BASELINE_STRATEGY) -> Session:
    """The session's random-query twin, ``SESSION/baselines/STRATEGY``: the
    same training set, pool, classes, batch sizes and seed; opened when it
    exists, else created."""
    directory = Path(session.directory) / _BASELINES / strategy
    if (directory / "config.json").is_file():
        return Session.open(directory)
    config = session.config
    return Session.create(directory, config.train_path, config.pool_path,
                          class_names=config.class_names, aliases=config.aliases,
                          skip_name=config.skip_name, strategy=strategy,
                          query_size=config.query_size, estimate_size=config.estimate_size,
                          interesting=config.interesting, seed=config.seed)


def simulate(session: Session, truth_path, iterations: int,
             options: IterationOptions = IterationOptions(),
             on_iteration: Callable[[dict], None] | None = None,
             progress=None, baseline: str | None = BASELINE_STRATEGY,
             first_model: str | None = None, client=None) -> list[dict]:
    """Run ``iterations`` iterations answered from ``truth_path``, then bring
    a baseline twin of the session to the same iteration (as many, unless
    the twin was made later: then it catches up).

    Parameters
    ----------
    session : Session
    truth_path : str or path-like
        CSV with ``id`` and ``class`` (or ``label``) columns, e.g. the
        ``truth.csv`` of ``vo-al synth``.
    iterations : int
    options : IterationOptions
    on_iteration : callable, optional
        Called with each iteration's report as soon as it is ready (the
        session's, then the baseline's).
    progress : callable, optional
        Passed to :func:`vo_al.loop.run_iteration`.
    baseline : str or None
        Query strategy of the baseline twin (:func:`baseline_session`),
        run with the same options after the session; None runs none.
    first_model : str, optional
        Checkpoint to use for the first iteration instead of training (see
        :func:`share_first_model`).
    client : distributed.Client, optional
        Score on this Dask cluster (see :func:`vo_al.loop.run_iteration`).

    Returns
    -------
    list of dict
        Per iteration of the session: ``unseen`` (error and recall on the
        spectra not yet answered when the model was trained), ``estimated``
        (the paper's estimate with its 95 % interval), ``whole_pool``,
        ``discoveries``, ``labels_spent``, training sizes and wall times;
        with a baseline, its report for the same iteration under
        ``baseline``.
    """
    truth, answers = pool_truth(session, truth_path)
    reports = _run(session, truth, answers, iterations, options, on_iteration, progress,
                   first_model, client)
    if baseline is None:
        return reports
    with baseline_session(session, baseline) as twin:
        twin_options = replace(options, strategy=baseline, diversity=None)
        first = share_first_model(session, twin)
        behind = max(0, session.iteration - twin.iteration)  # a twin made later catches up
        twin_reports = _run(twin, truth, answers, behind, twin_options, on_iteration,
                            progress, first, client)
    same_iterations = twin_reports[len(twin_reports) - len(reports):] if reports else []
    return [{**report, "baseline": other} for report, other in zip(reports, same_iterations)]


def share_first_model(session: Session, twin: Session) -> str | None:
    """The checkpoint of ``session``'s first iteration when ``twin`` would
    train the very same model (it has no iteration yet, and that model was
    trained on the training set alone), else None. The session's trunk
    feature cache is copied along, so the twin's first scoring runs the
    dense head only."""
    if twin.iteration or not session.iteration or session.read_metrics(1).get("n_answers", 1):
        return None
    cache = Path(session.directory) / FEATURE_CACHE
    if cache.is_file() and not (Path(twin.directory) / FEATURE_CACHE).exists():
        shutil.copyfile(cache, Path(twin.directory) / FEATURE_CACHE)
    return str(session.iteration_file(1, "checkpoint"))


def _run(session, truth, answers, iterations, options, on_iteration, progress,
         first_model=None, client=None) -> list[dict]:
    reports = []
    for k in range(iterations):
        chosen = replace(options, model=first_model) if k == 0 and first_model else options
        reports.append(_iterate(session, truth, answers, chosen, progress, client))
        session.write_record(reports[-1]["iteration"], "simulation", reports[-1])
        if on_iteration:
            on_iteration(reports[-1])
    return reports
