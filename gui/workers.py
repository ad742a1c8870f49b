"""Background work: core calls in threads, their events as queued signals.

:class:`Job` runs one function in a ``QThread`` and reports progress,
its result, its failure (as readable text) or its cancellation.
An iteration is a job calling :meth:`vo_al.workspace.Workspace.iterate`
(:func:`iterate_task`), which opens its own session handle (its own
label-log connection), so the window keeps labelling on the GUI thread
meanwhile; the Dask client it may score on is made and closed in the job's
thread too.
:class:`SpectrumLoader` reads original spectrum files on one long-lived
thread, always the latest request first.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from PyQt5 import QtCore

from vo_al.workspace import Cancelled, OriginalSpectrum, describe_progress

__all__ = ["Job", "iterate_task", "step_time_left", "SpectrumLoader", "readable_error"]

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


def iterate_task(workspace, options, address: str | None = None,
                 scheduler_file: str | None = None) -> Task:
    """A :class:`Job` task running one iteration of ``workspace``.

    Parameters
    ----------
    workspace : vo_al.workspace.Workspace
    options : vo_al.workspace.IterationOptions
    address, scheduler_file : str, optional
        The Dask cluster to score on, as ``vo-al iterate --dask`` and
        ``--dask-scheduler-file`` take it
        (:meth:`~vo_al.workspace.Workspace.dask_client`); its client is
        made in the job's thread, checked, and closed when the iteration
        ends (a ``local:N`` cluster stopped with it).
    """
    def task(progress, cancel):
        if address or scheduler_file:
            progress("cluster", 0, 0,
                     f"connecting to the Dask cluster {address or scheduler_file}")
        with workspace.dask_client(address, scheduler_file) as client:
            return workspace.iterate(options, cancel=cancel, client=client,
                                     progress=lambda step, event: progress(
                                         step, *describe_progress(step, event)))

    return task


def step_time_left(first: tuple[int, float], latest: tuple[int, float],
                   total: int) -> float | None:
    """Seconds a step still needs at the rate measured between two reports.

    Parameters
    ----------
    first, latest : tuple of (int, float)
        ``(done, monotonic time)`` of the step's first and latest reports:
        the work before the first report took an unknown time, so it does
        not count.
    total : int

    Returns
    -------
    float or None
        None until a rate is measured (nothing done since the first report).
    """
    done = latest[0] - first[0]
    if done <= 0 or total <= 0:
        return None
    return max(total - latest[0], 0) * (latest[1] - first[1]) / done


class _LoaderWorker(QtCore.QObject):
    """Lives in the loader's thread and reads the latest requested file."""

    sigLoaded = QtCore.pyqtSignal(str, object)
    sigFailed = QtCore.pyqtSignal(str, str)

    def __init__(self, loader: "SpectrumLoader"):
        super().__init__()
        self._loader = loader

    @QtCore.pyqtSlot()
    def work(self):
        path = self._loader.take_request()
        if path is None:
            return  # a newer request was already served
        try:
            original = self._loader.load(path)
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
    load : callable
        ``load(path) -> OriginalSpectrum`` (e.g.
        :meth:`vo_al.workspace.Workspace.original`), called on the loader's
        thread.
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

    def __init__(self, load: Callable[[str], OriginalSpectrum], cache_size: int = 64,
                 parent=None):
        super().__init__(parent)
        self.load = load
        self._lock = threading.Lock()
        self._request: str | None = None
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

    def request(self, path: str) -> OriginalSpectrum | None:
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
            self._request = path
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
