"""Scrubbing secrets out of cassette files already on disk, keeping everything else as it was.

The rules are the recording rules (:mod:`pytest_chatresp.hygiene.policy`): the values of secret
request and response headers and of secret query parameters become ``REDACTED``, URL userinfo
is removed, and so is anything shaped like an OpenAI key and the value of any credential
environment variable, wherever it appears and in any written form, bodies decoded by their
``Content-Encoding``
(:mod:`pytest_chatresp.cassette.decoding`). A value found in a secret header, query
parameter or userinfo is also replaced wherever else it appears. The scrubbed document is then
scanned (:mod:`pytest_chatresp.hygiene.scan`): what the scan still finds is reported.

The file is never re-serialized: each value that changes is rewritten in place, in the text,
and only it (an encoded body is decoded, scrubbed and encoded again). The result is parsed
again and compared value by value with what was intended before anything is written; a file
that cannot be scrubbed safely is reported, not half-written. No message ever holds a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cassette.decoding import UnreadableBody, codings, decode, encode
from .errors import CassetteError, display_path, shorten
from .hygiene.policy import (
    DEFAULT_QUERY_PARAMETERS,
    DEFAULT_REQUEST_HEADERS,
    DEFAULT_RESPONSE_HEADERS,
    OPENAI_KEY,
    REDACTED,
    Secrets,
    encoded_forms,
    scrub_uri,
    secret_values,
)

__all__ = ["ScrubResult", "ScrubRules", "scrub_file", "scrub_text"]

_BINARY_TAG = "tag:yaml.org,2002:binary"
_NULL_TAG = "tag:yaml.org,2002:null"
_GZIP_MAGIC = b"\x1f\x8b"
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]+")
_NODE_PROPERTIES = re.compile(r"(?:[&!]\S*\s+)*")
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_Path = tuple[str | int, ...]


@dataclass(frozen=True)
class ScrubRules:
    """What is secret: header and query parameter names, and literal values (by what they are).

    Build it with :meth:`default`, which adds the recording defaults and the environment.
    """

    request_headers: frozenset[str]
    response_headers: frozenset[str]
    query_parameters: frozenset[str]
    #: ``(value, description)``, e.g. ``("…", "$MY_SERVICE_TOKEN")``; never shown, only described.
    values: tuple[tuple[str, str], ...] = ()

    @classmethod
    def default(
        cls,
        *,
        headers: Iterable[str] = (),
        query_parameters: Iterable[str] = (),
        environment: bool = True,
    ) -> ScrubRules:
        """The recording rules, plus ``headers`` (request and response) and query parameters."""
        extra = {name.strip().lower() for name in headers if name.strip()}
        values = (
            tuple((value, f"${name}") for name, value in sorted(secret_values().items()))
            if environment
            else ()
        )
        return cls(
            request_headers=frozenset({*DEFAULT_REQUEST_HEADERS, *extra}),
            response_headers=frozenset({*DEFAULT_RESPONSE_HEADERS, *extra}),
            query_parameters=frozenset(
                {
                    *DEFAULT_QUERY_PARAMETERS,
                    *(name.strip().lower() for name in query_parameters if name.strip()),
                }
            ),
            values=values,
        )


@dataclass(frozen=True)
class ScrubResult:
    """What scrubbing one file found: one description per value replaced, and the new text."""

    path: Path
    found: tuple[str, ...]
    text: str | None = None
    #: ``(field path, what)`` of the secrets the scan still finds once scrubbed (only with
    #: ``strict=False``; otherwise they raise)
    remaining: tuple[tuple[str, str], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.found)

    @property
    def shown(self) -> str:
        return display_path(self.path)

    def describe(self) -> str:
        """`3 values (request header authorization, …)`: a repeated kind gets its count."""
        counts: dict[str, int] = {}
        for description in self.found:
            counts[description] = counts.get(description, 0) + 1
        kinds = ", ".join(
            f"{description} x{count}" if count > 1 else description
            for description, count in counts.items()
        )
        total = len(self.found)
        return f"{total} value{'' if total == 1 else 's'} ({kinds})"


# --- scalars and where they are in the text -----------------------------------------------------


@dataclass(frozen=True)
class _Scalar:
    """A scalar of the document: its span in the text, its value, where it is, how it is written.

    ``style`` is the YAML style (``None`` plain, ``'`` ``"`` ``|`` ``>``) or ``json``.
    """

    start: int
    end: int
    value: str
    path: _Path
    style: str | None
    binary: bool = False
    null: bool = False
    #: a mapping key (or part of one), not a value
    key: bool = False


def _yaml_scalars(text: str, shown: str) -> list[_Scalar]:
    import yaml

    root: Any = None
    problem: Exception | None = None
    loaders: list[Any] = [getattr(yaml, "CSafeLoader", None), yaml.SafeLoader]
    for loader in loaders:
        if loader is None:
            continue
        try:
            root = yaml.compose(text, Loader=loader)
        except yaml.YAMLError as exc:
            problem = exc
            continue
        problem = None
        break
    if problem is not None:
        raise CassetteError.single(shown, "not valid YAML") from None

    out: list[_Scalar] = []
    seen: set[int] = set()

    def key_name(node: Any) -> str:
        # Header names may be stored as Python-tagged objects: the name is their first scalar.
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        if isinstance(node, yaml.SequenceNode):
            children: list[Any] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        for child in children:
            name = key_name(child)
            if name:
                return name
        return ""

    def walk(node: Any, path: _Path, key: bool = False) -> None:
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            out.append(
                _Scalar(
                    node.start_mark.index,
                    node.end_mark.index,
                    str(node.value),
                    path,
                    node.style,
                    binary=node.tag == _BINARY_TAG,
                    null=node.tag == _NULL_TAG,
                    key=key,
                )
            )
        elif isinstance(node, yaml.SequenceNode):
            for position, child in enumerate(node.value):
                walk(child, (*path, position), key)
        elif isinstance(node, yaml.MappingNode):
            for name_node, value in node.value:
                name = key_name(name_node)
                walk(name_node, (*path, name), True)
                walk(value, (*path, name), key)

    walk(root, ())
    return out


def _json_scalars(text: str, shown: str) -> list[_Scalar]:
    """The strings of a JSON document with their spans (a small parser that keeps positions)."""
    decoder = json.JSONDecoder()
    out: list[_Scalar] = []

    def skip(i: int) -> int:
        match = _JSON_SPACE.match(text, i)
        return match.end() if match else i

    def string(i: int) -> tuple[str, int]:
        if text[i : i + 1] != '"':
            raise ValueError(f"expected a string at {i}")
        value, end = decoder.raw_decode(text, i)
        return str(value), end

    def parse(i: int, path: _Path) -> int:
        i = skip(i)
        char = text[i : i + 1]
        if char == '"':
            value, end = string(i)
            out.append(_Scalar(i, end, value, path, "json"))
            return end
        if char in ("{", "["):
            closing = "}" if char == "{" else "]"
            i = skip(i + 1)
            if text[i : i + 1] == closing:
                return i + 1
            position = 0
            while True:
                if char == "{":
                    start = skip(i)
                    key, i = string(start)
                    out.append(_Scalar(start, i, key, (*path, key), "json", key=True))
                    i = skip(i)
                    if text[i : i + 1] != ":":
                        raise ValueError(f"expected ':' at {i}")
                    i = parse(i + 1, (*path, key))
                else:
                    i = parse(i, (*path, position))
                    position += 1
                i = skip(i)
                following = text[i : i + 1]
                if following == ",":
                    i += 1
                    continue
                if following == closing:
                    return i + 1
                raise ValueError(f"expected ',' or {closing!r} at {i}")
        _, end = decoder.raw_decode(text, i)
        return int(end)

    try:
        end = skip(parse(0, ()))
    except (ValueError, IndexError):
        raise CassetteError.single(shown, "not valid JSON") from None
    if end != len(text):
        raise CassetteError.single(shown, "not valid JSON: extra data after the document")
    return out


def _is_json(text: str) -> bool:
    """Whether the reader takes the text for JSON (see ``cassette.read_document``)."""
    if not text.lstrip().startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


# --- what changes -------------------------------------------------------------------------------


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(path: _Path) -> str:
    """Where a value is, in words: ``request header authorization``, ``response body``."""
    if (
        len(path) >= 3
        and path[0] == "interactions"
        and isinstance(path[1], int)
        and path[2] in ("request", "response")
    ):
        part, rest = str(path[2]), path[3:]
        if not rest:
            return part
        if rest[0] in ("body", "parsed_body", "content"):
            return f"{part} body"
        if rest[0] == "headers" and len(rest) >= 2:
            return f"{part} header {rest[1]}"
        if rest[0] == "uri":
            return "request uri"
        return f"{part} {_dotted(rest)}"
    return _dotted(path) or "the document"


def _secret_header(path: _Path, rules: ScrubRules) -> str | None:
    """``request header authorization`` when the path is a secret header's value."""
    if len(path) < 5 or path[0] != "interactions" or path[3] != "headers":
        return None
    names = {"request": rules.request_headers, "response": rules.response_headers}.get(str(path[2]))
    name = str(path[4]).lower()
    if names is None or name not in names:
        return None
    return f"{path[2]} header {name}"


def _is_uri(path: _Path) -> bool:
    return len(path) == 4 and path[0] == "interactions" and path[2:] == ("request", "uri")


@dataclass
class _Scrubber:
    """The value-level rules, applied to strings and encoded payloads."""

    redacted: str
    key_pattern: re.Pattern[str]
    #: ``(value, description)``, longest first
    values: list[tuple[str, str]] = field(default_factory=list)

    def text(self, text: str, where: str) -> tuple[str, list[str], list[str]]:
        """``text`` scrubbed, a description per value replaced, and the strings replaced.

        A known value is replaced in each of its written forms (URL-encoded, base64, …).
        """
        found: list[str] = []
        replaced: list[str] = []
        for value, what in self.values:
            for form in encoded_forms(value):
                count = text.count(form)
                if count:
                    text = text.replace(form, self.redacted)
                    found.extend([f"{what} in {where}"] * count)
                    replaced.append(form)

        def key(match: re.Match[str]) -> str:
            found.append(f"sk- key in {where}")
            replaced.append(match.group(0))
            return self.redacted

        text = self.key_pattern.sub(key, text)
        return text, found, replaced

    def clean(self, text: str) -> str:
        """``text`` with every secret replaced: for what is shown, and to compare paths."""
        return self.text(text, "")[0]

    def payload(
        self, raw: bytes, where: str, steps: tuple[str, ...]
    ) -> tuple[bytes, bytes, list[str]] | None:
        """An encoded body scrubbed: ``(new encoded bytes, new decoded bytes, found)``."""
        try:
            data = decode(raw, steps)
        except UnreadableBody:
            return None  # the last scan says the file cannot be shown to be clean
        new_text, found, _ = self.text(data.decode("utf-8", "surrogateescape"), where)
        if not found:
            return None
        new = new_text.encode("utf-8", "surrogateescape")
        try:
            encoded = encode(new, steps) if data != raw else new
        except UnreadableBody:
            return None
        return encoded, new, found


def _steps(raw: bytes, header: tuple[str, ...]) -> tuple[str, ...]:
    """The codings to undo for a stored body: its header's, else what its bytes say."""
    if header:
        return header
    if raw.startswith(_GZIP_MAGIC):
        return ("gzip",)
    if raw[:1] == b"\x78":
        try:
            decode(raw, ("deflate",))
        except UnreadableBody:
            return ()
        return ("deflate",)
    return ()


def _base64_bytes(text: str, *, loose: bool) -> bytes | None:
    """The bytes of base64 text; with ``loose``, only text the leak scan would decode too."""
    stripped = text.strip()
    if loose and (len(stripped) < 16 or len(stripped) % 4 or not _BASE64_TEXT.fullmatch(stripped)):
        return None
    try:
        return base64.b64decode("".join(stripped.split()), validate=not loose)
    except (ValueError, binascii.Error):
        return None


def _decoded_payload(text: str, steps: tuple[str, ...]) -> bytes | None:
    """What a base64 body holds, decoded: the value to compare after scrubbing."""
    raw = _base64_bytes(text, loose=False)
    if raw is None:
        return None
    try:
        return decode(raw, _steps(raw, steps))
    except UnreadableBody:
        return None


@dataclass(frozen=True)
class _Change:
    scalar: _Scalar
    value: str
    #: ``(old, new)`` substrings of the value to rewrite in the text, in order
    pairs: tuple[tuple[str, str], ...]
    found: tuple[str, ...]
    #: for an encoded body, what it must decode to afterwards, and its codings
    payload: bytes | None = None
    steps: tuple[str, ...] = ()


def _body_codings(scalars: list[_Scalar]) -> dict[tuple[int, str], tuple[str, ...]]:
    """The ``Content-Encoding`` of each request and response: ``{(index, side): codings}``."""
    found: dict[tuple[int, str], list[str]] = {}
    for scalar in scalars:
        path = scalar.path
        if (
            not scalar.key
            and len(path) >= 5
            and path[0] == "interactions"
            and isinstance(path[1], int)
            and path[3] == "headers"
            and str(path[4]).lower() == "content-encoding"
        ):
            found.setdefault((path[1], str(path[2])), []).append(scalar.value)
    return {where: codings(values) for where, values in found.items()}


def _codings_at(path: _Path, encodings: dict[tuple[int, str], tuple[str, ...]]) -> tuple[str, ...]:
    if len(path) >= 4 and path[0] == "interactions" and path[3] in ("body", "content"):
        index = path[1]
        if isinstance(index, int):
            return encodings.get((index, str(path[2])), ())
    return ()


def _plan(scalars: list[_Scalar], rules: ScrubRules) -> tuple[list[_Change], _Scrubber]:
    changes: dict[int, _Change] = {}
    learned = Secrets()
    # First the secret headers, query parameters and userinfo: their values become REDACTED
    # whole, and are then looked for everywhere else.
    for position, scalar in enumerate(scalars):
        if scalar.binary or scalar.key:
            continue
        header = _secret_header(scalar.path, rules)
        if header is not None:
            if scalar.value and scalar.value != REDACTED and not scalar.null:
                learned.learn(scalar.value, f"value of {header}")
                changes[position] = _Change(
                    scalar, REDACTED, ((scalar.value, REDACTED),), (header,)
                )
            continue
        if _is_uri(scalar.path):
            uri, parts = scrub_uri(scalar.value, rules.query_parameters)
            if parts:
                for what, value in parts:
                    learned.learn(value, f"value of {what}")
                kinds = tuple(dict.fromkeys(what for what, _ in parts))
                changes[position] = _Change(scalar, uri, ((scalar.value, uri),), kinds)
    values = {value: what for value, what in rules.values if value and value != REDACTED}
    for value, what in learned.learned.items():
        values.setdefault(value, what)
    scrubber = _Scrubber(
        REDACTED,
        OPENAI_KEY,
        sorted(values.items(), key=lambda item: (-len(item[0]), item[0])),
    )
    encodings = _body_codings(scalars)
    # Then everything else: literal secrets and key-shaped strings, in text and encoded bodies.
    for position, scalar in enumerate(scalars):
        previous = changes.get(position)
        if previous is not None and (scalar.key or not _is_uri(scalar.path)):
            continue
        change = _scrubbed(scalar, previous, scrubber, _codings_at(scalar.path, encodings))
        if change is not None:
            changes[position] = change
    return [changes[position] for position in sorted(changes)], scrubber


def _scrubbed(
    scalar: _Scalar, previous: _Change | None, scrubber: _Scrubber, header: tuple[str, ...]
) -> _Change | None:
    """The change the literal and key-shaped secrets of one scalar call for, if any."""
    # What is shown never holds a secret, even one in a mapping key on the way.
    where = shorten(scrubber.clean(_where(scalar.path) + (" (a key)" if scalar.key else "")), 80)
    redacted = scrubber.redacted
    if previous is not None:
        text, found, _ = scrubber.text(previous.value, where)
        if not found:
            return None
        return _Change(scalar, text, ((scalar.value, text),), (*previous.found, *found))
    if scalar.binary:
        raw = _base64_bytes(scalar.value, loose=False)
        steps = _steps(raw, header) if raw is not None else ()
        result = scrubber.payload(raw, where, steps) if raw is not None else None
        if result is not None:
            encoded, decoded, found = result
            new = base64.b64encode(encoded).decode("ascii")
            return _Change(scalar, new, (), tuple(found), decoded, steps)
        # Base64 that does not decode may still hold a secret in its text: scrub that below.
    text, found, replaced = scrubber.text(scalar.value, where)
    if found:
        pairs = tuple((old, redacted) for old in dict.fromkeys(replaced))
        return _Change(scalar, text, pairs, tuple(found))
    if scalar.binary:
        return None
    raw = _base64_bytes(scalar.value, loose=True)
    result = scrubber.payload(raw, where, _steps(raw, ())) if raw is not None else None
    if result is None:
        return None
    encoded, _, found = result
    new = base64.b64encode(encoded).decode("ascii")
    return _Change(scalar, new, ((scalar.value, new),), tuple(found))


# --- rewriting the text -------------------------------------------------------------------------


def _representations(value: str, style: str | None) -> list[str]:
    """How ``value`` may be written inside a scalar of this style (the likeliest first)."""
    if style == "json":
        forms = [json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]
    elif style == "'":
        forms = [value.replace("'", "''")]
    elif style == '"':
        forms = [
            json.dumps(value, ensure_ascii=False)[1:-1],
            json.dumps(value)[1:-1],
            value,
        ]
    else:
        forms = [value]
    return list(dict.fromkeys(forms))


def _in_place(span: str, change: _Change) -> str | None:
    """The span with each secret's written form replaced; ``None`` when one is not found."""
    style = change.scalar.style
    for old, new in change.pairs:
        replacement = _representations(new, style)[0]
        for form in _representations(old, style):
            # A line break folds into a space in plain and quoted scalars.
            pattern = re.escape(form).replace(r"\ ", r"\s+")
            span, count = re.subn(pattern, replacement.replace("\\", "\\\\"), span)
            if count:
                break
        else:
            return None
    return span


def _rewrapped_binary(span: str, change: _Change) -> str | None:
    """A ``!!binary |`` block with new base64 lines, its header, indentation and width kept."""
    match = re.fullmatch(
        r"(?P<head>[^\n]*\|[^\n]*\n)(?P<indent>[ \t]*)(?P<body>\S.*?)(?P<tail>\s*)",
        span,
        re.DOTALL,
    )
    if match is None:
        return None
    body = match["body"]
    first = body.split("\n", 1)[0].rstrip("\r")
    width = max(len(first), 4)
    eol = "\r\n" if "\r\n" in span else "\n"
    lines = [change.value[i : i + width] for i in range(0, len(change.value), width)]
    indent = match["indent"]
    return match["head"] + indent + (eol + indent).join(lines) + match["tail"]


def _emitted(span: str, change: _Change) -> str:
    """The whole scalar written again: its anchor and tag kept, the value double-quoted."""
    import yaml

    scalar = change.scalar
    if scalar.style == "json":
        return json.dumps(change.value)
    properties = _NODE_PROPERTIES.match(span)
    prefix = properties.group(0) if properties else ""
    quoted = yaml.safe_dump(
        change.value, default_style='"', width=2**31 - 1, allow_unicode=True
    ).rstrip("\n")
    tail = re.search(r"\s*$", span)
    keep = tail.group(0) if tail and scalar.style in ("|", ">") else ""
    return prefix + quoted + keep


def _render(text: str, changes: list[_Change], rewrite: Callable[[str, _Change], str]) -> str:
    parts: list[str] = []
    position = 0
    for change in sorted(changes, key=lambda c: c.scalar.start):
        scalar = change.scalar
        parts.append(text[position : scalar.start])
        parts.append(rewrite(text[scalar.start : scalar.end], change))
        position = scalar.end
    parts.append(text[position:])
    return "".join(parts)


def _targeted(span: str, change: _Change) -> str:
    if change.payload is not None:
        if change.scalar.style == "|":
            rewrapped = _rewrapped_binary(span, change)
            if rewrapped is not None:
                return rewrapped
        return _emitted(span, change)
    rewritten = _in_place(span, change)
    return _emitted(span, change) if rewritten is None else rewritten


def _verified(
    text: str,
    scalars: Callable[[str], list[_Scalar]],
    before: list[_Scalar],
    changes: list[_Change],
    clean: Callable[[str], str],
) -> bool:
    """Whether the new text holds exactly the intended values, and nothing else changed.

    Paths are compared with their secrets replaced, since a secret in a key is replaced too.
    """

    def cleaned(path: _Path) -> _Path:
        return tuple(clean(part) if isinstance(part, str) else part for part in path)

    try:
        after = scalars(text)
    except CassetteError:
        return False
    if len(after) != len(before):
        return False
    changed = {(c.scalar.start, c.scalar.end): c for c in changes}
    for old, new in zip(before, after, strict=True):
        if (old.binary, old.key) != (new.binary, new.key):
            return False
        if old.path != new.path and cleaned(old.path) != cleaned(new.path):
            return False
        change = changed.get((old.start, old.end))
        if change is None:
            if new.value != old.value:
                return False
        elif change.payload is not None:
            if _decoded_payload(new.value, change.steps) != change.payload:
                return False
        elif new.value != change.value:
            return False
    return True


def scrub_text(
    text: str, rules: ScrubRules, *, shown: str = "<text>", as_json: bool | None = None
) -> tuple[str, list[str]]:
    """``text`` (a cassette file's text) scrubbed, and a description per value replaced.

    Raises :class:`CassetteError` when the text cannot be read, or cannot be rewritten so that
    only the secrets change.
    """
    new, found, _ = _scrub_text(text, rules, shown, as_json)
    return new, found


def _scrub_text(
    text: str, rules: ScrubRules, shown: str, as_json: bool | None
) -> tuple[str, list[str], Secrets]:
    """:func:`scrub_text`, and every secret value known afterwards (to scan the result)."""
    if as_json is None:
        as_json = _is_json(text)

    def scalars(source: str) -> list[_Scalar]:
        return _json_scalars(source, shown) if as_json else _yaml_scalars(source, shown)

    before = scalars(text)
    changes, scrubber = _plan(before, rules)
    known = Secrets(dict(scrubber.values))
    if not changes:
        return text, [], known
    found = [description for change in changes for description in change.found]
    for rewrite in (_targeted, _emitted):
        new = _render(text, changes, rewrite)
        if _verified(new, scalars, before, changes, scrubber.clean):
            return new, found, known
    raise CassetteError.single(
        shown, "cannot scrub: the secrets could not be rewritten without changing anything else"
    )


def _digest_updates(before: Any, after: Any) -> dict[str, str]:
    """``{old digest: new digest}`` of the requests scrubbing changed (their URI or body).

    The plugin's provenance metadata identifies each request by a digest of its method, URI
    and body (``metadata.chatresp.exchanges[].request``); a scrubbed request gets its new one.
    """
    from .provenance import request_digest

    def digest(request: Any) -> str | None:
        if not isinstance(request, dict):
            return None
        method, uri, body = request.get("method"), request.get("uri"), request.get("body")
        return request_digest(str(method or ""), str(uri or ""), body)

    old = before.get("interactions") if isinstance(before, dict) else None
    new = after.get("interactions") if isinstance(after, dict) else None
    if not isinstance(old, list) or not isinstance(new, list):
        return {}
    updates: dict[str, str] = {}
    for old_interaction, new_interaction in zip(old, new, strict=False):
        if not isinstance(old_interaction, dict) or not isinstance(new_interaction, dict):
            continue
        was, now = digest(old_interaction.get("request")), digest(new_interaction.get("request"))
        if was is not None and now is not None and was != now:
            updates[was] = now
    return updates


def _with_digests(text: str, digests: dict[str, str], shown: str) -> str:
    """The text with the provenance digests of scrubbed requests replaced by their new ones."""
    as_json = _is_json(text)

    def scalars(source: str) -> list[_Scalar]:
        return _json_scalars(source, shown) if as_json else _yaml_scalars(source, shown)

    before = scalars(text)
    changes = [
        _Change(scalar, digests[scalar.value], ((scalar.value, digests[scalar.value]),), ())
        for scalar in before
        if not scalar.key
        and len(scalar.path) == 5
        and scalar.path[:3] == ("metadata", "chatresp", "exchanges")
        and scalar.path[4] == "request"
        and scalar.value in digests
    ]
    if not changes:
        return text
    for rewrite in (_targeted, _emitted):
        new = _render(text, changes, rewrite)
        if _verified(new, scalars, before, changes, str):
            return new
    return text  # a stale digest only costs the provenance of the next recording


def _cleaner(rules: ScrubRules) -> Callable[[str], str]:
    """Replaces the secrets the rules know of (not those learned from a file) in any text."""
    values = sorted({value for value, _ in rules.values}, key=lambda v: (-len(v), v))
    return _Scrubber(REDACTED, OPENAI_KEY, [(value, "") for value in values]).clean


# --- files --------------------------------------------------------------------------------------


def _interaction_count(document: Any, shown: str) -> int:
    from .cassette import interactions_of

    return len(interactions_of(document, shown))


def scrub_file(path: str | Path, rules: ScrubRules, *, strict: bool = True) -> ScrubResult:
    """Scrub one cassette file's text; the caller writes :attr:`ScrubResult.text` if it wants.

    Raises :class:`CassetteError` when the file is not a readable cassette, or when the result
    would not read as the same cassette with the secrets gone. The scrubbed document is scanned
    (:func:`~pytest_chatresp.hygiene.scan.find_secrets`): a secret that cannot be replaced
    (a key split across stream events, one inside an encoded string) raises too, or with
    ``strict=False`` is listed in :attr:`ScrubResult.remaining`.
    """
    from .cassette import read_cassette_bytes, read_document
    from .hygiene.scan import find_secrets

    path = Path(path)
    shown = display_path(path)
    data = read_cassette_bytes(path)
    document = read_document(path, data)
    count = _interaction_count(document, shown)
    text = data.decode("utf-8")
    try:
        new, found, known = _scrub_text(text, rules, shown, None)
    except RecursionError:
        raise CassetteError.single(shown, "cannot scrub: nested too deeply") from None
    if not found:
        left = find_secrets(document, known)
        if left and strict:
            raise _remaining(shown, left, rules)
        return ScrubResult(path, (), remaining=_cleaned(left, rules))
    try:
        new_document = read_document(path, new.encode("utf-8", "surrogatepass"))
        same = _interaction_count(new_document, shown) == count
    except CassetteError:
        same = False
    if not same:
        raise CassetteError.single(
            shown, "cannot scrub: the scrubbed file would not read as the same cassette"
        )
    digests = _digest_updates(document, new_document)
    if digests:
        new = _with_digests(new, digests, shown)
    left = find_secrets(new_document, known)
    if left and strict:
        raise _remaining(shown, left, rules)
    return ScrubResult(path, tuple(found), new, _cleaned(left, rules))


def _cleaned(left: list[tuple[str, str]], rules: ScrubRules) -> tuple[tuple[str, str], ...]:
    clean = _cleaner(rules)
    return tuple((shorten(clean(where), 80), kind) for where, kind in left)


def _remaining(shown: str, left: list[tuple[str, str]], rules: ScrubRules) -> CassetteError:
    """The error for a file the scan still finds a secret in, after what can be replaced is."""
    kinds = sorted({f"{kind} in {where}" for where, kind in _cleaned(left, rules)})
    return CassetteError.single(
        shown,
        "cannot scrub: a secret would remain ("
        + "; ".join(kinds)
        + "); remove it by hand and record again",
    )
