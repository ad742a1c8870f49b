"""Finding the SAMP hub, and running vo-al's own when asked.

The hub is found the standard way: the lockfile named by ``SAMP_HUB``
(``std-lockurl:<url>``), else ``~/.samp``. vo-al's own hub
(``vo-al samp --own-hub``, or the GUI's button) is ``pyvo.samp``'s
:class:`~pyvo.samp.SAMPHubServer` with the standard profile only, listening
on the loopback interface, and no web profile.
"""

from __future__ import annotations

import secrets

from pyvo.samp import SAMPHubError, SAMPHubServer, conf
from pyvo.samp.lockfile_helpers import get_main_running_hub

__all__ = ["running_hub", "OwnHub", "LOOPBACK"]

#: The only address vo-al listens on (its SAMP client, its own hub).
LOOPBACK = "127.0.0.1"


def running_hub() -> dict | None:
    """The lockfile entries of the running hub, or None when there is none."""
    try:
        return get_main_running_hub()
    except (SAMPHubError, KeyError, OSError):
        return None


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
