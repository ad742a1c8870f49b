"""Fetch throughput from the local DaCHS SSA service: files per second with
1, 2, 4 and 8 download threads (as ratios to 1, measured in the same run),
the per-file overhead of vo-al's fetch over plain HTTP GETs of the same
files, and a ``kill -9`` in the middle of a fetch followed by a rerun, which
must end with the same folder as an uninterrupted fetch.

    python benchmarks/fetch.py [--spectra 2000] [--datalink 500]
                               [--workers 1 2 4 8] [--json FILE]

Generates ``--spectra`` synthetic Ondřejov CCD700 SDM files (of which
``--datalink`` are served through DataLink, the rest as FITS), imports them
into the local DaCHS as ``voalssabench`` through ``scripts/dachs import``
(the test RD, tests/dachs/voalssa/q.rd, under another schema), then fetches
them all into fresh folders. Needs DaCHS (``scripts/dachs install``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from ssa_support import DACHS_SCRIPT, import_archive, ssa_url, write_archive  # noqa: E402
from pyvo.dal.adhoc import DatalinkResults  # noqa: E402
from vo_al.fetch import MANIFEST_NAME, fetch  # noqa: E402
from vo_al.ssa import FetchOptions, search  # noqa: E402
from vo_al.vohttp import TimeoutSession  # noqa: E402

SCHEMA = "voalssabench"


def cpu() -> str:
    """The CPU model and the cores this process may use."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, load {os.getloadavg()[0]:.1f}"


def raw_gets(records) -> float:
    """Seconds for plain GETs of every spectrum (DataLink documents followed),
    one after another, kept in memory: the floor a fetch cannot beat."""
    http = TimeoutSession(60)
    started = time.perf_counter()
    for record in records:
        url = record.access_url
        if record.is_datalink:
            links = DatalinkResults.from_result_url(url, session=http)
            url = next(links.bysemantics("#this", include_narrower=False)).access_url
        with http.get(url) as response:
            response.raise_for_status()
            assert response.content
        http.release()
    http.close()
    return time.perf_counter() - started


def timed_fetch(records, folder: Path, workers: int) -> dict:
    report = fetch(records, folder, options=FetchOptions(workers=workers, backoff_s=0.1))
    assert report.fetched == report.files == len(records), report
    return {"workers": workers, "seconds": report.seconds,
            "files_per_s": report.fetched / report.seconds}


def contents(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def kill_and_rerun(url: str, folder: Path, reference: Path, total: int) -> dict:
    """``vo-al fetch`` killed with SIGKILL halfway, then run again."""
    command = [sys.executable, "-m", "vo_al.cli", "fetch", url, "--all", "--out", str(folder),
               "--workers", "4"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(list(folder.glob("*.fits"))) < total // 2 and child.poll() is None:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    at_kill = len(list(folder.glob("*.fits")))
    parts = len(list(folder.glob(".*.part")))
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    same = contents(folder) == contents(reference)
    return {"killed": child.returncode == -signal.SIGKILL, "files_at_kill": at_kill,
            "partial_files_at_kill": parts, "same_folder_after_rerun": same,
            "same_manifest": (folder / MANIFEST_NAME).read_bytes()
            == (reference / MANIFEST_NAME).read_bytes()}


def table(rows: list, raw_s: float, n: int) -> str:
    one = rows[0]["files_per_s"]
    lines = ["workers   files/s   vs 1 worker   ms/file",
             "-------   -------   -----------   -------"]
    lines += [f"{r['workers']:>7}   {r['files_per_s']:>7.1f}   {r['files_per_s'] / one:>10.2f}×"
              f"   {1000 * r['seconds'] / n:>7.2f}" for r in rows]
    overhead = 1000 * (rows[0]["seconds"] - raw_s) / n
    lines.append(f"plain GETs, one at a time: {1000 * raw_s / n:.2f} ms/file; vo-al's overhead "
                 f"per file (temporary file, reader check, rename, fsync, manifest): "
                 f"{overhead:.2f} ms")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spectra", type=int, default=2000)
    parser.add_argument("--datalink", type=int, default=500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    subprocess.run(["bash", str(DACHS_SCRIPT), "start"], check=True)
    work = Path(tempfile.mkdtemp(prefix="vo-al-fetch-bench-"))
    try:
        counts = {"fits": args.spectra - args.datalink, "dl": args.datalink}
        started = time.perf_counter()
        import_archive(write_archive(work / "archive", counts, seed=3, schema=SCHEMA))
        print(f"{args.spectra} spectra generated and imported in "
              f"{time.perf_counter() - started:.0f} s; {cpu()}", flush=True)
        url = ssa_url(SCHEMA)
        records = search(url)
        assert len(records) == args.spectra, len(records)
        raw_s = raw_gets(records)
        rows = [timed_fetch(records, work / f"w{w}", w) for w in args.workers]
        print(table(rows, raw_s, len(records)))
        reference = work / f"w{4 if 4 in args.workers else args.workers[-1]}"
        killed = kill_and_rerun(url, work / "killed", reference, len(records))
        print(f"kill -9 after {killed['files_at_kill']} of {len(records)} files "
              f"({killed['partial_files_at_kill']} partial files left), then a rerun: same "
              f"folder as an uninterrupted fetch: {killed['same_folder_after_rerun']}; same "
              f"manifest: {killed['same_manifest']}")
        if args.json:
            args.json.write_text(json.dumps({"cpu": cpu(), "spectra": args.spectra,
                                             "datalink": args.datalink, "raw_get_s": raw_s,
                                             "runs": rows, "kill": killed}, indent=2))
        return 0 if killed["killed"] and killed["same_folder_after_rerun"] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
