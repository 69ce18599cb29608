"""The plugin's exception and the one place where violation text is assembled."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "CassetteAgeWarning",
    "CassetteError",
    "Violation",
    "display_path",
    "printable",
    "record_command",
    "shorten",
    "violations_from",
]

_MAX_VALUE = 60


def record_command(mode: str, test: str) -> str:
    """The one way a command that records a test is printed: ``pytest
    --chatresp-record-mode=MODE NODEID``, the node id shell-quoted when it needs it (brackets,
    spaces), so that it can be pasted into bash or zsh as it is."""
    import shlex

    return f"pytest --chatresp-record-mode={mode} {shlex.quote(test)}"


def display_path(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """The one way a path is shown in a message: relative to the project's rootdir when below
    it, else as given. ``root`` defaults to the rootdir pytest would choose from the working
    directory (the directory of its ini file, else the working directory).

    A symbolic link is shown as itself, not as the file it points to.
    """
    text = os.fspath(path)
    try:
        return _relative_to(text, os.fspath(root) if root is not None else _rootdir(os.getcwd()))
    except OSError:
        return text


@functools.lru_cache(maxsize=64)
def _rootdir(cwd: str) -> str:
    from .inifile import UnreadableConfig, find_pytest_config

    try:
        found = find_pytest_config(Path(cwd)).rootdir
    except UnreadableConfig:
        return cwd
    return cwd if found is None else str(found)


@functools.lru_cache(maxsize=4096)
def _relative_to(text: str, cwd: str) -> str:
    given = Path(text)
    try:
        shown = (
            _resolved(text)
            if given.name in ("", ".", "..")
            else _resolved(str(given.parent)) / given.name
        )
        return shown.relative_to(_resolved(cwd)).as_posix()
    except (ValueError, OSError):
        return text


@functools.lru_cache(maxsize=1024)
def _resolved(directory: str) -> Path:
    """A directory resolved once: the cassettes of a test module share theirs."""
    return Path(directory).resolve()


#: What a terminal may act on rather than show: C0 controls but newline and tab, DEL, C1
#: controls (ESC sequences, OSC 52 clipboard writes, BEL, CSI ...), and the Unicode controls
#: that reorder text as it is shown (bidirectional overrides and isolates).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every terminal control character written as an escape (``\\u001b``).

    Everything the package prints or puts in a failure message passes through here, so that a
    recorded response cannot retitle a terminal, write to its clipboard or hide a line. The
    escapes are also JSON's, so JSON output stays valid.
    """
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def shorten(text: str, limit: int = _MAX_VALUE) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show_value(value: Any, limit: int = _MAX_VALUE) -> str:
    """A value as it appears in a message: JSON-ish repr, shortened.

    The repr of lists, dicts, tuples and sets is built piece by piece and stops once past
    ``limit``, so a value nested too deeply, one that YAML aliases make huge (a "billion
    laughs") or that contains itself is shown in bounded time, as the start of its repr (or
    as nested too deeply, when that start is only opening brackets).
    """
    pieces: list[str] = []
    size = 0
    stack: list[Iterator[Any]] = [iter((value,))]
    active: list[int] = []  # ids of the containers being shown, as in ``stack[1:]``
    while stack and size <= limit:
        try:
            item = next(stack[-1])
        except StopIteration:
            stack.pop()
            if active:
                active.pop()
            continue
        if type(item) is _Piece:
            text = item.text
        elif type(item) in _CONTAINERS and item:
            if id(item) in active:  # as repr shows a container inside itself
                text = "{...}" if type(item) is dict else "[...]"
            else:
                stack.append(_container_pieces(item))
                active.append(id(item))
                continue
        else:
            text = _scalar_repr(item)
        pieces.append(text)
        size += len(text)
    shown = "".join(pieces)
    if stack and not shown[:limit].strip("[{("):  # nothing to see but opening brackets
        return f"<{_json_type(value)} nested too deeply to show>"
    return shorten(shown, limit)


@dataclass(frozen=True)
class _Piece:
    """Literal text of a container's repr (brackets and separators)."""

    text: str


_CONTAINERS = (list, dict, tuple, set, frozenset)
_OPEN: dict[type, str] = {list: "[", dict: "{", tuple: "(", set: "{", frozenset: "frozenset({"}
_CLOSE: dict[type, str] = {list: "]", dict: "}", tuple: ")", set: "}", frozenset: "})"}


def _container_pieces(container: Any) -> Iterator[Any]:
    """The pieces of a non-empty container's repr: literal text, and its items."""
    kind = type(container)
    yield _Piece(_OPEN[kind])
    items = container.items() if kind is dict else container
    for position, item in enumerate(items):
        if position:
            yield _Piece(", ")
        if kind is dict:
            yield item[0]
            yield _Piece(": ")
            yield item[1]
        else:
            yield item
    yield _Piece(",)" if kind is tuple and len(container) == 1 else _CLOSE[kind])


def _scalar_repr(value: Any) -> str:
    try:
        return repr(value)
    except RecursionError:
        return f"<{_json_type(value)} nested too deeply to show>"
    except ValueError:  # an int too long for repr (sys.get_int_max_str_digits())
        if isinstance(value, int):
            return f"<integer of {value.bit_length()} bits>"
        return f"<{_json_type(value)} that cannot be shown>"


