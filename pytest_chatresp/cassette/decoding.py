"""Undoing a body's ``Content-Encoding``: the one body decoder of the package.

The reader, the readable serializer, the secret scan, ``chatresp scrub`` and ``chatresp audit``
all decode bodies here, so that what the scan looks at is what a client reads. Known codings:
``gzip`` (also ``x-gzip``), ``deflate`` with or without its zlib header, and ``br`` when the
``brotli`` package is installed. Anything else is refused with :class:`UnreadableBody`, which
says why in words; so is a body that would decode to more than :data:`MAX_DECODED_BYTES`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "MAX_DECODED_BYTES",
    "UnreadableBody",
    "codings",
    "decode",
    "decoder_versions",
    "encode",
    "plausible_decodings",
]

#: The most a body may decode to: a decompression bomb is refused, not expanded.
MAX_DECODED_BYTES = 64 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
#: Fewer bytes than this cannot hold a compressed secret worth finding.
_SHORTEST_COMPRESSED = 10
_ALIASES = {"x-gzip": "gzip", "x-deflate": "deflate"}


class UnreadableBody(ValueError):
    """A body that cannot be decoded; the message says why (never the body itself)."""


def codings(header: str | Iterable[str] | None) -> tuple[str, ...]:
    """The codings a ``Content-Encoding`` header (one value or several) lists, in order."""
    if header is None:
        return ()
    values = [header] if isinstance(header, str) else [str(v) for v in header]
    out = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if name and name != "identity":
                out.append(_ALIASES.get(name, name))
    return tuple(out)


def _brotli() -> Any:
    try:
        import brotli  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return brotli


def _too_big() -> UnreadableBody:
    return UnreadableBody(f"the body decodes to more than {MAX_DECODED_BYTES // 2**20} MB")


def _inflate(raw: bytes, wbits: int) -> bytes:
    """zlib-family decompression of every member, bounded by :data:`MAX_DECODED_BYTES`."""
    out = bytearray()
    data = raw
    while True:
        engine = zlib.decompressobj(wbits)
        out += engine.decompress(data, MAX_DECODED_BYTES + 1 - len(out))
        if len(out) > MAX_DECODED_BYTES or engine.unconsumed_tail:
            raise _too_big()
        if not engine.eof:
            raise zlib.error("incomplete or truncated stream")
        data = engine.unused_data
        # gzip allows several members one after the other; trailing zeros are padding.
        if not data.strip(b"\x00") or wbits != 31:
            return bytes(out)


def _unbrotli(raw: bytes) -> bytes:
    brotli = _brotli()
    if brotli is None:
        raise UnreadableBody("the body is brotli-compressed; install brotli to read it")
    engine = brotli.Decompressor()
    try:
        out = bytes(engine.process(raw, output_buffer_limit=MAX_DECODED_BYTES + 1))
    except TypeError:  # brotli before 1.2 has no output limit
        out = bytes(brotli.decompress(raw))
    else:
        if len(out) <= MAX_DECODED_BYTES and not engine.is_finished():
            raise zlib.error("incomplete or truncated stream")
    if len(out) > MAX_DECODED_BYTES:
        raise _too_big()
    return out


def _undo(data: bytes, coding: str) -> bytes:
    if coding == "gzip":
        # The magic bytes are trusted over the header: a body stored decoded under a stale
        # gzip header reads as what it is.
        return _inflate(data, 31) if data.startswith(_GZIP_MAGIC) else data
    if coding == "deflate":
        try:
            return _inflate(data, 47)  # a zlib or gzip header
        except zlib.error:
            return _inflate(data, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    if coding == "br":
        return _unbrotli(data)
    raise UnreadableBody(f"the body is encoded as {coding!r}, which cannot be read")


def decode(raw: bytes, encoding: Sequence[str] | str | None = ()) -> bytes:
    """``raw`` with its content codings undone (the last applied is undone first).

    ``encoding`` is the header's value or :func:`codings` of it. A gzip body is decoded by its
    magic bytes even without a header. Raises :class:`UnreadableBody`.
    """
    steps = codings(encoding) if isinstance(encoding, str) or encoding is None else encoding
    if not steps and raw.startswith(_GZIP_MAGIC):
        steps = ("gzip",)
    data = raw
    try:
        for coding in reversed(steps):
            data = _undo(data, coding)
    except UnreadableBody:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableBody(f"the body is compressed but corrupt ({exc})") from None
    except Exception as exc:  # brotli.error is not an OSError
        raise UnreadableBody(f"the body is compressed but corrupt ({type(exc).__name__})") from None
    return data


def encode(data: bytes, encoding: Sequence[str] | str | None) -> bytes:
    """``data`` encoded with the codings listed (in the order they are applied).

    Used to store a scrubbed body as it was stored before. Raises :class:`UnreadableBody`
    for a coding it cannot write.
    """
    import gzip

    steps = codings(encoding) if isinstance(encoding, str) or encoding is None else encoding
    for coding in steps:
        if coding == "gzip":
            data = gzip.compress(data, mtime=0)
        elif coding == "deflate":
            data = zlib.compress(data)
        elif coding == "br" and _brotli() is not None:
            data = bytes(_brotli().compress(data))
        else:
            raise UnreadableBody(f"cannot encode a body as {coding!r}")
    return data


def plausible_decodings(raw: bytes) -> list[bytes]:
    """Every way a reader could decode bytes whose coding is not known, ``raw`` first.

    For the secret scan: gzip, zlib, raw deflate and brotli are each tried; what fails is left
    out.
    """
    found = [raw]
    if len(raw) < _SHORTEST_COMPRESSED:
        return found
    for coding in ("gzip", "deflate", "br"):
        try:
            decoded = decode(raw, (coding,))
        except UnreadableBody:
            continue
        if decoded and decoded not in found:
            found.append(decoded)
    return found


def decoder_versions() -> dict[str, str]:
    """The version of each optional decoder installed (what it reads changes with them)."""
    brotli = _brotli()
    if brotli is None:
        return {}
    return {"brotli": str(getattr(brotli, "__version__", "unknown"))}
