"""The hostile corpus: every entry through `vo-al inspect`, `vo-al ingest`
alone and `vo-al ingest` beside a good file, each run in its own process.

    python benchmarks/hostile_files.py [--timeout 60] [--limit-gb 3] [--workers 1]

Builds, in a temporary folder, FIFOs, devices (/dev/zero, /dev/urandom,
also behind a ``.fits`` link), gzip and bzip2 bombs, headers that lie
about their data size, headers without END, symbolic-link loops, an
unreadable folder and file, names that are not UTF-8, an over-deep folder
tree, empty, truncated, random and non-FITS files, and runs the three
commands on each (through ``vo_al.cli.main``, timed after the imports).

Each run gets ``--timeout`` seconds (then its process group is killed: a
*hang*) and an address-space limit of ``--limit-gb`` (so that a regression
fails instead of eating the machine). A *crash* is a Python traceback or
an exit status other than 0 and 2. Run as root, the commands run without
CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so that the unreadable entries are
unreadable for them too. Peak RSS is the child's ``ru_maxrss`` from
``os.wait4`` (the largest of the process and the ones it waited for).

Needs the real LAMOST files (``$VO_AL_REAL_DATA`` or ../shared/data/real)
for the good file and the lying header.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import ctypes
import gzip
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("VO_AL_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
GOOD = REAL / "lamost" / "spec-56258-VB054N40V2_sp11-213.fits"
OTHER_GOOD = [REAL / "lamost" / f"spec-{name}.fits"
              for name in ("56265-VB069N07V2_sp04-027", "56266-GAC080N32V4_sp15-012")]
DR2_FLOAT64 = REAL / "lamost" / "spec-55916-B5591606_sp01-001.fits"
#: Depth of the deep folder tree: past the recursion limit (1000), then past
#: PATH_MAX (4096 bytes of path).
DEPTH = 2100

#: Runs one ``vo-al`` command line (a JSON list) and prints its own seconds,
#: after the imports: a first command warms them (the parser imports torch,
#: the error path dask.distributed: seconds).
_RUNNER = r"""
import contextlib, io, json, sys, tempfile, time
import vo_al.cli
with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
    vo_al.cli.main(["ingest", "/dev/null", "--out", tmp + "/warm.h5", "--workers", "1"])