@dataclass(frozen=True)
class Violation:
    """One way a cassette breaks the contract.

    ``index`` is the interaction index (from 0, as in the file's list) and ``field`` the path
    inside the response body (``choices[0].message.role``); either may be ``None`` when the
    problem is with the whole file or the whole response.
    """

    path: str
    index: int | None
    field: str | None
    message: str
    #: The contract check that found it (``usage-sum``, …); ``None`` for a type error.
    check: str | None = None

    def __str__(self) -> str:
        # The one place a violation becomes text: a value a response echoed (a model name, a
        # finish reason, event data) or a test id in the path may hold a secret.
        from .hygiene.policy import redact_text

        where = self.path if self.index is None else f"{self.path}, interaction {self.index}"
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        return printable(redact_text(text))


class CassetteError(Exception):
    """A cassette that cannot be read, or a recorded response that breaks the contract.

    ``str(error)`` names the cassette path, the interaction index and the field path, one line
    per violation. ``violations`` holds them as data.
    """

    def __init__(self, violations: Sequence[Violation]) -> None:
        if not violations:
            raise ValueError("CassetteError needs at least one violation")
        self.violations: tuple[Violation, ...] = tuple(violations)
        super().__init__("\n".join(str(v) for v in self.violations))

    @classmethod
    def single(
        cls, path: str, message: str, *, index: int | None = None, field: str | None = None
    ) -> CassetteError:
        return cls([Violation(path, index, field, message)])

    @property
    def path(self) -> str:
        return self.violations[0].path

    @property
    def index(self) -> int | None:
        return self.violations[0].index

    @property
    def field(self) -> str | None:
        return self.violations[0].field


# --- pydantic errors to readable text -----------------------------------------------------------

_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}

_ABSENT = frozenset({"missing", "missing_nullable_key", "union_tag_not_found"})
_STRICT_HINT = " (strict mode does not coerce)"


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def field_path(loc: Iterable[int | str]) -> str:
    """Render a pydantic location as ``choices[0].message.tool_calls[1].function.name``.

    The tags pydantic inserts after a discriminated union position (tool calls, moderation
    parts) are dropped, since they are not keys of the document.
    """
    parts: list[int | str] = []
    skip_tag = False
    for segment in loc:
        if skip_tag:
            skip_tag = False
            continue
        parts.append(segment)
        n = len(parts)
        in_tool_calls = (
            isinstance(segment, int)
            and n >= 3
            and parts[n - 2] == "tool_calls"
            and parts[n - 3] == "message"
        )
        in_moderation = segment in ("input", "output") and n >= 2 and parts[n - 2] == "moderation"
        skip_tag = in_tool_calls or in_moderation
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(error: Any, strict: bool) -> tuple[list[int | str], str]:
    kind: str = error["type"]
    loc: list[int | str] = list(error["loc"])
    value = error.get("input")
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind == "missing":
        return loc, "required field is missing"
    if kind == "missing_nullable_key":
        return [
            *loc,
            str(ctx.get("field")),
        ], "required field is missing (null is allowed, absent is not)"
    if kind == "extra_forbidden":
        return (
            loc,
            f"unknown field (strict mode allows only the contract's), got {show_value(value)}",
        )
    if kind == "literal_error":
        shown = "null" if value is None else show_value(value)
        return loc, f"expected {ctx.get('expected')}, got {shown}"
    if kind == "union_tag_invalid":
        return loc, (
            f"expected {ctx.get('discriminator', 'type')} to be {ctx.get('expected_tags')}, "
            f"got {show_value(ctx.get('tag'))}"
        )
    if kind == "union_tag_not_found":
        return loc, f"required field {ctx.get('discriminator', 'type')} is missing"
    if kind in _EXPECTED:
        hint = _STRICT_HINT if strict and kind.endswith("_type") and value is not None else ""
        if value is None:
            return loc, f"expected {_EXPECTED[kind]}, got null"
        return loc, f"expected {_EXPECTED[kind]}, got {_json_type(value)} {show_value(value)}{hint}"
    message = str(error.get("msg") or kind)
    return loc, f"{message[0].lower()}{message[1:]}, got {show_value(value)}"


def violations_from(
    exc: ValidationError,
    path: str,
    index: int | None,
    *,
    strict: bool = False,
    prefix: str = "",
    suffix: str = "",
    hint: Callable[[str, Any], str] | None = None,
) -> list[Violation]:
    """One :class:`Violation` per pydantic error, with readable field paths.

    ``hint(field, value)`` may add a remedy to errors about a value that was sent.
    """
    out: list[Violation] = []
    for error in exc.errors(include_url=False):
        loc, message = _describe(error, strict)
        field = field_path(loc)
        extra = ""
        if hint is not None and error["type"] not in _ABSENT:
            extra = hint(field, error.get("input"))
        if prefix:
            field = f"{prefix}.{field}" if field else prefix
        out.append(Violation(path, index, field or None, message + suffix + extra))
    return out


class SharedCassetteWarning(UserWarning):
    """Tests of different files whose default cassette is the same file."""


class CassetteAgeWarning(UserWarning):
    """A cassette recorded longer ago than ``--chatresp-max-age`` allows."""
