"""A cassette file's bytes and document: what may be read, and how YAML is read safely.

``read_cassette_bytes`` is the one way the package opens a cassette (regular files only, bounded
in size); ``read_document`` parses it (JSON, or YAML through a safe loader that refuses alias
bombs) and hands back vcrpy's plain layout, the readable format written back.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Mapping
from typing import Any

from pytest_chatresp.errors import CassetteError, display_path, show_value

from .readable import ReadableFormatError, to_plain

__all__ = [
    "MAX_CASSETTE_BYTES",
    "NumberTooLong",
    "as_text",
    "dumps",
    "interactions_of",
    "loads",
    "read_cassette_bytes",
    "read_document",
]

_JSON_START = re.compile(rb"\s*[\[{]")


# --- values read from a document ----------------------------------------------------------------


class NumberTooLong(ValueError):
    """A JSON integer longer than Python converts (``sys.get_int_max_str_digits()``)."""


def loads(text: str | bytes) -> Any:
    """``json.loads``; nesting too deep to decode is reported as ``ValueError`` like bad JSON.

    An integer too long for Python is :class:`NumberTooLong`, naming where it is.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
    except json.JSONDecodeError:
        raise
    except ValueError:  # an integer longer than sys.get_int_max_str_digits()
        raise NumberTooLong(_long_number(text)) from None


def _long_number(text: str | bytes) -> str:
    """Where the first integer too long to convert is, and which field holds it."""
    limit = sys.get_int_max_str_digits()
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    found = re.search(rb'(?:"((?:[^"\\]|\\.){1,200})"\s*:\s*)?-?(\d{%d,})' % (limit + 1), raw)
    if found is None:
        return f"a number with more than the {limit:,} digits Python reads"
    start = found.start(2)
    line = raw.count(b"\n", 0, start) + 1
    column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
    name = found.group(1)
    field = f" (field {show_value(name.decode('utf-8', 'replace'))})" if name else ""
    return (
        f"a number of {len(found.group(2)):,} digits at line {line}, column {column}{field}: "
        f"more than the {limit:,} digits Python reads"
    )


def dumps(document: Any) -> str | None:
    """A parsed body as JSON text; ``None`` when YAML gave it a cycle or too deep a nesting.

    YAML values JSON has no type for (dates, ``!!binary`` bytes) are written as strings.
    """
    try:
        return json.dumps(document, default=str)
    except (ValueError, TypeError, RecursionError):  # TypeError: a key that is a date, bytes…
        return None


def as_text(value: Any) -> str:
    """A header name or value, or an error's message or code, as text, whatever YAML gave."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | dict | set | frozenset):
        return show_value(value, 1000)  # bounded: deep nesting, YAML aliases, cycles
    try:
        return str(value)
    except ValueError:  # an integer longer than sys.get_int_max_str_digits()
        return show_value(value)


# --- the document -------------------------------------------------------------------------------


def _yaml_loader() -> type[Any]:
    """A safe YAML loader that also reads the harmless Python tags recorders have written.

    Header names stored as ``!!python/object/apply:multidict...istr`` and similar tags become
    plain strings; nothing is ever imported or called.
    """
    import yaml

    base: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc]
        pass

    def construct_python(loader: Any, _suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            items = loader.construct_sequence(node, deep=True)
            return items[0] if len(items) == 1 and isinstance(items[0], str | bytes) else items
        mapping = loader.construct_mapping(node, deep=True)
        for key in ("args", "state"):
            value = mapping.get(key)
            if isinstance(value, list | tuple) and len(value) == 1:
                return value[0]
        return mapping

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", construct_python)
    return Loader


_LOADER: type[Any] | None = None

#: How large a document may grow once its aliases and merge keys are expanded, in characters of
#: text (roughly its length written out as JSON): this many times its file's size, and at least
#: ``_EXPANSION_FLOOR``. vcrpy's own anchors repeat a few headers; a 1 KB "billion laughs" file
#: grows to 10**9 nodes, a 1 MB string referenced 3,000 times to 3 GB.
_EXPANSION_FACTOR = 8
_EXPANSION_FLOOR = 8_000_000


def _parse_yaml(text: bytes, shown: str) -> Any:
    global _LOADER  # noqa: PLW0603 - built once, on first use, to keep imports light
    import yaml

    if _LOADER is None:
        _LOADER = _yaml_loader()
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()  # the node graph: an alias is one node, shared
        if node is None:
            return None
        # An alias needs an anchor, and an anchor is written with "&" (byte 0x26 in the UTF-8
        # text read here, whatever line break or indicator precedes it). Without one, merge
        # keys merge each mapping once: the document is no larger than its file. So the byte
        # alone decides; no pattern that could disagree with the parser about where an
        # anchor may stand.
        if b"&" in text:
            limit = max(_EXPANSION_FLOOR, _EXPANSION_FACTOR * len(text))
            if _expanded_size(node, limit) > limit:
                raise CassetteError.single(
                    shown,
                    f"YAML aliases would expand it to more than {limit:,} characters "
                    "(a 'billion laughs' file?); not read",
                )
        return _construct(loader, node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CassetteError.single(shown, f"not valid YAML{where}: {exc.problem}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date like 2001-13-45
        raise CassetteError.single(shown, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _Cycle(Exception):
    """A collection inside itself: left to PyYAML's constructor, which builds such graphs."""


