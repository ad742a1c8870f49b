"""Streamed scoring of a real-file pool."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from astropy.io import fits

from vo_al.cancel import Cancelled
from vo_al.model import build_model
from vo_al.pool import PoolReader, ingest
from vo_al.scoring import ScoreConfig, ScoresReader, bf16_agreement, score_pool
from vo_al.train import TrainConfig, train

CLASSES = ["other", "emission", "double-peak"]


@pytest.fixture(scope="module")
def pool_path(real_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scoring")
    with fits.open(real_data / "lamost/spec-56266-GAC080N32V4_sp15-012.fits") as hdul:
        hdul[0].data[0] = np.nan  # an unusable spectrum inside the pool
        hdul[0].header["FILENAME"] = "spec-nan-flux.fits"
        hdul.writeto(folder / "nan.fits")
    out = folder / "pool.h5"
    ingest([real_data / "lamost", real_data / "ondrejov", folder / "nan.fits"], out, workers=1)
    return out


def _score(pool_path, tmp_path, **kwargs):
    out = tmp_path / f"scores-{len(list(tmp_path.iterdir()))}.h5"
    summary = score_pool(build_model(seed=3), pool_path, out, CLASSES,
                         ScoreConfig(precision="fp32", **kwargs))
    return out, summary


def test_every_usable_spectrum_gets_probabilities(pool_path, tmp_path):
    out, summary = _score(pool_path, tmp_path, chunk_rows=7, batch_size=4)
    with PoolReader(pool_path) as pool, ScoresReader(out) as scores:
        quality = pool.read("quality")
        probs, predicted = scores.read("probs"), scores.read("predicted")
        assert scores.class_names == CLASSES and len(scores) == len(pool)
        spectra = pool.read("spectra")
    usable = quality == 0
    assert summary.n_scored == usable.sum() == len(quality) - 1
    np.testing.assert_allclose(probs[usable].sum(1), 1.0, rtol=1e-5)
    assert np.isnan(probs[~usable]).all() and (predicted[~usable] == -1).all()
    np.testing.assert_array_equal(predicted[usable], probs[usable].argmax(1))
    expected = build_model(seed=3).eval().predict_proba(torch.from_numpy(spectra[usable][:3]))
    np.testing.assert_allclose(probs[usable][:3], expected.numpy(), rtol=1e-4, atol=1e-6)
    assert sum(summary.class_counts.values()) == summary.n_scored
    assert not list(tmp_path.glob("*.tmp"))


def test_chunking_does_not_change_results(pool_path, tmp_path):
    a, _ = _score(pool_path, tmp_path, chunk_rows=5, batch_size=3, mc_samples=4)
    b, _ = _score(pool_path, tmp_path, chunk_rows=1000, batch_size=1024, mc_samples=4)
    with ScoresReader(a) as x, ScoresReader(b) as y:
        np.testing.assert_allclose(x.read("probs"), y.read("probs"), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(x.read("bald"), y.read("bald"), rtol=1e-3, atol=1e-6)


def test_mc_dropout_gives_bald_uncertainty(pool_path, tmp_path):
    out, _ = _score(pool_path, tmp_path, mc_samples=8)
    with ScoresReader(out) as scores:
        assert scores.has_bald
        values = scores.read("bald")
        usable = scores.read("predicted") >= 0
        assert (values[usable] >= -1e-6).all() and values[usable].max() > 0
        np.testing.assert_array_equal(scores.rows("bald", [3, 0, 1]), values[[3, 0, 1]])


def test_the_seed_alone_fixes_the_dropout_masks(pool_path, tmp_path):
    bald = {}
    for name, seed in (("first", 1), ("again", 1), ("other", 2)):
        out, _ = _score(pool_path, tmp_path, mc_samples=8, seed=seed)
        with ScoresReader(out) as scores:
            usable = scores.read("predicted") >= 0
            bald[name] = scores.read("bald")[usable]
    np.testing.assert_array_equal(bald["first"], bald["again"])
    assert np.abs(bald["other"] / bald["first"] - 1).max() > 0.1  # new masks, new values


@pytest.mark.parametrize("mc_samples", [0, 4])
def test_bf16_scoring_keeps_probabilities_and_bald_in_fp32(pool_path, tmp_path, mc_samples):
    outs = {}
    for precision in ("fp32", "bf16"):
        outs[precision] = tmp_path / f"{precision}.h5"
        summary = score_pool(build_model(seed=3), pool_path, outs[precision], CLASSES,
                             ScoreConfig(precision=precision, mc_samples=mc_samples))
        assert summary.precision == precision
    with ScoresReader(outs["fp32"]) as fp32, ScoresReader(outs["bf16"]) as bf16:
        usable = fp32.read("predicted") >= 0
        probs, reference = bf16.read("probs")[usable], fp32.read("probs")[usable]
        assert np.abs(probs - reference).max() > 1e-5  # the network did run in bf16
        # a bf16 softmax (8-bit mantissa) would miss 1 by up to ~4e-3
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=2e-6)
        if mc_samples:
            # this untrained net's BALD is ~4e-5: bf16-rounded samples would bury it
            np.testing.assert_allclose(bf16.read("bald")[usable], fp32.read("bald")[usable],
                                       rtol=0.05)


def _peak_spectra(n: int, seed: int, length: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Noise (class 0) or noise plus a Gaussian peak at the centre (class 1),
    min-max scaled to [-1, 1] like preprocessed spectra."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    peak = np.exp(-0.5 * ((np.arange(length) - length / 2) / 2.0) ** 2)
    x = rng.normal(0.0, 0.1, (n, length)) + rng.uniform(0.5, 1.5, (n, 1)) * y[:, None] * peak
    low, high = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    return (2 * (x - low) / (high - low) - 1).astype(np.float32), y


def test_bf16_agrees_with_fp32_on_a_trained_model():
    x, y = _peak_spectra(240, seed=0)
    model = train(x, y, ["other", "emission"],
                  TrainConfig(max_epochs=3, batch_size=32, seed=0, device="cpu")).model
    held_out, truth = _peak_spectra(200, seed=1)
    predicted = model.predict_proba(torch.from_numpy(held_out)).argmax(1).numpy()
    assert np.mean(predicted == truth) >= 0.9  # it did learn
    assert bf16_agreement(model, held_out, batch_size=64) >= 0.99


def test_scoring_can_be_cancelled(pool_path, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        score_pool(build_model(seed=0), pool_path, tmp_path / "s.h5", CLASSES,
                   ScoreConfig(precision="fp32"), cancel=cancel)
    assert not (tmp_path / "s.h5").exists() and not list(tmp_path.iterdir())
