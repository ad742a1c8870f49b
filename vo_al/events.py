"""What happens to an open session, as typed events.

A :class:`~vo_al.workspace.Workspace` publishes these on its
:class:`EventHub`; every door listens the same way (the desktop app turns
them into Qt signals in one adapter, the CLI prints some of them). Events
are delivered synchronously, in the thread that published them: a
listener that must act on another thread (a window) forwards them there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

__all__ = ["Event", "LabelsChanged", "IterationStarted", "IterationProgress",
           "IterationFinished", "IterationCancelled", "IterationFailed", "SampStatus",
           "EventHub"]


class Event:
    """Base class of every event (listen to it to receive them all)."""


@dataclass(frozen=True)
class LabelsChanged(Event):
    """Entries were added to the label log.

    Attributes
    ----------
    entries : tuple of vo_al.labellog.Entry
        The new entries, oldest first (labels, skips and undos).
    here : bool
        True when they came through this workspace; False when another
        process (a terminal, a second window) wrote them.
    """

    entries: tuple
    here: bool


@dataclass(frozen=True)
class IterationStarted(Event):
    """An iteration began (its number is the one it will have when done)."""

    iteration: int


@dataclass(frozen=True)
class IterationProgress(Event):
    """A step of a running iteration.

    Attributes
    ----------
    iteration : int
    step : {'train', 'score', 'query'}
    done, total : int
        Epochs or spectra so far and in all (0, 0 when unknown).
    text : str
        The step in words.
    """

    iteration: int
    step: str
    done: int
    total: int
    text: str


@dataclass(frozen=True)
class IterationFinished(Event):
    """An iteration completed; ``result`` is its :class:`~vo_al.loop.IterationResult`."""

    result: object


@dataclass(frozen=True)
class IterationCancelled(Event):
    """An iteration was cancelled; nothing of it was kept."""

    iteration: int


@dataclass(frozen=True)
class IterationFailed(Event):
    """An iteration stopped with an error; nothing of it was kept."""

    iteration: int
    error: str


@dataclass(frozen=True)
class SampStatus(Event):
    """The SAMP link's state in words (connected or not, and the hub)."""

    connected: bool
    text: str


class EventHub:
    """Listeners by event type; :meth:`publish` calls those of the event's
    type and of its base classes, in the order they subscribed.

    A listener that raises does not stop the others; the first error is
    raised again once every listener ran.
    """

    def __init__(self):
        self._listeners: list[tuple[type, Callable]] = []
        self._lock = threading.Lock()

    def subscribe(self, event_type: type, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener(event)`` for every published event of ``event_type``.

        Parameters
        ----------
        event_type : type
            An :class:`Event` subclass, or :class:`Event` for all.
        listener : callable

        Returns
        -------
        callable
            Call it to unsubscribe.
        """
        item = (event_type, listener)
        with self._lock:
            self._listeners.append(item)

        def unsubscribe():
            with self._lock:
                if item in self._listeners:
                    self._listeners.remove(item)
        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to its listeners, in this thread."""
        with self._lock:
            listeners = [f for t, f in self._listeners if isinstance(event, t)]
        errors = []
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:  # one broken listener must not silence the rest
                errors.append(exc)
        if errors:
            raise errors[0]
