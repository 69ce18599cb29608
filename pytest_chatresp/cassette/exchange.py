"""Exchanges: one recorded request and its response, read from an interaction of a cassette.

``build_exchange`` reads an interaction (any of the layouts vcrpy and other recorders write),
decodes its bodies, parses a stream's events, tells an error from a completion and validates
the completion (see :mod:`.validation`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from pytest_chatresp.checks import CheckContext, Rules, run_checks
from pytest_chatresp.errors import CassetteError, Violation, shorten
from pytest_chatresp.models import (
    ChatCompletion,
    ChatCompletionChunk,
    ErrorObject,
    Source,
    validate_completion_json,
)

from .decoding import UnreadableBody, codings, decode
from .document import NumberTooLong, as_text, dumps, loads
from .validation import stream_error, valid_chunks, validate_document, validate_stream

if TYPE_CHECKING:
    from .stream import SSEEvent

__all__ = ["EXCHANGE_KINDS", "APIErrorInfo", "Exchange", "Request", "build_exchange"]

_CHAT_OBJECT = "chat.completion"
_CHUNK_OBJECT = "chat.completion.chunk"
#: What an exchange is, as ``Exchange.kind`` says and the counts of ``chatresp check``, ``show``
#: and the report name it.
EXCHANGE_KINDS = ("chat completion", "chat stream", "responses", "embeddings", "error", "other")


def _headers(raw: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not isinstance(raw, Mapping):
        return out
    if type(raw) is dict:
        # What vcrpy writes: lower-case text names, each a list of text values. Checked and
        # copied in one pass; anything else (other types, names differing by case, nulls)
        # takes the general path below.
        for name, value in raw.items():
            if (
                type(name) is not str
                or type(value) is not list
                or not name.islower()
                or not all(type(v) is str for v in value)
            ):
                break
            out[name] = value.copy()
        else:
            return out
        out = {}
    for name, value in raw.items():
        values = value if isinstance(value, list | tuple) else [value]
        out.setdefault(as_text(name).lower(), []).extend(
            as_text(v) for v in values if v is not None
        )
    return out


def _body_text(raw: Any, headers: dict[str, list[str]]) -> tuple[str | bytes | None, str | None]:
    """A body as text (or bytes when it is not text), and a problem if decoding failed."""
    if raw is None:
        return None, None
    if isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    if isinstance(raw, str):
        if raw.startswith("\ufeff") and raw[1:].lstrip()[:1] in ("{", "["):
            return raw[1:], None  # JSON after a byte order mark, as the SDK reads it
        return raw, None
    if not isinstance(raw, bytes):
        return None, f"the body is {type(raw).__name__}, not text or bytes"
    try:
        decoded = decode(raw, codings(headers.get("content-encoding")))
    except UnreadableBody as exc:
        return raw, str(exc)
    encoding = json.detect_encoding(decoded)  # as json.loads (and so the SDK) reads bytes
    if encoding != "utf-8":
        try:
            text = decoded.decode(encoding)
        except UnicodeDecodeError:
            pass
        else:
            text = text.removeprefix("\ufeff")
            if text.lstrip()[:1] in ("{", "["):  # JSON with a byte order mark, or UTF-16/32
                return text, None
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
            code = None if err.code is None else as_text(err.code)
            return APIErrorInfo(status, err.message, err.type, code, err.param, body)
        except ValidationError:
            pass
        message = inner.get("message")
        return APIErrorInfo(status, as_text(message) if message else None, None, None, None, body)
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
                self._document = loads(text)
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
        from .stream import merge_chunks

        return merge_chunks(_stream_documents(self.events))


def _stream_documents(events: list[SSEEvent]) -> list[dict[str, Any]]:
    from .stream import event_json, is_chunk

    out: list[dict[str, Any]] = []
    for event in events:
        document = event_json(event)
        if is_chunk(document):
            out.append(document)
    return out


def _responses_stream(events: list[SSEEvent]) -> bool:
    """A Responses API stream: its events are named ``response.…``."""
    return any((event.event or "").startswith("response.") for event in events[:3])


def _looks_like_sse(text: str) -> bool:
    """:func:`.stream.looks_like_sse`, the stream module imported only for a body that may be
    a stream (a replay of plain completions never needs it)."""
    from .stream import looks_like_sse

    return looks_like_sse(text)


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


def _text_field(shown: str, index: int, raw: Mapping[str, Any], name: str) -> str:
    """A request's ``method`` or ``uri``; ``CassetteError`` when it is absent or not text."""
    value = raw.get(name)
    if not isinstance(value, str):
        raise CassetteError.single(
            shown,
            "required field is missing" if value is None else "expected a string",
            index=index,
            field=f"request.{name}",
        )
    return value


