"""The paper's 1-D CNN (Škoda, Podsztavek & Tvrdík 2020) in torch, layer for layer.

Keras original, 'valid' padding throughout::

    input 140x1 -> Conv1D(64,3,relu) x2 -> MaxPool(2)
                -> Conv1D(128,3,relu) x2 -> MaxPool(2)
                -> Conv1D(256,3,relu) x2 -> MaxPool(2)
                -> Flatten -> Dense(512,relu) -> Dropout(0.5)
                -> Dense(512,relu) -> Dropout(0.5) -> Dense(n_classes)

For 140 inputs and 3 classes that is 2,481,731 parameters. The softmax is
left to the loss and to :meth:`SpectrumCNN.predict_proba`.

The network is split in two at the first dropout:

``trunk``
    convolutions, flatten and Dense(512)+ReLU. It holds no dropout, so its
    output (the 512 "penultimate features") is deterministic. It is ≈98 % of
    the cost.
``head``
    Dropout, Dense(512), ReLU, Dropout, Dense(n_classes).

MC dropout therefore runs the trunk once and samples only the head
(:meth:`SpectrumCNN.mc_head_samples`); the same features feed diversity
sampling and head-only fine-tuning.

Torch flattens channels-first (channel, position) where Keras flattens
(position, channel); this permutes the Dense(512) inputs and changes nothing
else.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["SpectrumCNN", "build_model", "count_parameters", "flatten_length", "softmax_fp32"]


def flatten_length(input_length: int, n_blocks: int, kernel_size: int) -> int:
    """Spatial length left after ``n_blocks`` of (conv, conv, max-pool 2).

    Parameters
    ----------
    input_length : int
        Number of points per spectrum.
    n_blocks : int
        Number of convolution blocks.
    kernel_size : int
        Convolution kernel size ('valid' padding, stride 1).

    Returns
    -------
    int
        Length per channel at the flatten layer.

    Raises
    ------
    ValueError
        When the input is too short for the network.
    """
    length = input_length
    for _ in range(n_blocks):
        length = (length - 2 * (kernel_size - 1)) // 2
        if length < 1:
            raise ValueError(
                f"input_length {input_length} is too short for {n_blocks} conv blocks "
                f"with kernel size {kernel_size}"
            )
    return length


def softmax_fp32(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis, computed in float32 whatever the logits' dtype.

    Under CPU bf16 autocast a softmax of bf16 logits stays in bf16 (8-bit
    mantissa: probabilities off by up to ≈0.4 %, rows not summing to 1);
    casting first keeps probabilities, their means and BALD in float32.

    Parameters
    ----------
    logits : Tensor, shape (..., n_classes)

    Returns
    -------
    Tensor of float32, same shape
    """
    return torch.softmax(logits.float(), dim=-1)


