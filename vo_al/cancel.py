"""The one exception long-running steps raise when their cancel event is set."""

__all__ = ["Cancelled", "check_cancel"]


class Cancelled(Exception):
    """A training, scoring or ingest step was stopped by its ``cancel`` event."""


def check_cancel(cancel, what: str) -> None:
    """Raise :class:`Cancelled` when ``cancel`` (a ``threading.Event``-like) is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} cancelled")