def _request(shown: str, index: int, raw: Any) -> Request:
    if not isinstance(raw, Mapping):
        raise CassetteError.single(shown, "expected a mapping", index=index, field="request")
    method, uri = _text_field(shown, index, raw, "method"), _text_field(shown, index, raw, "uri")
    try:
        urlsplit(uri).port  # noqa: B018 - raises for a bad IPv6 address or port
    except ValueError as exc:
        raise CassetteError.single(
            shown, f"not a URL ({exc}): {shorten(uri, 60)!r}", index=index, field="request.uri"
        ) from None
    headers = _headers(raw.get("headers"))
    body, parsed = _raw_body(raw)
    if parsed:
        return Request(method.upper(), uri, headers, dumps(body), body)
    text, _ = _body_text(body, headers)
    document: Any = None
    if text:
        try:
            document = loads(text)
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
    checked: list[Violation] | None = None,
) -> Exchange:
    """Read one interaction of a cassette document into an :class:`Exchange`.

    Raises :class:`CassetteError` only when the interaction is not shaped like one; contract
    violations of the response are recorded on the exchange. ``rules`` (or ``strict``) say
    how strictly to validate and which contract checks to skip. ``checked`` is what a verdict
    of the same bytes under the same rules found in this exchange: a well-typed completion then
    takes it instead of running the checks again.
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
        exchange.body = dumps(raw)
        if isinstance(raw, str) and _looks_like_sse(raw):
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
            if checked is not None:
                exchange.violations.extend(checked)
                return exchange
            context = CheckContext(
                path,
                index,
                request.json,
                uri=request.uri,
                allow=rules.allow,
                for_command=rules.for_command,
            )
            exchange.violations.extend(run_checks(fast, context, rules.skip_checks))
            return exchange

    content_type = ",".join(headers.get("content-type", []))
    if exchange.json is None and text is not None and problem is None:
        # A JSON document (an error, typically) is read as JSON even under an SSE content type.
        json_like = text.lstrip().startswith(("{", "["))
        if _looks_like_sse(text) or ("event-stream" in content_type and not json_like):
            from .stream import parse_sse

            exchange.streamed = True
            exchange.events, exchange.stream_done = parse_sse(text)
        elif text.strip():
            try:
                exchange.json = loads(text)
            except NumberTooLong as exc:
                problem = f"the response body cannot be read: {exc}"
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
        failure = stream_error(exchange.events)
        if failure is not None:
            exchange.error = _error_info(status, failure)
            exchange.chunks = valid_chunks(stream_documents, strict)
            return exchange
    if not exchange.is_chat or (status is not None and not 200 <= status < 300):
        return exchange

    if problem is not None:
        exchange.violations.append(Violation(path, index, None, problem))
    elif exchange.streamed:
        validate_stream(exchange, stream_documents, rules)
    else:
        validate_document(exchange, document, rules)
    if exchange._completion is not None:
        context = CheckContext(
            path,
            index,
            request.json,
            stream_documents if exchange.streamed else None,
            exchange.stream_done,
            uri=request.uri,
            allow=rules.allow,
            for_command=rules.for_command,
        )
        exchange.violations.extend(run_checks(exchange._completion, context, rules.skip_checks))
    return exchange