def _construct(loader: Any, root: Any) -> Any:
    """The document of the node graph ``root``, as ``loader.construct_document`` builds it.

    Plain text, mappings with text keys and lists (nearly all of what vcrpy writes) are built
    here directly; every other node (numbers, null, ``!!binary``, merge keys, the Python tags,
    non-text keys) is built by the loader's own constructor, so the result is the same. An
    alias is the same object wherever it appears, as PyYAML makes it.
    """
    import yaml

    scalar, mapping, sequence = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode
    built: dict[int, Any] = {}
    started: set[int] = set()

    def build(node: Any) -> Any:
        kind, tag = type(node), node.tag
        if kind is scalar:
            return node.value if tag == _STR else loader.construct_object(node, deep=True)
        known = built.get(id(node))
        if known is not None:
            return known
        if id(node) in started:
            raise _Cycle
        started.add(id(node))
        value: Any
        if kind is mapping and tag == _MAP:
            pairs = node.value
            if all(type(k) is scalar and k.tag == _STR for k, _ in pairs):
                value = {k.value: build(v) for k, v in pairs}
            else:
                value = loader.construct_object(node, deep=True)
        elif kind is sequence and tag == _SEQ:
            value = [build(item) for item in node.value]
        else:
            value = loader.construct_object(node, deep=True)
        built[id(node)] = value
        return value

    try:
        document = build(root)
    except yaml.constructor.ConstructorError as exc:
        # Building one node deeply, the constructor refuses a node inside itself that its
        # whole-document pass builds; any other refusal is the document's (and a failed merge
        # has already changed the node graph: it must not be built again).
        if exc.problem != _RECURSIVE:
            raise
        return _construct_whole(loader, root)
    except _Cycle:
        return _construct_whole(loader, root)
    loader.constructed_objects, loader.recursive_objects = {}, {}
    return document


#: PyYAML's words for a collection inside itself, met while building one node deeply.
_RECURSIVE = "found unconstructable recursive node"


def _construct_whole(loader: Any, root: Any) -> Any:
    """The document built by the loader's constructor alone, from a clean state."""
    loader.constructed_objects, loader.recursive_objects = {}, {}
    loader.state_generators, loader.deep_construct = [], False
    return loader.construct_document(root)


def _expanded_size(root: Any, limit: int) -> int:
    """The size of the document composed as ``root`` once aliases and merge keys are expanded.

    Counted on the node graph, before anything is built: a scalar is its length plus a few
    characters, a collection the sum of its items (a merge key's mappings included, as a
    merge copies them). Iterative and linear in the nodes held: a shared node is sized once
    and counted at each reference; one inside itself (a cycle) counts as one node. Stops once
    past ``limit``.
    """
    import yaml

    scalar, mapping = yaml.ScalarNode, yaml.MappingNode
    if type(root) is scalar:
        return len(root.value) + 4
    sizes: dict[int, int] = {}
    started: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if not finished and (id(node) in sizes or id(node) in started):
            continue  # sized already, or one of its own ancestors
        items = [x for pair in node.value for x in pair] if type(node) is mapping else node.value
        if finished:
            size = 2
            for item in items:
                size += len(item.value) + 4 if type(item) is scalar else sizes.get(id(item), 1)
            if size > limit:
                return size
            sizes[id(node)] = size
        else:
            started.add(id(node))
            stack.append((node, True))
            stack.extend((item, False) for item in items if type(item) is not scalar)
    return sizes.get(id(root), 1)


