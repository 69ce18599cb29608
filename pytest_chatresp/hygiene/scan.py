"""The secret scan: every text a reader could get out of a cassette document, and the secrets
in it.

A document is read as a reader would read it, and more: a body is decoded by its
``Content-Encoding`` (:mod:`pytest_chatresp.cassette.decoding`; one that cannot be decoded is
reported),
bytes of unknown coding are tried as gzip, zlib, raw deflate and brotli, bytes are read as
UTF-8 and as the UTF-16 or UTF-32 that ``json.loads`` would detect, a JSON text is parsed and
its strings read (with or without a byte order mark, and each document of newline-delimited
JSON), a server-sent event stream is read event by event (each event's data as a text of its
own, JSON parsed) and each field joined across events (so a key split across two events is
found), two header values are joined (so a key split across two headers is found),
URL-encoding is undone, runs of base64 or base64url are decoded, and ``Basic``
credentials are read. Each text is then checked
against the policy (:mod:`.policy`): known secret values in any of their encoded forms,
key-shaped strings, ``Basic`` credentials.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from pytest_chatresp.cassette.decoding import UnreadableBody, codings, decode, plausible_decodings
from pytest_chatresp.cassette.stream import looks_like_sse, parse_sse

from .policy import (
    BASIC_CREDENTIAL,
    KEY_PATTERNS,
    REDACTED,
    Secrets,
    basic_credentials,
    encoded_forms,
)

__all__ = ["find_secrets", "texts_of"]

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")
_BASE64_BLOCK = re.compile(r"[A-Za-z0-9+/=\s]+")
_MAX_DEPTH = 4
#: A header value that could be part of a key: key characters only, no spaces.
_FRAGMENT = re.compile(r"[A-Za-z0-9_\-+/=.:]{4,256}")
_MAX_FRAGMENTS = 32
#: Views of one text are not taken from texts larger than this (a body is far smaller).
_MAX_VIEW_CHARS = 32 * 1024 * 1024


def _where(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


@dataclass
class _Reading:
    """What a walk through a document found: ``(where, text)`` and unreadable bodies."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    #: Two header values joined (see :func:`_joined_fragments`): ``(where, text)``.
    joined: list[tuple[str, str]] = field(default_factory=list)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def value(self, value: Any, where: str, depth: int = 0) -> None:
        if isinstance(value, Mapping):
            self._mapping(value, where, depth)
        elif isinstance(value, list | tuple):
            for position, item in enumerate(value):
                self.value(item, f"{where}[{position}]", depth)
        elif isinstance(value, bytes | bytearray | memoryview):
            self.data(bytes(value), where, depth)
        elif isinstance(value, str):
            self.text(value, where, depth)

    def _mapping(self, part: Mapping[Any, Any], where: str, depth: int) -> None:
        steps = _content_codings(part)
        for key, item in part.items():
            inner = _where(where, str(key))
            body = item.get("string") if key == "body" and isinstance(item, Mapping) else item
            if steps and key in ("body", "content") and isinstance(body, bytes | bytearray):
                if body is not item:
                    inner = _where(inner, "string")
                try:
                    self.data(decode(bytes(body), steps), inner, depth)
                except UnreadableBody as exc:
                    self.unreadable.append((inner, str(exc)))
                self.data(bytes(body), inner, depth)
                continue
            self.text(str(key), inner, depth)
            self.value(item, inner, depth)
            if key == "headers" and isinstance(item, Mapping) and depth < _MAX_DEPTH:
                self.joined.extend((inner, joined) for joined in _joined_fragments(item))

    def data(self, raw: bytes, where: str, depth: int) -> None:
        for decoded in plausible_decodings(raw):
            for text in _as_texts(decoded):
                self.text(text, where, depth)

    def text(self, text: str, where: str, depth: int) -> None:
        if (where, text) in self._seen:
            return
        self._seen.add((where, text))
        self.texts.append((where, text))
        if depth >= _MAX_DEPTH or len(text) > _MAX_VIEW_CHARS:
            return
        deeper = depth + 1
        if "%" in text:  # URL-encoded: a query string, a form body
            self.text(unquote_plus(text), where, deeper)
        documents = _json_documents(text)
        for document in documents:
            try:
                self.value(document, where, deeper)
            except RecursionError:
                self.unreadable.append((where, "nested too deeply to read"))
        if not documents and looks_like_sse(text):
            self._stream(text, where, deeper)
        for match in BASIC_CREDENTIAL.finditer(text):
            pair = basic_credentials(match.group(1))
            if pair is not None:
                self.text(":".join(pair), where, deeper)
        for raw in _base64_payloads(text):
            try:  # text, most likely; compressed bytes are seldom UTF-8
                self.text(raw.decode("utf-8"), where, deeper)
            except UnicodeDecodeError:
                self.data(raw, where, deeper)

    def _stream(self, text: str, where: str, depth: int) -> None:
        """Each event's data, each field of the events joined across events, and the events'
        data joined."""
        events, _ = parse_sse(text)
        joined: dict[str, list[str]] = {}
        for event in events:
            # One event's data as a reader parses it: a key \u-escaped in one event is found.
            self.text(event.data, where, depth)
            joined.setdefault("", []).append(event.data)
            try:
                document = json.loads(event.data)
            except (ValueError, RecursionError):
                continue
            for path, piece in _leaves(document, ""):
                joined.setdefault(path, []).append(piece)
        for pieces in joined.values():
            if len(pieces) > 1:
                self.text("".join(pieces), where, depth)


