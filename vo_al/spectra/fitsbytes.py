"""The bytes of a FITS file, read within bounds before astropy sees them.

A spectrum file is read into memory whole, and only as far as is safe:

* Only a regular file is opened: the path is checked with ``os.stat``
  before it is opened (with ``O_NONBLOCK``) and with ``os.fstat`` after, so
  a FIFO, a device such as ``/dev/zero``, a socket or a directory is
  refused at once instead of blocking or streaming forever.
* gzip and bzip2 files are decompressed as a stream, never further than
  the FITS structure goes.
* The FITS structure is walked here, card by card, before anything is
  allocated for the data: the headers must end (``END``) within
  :data:`MAX_HEADER_BYTES`; the data size each header claims,
  ``|BITPIX|/8 × GCOUNT × (PCOUNT + NAXIS1 × … × NAXISn)``, must be at most
  :data:`MAX_HDU_DATA_BYTES`, and the whole file at most
  :data:`MAX_FITS_BYTES`.
* Bytes after the last HDU (padding, trailing junk, the rest of a gzip
  bomb) are not read, as astropy ignores them too.

A LAMOST low-resolution file holds 5 × 3909 values (≈ 80 kB as float32,
160 kB as float64), an Ondřejov CCD700 one ≈ 2000 (8 kB): the bounds are
a hundred times that and more, and keep a refused file to a fraction of a
second and well under 1 GB of memory.
"""

from __future__ import annotations

import bz2
import gzip
import math
import os
import re
import stat
import zlib

from .errors import CorruptFile, RefusedFile

__all__ = ["MAX_FITS_BYTES", "MAX_HDU_DATA_BYTES", "MAX_HEADER_BYTES", "read_fits_bytes"]

#: Most bytes of FITS (after decompression, headers and data) read from one file.
MAX_FITS_BYTES = 64 * 2**20
#: Most bytes of data one HDU's header may claim.
MAX_HDU_DATA_BYTES = 16 * 2**20
#: Most header bytes of one file, all HDUs together (100 blocks, 3600 cards;
#: the real LAMOST and Ondřejov files have 5–270 cards per header).
MAX_HEADER_BYTES = 100 * 2880

