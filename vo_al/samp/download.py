"""Fetching what peers point vo-al at, bounded in time, size and kind.

A peer's ``table.load.votable`` or ``spectrum.load.ssa-generic`` names a
URL; :func:`download` copies it into a file of vo-al's own, and nothing
else reads the URL:

- ``file:`` URLs name local regular files only (a FIFO, a device or a
  directory is refused without being read), and only when the caller says
  the sender may read local files (trusted senders, see
  :mod:`vo_al.samp.trust`);
- ``http:`` and ``https:`` (up to five redirects); no other scheme;
- the whole download has a deadline (:data:`DEADLINE`), however slowly the
  peer sends, and a cancel switch;
- gzip, bzip2 and xz data are decompressed on the way and both the bytes
  read and the bytes written are bounded (:data:`DOWNLOAD_LIMIT`), so a
  compression bomb stops at the bound; data compressed twice, zip archives
  and ``compress`` (``.Z``) files are refused.

Every refusal is a :class:`~vo_al.samp.errors.MessageRejected` whose text
goes back to the peer.
"""

from __future__ import annotations

import bz2
import http.client
import lzma
import os
import re
import stat
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from .. import __version__
from .errors import MessageRejected

__all__ = ["download", "Transfer", "DOWNLOAD_LIMIT", "DEADLINE", "SCHEMES",
           "refuse_remote_streams"]

#: Most bytes read from a URL, and most bytes written after decompression.
DOWNLOAD_LIMIT = 256 * 1024 * 1024

#: Seconds a whole download may take.
DEADLINE = 30.0

#: URL schemes read.
SCHEMES = ("file", "http", "https")

_CHUNK = 1 << 20
_REDIRECTS = 5
_REDIRECT_CODES = (301, 302, 303, 307, 308)

#: Leading bytes -> compression decompressed on the way.
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
#: Leading bytes -> what is refused.
_REFUSED = {b"PK\x03\x04": "a zip archive", b"\x1f\x9d": "compress (.Z) data"}
_MAGIC_BYTES = 6


class Transfer:
    """The deadline and cancel switch of one download.

    Parameters
    ----------
    seconds : float
        The deadline, from now.
    cancel : threading.Event, optional
        Set it to stop the download at its next read.
    """

    def __init__(self, seconds: float = DEADLINE, cancel: threading.Event | None = None):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.cancel = cancel or threading.Event()

    def remaining(self, url: str) -> float:
        """Seconds left.

        Raises
        ------
        MessageRejected
            When the deadline has passed or the download was cancelled.
        """
        if self.cancel.is_set():
            raise MessageRejected(f"reading {url!r} was stopped: vo-al is closing the link")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise MessageRejected(f"{url!r} was not read within {self.seconds:g} s")
        return left


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].lower() if ":" in url else ""


