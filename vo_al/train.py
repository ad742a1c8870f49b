"""Training the CNN, with early stopping, and its checkpoints.

:func:`train` fits a :class:`~vo_al.model.SpectrumCNN` on numpy arrays. It
holds out a stratified validation split, stops early on the validation loss
and restores the best weights. Three modes:

``'scratch'``
    new seeded weights (the paper retrains from scratch every iteration);
``'warm'``
    start from given weights and train everything;
``'head'``
    start from given weights, freeze the trunk and train only the dense head.
    The trunk's features are computed once, so each epoch is a pass over two
    small dense layers (≈65x cheaper than a full epoch).

Validation spectra are drawn only from the rows the caller allows
(``holdout``): the loop allows the source training set alone, so every
oracle answer is trained on. :func:`paper_config` gives the paper's
settings exactly (training-loss early stopping, SMOTE, Keras initialisation);
``docs/method.md`` lists every default that departs from them and why.

On CPU the same seed and data give bitwise the same weights.

Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`) hold only
tensors and plain str/int/float/bool/list/dict values so that they load with
``torch.load(..., weights_only=True)``: loading a checkpoint never runs code.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import nn

from .atomic import atomic_path
from .cancel import Cancelled
from .model import SpectrumCNN, build_model
from .runtime import resolve_device

__all__ = [
    "TrainConfig",
    "EpochProgress",
    "TrainResult",
    "TrainingCancelled",
    "train",
    "paper_config",
    "smote",
    "stratified_split",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatch",
    "save_checkpoint",
    "load_checkpoint",
]

BALANCE_CHOICES = ("weights", "oversample", "smote", None)
INIT_CHOICES = ("torch", "keras")
MODE_CHOICES = ("scratch", "warm", "head")
CHECKPOINT_FORMAT = "vo-al-cnn"
CHECKPOINT_VERSION = 1


class TrainingCancelled(Cancelled):
    """Training was stopped through the ``cancel`` event."""


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters.

    Parameters
    ----------
    lr : float
        Adam learning rate.
    batch_size : int
        Mini-batch size.
    max_epochs : int
        Upper bound on the number of epochs.
    patience : int
        Epochs without improvement of the monitored loss before stopping.
    min_delta : float
        Smallest decrease of the monitored loss that counts as an
        improvement (Keras' ``min_delta``; the paper used 1e-3).
    val_fraction : float
        Fraction of each class (of the rows allowed to be held out) kept for
        validation. With 0 (or too few spectra to hold any out) the training
        loss is monitored, as in the paper.
    seed : int
        Seed of the initial weights, the split, the shuffling and dropout.
    balance : {'weights', 'oversample', 'smote', None}
        Class balancing: inverse-frequency loss weights, per-epoch random
        oversampling of the smaller classes to the largest, SMOTE
        (synthetic minority spectra interpolated between 5 nearest
        neighbours, once per training, as the paper did), or none.
    init : {'torch', 'keras'}
        Initial weights: torch's defaults, or Keras' (Glorot-uniform
        weights, zero biases) as in the paper.
    adam_eps : float
        Adam's ε (torch 1e-8; Keras, and so the paper, 1e-7).
    restore_best : bool
        Keep the weights of the best epoch (True) or of the last one
        (Keras' default, and so the paper's).
    device : str
        ``'auto'`` (CUDA when present, else CPU) or a torch device string.
    mode : {'scratch', 'warm', 'head'}
        Start from new weights, from ``init_state`` training everything, or
        from ``init_state`` training only the head.
    eval_batch_size : int
        Batch size for validation and feature passes (no gradients).
    """

    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 10
    min_delta: float = 0.0
    val_fraction: float = 0.1
    seed: int = 0
    balance: str | None = "weights"
    init: str = "torch"
    adam_eps: float = 1e-8
    restore_best: bool = True
    device: str = "auto"
    mode: str = "scratch"
    eval_batch_size: int = 1024

    def __post_init__(self):
        if self.balance not in BALANCE_CHOICES:
            raise ValueError(f"balance must be one of {BALANCE_CHOICES}, got {self.balance!r}")
        if self.mode not in MODE_CHOICES:
            raise ValueError(f"mode must be one of {MODE_CHOICES}, got {self.mode!r}")
        if self.init not in INIT_CHOICES:
            raise ValueError(f"init must be one of {INIT_CHOICES}, got {self.init!r}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        for name in ("batch_size", "max_epochs", "patience", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def paper_config(**overrides) -> TrainConfig:
    """The paper's training settings (Škoda, Podsztavek & Tvrdík 2020).

    Adam (lr 1e-3, ε 1e-7), batch 64, SMOTE balancing, Keras initialisation,
    retraining from scratch, early stopping on the *training* loss with
    patience 10 and min_delta 1e-3, keeping the last epoch's weights (Keras'
    default). The paper gives no epoch limit; 1000 stands for none.

    Parameters
    ----------
    **overrides
        Other :class:`TrainConfig` fields (seed, device, ...).

    Returns
    -------
    TrainConfig
    """
    settings = dict(lr=1e-3, batch_size=64, max_epochs=1000, patience=10, min_delta=1e-3,
                    val_fraction=0.0, balance="smote", init="keras", adam_eps=1e-7,
                    restore_best=False, mode="scratch")
    return TrainConfig(**{**settings, **overrides})


@dataclass(frozen=True)
class EpochProgress:
    """What :func:`train` reports after each epoch.

    ``val_loss`` and ``val_accuracy`` are NaN when nothing is held out.
    """

    epoch: int
    max_epochs: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    elapsed_s: float


@dataclass
class TrainResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    model : SpectrumCNN
        The network with the best epoch's weights, in eval mode.
    history : list of EpochProgress
        One entry per epoch run.
    best_epoch : int
        1-based epoch whose weights were kept.
    class_names : tuple of str
        Name of each output class.
    stopped_early : bool
        True when patience ran out before ``max_epochs``.
    val_index : ndarray of int64
        Rows of the ``x`` given to :func:`train` held out for validation.
    """

    model: SpectrumCNN
    history: list[EpochProgress]
    best_epoch: int
    class_names: tuple[str, ...]
    stopped_early: bool
    val_index: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


@dataclass
class _Data:
    """Training and validation tensors on the device, with class weights and
    each training row's loss weight (its class weight times its sample weight)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    class_weights: torch.Tensor
    weights: torch.Tensor


def stratified_split(
    y: np.ndarray, val_fraction: float, seed: int, holdout: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified train/validation split.

    Each class gives ``round(val_fraction * count)`` of its rows that may be
    held out to validation, but always keeps at least one for training.

    Parameters
    ----------
    y : ndarray of int, shape (n,)
        Class labels.
    val_fraction : float
        Fraction held out per class.
    seed : int
        Seed of the random choice.
    holdout : ndarray of bool, shape (n,), optional
        Rows that may go to validation (default: all). The others are
        always trained on.

    Returns
    -------
    train_idx, val_idx : ndarray of int64
        Sorted indices.
    """
    rng = np.random.default_rng(seed)
    eligible = np.ones(len(y), bool) if holdout is None else np.asarray(holdout, bool)
    train_parts, val_parts = [np.flatnonzero(~eligible)], []
    for label in np.unique(y[eligible]):
        members = rng.permutation(np.flatnonzero((y == label) & eligible))
        n_val = min(int(round(val_fraction * len(members))), len(members) - 1)
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    empty = np.empty(0, dtype=np.int64)
    return (
        np.sort(np.concatenate(train_parts or [empty])).astype(np.int64),
        np.sort(np.concatenate(val_parts or [empty])).astype(np.int64),
    )


def _check_inputs(x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (n, length), got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {y.shape}")
    if x.shape[0] < 2:
        raise ValueError("need at least 2 labelled spectra to train")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y must hold integer class indices, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must be in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    if not np.isfinite(x).all():
        raise ValueError("x holds NaN or infinite values; preprocess them away first")


def _class_weights(y: np.ndarray, n_classes: int, balance: str | None) -> torch.Tensor:
    """Inverse-frequency weights n / (C_present * count); absent classes get 0."""
    if balance != "weights":
        return torch.ones(n_classes)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.as_tensor(weights, dtype=torch.float32)


def smote(x: np.ndarray, y: np.ndarray, seed: int, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Balance classes with SMOTE (Chawla et al. 2002), as the paper did.

    Every smaller class is brought to the size of the largest by synthetic
    rows ``a + u (b − a)``, ``u`` uniform in [0, 1), between a random member
    ``a`` and one of its ``k`` nearest neighbours ``b`` in the same class.

    Parameters
    ----------
    x : ndarray, shape (n, length)
    y : ndarray of int, shape (n,)
    seed : int
    k : int
        Neighbours per member.

    Returns
    -------
    x, y : ndarray
        The rows given, followed by the synthetic ones.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(y)
    parts_x, parts_y = [x], [y]
    for label in np.flatnonzero(counts):
        members = x[y == label]
        missing = int(counts.max() - len(members))
        if missing == 0 or len(members) < 2:
            continue
        neighbours = min(k, len(members) - 1)
        _, near = cKDTree(members).query(members, neighbours + 1)
        a = rng.integers(len(members), size=missing)
        b = near[a, rng.integers(1, neighbours + 1, size=missing)]
        gap = rng.random((missing, 1)).astype(x.dtype)
        parts_x.append(members[a] + gap * (members[b] - members[a]))
        parts_y.append(np.full(missing, label, y.dtype))
    return np.concatenate(parts_x), np.concatenate(parts_y)


def _prepare_data(x, y, n_classes, config, device, holdout, sample_weight):
    """The tensors of one training, and the indices of the validation rows."""
    train_idx, val_idx = stratified_split(y, config.val_fraction, config.seed, holdout)
    x_train, y_train = x[train_idx], y[train_idx]
    rows = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    rows = rows[train_idx]
    if config.balance == "smote":
        x_train, y_train = smote(x_train, y_train, config.seed)
        rows = np.r_[rows, np.ones(len(y_train) - len(rows))]
    as_x = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device)
    as_y = lambda a: torch.from_numpy(a.astype(np.int64)).to(device)
    class_weights = _class_weights(y_train, n_classes, config.balance)
    weights = class_weights[torch.from_numpy(y_train.astype(np.int64))] * torch.from_numpy(
        rows.astype(np.float32))
    return _Data(
        x_train=as_x(x_train), y_train=as_y(y_train), x_val=as_x(x[val_idx]),
        y_val=as_y(y[val_idx]), class_weights=class_weights.to(device),
        weights=weights.to(device),
    ), val_idx


def _initial_model(input_length, n_classes, config, init_state) -> SpectrumCNN:
    if config.mode == "scratch":
        if init_state is not None:
            raise ValueError("mode 'scratch' takes no init_state; use mode 'warm' or 'head'")
        model = build_model(config.seed, input_length=input_length, n_classes=n_classes)
        if config.init == "keras":
            _keras_init(model, config.seed)
        return model
    if init_state is None:
        raise ValueError(f"mode {config.mode!r} needs init_state (a state_dict)")
    model = SpectrumCNN(input_length=input_length, n_classes=n_classes)
    model.load_state_dict(init_state)
    return model


@torch.no_grad()
def _keras_init(model: nn.Module, seed: int):
    """Keras' defaults: Glorot-uniform weights, zero biases."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            weight = module.weight
            fan_in = weight.shape[1] * weight[0, 0].numel()
            fan_out = weight.shape[0] * weight[0, 0].numel()
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            weight.copy_(torch.rand(weight.shape, generator=generator) * 2 * limit - limit)
            module.bias.zero_()


@torch.no_grad()
def _batched_features(model: SpectrumCNN, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    parts = [model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(parts) if parts else x.new_empty((0, model.hparams["dense_units"]))


def _epoch_order(data: _Data, balance: str | None, gen: torch.Generator) -> torch.Tensor:
    """Training indices for one epoch, shuffled (and oversampled when asked)."""
    n = len(data.y_train)
    if balance != "oversample":
        return torch.randperm(n, generator=gen)
    y = data.y_train.cpu()
    counts = torch.bincount(y)
    target = int(counts.max())
    parts = []
    for label in torch.nonzero(counts).flatten():
        members = torch.nonzero(y == label).flatten()
        parts.append(members[torch.randint(len(members), (target,), generator=gen)])
    order = torch.cat(parts)
    return order[torch.randperm(len(order), generator=gen)]


def _check_cancel(cancel) -> None:
    if cancel is not None and cancel.is_set():
        raise TrainingCancelled("training cancelled")


def _train_epoch(net, optimizer, inputs, data, order, config, cancel) -> float:
    """One pass of mini-batch updates; returns the weighted mean training loss.

    Each batch's loss is the mean cross-entropy weighted by the rows' loss
    weights (class weight times sample weight)."""
    net.train()
    total, weight_sum = 0.0, 0.0
    for start in range(0, len(order), config.batch_size):
        _check_cancel(cancel)
        batch = order[start : start + config.batch_size].to(inputs.device)
        weights = data.weights[batch]
        optimizer.zero_grad(set_to_none=True)
        losses = nn.functional.cross_entropy(net(inputs[batch]), data.y_train[batch],
                                             reduction="none") * weights
        batch_weight = weights.sum()
        (losses.sum() / batch_weight).backward()
        optimizer.step()
        total += float(losses.detach().sum())
        weight_sum += float(batch_weight)
    return total / weight_sum if weight_sum > 0 else math.nan


@torch.no_grad()
def _evaluate(net, inputs, targets, class_weights, batch_size) -> tuple[float, float]:
    """Weighted mean cross-entropy and plain accuracy over a held-out set."""
    if len(targets) == 0:
        return math.nan, math.nan
    net.eval()
    loss_sum, weight_sum, correct = 0.0, 0.0, 0
    for start in range(0, len(targets), batch_size):
        logits = net(inputs[start : start + batch_size])
        y = targets[start : start + batch_size]
        w = class_weights[y]
        loss_sum += float((nn.functional.cross_entropy(logits, y, reduction="none") * w).sum())
        weight_sum += float(w.sum())
        correct += int((logits.argmax(dim=1) == y).sum())
    loss = loss_sum / weight_sum if weight_sum > 0 else math.nan
    return loss, correct / len(targets)


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def train(
    x: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    config: TrainConfig | None = None,
    progress: Callable[[EpochProgress], None] | None = None,
    cancel=None,
    init_state: Mapping[str, torch.Tensor] | None = None,
    holdout: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
) -> TrainResult:
    """Train the CNN with early stopping and return the best weights.

    Parameters
    ----------
    x : ndarray of float32, shape (n, length)
        Preprocessed spectra.
    y : ndarray of int, shape (n,)
        Class index of each spectrum, in ``[0, len(class_names))``.
    class_names : sequence of str
        Name of each class; fixes the number of outputs.
    config : TrainConfig, optional
        Hyper-parameters; defaults to ``TrainConfig()``.
    progress : callable, optional
        Called with an :class:`EpochProgress` after each epoch.
    cancel : threading.Event-like, optional
        Its ``is_set()`` is checked before every batch.
    init_state : mapping, optional
        State dict to start from (modes ``'warm'`` and ``'head'``).
    holdout : ndarray of bool, shape (n,), optional
        Rows that may be held out for validation (default: all); the
        others are always trained on.
    sample_weight : ndarray of float, shape (n,), optional
        Weight of each row in the training loss (default: 1), on top of the
        class balancing.

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingCancelled
        When ``cancel`` is set during training.
    """
    config = config or TrainConfig()
    class_names = tuple(str(c) for c in class_names)
    x, y = np.asarray(x), np.asarray(y)
    _check_inputs(x, y, len(class_names))
    device = resolve_device(config.device)
    model = _initial_model(x.shape[1], len(class_names), config, init_state).to(device)
    data, val_index = _prepare_data(x, y, len(class_names), config, device, holdout,
                                    sample_weight)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        history, best_epoch, stopped = _fit(model, data, config, progress, cancel)
    model.eval()
    return TrainResult(model, history, best_epoch, class_names, stopped, val_index)


def _fit(model, data, config, progress, cancel):
    """The epoch loop; trains ``model`` in place and restores its best weights."""
    start_time = time.perf_counter()
    net, train_in, val_in = model, data.x_train, data.x_val
    if config.mode == "head":
        model.eval()
        train_in = _batched_features(model, data.x_train, config.eval_batch_size)
        val_in = _batched_features(model, data.x_val, config.eval_batch_size)
        net = model.head
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, eps=config.adam_eps)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[EpochProgress] = []
    best_loss, best_epoch, best_state, waited = math.inf, 0, _snapshot(net), 0
    for epoch in range(1, config.max_epochs + 1):
        _check_cancel(cancel)
        order = _epoch_order(data, config.balance, gen)
        train_loss = _train_epoch(net, optimizer, train_in, data, order, config, cancel)
        val_loss, val_acc = _evaluate(
            net, val_in, data.y_val, data.class_weights, config.eval_batch_size
        )
        record = EpochProgress(
            epoch, config.max_epochs, train_loss, val_loss, val_acc,
            time.perf_counter() - start_time,
        )
        history.append(record)
        if progress is not None:
            progress(record)
        monitored = val_loss if len(data.y_val) else train_loss
        if monitored < best_loss - config.min_delta:
            best_loss, best_epoch, best_state, waited = monitored, epoch, _snapshot(net), 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    if config.restore_best:
        net.load_state_dict(best_state)
    else:
        best_epoch = len(history)
    return history, best_epoch, len(history) < config.max_epochs


# --------------------------------------------------------------------------
# checkpoints


class CheckpointError(Exception):
    """A checkpoint file is unreadable or not a vo-al checkpoint."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint was trained on differently preprocessed data.

    Attributes
    ----------
    differences : dict
        ``key -> (stored value, expected value)``; a missing key shows as
        ``'<missing>'``.
    """

    def __init__(self, path, differences: dict):
        self.differences = differences
        details = "; ".join(
            f"{key}: checkpoint has {stored!r}, expected {expected!r}"
            for key, (stored, expected) in differences.items()
        )
        super().__init__(
            f"{os.fspath(path)}: preprocessing differs from the checkpoint's "
            f"({', '.join(differences)}): {details}"
        )


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    model : SpectrumCNN
        The network, on CPU, in eval mode.
    class_names : tuple of str
    preprocess_attrs : dict
        Preprocessing parameters the model was trained with.
    extra : dict
        Anything else the writer stored (iteration, metrics, ...).
    hparams : dict
        Architecture hyper-parameters (includes ``input_length``).
    """

    model: SpectrumCNN
    class_names: tuple[str, ...]
    preprocess_attrs: dict
    extra: dict = field(default_factory=dict)
    hparams: dict = field(default_factory=dict)


_MISSING = "<missing>"


def _to_plain(value, where: str):
    """Convert to plain Python types (numpy scalars and arrays, tuples, str subclasses).

    Raises TypeError for anything a weights-only load could not read back.
    """
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.generic):
        return value.item()
    for plain in (bool, int, float, str):  # also strips subclasses (np.float64, TorchVersion)
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [_to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        plain_dict = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: dict keys must be str, got {key!r}")
            plain_dict[str(key)] = _to_plain(v, f"{where}.{key}")
        return plain_dict
    raise TypeError(
        f"{where}: {type(value).__name__} cannot be stored in a weights-only checkpoint"
    )


def save_checkpoint(
    path,
    model: SpectrumCNN,
    class_names: Sequence[str],
    preprocess_attrs: Mapping,
    extra: Mapping | None = None,
) -> None:
    """Write ``model`` and its context atomically (temporary file + rename).

    Parameters
    ----------
    path : path-like
        Destination file.
    model : SpectrumCNN
        The trained network.
    class_names : sequence of str
        One name per output.
    preprocess_attrs : mapping
        Preprocessing parameters (window, length, blur, ...); checked on load.
    extra : mapping, optional
        Further plain values (iteration, metrics, provenance).

    Raises
    ------
    TypeError
        When a value cannot be stored with plain types.
    ValueError
        When ``class_names`` does not match the model's outputs.
    """
    class_names = [str(c) for c in class_names]
    if len(class_names) != model.n_classes:
        raise ValueError(f"{len(class_names)} class names for a {model.n_classes}-class model")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "torch_version": str(torch.__version__),
        "hparams": _to_plain(model.hparams, "hparams"),
        "class_names": class_names,
        "preprocess": _to_plain(dict(preprocess_attrs), "preprocess_attrs"),
        "extra": _to_plain(dict(extra or {}), "extra"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as temporary, open(temporary, "wb") as fh:
        torch.save(payload, fh)


def _differences(stored: dict, expected: dict) -> dict:
    diffs = {}
    for key in sorted(set(stored) | set(expected)):
        a, b = stored.get(key, _MISSING), expected.get(key, _MISSING)
        if a != b:
            diffs[key] = (a, b)
    return diffs


def _read_payload(path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{os.fspath(path)}: not a readable checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{os.fspath(path)}: not a vo-al model checkpoint")
    if payload.get("format_version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{os.fspath(path)}: checkpoint format {payload['format_version']} is newer "
            f"than this vo-al understands ({CHECKPOINT_VERSION})"
        )
    return payload


def load_checkpoint(path, expected_preprocess_attrs: Mapping | None = None) -> Checkpoint:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path : path-like
        File written by :func:`save_checkpoint`.
    expected_preprocess_attrs : mapping, optional
        Preprocessing of the data the model is about to see; when given, every
        key must match the stored one.

    Returns
    -------
    Checkpoint

    Raises
    ------
    CheckpointMismatch
        When ``expected_preprocess_attrs`` differs from the stored attributes.
    CheckpointError
        When the file is not a readable vo-al checkpoint.
    FileNotFoundError
        When there is no such file.
    """
    payload = _read_payload(path)
    if expected_preprocess_attrs is not None:
        expected = _to_plain(dict(expected_preprocess_attrs), "expected_preprocess_attrs")
        diffs = _differences(payload["preprocess"], expected)
        if diffs:
            raise CheckpointMismatch(path, diffs)
    hparams = dict(payload["hparams"])
    model = SpectrumCNN(**{**hparams, "conv_channels": tuple(hparams["conv_channels"])})
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return Checkpoint(
        model=model,
        class_names=tuple(payload["class_names"]),
        preprocess_attrs=payload["preprocess"],
        extra=payload["extra"],
        hparams=hparams,
    )
