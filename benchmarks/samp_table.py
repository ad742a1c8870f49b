"""A candidate table broadcast to TOPCAT: from the start of the broadcast to
TOPCAT's ``samp.ok``, with and without access URLs, and what it is made of.

    python benchmarks/samp_table.py [--rows 10000] [--repeats 3] [--access-limit 500]

Starts the real peers with tests/peers.py, isolated in a temporary
folder as ``tests/test_samp_topcat.py`` does (own lockfile, ``HOME``,
``-Duser.home`` and X display): a JSAMP hub, Xvfb and TOPCAT.

The session (≈20 s for 10,000 rows) is built as ``benchmarks/gui_latency.py``
builds its own: the real LAMOST and Ondřejov files (``../shared/data/real``
or ``$VO_AL_REAL_DATA``) are ingested, the LAMOST pool is tiled to
``--rows`` rows under new ids, and one quick iteration (``max_epochs=1``)
scores it. Here that model predicts every spectrum emission, so the candidate
table is the whole pool (its length is printed). Every row names a real
file, so the SDM files behind the access URLs are written from real spectra;
but copies of one spectrum score alike, so the first 500 candidates are all
copies of one file (each still gets its own SDM file: they are kept by
spectrum id). Two quicker-looking ways do not give the figure: ``vo-al synth
--pool`` writes no files (its ``synth:`` sources cannot be read back, so no
access URL and no SDM file would be made), and a synthetic survey of files
trained one epoch predicts only a handful of candidates.

Then, in one process, for each repeat and each variant (with access URLs for
the first ``--access-limit`` rows, and without: ``access_limit=0``; the order
alternates between repeats), on a fresh copy of the session and a fresh
:class:`~vo_al.samp.link.SampLink` registered with the hub (a new session
path gives a new table-id, which TOPCAT needs, and new peer files mean no
SDM file is reused from an earlier send), the clock runs from the start of
:meth:`Publisher.send_table`'s work to TOPCAT's ``samp.ok``: the table's
preparation (``Publisher.prepare_table``: building it, the SDM files, the
VOTable) and the broadcast ``table.load.votable`` call to every subscribed
client (TOPCAT alone), until it answers. The parts are then timed apart on
the original session: building the table, the SDM files of the first rows,
and writing the VOTable alone (with and without URLs). Before the first
repeat, an untimed warm-up sends TOPCAT the iteration's query batch (the
first table a fresh TOPCAT loads also loads its VOTable classes).

Needs Debian's ``jsamp``, ``topcat`` and ``xvfb``. Peers, sessions and files
are removed on exit, on Ctrl+C and on SIGTERM too.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test support: tests/peers.py
from peers import (PeerEnvironment, missing_tools, start_jsamp_hub, start_topcat,
                              start_xvfb, wait_for)

#: Generous: TOPCAT is a JVM GUI and the machine may be loaded.
START_S = 120
#: Longest wait for TOPCAT's answer to one table.
ANSWER_S = 300
TABLE_LOAD = "table.load.votable"


# --------------------------------------------------------------------------
# Machine facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB RAM"
    except (OSError, ValueError):
        pass
    return "RAM unknown"


def _packages(*names: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *names],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "Debian package versions unknown"
    return ", ".join(out.split("\n")[:-1]) or "Debian package versions unknown"


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def machine_facts() -> str:
    """One line: CPU, cores, memory, load, Python and the peers' packages."""
    import astropy
    import pyvo

    java = shutil.which("java")
    java = Path(java).resolve().parts if java else ()
    jvm = next((part for part in java if part.startswith(("java-", "jdk", "jre"))), "java ?")
    return (f"{_cpu_model()}, {os.cpu_count()} cores, {_memory_gib()}, load average {_load()}; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"astropy {astropy.__version__}, pyvo {pyvo.__version__}, numpy {np.__version__}; "
            f"{_packages('jsamp', 'topcat', 'xvfb')}, {jvm}")


# --------------------------------------------------------------------------
# The session