def download(url: str, path: Path, *, local: bool, transfer: Transfer | None = None,
             limit: int = DOWNLOAD_LIMIT):
    """Fetch ``url`` into ``path``, decompressing gzip, bzip2 and xz on the way.

    Parameters
    ----------
    url : str
        ``file:``, ``http:`` or ``https:``.
    path : Path
        Written (created or truncated).
    local : bool
        Whether ``file:`` URLs may be read (the sender is trusted). When
        False they are refused before the path is looked at, so the
        refusal says nothing about the local files.
    transfer : Transfer, optional
        Deadline and cancel switch; default: :data:`DEADLINE` from now.
    limit : int
        Most bytes read, and most bytes written after decompression.

    Raises
    ------
    MessageRejected
        For another scheme, a ``file:`` URL when ``local`` is False or one
        that is not a local regular file, a URL that cannot be read, one
        not read by the deadline, more than ``limit`` bytes (read or
        decompressed), or data of a refused kind.
    """
    transfer = transfer or Transfer()
    scheme = _scheme(url)
    if scheme not in SCHEMES:
        raise MessageRejected(f"cannot fetch {url[:200]!r}: only {', '.join(SCHEMES)} URLs "
                              "are read")
    if scheme == "file" and not local:
        raise MessageRejected("file: URLs are read only for clients vo-al trusts; send the "
                              "data by http, or trust the client (see vo-al's SAMP docs)")
    try:
        with open(path, "wb") as out:
            sink = _Sink(out, limit, url)
            if scheme == "file":
                _read_file(url, sink, transfer, limit)
            else:
                _read_http(url, sink, transfer, limit)
            sink.close()
    except (OSError, http.client.HTTPException, ValueError, zlib.error, lzma.LZMAError,
            EOFError) as exc:
        if isinstance(exc, TimeoutError):
            transfer.remaining(url)  # the deadline passed: say so
        raise MessageRejected(f"cannot read {url[:300]!r}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _local_path(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise MessageRejected(f"cannot read {url[:300]!r}: file: URLs must name this machine")
    return unquote(parts.path)


def _read_file(url: str, sink: "_Sink", transfer: Transfer, limit: int):
    path = _local_path(url)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)  # no wait
    try:
        _check_regular(fd, url, limit)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb", buffering=0) as fh:
        while chunk := fh.read(_CHUNK):
            transfer.remaining(url)
            sink.write(chunk)


