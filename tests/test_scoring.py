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


def test_bf16_agreement_is_a_fraction(pool_path):
    with PoolReader(pool_path) as pool:
        x = pool.read("spectra")[pool.read("quality") == 0]
    agreement = bf16_agreement(build_model(seed=0).eval(), x)
    assert 0.0 <= agreement <= 1.0


def test_scoring_can_be_cancelled(pool_path, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        score_pool(build_model(seed=0), pool_path, tmp_path / "s.h5", CLASSES,
                   ScoreConfig(precision="fp32"), cancel=cancel)
    assert not (tmp_path / "s.h5").exists() and not list(tmp_path.iterdir())