def build_real(folder: Path, rows: int, real: Path) -> Path:
    """The real files ingested, the LAMOST pool tiled to ``rows``, one iteration."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gui_latency import build_session  # max_epochs=1; prints its scoring time

    if not (real / "MANIFEST.tsv").is_file():
        raise RuntimeError(f"real data not found at {real}: set VO_AL_REAL_DATA or --real")
    return build_session(real, folder, rows)


# --------------------------------------------------------------------------
# The peers


def start_peers(folder: Path, stack: ExitStack):
    """Hub, Xvfb, TOPCAT and a pyvo watcher client; returns (watcher, TOPCAT's id, seconds).

    Every process is handed to ``stack`` for stopping as soon as it exists;
    this process's ``HOME`` and ``SAMP_HUB`` point at the folder until then.
    """
    from pyvo.samp import SAMPIntegratedClient
    from pyvo.samp import conf as samp_conf

    from vo_al.samp.hub import LOOPBACK

    peers = PeerEnvironment(folder)
    saved = {name: os.environ.get(name) for name in ("HOME", "SAMP_HUB")}

    def restore():
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    stack.callback(restore)
    os.environ.update(HOME=str(peers.home), SAMP_HUB=peers.samp_hub)
    started = time.perf_counter()
    hub = start_jsamp_hub(peers)
    stack.callback(hub.stop)
    xvfb, display = start_xvfb(peers)
    stack.callback(xvfb.stop)
    topcat = start_topcat(peers, display)
    stack.callback(topcat.stop)
    with samp_conf.set_temp("use_internet", False):
        watcher = SAMPIntegratedClient(name="samp-table-benchmark", addr=LOOPBACK)
        watcher.connect()
    stack.callback(_disconnect, watcher)

    def topcat_id():
        if not topcat.alive():
            raise RuntimeError(f"TOPCAT exited: {topcat.log.read_text()[-2000:]}")
        for client_id in watcher.get_registered_clients():
            if watcher.get_metadata(client_id).get("samp.name") == "topcat":
                return client_id
        return None

    client = wait_for(topcat_id, START_S, "TOPCAT to register", interval=0.1)
    wait_for(lambda: TABLE_LOAD in watcher.get_subscriptions(client), START_S,
             "TOPCAT's subscriptions")
    return watcher, client, time.perf_counter() - started


def _disconnect(client):
    try:
        client.disconnect()
    except OSError:
        pass  # the hub is gone already


def _ignore(item):
    """The link's dispatch hook: nothing is expected from TOPCAT here."""


def _open_link(session, access_limit: int):
    """A SampLink on ``session`` registered with the hub (caller closes it)."""
    from vo_al.samp.link import SampLink
    from vo_al.workspace import Workspace

    link = SampLink(Workspace(session), _ignore, access_limit=access_limit)
    try:
        link.start()
        if not link.bridge.wait_connected(30):
            raise RuntimeError("vo-al did not register with the hub within 30 s")
    except BaseException:
        link.close()
        raise
    return link


# --------------------------------------------------------------------------
# Measurements


def broadcast(session_dir: Path, kind: str, access_limit: int, topcat: str) -> dict:
    """Open the session, register, and time one broadcast of a table to TOPCAT's samp.ok.

    The same steps as ``Publisher.send_table`` (``prepare_table``, then the
    bridge's call to every subscribed client), split to time both.
    """
    from vo_al.samp.messages import load_table
    from vo_al.session import Session

    with Session.open(session_dir) as session:
        link = _open_link(session, access_limit)
        try:
            time.sleep(0.5)  # let the hub tell the others about vo-al
            started = time.perf_counter()
            sent = link.publisher.prepare_table(kind)
            prepared = time.perf_counter()
            pending = link.bridge.call(load_table(sent.url, sent.table_id, sent.name))
            answers = pending.wait(ANSWER_S)
            answered = time.perf_counter()
            if pending.recipients != [topcat]:
                raise RuntimeError(f"the broadcast reached {pending.recipients}, not TOPCAT "
                                   f"({topcat}) alone")
            answer = answers.get(topcat)
            if answer is None or answer.get("samp.status") != "samp.ok":
                raise RuntimeError(f"TOPCAT did not answer samp.ok within {ANSWER_S} s: "
                                   f"{answer}")
            votable = Path(url2pathname(urlparse(sent.url).path)).stat().st_size
        finally:
            link.close()
    return {"total": answered - started, "prepare": prepared - started,
            "answer": answered - prepared, "rows": len(sent.ids), "bytes": votable,
            "sdm_files": len(sent.keys) - 1}


def parts(session_dir: Path, access_limit: int, scratch: Path) -> dict:
    """Build the candidate table, write the SDM files of its first rows, and write
    the VOTable alone (with those URLs, and without), each timed apart."""
    from vo_al.samp.sdm import FORMATS, full_spectrum, write_sdm
    from vo_al.samp.tables import add_access_columns, peer_table
    from vo_al.session import Session
    from vo_al.spectra import read_spectrum

    scratch.mkdir(mode=0o700)
    try:
        with Session.open(session_dir) as session:
            started = time.perf_counter()
            table = peer_table(session, "candidates")
            built = time.perf_counter() - started
        urls = []
        started = time.perf_counter()
        for source in table["source"][:access_limit]:
            path = scratch / f"{secrets.token_hex(16)}{FORMATS['fits'][1]}"
            write_sdm(full_spectrum(read_spectrum(str(source))), path, "fits")
            urls.append(path.resolve().as_uri())
        sdm = time.perf_counter() - started
        sdm_bytes = sum(p.stat().st_size for p in scratch.iterdir())
        written = {}
        for name, column in (("with", urls), ("without", [])):
            copy = table.copy(copy_data=False)
            add_access_columns(copy, column + [""] * (len(copy) - len(column)))
            path = scratch / f"{name}.vot"
            started = time.perf_counter()
            copy.write(path, format="votable")
            written[name] = (time.perf_counter() - started, path.stat().st_size)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"build": built, "sdm": sdm, "sdm_files": len(urls), "sdm_bytes": sdm_bytes,
            "write_with": written["with"][0], "bytes_with": written["with"][1],
            "write_without": written["without"][0], "bytes_without": written["without"][1]}