def _check_regular(fd: int, url: str, limit: int):
    """Refuse anything but a regular file (a FIFO, a device, a directory), or one too large."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise MessageRejected(f"cannot read {url[:300]!r}: not a regular file")
    if info.st_size > limit:
        raise MessageRejected(f"{url[:300]!r} is larger than {limit // (1 << 20)} MiB")


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise MessageRejected(f"cannot fetch {url[:300]!r}: not an http(s) URL with a host")
    kind = (http.client.HTTPSConnection if parts.scheme.lower() == "https"
            else http.client.HTTPConnection)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return kind(parts.hostname, parts.port, timeout=timeout), target


def _read_http(url: str, sink: "_Sink", transfer: Transfer, limit: int):
    where = url
    for _ in range(_REDIRECTS + 1):
        conn, target = _connection(where, transfer.remaining(url))
        response = None
        try:
            conn.request("GET", target, headers={"User-Agent": f"vo-al/{__version__}",
                                                 "Accept-Encoding": "identity"})
            sock = conn.sock  # the response keeps reading it after a "Connection: close"
            response = conn.getresponse()
            location = response.getheader("Location")
            if response.status in _REDIRECT_CODES and location:
                where = urljoin(where, location)
                continue
            _copy_response(url, response, sock, sink, transfer, limit)
            return
        finally:
            if response is not None:
                response.close()
            conn.close()
    raise MessageRejected(f"cannot read {url[:300]!r}: more than {_REDIRECTS} redirects")


def _copy_response(url: str, response, sock, sink: "_Sink", transfer: Transfer, limit: int):
    if response.status != 200:
        raise MessageRejected(f"cannot read {url[:300]!r}: HTTP {response.status} "
                              f"{response.reason}"[:400])
    size = response.getheader("Content-Length", "")
    if size.isdigit() and int(size) > limit:
        raise MessageRejected(f"{url[:300]!r} is larger than {limit // (1 << 20)} MiB")
    while True:
        sock.settimeout(transfer.remaining(url))  # the deadline bounds each wait
        chunk = response.read1(_CHUNK)
        if not chunk:
            return
        sink.write(chunk)


class _Sink:
    """Counts the bytes read, decompresses by their first bytes, writes, bounded."""

    def __init__(self, out, limit: int, url: str):
        self._out = out
        self._limit = limit
        self._url = url[:300]
        self._read = 0
        self._written = 0
        self._head = b""  # the first bytes read, until they tell what the data are
        self._inner = b""  # the first bytes decompressed, until they are checked
        self._inflate: _Inflate | None = None
        self._started = False

    def write(self, data: bytes):
        self._read += len(data)
        if self._read > self._limit:
            raise MessageRejected(f"{self._url!r} is larger than {self._limit // (1 << 20)} MiB")
        if not self._started:
            self._head += data
            if len(self._head) < _MAGIC_BYTES:
                return
            data, self._head = self._head, b""
            self._start(data)
        self._emit(data)

    def _start(self, data: bytes):
        self._started = True
        refused = _kind(data, _REFUSED)
        if refused:
            raise MessageRejected(f"{self._url!r} is {refused}: send the file itself")
        kind = _kind(data, _COMPRESSED)
        if kind:
            self._inflate = _Inflate(kind)

    def _emit(self, data: bytes):
        if self._inflate is None:
            self._put(data)
            return
        for piece in self._inflate.feed(data):
            if self._written == 0 and len(self._inner) < _MAGIC_BYTES:
                self._inner += piece
                if len(self._inner) < _MAGIC_BYTES:
                    continue
                piece, self._inner = self._inner, b""
                self._check_inner(piece)
            self._put(piece)

    def _check_inner(self, data: bytes):
        if _kind(data, _COMPRESSED) or _kind(data, _REFUSED):
            raise MessageRejected(f"{self._url!r} is compressed twice: not read")

    def _put(self, data: bytes):
        self._written += len(data)
        if self._written > self._limit:
            raise MessageRejected(f"{self._url!r} decompresses to more than "
                                  f"{self._limit // (1 << 20)} MiB")
        self._out.write(data)

    def close(self):
        """Write what is held back of a short file; check a compressed stream ended."""
        if not self._started:
            data, self._head = self._head, b""
            self._start(data)
            self._emit(data)
        if self._inner:
            self._check_inner(self._inner)
            self._put(self._inner)
        if self._inflate is not None and not self._inflate.complete:
            raise MessageRejected(f"{self._url!r} ends before its compressed data does")


def _kind(data: bytes, table: dict) -> str | None:
    return next((kind for magic, kind in table.items() if data.startswith(magic)), None)


class _Inflate:
    """A streaming decompressor over concatenated members, in bounded pieces."""

    def __init__(self, kind: str):
        self._kind = kind
        self._decoder = self._new()

    def _new(self):
        if self._kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return bz2.BZ2Decompressor() if self._kind == "bzip2" else lzma.LZMADecompressor()

    @property
    def complete(self) -> bool:
        """Whether the data ended at the end of a member."""
        return self._decoder.eof

    def feed(self, data: bytes):
        """Yield the decompressed output of ``data``, at most 1 MiB at a time."""
        while data:
            if self._decoder.eof:
                if not data.strip(b"\0"):
                    return  # padding after the last member
                self._decoder = self._new()
            if self._kind == "gzip":
                yield self._decoder.decompress(data, _CHUNK)
                data = self._decoder.unconsumed_tail or self._decoder.unused_data
                continue
            yield self._decoder.decompress(data, _CHUNK)
            data = self._decoder.unused_data if self._decoder.eof else b""
            while not self._decoder.eof and not self._decoder.needs_input:
                yield self._decoder.decompress(b"", _CHUNK)
            if self._decoder.eof:
                data = self._decoder.unused_data


_STREAM_HREF = re.compile(rb"<(?:[\w.-]+:)?STREAM\b[^>]*\bhref\s*=", re.IGNORECASE)


def refuse_remote_streams(path: Path, url: str):
    """Refuse a VOTable whose data lie behind a ``STREAM href``.

    astropy's VOTable reader would fetch such a URL itself, outside the
    bounds of :func:`download`.

    Raises
    ------
    MessageRejected
    """
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            if _STREAM_HREF.search(tail + chunk):
                raise MessageRejected(f"{url[:300]!r}: VOTable data behind a STREAM href are "
                                      "not fetched; send the table with its data inline")
            tail = chunk[-4096:]
