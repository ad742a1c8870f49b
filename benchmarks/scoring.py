"""Scoring throughput against this machine's own matmul rate, MC-dropout
cost, fp32/bf16 agreement, and peak memory at two pool sizes.

    python benchmarks/scoring.py [--rows 20000] [--sizes 100000 400000]

Everything is measured in one process, so ratios are meaningful on a noisy
machine: the CNN's effective FLOP rate (≈34 MFLOP per 140-point spectrum)
is quoted as a fraction of the fp32 and bf16 matmul rates measured just
before.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from vo_al.model import build_model
from vo_al.runtime import inference_context, tune_allocator
from vo_al.scoring import bf16_agreement

CNN_FLOP = 34e6  # per spectrum, DESIGN.md §1 (2 × 17 M multiply-adds)
T = 20

_RSS_PROBE = r"""
import json, resource, sys
from vo_al.runtime import tune_allocator
tune_allocator()
from vo_al.model import build_model
from vo_al.scoring import ScoreConfig, score_pool
summary = score_pool(build_model(seed=0), sys.argv[1], sys.argv[2], ["a", "b", "c"],
                     ScoreConfig(mc_samples=int(sys.argv[3])))
print(json.dumps({"rows": summary.n_scored, "rate": summary.spectra_per_second,
                  "precision": summary.precision,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def matmul_gflops(dtype, n=2048, repeats=10) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def rate(function, x, batch=1024, repeats=3) -> float:
    """Spectra per second of ``function(batch)`` over ``x`` (best of ``repeats``)."""
    function(torch.from_numpy(x[:batch]))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            function(torch.from_numpy(x[i:i + batch]))
        best = max(best, len(x) / (time.perf_counter() - start))
    return best


def write_random_pool(path: Path, rows: int, length: int = 140, chunk: int = 65536):
    """A pool file of random spectra (the streamed-scoring memory probe needs no FITS)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as h5:
        spectra = h5.create_dataset("spectra", (rows, length), np.float32, chunks=(4096, length))
        for start in range(0, rows, chunk):
            stop = min(rows, start + chunk)
            spectra[start:stop] = rng.uniform(-1, 1, (stop - start, length))
        h5["quality"] = np.zeros(rows, np.uint8)
        h5.attrs["format_version"] = 1


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--sizes", type=int, nargs=2, default=(100000, 400000))
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    x = np.random.default_rng(1).uniform(-1, 1, (args.rows, 140)).astype(np.float32)
    model = build_model(seed=0).eval()

    def plain(dtype):
        def run(batch):
            with inference_context("cpu", dtype):
                model.predict_proba(batch)
        return run

    default_fp32 = rate(plain(None), x)
    tune_allocator()
    fp32, bf16 = rate(plain(None), x), rate(plain(torch.bfloat16), x)
    gflops32, gflops16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    print(f"matmul: fp32 {gflops32:.0f} GFLOP/s, bf16 {gflops16:.0f} GFLOP/s "
          f"({torch.get_num_threads()} threads)")
    for name, r, peak in (("fp32, glibc default malloc", default_fp32, gflops32),
                          ("fp32, tuned malloc", fp32, gflops32),
                          ("bf16 autocast, tuned", bf16, gflops16)):
        print(f"plain pass {name}: {r:,.0f} spectra/s = {r * CNN_FLOP / 1e9:.0f} GFLOP/s "
              f"= {r * CNN_FLOP / 1e9 / peak:.0%} of the matmul rate")

    generator = torch.Generator().manual_seed(0)
    for dtype, label, base in ((None, "fp32", fp32), (torch.bfloat16, "bf16", bf16)):
        def naive(batch, dtype=dtype):
            model.train()  # dropout on: T full passes
            with inference_context("cpu", dtype):
                for _ in range(T):
                    model(batch)
            model.eval()

        def head_only(batch, dtype=dtype):
            with inference_context("cpu", dtype):
                model.mc_head_samples(model.features(batch), T, generator)

        naive_rate = rate(naive, x[: max(2048, args.rows // 10)], repeats=1)
        head_rate = rate(head_only, x)
        print(f"MC dropout T={T}, {label}: naive {naive_rate:,.0f}/s ({base / naive_rate:.1f}x "
              f"one pass), head-only {head_rate:,.0f}/s ({base / head_rate:.2f}x one pass)")

    print(f"bf16/fp32 class agreement, untrained net on random input: "
          f"{bf16_agreement(model, x[:8192]):.4f} (see the trained-model figure in the notes)")

    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.sizes:
            pool = Path(tmp) / f"pool-{rows}.h5"
            write_random_pool(pool, rows)
            out = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(pool),
                                  str(Path(tmp) / "scores.h5"), "0"],
                                 check=True, capture_output=True, text=True).stdout
            probe = json.loads(out.strip().splitlines()[-1])
            print(f"streamed scoring of {probe['rows']:,} spectra ({probe['precision']}): "
                  f"{probe['rate']:,.0f}/s, peak RSS {probe['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
