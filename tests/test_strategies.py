"""One contract suite run over every query strategy, plus selection and diversity."""

from __future__ import annotations

import numpy as np
import pytest

from vo_al.strategies import (
    STRATEGIES,
    STRATEGY_INPUTS,
    TopK,
    bald,
    entropy,
    least_confidence,
    margin,
    select_diverse,
    select_top,
    utilities,
)

N, T, C = 50, 8, 3
NAN_ROWS = [3, 17, 41]
PROBABILITY_BASED = [name for name, needs in STRATEGY_INPUTS.items() if needs == "probs"]


def mc_samples(n: int = N, seed: int = 0) -> np.ndarray:
    """MC-dropout-like samples (T, n, C) with NaN in a few spectra."""
    rng = np.random.default_rng(seed)
    samples = rng.dirichlet(np.ones(C), size=(T, n))
    samples[:, [r for r in NAN_ROWS if r < n], 1] = np.nan
    return samples


def score(name: str, samples: np.ndarray, seed=0) -> np.ndarray:
    return utilities(name, samples=samples, rng=seed)


def test_registry_and_inputs_agree():
    assert set(STRATEGIES) == set(STRATEGY_INPUTS)
    assert {"entropy", "least_confidence", "margin", "bald", "random"} <= set(STRATEGIES)


@pytest.fixture(params=sorted(STRATEGIES))
def name(request) -> str:
    return request.param


# ------------------------------------------------------- the contract suite


def test_shape_and_finite_for_valid_rows(name):
    u = score(name, mc_samples())
    assert u.shape == (N,) and u.dtype == np.float64
    valid = np.setdiff1d(np.arange(N), NAN_ROWS)
    assert np.isfinite(u[valid]).all()
    assert np.isnan(u[NAN_ROWS]).all()


def test_empty_pool(name):
    u = score(name, np.empty((T, 0, C)))
    assert u.shape == (0,)
    assert select_top(u, 5).shape == (0,)


@pytest.mark.parametrize("name", PROBABILITY_BASED)
def test_uniform_is_maximal_and_one_hot_minimal(name):
    probs = np.random.default_rng(1).dirichlet(np.ones(C), size=N)
    probs[0] = 1.0 / C
    probs[1] = np.eye(C)[2]
    u = utilities(name, probs=probs)
    assert u[0] == pytest.approx(u.max()) and u[0] > 0
    assert u[1] == pytest.approx(u.min()) and u[1] == pytest.approx(0.0, abs=1e-12)


def test_nan_rows_never_chosen(name):
    chosen = select_top(score(name, mc_samples()), k=N)
    assert len(chosen) == N - len(NAN_ROWS)
    assert not set(chosen) & set(NAN_ROWS)


def test_excluded_never_chosen(name):
    u = score(name, mc_samples())
    exclude = np.zeros(N, dtype=bool)
    exclude[::2] = True
    chosen = select_top(u, k=10, exclude_mask=exclude)
    assert len(chosen) == 10
    assert not exclude[chosen].any()
    assert np.all(np.diff(u[chosen]) <= 0)


