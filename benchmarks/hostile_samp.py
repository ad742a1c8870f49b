"""Hostile SAMP messages against a running headless bridge on a real JSAMP hub.

    python benchmarks/hostile_samp.py [--rows 20000] [--table-rows 1000000]
                                      [--only WORD ...]

A JSAMP hub with the standard and the Web Profile (as TOPCAT's own hub;
``-web:auth true`` accepts every web registration) runs in a temporary
folder with its own lockfile and ``HOME``; ``vo-al samp SESSION`` runs in a
subprocess on a session built as ``benchmarks/gui_latency.py`` builds its
own (the real LAMOST and Ondřejov files, the pool tiled to ``--rows``, one
quick iteration), with ``--broadcast``: a client named ``topcat`` takes the
candidate table, whose table-id the row messages then use. Then a corpus
of hostile messages goes to it, one after the other, each with
``callAndWait``: malformed parameters, huge row lists,
``file:`` URLs naming a FIFO, a device, a directory or a file the sender may
not know about, HTTP servers that trickle a byte every 5 s or never answer,
redirect loops, gzip, bzip2 and nested bombs, XML entity bombs, remote
``STREAM`` data, a ``--table-rows`` label table, senders the bridge does not
trust, a real Web Profile client calling itself ``topcat``, and a flood of
slow downloads.

Meanwhile a pinger sends vo-al a cheap call that its owner thread answers
(``table.highlight.row`` of an unknown table-id: ``samp.error``) every
50 ms; the longest round trip of a ping is how long the bridge was blocked.
The bridge's resident memory is read from ``/proc`` every 50 ms, and its
peak (``VmHWM``) at the end. Printed: one row per message (its answer, the
time to it, the longest ping and the most memory while it was handled),
then the totals. Exits 1 if a message got no answer.

Needs Debian's ``jsamp``. The Web Profile listens on port 21012. Every
process and file is removed on exit.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import http.server
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test support: tests/peers.py
from peers import PeerEnvironment, PeerProcess, missing_tools, wait_for

LOOPBACK = "127.0.0.1"
WEB = "http://127.0.0.1:21012/"
PING_S = 0.05
#: A hostile message's answer is awaited this long (downloads have 30 s).
ANSWER_S = 300
HUGE_ROWS = (100_000, 1_000_000)
NO_ANSWER = "NO ANSWER"


# --------------------------------------------------------------------------
# Hostile servers


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/trickle``: a byte every 5 s; ``/loop``: redirects to itself;
    ``/huge``: claims 100 GB; ``/file/NAME``: a file of the corpus folder."""

    folder: Path = Path(".")

    def do_GET(self):  # noqa: N802 (http.server API)
        try:
            if self.path.startswith("/trickle"):
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 20))
                self.end_headers()
                while True:
                    self.wfile.write(b"<")
                    self.wfile.flush()
                    time.sleep(5)
            elif self.path.startswith("/loop"):
                self.send_response(302)
                self.send_header("Location", self.path + "x")
                self.end_headers()
            elif self.path.startswith("/huge"):
                self.send_response(200)
                self.send_header("Content-Length", str(100 << 30))
                self.end_headers()
                self.wfile.write(b"\0" * 65536)
            else:
                data = (self.folder / self.path.removeprefix("/file/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
        except OSError:
            return  # the bridge hung up

    def log_message(self, *args):
        pass


@contextmanager
def http_server(folder: Path):
    handler = type("Handler", (_Handler,), {"folder": folder})
    server = socketserver.ThreadingTCPServer((LOOPBACK, 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server():
    """Accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen(64)
        yield f"http://{LOOPBACK}:{sock.getsockname()[1]}/t.vot"


# --------------------------------------------------------------------------
# The corpus files


def _votable(rows: str, fields=("id", "label"), head: str = "", data: str = "") -> str:
    columns = "".join(f'<FIELD name="{f}" datatype="char" arraysize="*"/>' for f in fields)
    body = data or f"<DATA><TABLEDATA>{rows}</TABLEDATA></DATA>"
    return (f'<?xml version="1.0"?>{head}<VOTABLE version="1.4"><RESOURCE><TABLE>{columns}'
            f"{body}</TABLE></RESOURCE></VOTABLE>")


def write_corpus(folder: Path, ids: list[str], table_rows: int, real: Path) -> dict:
    """The files of the corpus; returns name -> path."""
    folder.mkdir()
    paths = {}

    def put(name: str, data: bytes) -> Path:
        paths[name] = folder / name
        paths[name].write_bytes(data)
        return paths[name]

    os.mkfifo(folder / "fifo.vot")
    os.mkfifo(folder / "fifo.fits")
    paths["fifo.vot"], paths["fifo.fits"] = folder / "fifo.vot", folder / "fifo.fits"
    zeros = bytes(64 << 20)
    compressor = gzip.compress(zeros, compresslevel=9)
    put("bomb.fits.gz", compressor * 64)  # 4 GiB of zeros in ≈4 MB
    put("bomb.fits.bz2", bz2.compress(zeros) * 64)
    put("nested.fits.gz.gz", gzip.compress(compressor * 64))
    put("bomb.vot.gz", gzip.compress(_votable("").encode()[:200] + zeros, 9) * 16)
    put("header-lies.fits.gz", gzip.compress(_lying_header(real) + zeros * 2, 9))
    put("laughs.vot", ('<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "' + "a" * 100 + '">'
                       + "".join(f'<!ENTITY {chr(98 + k)} "' + f"&{chr(97 + k)};" * 10 + '">'
                                 for k in range(8))
                       + ']><VOTABLE>&i;</VOTABLE>').encode())
    put("xxe.vot", _votable("<TR><TD>&x;</TD><TD>emission</TD></TR>",
                            head='<!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]>')
        .encode())
    put("stream-fifo.vot", _votable("", data='<DATA><BINARY><STREAM href="'
                                    f'{(folder / "fifo.vot").as_uri()}"/></BINARY></DATA>')
        .encode())
    put("broken.vot", _votable("<TR><TD>x</TD><TD>emission</TD></TR>").encode()[:150])
    put("wide.vot", _votable("<TR>" + "<TD>x</TD>" * 5000 + "</TR>",
                             fields=[f"c{k}" for k in range(5000)]).encode())
    with open(folder / "big.vot", "w") as out:
        out.write(_votable("").split("<TABLEDATA>")[0] + "<TABLEDATA>")
        labels = ("emission", "other", "double-peak")
        for k in range(table_rows):
            out.write(f"<TR><TD>{ids[k % len(ids)]}</TD><TD>{labels[k % 3]}</TD></TR>")
        out.write("</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>")
    paths["big.vot"] = folder / "big.vot"
    return paths


def _lying_header(real: Path) -> bytes:
    """A real LAMOST primary header (through its END card) claiming NAXIS1 = 2e8."""
    data = (real / "lamost" / "spec-55916-B5591606_sp01-001.fits").read_bytes()
    cards = next(k for k in range(0, len(data), 80) if data[k:k + 8] == b"END     ") + 80
    header = data[:-(-cards // 2880) * 2880]
    return header.replace(b"NAXIS1  =                 3909", b"NAXIS1  =            200000000")


# --------------------------------------------------------------------------
# Clients and the bridge


def _client(name: str):
    from pyvo.samp import SAMPIntegratedClient
    from pyvo.samp import conf as samp_conf

    with samp_conf.set_temp("use_internet", False):
        client = SAMPIntegratedClient(name=name, addr=LOOPBACK)
        client.connect()
    return client


def _disconnect(client):
    try:
        client.disconnect()
    except Exception:  # the hub is gone already: nothing to unregister
        pass


def _id_of(client, name: str) -> str:
    def find():
        return next((c for c in client.get_registered_clients()
                     if client.get_metadata(c).get("samp.name") == name), None)

    return wait_for(find, 120, f"a client named {name}", interval=0.1)


class Monitor:
    """Pings vo-al's owner thread and reads the bridge's memory, every 50 ms."""

    def __init__(self, pid: int, vo_al: str):
        self._pid = pid
        self._vo_al = vo_al
        self._client = _client("pinger")
        self._stop = threading.Event()
        self.samples: list[tuple[float, float, float]] = []  # (time, ping s, rss MiB)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _rss(self, key: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self._pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def peak(self) -> float:
        """The bridge's peak resident memory so far (MiB)."""
        return self._rss("VmHWM")

    def _run(self):
        message = {"samp.mtype": "table.highlight.row",
                   "samp.params": {"table-id": "vo-al:ping", "row": "0"}}
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._client.call_and_wait(self._vo_al, message, str(ANSWER_S))
            except Exception:  # a ping that failed still measured how long it waited
                pass
            took = time.monotonic() - started
            try:
                rss = self._rss()
            except OSError:
                return  # the bridge exited
            self.samples.append((time.monotonic(), took, rss))
            self._stop.wait(PING_S)

    def during(self, start: float, end: float) -> tuple[float, float]:
        """Longest ping (s) and most memory (MiB) from ``start`` to ``end``: the
        pings that overlap the span, or else the first one after it."""
        wait_for(lambda: self.samples and self.samples[-1][0] > end, ANSWER_S, "a ping")
        picked = [(p, r) for t, p, r in self.samples if start <= t and t - p <= end]
        picked = picked or [next((p, r) for t, p, r in self.samples if t > end)]
        return max(p for p, _ in picked), max(r for _, r in picked)

    def close(self):
        self._stop.set()
        self._thread.join(ANSWER_S)
        _disconnect(self._client)


def _send(client, recipient: str, mtype: str, params: dict) -> tuple[str, str]:
    """callAndWait; ``(status, text)``; a hub's refusal is ``('hub refused', fault)``."""
    try:
        response = client.call_and_wait(recipient, {"samp.mtype": mtype, "samp.params": params},
                                        str(ANSWER_S))
    except Exception as exc:  # the hub refused to pass it on (its answer), or a timeout
        text = str(exc)
        if "timeout" in text.lower() or "timed out" in text.lower():
            return NO_ANSWER, text[:90]
        return "hub refused", text.split(":")[-1].strip()[:90]
    status = str(response.get("samp.status", "?")).removeprefix("samp.")
    return status, _short(response)


def _short(response: dict) -> str:
    """The reason of a response, or its result, in a few words."""
    error = response.get("samp.error", {})
    text = str(error.get("samp.errortxt", "")) if isinstance(error, dict) else ""
    result = response.get("samp.result", {})
    if not text and isinstance(result, dict):
        text = ", ".join(f"{k} {v}" for k, v in result.items())
    text = text.replace("vo-al takes labels and reads local files only for clients the user "
                        "trusts, and ", "")
    return re.sub(r"file:///tmp/vo-al-hostile-samp-[^/]*/corpus/", "file:.../", text)[:90]


class _Web:
    """A Web Profile client speaking the profile's XML-RPC, as samp.js would."""

    def __init__(self, name: str):
        self._proxy = xmlrpc.client.ServerProxy(WEB)
        self.key = self._proxy.samp.webhub.register({"samp.name": name})["samp.private-key"]
        self._proxy.samp.webhub.declareMetadata(self.key, {"samp.name": name})

    def call_and_wait(self, recipient: str, message: dict, timeout: str) -> dict:
        return self._proxy.samp.webhub.callAndWait(self.key, recipient, message, timeout)

    def close(self):
        self._proxy.samp.webhub.unregister(self.key)


# --------------------------------------------------------------------------
# The run


def corpus(paths: dict, table_id: str, ids: list[str], http: str, silent: str,
           table_rows: int):
    """``(name, sender, mtype, params)``: sender is ``trusted`` (named topcat),
    ``untrusted`` (webpage), ``web`` (a Web Profile client named topcat)."""
    file = {name: path.as_uri() for name, path in paths.items()}
    t, s = "trusted", "untrusted"
    rows = {"table-id": table_id}
    return [
        ("params: url is a map", t, "table.load.votable", {"url": {"a": "b"}}),
        ("params: row is a list", t, "table.highlight.row", {**rows, "row": ["1"]}),
        ("params: row 10^40", t, "table.highlight.row", {**rows, "row": "1" * 40}),
        ("params: 1 MB string", t, "table.highlight.row", {**rows, "row": "9" * (1 << 20)}),
        ("params: deep nesting", t, "spectrum.load.ssa-generic",
         {"url": "x", "meta": _nest(200)}),
        ("params: unknown MType", t, "voal.unknown", {}),
        ("params: ftp URL", t, "table.load.votable", {"url": "ftp://example.org/t.vot"}),
        *[(f"rowList of {n:,} rows", t, "table.select.rowList",
           {**rows, "row-list": [str(k) for k in range(n)]}) for n in HUGE_ROWS],
        ("file: FIFO table", t, "table.load.votable", {"url": file["fifo.vot"]}),
        ("file: FIFO spectrum", t, "spectrum.load.ssa-generic", {"url": file["fifo.fits"]}),
        ("file: /dev/zero", t, "spectrum.load.ssa-generic", {"url": "file:///dev/zero"}),
        ("file: a directory", t, "table.load.votable", {"url": Path("/tmp").as_uri()}),
        ("http: a byte every 5 s (table)", t, "table.load.votable",
         {"url": f"{http}/trickle.vot"}),
        ("http: a byte every 5 s (spectrum)", t, "spectrum.load.ssa-generic",
         {"url": f"{http}/trickle.fits"}),
        ("http: never answers", t, "table.load.votable", {"url": silent}),
        ("http: redirect loop", t, "spectrum.load.ssa-generic", {"url": f"{http}/loop"}),
        ("http: claims 100 GB", t, "spectrum.load.ssa-generic", {"url": f"{http}/huge"}),
        ("gzip bomb spectrum (file:)", t, "spectrum.load.ssa-generic",
         {"url": file["bomb.fits.gz"]}),
        ("gzip bomb spectrum (http:)", t, "spectrum.load.ssa-generic",
         {"url": f"{http}/file/bomb.fits.gz"}),
        ("bzip2 bomb spectrum", t, "spectrum.load.ssa-generic", {"url": file["bomb.fits.bz2"]}),
        ("gzip inside gzip", t, "spectrum.load.ssa-generic",
         {"url": file["nested.fits.gz.gz"]}),
        ("header claims NAXIS1 = 2e8", t, "spectrum.load.ssa-generic",
         {"url": file["header-lies.fits.gz"]}),
        ("gzip bomb VOTable", t, "table.load.votable", {"url": file["bomb.vot.gz"]}),
        ("billion laughs VOTable", t, "table.load.votable", {"url": file["laughs.vot"]}),
        ("XXE VOTable", t, "table.load.votable", {"url": file["xxe.vot"]}),
        ("STREAM href to a FIFO", t, "table.load.votable", {"url": file["stream-fifo.vot"]}),
        ("truncated VOTable", t, "table.load.votable", {"url": file["broken.vot"]}),
        ("5,000-column VOTable", t, "table.load.votable", {"url": file["wide.vot"]}),
        (f"label table of {table_rows:,} rows", "stilts", "table.load.votable",
         {"url": file["big.vot"]}),
        ("untrusted: label table", s, "table.load.votable", {"url": file["big.vot"]}),
        ("untrusted: file: /etc/shadow", s, "spectrum.load.ssa-generic",
         {"url": "file:///etc/shadow"}),
        ("untrusted: file: missing", s, "spectrum.load.ssa-generic",
         {"url": "file:///nonexistent/x.fits"}),
        ("untrusted: label.set", s, "voal.label.set", {"spectrum-id": ids[0], "label": "other"}),
        ("web page as topcat: label table", "web", "table.load.votable",
         {"url": file["big.vot"]}),
        ("web page as topcat: label.set", "web", "voal.label.set",
         {"spectrum-id": ids[0], "label": "other"}),
        ("web page as topcat: file: spectrum", "web", "spectrum.load.ssa-generic",
         {"url": "file:///etc/passwd"}),
    ]


def _nest(depth: int) -> dict:
    value: dict = {"x": "y"}
    for _ in range(depth):
        value = {"x": value}
    return value


def flood(client, vo_al: str, http: str, n: int = 30) -> tuple[int, int, int]:
    """``n`` slow downloads at once: how many were refused as busy, answered, at all."""
    results = []

    def one(k):
        results.append(_send(client, vo_al, "spectrum.load.ssa-generic",
                             {"url": f"{http}/trickle-{k}.fits"}))

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(ANSWER_S * 2)
    busy = sum("busy" in text for _, text in results)
    return busy, len(results), n


def start_bridge(session: Path, env: dict, stack: ExitStack, log: Path):
    out = open(log, "w")
    stack.callback(out.close)
    process = subprocess.Popen([sys.executable, "-m", "vo_al.cli", "samp", str(session),
                                "--broadcast"],
                               env=env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)

    def stop():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    stack.callback(stop)
    return process


def run(args, stack: ExitStack) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gui_latency import build_session

    scratch = Path(tempfile.mkdtemp(prefix="vo-al-hostile-samp-"))
    stack.callback(shutil.rmtree, scratch, ignore_errors=True)
    started = time.perf_counter()
    session = build_session(args.real, scratch, args.rows)
    print(f"session with a {args.rows:,}-spectrum pool ready in "
          f"{time.perf_counter() - started:.0f} s")
    import h5py

    with h5py.File(scratch / "pool.h5", "r") as h5:
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in h5["id"][:]]
    paths = write_corpus(scratch / "corpus", ids, args.table_rows, args.real)

    peers = PeerEnvironment(scratch / "peers")
    saved = {name: os.environ.get(name) for name in ("HOME", "SAMP_HUB")}
    stack.callback(lambda: [os.environ.pop(k, None) if v is None else
                            os.environ.__setitem__(k, v) for k, v in saved.items()])
    os.environ.update(HOME=str(peers.home), SAMP_HUB=peers.samp_hub)
    hub = PeerProcess(["jsamp", "hub", "-mode", "no-gui", "-profiles", "std,web",
                       "-web:auth", "true"], peers.env(), peers.folder / "hub.log")
    stack.callback(hub.stop)
    wait_for(lambda: peers.hub_running() or not hub.alive(), 120, "the JSAMP hub")
    clients = {"trusted": _client("topcat"), "untrusted": _client("webpage"),
               "stilts": _client("stilts")}
    for client in clients.values():
        stack.callback(_disconnect, client)
    tables = _take_tables(clients["trusted"])
    bridge = start_bridge(session, {**os.environ, "PYTHONUNBUFFERED": "1"}, stack,
                          scratch / "bridge.log")
    vo_al = _id_of(clients["trusted"], "vo-al")
    clients["web"] = _Web("topcat")
    stack.callback(clients["web"].close)
    table_id = wait_for(lambda: tables and tables[0]["table-id"], 600, "the candidate table")
    monitor = Monitor(bridge.pid, vo_al)
    stack.callback(monitor.close)

    rows = []
    with http_server(paths["big.vot"].parent) as http, silent_server() as silent:
        for name, sender, mtype, params in corpus(paths, table_id, ids, http, silent,
                                                  args.table_rows):
            if args.only and not any(word in name for word in args.only):
                continue
            begin = time.monotonic()
            status, text = _send(clients[sender], vo_al, mtype, params)
            end = time.monotonic()
            ping, rss = monitor.during(begin, end)
            rows.append((name, status, text, end - begin, ping, rss))
            print(f"  {name}: {status} after {end - begin:.1f} s", flush=True)
        if not args.only or any("flood" in word for word in args.only):
            begin = time.monotonic()
            busy, answered, sent = flood(clients["trusted"], vo_al, http)
            end = time.monotonic()
            ping, rss = monitor.during(begin, end)
            rows.append((f"flood: {sent} slow downloads at once",
                         "all" if answered == sent else f"{answered} of {sent}",
                         f"{busy} refused at once as busy, the rest at their deadline",
                         end - begin, ping, rss))
    time.sleep(1)
    peak = monitor.peak()
    monitor.close()
    report(rows, peak, monitor.samples, bridge.poll() is None)
    return 0 if all(status != NO_ANSWER for _, status, *_ in rows) and bridge.poll() is None \
        else 1


def _take_tables(client) -> list[dict]:
    """Make ``client`` take tables (answering samp.ok); returns the list their params go to."""
    received = []

    def take(private_key, sender_id, msg_id, mtype, params, extra):
        received.append(params)
        client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})

    client.bind_receive_call("table.load.votable", take)
    return received


def report(rows, peak: float, samples, alive: bool):
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'message':<{width}}  {'answer':<11}  {'after':>7}  {'longest ping':>12}  "
          f"{'RSS':>7}  reason")
    for name, status, text, took, ping, rss in rows:
        print(f"{name:<{width}}  {status:<11}  {took:>6.1f}s  {ping * 1000:>10.0f}ms  "
              f"{rss:>5.0f}MB  {text}")
    longest = max((p for _, p, _ in samples), default=0.0)
    print(f"\n{len(rows)} messages, {sum(r[1] != NO_ANSWER for r in rows)} answered; "
          f"{len(samples)} "
          f"pings, longest {longest * 1000:.0f} ms (median "
          f"{sorted(p for _, p, _ in samples)[len(samples) // 2] * 1000:.0f} ms); bridge peak "
          f"RSS {peak:.0f} MB; bridge {'still running' if alive else 'EXITED'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000, help="spectra in the pool")
    parser.add_argument("--table-rows", type=int, default=1_000_000,
                        help="rows of the large label table (default: 1,000,000)")
    parser.add_argument("--only", nargs="*", default=[],
                        help="run only the messages whose name holds one of these words")
    default_real = os.environ.get("VO_AL_REAL_DATA",
                                  Path(__file__).resolve().parents[2] / "shared/data/real")
    parser.add_argument("--real", type=Path, default=Path(default_real),
                        help="the real LAMOST and Ondřejov files (MANIFEST.tsv)")
    args = parser.parse_args(argv)
    if missing_tools("jsamp"):
        print("needs jsamp on the PATH (Debian: apt-get install jsamp)", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
        try:
            return run(args, stack)
        except KeyboardInterrupt:
            print("interrupted: stopping the peers, removing the files", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
