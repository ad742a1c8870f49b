"""A few daemon threads for the slow part of incoming calls.

Fetching a URL, reading a table and classifying a spectrum never run on
the thread that owns the session: :class:`Workers` runs them and hands
each outcome back to the owner as a :class:`~vo_al.samp.inbox.Step`
through the bridge's ``dispatch`` hook. The threads are daemons, so a
peer that never finishes sending cannot keep vo-al from exiting.
"""

from __future__ import annotations

import queue
import threading
from functools import partial
from typing import Callable

from .errors import MessageRejected
from .inbox import Call, Step

__all__ = ["Workers"]


def _raise(exc: BaseException):
    raise exc


class Workers:
    """Runs ``fetch(cancel)`` for calls; ``finish(result)`` then runs on the owner thread.

    Parameters
    ----------
    dispatch : callable
        The bridge's hook: ``dispatch(step)`` queues the step for the owner.
    owner : object
        The receiver the steps are for.
    threads : int
        Calls fetched at once.
    backlog : int
        Calls waiting for a thread; more are refused at once.
    """

    def __init__(self, dispatch: Callable[[object], None], owner, *, threads: int = 4,
                 backlog: int = 8):
        self._dispatch = dispatch
        self._owner = owner
        self._size = threads
        self._backlog = backlog
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._outstanding = 0
        self._threads: list[threading.Thread] = []
        self.cancel = threading.Event()

    def submit(self, call: Call, fetch: Callable[[threading.Event], object],
               finish: Callable[[object], "dict | None"]):
        """Queue a call's fetch.

        Raises
        ------
        MessageRejected
            When the workers are closed, or too many calls are waiting.
        """
        with self._lock:
            if self.cancel.is_set():
                raise MessageRejected("vo-al is closing its SAMP link")
            if self._outstanding >= self._size + self._backlog:
                raise MessageRejected(f"vo-al is busy with {self._outstanding} requests that "
                                      "fetch data; send this one again in a moment")
            self._outstanding += 1
            if len(self._threads) < min(self._size, self._outstanding):
                thread = threading.Thread(target=self._serve, daemon=True,
                                          name=f"vo-al SAMP worker {len(self._threads) + 1}")
                self._threads.append(thread)
                thread.start()
        self._queue.put((call, fetch, finish))

    def _serve(self):
        while (job := self._queue.get()) is not None:
            call, fetch, finish = job
            try:
                work = partial(finish, fetch(self.cancel))
            except Exception as exc:  # handed to the owner, which answers the call
                work = partial(_raise, exc)
            with self._lock:
                self._outstanding -= 1
            if not self.cancel.is_set():
                self._dispatch(Step(call, self._owner, work))

    def report(self, call: Call, work: Callable[[], None]):
        """From a fetch: run ``work()`` (which returns None) on the owner thread."""
        if not self.cancel.is_set():
            self._dispatch(Step(call, self._owner, work))

    def close(self):
        """Stop: running fetches see ``cancel`` set; nothing more is dispatched."""
        with self._lock:
            self.cancel.set()
            threads = len(self._threads)
        for _ in range(threads):
            self._queue.put(None)
