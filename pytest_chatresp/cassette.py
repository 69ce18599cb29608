"""Reading vcrpy cassettes into exchanges, and validating every chat completion in them.

``load_cassette(path)`` reads what vcrpy writes (its YAML and JSON serializers, the older httpx
layout, pydantic-ai's ``parsed_body`` variant), decodes bodies (``!!binary``, gzip, deflate,
brotli when installed), merges streamed responses, and validates each chat completion. A file
that cannot be read raises :class:`CassetteError`; a completion that breaks the contract is
recorded as violations on its exchange and raised when the completion is asked for.
"""

from __future__ import annotations

import gc
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from .checks import CheckContext, Rules, run_checks
from .decoding import UnreadableBody, codings, decode
from .errors import (
    CassetteError,
    Violation,
    display_path,
    field_path,
    shorten,
    show_value,
    violations_from,
)
from .models import (
    ChatCompletion,
    ChatCompletionChunk,
    ErrorObject,
    Source,
    validate_chunk,
    validate_completion,
    validate_completion_json,
)
from .providers import allowance_for, allowance_works, provider_of, validate_allowing
from .serializer import ReadableFormatError, to_plain
from .stream import SSEEvent, is_chunk, looks_like_sse, merge_chunks, parse_sse

__all__ = [
    "EXCHANGE_KINDS",
    "APIErrorInfo",
    "Cassette",
    "Exchange",
    "Request",
    "build_exchange",
    "interactions_of",
    "load_cassette",
    "read_cassette_bytes",
    "read_document",
]

_JSON_START = re.compile(rb"\s*[\[{]")
_CHAT_OBJECT = "chat.completion"
_CHUNK_OBJECT = "chat.completion.chunk"
#: What an exchange is, as ``Exchange.kind`` says and the counts of ``chatresp check``, ``show``
#: and the report name it.
EXCHANGE_KINDS = ("chat completion", "chat stream", "responses", "embeddings", "error", "other")


