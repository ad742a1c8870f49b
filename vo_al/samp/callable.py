"""The XML-RPC server a SAMP client is called back on, made safe against
peers that hang up or stall inside a request.

pyvo's request handler reads a POST body until ``Content-Length`` bytes
have come; when the peer closes the connection first (a hub killed while
it delivers a message, or any local process that connects to the callback
URL), every further read returns nothing and the loop never ends: a thread
at full CPU appending empty reads to a list, memory growing by the
gigabyte, and a process that cannot exit because the thread is not a
daemon. :func:`harden` swaps in a handler whose body stream raises at an
early end and whose socket has a deadline, and makes request threads
daemons.
"""

from __future__ import annotations

from pyvo.samp.standard_profile import SAMPSimpleXMLRPCRequestHandler

__all__ = ["REQUEST_TIMEOUT_S", "harden"]

#: Most seconds a peer may stall while sending one request or reading its answer.
REQUEST_TIMEOUT_S = 60.0


class _Body:
    """A request's input stream where an early end is an error, not an empty read."""

    def __init__(self, stream):
        self._stream = stream

    def read(self, size=-1):
        data = self._stream.read(size)
        if size and not data:
            raise ConnectionError("the SAMP peer closed the connection inside a request")
        return data

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _Handler(SAMPSimpleXMLRPCRequestHandler):
    """pyvo's handler, with a deadline on the socket and an end to the body."""

    timeout = REQUEST_TIMEOUT_S  # set on the socket by StreamRequestHandler.setup

    def setup(self):
        super().setup()
        self.rfile = _Body(self.rfile)


def harden(server) -> None:
    """Make a pyvo client's callable server drop a peer that hangs up or
    stalls inside a request, and never let a request keep the process alive.

    Parameters
    ----------
    server : pyvo.samp.standard_profile.ThreadingXMLRPCServer
        ``SAMPClient.client``; effective from the next request on.
    """
    server.RequestHandlerClass = _Handler
    server.daemon_threads = True
