"""Streamed scoring of a pool: class probabilities (and MC-dropout
uncertainty) for every spectrum, written to an HDF5 file.

The pool is read chunk by chunk and never held whole. The network's trunk
(everything up to Dense(512), ≈98 % of the work) runs once per spectrum;
with MC dropout only the small head is sampled T times, so T = 20 costs
≈1.3 plain passes instead of 20.

Output layout (``scores.h5``): ``probs`` (N, C) float32 (the MC mean when
T > 0; NaN for unusable spectra), ``predicted`` (N,) int8 (−1 for unusable),
``bald`` (N,) float32 when T > 0; attributes ``class_names``,
``mc_samples``, ``precision`` and ``bf16_agreement``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import torch

from .atomic import atomic_path
from .cancel import check_cancel
from .features import FeatureCache
from .model import SpectrumCNN
from .options import ScoreConfig
from .pool import PoolReader
from .runtime import best_autocast_dtype, inference_context, resolve_device
from .strategies import bald

__all__ = ["ScoreConfig", "ScoreSummary", "score_pool", "score_chunk", "ScoresReader",
           "bf16_agreement"]


@dataclass
class ScoreSummary:
    """What a scoring run did."""

    path: str
    n_spectra: int = 0
    n_scored: int = 0
    precision: str = "fp32"
    bf16_agreement: float | None = None
    features_reused: bool = False
    seconds: float = 0.0
    class_counts: dict = field(default_factory=dict)

    @property
    def spectra_per_second(self) -> float:
        """Scored spectra per wall-clock second."""
        return self.n_scored / self.seconds if self.seconds > 0 else float("nan")


def _forward(model, x, device, dtype, mc_samples, seed, from_features):
    """Mean probabilities (n, C), BALD (n,) or None, and the trunk features,
    as numpy; ``x`` is spectra, or trunk features when ``from_features``.

    Only the network runs under ``dtype`` autocast: the model returns float32
    probabilities (softmax of float32 logits), and their mean and BALD are
    computed from those float32 samples. The masks come from ``seed`` alone.
    """
    with inference_context(device, dtype):
        x = x.to(device)
        features = x.to(torch.float32) if from_features else model.features(x)
        if mc_samples == 0:
            probs = model.proba_from_features(features).cpu().numpy()
            uncertainty = None
        else:
            generator = torch.Generator().manual_seed(seed)
            samples = model.mc_head_samples(features, mc_samples, generator).cpu().numpy()
            probs, uncertainty = samples.mean(axis=0), bald(samples).astype(np.float32)
    return probs, uncertainty, features.to(torch.float16).cpu().numpy()


def _predict_batches(model, x, config, device, dtype, cancel, from_features=False):
    """Probabilities, uncertainty (or None) and trunk features of every row of ``x``."""
    probs, uncertainty, features = [], [], []
    for start in range(0, len(x), config.batch_size):
        check_cancel(cancel, "scoring")
        p, u, f = _forward(model, torch.from_numpy(x[start:start + config.batch_size]),
                           device, dtype, config.mc_samples, config.seed, from_features)
        probs.append(p)
        uncertainty.append(u)
        features.append(f)
    if not probs:
        width = model.hparams["dense_units"]
        return (np.empty((0, model.n_classes), np.float32), None,
                np.empty((0, width), np.float16))
    u = None if uncertainty[0] is None else np.concatenate(uncertainty)
    return np.concatenate(probs), u, np.concatenate(features)


def score_chunk(model, inputs, quality, config, device, dtype, cancel=None,
                from_features=False):
    """Score the usable rows of one chunk of pool rows.

    Parameters
    ----------
    model : SpectrumCNN
        In eval mode, on ``device``.
    inputs : ndarray
        The chunk's spectra, or its trunk features when ``from_features``.
    quality : ndarray
        The chunk's quality codes; rows of code 0 are scored.
    config : ScoreConfig
    device : torch.device
    dtype : torch.dtype or None
        Autocast dtype; None runs in fp32.
    cancel : threading.Event-like, optional
    from_features : bool

    Returns
    -------
    tuple
        ``(usable, probs, uncertainty, features)``: the scored rows' indices
        in the chunk, their probabilities, BALD (None without MC dropout)
        and trunk features (float16).
    """
    usable = np.flatnonzero(quality == 0)
    probs, uncertainty, features = _predict_batches(model, inputs[usable], config, device, dtype,
                                                    cancel, from_features)
    return usable, probs, uncertainty, features


def _local_chunks(model, pool, cached, config, device, dtype, cancel):
    """:func:`score_chunk` of every chunk in this process, in pool order."""
    for start, chunk in pool.iter_chunks(config.chunk_rows, ("spectra", "quality")):
        n_rows = len(chunk["quality"])
        inputs = chunk["spectra"] if cached is None else cached[start:start + n_rows]
        yield (start, n_rows) + score_chunk(model, inputs, chunk["quality"], config, device,
                                            dtype, cancel, cached is not None)


def _dask_chunks(client, model, pool_path, n_rows, config, dtype, cancel, features_path,
                 want_features):
    """:func:`score_chunk` of every chunk on a Dask cluster, as they finish."""
    from .distributed import score_chunks

    return score_chunks(client, model, pool_path, n_rows, config, dtype, features_path,
                        want_features, cancel)


def bf16_agreement(model: SpectrumCNN, x: np.ndarray, device="cpu", batch_size=1024) -> float:
    """Fraction of spectra whose argmax class is the same under bf16 and fp32."""
    config = ScoreConfig(batch_size=batch_size)
    fp32, _, _ = _predict_batches(model, x, config, device, None, None)
    bf16, _, _ = _predict_batches(model, x, config, device, torch.bfloat16, None)
    return float(np.mean(fp32.argmax(1) == bf16.argmax(1))) if len(x) else 1.0


def _choose_precision(model, pool, config, device):
    """(autocast dtype or None, name, measured agreement or None)."""
    if config.precision == "fp32":
        return None, "fp32", None
    if config.precision == "bf16":
        return torch.bfloat16, "bf16", None
    if best_autocast_dtype(device) != torch.bfloat16:
        return None, "fp32", None
    sample = _usable_sample(pool, config.check_rows)
    agreement = bf16_agreement(model, sample, device, config.batch_size)
    if agreement >= config.agreement_threshold:
        return torch.bfloat16, "bf16", agreement
    return None, "fp32", agreement


def _usable_sample(pool: PoolReader, n: int) -> np.ndarray:
    parts, have = [], 0
    for _, chunk in pool.iter_chunks(max(n, 1024), ("spectra", "quality")):
        parts.append(chunk["spectra"][chunk["quality"] == 0])
        have += len(parts[-1])
        if have >= n:
            break
    return np.concatenate(parts)[:n] if parts else np.empty((0, pool.length), np.float32)


def _create_outputs(h5, n, n_classes, mc_samples, chunk):
    chunk = max(1, min(chunk, n))
    h5.create_dataset("probs", (n, n_classes), np.float32, chunks=(chunk, n_classes),
                      fillvalue=np.nan)
    h5.create_dataset("predicted", (n,), np.int8, chunks=(chunk,), fillvalue=-1)
    if mc_samples:
        h5.create_dataset("bald", (n,), np.float32, chunks=(chunk,), fillvalue=np.nan)


def score_pool(
    model: SpectrumCNN,
    pool_path,
    out,
    class_names,
    config: ScoreConfig = ScoreConfig(),
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    feature_cache: FeatureCache | None = None,
    client=None,
) -> ScoreSummary:
    """Score every usable spectrum of a pool and write the probabilities.

    Parameters
    ----------
    model : SpectrumCNN
        A trained network (put in eval mode here).
    pool_path : str or path-like
        The HDF5 pool (see ``docs/pool-format.md``).
    out : str or path-like
        Output HDF5 file; written to a temporary file and renamed when
        complete (:func:`vo_al.atomic.atomic_path`).
    class_names : sequence of str
        Names of the model's outputs, stored with the scores.
    config : ScoreConfig
    progress : callable, optional
        ``progress(rows_done, rows_total)`` after each chunk.
    cancel : threading.Event-like, optional
        Checked between batches; raises :class:`vo_al.cancel.Cancelled`.
    feature_cache : FeatureCache, optional
        When it holds this model's trunk features, only the dense head runs
        (``summary.features_reused``); otherwise the trunk features computed
        here are written to it.
    client : distributed.Client, optional
        Score on this Dask cluster (:mod:`vo_al.distributed`), whose
        workers read ``pool_path`` (and the feature cache) from a shared
        file system; this process writes every file. None scores here.

    Returns
    -------
    ScoreSummary
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    model = model.to(device).eval()
    out = Path(out)
    summary = ScoreSummary(path=str(out))
    counts = np.zeros(model.n_classes, dtype=np.int64)
    with atomic_path(out) as temporary:
        with PoolReader(pool_path) as pool, h5py.File(temporary, "w") as h5, \
                _features_for(feature_cache, model, len(pool), config) as (cached, store):
            dtype, summary.precision, summary.bf16_agreement = _choose_precision(
                model, pool, config, device)
            summary.features_reused = cached is not None
            _create_outputs(h5, len(pool), model.n_classes, config.mc_samples, config.chunk_rows)
            cache_path = None if cached is None else feature_cache.path
            chunks = (_local_chunks(model, pool, cached, config, device, dtype, cancel)
                      if client is None else
                      _dask_chunks(client, model, pool_path, len(pool), config, dtype, cancel,
                                   cache_path, store is not None))
            done = 0
            for start, n_rows, usable, probs, uncertainty, features in chunks:
                _write_chunk(h5, start, n_rows, usable, probs, uncertainty)
                if store is not None:
                    block = np.zeros((n_rows, features.shape[1]), np.float16)
                    block[usable] = features
                    store[start:start + n_rows] = block
                counts += np.bincount(probs.argmax(1), minlength=model.n_classes) if len(probs) else 0
                summary.n_scored += len(usable)
                done += n_rows  # chunks from a cluster come as they finish
                if progress:
                    progress(done, len(pool))
            summary.n_spectra = len(pool)
            h5.attrs.update({"class_names": list(class_names), "mc_samples": config.mc_samples,
                             "precision": summary.precision,
                             "bf16_agreement": summary.bf16_agreement or np.nan})
    summary.class_counts = dict(zip(class_names, counts.tolist()))
    summary.seconds = time.perf_counter() - started
    return summary