_BLOCK = 2880
_CARD = 80
_SIZE_KEY = re.compile(rb"BITPIX|NAXIS\d{0,3}|PCOUNT|GCOUNT|GROUPS")
_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_COMPRESSED = ((b"\x1f\x8b", "gzip stream", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
               (b"BZh", "bzip2 stream", bz2.BZ2File))


def read_fits_bytes(path) -> bytes:
    """Every HDU of the FITS file at ``path``, decompressed, within the bounds.

    Parameters
    ----------
    path : str or path-like
        A FITS file, plain, gzipped or bzip2-compressed.

    Returns
    -------
    bytes
        The HDUs (headers and padded data) and nothing after the last one,
        ready for ``astropy.io.fits.HDUList.fromstring``.

    Raises
    ------
    FileNotFoundError
        When nothing is at ``path``.
    RefusedFile
        When ``path`` is not a regular file, cannot be opened, or its
        headers or data are over the bounds.
    CorruptFile
        When the file is not FITS, is truncated, or its compression is broken.
    """
    path = os.fspath(path)
    with _open_regular(path) as raw:
        kind = "file"
        try:
            kind, stream = _decompressing(raw)
            return _read_hdus(stream, path)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptFile(path, f"the {kind} could not be read ({exc})") from exc


def _open_regular(path: str):
    """``path`` opened for binary reading, or :class:`RefusedFile` if not a regular file."""
    try:
        _refuse_unless_regular(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise RefusedFile(path, f"cannot be opened ({getattr(exc, 'strerror', None) or exc})") \
            from exc
    raw = os.fdopen(fd, "rb")
    try:
        _refuse_unless_regular(path, os.fstat(fd).st_mode)  # replaced since os.stat?
    except RefusedFile:
        raw.close()
        raise
    return raw


def _decompressing(raw) -> tuple[str, object]:
    """``(what it is, stream of the FITS bytes)``, told by the magic bytes."""
    magic = raw.peek(3)[:3]
    for prefix, kind, make in _COMPRESSED:
        if magic.startswith(prefix):
            return kind, make(raw)
    return "file", raw


def _refuse_unless_regular(path: str, mode: int):
    for test, kind in _NOT_REGULAR:
        if test(mode):
            raise RefusedFile(path, f"is {kind}, not a regular file")
    if not stat.S_ISREG(mode):
        raise RefusedFile(path, "is not a regular file")


def _read_up_to(stream, size: int) -> bytes:
    """``size`` bytes of ``stream``, fewer only where it ends."""
    chunks = []
    while size > 0:
        chunk = stream.read(min(size, 2**20))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_hdus(stream, path: str) -> bytes:
    """The HDUs of ``stream`` as bytes, each header checked before its data is read."""
    parts: list[bytes] = []
    total = header_total = 0
    block = _read_up_to(stream, _BLOCK)
    if not block.startswith(b"SIMPLE  ="):
        raise CorruptFile(path, "is empty" if not block else
                          f"is not FITS: it does not begin with 'SIMPLE  =' but {block[:20]!r}")
    while True:
        header = _read_header(stream, block, path, MAX_HEADER_BYTES - header_total)
        header_total += len(header)
        size = _data_size(_size_keys(header), path, len(parts) // 2)
        padded = -(-size // _BLOCK) * _BLOCK
        total += len(header) + padded
        if total > MAX_FITS_BYTES:
            raise RefusedFile(path, f"holds more than {_mib(MAX_FITS_BYTES)} of FITS, more "
                              "than vo-al reads from one file")
        data = _read_up_to(stream, padded)
        if len(data) < size:
            raise CorruptFile(path, f"is truncated: HDU {len(parts) // 2} claims {size:,} bytes "
                              f"of data, the file holds {len(data):,}")
        parts += [header, data.ljust(padded, b"\0")]
        block = _read_up_to(stream, _BLOCK)
        if not block.startswith(b"XTENSION="):
            return b"".join(parts)


def _read_header(stream, block: bytes, path: str, room: int) -> bytes:
    """The header starting with ``block``, through the block holding END."""
    blocks = []
    while True:
        if len(block) < _BLOCK:
            raise CorruptFile(path, "is truncated: a header ends without an END card")
        blocks.append(block)
        if len(blocks) * _BLOCK > room:
            raise RefusedFile(path, f"has headers longer than {MAX_HEADER_BYTES:,} bytes "
                              f"({MAX_HEADER_BYTES // _CARD} cards), more than vo-al reads")
        if _has_end(block):
            return b"".join(blocks)
        block = _read_up_to(stream, _BLOCK)


def _has_end(block: bytes) -> bool:
    return any(block[i:i + 8] == b"END     " for i in range(0, len(block), _CARD))


def _size_keys(header: bytes) -> dict[str, bytes]:
    """The raw values of the keys that fix the data size (first occurrence wins)."""
    keys: dict[str, bytes] = {}
    for start in range(0, len(header), _CARD):
        card = header[start:start + _CARD]
        keyword = card[:8].rstrip()
        if keyword == b"END":
            break
        if card[8:10] == b"= " and _SIZE_KEY.fullmatch(keyword):
            keys.setdefault(keyword.decode(), card[10:].split(b"/", 1)[0].strip())
    return keys


def _data_size(keys: dict[str, bytes], path: str, hdu: int) -> int:
    """Bytes of data the header claims, unpadded; refused over :data:`MAX_HDU_DATA_BYTES`."""
    bitpix = _integer(keys, "BITPIX", path)
    naxis = _integer(keys, "NAXIS", path)
    if bitpix not in (8, 16, 32, 64, -32, -64) or not 0 <= naxis <= 999:
        raise CorruptFile(path, f"has an invalid header: BITPIX = {bitpix}, NAXIS = {naxis}")
    axes = [_integer(keys, f"NAXIS{i}", path) for i in range(1, naxis + 1)]
    pcount, gcount = _integer(keys, "PCOUNT", path, 0), _integer(keys, "GCOUNT", path, 1)
    if min(axes + [pcount, gcount], default=0) < 0:
        raise CorruptFile(path, f"has negative sizes in header {hdu}")
    if axes and axes[0] == 0 and keys.get("GROUPS") == b"T":  # random groups
        axes = axes[1:]
    size = abs(bitpix) // 8 * gcount * (pcount + math.prod(axes)) if axes else 0
    if size > MAX_HDU_DATA_BYTES:
        shape = " × ".join(str(n) for n in axes[:3])
        shape += f" × … ({naxis} axes)" if naxis > 3 else ""
        claim = f"{size:,}" if size < 10**15 else f"{size:.3g}"
        raise RefusedFile(path, f"header {hdu} claims {claim} bytes of data (BITPIX = {bitpix}, "
                          f"axes {shape}), more than the {_mib(MAX_HDU_DATA_BYTES)} vo-al reads "
                          "per HDU")
    return size


def _integer(keys: dict[str, bytes], name: str, path: str, default: int | None = None) -> int:
    value = keys.get(name)
    if value is None and default is not None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        shown = "missing" if value is None else value.decode("ascii", "replace")
        raise CorruptFile(path, f"has an invalid header: {name} is {shown}") from None


def _mib(size: int) -> str:
    return f"{size / 2**20:g} MiB"
