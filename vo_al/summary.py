"""Numbers behind the status bar and the plots, read from the session (no Qt).

Both functions may run in a worker thread: the label log is shared under
its lock and the iteration files are only read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cancel import check_cancel
from .loop import precision_curve
from .scoring import ScoresReader
from .session import Session
from .strategies import entropy

__all__ = ["SessionSummary", "session_summary", "UncertaintyHistogram", "uncertainty_histogram",
           "format_precision"]

_CHUNK = 65536


@dataclass(frozen=True)
class SessionSummary:
    """The state of a session for the status bar and the plots.

    Attributes
    ----------
    iteration : int
        Completed iterations.
    label_counts : dict
        Class name → spectra labelled (answers in force).
    skips : int
        Spectra answered "unsure".
    curve : list of dict
        :func:`vo_al.loop.precision_curve`.
    predicted_counts : list of dict
        Per completed iteration, class name → pool spectra predicted as it.
    class_names : list of str
        The session's classes.
    interesting : list of str
        The session's interesting classes.
    """

    iteration: int
    label_counts: dict
    skips: int
    curve: list
    predicted_counts: list
    class_names: list
    interesting: list

    @property
    def n_labels(self) -> int:
        """Spectra labelled with a class."""
        return sum(self.label_counts.values())


def session_summary(session: Session) -> SessionSummary:
    """Read the label counts, the learning curve and the class counts."""
    current = session.log.current().values()
    counts = {name: 0 for name in session.config.class_names} | session.log.counts()
    return SessionSummary(
        iteration=session.iteration, label_counts=counts,
        skips=sum(e.action == "skip" for e in current), curve=precision_curve(session),
        predicted_counts=[m.get("predicted_counts", {}) for m in session.learning_curve()],
        class_names=list(session.config.class_names),
        interesting=list(session.config.interesting))


def format_precision(point: dict | None, name: str = "overall") -> str:
    """``0.91 [0.82, 0.96] of 27`` for one class of a learning-curve point."""
    if not point or point[name]["precision"] is None:
        return "no estimate yet"
    p = point[name]
    return f"{p['precision']:.2f} [{p['low']:.2f}, {p['high']:.2f}] of {p['n']}"


@dataclass(frozen=True)
class UncertaintyHistogram:
    """Histogram of the normalised entropy over the scored pool.

    Attributes
    ----------
    iteration : int
    edges : ndarray
        ``bins + 1`` edges from 0 to 1.
    counts : ndarray of int64
    """

    iteration: int
    edges: np.ndarray
    counts: np.ndarray


def uncertainty_histogram(session: Session, iteration: int | None = None, bins: int = 50,
                          cancel=None) -> UncertaintyHistogram:
    """Stream an iteration's ``scores.h5`` into a histogram of entropy / log C.

    Parameters
    ----------
    session : Session
    iteration : int, optional
        Default: the latest completed one.
    bins : int
    cancel : threading.Event-like, optional

    Returns
    -------
    UncertaintyHistogram

    Raises
    ------
    ValueError
        When the session has no completed iteration.
    """
    n = session.scored_iteration(iteration)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    scale = math.log(len(session.config.class_names))
    with ScoresReader(session.iteration_file(n, "scores")) as scores:
        for _, chunk in scores.iter_chunks(_CHUNK, ("probs",)):
            check_cancel(cancel, "uncertainty histogram")
            values = entropy(chunk["probs"]) / scale
            counts += np.histogram(values[np.isfinite(values)], bins=edges)[0]
    return UncertaintyHistogram(n, edges, counts)