argv = json.loads(sys.argv[1])
started = time.perf_counter()
status = vo_al.cli.main(argv)
print(f"BENCH seconds={time.perf_counter() - started:.4f}", file=sys.stderr)
sys.exit(status)
"""


@dataclass
class Entry:
    """One hostile entry: a path, and how many spectra it holds (normally 0)."""

    name: str
    path: str
    spectra: int = 0


@dataclass
class Run:
    """The outcome of one command on one entry."""

    status: int | None
    seconds: float
    peak_mb: float
    crashed: bool
    hung: bool
    rows: int | None = None
    reason: str = ""


# ---------------------------------------------------------------- the corpus


def _zeros_gzip(n_mib: int) -> bytes:
    """``n_mib`` MiB of zeros as a multi-member gzip (made in milliseconds)."""
    return gzip.compress(bytes(2**20), 9) * n_mib


def _zeros_bzip2(n_mib: int) -> bytes:
    return bz2.compress(bytes(2**20), 9) * n_mib


def _lying_header(source: Path, naxis1: int) -> bytes:
    """The header of a real LAMOST file with NAXIS1 replaced."""
    raw = source.read_bytes()
    header = raw[:raw.index(b"END     ") // 2880 * 2880 + 2880]
    at = header.index(b"NAXIS1  =")
    card = f"NAXIS1  = {naxis1:>20d} / length of the rows".ljust(80).encode()
    return header[:at] + card + header[at + 80:]


def _cards(*cards: str) -> bytes:
    text = "".join(card.ljust(80) for card in (*cards, "END"))
    return text.encode().ljust(-(-len(text) // 2880) * 2880, b" ")


def build_corpus(root: Path) -> list[Entry]:
    """Make every hostile entry under ``root``."""
    entries = []

    def add(name, path, spectra=0):
        entries.append(Entry(name, os.fsdecode(path), spectra))

    def write(name, data: bytes, spectra=0):
        path = root / name
        path.write_bytes(data)
        add(name, path, spectra)
        return path

    os.mkfifo(root / "fifo.fits")
    add("fifo named .fits", root / "fifo.fits")
    add("/dev/zero", "/dev/zero")
    add("/dev/urandom", "/dev/urandom")
    (root / "zero.fits").symlink_to("/dev/zero")
    add("link .fits -> /dev/zero", root / "zero.fits")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "socket.fits"))
    sock.close()
    add("unix socket named .fits", root / "socket.fits")
    (root / "dir.fits").mkdir()
    add("directory named .fits", root / "dir.fits")
    write("bomb.fits.gz", _zeros_gzip(3800))  # 3.8 MB -> 3.8 GiB of zeros
    write("bomb.fits.bz2", _zeros_bzip2(3800))
    write("lie-2e8.fits.gz", gzip.compress(_lying_header(DR2_FLOAT64, 200_000_000))
          + _zeros_gzip(7600))  # claims 8 GB (float64), 7.7 MB gzipped
    write("lie-2e8.fits", _lying_header(GOOD, 200_000_000) + bytes(2880 * 10))
    write("lie-naxis999.fits", _cards("SIMPLE  = T", "BITPIX  = -64", "NAXIS   = 999",
                                      *(f"NAXIS{i:<3d}= 2" for i in range(1, 1000))))
    write("lie-bintable.fits", _cards("SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 0",
                                      "EXTEND  = T")
          + _cards("XTENSION= 'BINTABLE'", "BITPIX  = 8", "NAXIS   = 2",
                   "NAXIS1  = 8", "NAXIS2  = 1000000000", "PCOUNT  = 0", "GCOUNT  = 1",
                   "TFIELDS = 1", "TFORM1  = 'D'", "TTYPE1  = 'flux'"))
    write("lie-bitpix.fits", _cards("SIMPLE  = T", "BITPIX  = 'abc'", "NAXIS   = 1",
                                    "NAXIS1  = 10"))
    write("no-end.fits.gz", gzip.compress(_cards("SIMPLE  = T")[:80] + b"COMMENT".ljust(80)
                                          * 1_300_000))  # 100 MB of cards, no END
    write("many-hdus.fits", _cards("SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 0")
          + _cards("XTENSION= 'IMAGE'", "BITPIX  = 8", "NAXIS   = 0", "PCOUNT  = 0",
                   "GCOUNT  = 1") * 5000)
    write("empty.fits", b"")
    write("truncated.fits", GOOD.read_bytes()[:40000])
    write("truncated.fits.gz", gzip.compress(GOOD.read_bytes())[:20000])
    write("not-fits.fits", b"this is not FITS at all\n" * 200)
    write("random.fits", os.urandom(2**20))
    write("random.fits.gz", gzip.compress(os.urandom(2**20)))
    write("bad-gzip.fits.gz", b"\x1f\x8b" + os.urandom(4096))
    write("non-ascii-header.fits", GOOD.read_bytes().replace(b"DESIG   = 'LAMOST",
                                                             b"DESIG   = '\xff\x00MOST"))
    write("good-trailing-junk.fits", OTHER_GOOD[0].read_bytes() + bytes(2**20), spectra=1)

    (root / "self-loop.fits").symlink_to("self-loop.fits")
    add("symlink to itself", root / "self-loop.fits")
    (root / "loop" / "sub").mkdir(parents=True)
    (root / "loop" / "self").symlink_to(".")
    (root / "loop" / "sub" / "back").symlink_to("..")
    add("dir with links back up", root / "loop")
    (root / "locked").mkdir()
    shutil.copy(GOOD, root / "locked" / "spectrum.fits")
    (root / "locked").chmod(0)
    add("unreadable directory", root / "locked")
    shutil.copy(GOOD, root / "secret.fits")
    (root / "secret.fits").chmod(0)
    add("unreadable file", root / "secret.fits")
    bad_name = os.fsencode(root) + b"/bad\xff\xfe.fits"
    shutil.copy(OTHER_GOOD[1], bad_name)
    add("good file, non-UTF-8 name", bad_name, spectra=1)
    bad_dir = os.fsencode(root) + b"/d\xe9j\xe0"
    os.mkdir(bad_dir)
    (Path(os.fsdecode(bad_dir)) / "empty.fits").write_bytes(b"")
    add("bad file in non-UTF-8 dir", bad_dir)
    (root / "deep").mkdir()
    _deep_folders(root / "deep", make=True)
    add(f"{DEPTH}-deep folders", root / "deep")
    listing = root / "paths.txt"
    listing.write_text("/dev/zero\nfifo.fits\nnosuch.fits\nloop\n")
    add("list file of bad paths", listing)
    return entries


def _deep_folders(top: Path, make: bool):
    """Make (or remove) ``top/d/d/…`` :data:`DEPTH` deep, by file descriptors
    (the paths are longer than PATH_MAX; shutil.rmtree would recurse too deep)."""
    fds = [os.open(top, os.O_RDONLY)]
    try:
        for _ in range(DEPTH):
            if make:
                os.mkdir("d", dir_fd=fds[-1])
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        if not make:
            for parent in reversed(fds[:-1]):
                os.rmdir("d", dir_fd=parent)
    finally:
        for fd in fds:
            os.close(fd)


# ---------------------------------------------------------------- running


def _child_setup(limit_bytes: int):
    """In the child: own process group, address-space limit, no DAC override as root."""

    def setup():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
        if os.geteuid() == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
                libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP: gone after exec

    return setup


def run_command(argv: list[str], timeout: float, limit_bytes: int) -> Run:
    """One ``vo-al`` command in a fresh process; its outcome, time and peak RSS."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "-c", _RUNNER, json.dumps(argv)],
                                 stdout=subprocess.DEVNULL, stderr=err, env=env,
                                 preexec_fn=_child_setup(limit_bytes))
        try:
            wait_status, usage, hung = _wait(child.pid, timeout)
        except BaseException:  # SIGTERM or Ctrl-C: take the child down too
            os.killpg(child.pid, signal.SIGKILL)
            os.wait4(child.pid, 0)
            raise
        child.returncode = os.waitstatus_to_exitcode(wait_status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    seconds = next((float(line.split("=")[1]) for line in stderr.splitlines()
                    if line.startswith("BENCH seconds=")), float("nan"))
    status = child.returncode
    crashed = not hung and ("Traceback" in stderr or status not in (0, 2))
    return Run(status, seconds, usage.ru_maxrss / 1024, crashed, hung)


def _wait(pid: int, timeout: float):
    """``(wait status, rusage, hung)`` of child ``pid``, killed after ``timeout`` s."""
    deadline, hung = time.monotonic() + timeout, False
    while True:
        done, wait_status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return wait_status, usage, hung
        if time.monotonic() > deadline and not hung:
            os.killpg(pid, signal.SIGKILL)
            hung = True
        time.sleep(0.02)


def _pool_outcome(run: Run, out: Path) -> Run:
    """Add the pool's row count and the entry's reason from the rejected CSV."""
    from vo_al.pool import PoolReader, rejected_csv_path

    if out.exists():
        with PoolReader(out) as pool:
            run.rows = len(pool)
    csv_path = rejected_csv_path(out)
    if csv_path.exists():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reasons = [row["reason"] for row in csv.DictReader(fh) if row["path"] != str(GOOD)]
        run.reason = " | ".join(dict.fromkeys(reasons))
    return run


def run_entry(entry: Entry, work: Path, timeout: float, limit: int, workers: str):
    """inspect, ingest alone, ingest with a good file: three :class:`Run`."""
    inspect = run_command(["inspect", entry.path], timeout, limit)
    outs = [work / f"alone-{id(entry)}.h5", work / f"with-good-{id(entry)}.h5"]
    alone = _pool_outcome(run_command(["ingest", entry.path, "--out", str(outs[0]),
                                       "--workers", workers], timeout, limit), outs[0])
    beside = _pool_outcome(run_command(["ingest", entry.path, str(GOOD), "--out", str(outs[1]),
                                        "--workers", workers], timeout, limit), outs[1])
    return inspect, alone, beside


def _cell(run: Run, rows=False) -> str:
    if run.hung:
        return "HANG"
    text = f"{run.status}{'!' if run.crashed else ''} {run.seconds:5.2f}s"
    return text + (f" {run.rows if run.rows is not None else '-':>2}" if rows else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run (60)")
    parser.add_argument("--limit-gb", type=float, default=3.0,
                        help="address-space limit per run, GB (3)")
    parser.add_argument("--workers", default="1", help="ingest --workers (1)")
    args = parser.parse_args()
    limit = int(args.limit_gb * 2**30)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean the corpus up too
    with tempfile.TemporaryDirectory(prefix="vo-al-hostile-") as tmp:
        corpus, work = Path(tmp) / "corpus", Path(tmp) / "work"
        corpus.mkdir()
        work.mkdir()
        entries = build_corpus(corpus)
        print(f"{'entry':28} {'inspect':>10} {'ingest alone':>15} {'ingest + good':>15} "
              f"{'MB':>5}  reason (ingest alone)")
        results = []
        try:
            for entry in entries:
                runs = run_entry(entry, work, args.timeout, limit, args.workers)
                results.append((entry, runs))
                print(f"{entry.name[:28]:28} {_cell(runs[0]):>10} {_cell(runs[1], True):>15} "
                      f"{_cell(runs[2], True):>15} {max(r.peak_mb for r in runs):5.0f}  "
                      f"{runs[1].reason[:90]}", flush=True)
        finally:
            (corpus / "locked").chmod(0o755)
            _deep_folders(corpus / "deep", make=False)
    _summary(results)


def _summary(results):
    runs = [run for _, three in results for run in three]
    wrong = [entry.name for entry, (_, alone, beside) in results
             if (alone.rows or 0) != entry.spectra or beside.rows != entry.spectra + 1]
    seconds = [run.seconds for run in runs if run.seconds == run.seconds]
    print(f"\n{len(results)} entries, {len(runs)} runs: {sum(r.crashed for r in runs)} crashes, "
          f"{sum(r.hung for r in runs)} hangs, peak RSS {max(r.peak_mb for r in runs):.0f} MB; "
          f"command time (after imports) median {statistics.median(seconds):.3f} s, "
          f"max {max(seconds):.3f} s")
    print("pool rows as expected (good file kept, hostile entry not): "
          + ("all" if not wrong else f"NOT for {wrong}"))


if __name__ == "__main__":
    main()
