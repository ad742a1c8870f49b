"""The paper's CNN: size, shapes, the trunk/head split and MC dropout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from vo_al import runtime
from vo_al.model import SpectrumCNN, _thinned_weight, build_model, count_parameters, flatten_length

MC_DRAWS = 4000


@pytest.fixture(scope="module")
def model() -> SpectrumCNN:
    return build_model(seed=0).eval()


def test_parameter_count_matches_keras_original(model):
    assert count_parameters(model) == 2_481_731


def test_flatten_length_is_14_for_140_points():
    assert flatten_length(140, 3, 3) == 14


@pytest.mark.parametrize("length, n_classes", [(140, 3), (256, 5), (40, 2)])
def test_output_shapes(length, n_classes):
    net = build_model(seed=1, input_length=length, n_classes=n_classes).eval()
    x = torch.randn(7, length)
    assert net(x).shape == (7, n_classes)
    assert net.features(x).shape == (7, 512)
    proba = net.predict_proba(x)
    assert proba.shape == (7, n_classes)
    torch.testing.assert_close(proba.sum(dim=1), torch.ones(7))


def test_too_short_input_is_refused():
    with pytest.raises(ValueError, match="too short"):
        SpectrumCNN(input_length=20)


def test_wrong_input_length_is_refused(model):
    with pytest.raises(ValueError, match=r"\(batch, 140\)"):
        model(torch.randn(2, 139))


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = build_model(seed=5), build_model(seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = build_model(seed=6)
    assert not torch.equal(a.head.out.weight, c.head.out.weight)


def test_trunk_then_head_equals_forward_in_eval_mode(model):
    x = torch.randn(5, 140)
    with torch.no_grad():
        torch.testing.assert_close(model.head(model.features(x)), model(x))
        torch.testing.assert_close(model.logits_from_features(model.features(x)), model(x))


def test_trunk_is_deterministic_in_train_mode():
    net = build_model(seed=0).train()
    x = torch.randn(4, 140)
    with torch.no_grad():
        assert torch.equal(net.features(x), net.features(x))
        assert not torch.equal(net(x), net(x))  # the head's dropout is live


def test_predict_proba_ignores_train_mode():
    net = build_model(seed=0).train()
    x = torch.randn(4, 140)
    assert torch.equal(net.predict_proba(x), net.predict_proba(x))


def test_mc_runs_trunk_once_and_samples_differ(model):
    calls = []
    handle = model.trunk.register_forward_hook(lambda *args: calls.append(1))
    try:
        gen = torch.Generator().manual_seed(0)
        samples = model.mc_predict(torch.randn(6, 140), T=20, generator=gen)
    finally:
        handle.remove()
    assert len(calls) == 1
    assert samples.shape == (20, 6, 3)
    torch.testing.assert_close(samples.sum(dim=-1), torch.ones(20, 6))
    assert not torch.allclose(samples[0], samples[1])


def test_mc_samples_reproducible_with_seeded_generator(model):
    feats = model.features(torch.randn(6, 140)).detach()
    a = model.mc_head_samples(feats, 8, torch.Generator().manual_seed(3))
    b = model.mc_head_samples(feats, 8, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_mc_samples_do_not_depend_on_chunking(model):
    feats = model.features(torch.randn(10, 140)).detach()
    whole = model.mc_head_samples(feats, 5, torch.Generator().manual_seed(9))
    parts = [model.mc_head_samples(f, 5, torch.Generator().manual_seed(9)) for f in feats.split(4)]
    torch.testing.assert_close(torch.cat(parts, dim=1), whole)


def test_mc_without_dropout_equals_deterministic_head():
    net = build_model(seed=0, dropout=0.0).eval()
    x = torch.randn(3, 140)
    samples = net.mc_predict(x, T=4)
    for t in range(4):
        torch.testing.assert_close(samples[t], net.predict_proba(x))


def test_thinned_weight_is_inverted_dropout_on_the_inputs():
    layer = torch.nn.Linear(8, 2)
    thinned = _thinned_weight(layer, 20000, 0.5, torch.Generator().manual_seed(0))
    assert thinned.shape == (20000, 2, 8)
    dropped = thinned == 0
    assert torch.equal(dropped[:, 0, :], dropped[:, 1, :])  # whole input columns drop
    assert abs(float(dropped.float().mean()) - 0.5) < 0.01
    torch.testing.assert_close(thinned.mean(dim=0), layer.weight.detach(), atol=0.05, rtol=0)


@pytest.fixture(scope="module")
def dropout_draws() -> tuple[np.ndarray, np.ndarray]:
    """``MC_DRAWS`` probabilities of four fixed feature vectors, shape (T, 4, 3),
    from :meth:`SpectrumCNN.mc_head_samples` and from ``model.head`` in train
    mode (torch's own ``nn.Dropout``), with fixed seeds.

    A narrow head (32 units) and large features make the output distribution
    wide; p = 0.3 makes a confusion of p with 1 - p visible.
    """
    net = build_model(seed=0, input_length=40, dense_units=32, dropout=0.3).eval()
    features = 4 * torch.rand(4, 32, generator=torch.Generator().manual_seed(1))
    head_only = net.mc_head_samples(features, MC_DRAWS, torch.Generator().manual_seed(2))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(3)
        logits = net.head.train()(features.repeat(MC_DRAWS, 1))
    reference = torch.softmax(logits, dim=-1).reshape(MC_DRAWS, len(features), -1)
    return head_only.numpy(), reference.numpy()


def _z_scores(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample z-scores of the difference of means and of variances along axis 0.

    The standard error of a sample variance is sqrt((m4 - var²) / n), with m4
    the fourth central moment, which holds for any distribution.
    """
    n = len(a)

    def variance_error(x):
        centred = x - x.mean(axis=0)
        return np.sqrt(((centred ** 4).mean(axis=0) - x.var(axis=0) ** 2) / n)

    z_mean = (a.mean(axis=0) - b.mean(axis=0)) / np.sqrt((a.var(axis=0) + b.var(axis=0)) / n)
    z_var = (a.var(axis=0) - b.var(axis=0)) / np.hypot(variance_error(a), variance_error(b))
    return z_mean, z_var


def test_head_only_mc_matches_nn_dropout_in_mean_and_variance(dropout_draws):
    head_only, reference = dropout_draws
    assert head_only.dtype == np.float32 and head_only.shape == reference.shape == (MC_DRAWS, 4, 3)
    assert reference.std(axis=0).min() > 0.05  # a wide distribution: the test has power
    z_mean, z_var = _z_scores(head_only, reference)
    # if the two agree, each |z| > 4.5 has probability 7e-6: < 2e-4 for any of these 24
    assert np.abs(z_mean).max() < 4.5, z_mean
    assert np.abs(z_var).max() < 4.5, z_var


def test_head_only_mc_matches_nn_dropout_in_distribution(dropout_draws):
    head_only, reference = dropout_draws
    p_values = [stats.ks_2samp(head_only[:, row, c], reference[:, row, c]).pvalue
                for row in range(head_only.shape[1]) for c in range(head_only.shape[2])]
    # Bonferroni over 12 comparisons at an overall 1e-3
    assert min(p_values) > 1e-3 / len(p_values), p_values


def test_mc_probabilities_are_float32_under_bf16_autocast():
    net = build_model(seed=0, input_length=40, dense_units=32).eval()
    x = torch.randn(3, 40)
    with runtime.inference_context("cpu", torch.bfloat16):
        features = net.features(x)
        samples = net.mc_head_samples(features, 4, torch.Generator().manual_seed(0))
        proba = net.predict_proba(x)
    assert features.dtype == torch.bfloat16  # the network did run in bf16
    for p in (samples, proba):
        assert p.dtype == torch.float32
        torch.testing.assert_close(p.sum(dim=-1), torch.ones(p.shape[:-1]), atol=1e-6, rtol=0)


def test_runtime_helpers_run_the_model():
    assert isinstance(runtime.tune_allocator(), bool)
    assert runtime.tune_allocator() == runtime.tune_allocator()  # once per process
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    dtype = runtime.best_autocast_dtype("cpu")
    has_units = not runtime.cpu_flags().isdisjoint(runtime.BF16_CPU_FLAGS)
    assert dtype == (torch.bfloat16 if has_units else None)
    net = build_model(seed=0, input_length=40).eval()
    with runtime.inference_context("cpu", dtype):
        proba = net.predict_proba(torch.randn(3, 40))
    assert proba.shape == (3, 3) and torch.isfinite(proba).all()