def _loads(text: str | bytes) -> Any:
    """``json.loads``; nesting too deep to decode is reported as ``ValueError`` like bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None


def _dumps(document: Any) -> str | None:
    """A parsed body as JSON text; ``None`` when YAML gave it a cycle or too deep a nesting.

    YAML values JSON has no type for (dates, ``!!binary`` bytes) are written as strings.
    """
    try:
        return json.dumps(document, default=str)
    except (ValueError, TypeError, RecursionError):  # TypeError: a key that is a date, bytes…
        return None


def _text(value: Any) -> str:
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

#: An anchor (``&name``) where YAML allows one. Without anchors there are no aliases, and
#: merge keys merge each mapping once: the document is no larger than its file.
_ANCHOR = re.compile(rb"&(?<![^\s\[{,:-]&)[^\s\[\]{},]")  # "&" first: found fast

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
        if b"&" in text and _ANCHOR.search(text):
            limit = max(_EXPANSION_FLOOR, _EXPANSION_FACTOR * len(text))
            if _expanded_size(node, limit) > limit:
                raise CassetteError.single(
                    shown,
                    f"YAML aliases would expand it to more than {limit:,} characters "
                    "(a 'billion laughs' file?); not read",
                )
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CassetteError.single(shown, f"not valid YAML{where}: {exc.problem}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date like 2001-13-45
        raise CassetteError.single(shown, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


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
    shown = display_path(path)
    try:
        refused = _not_regular(os.stat(path).st_mode)
        if refused:
            raise CassetteError.single(shown, f"{refused}, not a cassette file")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            raise CassetteError.single(
                shown, f"a symbolic link to {target}, which does not exist"
            ) from None
        raise CassetteError.single(shown, "no such cassette file") from None
    except OSError as exc:
        raise CassetteError.single(shown, f"cannot read the file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        refused = _not_regular(info.st_mode)
        if refused:
            raise CassetteError.single(shown, f"{refused}, not a cassette file")
        if info.st_size > MAX_CASSETTE_BYTES:
            raise CassetteError.single(shown, _too_large(info.st_size))
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CASSETTE_BYTES:
            chunk = os.read(fd, min(max(info.st_size - size, 0) + 65536, 16 * 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_CASSETTE_BYTES:
            raise CassetteError.single(shown, _too_large(size))
    except OSError as exc:
        raise CassetteError.single(shown, f"cannot read the file: {exc.strerror}") from None
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
            except ValueError:
                if os.fspath(path).endswith(".json"):
                    raise
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


# --- requests and responses ---------------------------------------------------------------------


def _headers(raw: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not isinstance(raw, Mapping):
        return out
    for name, value in raw.items():
        values = value if isinstance(value, list | tuple) else [value]
        out.setdefault(_text(name).lower(), []).extend(_text(v) for v in values if v is not None)
    return out


def _body_text(raw: Any, headers: dict[str, list[str]]) -> tuple[str | bytes | None, str | None]:
    """A body as text (or bytes when it is not text), and a problem if decoding failed."""
    if raw is None:
        return None, None
    if isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    if isinstance(raw, str):
        return raw, None
    if not isinstance(raw, bytes):
        return None, f"the body is {type(raw).__name__}, not text or bytes"
    try:
        decoded = decode(raw, codings(headers.get("content-encoding")))
    except UnreadableBody as exc:
        return raw, str(exc)
    try:
        return decoded.decode("utf-8"), None
    except UnicodeDecodeError:
        return decoded, "the body is not UTF-8 text"


@dataclass(frozen=True)
class Request:
    """A recorded request: method, URI, headers (lower-case names) and its body."""

    method: str
    uri: str
    headers: Mapping[str, list[str]]
    body: str | bytes | None
    json: Any = None

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path

    @property
    def host(self) -> str:
        return urlsplit(self.uri).netloc

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def model(self) -> str | None:
        """The ``model`` the request asked for, when its body is a JSON object."""
        if isinstance(self.json, dict) and isinstance(self.json.get("model"), str):
            return str(self.json["model"])
        return None

    @property
    def last_message(self) -> str | None:
        """The text of the request's last message, when it has one."""
        if not isinstance(self.json, dict):
            return None
        messages = self.json.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
            return None
        content = messages[-1].get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [p.get("text") for p in content if isinstance(p, dict)]
            return " ".join(t for t in texts if isinstance(t, str)) or None
        return None

    def describe(self, clean: Callable[[str], str] = str) -> str:
        """``POST https://…/chat/completions (model 'gpt-4o', last message 'Hi there')``.

        ``clean`` is applied to the URI, the model and the whole message before any shortening
        (so a secret is never cut where it would no longer be recognised).
        """
        text = f"{self.method} {clean(self.uri)}"
        details = []
        if self.model:
            details.append(f"model {clean(self.model)!r}")
        if self.last_message:
            details.append(f"last message {shorten(clean(self.last_message), 50)!r}")
        return f"{text} ({', '.join(details)})" if details else text


@dataclass(frozen=True)
class APIErrorInfo:
    """An error the API answered with: HTTP status ≥ 400, an error body, or an error event."""

    status: int | None
    message: str | None
    type: str | None
    code: str | None
    param: str | None
    body: Any

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "error"
        detail = f" ({self.type})" if self.type else ""
        message = f": {shorten(self.message, 120)}" if self.message else ""
        return f"{status}{detail}{message}"


def _error_info(status: int | None, body: Any) -> APIErrorInfo:
    inner = body.get("error") if isinstance(body, dict) else None
    if isinstance(inner, dict):
        try:
            err = ErrorObject.model_validate(inner)
            code = None if err.code is None else _text(err.code)
            return APIErrorInfo(status, err.message, err.type, code, err.param, body)
        except ValidationError:
            pass
        message = inner.get("message")
        return APIErrorInfo(status, _text(message) if message else None, None, None, None, body)
    if isinstance(inner, str):
        return APIErrorInfo(status, inner, None, None, None, body)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return APIErrorInfo(status, body["message"], None, None, None, body)
    text = body if isinstance(body, str) else None
    return APIErrorInfo(status, shorten(text, 200) if text else None, None, None, None, body)


