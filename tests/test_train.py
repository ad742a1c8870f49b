"""Training, early stopping, determinism, cancelling and checkpoints."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from vo_al.model import build_model
from vo_al.train import (
    CheckpointError,
    CheckpointMismatch,
    TrainConfig,
    TrainingCancelled,
    load_checkpoint,
    paper_config,
    save_checkpoint,
    smote,
    stratified_split,
    train,
)

LENGTH = 64
NAMES = ("other", "emission", "double-peak")
FAST = dict(device="cpu", max_epochs=3, patience=3, batch_size=32)


def toy_spectra(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian bump whose position gives the class, on noise, scaled to [-1, 1]."""
    rng = np.random.default_rng(seed)
    grid = np.arange(LENGTH)
    y = np.repeat(np.arange(3), n_per_class)
    centres = np.array([16.0, 32.0, 48.0])[y] + rng.normal(0, 1.5, len(y))
    bumps = np.exp(-0.5 * ((grid - centres[:, None]) / 3.0) ** 2)
    x = bumps + rng.normal(0, 0.1, (len(y), LENGTH))
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    return (2 * (x - lo) / (hi - lo) - 1).astype(np.float32), y


@pytest.fixture(scope="module")
def toy():
    return toy_spectra(60, seed=0)


@pytest.fixture(scope="module")
def trained(toy):
    x, y = toy
    config = TrainConfig(device="cpu", max_epochs=12, patience=4, batch_size=32, seed=0)
    return train(x, y, NAMES, config)


def test_learns_a_separable_toy_problem(trained):
    best = trained.history[trained.best_epoch - 1]
    assert best.val_accuracy > 0.9
    x_test, y_test = toy_spectra(30, seed=1)
    pred = trained.model.predict_proba(torch.from_numpy(x_test)).argmax(dim=1).numpy()
    assert (pred == y_test).mean() > 0.9
    assert trained.class_names == NAMES
    assert not trained.model.training


def test_best_weights_are_restored(toy):
    x, y = toy
    config = TrainConfig(seed=2, balance=None, **{**FAST, "max_epochs": 4})
    result = train(x, y, NAMES, config)
    losses = [h.val_loss for h in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    _, val_idx = stratified_split(y, config.val_fraction, config.seed)
    with torch.no_grad():
        logits = result.model(torch.from_numpy(x[val_idx]))
    val_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[val_idx])).item()
    assert val_loss == pytest.approx(min(losses), rel=1e-5)


@pytest.mark.parametrize("balance", ["weights", "oversample", None])
def test_same_seed_gives_bitwise_same_weights(toy, balance):
    x, y = toy
    config = TrainConfig(seed=7, balance=balance, **{**FAST, "max_epochs": 2})
    a = train(x, y, NAMES, config).model.state_dict()
    b = train(x, y, NAMES, config).model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_leaves_global_rng_alone(toy):
    x, y = toy
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    train(x, y, NAMES, TrainConfig(**{**FAST, "max_epochs": 1}))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_progress_is_called_after_every_epoch(toy):
    x, y = toy
    events = []
    result = train(x, y, NAMES, TrainConfig(**FAST), progress=events.append)
    assert [e.epoch for e in events] == [1, 2, 3]
    assert events == result.history
    assert all(e.max_epochs == 3 and e.train_loss > 0 and 0 <= e.val_accuracy <= 1 for e in events)
    assert [e.elapsed_s for e in events] == sorted(e.elapsed_s for e in events)


def test_cancel_raises_between_batches(toy):
    x, y = toy
    cancel = threading.Event()

    def cancel_after_first_epoch(event):
        cancel.set()

    with pytest.raises(TrainingCancelled):
        train(x, y, NAMES, TrainConfig(**FAST), progress=cancel_after_first_epoch, cancel=cancel)


def test_cancel_is_checked_inside_an_epoch(toy):
    x, y = toy

    class CancelOnThirdCheck:
        checks = 0

        def is_set(self):
            self.checks += 1
            return self.checks >= 3

    cancel = CancelOnThirdCheck()
    with pytest.raises(TrainingCancelled):
        train(x, y, NAMES, TrainConfig(**FAST), cancel=cancel)
    assert cancel.checks == 3