def _spread(values, unit: str = " s", scale: float = 1.0, digits: int = 2) -> str:
    values = np.asarray(values, dtype=float) * scale
    median = f"{np.median(values):.{digits}f}{unit}"
    if len(values) == 1:
        return median
    return (f"{median} median ({values.min():.{digits}f}–{values.max():.{digits}f} over "
            f"{len(values)})")


def report(runs: dict, split: list[dict], limit: int):
    """Print the figures and their ratios."""
    with_, without = runs["with"], runs["without"]

    def col(rows, key):
        return [r[key] for r in rows]

    for name, rows, label in (("with", with_, f"access URLs for the first {limit} rows"),
                              ("without", without, "no access URLs (access_limit=0)")):
        print(f"broadcast → TOPCAT's samp.ok, {rows[0]['rows']:,} rows, {label}: "
              f"{_spread(col(rows, 'total'))}; preparing the table (Publisher.prepare_table) "
              f"{_spread(col(rows, 'prepare'))}, call → samp.ok (transfer and TOPCAT's "
              f"load) {_spread(col(rows, 'answer'))}; VOTable {rows[0]['bytes'] / 1e6:.1f} MB, "
              f"{rows[0]['sdm_files']} SDM files")
    files = split[0]["sdm_files"]
    print(f"parts, timed apart: building the table {_spread(col(split, 'build'))}; "
          f"writing the VOTable alone {_spread(col(split, 'write_with'))} with URLs "
          f"({split[0]['bytes_with'] / 1e6:.1f} MB), {_spread(col(split, 'write_without'))} "
          f"without ({split[0]['bytes_without'] / 1e6:.1f} MB); the SDM files of the first "
          f"{files} rows {_spread(col(split, 'sdm'))}"
          + (f" ({_spread(np.divide(col(split, 'sdm'), files), ' ms', 1e3, 1)} each, "
             f"{split[0]['sdm_bytes'] / files / 1e3:.0f} kB each)" if files else ""))
    t_with, t_without = np.median(col(with_, "total")), np.median(col(without, "total"))
    sdm, vot_with = np.median(col(split, "sdm")), np.median(col(split, "write_with"))
    vot_without = np.median(col(split, "write_without"))
    answer_with = np.median(col(with_, "answer"))
    answer_without = np.median(col(without, "answer"))
    print(f"ratios (medians): with / without access URLs {t_with / t_without:.2f}x "
          f"(+{t_with - t_without:.2f} s); of the broadcast with URLs: SDM files "
          f"{sdm / t_with:.0%}, VOTable write {vot_with / t_with:.0%}, transfer and TOPCAT's "
          f"load {answer_with / t_with:.0%}; of the broadcast without: VOTable write "
          f"{vot_without / t_without:.0%}, transfer and TOPCAT's load "
          f"{answer_without / t_without:.0%}; prepare_table with URLs vs. its parts "
          f"(build + SDM + write) {np.median(col(with_, 'prepare')):.2f} / "
          f"{np.median(col(split, 'build')) + sdm + vot_with:.2f} s")