#: The largest cassette file read, in bytes. A recording of a few thousand exchanges is a few
#: megabytes; beyond this a file is more likely a mistake (or a trap) than a cassette.
MAX_CASSETTE_BYTES = 256 * 1024 * 1024


def read_cassette_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a cassette file; :class:`CassetteError` for anything that is not one.

    The one way the package reads a cassette. A symbolic link is followed to a regular file;
    a directory, a FIFO (which would block), a device (which would never end) or a socket is
    refused by name before it is opened, and again on the opened file (opened non-blocking, so
    a file swapped for a FIFO in between cannot hang the reader). At most
    :data:`MAX_CASSETTE_BYTES` are read.
    """

    def shown() -> str:  # only a message needs it
        return display_path(path)

    try:
        refused = _not_regular(os.stat(path).st_mode)
        if refused:
            raise CassetteError.single(shown(), f"{refused}, not a cassette file")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            raise CassetteError.single(
                shown(), f"a symbolic link to {target}, which does not exist"
            ) from None
        raise CassetteError.single(shown(), "no such cassette file") from None
    except OSError as exc:
        raise CassetteError.single(shown(), f"cannot read the file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        refused = _not_regular(info.st_mode)
        if refused:
            raise CassetteError.single(shown(), f"{refused}, not a cassette file")
        if info.st_size > MAX_CASSETTE_BYTES:
            raise CassetteError.single(shown(), _too_large(info.st_size))
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CASSETTE_BYTES:
            want = min(max(info.st_size - size, 0) + 65536, 16 * 1024 * 1024)
            chunk = os.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if len(chunk) < want and size == info.st_size:
                break  # the size the file said, and no more there: its end, no read to find it
        if size > MAX_CASSETTE_BYTES:
            raise CassetteError.single(shown(), _too_large(size))
    except OSError as exc:
        raise CassetteError.single(shown(), f"cannot read the file: {exc.strerror}") from None
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _not_regular(mode: int) -> str | None:
    """What a file of this mode is, when it is not a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device"
    if stat.S_ISSOCK(mode):
        return "is a socket"
    return "is not a regular file"


def _too_large(size: int) -> str:
    limit = MAX_CASSETTE_BYTES // (1024 * 1024)
    return (
        f"holds more than the {limit} MiB a cassette may hold ({size:,} bytes read); not read: "
        "split it into several cassettes"
    )


def read_document(path: str | os.PathLike[str], data: bytes | None = None) -> Any:
    """The parsed cassette file (YAML or JSON), as vcrpy's serializers wrote it."""
    shown = display_path(path)
    if data is None:
        data = read_cassette_bytes(path)
    elif len(data) > MAX_CASSETTE_BYTES:  # bytes read by another caller: the same bound
        raise CassetteError.single(shown, _too_large(len(data)))
    try:
        data.decode("utf-8")  # checked here, parsed from the bytes: no second copy of the text
    except UnicodeDecodeError as exc:
        raise CassetteError.single(
            shown, f"not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})"
        ) from None
    if not data or data.isspace():
        raise CassetteError.single(shown, "the file is empty")
    try:
        document: Any = None
        if _JSON_START.match(data):
            try:
                document = json.loads(data)
            except json.JSONDecodeError:
                if os.fspath(path).endswith(".json"):
                    raise
            except ValueError:  # JSON, whatever the file's name: not a YAML question
                raise NumberTooLong(_long_number(data)) from None
        if document is None:
            document = _parse_yaml(data, shown)
    except ValueError as exc:
        raise CassetteError.single(shown, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise CassetteError.single(shown, "nested too deeply to read") from None
    try:
        return to_plain(document)
    except ReadableFormatError as exc:
        raise CassetteError.single(
            shown,
            f"a body in the readable format is malformed ({exc})",
            index=exc.index,
            field=exc.field,
        ) from None


def interactions_of(document: Any, shown: str) -> list[Any]:
    """The ``interactions`` list of a cassette document; ``CassetteError`` if it has none."""
    if not isinstance(document, Mapping):
        raise CassetteError.single(
            shown, f"not a vcrpy cassette: expected a mapping, got {type(document).__name__}"
        )
    interactions = document.get("interactions")
    if not isinstance(interactions, list):
        raise CassetteError.single(
            shown, "not a vcrpy cassette: no 'interactions' list", field="interactions"
        )
    return interactions