def test_head_mode_trains_only_the_head(toy, trained):
    x, y = toy
    start = {k: v.clone() for k, v in trained.model.state_dict().items()}
    config = TrainConfig(mode="head", lr=1e-2, **{**FAST, "max_epochs": 2, "patience": 5})
    result = train(x, y, NAMES, config, init_state=start)
    after = result.model.state_dict()
    assert all(torch.equal(after[k], start[k]) for k in start if k.startswith("trunk."))
    assert any(not torch.equal(after[k], start[k]) for k in start if k.startswith("head."))
    assert result.history[result.best_epoch - 1].val_accuracy > 0.9


def test_warm_mode_starts_from_given_weights(toy, trained):
    x, y = toy
    config = TrainConfig(mode="warm", **{**FAST, "max_epochs": 1})
    result = train(x, y, NAMES, config, init_state=trained.model.state_dict())
    assert result.history[0].val_accuracy > 0.9


@pytest.mark.parametrize(
    "mode, give_state, message",
    [("warm", False, "needs init_state"), ("head", False, "needs init_state"),
     ("scratch", True, "takes no init_state")],
)
def test_mode_and_init_state_must_agree(toy, mode, give_state, message):
    x, y = toy
    state = build_model(0, input_length=LENGTH).state_dict() if give_state else None
    with pytest.raises(ValueError, match=message):
        train(x, y, NAMES, TrainConfig(mode=mode, **FAST), init_state=state)


def test_no_validation_split_monitors_training_loss(toy):
    x, y = toy
    result = train(x, y, NAMES, TrainConfig(val_fraction=0.0, **FAST))
    assert all(np.isnan(e.val_loss) and np.isnan(e.val_accuracy) for e in result.history)
    losses = [e.train_loss for e in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1


def test_stratified_split_keeps_class_proportions():
    y = np.array([0] * 470 + [1] * 410 + [2] * 120 + [3])
    train_idx, val_idx = stratified_split(y, 0.1, seed=0)
    assert np.intersect1d(train_idx, val_idx).size == 0
    assert np.array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(y)))
    assert np.bincount(y[val_idx], minlength=4).tolist() == [47, 41, 12, 0]


@pytest.mark.parametrize(
    "x, y, error",
    [
        (np.full((4, LENGTH), np.nan, np.float32), np.array([0, 1, 2, 0]), ValueError),
        (np.zeros((4, LENGTH), np.float32), np.array([0, 1, 3, 0]), ValueError),
        (np.zeros((4, LENGTH), np.float32), np.array([0.0, 1.0, 2.0, 0.0]), TypeError),
        (np.zeros(LENGTH, np.float32), np.array([0]), ValueError),
    ],
)
def test_bad_inputs_are_refused(x, y, error):
    with pytest.raises(error):
        train(x, y, NAMES, TrainConfig(**FAST))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="balance"):
        TrainConfig(balance="adasyn")
    with pytest.raises(ValueError, match="mode"):
        TrainConfig(mode="finetune")


# ---------------------------------------------------------------- checkpoints

PREPROCESS = {
    "window": [6519.0, 6732.0], "length": LENGTH, "blur_sigma_A": 0.77, "scale": "minmax"
}


def test_checkpoint_round_trip(tmp_path, trained):
    path = tmp_path / "model.pt"
    attrs = {
        **PREPROCESS,
        "window": np.array([6519.0, 6732.0]),
        "length": np.int64(LENGTH),
        "blur_sigma_A": np.float64(0.77),
    }
    save_checkpoint(path, trained.model, NAMES, attrs, extra={"iteration": 3, "note": b"ok"})
    ckpt = load_checkpoint(path, expected_preprocess_attrs=PREPROCESS)
    assert ckpt.class_names == NAMES
    assert ckpt.preprocess_attrs == PREPROCESS
    assert ckpt.extra == {"iteration": 3, "note": "ok"}
    assert ckpt.hparams["input_length"] == LENGTH
    x = torch.from_numpy(toy_spectra(2, seed=5)[0])
    assert torch.equal(ckpt.model.predict_proba(x), trained.model.predict_proba(x))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left


def test_checkpoint_loads_with_weights_only(tmp_path, trained):
    path = tmp_path / "model.pt"
    save_checkpoint(path, trained.model, NAMES, PREPROCESS)
    payload = torch.load(path, weights_only=True)
    assert payload["class_names"] == list(NAMES)
    assert payload["hparams"]["conv_channels"] == [64, 128, 256]


