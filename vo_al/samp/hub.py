"""Finding the SAMP hub, talking to it, and running vo-al's own when asked.

The hub is found the standard way: the lockfile named by ``SAMP_HUB``
(``std-lockurl:<url>``), else ``~/.samp``. Every XML-RPC call to a hub has
a timeout (:data:`HUB_TIMEOUT`; ``pyvo``'s proxies have none), so a hub
that accepts connections and never answers (stopped with SIGSTOP, hung)
cannot hang vo-al's watchdog. vo-al's own hub
(``vo-al samp --own-hub``, or the GUI's button) is ``pyvo.samp``'s
:class:`~pyvo.samp.SAMPHubServer` with the standard profile only, listening
on the loopback interface, and no web profile.
"""

from __future__ import annotations

import http.client
import os
import secrets
import xml.parsers.expat
import xmlrpc.client
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from pyvo.samp import SAMPHubProxy, SAMPHubServer, conf
from pyvo.samp.lockfile_helpers import read_lockfile
from pyvo.samp.utils import ServerProxyPool, get_safe_parser

__all__ = ["running_hub", "OwnHub", "HubProxy", "TimedServerProxy", "LOOPBACK", "HUB_TIMEOUT"]

#: The only address vo-al listens on (its SAMP client, its own hub).
LOOPBACK = "127.0.0.1"


#: Seconds a hub has to answer one XML-RPC call.
HUB_TIMEOUT = 10.0

#: What a dead, dying, hung or broken hub raises.
HUB_ERRORS = (KeyError, ValueError, OSError, xmlrpc.client.Error, http.client.HTTPException,
              xml.parsers.expat.ExpatError)


class _Transport(xmlrpc.client.Transport):
    """XML-RPC over HTTP with a timeout and ``pyvo``'s XXE-safe parser."""

    def __init__(self, timeout: float):
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection

    def getparser(self):
        return get_safe_parser(self._use_datetime, self._use_builtin_types)


class TimedServerProxy(xmlrpc.client.ServerProxy):
    """An XML-RPC proxy whose calls give up after ``timeout`` seconds.

    Parameters
    ----------
    uri : str
    timeout : float
    **kwargs
        As for :class:`xmlrpc.client.ServerProxy` (but ``transport``).
    """

    def __init__(self, uri: str, *, timeout: float = HUB_TIMEOUT, **kwargs):
        super().__init__(uri, transport=_Transport(timeout), **kwargs)


class HubProxy(SAMPHubProxy):
    """``pyvo``'s hub proxy, every call with a timeout (:class:`TimedServerProxy`)."""

    def connect(self, hub=None, hub_params=None, pool_size=20):
        """Connect to the hub of ``hub_params`` (lockfile entries) and ping it.

        Raises
        ------
        KeyError, OSError, xmlrpc.client.Error
            When the entries name no hub or it does not answer in time.
        """
        url = hub_params["samp.hub.xmlrpc.url"].replace("\\", "")
        self.proxy = ServerProxyPool(pool_size, TimedServerProxy, url, allow_none=1)
        self.ping()
        self.lockfile = dict(hub_params)
        self._connected = True


def _lockfile() -> str:
    """The standard profile's lockfile: ``SAMP_HUB``'s, else ``~/.samp``."""
    hub = os.environ.get("SAMP_HUB")
    if hub is None:
        return str(Path.home() / ".samp")
    return hub.removeprefix("std-lockurl:") if hub.startswith("std-lockurl:") else ""


def _remove_lockfile():
    lockfile = _lockfile()
    if lockfile.startswith("file:"):
        parts = urlsplit(lockfile)
        lockfile = url2pathname(parts.path) if parts.netloc in ("", "localhost") else ""
    if lockfile and "://" not in lockfile:
        Path(lockfile).unlink(missing_ok=True)


def running_hub(timeout: float = HUB_TIMEOUT) -> dict | None:
    """The lockfile entries of the running hub, or None when there is none.

    A hub that answers its ping with a fault (a JSAMP hub that is starting
    or stopping answers "Hub is stopped"), with something that is not
    XML-RPC, not within ``timeout`` seconds, or not at all, is not running.
    """
    lockfile = _lockfile()
    if not lockfile:
        return None
    try:
        params = read_lockfile(lockfile)
        url = params["samp.hub.xmlrpc.url"].replace("\\", "")
        TimedServerProxy(url, timeout=timeout, allow_none=True).samp.hub.ping()
    except HUB_ERRORS:
        return None
    return params


class OwnHub:
    """A hub run inside vo-al, started only when no other hub is running.

    Examples
    --------
    >>> hub = OwnHub()  # doctest: +SKIP
    >>> hub.start()     # False when another hub already runs
    True
    >>> hub.stop()
    """

    def __init__(self):
        self._server: SAMPHubServer | None = None

    @property
    def params(self) -> dict | None:
        """The lockfile entries of the running own hub, or None."""
        server = self._server
        return server.params if server is not None and server.is_running else None

    def start(self) -> bool:
        """Start the hub and write the lockfile, unless a hub is running already.

        Returns
        -------
        bool
            True when this call started a hub.
        """
        if self._server is not None or running_hub() is not None:
            return False
        _remove_lockfile()  # of a hub gone or hung: pyvo's hub would wait on it for ever
        with conf.set_temp("use_internet", False):  # no probe of the network, loopback only
            server = SAMPHubServer(secret=secrets.token_hex(16), addr=LOOPBACK,
                                   web_profile=False, mode="single", label="vo-al")
        server.start(wait=False)
        self._server = server
        return True

    def stop(self):
        """Stop the hub (clients are told) and remove its lockfile."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
