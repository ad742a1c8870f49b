"""One iteration at a time per session, whichever process asks.

The lock is an advisory ``flock`` on ``SESSION/iteration.lock``: the
operating system releases it when its holder exits, however it exits (a
kill -9 leaves no stale lock), and it is refused to a second holder in the
same process as well as in another one. The file itself records who holds
the lock, so that a refusal can say so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Iterator

from .labellog import utc_now

__all__ = ["LOCK_FILE", "IterationLocked", "iteration_lock", "lock_holder"]

#: Name of the lock file inside a session directory.
LOCK_FILE = "iteration.lock"


class IterationLocked(RuntimeError):
    """Another iteration holds the session; the message says who."""


def lock_holder(directory) -> dict:
    """What the lock file says about its latest holder (may be empty).

    Parameters
    ----------
    directory : path-like
        The session directory.

    Returns
    -------
    dict
        ``pid``, ``host``, ``command``, ``since`` and ``what`` when known.
    """
    try:
        return json.loads((Path(directory) / LOCK_FILE).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _refusal(directory, what: str) -> str:
    holder = lock_holder(directory)
    who = (f"process {holder.get('pid', '?')} on {holder.get('host', '?')} "
           f"({holder.get('command', '?')}), running {holder.get('what', 'an iteration')} "
           f"since {holder.get('since', '?')}")
    return (f"{directory}: cannot start {what}: the session is busy with {who}. "
            f"Wait for it to finish, or stop that process first")


@contextlib.contextmanager
def iteration_lock(directory, what: str = "an iteration") -> Iterator[None]:
    """Hold the session's iteration lock for the block.

    Parameters
    ----------
    directory : path-like
        The session directory.
    what : str
        What the holder does, for the refusal another caller sees
        (e.g. ``"iteration 4"``).

    Raises
    ------
    IterationLocked
        At once, without waiting, when another holder has the lock.
    """
    path = Path(directory) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IterationLocked(_refusal(directory, what)) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200],
                  "what": what, "since": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
