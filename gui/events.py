"""The one adapter from the workspace's events to Qt signals.

The workspace publishes its events in whatever thread they happen (an
iteration's worker, a SAMP worker); the signals of a :class:`QtEvents`
living in the GUI thread deliver them there, queued.
"""

from __future__ import annotations

from PyQt5 import QtCore

from vo_al.events import Event, EventHub, LabelsChanged

__all__ = ["QtEvents"]


class QtEvents(QtCore.QObject):
    """Every event of a hub as ``sigEvent``, and label changes as ``sigLabels``.

    Parameters
    ----------
    hub : EventHub
        The workspace's events.
    parent : QObject, optional
        Lives (and receives) in the parent's thread.
    """

    #: any Event
    sigEvent = QtCore.pyqtSignal(object)
    #: a LabelsChanged
    sigLabels = QtCore.pyqtSignal(object)

    def __init__(self, hub: EventHub, parent=None):
        super().__init__(parent)
        self._unsubscribe = hub.subscribe(Event, self._forward)

    def _forward(self, event: Event):
        self.sigEvent.emit(event)
        if isinstance(event, LabelsChanged):
            self.sigLabels.emit(event)

    def close(self):
        """Stop forwarding (before the workspace closes)."""
        self._unsubscribe()
