"""Query strategies as pure functions: probabilities -> utilities -> indices.

Two separate steps, as in scikit-activeml and modAL:

1. a *utility* per pool spectrum, higher = more worth asking the oracle:
   :func:`entropy`, :func:`least_confidence`, :func:`margin` on class
   probabilities ``(n, C)``; :func:`bald` on MC-dropout samples ``(T, n, C)``;
   :func:`random_utility`. :data:`STRATEGIES` maps names to these functions
   and :func:`utilities` calls one by name with whatever inputs it needs.
2. a *selection* of ``k`` indices: :func:`select_top` (the ``k`` highest
   utilities), :class:`TopK` (the same, streamed over chunks) or
   :func:`select_diverse` (the top ``k * candidate_factor``, thinned to ``k``
   spread out in feature space).

Conventions shared by every function:

- A row of probabilities holding a NaN (a spectrum that could not be scored)
  gets a NaN utility; non-finite utilities are never selected, nor are rows
  flagged in ``exclude_mask`` (already labelled).
- Ties in utility are broken by index, lowest first. This is deterministic
  and independent of chunking, so :class:`TopK` over chunks equals
  :func:`select_top` over the whole array.
- Asking for more than is available returns everything available; an empty
  pool gives empty results.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "entropy",
    "least_confidence",
    "margin",
    "bald",
    "random_utility",
    "STRATEGIES",
    "STRATEGY_INPUTS",
    "utilities",
    "select_top",
    "select_diverse",
    "TopK",
]

RandomLike = int | np.random.Generator | None


def _as_rng(rng: RandomLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _probs(p) -> tuple[np.ndarray, np.ndarray]:
    """``p`` as float64 (n, C) with NaN rows zeroed, and the valid-row mask."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must have shape (n, C) with C >= 2, got {p.shape}")
    valid = np.isfinite(p).all(axis=1)
    return np.where(valid[:, None], p, 0.0), valid