# --- exchanges ----------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One recorded request and its response.

    ``completion`` is the validated :class:`ChatCompletion` of a successful chat exchange
    (reading it raises :class:`CassetteError` when the response breaks the contract), ``None``
    for errors and other endpoints. ``chunks`` holds the validated chunks of a stream.
    """

    index: int
    request: Request
    status: int | None
    headers: Mapping[str, list[str]]
    body: str | bytes | None
    is_chat: bool
    streamed: bool
    chunks: list[ChatCompletionChunk] = field(default_factory=list)
    events: list[SSEEvent] = field(default_factory=list)
    stream_done: bool = False
    error: APIErrorInfo | None = None
    violations: list[Violation] = field(default_factory=list)
    source: Source | None = None
    _completion: ChatCompletion | None = None
    _document: Any = None
    _document_text: str | None = None

    @property
    def json(self) -> Any:
        """The response body as JSON (``None`` for a stream or a body that is not JSON)."""
        if self._document_text is not None:
            text, self._document_text = self._document_text, None
            try:
                self._document = _loads(text)
            except ValueError:
                self._document = None
        return self._document

    @json.setter
    def json(self, value: Any) -> None:
        self._document, self._document_text = value, None

    @property
    def completion(self) -> ChatCompletion | None:
        if self.violations:
            raise CassetteError(self.violations)
        return self._completion

    @property
    def valid(self) -> bool:
        """No violation: the response is well-typed and passes every contract check run."""
        return not self.violations

    @property
    def type_violations(self) -> list[Violation]:
        """The violations of the models alone, contract checks aside."""
        return [v for v in self.violations if v.check is None]

    @property
    def is_completion(self) -> bool:
        """A chat exchange that answered with a completion (valid or not), not an error."""
        return (
            self.is_chat
            and self.error is None
            and (self._completion is not None or bool(self.violations))
        )

    @property
    def kind(self) -> str:
        """One of :data:`EXCHANGE_KINDS`: an error the API answered with, a chat completion
        (streamed or not), a Responses API or embeddings exchange, or another one."""
        if self.error is not None:
            return "error"
        if self.is_chat:
            return "chat stream" if self.streamed else "chat completion"
        path = urlsplit(self.request.uri).path.rstrip("/")
        document = self.json if not self.streamed else None
        shown = document.get("object") if isinstance(document, dict) else None
        if "/responses" in path or shown == "response" or _responses_stream(self.events):
            return "responses"
        if path.endswith("/embeddings") or _is_embeddings(document):
            return "embeddings"
        return "other"

    @cached_property
    def merged(self) -> dict[str, Any] | None:
        """The completion document merged from a stream's chunks (before validation)."""
        if not self.streamed:
            return None
        return merge_chunks(_stream_documents(self.events))