@contextmanager
def _features_for(cache, model, n_rows, config):
    """``(cached features or None, dataset to store features in or None)``."""
    if cache is None:
        yield None, None
    elif cache.matches(model, n_rows):
        with cache.reading() as cached:
            yield cached, None
    else:
        with cache.writing(model, n_rows, config.chunk_rows) as store:
            yield None, store


def _write_chunk(h5, start, n_rows, usable, probs, uncertainty):
    block = np.full((n_rows, probs.shape[1]), np.nan, np.float32)
    block[usable] = probs
    predicted = np.full(n_rows, -1, np.int8)
    predicted[usable] = probs.argmax(1) if len(probs) else predicted[usable]
    h5["probs"][start:start + n_rows] = block
    h5["predicted"][start:start + n_rows] = predicted
    if uncertainty is not None:
        column = np.full(n_rows, np.nan, np.float32)
        column[usable] = uncertainty
        h5["bald"][start:start + n_rows] = column


class ScoresReader:
    """Streamed, read-only access to a scores file written by :func:`score_pool`."""

    def __init__(self, path):
        self._h5 = h5py.File(path, "r")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._h5.close()

    def __len__(self) -> int:
        return int(self._h5["probs"].shape[0])

    @property
    def class_names(self) -> list[str]:
        """Names of the probability columns."""
        return [str(name) for name in self._h5.attrs["class_names"]]

    @property
    def has_bald(self) -> bool:
        """Whether MC-dropout BALD values were computed."""
        return "bald" in self._h5

    def read(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of ``probs``, ``predicted`` or ``bald``."""
        return self._h5[name][start:stop]

    def rows(self, name: str, indices) -> np.ndarray:
        """Values of ``name`` at arbitrary row indices (any order)."""
        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(indices)
        values = self._h5[name][indices[order]] if len(indices) else self._h5[name][:0]
        result = np.empty_like(values)
        result[order] = values
        return result

    def iter_chunks(self, chunk_rows: int = 65536, columns=("probs",)):
        """Yield ``(start, {column: rows})`` over the whole file."""
        for start in range(0, len(self), chunk_rows):
            yield start, {name: self.read(name, start, start + chunk_rows) for name in columns}
