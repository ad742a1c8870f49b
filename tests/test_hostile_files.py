"""Hostile files through the real CLI: `vo-al inspect`, `vo-al ingest` of the
entry alone and `vo-al ingest` of the entry beside a good file.

Every entry must be refused with a reason (exit status 2 alone, listed in
the rejected-files CSV) and never stop a good file from being ingested.
Entries that could hang or take gigabytes if the bounds regressed (FIFOs,
devices, bombs, lying headers) run in a child process under an
address-space limit and a timeout, so that a regression fails the test
instead of taking the machine. As root, the child runs without
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so that an unreadable folder is
unreadable for it as for any user. Times are measured by
benchmarks/hostile_files.py, never asserted here.
"""

from __future__ import annotations

import csv
import ctypes
import gzip
import json
import os
import resource
import shutil
import socket
import subprocess
import sys

import pytest

from vo_al.cli import main
from vo_al.pool import PoolReader, rejected_csv_path

GOOD = "lamost/spec-56258-VB054N40V2_sp11-213.fits"
OTHER_GOOD = "lamost/spec-56265-VB069N07V2_sp04-027.fits"
DR2_FLOAT64 = "lamost/spec-55916-B5591606_sp01-001.fits"
#: Address space of the child: a regressed bomb fails on it instead of using GBs.
CHILD_ADDRESS_SPACE = 3 * 2**30
#: Generous: the child imports torch (seconds on a busy machine) before it starts.
CHILD_TIMEOUT_S = 300

_RUNNER = r"""
import json, sys
from vo_al.cli import main
print(json.dumps([main(argv) for argv in json.loads(sys.argv[1])]))
"""


