"""The errors of the SAMP bridge: one small hierarchy, as in ``pyvo.samp``."""

from __future__ import annotations

__all__ = ["SampError", "HubUnavailable", "MessageRejected"]


class SampError(Exception):
    """Base class of the errors raised by :mod:`vo_al.samp`."""


class HubUnavailable(SampError):
    """No SAMP hub can be found or reached, or registering with it failed."""


class MessageRejected(SampError):
    """An incoming message is malformed or cannot be acted on.

    The message becomes the ``samp.errortxt`` of the ``samp.error`` reply;
    nothing was changed.

    Parameters
    ----------
    text : str
        What was wrong, for the sender's user.
    """

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text