def _conv_block(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    return [
        nn.Conv1d(in_channels, out_channels, kernel_size),
        nn.ReLU(),
        nn.Conv1d(out_channels, out_channels, kernel_size),
        nn.ReLU(),
        nn.MaxPool1d(2),
    ]


def _thinned_weight(
    layer: nn.Linear, T: int, p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """``T`` copies of ``layer.weight`` with dropped input columns, scaled by 1/(1-p).

    Dropping an input unit of a linear layer is zeroing its weight column, so
    a dropout mask applied to the layer's input becomes a thinned weight.
    """
    keep = torch.rand((T, 1, layer.in_features), generator=generator) >= p
    keep = keep.to(device=layer.weight.device, dtype=layer.weight.dtype)
    return layer.weight * keep / (1.0 - p)


def _dropped_input_layer(
    features: torch.Tensor, layer: nn.Linear, T: int, p: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``T`` dropout samples of ``relu(layer(dropout(features)))``, shape (T, n, out).

    The same masks as :func:`_thinned_weight` (same random draws), but each
    sample multiplies only the kept ≈(1-p) share of the input columns: with
    p = 0.5 that halves the head's cost, which is most of MC dropout's.
    """
    keep = torch.rand((T, layer.in_features), generator=generator) >= p
    weight = layer.weight / (1.0 - p)
    samples = []
    for mask in keep:
        columns = mask.nonzero().squeeze(1).to(features.device)
        samples.append(torch.relu(features[:, columns] @ weight[:, columns].T + layer.bias))
    return torch.stack(samples)


class SpectrumCNN(nn.Module):
    """The paper's CNN with a deterministic trunk and a dropout head.

    Parameters
    ----------
    input_length : int
        Points per spectrum (140 in the paper).
    n_classes : int
        Number of output classes.
    conv_channels : sequence of int
        Channels of each (conv, conv, pool) block.
    kernel_size : int
        Convolution kernel size.
    dense_units : int
        Width of the two dense layers.
    dropout : float
        Dropout probability of the head.

    Notes
    -----
    Inputs are float32 tensors of shape ``(batch, input_length)``; the channel
    dimension is added inside.
    """

    def __init__(
        self,
        input_length: int = 140,
        n_classes: int = 3,
        conv_channels: tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 3,
        dense_units: int = 512,
        dropout: float = 0.5,
    ):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.hparams = {
            "input_length": int(input_length),
            "n_classes": int(n_classes),
            "conv_channels": [int(c) for c in conv_channels],
            "kernel_size": int(kernel_size),
            "dense_units": int(dense_units),
            "dropout": float(dropout),
        }
        n_flat = conv_channels[-1] * flatten_length(input_length, len(conv_channels), kernel_size)
        layers: list[nn.Module] = []
        in_channels = 1
        for out_channels in conv_channels:
            layers += _conv_block(in_channels, out_channels, kernel_size)
            in_channels = out_channels
        layers += [nn.Flatten(), nn.Linear(n_flat, dense_units), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Sequential(
            OrderedDict(
                drop1=nn.Dropout(dropout),
                hidden=nn.Linear(dense_units, dense_units),
                relu=nn.ReLU(),
                drop2=nn.Dropout(dropout),
                out=nn.Linear(dense_units, n_classes),
            )
        )

    @property
    def input_length(self) -> int:
        """Points per spectrum the network expects."""
        return self.hparams["input_length"]

    @property
    def n_classes(self) -> int:
        """Number of output classes."""
        return self.hparams["n_classes"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's deterministic 512-d output (penultimate features).

        Parameters
        ----------
        x : Tensor, shape (batch, input_length)

        Returns
        -------
        Tensor, shape (batch, dense_units)
        """
        if x.ndim != 2 or x.shape[1] != self.input_length:
            raise ValueError(
                f"expected input of shape (batch, {self.input_length}), got {tuple(x.shape)}"
            )
        return self.trunk(x.unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch, n_classes); dropout follows the module's mode."""
        return self.head(self.features(x))

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Deterministic logits from trunk features (dropout off whatever the mode)."""
        return self.head.out(torch.relu(self.head.hidden(features)))

    @torch.no_grad()
    def proba_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Deterministic class probabilities from trunk features, in float32.

        The softmax runs in float32 even under bf16 autocast (see
        :func:`softmax_fp32`).
        """
        return softmax_fp32(self.logits_from_features(features))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic class probabilities, shape (batch, n_classes).

        Dropout is off regardless of ``self.training``.
        """
        return self.proba_from_features(self.features(x))

    @torch.no_grad()
    def mc_head_samples(
        self, features: torch.Tensor, T: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """MC-dropout probabilities from trunk features: only the head is sampled.

        Each of the ``T`` samples is one thinned head (one dropout mask per
        dropout layer), shared by all rows of ``features``: for any single
        spectrum the ``T`` samples are independent dropout draws, exactly as
        in MC dropout, while all spectra of the call are judged by the same
        ``T`` thinned networks. The masks cost ``T * 1024`` random numbers
        instead of ``T * n * 1024``, which would cost more than the head's
        matrix products. A generator seeded identically for every chunk of a
        pool gives the same ``T`` networks for the whole pool, so the result
        does not depend on the chunking.

        Parameters
        ----------
        features : Tensor, shape (n, dense_units)
            Output of :meth:`features`, computed once.
        T : int
            Number of dropout samples.
        generator : torch.Generator, optional
            CPU generator of the dropout masks (global RNG when None). The
            masks are drawn here, so the module's train/eval mode does not
            matter. A generator seeded the same way gives the same masks; a
            new seed gives new ones.

        Returns
        -------
        Tensor of float32, shape (T, n, n_classes)
            Softmax probabilities of each sample. Under reduced-precision
            autocast the matrix products run in that precision, but the
            logits are cast to float32 before the softmax.
        """
        if T < 1:
            raise ValueError(f"T must be at least 1, got {T}")
        p = self.hparams["dropout"]
        h = _dropped_input_layer(features, self.head.hidden, T, p, generator)
        w_out = _thinned_weight(self.head.out, T, p, generator)
        logits = torch.matmul(h, w_out.transpose(1, 2)) + self.head.out.bias
        return softmax_fp32(logits)

    def mc_predict(
        self, x: torch.Tensor, T: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """MC-dropout probabilities, shape (T, batch, n_classes); trunk run once."""
        with torch.no_grad():
            features = self.features(x)
        return self.mc_head_samples(features, T, generator)


def build_model(seed: int | None = 0, **hparams) -> SpectrumCNN:
    """A new :class:`SpectrumCNN` with torch's default init drawn from ``seed``.

    Parameters
    ----------
    seed : int or None
        Seed of the initial weights; None draws from the global RNG. The
        global RNG state is left untouched when a seed is given.
    **hparams
        Keyword arguments of :class:`SpectrumCNN`.

    Returns
    -------
    SpectrumCNN
    """
    if seed is None:
        return SpectrumCNN(**hparams)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpectrumCNN(**hparams)


def count_parameters(model: nn.Module) -> int:
    """Total number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
