"""Provenance: when and with what a cassette was recorded, and what each chat exchange served.

Every cassette the plugin writes carries, under vcrpy's ``metadata`` key::

    metadata:
      chatresp:
        recorded_at: '2026-11-25T01:30:00Z'      # this write
        versions: {pytest-chatresp: 0.1.0, vcrpy: 9.4.2, openai: 3.57.0}
        exchanges:
        - index: 0
          request: 3f2a…                         # a digest of method, URI and JSON body
          test: test_app.py::test_summary        # the test that recorded it
          recorded_at: '2026-11-25T01:30:00Z'    # kept from earlier writes when replayed
          versions: {pytest-chatresp: 0.1.0, …}  # those of the write that recorded it
          requested_model: gpt-4o-mini
          served_model: gpt-4o-mini-2024-07-18
          requested_tier: null
          served_tier: default
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "METADATA_KEY",
    "build_provenance",
    "digest_of",
    "entry_for",
    "inferred_recording",
    "model_changes",
    "oldest_recording",
    "owner",
    "request_digest",
    "version_of",
    "without_nulls",
]

METADATA_KEY = "chatresp"
_PACKAGES = ("pytest-chatresp", "vcrpy", "openai", "httpx", "httpx2", "requests", "aiohttp")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def version_of(distribution: str) -> str | None:
    """The installed version of a distribution; ``None`` when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str]:
    """Versions of the plugin, vcrpy and the HTTP clients installed."""
    found = {name: version_of(name) for name in _PACKAGES}
    return {name: found for name, found in found.items() if found is not None}


