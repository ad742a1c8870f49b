"""Ingest throughput and memory, measured against a baseline in the same run.

    python benchmarks/ingest.py [--files 4000] [--small 1000] [--workdir DIR]

1. Writes a synthetic LAMOST-layout survey (``vo-al synth``) and reports the
   synth rate.
2. Baseline: a naive single-process loop (open with astropy through the
   reader, preprocess, append one row at a time to a resizable HDF5 dataset).
3. ``vo_al.pool.ingest`` with all cores, on the same files.
   Prints files/s of each and the ratio (these machines are noisy: only the
   ratio in one run means much).
4. Peak memory (max RSS, main process and workers) of ingest in a fresh
   process at two pool sizes: it must not grow with the number of files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from vo_al.inputs import iter_input_paths
from vo_al.pool import ingest
from vo_al.preprocess import PreprocessConfig, preprocess
from vo_al.spectra import SpectrumReadError, read_spectrum
from vo_al.synth import generate_survey

_MEMORY_PROBE = r"""
import json, resource, sys
from vo_al.pool import ingest
report = ingest([sys.argv[1]], sys.argv[2], workers=int(sys.argv[3]))
print(json.dumps({
    "spectra": report.n_spectra,
    "main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def naive_ingest(directory: Path, out: Path) -> int:
    """The baseline: one process, one file at a time, one row at a time."""
    config = PreprocessConfig()
    n = 0
    with h5py.File(out, "w") as h5:
        spectra = h5.create_dataset("spectra", (0, config.n_points), np.float32,
                                    maxshape=(None, config.n_points))
        for path in iter_input_paths([directory]):
            try:
                vector = preprocess(read_spectrum(path), config).vector
            except SpectrumReadError:
                continue
            spectra.resize(n + 1, axis=0)
            spectra[n] = vector
            n += 1
    return n


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def peak_memory(directory: Path, out: Path, workers: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(directory), str(out), str(workers)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--small", type=int, default=1000, help="smaller pool for the memory check")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vo-al-bench-"))
    big, small = work / "big", work / "small"

    report = generate_survey(big, n_lamost=args.files, seed=1, corrupt=5)
    print(f"synth: {report.n_files} files in {report.seconds:.1f} s = "
          f"{report.files_per_second:.0f} files/s ({workers} workers)")
    generate_survey(small, n_lamost=args.small, seed=2)

    n_naive, t_naive = timed(naive_ingest, big / "lamost", work / "naive.h5")
    result, t_pool = timed(ingest, [big / "lamost"], work / "pool.h5", workers=workers,
                           overwrite=True)
    rate_naive, rate_pool = n_naive / t_naive, result.n_inputs / t_pool
    print(f"naive loop (1 process): {n_naive} spectra in {t_naive:.1f} s = {rate_naive:.0f} files/s")
    print(f"vo-al ingest ({workers} workers): {result.n_spectra} spectra "
          f"(+{result.n_rejected} rejected) in {t_pool:.1f} s = {rate_pool:.0f} files/s")
    print(f"ratio ingest / naive: {rate_pool / rate_naive:.2f}x")

    for directory, label in ((small / "lamost", "small"), (big / "lamost", "large")):
        out = work / f"mem-{label}.h5"
        out.unlink(missing_ok=True)
        memory = peak_memory(directory, out, workers)
        print(f"peak RSS, {label} pool ({memory['spectra']} spectra): main "
              f"{memory['main_mb']:.0f} MB, largest worker {memory['worker_mb']:.0f} MB")


if __name__ == "__main__":
    main()
