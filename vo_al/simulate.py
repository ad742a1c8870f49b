"""The paper's loop with a simulated oracle: every query and estimate
spectrum is answered from the ground truth of a synthetic survey, and each
iteration is judged against the truth over the whole pool.

It shows, rather than asserts, how fast the loop reaches the paper's level
(a few wrong per hundred predicted as interesting).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .labelfile import read_label_csv
from .loop import IterationOptions, precision_curve, run_iteration
from .scoring import ScoresReader
from .session import Session

__all__ = ["simulate", "pool_truth", "true_metrics"]

ORACLE_SOURCE = "simulated"


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


def true_metrics(session: Session, n: int, truth: np.ndarray) -> dict:
    """Precision and recall of iteration ``n``'s predictions over the whole pool."""
    with ScoresReader(session.iteration_file(n, "scores")) as scores:
        predicted = scores.read("predicted")
    interesting = session.config.interesting_indices
    names = session.config.class_names
    metrics = {}
    for c in interesting:
        hit = (predicted == c) & (truth == c)
        metrics[names[c]] = {
            "precision": _ratio(hit.sum(), (predicted == c).sum()),
            "recall": _ratio(hit.sum(), (truth == c).sum()),
        }
    chosen = np.isin(predicted, interesting)
    metrics["overall"] = {
        "precision": _ratio((chosen & (truth == predicted)).sum(), chosen.sum()),
        "recall": _ratio((chosen & np.isin(truth, interesting)).sum(),
                         np.isin(truth, interesting).sum()),
        "predicted": int(chosen.sum()),
        "truly_interesting": int(np.isin(truth, interesting).sum()),
    }
    return metrics


def _ratio(a, b) -> float | None:
    return float(a) / float(b) if b else None


def _answer(session: Session, n: int, answers: dict) -> int:
    ids = session.read_batch(n, "query") + session.read_batch(n, "estimate")
    pairs = [(i, answers.get(i, session.config.skip_name)) for i in ids]
    accepted, _ = session.label_many(pairs, source=ORACLE_SOURCE, sender="truth")
    return len(accepted)


def _discoveries(session: Session, answers: dict) -> int:
    interesting = {session.config.class_names[c] for c in session.config.interesting_indices}
    return sum(1 for i, e in session.log.current().items()
               if e.action == "label" and e.label in interesting and answers.get(i) == e.label)


def simulate(session: Session, truth_path, iterations: int,
             options: IterationOptions = IterationOptions(),
             on_iteration: Callable[[dict], None] | None = None,
             progress=None) -> list[dict]:
    """Run ``iterations`` iterations answered from ``truth_path``.

    Parameters
    ----------
    session : Session
    truth_path : str or path-like
        CSV with ``id`` and ``class`` (or ``label``) columns, e.g. the
        ``truth.csv`` of ``vo-al synth``.
    iterations : int
    options : IterationOptions
    on_iteration : callable, optional
        Called with each iteration's report as soon as it is ready.
    progress : callable, optional
        Passed to :func:`vo_al.loop.run_iteration`.

    Returns
    -------
    list of dict
        Per iteration: the estimated precision (the paper's way, from the
        labelled estimate sample, with a 95 % interval), the true precision
        and recall over the pool, discoveries so far, and step wall times.
    """
    truth, answers = pool_truth(session, truth_path)
    reports = []
    for _ in range(iterations):
        result = run_iteration(session, options, progress=progress)
        started = time.perf_counter()
        labelled = _answer(session, result.iteration, answers)
        estimate = precision_curve(session)[-1]
        report = {
            "iteration": result.iteration,
            "estimated": {k: v for k, v in estimate.items() if k != "iteration"},
            "true": true_metrics(session, result.iteration, truth),
            "labels_added": labelled,
            "discoveries": _discoveries(session, answers),
            "n_train": result.metrics["n_train"],
            "epochs": result.metrics["epochs"],
            "train_s": result.metrics["train_s"],
            "score_s": result.metrics["score_s"],
            "query_s": result.metrics["query_s"],
            "label_s": time.perf_counter() - started,
        }
        reports.append(report)
        if on_iteration:
            on_iteration(report)
    return reports
