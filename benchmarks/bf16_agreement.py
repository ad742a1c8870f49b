"""fp32 / bf16 class agreement of scoring with a trained network.

    python benchmarks/bf16_agreement.py [--rows 2000]
    python benchmarks/bf16_agreement.py --checkpoint SESSION/iterations/001/model.pt \\
        --pool pool.h5 [--rows 50000]
    python benchmarks/bf16_agreement.py --train train.h5 --pool pool.h5

``score_pool`` with ``precision='auto'`` uses bf16 autocast only where the
hardware has bf16 units and :func:`vo_al.scoring.bf16_agreement` finds the
argmax class of at least 99.9 % of the pool's first 4,096 usable spectra
unchanged. This script runs that same function over many more rows and
prints the agreement with its 95 % (Clopper-Pearson) interval.

The network is loaded from ``--checkpoint`` (a session's
``iterations/NNN/model.pt``), or trained for ``--epochs`` on a labelled pool
(``--train``) or, by default, on synthetic spectra made here. The rows come
from ``--pool`` (its usable rows, in order) or are held-out synthetic
spectra. The synthetic spectra are noise with no peak, one Gaussian peak or
two at the centre of the window, of amplitudes down to half the noise, so
some of them sit near a decision boundary, where bf16 rounding can flip a
class; the trained net is only a stand-in for a real one. The figures in
docs/results.md (99.988 % for the iteration-1 model, 99.998 % for the
iteration-10 model) are of ``vo-al simulate``'s checkpoints on its
50,000-spectrum pool, the second invocation above.

A CPU without bf16 units (no ``avx512_bf16`` or ``amx_bf16``) emulates bf16
an order of magnitude slower than fp32: the script says so and still runs;
limit the work with ``--rows``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import stats

from vo_al.model import SpectrumCNN
from vo_al.pool import PoolReader
from vo_al.runtime import BF16_CPU_FLAGS, cpu_flags, resolve_device, tune_allocator
from vo_al.scoring import ScoreConfig, bf16_agreement
from vo_al.train import TrainConfig, load_checkpoint, train

SYNTHETIC_CLASSES = ("other", "emission", "double-peak")


def synthetic_spectra(n: int, seed: int, length: int = 140) -> tuple[np.ndarray, np.ndarray]:
    """Noise (class 0), one central Gaussian peak (1) or two (2), scaled to [-1, 1].

    Parameters
    ----------
    n : int
        Number of spectra.
    seed : int
        Seed of the classes, amplitudes and noise.
    length : int
        Points per spectrum.

    Returns
    -------
    x : ndarray of float32, shape (n, length)
    y : ndarray of int64, shape (n,)
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(SYNTHETIC_CLASSES), n)
    grid = np.arange(length) - length / 2

    def gauss(centre, sigma):
        return np.exp(-0.5 * ((grid - centre) / sigma) ** 2)

    shapes = np.stack([np.zeros(length), gauss(0, 3), gauss(-5, 2) + gauss(5, 2)])
    x = rng.normal(0.0, 0.1, (n, length)) + rng.uniform(0.05, 1.5, (n, 1)) * shapes[y]
    low, high = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    return (2 * (x - low) / (high - low) - 1).astype(np.float32), y


