"""Background work: core calls in threads, their events as queued signals.

:class:`Job` runs one function in a ``QThread`` and reports progress,
its result, its failure (as readable text) or its cancellation.
:func:`iteration_task` is the function for one active-learning iteration;
it opens its own :class:`~vo_al.session.Session` (its own label-log
connection), so the window keeps labelling on the GUI thread meanwhile.
:class:`SpectrumLoader` reads original spectrum files on one long-lived
thread, always the latest request first.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from PyQt5 import QtCore

from vo_al.cancel import Cancelled
from vo_al.loop import IterationOptions, IterationResult, run_iteration
from vo_al.preprocess import PreprocessConfig
from vo_al.session import Session

from vo_al.records import OriginalSpectrum, load_original

__all__ = ["Job", "iteration_task", "describe_progress", "SpectrumLoader", "readable_error"]

#: A job's function: ``function(progress, cancel) -> result`` where
#: ``progress(step, done, total, text)`` reports and ``cancel`` is a
#: ``threading.Event``.
Task = Callable[[Callable[[str, int, int, str], None], threading.Event], object]


def readable_error(exc: BaseException) -> str:
    """One line for a dialog: vo-al's own messages as they are, other
    exceptions with their type (``KeyError: 'x'``)."""
    text = str(exc).strip()
    if text and (isinstance(exc, (ValueError, OSError))
                 or type(exc).__module__.startswith("vo_al")):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Job(QtCore.QThread):
    """Run ``task(progress, cancel)`` in a thread.

    Parameters
    ----------
    name : str
        What the job does, for the progress bar ("Iterating", ...).
    task : callable
        ``task(progress, cancel) -> result``; raises
        :class:`vo_al.cancel.Cancelled` when ``cancel`` is set.
    parent : QObject, optional

    Notes
    -----
    Exactly one of ``sigDone``, ``sigFailed`` and ``sigCancelled`` is
    emitted, then ``finished``. Signals cross to the receivers' (GUI)
    thread as queued calls.
    """

    #: step, done, total, text
    sigProgress = QtCore.pyqtSignal(str, int, int, str)
    #: the task's result
    sigDone = QtCore.pyqtSignal(object)
    #: message, details (the traceback)
    sigFailed = QtCore.pyqtSignal(str, str)
    sigCancelled = QtCore.pyqtSignal()

    def __init__(self, name: str, task: Task, parent=None):
        super().__init__(parent)
        self.name = name
        self.cancel_event = threading.Event()
        self.started_at = time.monotonic()
        self._task = task

    def cancel(self):
        """Ask the task to stop at its next check."""
        self.cancel_event.set()

    def elapsed(self) -> float:
        """Seconds since the job was created."""
        return time.monotonic() - self.started_at

    def run(self):
        """Run the task (in the job's thread)."""
        try:
            result = self._task(self.sigProgress.emit, self.cancel_event)
        except Cancelled:
            self.sigCancelled.emit()
        except Exception as exc:  # every failure reaches the user as a dialog
            self.sigFailed.emit(readable_error(exc), traceback.format_exc())
        else:
            self.sigDone.emit(result)


def describe_progress(step: str, event) -> tuple[int, int, str]:
    """``(done, total, text)`` for a :func:`~vo_al.loop.run_iteration` event."""
    if step == "train":
        loss = "" if math.isnan(event.val_loss) else f", validation loss {event.val_loss:.3f}"
        return (event.epoch, event.max_epochs,
                f"training: epoch {event.epoch} of at most {event.max_epochs}{loss}")
    if step == "score":
        done, total = event
        return done, total, f"scoring the pool: {done:,} of {total:,}"
    return 0, 0, "choosing the next batch"


def iteration_task(directory, options: IterationOptions) -> Task:
    """A :class:`Job` task running one iteration on its own session handle.

    Parameters
    ----------
    directory : path-like
        The session directory.
    options : IterationOptions

    Returns
    -------
    callable
        Returns the :class:`~vo_al.loop.IterationResult`.
    """
    def task(progress, cancel) -> IterationResult:
        with Session.open(directory) as session:
            return run_iteration(session, options, cancel=cancel,
                                 progress=lambda step, event: progress(
                                     step, *describe_progress(step, event)))
    return task


class _LoaderWorker(QtCore.QObject):
    """Lives in the loader's thread and reads the latest requested file."""

    sigLoaded = QtCore.pyqtSignal(str, object)
    sigFailed = QtCore.pyqtSignal(str, str)

    def __init__(self, loader: "SpectrumLoader"):
        super().__init__()
        self._loader = loader

    @QtCore.pyqtSlot()
    def work(self):
        request = self._loader.take_request()
        if request is None:
            return  # a newer request was already served
        path, config = request
        try:
            original = load_original(path, config)
        except Exception as exc:  # a missing or broken file is shown, not raised
            self._loader.finish(None)
            self.sigFailed.emit(path, readable_error(exc))
            return
        self._loader.finish(original)
        self.sigLoaded.emit(path, original)


class SpectrumLoader(QtCore.QObject):
    """Reads original spectra on one thread; only the latest request counts.

    Parameters
    ----------
    cache_size : int
        Spectra kept in memory, so going back and forth is instant.
    parent : QObject, optional

    Attributes
    ----------
    cache_size : int
        May be changed at any time (0 turns the cache off).

    Notes
    -----
    Call :meth:`stop` before the application quits.
    """

    #: path, OriginalSpectrum
    sigLoaded = QtCore.pyqtSignal(str, object)
    #: path, message
    sigFailed = QtCore.pyqtSignal(str, str)
    _sigWork = QtCore.pyqtSignal()

    def __init__(self, cache_size: int = 64, parent=None):
        super().__init__(parent)
        self._lock = threading.Lock()
        self._request: tuple[str, PreprocessConfig] | None = None
        self._reading = False
        self._cache: OrderedDict[str, OriginalSpectrum] = OrderedDict()
        self.cache_size = cache_size
        self._thread = QtCore.QThread()
        self._thread.setObjectName("vo-al spectrum loader")
        self._worker = _LoaderWorker(self)
        self._worker.moveToThread(self._thread)
        self._sigWork.connect(self._worker.work)
        self._worker.sigLoaded.connect(self.sigLoaded)
        self._worker.sigFailed.connect(self.sigFailed)
        self._thread.start()

    def request(self, path: str, config: PreprocessConfig) -> OriginalSpectrum | None:
        """Ask for a spectrum file.

        Returns
        -------
        OriginalSpectrum or None
            The spectrum at once when cached; otherwise None, and
            ``sigLoaded`` (or ``sigFailed``) follows unless a newer
            request replaces this one first.
        """
        path = str(Path(path))
        with self._lock:
            if path in self._cache:
                self._cache.move_to_end(path)
                self._request = None
                return self._cache[path]
            self._request = (path, config)
        self._sigWork.emit()
        return None

    def busy(self) -> bool:
        """Whether a request is waiting or being read."""
        with self._lock:
            return self._request is not None or self._reading

    def take_request(self):
        """The latest request, removed (called by the loader thread)."""
        with self._lock:
            request, self._request = self._request, None
            self._reading = request is not None
            return request

    def finish(self, original: OriginalSpectrum | None):
        """Cache a loaded spectrum; the read is over (called by the loader thread)."""
        with self._lock:
            self._reading = False
            if original is not None:
                self._cache[original.path] = original
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)

    def stop(self):
        """Finish the current read and end the thread."""
        self._thread.quit()
        self._thread.wait()
