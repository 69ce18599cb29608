"""Shape snapshots: a small, readable shape file beside a cassette.

A shape file describes the shape of a test's chat completions: the model (without its date
suffix), the service tier, the number of choices, each choice's finish reason, tool call names
and argument keys, whether content is text or JSON (and then its top-level keys), and whether
usage is present. When a cassette is re-recorded, a changed shape fails the comparison with a
diff that says what changed, until the shape file is updated on purpose.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .errors import display_path

__all__ = ["SHAPE_SUFFIX", "ShapeSnapshot", "diff_shapes", "shape_of", "shape_path"]

SHAPE_SUFFIX = ".shape.yaml"
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")
_HEADER = (
    "# The shape of the chat completions of {cassette}.\n"
    "# Written by pytest-chatresp; change it with --chatresp-update-shapes, never by hand.\n"
)


def shape_path(cassette: Path) -> Path:
    """``cassettes/t/x.yaml`` → ``cassettes/t/x.shape.yaml``."""
    name = cassette.name
    for suffix in (".yaml", ".yml", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return cassette.with_name(name + SHAPE_SUFFIX)


def _content_shape(content: str | None) -> Any:
    if content is None:
        return None
    try:
        value = json.loads(content)
    except ValueError:
        return "text"
    if isinstance(value, dict):
        return {"json": sorted(value)}
    return f"json {type(value).__name__}"


def shape_of(completion: Any) -> dict[str, Any]:
    """The shape entry of one completion."""
    choices = []
    for choice in completion.choices:
        message = choice.message
        calls = []
        for call in message.tool_calls or []:
            if call.type == "function":
                try:
                    arguments = json.loads(call.function.arguments)
                except ValueError:
                    arguments = None
                keys = sorted(arguments) if isinstance(arguments, dict) else "not a JSON object"
                calls.append({"name": call.function.name, "arguments": keys})
            else:
                calls.append({"name": call.custom.name, "custom": True})
        entry: dict[str, Any] = {
            "finish_reason": choice.finish_reason,
            "content": _content_shape(message.content),
        }
        if calls:
            entry["tool_calls"] = calls
        if message.refusal is not None:
            entry["refusal"] = True
        choices.append(entry)
    return {
        "model": _DATE_SUFFIX.sub("", completion.model),
        "service_tier": completion.service_tier,
        "choices": choices,
        "usage": completion.usage is not None,
    }


def _walk(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        if not value:
            out[prefix] = {}
        for key, item in value.items():
            _walk(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for position, item in enumerate(value):
            _walk(item, f"{prefix}[{position}]", out)
    else:
        out[prefix] = value


def diff_shapes(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """What changed, one line per field: ``choices[0].tool_calls[0].name: 'a' → 'b'``."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _walk(expected, "", before)
    _walk(actual, "", after)
    lines = []
    for key in sorted(before.keys() | after.keys()):
        if key not in after:
            lines.append(f"{key}: {before[key]!r} disappeared")
        elif key not in before:
            lines.append(f"{key}: {after[key]!r} appeared")
        elif before[key] != after[key]:
            lines.append(f"{key}: {before[key]!r} → {after[key]!r}")
    return lines


def _load(path: Path) -> list[dict[str, Any]] | None:
    """The stored entries; raises ``CassetteError`` for a file that cannot be read as YAML."""
    from .cassette import read_cassette_bytes, read_document

    if not os.path.lexists(path):
        return None
    data = read_cassette_bytes(path)  # as safe as a cassette: no FIFO, device or YAML bomb
    document = read_document(path, data) if data.strip() else None
    if not isinstance(document, list):
        return None
    return [entry if isinstance(entry, dict) else {} for entry in document]


def _dump(entries: list[dict[str, Any]], cassette: str) -> str:
    import yaml

    body = yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, default_flow_style=None)
    return _HEADER.format(cassette=cassette) + body


class ShapeSnapshot:
    """Compares completions with the shape file, in order: ``assert chat_shape == c``.

    ``may_write`` lets a missing shape file (or a missing entry) be written; ``update`` rewrites
    entries that differ. Nothing is written until :meth:`save`.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, cassette: Path, *, may_write: bool, update: bool, remedy: str) -> None:
        self.cassette = cassette
        self.path = shape_path(cassette)
        self.may_write = may_write
        self.update = update
        self.remedy = remedy
        stored = _load(self.path)
        self._stored = stored
        self._entries: list[dict[str, Any]] = list(stored or [])
        self._position = 0
        self._dirty = False
        self.explanation: list[str] = []

    def __repr__(self) -> str:
        return f"<chat shape {display_path(self.path)}>"

    def __eq__(self, other: object) -> bool:
        from .assertions import _completion

        try:
            shape = shape_of(_completion(other))
        except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            self.explanation = [f"not a chat completion: {str(exc).splitlines()[0]}"]
            return False
        position = self._position
        self._position += 1
        shown = display_path(self.path)
        if position >= len(self._entries):
            if self.may_write or self.update:
                self._entries.append(shape)
                self._dirty = True
                return True
            what = "no shape file" if self._stored is None else f"no entry {position}"
            self.explanation = [
                f"{shown}: {what} for this completion.",
                f"Write it with: {self.remedy}",
            ]
            return False
        expected = self._entries[position]
        if expected == shape:
            return True
        if self.update:
            self._entries[position] = shape
            self._dirty = True
            return True
        self.explanation = [
            f"the shape of completion {position} differs from {shown}:",
            *(f"  {line}" for line in diff_shapes(expected, shape)),
            f"If the change is intended, update the shape file with: {self.remedy}",
        ]
        return False

    @property
    def written(self) -> bool:
        return self._dirty

    def save(self) -> bool:
        """Write the shape file if it changed; says whether it did."""
        if not self._dirty:
            return False
        from .files import write_atomically

        write_atomically(self.path, _dump(self._entries, display_path(self.cassette)))
        self._dirty = False
        return True
