"""Why a request found no recording: the closest recorded request and every field that differs.

Matching says only yes or no. This module compares a request with each recorded one, field by
field (method, scheme, host, port, path, each query and header key, and the JSON body as data,
down to ``messages[0].content``), picks the recording with the fewest differences and writes the
message a user reads, with every value masked so that no secret is printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pytest_chatresp.errors import record_command
from pytest_chatresp.hygiene.policy import (
    DEFAULT_QUERY_PARAMETERS,
    DEFAULT_REQUEST_HEADERS,
    redact_text,
    scrubbed_match,
)

__all__ = [
    "ABSENT",
    "Difference",
    "Parts",
    "Unmatched",
    "closest",
    "differences",
    "explain",
    "masked",
]

#: Fields that say where a request goes: when only these differ, the client points elsewhere.
WHERE = ("scheme", "host", "port")
_BODY_MATCHERS = frozenset({"body", "raw_body", "chatresp_body"})
_SHOWN = 8
_WIDTH = 60
_SECRET_HEADERS = frozenset(DEFAULT_REQUEST_HEADERS)
_SECRET_QUERY = frozenset(DEFAULT_QUERY_PARAMETERS)


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


def masked(text: str, redact: Callable[[str], str] = redact_text) -> str:
    """``text`` as a message may print it: ``redact`` (the secret policy's message redaction,
    with what the recorder learned) applied. The one place the mismatch message hides secrets."""
    return redact(text)


@dataclass(frozen=True)
class Parts:
    """A request as the comparison sees it: its body already parsed as matching parses it."""

    method: str
    uri: str
    headers: Mapping[str, Any]
    body: Any


@dataclass(frozen=True)
class Difference:
    """One field that differs: ``messages[0].content``, ``host``, ``header x-foo``…"""

    field: str
    recorded: Any
    now: Any


@dataclass(frozen=True)
class Unmatched:
    """A request the cassette could not answer, and the recording closest to it."""

    request: Any  # a cassette.Request, for its description
    closest: int | None
    differences: tuple[Difference, ...]
    #: The closest recording matches on every field compared here (already played, or refused
    #: by a matcher this module does not know).
    already_played: bool = False
    #: How many identical requests were sent (an SDK retries).
    count: int = 1
    identity: str = ""


def _url(uri: str) -> dict[str, Any]:
    parts = urlsplit(uri)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return {
        "scheme": parts.scheme,
        "host": parts.hostname or "",
        "port": port,
        "path": parts.path,
        "query": parts.query,
    }


def _query(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        found.setdefault(key, []).append(value)
    return found


def _headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in headers.items()}


def _data(recorded: Any, now: Any, where: str) -> Iterable[Difference]:
    if isinstance(recorded, dict) and isinstance(now, dict):
        for key in [*recorded, *(k for k in now if k not in recorded)]:
            path = f"{where}.{key}" if where else str(key)
            yield from _data(recorded.get(key, ABSENT), now.get(key, ABSENT), path)
    elif isinstance(recorded, list) and isinstance(now, list):
        for index in range(max(len(recorded), len(now))):
            yield from _data(
                recorded[index] if index < len(recorded) else ABSENT,
                now[index] if index < len(now) else ABSENT,
                f"{where}[{index}]",
            )
    elif isinstance(recorded, str) and isinstance(now, str):
        if not scrubbed_match(recorded, now):  # as the body matcher compares them
            yield Difference(where or "body", recorded, now)
    elif recorded != now or type(recorded) is not type(now):
        yield Difference(where or "body", recorded, now)


def differences(recorded: Parts, now: Parts, match_on: Sequence[str]) -> list[Difference]:
    """Every field compared by ``match_on`` in which ``now`` differs from ``recorded``."""
    compared = set(match_on)
    if "uri" in compared:
        compared |= {"scheme", "host", "port", "path", "query"}
    found: list[Difference] = []
    if "method" in compared and recorded.method.upper() != now.method.upper():
        found.append(Difference("method", recorded.method, now.method))
    old_url, new_url = _url(recorded.uri), _url(now.uri)
    for name in ("scheme", "host", "port", "path"):
        if name in compared and old_url[name] != new_url[name]:
            found.append(Difference(name, old_url[name], new_url[name]))
    if "query" in compared:
        old_query, new_query = _query(old_url["query"]), _query(new_url["query"])
        for key in [*old_query, *(k for k in new_query if k not in old_query)]:
            old_value, new_value = old_query.get(key, ABSENT), new_query.get(key, ABSENT)
            if old_value != new_value:
                found.append(Difference(f"query {key}", _one(old_value), _one(new_value)))
    if "headers" in compared:
        old_headers, new_headers = _headers(recorded.headers), _headers(now.headers)
        for key in [*old_headers, *(k for k in new_headers if k not in old_headers)]:
            old_value, new_value = old_headers.get(key, ABSENT), new_headers.get(key, ABSENT)
            if old_value != new_value:
                found.append(Difference(f"header {key}", _one(old_value), _one(new_value)))
    if compared & _BODY_MATCHERS:
        found.extend(_data(recorded.body, now.body, ""))
    return found


def _one(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def closest(
    now: Parts, candidates: Iterable[tuple[int, Parts, bool]], match_on: Sequence[str]
) -> tuple[int | None, list[Difference], bool]:
    """The recording with the fewest differences (the first of equals): its index, the
    differences, and whether it was played already. ``candidates`` are (index, parts, played)."""
    best: tuple[int | None, list[Difference], bool] = (None, [], False)
    for index, parts, played in candidates:
        found = differences(parts, now, match_on)
        if best[0] is None or len(found) < len(best[1]):
            best = (index, found, played)
        if not found:
            break
    return best


def _text(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bytes):
        return repr(value.decode("utf-8", errors="replace"))
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _side_by_side(recorded: str, now: str, width: int = _WIDTH) -> tuple[str, str]:
    """Both values, shortened to ``width`` around their first difference, cut alike."""
    if len(recorded) <= width and len(now) <= width:
        return recorded, now
    first = next(
        (i for i, (a, b) in enumerate(zip(recorded, now, strict=False)) if a != b),
        min(len(recorded), len(now)),
    )
    start = max(0, first - width // 3)

    def cut(text: str) -> str:
        piece = text[start : start + width]
        return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")

    return cut(recorded), cut(now)


def _secret_field(field: str) -> bool:
    if field.startswith("header "):
        return field.removeprefix("header ") in _SECRET_HEADERS
    if field.startswith("query "):
        return field.removeprefix("query ").lower() in _SECRET_QUERY
    return False


def _difference_lines(difference: Difference, clean: Callable[[str], str]) -> list[str]:
    if _secret_field(difference.field):
        recorded, now = "REDACTED", "REDACTED"
    else:
        # Masked before shortening, so that a secret is never cut where it is not recognised.
        recorded, now = _side_by_side(
            masked(_text(difference.recorded), clean), masked(_text(difference.now), clean)
        )
    return [
        f"      {difference.field}",
        f"        recorded: {recorded}",
        f"        now:      {now}",
    ]


def explain(
    unmatched: Sequence[Unmatched],
    *,
    cassette: str,
    exists: bool,
    mode: str,
    test: str,
    clean: Callable[[str], str] = redact_text,
) -> str:
    """The failure message for requests no recording answers. ``clean`` redacts message text."""
    requests = sum(u.count for u in unmatched)
    lines = [
        "No recorded chat completion matches this request:"
        if requests == 1
        else f"No recording matches these {requests} requests:"
    ]
    where_only = exists and bool(unmatched)
    recorded_at: set[str] = set()
    for item in unmatched:
        sent = f", sent {item.count} times" if item.count > 1 else ""
        lines.append(f"  {masked(item.request.describe(clean), clean)}{sent}")
        if item.closest is None:
            where_only = False
            continue
        if item.already_played:
            where_only = False
            lines.append(
                f"    interaction {item.closest} matches it, but was played already by an "
                "earlier request: each recording answers one request"
            )
            continue
        count = len(item.differences)
        fields = "1 field" if count == 1 else f"{count} fields"
        lines.append(
            f"    closest recording: interaction {item.closest}, which differs in {fields}:"
        )
        for difference in item.differences[:_SHOWN]:
            lines.extend(_difference_lines(difference, clean))
        if count > _SHOWN:
            lines.append(f"      … and {count - _SHOWN} more")
        where = [d for d in item.differences if d.field in WHERE]
        if len(where) != count or not where:
            where_only = False
        recorded_at.update(d.field for d in where)
    lines.append(
        f"cassette: {cassette}"
        + ("" if exists else " (does not exist)")
        + f", record mode {mode!r}"
    )
    if where_only:
        lines.append(
            f"Only where the request is sent differs ({', '.join(sorted(recorded_at))}): correct "
            "the client's base_url (or the endpoint your code builds) rather than recording again."
        )
    elif exists:
        lines.append(f"Record it again with: {record_command('all', test)}")
    else:
        lines.append(f"Record it with: {record_command('once', test)}")
    return "\n".join(lines)
