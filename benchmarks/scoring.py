"""Scoring throughput against this machine's own matmul rate, MC-dropout
cost, fp32/bf16 agreement, and peak memory at two pool sizes.

    python benchmarks/scoring.py [--rows 20000] [--sizes 100000 400000]
    python benchmarks/scoring.py --device cuda --batch 16384 --rows 1000000 --sizes 4136482

Everything is measured in one process, so ratios are meaningful on a noisy
machine: the CNN's effective FLOP rate (≈34 MFLOP per 140-point spectrum)
is quoted as a fraction of the fp32 and bf16 matmul rates measured just
before, on the same device. With ``--device cuda`` the input batches start
on the host (as they do when a pool is streamed from HDF5) and every timing
ends with a device synchronisation; the streamed-scoring probe then scores
the pool file end to end on the GPU.
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
from vo_al.runtime import inference_context, resolve_device, tune_allocator
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
                     ScoreConfig(mc_samples=int(sys.argv[3]), device=sys.argv[4],
                                 batch_size=int(sys.argv[5]),
                                 chunk_rows=max(16384, int(sys.argv[5]))))
print(json.dumps({"rows": summary.n_scored, "rate": summary.spectra_per_second,
                  "precision": summary.precision,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(dtype, device, n=2048, repeats=10) -> float:
    """Dense n×n matrix-product rate in GFLOP/s on ``device``."""
    if device.type == "cuda":
        n, repeats = 8192, 20
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    _sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def rate(function, x, device, batch=1024, repeats=3) -> float:
    """Spectra per second of ``function(batch)`` over ``x`` (best of ``repeats``);
    each batch is moved from the host to ``device`` inside the timing."""
    function(torch.from_numpy(x[:batch]).to(device))
    _sync(device)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            function(torch.from_numpy(x[i:i + batch]).to(device, non_blocking=True))
        _sync(device)
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


def describe_device(device: torch.device) -> str:
    """The device and, on a CPU, the instruction sets that decide its speed."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"CPU ({', '.join(wanted) or 'flags unknown'}), torch {torch.__version__}"


def plain_rates(model, x, device, batch):
    """fp32 and bf16 single-pass rates; on a CPU also fp32 before the allocator tuning."""
    def plain(dtype):
        def run(spectra):
            with inference_context(device, dtype):
                model.predict_proba(spectra)
        return run

    untuned = rate(plain(None), x, device, batch) if device.type == "cpu" else None
    tune_allocator()
    return untuned, rate(plain(None), x, device, batch), rate(plain(torch.bfloat16), x, device,
                                                              batch)


def report_mc(model, x, device, batch, fp32, bf16):
    """Naive T-pass MC dropout against the head-only path, in both precisions."""
    generator = torch.Generator().manual_seed(0)
    for dtype, label, base in ((None, "fp32", fp32), (torch.bfloat16, "bf16", bf16)):
        def naive(spectra, dtype=dtype):
            model.train()  # dropout on: T full passes
            with inference_context(device, dtype):
                for _ in range(T):
                    model(spectra)
            model.eval()

        def head_only(spectra, dtype=dtype):
            with inference_context(device, dtype):
                model.mc_head_samples(model.features(spectra), T, generator)

        naive_rate = rate(naive, x[: max(2048, len(x) // 10)], device, batch, repeats=1)
        head_rate = rate(head_only, x, device, batch)
        print(f"MC dropout T={T}, {label}: naive {naive_rate:,.0f}/s ({base / naive_rate:.1f}x "
              f"one pass), head-only {head_rate:,.0f}/s ({base / head_rate:.2f}x one pass)")


def report_streamed(sizes, device, batch):
    """Streamed scoring of pool files in a fresh process: rate and peak host RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            pool = Path(tmp) / f"pool-{rows}.h5"
            write_random_pool(pool, rows)
            out = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(pool),
                                  str(Path(tmp) / "scores.h5"), "0", device.type, str(batch)],
                                 check=True, capture_output=True, text=True).stdout
            probe = json.loads(out.strip().splitlines()[-1])
            print(f"streamed scoring of {probe['rows']:,} spectra ({probe['precision']}, "
                  f"{device.type}): {probe['rate']:,.0f}/s, peak RSS {probe['rss_mb']:.0f} MB")
            pool.unlink()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--sizes", type=int, nargs="+", default=(100000, 400000))
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--batch", type=int, default=1024, help="spectra per forward pass")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {describe_device(device)}; {torch.get_num_threads()} CPU threads")
    x = np.random.default_rng(1).uniform(-1, 1, (args.rows, 140)).astype(np.float32)
    model = build_model(seed=0).to(device).eval()

    untuned, fp32, bf16 = plain_rates(model, x, device, args.batch)
    gflops32 = matmul_gflops(torch.float32, device)
    gflops16 = matmul_gflops(torch.bfloat16, device)
    print(f"matmul: fp32 {gflops32:,.0f} GFLOP/s, bf16 {gflops16:,.0f} GFLOP/s")
    for name, r, peak in (("fp32, glibc default malloc", untuned, gflops32),
                          ("fp32" + (", tuned malloc" if device.type == "cpu" else ""), fp32,
                           gflops32),
                          ("bf16 autocast", bf16, gflops16)):
        if r is not None:
            print(f"plain pass {name}, batch {args.batch}: {r:,.0f} spectra/s "
                  f"= {r * CNN_FLOP / 1e9:,.0f} GFLOP/s = {r * CNN_FLOP / 1e9 / peak:.1%} of "
                  f"the matmul rate; 4,136,482 spectra (LAMOST DR2) in {4136482 / r:,.1f} s")
    report_mc(model, x, device, args.batch, fp32, bf16)
    agreement = bf16_agreement(model, x[:8192], device, args.batch)
    print(f"bf16/fp32 class agreement, untrained net on random input: {agreement:.4f} "
          f"(benchmarks/bf16_agreement.py measures it on a trained model)")
    report_streamed(args.sizes, device, args.batch)


if __name__ == "__main__":
    main()