def _joined_fragments(headers: Mapping[Any, Any]) -> Iterator[str]:
    """Every two header values that could be the halves of one key, joined in either order:
    a key split across two headers (``X-Key-A: sk-proj-…``, ``X-Key-B: …``) is a key."""
    fragments: list[str] = []
    for values in headers.values():
        for value in values if isinstance(values, list | tuple) else [values]:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if isinstance(text, str) and _FRAGMENT.fullmatch(text):
                fragments.append(text)
    fragments = list(dict.fromkeys(fragments))[:_MAX_FRAGMENTS]
    for first in fragments:
        for second in fragments:
            if first is not second:
                yield first + second


def _as_texts(raw: bytes) -> list[str]:
    """``raw`` as UTF-8 (errors replaced), and as the UTF-16 or UTF-32 ``json.loads`` would
    read it in (by its byte order mark, or by the zero bytes of its first characters)."""
    texts = [raw.decode("utf-8", "replace")]
    guess = json.detect_encoding(raw)
    if guess not in ("utf-8", "utf-8-sig"):
        texts.append(raw.decode(guess, "replace"))
    return texts


_JSON_START = ("{", "[", '"')
_BYTE_ORDER_MARK = "\ufeff"
#: Separators a reader skips between JSON documents (JSON text sequences start each with RS).
_BETWEEN_DOCUMENTS = " \t\r\n\x1e"


def _json_documents(text: str) -> list[Any]:
    """The JSON documents a reader could parse out of ``text``: the whole text, with or
    without a byte order mark (as ``json.loads`` of bytes and ``httpx``'s ``.json()`` read
    it); else each document of newline-delimited or concatenated JSON (NDJSON, JSON Lines,
    JSON text sequences). Parsing stops at the first line that is not JSON; the cost is
    linear in the text.
    """
    body = text.lstrip(_BETWEEN_DOCUMENTS + _BYTE_ORDER_MARK)
    if body[:1] not in _JSON_START:
        return []
    try:
        return [json.loads(body)]
    except (ValueError, RecursionError):
        pass
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    for line in body.split("\n"):
        position = 0
        while True:
            while position < len(line) and line[position] in _BETWEEN_DOCUMENTS:
                position += 1
            if position >= len(line) or line[position] not in _JSON_START:
                break
            try:
                document, position = decoder.raw_decode(line, position)
            except (ValueError, RecursionError):
                break
            documents.append(document)
    return documents


