"""Cassette files into exchanges: reading, decoding, streams, the readable format, the cache.

- :mod:`.document`: a file's bytes (regular files only, bounded) and its document (JSON, or YAML
  read safely), in vcrpy's plain layout;
- :mod:`.decoding`: the one body decoder (gzip, deflate, brotli);
- :mod:`.stream`: server-sent events and the merging of chunks;
- :mod:`.readable`: the readable cassette format, and other recorders' layouts;
- :mod:`.exchange`: one interaction read into an :class:`Exchange`, validated by
  :mod:`.validation`;
- :mod:`.loader`: :class:`Cassette` and :func:`load_cassette`;
- :mod:`.cache`: parsed documents kept between sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_chatresp._exports import names_on_first_use

if TYPE_CHECKING:
    from .document import MAX_CASSETTE_BYTES, interactions_of, read_cassette_bytes, read_document
    from .exchange import EXCHANGE_KINDS, APIErrorInfo, Exchange, Request, build_exchange
    from .loader import Cassette, cassette_from_document, load_cassette

__all__ = [
    "EXCHANGE_KINDS",
    "MAX_CASSETTE_BYTES",
    "APIErrorInfo",
    "Cassette",
    "Exchange",
    "Request",
    "build_exchange",
    "cassette_from_document",
    "interactions_of",
    "load_cassette",
    "read_cassette_bytes",
    "read_document",
]

# Imported on first use: a warm session's cassettes come from their stored verdicts, and need
# neither the models (pydantic) nor the exchange builder until a test reads a completion.
_HOMES = {
    "document": ("MAX_CASSETTE_BYTES", "interactions_of", "read_cassette_bytes", "read_document"),
    "exchange": ("EXCHANGE_KINDS", "APIErrorInfo", "Exchange", "Request", "build_exchange"),
    "loader": ("Cassette", "cassette_from_document", "load_cassette"),
}
__getattr__ = names_on_first_use(__name__, _HOMES, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