def labelled_rows(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Usable labelled spectra of a pool built with ``--labels``, their labels and class names."""
    with PoolReader(path) as pool:
        if pool.class_names is None:
            raise SystemExit(f"{path} holds no labels: build it with `vo-al ingest --labels`")
        labels = pool.read("label").astype(np.int64)
        keep = (pool.read("quality") == 0) & (labels >= 0)
        return pool.read("spectra")[keep], labels[keep], pool.class_names


def usable_rows(path, limit: int | None) -> np.ndarray:
    """The first ``limit`` usable spectra of a pool (all when None), read chunk by chunk."""
    parts, have = [], 0
    with PoolReader(path) as pool:
        for _, chunk in pool.iter_chunks(16384, ("spectra", "quality")):
            parts.append(chunk["spectra"][chunk["quality"] == 0])
            have += len(parts[-1])
            if limit is not None and have >= limit:
                break
        width = pool.length
    return np.concatenate(parts)[:limit] if parts else np.empty((0, width), np.float32)


def trained_model(args) -> tuple[SpectrumCNN, str]:
    """The network to measure and a line saying where it came from."""
    if args.checkpoint:
        expected = None
        if args.pool:
            with PoolReader(args.pool) as pool:
                expected = pool.preprocess_attrs
        return load_checkpoint(args.checkpoint, expected).model, f"checkpoint {args.checkpoint}"
    if args.train:
        x, y, names = labelled_rows(args.train)
        source = f"trained on {len(y):,} labelled spectra of {args.train}"
    else:
        x, y = synthetic_spectra(args.train_rows, args.seed)
        names = SYNTHETIC_CLASSES
        source = f"trained on {len(y):,} synthetic spectra"
    started = time.perf_counter()
    result = train(x, y, names, TrainConfig(max_epochs=args.epochs, seed=args.seed,
                                            device=args.device))
    best = result.history[result.best_epoch - 1]
    return result.model, (f"{source}, {len(result.history)} epochs in "
                          f"{time.perf_counter() - started:.0f} s, best epoch {result.best_epoch} "
                          f"(validation accuracy {best.val_accuracy:.3f})")


def rows_to_compare(args, length: int) -> tuple[np.ndarray, str]:
    """The spectra to score in both precisions, and a line saying what they are."""
    if args.pool:
        x, what = usable_rows(args.pool, args.rows), f"usable rows of {args.pool}"
    else:
        x, _ = synthetic_spectra(args.rows or 2000, args.seed + 1, length)
        what = "held-out synthetic spectra"
    if not len(x):
        raise SystemExit("no usable rows to compare")
    return x, what


def describe_device(device: torch.device) -> tuple[str, bool]:
    """The device in words, and whether bf16 is emulated (no bf16 units) there."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}", False
    flags = cpu_flags()
    shown = [f for f in ("avx2", "avx512f", *BF16_CPU_FLAGS) if f in flags]
    emulated = flags.isdisjoint(BF16_CPU_FLAGS)
    return f"CPU ({', '.join(shown) or 'flags unknown'}), torch {torch.__version__}", emulated


def agreement_interval(agreeing: int, rows: int) -> tuple[float, float]:
    """95 % Clopper-Pearson interval of the agreement fraction."""
    interval = stats.binomtest(agreeing, rows).proportion_ci(0.95, method="exact")
    return interval.low, interval.high


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a vo-al checkpoint (skips training)")
    parser.add_argument("--train", help="labelled pool to train on (default: synthetic spectra)")
    parser.add_argument("--pool", help="pool whose usable rows are compared "
                                       "(default: held-out synthetic spectra)")
    parser.add_argument("--rows", type=int, default=None,
                        help="rows compared (default: the whole pool, or 2,000 synthetic)")
    parser.add_argument("--train-rows", type=int, default=3000,
                        help="synthetic training spectra (without --train/--checkpoint)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    return parser.parse_args()


def main():
    args = parse_args()
    tune_allocator()
    device = resolve_device(args.device)
    description, emulated = describe_device(device)
    print(f"device: {description}")
    if emulated:
        print("this CPU has no bf16 units: bf16 is emulated (slow); "
              "score_pool would not use it here; --rows limits the work")
    model, source = trained_model(args)
    print(f"model: {source}")
    x, rows_from = rows_to_compare(args, model.input_length)
    started = time.perf_counter()
    agreement = bf16_agreement(model.to(device), x, device, args.batch)
    seconds = time.perf_counter() - started
    print(f"rows: {len(x):,} {rows_from}; fp32 + bf16 passes in {seconds:.1f} s "
          f"({len(x) / seconds:,.0f} rows/s)")
    differ = len(x) - int(round(agreement * len(x)))
    low, high = agreement_interval(len(x) - differ, len(x))
    print(f"bf16/fp32 class agreement: {agreement:.3%} ({differ:,} of {len(x):,} differ; "
          f"95 % interval {low:.3%}-{high:.3%}); score_pool requires "
          f"{ScoreConfig().agreement_threshold:.1%}")


if __name__ == "__main__":
    main()