def run(args, stack: ExitStack):
    """Build the session, start the peers, measure, report."""
    scratch = Path(tempfile.mkdtemp(prefix="vo-al-samp-table-"))
    stack.callback(shutil.rmtree, scratch, ignore_errors=True)
    started = time.perf_counter()
    session_dir = build_real(scratch, args.rows, args.real)
    print(f"session with a {args.rows:,}-spectrum pool (tiled real LAMOST files) ready in "
          f"{time.perf_counter() - started:.1f} s")

    watcher, topcat, up = start_peers(scratch / "peers", stack)
    metadata = watcher.get_metadata(topcat)
    version = next((v for k, v in metadata.items() if "version" in k.lower()), "version ?")
    print(f"peers: JSAMP hub, Xvfb and TOPCAT ({version}) registered in {up:.1f} s")

    copies = iter(range(1_000_000))

    def fresh_copy() -> Path:
        path = scratch / "copies" / f"session-{next(copies)}"
        shutil.copytree(session_dir, path)
        return path

    def done_with(path: Path):
        shutil.rmtree(path, ignore_errors=True)

    warm = fresh_copy()
    first = broadcast(warm, "query", args.access_limit, topcat)
    done_with(warm)
    print(f"warm-up (untimed): the {first['rows']}-row query batch, samp.ok after "
          f"{first['total']:.2f} s")

    runs = {"with": [], "without": []}
    split = []
    for repeat in range(args.repeats):
        order = ("with", "without") if repeat % 2 == 0 else ("without", "with")
        for name in order:
            copy = fresh_copy()
            limit = args.access_limit if name == "with" else 0
            runs[name].append(broadcast(copy, "candidates", limit, topcat))
            done_with(copy)
            print(f"  repeat {repeat + 1}, {name} access URLs: "
                  f"{runs[name][-1]['total']:.2f} s", flush=True)
        split.append(parts(session_dir, args.access_limit, scratch / f"parts-{repeat}"))
    rows = runs["with"][0]["rows"]
    if rows != args.rows:
        print(f"note: the candidate table has {rows:,} rows, not {args.rows:,}: the model "
              "did not predict every spectrum interesting")
    report(runs, split, args.access_limit)
    print(f"load average at the end: {_load()}")


class _Terminated(BaseException):
    """SIGTERM or SIGHUP, raised on the main thread so that the cleanup runs."""


def _terminate(signum, frame):
    raise _Terminated(signum)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="spectra in the pool")
    parser.add_argument("--repeats", type=int, default=3,
                        help="broadcasts of each variant (default: 3)")
    parser.add_argument("--access-limit", type=int, default=500,
                        help="rows with an access URL in the 'with' variant (default: 500)")
    default_real = os.environ.get("VO_AL_REAL_DATA",
                                  Path(__file__).resolve().parents[2] / "shared/data/real")
    parser.add_argument("--real", type=Path, default=Path(default_real),
                        help="the real LAMOST and Ondřejov files (MANIFEST.tsv)")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeats < 1 or args.access_limit < 1:
        parser.error("--rows, --repeats and --access-limit must be positive")
    missing = missing_tools("jsamp", "topcat", "xvfb")
    if missing:
        print(f"needs {', '.join(missing)} on the PATH (Debian: apt-get install jsamp topcat "
              "xvfb)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {machine_facts()}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)
    stack = ExitStack()
    status = 0
    try:
        run(args, stack)
    except KeyboardInterrupt:
        print("interrupted: stopping the peers, removing the files", file=sys.stderr)
        status = 130
    except _Terminated as exc:
        print("terminated: stopping the peers, removing the files", file=sys.stderr)
        status = 128 + exc.args[0]
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl+C must not stop the cleanup
        stack.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