def _child_limits():
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, capability, 0, 0, 0):  # PR_CAPBSET_DROP: gone after exec
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _cli_in_child(*argvs) -> tuple[list[int], str]:
    """Exit statuses of ``vo_al.cli.main(argv)`` for each argv, run in one
    limited child process, and its stderr (checked to hold no traceback)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    child = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(argvs)], env=env,
                           capture_output=True, timeout=CHILD_TIMEOUT_S, preexec_fn=_child_limits)
    stderr = child.stderr.decode(errors="backslashreplace")
    assert "Traceback" not in stderr and child.returncode == 0, stderr
    return json.loads(child.stdout.decode().splitlines()[-1]), stderr


def _rejected(pool) -> dict[str, str]:
    with open(rejected_csv_path(pool), newline="", encoding="utf-8") as fh:
        return {row["path"]: row["reason"] for row in csv.DictReader(fh)}


def _rows(pool) -> int:
    with PoolReader(pool) as reader:
        return len(reader)


def _refused_three_ways(entry, good, tmp_path, reason: str, listed_as=None):
    """inspect, ingest alone and ingest beside ``good``, in one limited child:
    each refuses ``entry`` with ``reason``; ``good`` is still ingested."""
    alone, beside = tmp_path / "alone.h5", tmp_path / "beside.h5"
    listed_as = str(entry) if listed_as is None else listed_as
    statuses, stderr = _cli_in_child(
        ["inspect", os.fspath(entry)],
        ["ingest", os.fspath(entry), "--out", str(alone), "--workers", "1"],
        ["ingest", os.fspath(entry), str(good), "--out", str(beside), "--workers", "1"])
    assert statuses == [2, 2, 0], stderr
    assert reason in stderr and "no readable spectrum" in stderr
    assert not alone.exists() and reason in _rejected(alone)[listed_as]
    assert _rows(beside) == 1 and reason in _rejected(beside)[listed_as]


def test_fifo_named_fits_is_rejected_not_waited_on(real_data, tmp_path):
    fifo = tmp_path / "x.fits"
    os.mkfifo(fifo)
    _refused_three_ways(fifo, real_data / GOOD, tmp_path, "is a named pipe (FIFO)")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_device_paths_are_rejected_without_reading_them(real_data, tmp_path, device):
    _refused_three_ways(device, real_data / GOOD, tmp_path, "is a character device")


def test_fits_named_link_to_dev_zero_is_rejected(real_data, tmp_path):
    link = tmp_path / "zero.fits"
    link.symlink_to("/dev/zero")
    _refused_three_ways(link, real_data / GOOD, tmp_path, "is a character device")


def test_gzip_bomb_is_refused_without_decompressing_it(real_data, tmp_path):
    bomb = tmp_path / "bomb.fits.gz"
    bomb.write_bytes(gzip.compress(bytes(2**20), 9) * 3800)  # 3.8 MB → 3.8 GiB of zeros
    _refused_three_ways(bomb, real_data / GOOD, tmp_path, "is not FITS")


def test_header_claiming_gigabytes_is_refused_before_any_allocation(real_data, tmp_path):
    """A real LAMOST header with NAXIS1 = 2×10⁸ (8 GB of float64) and 7.6 GiB of zeros."""
    raw = (real_data / DR2_FLOAT64).read_bytes()
    header = raw[:11520]
    at = header.index(b"NAXIS1  =")
    header = header[:at] + b"NAXIS1  =            200000000".ljust(80) + header[at + 80:]
    lie = tmp_path / "lie.fits.gz"
    lie.write_bytes(gzip.compress(header) + gzip.compress(bytes(2**20), 9) * 7600)
    _refused_three_ways(lie, real_data / GOOD, tmp_path, "claims 8,000,000,000 bytes of data")


def test_unreadable_subdirectory_is_reported_and_skipped(real_data, tmp_path):
    """Real permissions: as root the child runs without the DAC capabilities."""
    folder = tmp_path / "survey"
    (folder / "locked").mkdir(parents=True)
    shutil.copy(real_data / OTHER_GOOD, folder / "locked" / "hidden.fits")
    shutil.copy(real_data / GOOD, folder / "good.fits")
    (folder / "locked").chmod(0)
    try:
        out = tmp_path / "p.h5"
        statuses, _ = _cli_in_child(["ingest", str(folder), "--out", str(out), "--workers", "1"])
        assert statuses == [0] and _rows(out) == 1
        assert "could not be listed (Permission denied)" in _rejected(out)[str(folder / "locked")]
    finally:
        (folder / "locked").chmod(0o755)


def test_unreadable_file_is_rejected_with_permission_denied(real_data, tmp_path):
    secret = tmp_path / "secret.fits"
    shutil.copy(real_data / OTHER_GOOD, secret)
    secret.chmod(0)
    _refused_three_ways(secret, real_data / GOOD, tmp_path, "cannot be opened (Permission denied)")


def test_directory_symlink_loop_is_walked_once(real_data, tmp_path):
    loop = tmp_path / "loop"
    (loop / "sub").mkdir(parents=True)
    (loop / "self").symlink_to(".")
    (loop / "sub" / "back").symlink_to("..")
    shutil.copy(real_data / GOOD, loop / "good.fits")
    out = tmp_path / "p.h5"
    assert main(["ingest", str(loop), "--out", str(out), "--workers", "1"]) == 0
    assert _rows(out) == 1
    reasons = _rejected(out)
    assert set(reasons) == {str(loop / "self"), str(loop / "sub" / "back")}
    assert all("directory loop" in reason for reason in reasons.values())


def test_folders_deeper_than_the_recursion_limit_are_walked(real_data, tmp_path):
    deep = leaf = tmp_path / "deep"
    for _ in range(1200):  # not mkdir(parents=True): it recurses once per level
        leaf.mkdir()
        leaf = leaf / "d"
    leaf = leaf.parent
    shutil.copy(real_data / GOOD, leaf / "good.fits")
    out = tmp_path / "p.h5"
    try:
        assert main(["ingest", str(deep), "--out", str(out), "--workers", "1"]) == 0
        assert _rows(out) == 1
    finally:  # shutil.rmtree (pytest's clean-up) recurses once per level: too deep
        (leaf / "good.fits").unlink()
        os.removedirs(leaf)


def test_non_utf8_file_names_are_stored_escaped(real_data, tmp_path, capsys):
    good_name = os.fsencode(tmp_path) + b"/good\xff.fits"
    bad_name = os.fsencode(tmp_path) + b"/empty\xe9.fits"
    shutil.copy(real_data / GOOD, good_name)
    open(bad_name, "wb").close()
    assert main(["inspect", os.fsdecode(good_name)]) == 0
    assert f"{tmp_path}/good\\xff.fits" in capsys.readouterr().out
    out = tmp_path / "p.h5"
    assert main(["ingest", str(tmp_path), "--out", str(out), "--workers", "1"]) == 0
    with PoolReader(out) as pool:
        assert list(pool.read("source")) == [f"{tmp_path}/good\\xff.fits"]
    assert "is empty" in _rejected(out)[f"{tmp_path}/empty\\xe9.fits"]


def test_socket_and_directory_named_fits_are_rejected(tmp_path, capsys):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.fits"))
    sock.close()
    (tmp_path / "d.fits").mkdir()
    assert main(["inspect", str(tmp_path / "s.fits"), str(tmp_path / "d.fits")]) == 2
    err = capsys.readouterr().err
    assert "is a socket" in err and "is a directory" in err


@pytest.mark.parametrize("kind, reason", [
    ("empty", "is empty"),
    ("not-fits", "is not FITS"),
    ("truncated", "is truncated"),
    ("truncated-gzip", "the gzip stream could not be read"),
    ("many-headers", "has headers longer than"),
])
def test_broken_file_alone_fails_cleanly_and_beside_a_good_one_is_listed(
        real_data, tmp_path, capsys, kind, reason):
    raw = (real_data / GOOD).read_bytes()
    content = {
        "empty": b"",
        "not-fits": b"this is not FITS at all\n" * 200,
        "truncated": raw[:40000],
        "truncated-gzip": gzip.compress(raw)[:20000],
        "many-headers": raw + (b"XTENSION= 'IMAGE'".ljust(80) + b"NAXIS   = 0".ljust(2800))
        * 200,
    }[kind]
    bad = tmp_path / ("bad.fits.gz" if "gzip" in kind else "bad.fits")
    bad.write_bytes(content)
    assert main(["inspect", str(bad)]) == 2
    assert reason in capsys.readouterr().err
    assert main(["ingest", str(bad), "--out", str(tmp_path / "a.h5"), "--workers", "1"]) == 2
    assert "no readable spectrum" in capsys.readouterr().err
    out = tmp_path / "b.h5"
    assert main(["ingest", str(bad), str(real_data / OTHER_GOOD), "--out", str(out),
                 "--workers", "1"]) == 0
    assert _rows(out) == 1 and reason in _rejected(out)[str(bad)]


def test_shard_of_rejected_files_only_among_good_ones(real_data, tmp_path):
    bad = [tmp_path / "a.fits", tmp_path / "b.fits"]
    bad[0].write_text("not a FITS file")
    bad[1].write_bytes(b"")
    out = tmp_path / "p.h5"
    assert main(["ingest", *map(str, bad), str(real_data / GOOD), str(real_data / OTHER_GOOD),
                 "--out", str(out), "--shard-rows", "2", "--workers", "1"]) == 0
    assert _rows(out) == 2 and set(_rejected(out)) == set(map(str, bad))