def test_deterministic_with_a_seed(name):
    samples = mc_samples()
    a, b = score(name, samples, seed=3), score(name, samples, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(select_top(a, 10), select_top(b, 10))


def test_k_larger_than_available(name):
    u = score(name, mc_samples(n=6))
    exclude = np.array([True, False, False, False, False, False])
    chosen = select_top(u, k=100, exclude_mask=exclude)
    assert sorted(chosen.tolist()) == [1, 2, 4, 5]  # row 3 is NaN, row 0 excluded
    assert chosen.dtype == np.int64


def test_ties_broken_by_lowest_index(name):
    samples = np.broadcast_to(np.array([0.2, 0.3, 0.5]), (T, 10, C)).copy()
    u = utilities(name, samples=samples, rng=0)
    if name == "random":
        u = np.full(10, 0.5)  # random utilities do not tie; the selection still must
    assert select_top(u, 4).tolist() == [0, 1, 2, 3]


# ------------------------------------------------------ individual strategies


def test_bald_zero_when_samples_agree_positive_when_they_disagree():
    agree = np.broadcast_to(np.array([0.6, 0.3, 0.1]), (T, 1, C))
    disagree = np.array([np.eye(C)[t % C] for t in range(T)])[:, None, :]
    assert bald(agree)[0] == pytest.approx(0.0, abs=1e-12)
    assert bald(disagree)[0] > 0.5


def test_known_values():
    p = np.array([[0.7, 0.2, 0.1]])
    assert entropy(p)[0] == pytest.approx(-np.sum(p * np.log(p)))
    assert least_confidence(p)[0] == pytest.approx(0.3)
    assert margin(p)[0] == pytest.approx(0.5)


def test_probability_strategies_prefer_given_probs_over_samples():
    samples = mc_samples()
    probs = np.tile([1.0, 0.0, 0.0], (N, 1))
    assert np.all(utilities("entropy", probs=probs, samples=samples) == 0)


@pytest.mark.parametrize(
    "name, kwargs, error",
    [
        ("nope", {"probs": np.ones((2, 2))}, KeyError),
        ("bald", {"probs": np.ones((2, 2)) / 2}, ValueError),
        ("entropy", {}, ValueError),
        ("entropy", {"probs": np.ones(3)}, ValueError),
    ],
)
def test_bad_calls_are_refused(name, kwargs, error):
    with pytest.raises(error):
        utilities(name, **kwargs)


# ---------------------------------------------------------------- selection


def test_select_top_orders_by_decreasing_utility():
    u = np.array([0.1, 0.9, np.nan, 0.5, 0.9, -np.inf, 0.3])
    assert select_top(u, 3).tolist() == [1, 4, 3]
    assert select_top(u, 0).tolist() == []
    with pytest.raises(ValueError):
        select_top(u, -1)


def test_select_top_ties_at_the_boundary_keep_lowest_indices():
    u = np.array([0.5, 1.0, 0.5, 0.5, 0.2, 0.5])
    assert select_top(u, 3).tolist() == [1, 0, 2]


@pytest.mark.parametrize("k", [0, 1, 7, 40, 500])
def test_topk_over_chunks_equals_select_top(k):
    rng = np.random.default_rng(0)
    u = np.round(rng.random(300), 2)  # many ties
    u[rng.choice(300, 20, replace=False)] = np.nan
    exclude = rng.random(300) < 0.2
    top = TopK(k)
    for start, stop in [(0, 1), (1, 50), (50, 50), (50, 173), (173, 300)]:
        top.update(u[start:stop], exclude[start:stop])
    expected = select_top(u, k, exclude)
    np.testing.assert_array_equal(top.indices(), expected)
    np.testing.assert_array_equal(top.utilities(), u[expected])
    assert top.n_seen == 300


def clustered(n_clusters: int = 5, per_cluster: int = 40, seed: int = 0):
    """Features in well-separated clusters; cluster 0 holds the highest utilities."""
    rng = np.random.default_rng(seed)
    centres = np.eye(n_clusters, 8) * 100
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    features = centres[labels] + rng.normal(0, 1, (len(labels), 8))
    utility = 1.0 - 0.1 * labels + rng.uniform(0, 0.01, len(labels))
    return utility, features, labels


@pytest.mark.parametrize("method", ["kmeans++", "coreset"])
def test_diverse_selection_spreads_over_clusters(method):
    utility, features, labels = clustered()
    plain = select_top(utility, 5)
    assert set(labels[plain]) == {0}
    chosen = select_diverse(utility, features, 5, method=method, rng=0, candidate_factor=40)
    assert chosen[0] == plain[0]
    assert set(labels[chosen]) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("method", ["kmeans++", "coreset"])
def test_diverse_selection_contract(method):
    utility, features, _ = clustered()
    utility[[0, 5]] = np.nan
    features[7, 3] = np.inf
    exclude = np.zeros(len(utility), dtype=bool)
    exclude[10:20] = True
    kwargs = dict(method=method, exclude_mask=exclude, rng=1, candidate_factor=3)
    chosen = select_diverse(utility, features, 12, **kwargs)
    assert chosen.dtype == np.int64 and len(chosen) == 12 == len(set(chosen))
    assert not set(chosen) & {0, 5, 7} and not exclude[chosen].any()
    assert set(chosen) <= set(select_top(utility, 36, exclude | ~np.isfinite(features).all(1)))
    np.testing.assert_array_equal(chosen, select_diverse(utility, features, 12, **kwargs))
    assert len(select_diverse(utility, features, 1000, **kwargs)) == len(utility) - 13
    assert select_diverse(np.empty(0), np.empty((0, 8)), 5, method=method).shape == (0,)


@pytest.mark.parametrize("method", ["kmeans++", "coreset"])
def test_diverse_selection_of_duplicates_falls_back_to_utility(method):
    utility = np.linspace(1, 0, 30)
    features = np.zeros((30, 4))
    chosen = select_diverse(utility, features, 4, method=method, rng=0)
    assert sorted(chosen.tolist()) == [0, 1, 2, 3]
