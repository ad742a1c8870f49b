"""Running the real SAMP peers in isolation: a JSAMP hub, TOPCAT under Xvfb,
JSAMP's message sender and STILTS — for the tests and benchmarks.

Everything runs inside one folder: its own lockfile (``SAMP_HUB``), its own
``HOME`` (and ``-Duser.home`` for Java), its own X display. Processes are
started in their own session and stopped with ``os.killpg``, so nothing is
left behind. Debian packages: ``jsamp``, ``topcat``, ``stilts``, ``xvfb``.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
import xmlrpc.client
from pathlib import Path
from typing import Callable

from pyvo.samp.lockfile_helpers import check_running_hub

__all__ = ["TOOLS", "missing_tools", "wait_for", "PeerEnvironment", "PeerProcess", "run_tool",
           "start_jsamp_hub", "start_xvfb", "start_topcat", "messagesender_args"]

#: Tool name -> executable.
TOOLS = {"jsamp": "jsamp", "topcat": "topcat", "stilts": "stilts", "xvfb": "Xvfb"}


def missing_tools(*names: str) -> list[str]:
    """The tools among ``names`` (keys of :data:`TOOLS`) not on the PATH."""
    return [name for name in names if shutil.which(TOOLS[name]) is None]


def wait_for(predicate: Callable[[], object], timeout: float, what: str,
             interval: float = 0.05):
    """Poll ``predicate`` until it returns something true; return that.

    Raises
    ------
    TimeoutError
        After ``timeout`` seconds, naming ``what`` was awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting {timeout:g} s for {what}")
        time.sleep(interval)


class PeerEnvironment:
    """An isolated folder for peers: lockfile, home, environment.

    Parameters
    ----------
    folder : path-like
        Created if missing.
    """

    def __init__(self, folder):
        self.folder = Path(folder).resolve()
        self.home = self.folder / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.lockfile = self.folder / "hub.lock"

    @property
    def samp_hub(self) -> str:
        """The ``SAMP_HUB`` value naming this folder's lockfile."""
        return f"std-lockurl:{self.lockfile.as_uri()}"

    def env(self, **extra) -> dict:
        """The environment for a peer process."""
        return {**os.environ, "HOME": str(self.home), "SAMP_HUB": self.samp_hub,
                "JAVA_TOOL_OPTIONS": f"-Duser.home={self.home}", **extra}

    def hub_running(self) -> bool:
        """Whether the hub of this folder's lockfile answers (a JSAMP hub that is
        starting or stopping answers "Hub is stopped": not yet, or no more)."""
        try:
            return check_running_hub(str(self.lockfile))[0]
        except xmlrpc.client.Error:
            return False


class PeerProcess:
    """A peer started in its own process group, output to a log file.

    Parameters
    ----------
    args : list of str
    env : dict
    log : path-like
    pass_fds : tuple of int
    """

    def __init__(self, args, env, log, pass_fds=()):
        self.log = Path(log)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            pass_fds=pass_fds)

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM):
        """Signal the whole process group and wait; SIGKILL when it lingers."""
        if not self.alive():
            return
        try:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            self.process.wait()

    def kill(self):
        """SIGKILL the group: no clean shutdown, a stale lockfile stays."""
        self.stop(sig=signal.SIGKILL)


def run_tool(args, env, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run a command-line peer (``stilts``, ``jsamp messagesender``) to its end.

    The Debian launchers are shell scripts that start Java as a child: on a
    timeout the whole process group is killed, not only the script.

    Raises
    ------
    subprocess.TimeoutExpired
    """
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def start_jsamp_hub(peers: PeerEnvironment, timeout: float = 60.0) -> PeerProcess:
    """A JSAMP hub (standard profile, no GUI) on the folder's lockfile, once it answers."""
    hub = PeerProcess(["jsamp", "hub", "-mode", "no-gui", "-profiles", "std"], peers.env(),
                      peers.folder / "jsamp-hub.log")
    try:
        wait_for(lambda: peers.hub_running() or not hub.alive(), timeout, "the JSAMP hub")
        if not hub.alive():
            raise RuntimeError(f"the JSAMP hub exited: {hub.log.read_text()[-2000:]}")
    except BaseException:
        hub.stop()
        raise
    return hub


def start_xvfb(peers: PeerEnvironment, timeout: float = 30.0) -> tuple[PeerProcess, str]:
    """Xvfb on a free display (it picks one itself); returns it and ``":N"``."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb", buffering=0) as reader:
        try:
            xvfb = PeerProcess(["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp",
                                "-screen", "0", "1280x1024x24"], peers.env(),
                               peers.folder / "xvfb.log", pass_fds=(write_end,))
        finally:
            os.close(write_end)
        ready = select.select([reader], [], [], timeout)[0]
        number = reader.readline().strip() if ready else b""
    if not number:
        xvfb.stop()
        raise RuntimeError(f"Xvfb did not start: {xvfb.log.read_text()[-2000:]}")
    return xvfb, f":{number.decode()}"


def start_topcat(peers: PeerEnvironment, display: str) -> PeerProcess:
    """TOPCAT on the folder's hub (``-samp -nohub``), drawing on ``display``.

    It registers with the hub about two seconds later; wait for a client
    named ``topcat`` that subscribes to ``table.load.votable``.
    """
    return PeerProcess(["topcat", "-samp", "-nohub"], peers.env(DISPLAY=display),
                       peers.folder / "topcat.log")


def messagesender_args(mtype: str, params: dict, target: str, sender: str = "tester",
                       mode: str = "sync") -> list[str]:
    """Arguments of ``jsamp messagesender`` for a message of strings and string lists."""
    args = ["jsamp", "messagesender", "-mtype", mtype, "-mode", mode, "-targetname", target,
            "-sendername", sender]
    for name, value in params.items():
        if isinstance(value, list):
            value = "[" + ",".join(f'"{item}"' for item in value) + "]"
        args += ["-param", name, value]
    return args