def without_nulls(value: Any) -> Any:
    """A JSON value with every null member dropped, as matching compares request bodies (a
    client may send an explicit ``None`` argument as ``null``)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def request_digest(method: str, uri: str, body: Any) -> str:
    """A short digest that identifies a request as matching does (JSON bodies as data)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    try:
        data = without_nulls(json.loads(body)) if isinstance(body, str) and body else body
    except ValueError:
        data = body
    text = json.dumps([method.upper(), uri, data], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _served(exchange: Any) -> dict[str, Any]:
    document = exchange.merged if exchange.streamed else exchange.json
    if not isinstance(document, dict):
        return {}
    return {"served_model": document.get("model"), "served_tier": document.get("service_tier")}


def _previous(metadata: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(metadata, dict):
        return {}
    ours = metadata.get(METADATA_KEY)
    if not isinstance(ours, dict) or not isinstance(ours.get("exchanges"), list):
        return {}
    return {
        str(entry.get("request")): entry for entry in ours["exchanges"] if isinstance(entry, dict)
    }


def digest_of(request: dict[str, Any]) -> str:
    """:func:`request_digest` of a request as vcrpy stores it."""
    return request_digest(
        str(request.get("method", "")), str(request.get("uri", "")), request.get("body")
    )


def entry_for(metadata: Any, index: int, request: dict[str, Any]) -> dict[str, Any] | None:
    """What an earlier write said about its interaction ``index``, whose request is ``request``:
    the entry at that index when it is that request's, else the entry of an equal request."""
    digest = digest_of(request)
    ours = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    entries = ours.get("exchanges") if isinstance(ours, dict) else None
    if isinstance(entries, list) and 0 <= index < len(entries):
        entry = entries[index]
        if isinstance(entry, dict) and entry.get("request") == digest:
            return entry
    return _previous(metadata).get(digest)


def owner(metadata: Any, index: int, request: dict[str, Any]) -> str | None:
    """The test that recorded interaction ``index`` (``request``), as the metadata says."""
    test = (entry_for(metadata, index, request) or {}).get("test")
    return test if isinstance(test, str) else None


def build_provenance(
    interactions: Iterable[tuple[dict[str, Any], Any, bool, int | None]],
    previous_metadata: Any,
    test: str | None = None,
) -> dict[str, Any]:
    """The ``metadata.chatresp`` of a cassette about to be written.

    ``interactions`` are (request dict, exchange, recorded now, index in the file that
    ``previous_metadata`` describes, or None) in file order. An interaction
    recorded now is stamped with this write's time and versions and ``test``; one not recorded
    now keeps what an earlier write said about it (no time at all when none is known: it is not
    claimed fresh).
    """
    now = _now()
    current = versions()
    earlier_versions = _earlier_versions(previous_metadata)
    entries = []
    for index, (request, exchange, recorded_now, was) in enumerate(interactions):
        digest = digest_of(request)
        entry: dict[str, Any]
        if recorded_now:
            entry = {"index": index, "request": digest}
            if test:
                entry["test"] = test
            entry.update(recorded_at=now, versions=current)
        else:
            earlier = None if was is None else entry_for(previous_metadata, was, request)
            entry = {**(earlier or {}), "index": index, "request": digest}
            entry.setdefault("recorded_at", None)
            if earlier is not None and earlier_versions:
                entry.setdefault("versions", earlier_versions)
        if exchange is not None and exchange.is_chat:
            body = exchange.request.json if isinstance(exchange.request.json, dict) else {}
            entry["requested_model"] = body.get("model")
            entry["requested_tier"] = body.get("service_tier")
            entry.update(_served(exchange))
        entries.append(entry)
    return {"recorded_at": now, "versions": current, "exchanges": entries}


def _earlier_versions(metadata: Any) -> dict[str, Any] | None:
    """The versions an earlier write recorded for the whole file (before they were per entry)."""
    if isinstance(metadata, dict) and isinstance(metadata.get(METADATA_KEY), dict):
        found = metadata[METADATA_KEY].get("versions")
        return dict(found) if isinstance(found, dict) else None
    return None


def recording_tests(metadata: Any) -> list[str]:
    """The tests that recorded a cassette's exchanges, as its metadata says, in file order."""
    ours = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    entries = ours.get("exchanges") if isinstance(ours, dict) else None
    tests = [e.get("test") for e in entries or [] if isinstance(e, dict)]
    return list(dict.fromkeys(t for t in tests if isinstance(t, str) and t))


def oldest_recording(metadata: Any) -> datetime | None:
    """When the oldest exchange of a cassette was recorded, if its metadata says."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get(METADATA_KEY), dict):
        return None
    ours = metadata[METADATA_KEY]
    times = [
        _parse_time(entry.get("recorded_at"))
        for entry in ours.get("exchanges") or []
        if isinstance(entry, dict)
    ]
    known = [t for t in times if t is not None]
    if known:
        return min(known)
    return _parse_time(ours.get("recorded_at"))


_SECONDS_LIMIT = 10**11  # a larger ``created`` is in milliseconds


def _header_time(values: Any) -> datetime | None:
    from email.utils import parsedate_to_datetime

    for value in values or []:
        try:
            parsed = parsedate_to_datetime(str(value))
        except (TypeError, ValueError, IndexError):
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _created_time(document: Any) -> datetime | None:
    if not isinstance(document, dict):
        return None
    value = document.get("created", document.get("created_at"))
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return None
    seconds = value / 1000 if value >= _SECONDS_LIMIT else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def inferred_recording(exchanges: Iterable[Any]) -> tuple[datetime, str] | None:
    """When a cassette without provenance was recorded, as its responses say, and from what:
    the oldest ``Date`` header of a response, else the oldest ``created`` of a body."""
    dates: list[datetime] = []
    created: list[datetime] = []
    for exchange in exchanges:
        date = _header_time(exchange.headers.get("date"))
        if date is not None:
            dates.append(date)
        document = exchange.merged if exchange.streamed else exchange.json
        stamp = _created_time(document)
        if stamp is not None:
            created.append(stamp)
    if dates:
        return min(dates), "its Date header"
    if created:
        return min(created), "the responses' created"
    return None


def model_changes(previous_metadata: Any, metadata: dict[str, Any]) -> list[str]:
    """``requested → old served → new served`` for requests re-recorded with another model."""
    previous = _previous(previous_metadata)
    changes = []
    for entry in metadata.get("exchanges", []):
        before = previous.get(str(entry.get("request")))
        if not before or "served_model" not in before or "served_model" not in entry:
            continue
        if before["served_model"] != entry["served_model"]:
            changes.append(
                f"{entry.get('requested_model')}: served {before['served_model']} before, "
                f"{entry['served_model']} now (interaction {entry['index']})"
            )
    return changes