def _content_codings(part: Mapping[Any, Any]) -> tuple[str, ...]:
    headers = part.get("headers")
    if not isinstance(headers, Mapping):
        return ()
    for name, value in headers.items():
        if str(name).lower() == "content-encoding":
            values = value if isinstance(value, list | tuple) else [value]
            return codings([str(v) for v in values if v is not None])
    return ()


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """The strings of an event with their path; list items are keyed by their ``index``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            index = item.get("index") if isinstance(item, dict) else None
            key = index if isinstance(index, int) else position
            yield from _leaves(item, f"{path}[{key}]")
    elif isinstance(value, str):
        yield path, value


def _base64_payloads(text: str) -> Iterator[bytes]:
    """The bytes of each run of base64 or base64url in ``text`` (and of a wrapped block)."""
    # Base64 of anything mixes upper and lower case; names and hex ids do not.
    runs = [
        run
        for run in (match.group(0) for match in _BASE64_RUN.finditer(text))
        if not run.islower() and not run.isupper()
    ]
    stripped = text.strip()
    if "\n" in stripped and len(stripped) >= 16 and _BASE64_BLOCK.fullmatch(stripped):
        runs.append("".join(stripped.split()))
    for run in runs:
        body = run.rstrip("=")
        if len(body) % 4 == 1:
            body = body[:-1]
        padded = body + "=" * (-len(body) % 4)
        alphabet = padded.replace("-", "+").replace("_", "/")
        try:
            yield base64.b64decode(alphabet, validate=True)
        except (ValueError, binascii.Error):
            continue


def texts_of(value: Any) -> Iterator[tuple[str, str]]:
    """Every text inside a document, and every decoded view of it: ``(field path, text)``."""
    reading = _Reading()
    reading.value(value, "")
    yield from reading.texts


def find_secrets(document: Any, secrets: Secrets | None = None) -> list[tuple[str, str]]:
    """Where a document holds a secret, and what kind: ``[(field path, description)]``.

    ``secrets`` defaults to the environment's values. A body whose encoding cannot be read is
    reported too, since it cannot be shown to be clean. The secret itself is never part of the
    answer.
    """
    known = secrets if secrets is not None else Secrets.from_environment()
    forms: dict[str, str] = {}
    for value, what in known.longest_first():
        described = f"the value of {what}" if what.startswith("$") else f"the {what}"
        for form in encoded_forms(value):
            forms.setdefault(form, described)
    # One search a text for every written form of every value, the longest forms first.
    needles = (
        re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
        if forms
        else None
    )
    reading = _Reading()
    reading.value(document, "")
    found: list[tuple[str, str]] = [
        (where, f"a body the scan cannot read ({why})") for where, why in reading.unreadable
    ]
    for where, text in reading.texts:
        if needles is not None:
            for match in needles.finditer(text):
                found.append((where, forms[match.group(0)]))
        for pattern, description in KEY_PATTERNS:
            if pattern.search(text):
                found.append((where, description))
        for match in BASIC_CREDENTIAL.finditer(text):
            pair = basic_credentials(match.group(1))
            if pair is not None and REDACTED not in pair:
                found.append((where, "Basic credentials (user:password)"))
                break
    for where, text in reading.joined:
        found.extend((where, kind) for kind in _joined_secrets(text, needles, forms))
    return _outermost(found)


def _joined_secrets(
    text: str, needles: re.Pattern[str] | None, forms: Mapping[str, str]
) -> Iterator[str]:
    """What two header values joined hold that neither holds alone.

    A known value in any written form, in the joined text or in its base64; a key-shaped
    string only when the two values are its two halves (the whole text), since any value
    that ends in "sk-…" followed by any id would be one. Not read further: the views of every
    pair of values would cost far more than the values themselves.
    """
    views = [text, *(raw.decode("utf-8", "replace") for raw in _base64_payloads(text))]
    for number, view in enumerate(views):
        if needles is not None:
            for match in needles.finditer(view):
                yield forms[match.group(0)]
        for pattern, description in KEY_PATTERNS:
            if (pattern.search if number else pattern.fullmatch)(view):
                yield description


def _outermost(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each finding once, where it is stored: a view inside a body (its parsed JSON, its
    events) is not listed again beside the body."""
    kept: list[tuple[str, str]] = []
    for where, kind in dict.fromkeys(found):
        if not any(
            kind == other and (where == place or where.startswith((f"{place}.", f"{place}[")))
            for place, other in kept
        ):
            kept.append((where, kind))
    return kept
