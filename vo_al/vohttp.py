"""HTTP for vo-al's VO clients (TAP cross-match, SSA fetch): pyvo's HTTP
session with a timeout on every request, and tries again with backoff
after transient failures."""

from __future__ import annotations

import time

import requests
from astropy.io.votable.exceptions import E19
from pyvo.dal.exceptions import (DALFormatError, DALQueryError, DALRateLimitError,
                                 DALServiceError)
from pyvo.utils.http import create_session

from .cancel import Cancelled, check_cancel

__all__ = ["TRANSIENT_HTTP", "TimeoutSession", "GaveUp", "is_transient", "unwrap",
           "with_retries", "sleep_unless_cancelled"]

#: HTTP statuses worth another try (0: no answer at all).
TRANSIENT_HTTP = {0, 429, 500, 502, 503, 504}


class TimeoutSession(requests.Session):
    """pyvo's HTTP session (its user agent) with a timeout on every request,
    which closes the responses pyvo streams from and leaves open.

    Parameters
    ----------
    timeout_s : float
        Most seconds without an answer.
    """

    def __init__(self, timeout_s: float):
        super().__init__()
        self.headers.update(create_session().headers)
        self.timeout_s = timeout_s
        self._responses = []

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout_s)
        response = super().request(*args, **kwargs)
        self._responses.append(response)
        return response

    def release(self):
        """Close the responses of the requests done (their sockets)."""
        for response in self._responses:
            response.close()
        self._responses.clear()

    def close(self):
        self.release()
        super().close()


class GaveUp(Exception):
    """The last error of :func:`with_retries`, and how many tries it took.

    Attributes
    ----------
    error : Exception
    tries : int
    """

    def __init__(self, error: Exception, tries: int):
        super().__init__(str(error))
        self.error, self.tries = error, tries


def _status(exc) -> int | None:
    """The HTTP status of a failed request (0: no answer), or None."""
    if isinstance(exc, DALServiceError):
        return exc.code or 0
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code
    return None


def unwrap(exc: Exception) -> Exception:
    """The failure behind pyvo's "unreadable VOTable" (:class:`DALFormatError`):
    pyvo wraps a request that got no answer, and an answer that is no
    VOTable at all, in it."""
    cause = getattr(exc, "cause", None) if isinstance(exc, DALFormatError) else None
    return cause if isinstance(cause, (requests.RequestException, E19)) else exc


def is_transient(exc: Exception) -> bool:
    """True for a failure that another try may not meet: no answer, a
    timeout, HTTP 429/5xx, a cut or unreadable answer; False for an error
    document (the same request fails the same way), an answer that is no
    VOTable at all (a web page), or another HTTP error."""
    exc = unwrap(exc)
    if isinstance(exc, (DALQueryError, E19)):
        return False
    status = _status(exc)
    if status is not None:
        return status in TRANSIENT_HTTP
    return isinstance(exc, (DALFormatError, requests.RequestException, TimeoutError,
                            ConnectionError))


def _retry_after(exc) -> float:
    """Seconds the service asked us to wait (``Retry-After``), or 0."""
    if isinstance(exc, DALRateLimitError) and exc.retry_after_seconds:
        return float(exc.retry_after_seconds)
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value else 0.0
    except ValueError:  # an HTTP date: not worth parsing for a retry
        return 0.0


def sleep_unless_cancelled(seconds: float, cancel, what: str) -> None:
    """Wait ``seconds``; raise :class:`~vo_al.cancel.Cancelled` as soon as
    ``cancel`` (a ``threading.Event``-like, or None) is set."""
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise Cancelled(f"{what} cancelled")


def with_retries(attempt, *, tries: int, backoff_s: float, errors: tuple,
                 transient=is_transient, cancel=None, what: str = "the request"):
    """``attempt()``, tried again after transient failures.

    Parameters
    ----------
    attempt : callable
        No arguments; its value is returned.
    tries : int
        Most attempts.
    backoff_s : float
        Wait before the second try; doubled for each further one (longer
        when the service says ``Retry-After``).
    errors : tuple of exception types
        Failures to handle; any other exception propagates at once.
    transient : callable
        ``transient(exc) -> bool``: worth another try.
    cancel : threading.Event-like, optional
        Checked before each try and while waiting.
    what : str
        Named in the :class:`~vo_al.cancel.Cancelled` message.

    Raises
    ------
    GaveUp
        Holding the last error, when it was not transient or no try was left.
    vo_al.cancel.Cancelled
    """
    for n in range(1, tries + 1):
        check_cancel(cancel, what)
        try:
            return attempt()
        except errors as exc:
            if not transient(exc) or n == tries:
                raise GaveUp(exc, n) from exc
            wait = max(backoff_s * 2 ** (n - 1), _retry_after(exc))
            sleep_unless_cancelled(wait, cancel, what)
    raise ValueError(f"tries must be at least 1, not {tries}")