def _entropy_of(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) along the last axis, with 0 log 0 = 0."""
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=-1)


def entropy(p) -> np.ndarray:
    """Predictive entropy in nats: ``-sum_c p_c log p_c``.

    Parameters
    ----------
    p : array_like, shape (n, C)
        Class probabilities.

    Returns
    -------
    ndarray of float64, shape (n,)
        In ``[0, log C]``; NaN for rows holding a NaN.
    """
    q, valid = _probs(p)
    return np.where(valid, _entropy_of(q), np.nan)


def least_confidence(p) -> np.ndarray:
    """``1 - max_c p_c``: in ``[0, 1 - 1/C]``; NaN for rows holding a NaN."""
    q, valid = _probs(p)
    return np.where(valid, 1.0 - q.max(axis=1), np.nan)


def margin(p) -> np.ndarray:
    """``1 - (p_1 - p_2)`` of the two largest probabilities: in ``[0, 1]``.

    NaN for rows holding a NaN.
    """
    q, valid = _probs(p)
    top2 = np.partition(q, -2, axis=1)[:, -2:]
    return np.where(valid, 1.0 - (top2[:, 1] - top2[:, 0]), np.nan)


def bald(samples) -> np.ndarray:
    """BALD mutual information: entropy of the mean minus the mean entropy.

    Parameters
    ----------
    samples : array_like, shape (T, n, C)
        MC-dropout class probabilities.

    Returns
    -------
    ndarray of float64, shape (n,)
        Non-negative (rounding below zero is clipped); 0 when all samples
        agree. NaN for spectra with a NaN in any sample.
    """
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim != 3 or s.shape[0] < 1 or s.shape[2] < 2:
        raise ValueError(f"samples must have shape (T, n, C) with T >= 1, C >= 2, got {s.shape}")
    valid = np.isfinite(s).all(axis=(0, 2))
    s = np.where(valid[None, :, None], s, 0.0)
    info = _entropy_of(s.mean(axis=0)) - _entropy_of(s).mean(axis=0)
    return np.where(valid, np.maximum(info, 0.0), np.nan)


def random_utility(n: int, rng: RandomLike = None) -> np.ndarray:
    """Uniform random utilities in ``[0, 1)``: random sampling as a strategy.

    Parameters
    ----------
    n : int
        Number of pool spectra.
    rng : int or numpy.random.Generator, optional
        Seed or generator.
    """
    return _as_rng(rng).random(n)


STRATEGIES: dict[str, Callable[..., np.ndarray]] = {
    "entropy": entropy,
    "least_confidence": least_confidence,
    "margin": margin,
    "bald": bald,
    "random": random_utility,
}
"""Strategy name -> utility function."""

STRATEGY_INPUTS: dict[str, str] = {
    "entropy": "probs",
    "least_confidence": "probs",
    "margin": "probs",
    "bald": "samples",
    "random": "rng",
}
"""Strategy name -> what it is computed from: ``'probs'``, ``'samples'`` or ``'rng'``."""


def utilities(name: str, probs=None, samples=None, rng: RandomLike = None) -> np.ndarray:
    """Utilities of strategy ``name``, higher = more worth labelling.

    Parameters
    ----------
    name : str
        A key of :data:`STRATEGIES`.
    probs : array_like, shape (n, C), optional
        Class probabilities. Probability-based strategies use the mean of
        ``samples`` when ``probs`` is not given.
    samples : array_like, shape (T, n, C), optional
        MC-dropout samples; needed by ``'bald'``.
    rng : int or numpy.random.Generator, optional
        Seed or generator for ``'random'``.

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN where the inputs hold NaN (never selected), also for ``'random'``.
    """
    if name not in STRATEGIES:
        raise KeyError(f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)}")
    needs = STRATEGY_INPUTS[name]
    if needs == "samples":
        if samples is None:
            raise ValueError(f"strategy {name!r} needs MC-dropout samples (T, n, C)")
        return bald(samples)
    if probs is None and samples is not None:
        probs = np.asarray(samples, dtype=np.float64).mean(axis=0)
    if probs is None:
        raise ValueError(f"strategy {name!r} needs probabilities (n, C)")
    if needs == "probs":
        return STRATEGIES[name](probs)
    _, valid = _probs(probs)
    return np.where(valid, random_utility(len(valid), rng), np.nan)


def _selectable(utility, exclude_mask) -> tuple[np.ndarray, np.ndarray]:
    """Utility as float64 (n,), and the indices that may be chosen, increasing."""
    u = np.asarray(utility, dtype=np.float64)
    if u.ndim != 1:
        raise ValueError(f"utility must be 1-D, got shape {u.shape}")
    ok = np.isfinite(u)
    if exclude_mask is not None:
        exclude = np.asarray(exclude_mask, dtype=bool)
        if exclude.shape != u.shape:
            raise ValueError(f"exclude_mask shape {exclude.shape} != utility shape {u.shape}")
        ok &= ~exclude
    return u, np.flatnonzero(ok)


def _best(values: np.ndarray, index: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest ``values``, by decreasing value then increasing index."""
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if k < len(values):
        kth = np.partition(values, len(values) - k)[len(values) - k]
        above = np.flatnonzero(values > kth)
        ties = np.flatnonzero(values == kth)
        ties = ties[np.argsort(index[ties], kind="stable")][: k - len(above)]
        keep = np.concatenate([above, ties])
    else:
        keep = np.arange(len(values))
    return keep[np.lexsort((index[keep], -values[keep]))]


def _check_k(k: int) -> int:
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    return int(k)


def select_top(utility, k: int, exclude_mask=None) -> np.ndarray:
    """Indices of the ``k`` highest utilities, by decreasing utility.

    Parameters
    ----------
    utility : array_like, shape (n,)
        Utilities; non-finite ones are never chosen.
    k : int
        How many to choose; fewer come back when fewer are selectable.
    exclude_mask : array_like of bool, shape (n,), optional
        True for spectra that must not be chosen (already labelled).

    Returns
    -------
    ndarray of int64, shape (min(k, available),)
        Ties are broken by index, lowest first.
    """
    k = _check_k(k)
    u, idx = _selectable(utility, exclude_mask)
    return idx[_best(u[idx], idx, k)].astype(np.int64)


class TopK:
    """Streaming :func:`select_top`: keeps the ``k`` best across chunks.

    The pool is scored chunk by chunk, in order; the global index of a row is
    its position in the concatenation of all chunks. The result equals
    :func:`select_top` on the concatenated arrays, ties included.

    Parameters
    ----------
    k : int
        How many to keep.

    Examples
    --------
    >>> top = TopK(2)
    >>> top.update([0.1, 0.9]); top.update([0.5, float("nan")])
    >>> top.indices().tolist()
    [1, 2]
    """

    def __init__(self, k: int):
        self.k = _check_k(k)
        self.n_seen = 0
        self._utility = np.empty(0, dtype=np.float64)
        self._index = np.empty(0, dtype=np.int64)

    def update(self, utility, exclude_mask=None) -> None:
        """Add the next chunk's utilities (and its exclusion flags)."""
        u, idx = _selectable(utility, exclude_mask)
        local = idx[_best(u[idx], idx, self.k)]
        values = np.concatenate([self._utility, u[local]])
        index = np.concatenate([self._index, local.astype(np.int64) + self.n_seen])
        keep = _best(values, index, self.k)
        self._utility, self._index = values[keep], index[keep]
        self.n_seen += len(u)

    def indices(self) -> np.ndarray:
        """Global indices of the best rows so far, by decreasing utility (int64)."""
        return self._index.copy()

    def utilities(self) -> np.ndarray:
        """Their utilities, decreasing."""
        return self._utility.copy()


