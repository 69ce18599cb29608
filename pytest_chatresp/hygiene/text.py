"""A cassette file's text: where each of its values is, and rewriting values in place.

:func:`yaml_scalars` and :func:`json_scalars` find every scalar of the text with its span, its
field path and how it is written; :func:`render` writes changed values back into the text,
touching nothing else, and :func:`verified` proves it by reading the result again.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_chatresp.cassette.decoding import UnreadableBody, decode
from pytest_chatresp.errors import CassetteError

__all__ = [
    "Change",
    "FieldPath",
    "Scalar",
    "base64_bytes",
    "decoded_payload",
    "emitted",
    "is_json",
    "json_scalars",
    "render",
    "stored_codings",
    "targeted",
    "verified",
    "yaml_scalars",
]

_BINARY_TAG = "tag:yaml.org,2002:binary"
_NULL_TAG = "tag:yaml.org,2002:null"
_GZIP_MAGIC = b"\x1f\x8b"
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]+")
_NODE_PROPERTIES = re.compile(r"(?:[&!]\S*\s+)*")
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
FieldPath = tuple[str | int, ...]


# --- scalars and where they are in the text -----------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    """A scalar of the document: its span in the text, its value, where it is, how it is written.

    ``style`` is the YAML style (``None`` plain, ``'`` ``"`` ``|`` ``>``) or ``json``.
    """

    start: int
    end: int
    value: str
    path: FieldPath
    style: str | None
    binary: bool = False
    null: bool = False
    #: a mapping key (or part of one), not a value
    key: bool = False


def yaml_scalars(text: str, shown: str) -> list[Scalar]:
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

    out: list[Scalar] = []
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

    def walk(node: Any, path: FieldPath, key: bool = False) -> None:
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            out.append(
                Scalar(
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


def json_scalars(text: str, shown: str) -> list[Scalar]:
    """The strings of a JSON document with their spans (a small parser that keeps positions)."""
    decoder = json.JSONDecoder()
    out: list[Scalar] = []

    def skip(i: int) -> int:
        match = _JSON_SPACE.match(text, i)
        return match.end() if match else i

    def string(i: int) -> tuple[str, int]:
        if text[i : i + 1] != '"':
            raise ValueError(f"expected a string at {i}")
        value, end = decoder.raw_decode(text, i)
        return str(value), end

    def parse(i: int, path: FieldPath) -> int:
        i = skip(i)
        char = text[i : i + 1]
        if char == '"':
            value, end = string(i)
            out.append(Scalar(i, end, value, path, "json"))
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
                    out.append(Scalar(start, i, key, (*path, key), "json", key=True))
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


def is_json(text: str) -> bool:
    """Whether the reader takes the text for JSON (see ``cassette.read_document``)."""
    if not text.lstrip().startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def stored_codings(raw: bytes, header: tuple[str, ...]) -> tuple[str, ...]:
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


def base64_bytes(text: str, *, loose: bool) -> bytes | None:
    """The bytes of base64 text; with ``loose``, only text the leak scan would decode too."""
    stripped = text.strip()
    if loose and (len(stripped) < 16 or len(stripped) % 4 or not _BASE64_TEXT.fullmatch(stripped)):
        return None
    try:
        return base64.b64decode("".join(stripped.split()), validate=not loose)
    except (ValueError, binascii.Error):
        return None


def decoded_payload(text: str, steps: tuple[str, ...]) -> bytes | None:
    """What a base64 body holds, decoded: the value to compare after scrubbing."""
    raw = base64_bytes(text, loose=False)
    if raw is None:
        return None
    try:
        return decode(raw, stored_codings(raw, steps))
    except UnreadableBody:
        return None


@dataclass(frozen=True)
class Change:
    scalar: Scalar
    value: str
    #: ``(old, new)`` substrings of the value to rewrite in the text, in order
    pairs: tuple[tuple[str, str], ...]
    found: tuple[str, ...]
    #: for an encoded body, what it must decode to afterwards, and its codings
    payload: bytes | None = None
    steps: tuple[str, ...] = ()


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


def _in_place(span: str, change: Change) -> str | None:
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


def _rewrapped_binary(span: str, change: Change) -> str | None:
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


def emitted(span: str, change: Change) -> str:
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


def render(text: str, changes: list[Change], rewrite: Callable[[str, Change], str]) -> str:
    parts: list[str] = []
    position = 0
    for change in sorted(changes, key=lambda c: c.scalar.start):
        scalar = change.scalar
        parts.append(text[position : scalar.start])
        parts.append(rewrite(text[scalar.start : scalar.end], change))
        position = scalar.end
    parts.append(text[position:])
    return "".join(parts)


def targeted(span: str, change: Change) -> str:
    if change.payload is not None:
        if change.scalar.style == "|":
            rewrapped = _rewrapped_binary(span, change)
            if rewrapped is not None:
                return rewrapped
        return emitted(span, change)
    rewritten = _in_place(span, change)
    return emitted(span, change) if rewritten is None else rewritten


def verified(
    text: str,
    scalars: Callable[[str], list[Scalar]],
    before: list[Scalar],
    changes: list[Change],
    clean: Callable[[str], str],
) -> bool:
    """Whether the new text holds exactly the intended values, and nothing else changed.

    Paths are compared with their secrets replaced, since a secret in a key is replaced too.
    """

    def cleaned(path: FieldPath) -> FieldPath:
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
            if decoded_payload(new.value, change.steps) != change.payload:
                return False
        elif new.value != change.value:
            return False
    return True