def test_checkpoint_mismatch_is_refused(tmp_path, trained):
    path = tmp_path / "model.pt"
    save_checkpoint(path, trained.model, NAMES, PREPROCESS)
    expected = {**PREPROCESS, "blur_sigma_A": 0.5, "air_to_vacuum": True}
    with pytest.raises(CheckpointMismatch) as info:
        load_checkpoint(path, expected_preprocess_attrs=expected)
    message = str(info.value)
    assert "blur_sigma_A: checkpoint has 0.77, expected 0.5" in message
    assert "air_to_vacuum: checkpoint has '<missing>', expected True" in message
    assert "window" not in message
    assert set(info.value.differences) == {"blur_sigma_A", "air_to_vacuum"}


def test_checkpoint_save_refuses_unstorable_values_and_writes_nothing(tmp_path, trained):
    path = tmp_path / "model.pt"
    with pytest.raises(TypeError, match=r"extra\.when"):
        save_checkpoint(path, trained.model, NAMES, PREPROCESS, extra={"when": object()})
    with pytest.raises(ValueError, match="class names"):
        save_checkpoint(path, trained.model, NAMES[:2], PREPROCESS)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_replaces_existing_file(tmp_path, trained):
    path = tmp_path / "model.pt"
    save_checkpoint(path, trained.model, NAMES, PREPROCESS, extra={"iteration": 1})
    save_checkpoint(path, trained.model, NAMES, PREPROCESS, extra={"iteration": 2})
    assert load_checkpoint(path).extra == {"iteration": 2}


def test_foreign_files_are_not_checkpoints(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a vo-al"):
        load_checkpoint(other)


def test_smote_balances_with_points_between_neighbours_of_one_class():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, (50, 4)), rng.normal(10, 1, (8, 4))].astype(np.float32)
    y = np.r_[np.zeros(50, np.int64), np.ones(8, np.int64)]
    bx, by = smote(x, y, seed=1)
    assert np.bincount(by).tolist() == [50, 50]
    assert np.array_equal(bx[:58], x)  # the originals first, unchanged
    made = bx[58:]
    lo, hi = x[50:].min(axis=0), x[50:].max(axis=0)
    assert (made >= lo - 1e-6).all() and (made <= hi + 1e-6).all()  # inside the minority's hull box


def test_validation_comes_only_from_rows_allowed_to_be_held_out(toy):
    x, y = toy
    holdout = np.arange(len(y)) < 120  # the last 60 rows (class 2) stand for oracle answers
    train_idx, val_idx = stratified_split(y, 0.25, seed=0, holdout=holdout)
    assert len(val_idx) == 30 and (val_idx < 120).all()
    assert set(range(120, 180)) <= set(train_idx.tolist())
    result = train(x, y, NAMES, TrainConfig(**FAST), holdout=holdout)
    assert (result.val_index < 120).all() and len(result.val_index) == 12


def test_paper_settings_monitor_the_training_loss_and_keep_the_last_epoch(toy):
    x, y = toy
    config = paper_config(device="cpu", max_epochs=3, seed=0)
    assert (config.val_fraction, config.patience, config.min_delta, config.balance,
            config.init, config.adam_eps, config.batch_size) == (0.0, 10, 1e-3, "smote",
                                                                 "keras", 1e-7, 64)
    result = train(x, y, NAMES, config)
    assert len(result.val_index) == 0 and result.best_epoch == len(result.history) == 3
    assert all(np.isnan(e.val_loss) for e in result.history)


def test_answer_weights_move_the_model(toy):
    x, y = toy
    flipped = y.copy()
    flipped[:10] = 1  # ten "answers" that contradict the bump's position
    weight = np.ones(len(y))
    weight[:10] = 50.0
    plain = train(x, flipped, NAMES, TrainConfig(**FAST, seed=3))
    weighted = train(x, flipped, NAMES, TrainConfig(**FAST, seed=3), sample_weight=weight)
    with torch.no_grad():
        agree = lambda r: (r.model.predict_proba(torch.from_numpy(x[:10])).argmax(1) == 1).sum()
        assert agree(weighted) > agree(plain)