def _stream_documents(events: list[SSEEvent]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in events:
        try:
            document = _loads(event.data)
        except ValueError:
            continue
        if is_chunk(document):
            out.append(document)
    return out


def _responses_stream(events: list[SSEEvent]) -> bool:
    """A Responses API stream: its events are named ``response.…``."""
    return any((event.event or "").startswith("response.") for event in events[:3])


def _is_embeddings(document: Any) -> bool:
    data = document.get("data") if isinstance(document, dict) else None
    return (
        isinstance(data, list)
        and bool(data)
        and isinstance(data[0], dict)
        and data[0].get("object") == "embedding"
    )


def _is_error_body(document: Any) -> bool:
    """An ``{"error": …}`` body: its ``error`` present and not null, and no ``choices``.

    A successful Responses API body says ``"error": null``; that is no error.
    """
    return (
        isinstance(document, dict)
        and document.get("error") is not None
        and "choices" not in document
    )


def _is_chat_path(uri: str) -> bool:
    return urlsplit(uri).path.rstrip("/").endswith("/chat/completions")


def _status(response: Mapping[str, Any]) -> int | None:
    status = response.get("status")
    code = status.get("code") if isinstance(status, Mapping) else status
    if code is None:
        code = response.get("status_code")
    if isinstance(code, str) and code.strip().isascii() and code.strip().isdigit():
        code = int(code) if len(code.strip()) <= 3 else None
    if isinstance(code, bool) or not isinstance(code, int):
        return None
    return code if 100 <= code <= 999 else None  # an HTTP status has three digits


def _raw_body(part: Mapping[str, Any]) -> tuple[Any, bool]:
    """The stored body of a request or response, and whether it is already parsed JSON."""
    if "parsed_body" in part:
        return part["parsed_body"], True
    body = part.get("body")
    if isinstance(body, Mapping):
        return body.get("string"), False
    if body is None and "content" in part:
        return part["content"], False
    return body, False


def _request(shown: str, index: int, raw: Any) -> Request:
    if not isinstance(raw, Mapping):
        raise CassetteError.single(shown, "expected a mapping", index=index, field="request")
    method, uri = raw.get("method"), raw.get("uri")
    if not isinstance(method, str):
        raise CassetteError.single(
            shown,
            "required field is missing" if method is None else "expected a string",
            index=index,
            field="request.method",
        )
    if not isinstance(uri, str):
        raise CassetteError.single(
            shown,
            "required field is missing" if uri is None else "expected a string",
            index=index,
            field="request.uri",
        )
    try:
        urlsplit(uri).port  # noqa: B018 - raises for a bad IPv6 address or port
    except ValueError as exc:
        raise CassetteError.single(
            shown, f"not a URL ({exc}): {shorten(uri, 60)!r}", index=index, field="request.uri"
        ) from None
    headers = _headers(raw.get("headers"))
    body, parsed = _raw_body(raw)
    if parsed:
        return Request(method.upper(), uri, headers, _dumps(body), body)
    text, _ = _body_text(body, headers)
    document: Any = None
    if text:
        try:
            document = _loads(text)
        except ValueError:
            document = None
    return Request(method.upper(), uri, headers, text, document)


def build_exchange(
    path: str,
    index: int,
    interaction: Any,
    *,
    strict: bool = False,
    rules: Rules | None = None,
) -> Exchange:
    """Read one interaction of a cassette document into an :class:`Exchange`.

    Raises :class:`CassetteError` only when the interaction is not shaped like one; contract
    violations of the response are recorded on the exchange. ``rules`` (or ``strict``) say
    how strictly to validate and which contract checks to skip.
    """
    rules = rules or Rules(strict=strict)
    strict = rules.strict
    if not isinstance(interaction, Mapping):
        raise CassetteError.single(
            path, "expected a mapping with request and response", index=index
        )
    request = _request(path, index, interaction.get("request"))
    response = interaction.get("response")
    if not isinstance(response, Mapping):
        raise CassetteError.single(
            path,
            "required field is missing" if response is None else "expected a mapping",
            index=index,
            field="response",
        )
    status = _status(response)
    headers = _headers(response.get("headers"))
    raw, parsed = _raw_body(response)
    source = Source(path, index)
    exchange = Exchange(
        index=index,
        request=request,
        status=status,
        headers=headers,
        body=None,
        is_chat=_is_chat_path(request.uri),
        streamed=False,
        source=source,
    )
    problem: str | None = None
    if parsed:
        exchange.json = raw
        exchange.body = _dumps(raw)
        if isinstance(raw, str) and looks_like_sse(raw):
            exchange.body, exchange.json = raw, None
    else:
        exchange.body, problem = _body_text(raw, headers)
        if raw is None:
            problem = "the response has no body"
    text = exchange.body if isinstance(exchange.body, str) else None

    if (
        text is not None
        and problem is None
        and not parsed
        and exchange.is_chat
        and not rules.strict
        and (status is None or 200 <= status < 300)
        and text[:1] == "{"
    ):
        # The common case, a valid completion, validated straight from the text; its JSON is
        # decoded only if asked for. Anything else takes the path below and its messages.
        fast = validate_completion_json(text)
        if fast is not None:
            exchange._document_text = text
            fast._source = source
            exchange._completion = fast
            context = CheckContext(path, index, request.json, uri=request.uri, allow=rules.allow)
            exchange.violations.extend(run_checks(fast, context, rules.skip_checks))
            return exchange

    content_type = ",".join(headers.get("content-type", []))
    if exchange.json is None and text is not None and problem is None:
        # A JSON document (an error, typically) is read as JSON even under an SSE content type.
        json_like = text.lstrip().startswith(("{", "["))
        if looks_like_sse(text) or ("event-stream" in content_type and not json_like):
            exchange.streamed = True
            exchange.events, exchange.stream_done = parse_sse(text)
        elif text.strip():
            try:
                exchange.json = _loads(text)
            except ValueError:
                problem = f"the response body is not JSON: {shorten(text.strip(), 60)!r}"
        else:
            problem = "the response body is empty"

    document = exchange.json
    if isinstance(document, dict) and document.get("object") == _CHAT_OBJECT:
        exchange.is_chat = True
    stream_documents = _stream_documents(exchange.events) if exchange.streamed else []
    if any(d.get("object") == _CHUNK_OBJECT for d in stream_documents):
        exchange.is_chat = True

    # Errors are exposed as errors, not validated as completions.
    if status is not None and status >= 400:
        exchange.error = _error_info(status, document if document is not None else text)
        return exchange
    if _is_error_body(document):
        exchange.error = _error_info(status, document)
        return exchange
    if exchange.streamed:
        stream_error = _stream_error(exchange.events)
        if stream_error is not None:
            exchange.error = _error_info(status, stream_error)
            exchange.chunks = _valid_chunks(stream_documents, strict)
            return exchange
    if not exchange.is_chat or (status is not None and not 200 <= status < 300):
        return exchange

    if problem is not None:
        exchange.violations.append(Violation(path, index, None, problem))
    elif exchange.streamed:
        _validate_stream(exchange, stream_documents, rules)
    else:
        _validate_document(exchange, document, rules)
    if exchange._completion is not None:
        context = CheckContext(
            path,
            index,
            request.json,
            stream_documents if exchange.streamed else None,
            exchange.stream_done,
            uri=request.uri,
            allow=rules.allow,
        )
        exchange.violations.extend(run_checks(exchange._completion, context, rules.skip_checks))
    return exchange


def _stream_error(events: list[SSEEvent]) -> Any:
    for event in events:
        try:
            document = _loads(event.data)
        except ValueError:
            document = None
        if isinstance(document, dict) and document.get("error"):
            return document
        if event.event == "error":
            return document if document is not None else event.data
    return None


def _valid_chunks(documents: list[dict[str, Any]], strict: bool) -> list[ChatCompletionChunk]:
    chunks = []
    for document in documents:
        try:
            chunks.append(validate_chunk(document, strict=strict))
        except ValidationError:
            continue
    return chunks


def _chunk_field(loc: Any) -> str:
    """A chunk's field as the completion's: ``choices[0].delta.content`` → ``…message.content``.

    So that one allowance (``choices[].message.content=*``, ``service_tier=on_demand``)
    accepts a deviation whether it came in a completion or in the chunks of a stream.
    """
    return field_path(loc).replace(".delta.", ".message.", 1)


def _validate(
    exchange: Exchange,
    document: Any,
    rules: Rules,
    *,
    chunk: int | None = None,
    suffix: str = "",
) -> Any:
    """Validate a completion (or, with ``chunk``, the stream event at that position).

    What the user allows is accepted; anything else is recorded as violations, with the line
    that would accept it when the provider is known and such a line would work.
    """
    assert exchange.source is not None

    def validate(data: Any) -> Any:
        if chunk is None:
            return validate_completion(data, strict=rules.strict)
        return validate_chunk(data, strict=rules.strict)

    try:
        return validate(document)
    except ValidationError as exc:
        error = exc
    errors = error.errors(include_url=False)
    field_of = field_path if chunk is None else _chunk_field
    if rules.allow:
        model = validate_allowing(document, errors, rules.allow, validate, field_of)
        if model is not None:
            return model
    provider = provider_of(exchange.request.uri, document)
    workable = (
        set()
        if provider in (None, "OpenAI")
        else {field_path(e["loc"]) for e in errors if allowance_works(document, e, validate)}
    )

    def hint(field: str, value: Any) -> str:
        if field not in workable:
            return ""
        shown = field.replace(".delta.", ".message.", 1)
        return f" ({provider}; to accept it: chatresp_allow = {allowance_for(shown, value)})"

    exchange.violations.extend(
        violations_from(
            error,
            exchange.source.path,
            exchange.source.index,
            strict=rules.strict,
            prefix="" if chunk is None else f"chunk[{chunk}]",
            suffix=suffix,
            hint=hint,
        )
    )
    return None


def _validate_document(exchange: Exchange, document: Any, rules: Rules) -> None:
    completion = _validate(exchange, document, rules)
    if completion is not None:
        completion._source = exchange.source
        exchange._completion = completion


def _validate_stream(exchange: Exchange, documents: list[dict[str, Any]], rules: Rules) -> None:
    assert exchange.source is not None
    path, index = exchange.source.path, exchange.source.index
    for event in exchange.events:
        try:
            document = _loads(event.data)
        except ValueError:
            exchange.violations.append(
                Violation(
                    path,
                    index,
                    f"chunk[{event.position}]",
                    f"the event data is not JSON: {shorten(event.data, 60)!r}",
                )
            )
            continue
        if not is_chunk(document):
            continue
        chunk = _validate(exchange, document, rules, chunk=event.position)
        if chunk is not None:
            exchange.chunks.append(chunk)
    if not documents:
        exchange.violations.append(
            Violation(path, index, None, "the stream holds no chat.completion.chunk event")
        )
        return
    if exchange.violations:
        return
    merged = merge_chunks(documents)
    completion = _validate(exchange, merged, rules, suffix=" (in the merged stream)")
    if completion is not None:
        completion._source = exchange.source
        exchange._completion = completion


# --- cassettes ----------------------------------------------------------------------------------


class Cassette:
    """A cassette file read into :class:`Exchange` objects, in the file's order."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        exchanges: list[Exchange],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.exchanges = exchanges
        #: vcrpy's cassette metadata; ``metadata["chatresp"]`` is the plugin's provenance.
        self.metadata: dict[str, Any] = metadata or {}

    def __repr__(self) -> str:
        return f"<Cassette {display_path(self.path)}: {len(self.exchanges)} exchanges>"

    def __len__(self) -> int:
        return len(self.exchanges)

    def __iter__(self) -> Iterator[Exchange]:
        return iter(self.exchanges)

    @property
    def chat_exchanges(self) -> list[Exchange]:
        """Exchanges with the chat completions endpoint (including errors)."""
        return [e for e in self.exchanges if e.is_chat]

    @property
    def errors(self) -> list[Exchange]:
        """Exchanges the API answered with an error."""
        return [e for e in self.exchanges if e.error is not None]

    @property
    def violations(self) -> list[Violation]:
        return [v for e in self.exchanges for v in e.violations]

    @property
    def completions(self) -> list[ChatCompletion]:
        """The completion of every successful chat exchange, in order.

        Raises :class:`CassetteError` listing every violation when any response breaks the
        contract.
        """
        violations = self.violations
        if violations:
            raise CassetteError(violations)
        return [e._completion for e in self.exchanges if e._completion is not None]


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


def cassette_from_document(
    path: str | os.PathLike[str], document: Any, *, rules: Rules | None = None
) -> Cassette:
    """Build a :class:`Cassette` from a parsed cassette document."""
    shown = display_path(path)
    interactions = interactions_of(document, shown)
    exchanges = [
        build_exchange(shown, index, interaction, rules=rules)
        for index, interaction in enumerate(interactions)
    ]
    metadata = document.get("metadata")
    return Cassette(path, exchanges, metadata if isinstance(metadata, dict) else None)


def load_cassette(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    skip_checks: Iterable[str] = (),
    rules: Rules | None = None,
) -> Cassette:
    """Read a vcrpy cassette file and validate every chat completion in it.

    ``strict`` turns on strict validation; ``skip_checks`` names contract checks to skip
    (see :data:`pytest_chatresp.checks.CHECKS`); ``rules`` gives both at once.

    Raises :class:`CassetteError` when the file cannot be read as a cassette. Contract
    violations are raised when :attr:`Cassette.completions` (or an exchange's ``completion``)
    is read.
    """
    rules = rules or Rules(strict=strict, skip_checks=frozenset(skip_checks))
    with _collector_paused():
        return cassette_from_document(path, read_document(path), rules=rules)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading a cassette makes many objects, all alive at the end: the garbage collector's
    passes over them find nothing to free, and cost as much as the parsing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
