"""How a request is matched to a recording: the body matcher and the default ``match_on``."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from pytest_chatresp.cassette.decoding import UnreadableBody, decode
from pytest_chatresp.hygiene.policy import scrubbed_match
from pytest_chatresp.provenance import without_nulls

if TYPE_CHECKING:
    from .mismatch import Parts

__all__ = ["BODY_MATCHER", "DEFAULT_MATCH_ON", "body", "parts", "same"]

BODY_MATCHER = "chatresp_body"
DEFAULT_MATCH_ON: tuple[str, ...] = (
    "method",
    "scheme",
    "host",
    "port",
    "path",
    "query",
    BODY_MATCHER,
)


def _body_data(request: Any) -> Any:
    body = request.body
    if not body:
        return None
    return _comparable(body if isinstance(body, bytes) else str(body).encode())


@functools.lru_cache(maxsize=512)
def _comparable(raw: bytes) -> Any:
    """A body as matching compares it; vcrpy compares the same bodies many times a request."""
    try:
        raw = decode(raw)  # a gzip-compressed request body is compared decoded
    except UnreadableBody:
        return raw
    try:
        return without_nulls(json.loads(raw))
    except ValueError:
        return raw


def parts(request: Any) -> Parts:
    """A vcrpy request as the mismatch message compares it (the body parsed as matching does)."""
    from .mismatch import Parts  # only for a request no recording matches

    return Parts(request.method, request.uri, dict(request.headers), _body_data(request))


def same(recorded: Any, live: Any) -> bool:
    """Whether two bodies (as data) match: equal, or equal but for the secrets scrubbed from the
    recording (a string with ``REDACTED`` in it matches the live string that held the secret)."""
    if recorded == live:
        return True
    if isinstance(recorded, str) and isinstance(live, str):
        return scrubbed_match(recorded, live)
    if isinstance(recorded, dict) and isinstance(live, dict):
        return recorded.keys() == live.keys() and all(same(recorded[k], live[k]) for k in recorded)
    if isinstance(recorded, list) and isinstance(live, list):
        return len(recorded) == len(live) and all(map(same, recorded, live))
    return False


def body(r1: Any, r2: Any) -> None:  # the name vcrpy shows when a request does not match
    """vcrpy matcher: JSON bodies compared as data (key order, white space and nulls ignored,
    a scrubbed secret matching the live value). vcrpy passes the live request first."""
    live, recorded = _body_data(r1), _body_data(r2)
    if not same(recorded, live):
        raise AssertionError("the request bodies differ")