def _kmeans_pp(features: np.ndarray, weights: np.ndarray, k: int, rng) -> list[int]:
    """k-means++ seeding with probabilities proportional to weight x squared distance."""
    chosen = [0]
    d2 = ((features - features[0]) ** 2).sum(axis=1)
    while len(chosen) < k:
        score = weights * d2
        score[chosen] = 0.0
        total = score.sum()
        if total > 0:
            nxt = int(rng.choice(len(score), p=score / total))
        else:  # every remaining point duplicates a chosen one: take the best left
            nxt = int(np.setdiff1d(np.arange(len(score)), chosen)[0])
        chosen.append(nxt)
        d2 = np.minimum(d2, ((features - features[nxt]) ** 2).sum(axis=1))
    return chosen


def _farthest_first(features: np.ndarray, k: int) -> list[int]:
    """Greedy core-set: repeatedly take the point farthest from those chosen."""
    chosen = [0]
    d2 = ((features - features[0]) ** 2).sum(axis=1)
    while len(chosen) < k:
        d2[chosen] = -1.0
        nxt = int(np.argmax(d2))  # first of equals = highest utility
        chosen.append(nxt)
        d2 = np.minimum(d2, ((features - features[nxt]) ** 2).sum(axis=1))
    return chosen


def select_diverse(
    utility,
    features,
    k: int,
    method: str = "kmeans++",
    exclude_mask=None,
    rng: RandomLike = None,
    candidate_factor: int = 10,
) -> np.ndarray:
    """Choose ``k`` useful spectra that are spread out in feature space.

    The ``k * candidate_factor`` highest-utility selectable spectra are the
    candidates; the first choice is the best of them, the others follow
    ``method``:

    ``'kmeans++'``
        k-means++ seeding: each next pick is drawn with probability
        proportional to utility x squared distance to the nearest pick
        (utilities clipped at 0; uniform weights if all are 0).
    ``'coreset'``
        greedy core-set (farthest-first traversal), deterministic: each next
        pick is the candidate farthest from all picks (ties: higher utility).

    Parameters
    ----------
    utility : array_like, shape (n,)
        Utilities; non-finite ones are never chosen.
    features : array_like, shape (n, d)
        Feature vectors (e.g. the CNN's penultimate features); rows with
        non-finite values are never chosen.
    k : int
        How many to choose.
    method : {'kmeans++', 'coreset'}
    exclude_mask : array_like of bool, shape (n,), optional
        True for spectra that must not be chosen.
    rng : int or numpy.random.Generator, optional
        Seed or generator (``'kmeans++'`` only).
    candidate_factor : int
        Candidate pool size as a multiple of ``k``.

    Returns
    -------
    ndarray of int64, shape (min(k, available),)
        In the order picked (the first is the highest utility).
    """
    if method not in ("kmeans++", "coreset"):
        raise ValueError(f"method must be 'kmeans++' or 'coreset', got {method!r}")
    if candidate_factor < 1:
        raise ValueError(f"candidate_factor must be at least 1, got {candidate_factor}")
    k = _check_k(k)
    u = np.asarray(utility, dtype=np.float64)
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] != u.shape[0]:
        raise ValueError(f"features must have shape ({u.shape[0]}, d), got {feats.shape}")
    unselectable = ~np.isfinite(feats).all(axis=1)
    if exclude_mask is not None:
        unselectable |= np.asarray(exclude_mask, dtype=bool)
    candidates = select_top(u, k * candidate_factor, unselectable)
    if len(candidates) <= k:
        return candidates
    cand_feats = feats[candidates]
    if method == "coreset":
        picks = _farthest_first(cand_feats, k)
    else:
        weights = np.clip(u[candidates], 0.0, None)
        if not weights.any():
            weights = np.ones_like(weights)
        picks = _kmeans_pp(cand_feats, weights, k, _as_rng(rng))
    return candidates[picks].astype(np.int64)
