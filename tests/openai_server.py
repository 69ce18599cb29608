"""A small, deterministic, OpenAI-compatible HTTP server for tests.

Only the Python standard library is used.  The server speaks enough of the
Chat Completions API (plus a tiny embeddings endpoint) for the real ``openai``
SDK, ``httpx`` and ``requests`` to talk to it, streamed or not.  Every response
is a pure function of the request (no clock, no randomness), so recordings made
against it are reproducible byte for byte.

Usage::

    with OpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-FAKE-test-key-not-real")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])

Run ``python tests/openai_server.py --port 8765`` to serve until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import hashlib
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = [
    "CREATED",
    "SYSTEM_FINGERPRINT",
    "OpenAIServer",
    "ReceivedRequest",
]

HOST = "127.0.0.1"
CREATED = 1764000000
DATE_HEADER = "Mon, 24 Nov 2025 16:00:00 GMT"  # == CREATED
SYSTEM_FINGERPRINT = "fp_local0001"
MODEL_DATE_SUFFIX = "-2025-01-01"
ORGANIZATION = "org-FAKE0local0org0000000"
PROJECT = "proj_FAKE0local0project000"
PROCESSING_MS = "12"
API_VERSION = "2020-10-01"
COOKIES = (
    "__cf_bm=FAKE-cookie-value-0123456789; path=/; HttpOnly",
    "_cfuvid=FAKE-cfuvid-0123456789; path=/",
)
CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MAX_CHOICES = 128
ARGUMENT_FRAGMENT_SIZE = 8

_DATED_MODEL = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_WORD = re.compile(r"\s*\S+")

JSONObject = dict[str, Any]


@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request as the server saw it."""

    method: str
    path: str
    """Request target, including the query string."""
    headers: dict[str, str]
    """Header names are lower-cased; repeated headers are joined with ``", "``."""
    body: bytes
    json: Any
    """The parsed JSON body, or ``None`` if the body was empty or not JSON."""


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: Any = None
    events: tuple[str, ...] | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()
    #: ``(content type, body bytes)`` sent as they are (the leak forms that need exact bytes)
    raw: tuple[str, bytes] | None = None


# --------------------------------------------------------------------------- helpers


def _sha256_hex(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _error(
    status: int,
    message: str,
    error_type: str,
    *,
    param: str | None = None,
    code: str | None = None,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> _Reply:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return _Reply(status=status, payload=body, extra_headers=extra_headers)


def _invalid_request(message: str, param: str | None = None, code: str | None = None) -> _Reply:
    return _error(400, message, "invalid_request_error", param=param, code=code)


_NO_RETRY = (("x-should-retry", "false"),)


def _model_error(model: str) -> _Reply | None:
    """Errors selected by the request's ``model`` (``error-400`` ... ``error-500``)."""
    if model == "error-400":
        return _invalid_request(
            "Invalid value for 'model': the model 'error-400' always fails with a 400.",
            param="model",
            code="invalid_value",
        )
    if model == "error-401":
        return _error(
            401,
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            code="invalid_api_key",
        )
    if model == "error-404":
        return _error(
            404,
            "The model `error-404` does not exist or you do not have access to it.",
            "invalid_request_error",
            code="model_not_found",
        )
    if model == "error-429":
        return _error(
            429,
            "Rate limit reached for error-429 on requests per min (RPM): Limit 3, Used 3, "
            "Requested 1. Please try again in 20s.",
            "requests",
            code="rate_limit_exceeded",
            extra_headers=(("retry-after", "0"), *_NO_RETRY),
        )
    if model == "error-500":
        return _error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            extra_headers=_NO_RETRY,
        )
    return None


def _response_model(model: str) -> str:
    return model if _DATED_MODEL.search(model) else model + MODEL_DATE_SUFFIX


def _service_tier(requested: Any) -> str:
    if requested == "flex":
        return "flex"
    if requested in ("priority", "fast"):
        return "priority"
    return "default"


def _text_of(content: Any) -> str:
    """Text of a message's ``content``: a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def _words(text: str) -> list[str]:
    """Split ``text`` into word pieces that concatenate back to ``text`` (minus trailing space)."""
    return _WORD.findall(text)


def _resolve_ref(ref: str, root: Any) -> Any:
    if not ref.startswith("#/"):
        return None
    node = root
    for part in ref[2:].split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def example_from_schema(schema: Any, root: Any = None, key: str = "", suffix: str = "") -> Any:
    """A deterministic value matching (a useful subset of) a JSON schema.

    Objects get their ``required`` properties (all properties when there is no
    ``required`` list), strings are ``"Paris"`` for city/location-like keys and
    ``"value"`` otherwise, integers ``1``, numbers ``1.5``, booleans ``True``,
    arrays ``[]``; enums give their first value.  ``suffix`` is appended to free
    strings (used to make choices differ).
    """
    return _example(schema, schema if root is None else root, key, suffix, depth=0)


def _example(schema: Any, root: Any, key: str, suffix: str, depth: int) -> Any:
    if depth > 32 or not isinstance(schema, dict):
        return None
    if isinstance(schema.get("$ref"), str):
        return _example(_resolve_ref(schema["$ref"], root), root, key, suffix, depth + 1)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "const" in schema:
        return schema["const"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return _example((non_null or options)[0], root, key, suffix, depth + 1)

    schema_type = schema.get("type")
    if isinstance(schema_type, list):
        non_null_types = [t for t in schema_type if t != "null"]
        schema_type = non_null_types[0] if non_null_types else "null"
    if schema_type is None:
        if "properties" in schema:
            schema_type = "object"
        elif "items" in schema:
            schema_type = "array"
        else:
            schema_type = "string"

    if schema_type == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = schema.get("required")
        names = (
            [name for name in required if isinstance(name, str) and name in properties]
            if isinstance(required, list)
            else list(properties)
        )
        return {name: _example(properties[name], root, name, suffix, depth + 1) for name in names}
    if schema_type == "string":
        lowered = key.lower()
        if "city" in lowered or "location" in lowered:
            return "Paris"
        return "value" + suffix
    if schema_type == "integer":
        return 1
    if schema_type == "number":
        return 1.5
    if schema_type == "boolean":
        return True
    if schema_type == "array":
        return []
    return None


# --------------------------------------------------------------------------- chat completions


@dataclass(frozen=True)
class _Choice:
    index: int
    content: str | None
    tool_calls: tuple[JSONObject, ...]
    finish_reason: str
    completion_tokens: int


def _pick_tool(tools: Any, tool_choice: Any) -> JSONObject | None:
    if not isinstance(tools, list) or tool_choice == "none":
        return None
    functions = [
        tool["function"]
        for tool in tools
        if isinstance(tool, dict)
        and tool.get("type", "function") == "function"
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    ]
    if not functions:
        return None
    if isinstance(tool_choice, dict):
        wanted = tool_choice.get("function")
        if isinstance(wanted, dict):
            for function in functions:
                if function["name"] == wanted.get("name"):
                    chosen: JSONObject = function
                    return chosen
    first: JSONObject = functions[0]
    return first


def _max_tokens(request: JSONObject) -> int | _Reply | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = request.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return _invalid_request(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1.",
                param=name,
                code="integer_below_min_value",
            )
        return value
    return None


def _usage(prompt_tokens: int, completion_tokens: int) -> JSONObject:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _text_for_choice(
    echo: str, index: int, response_format: Any, limit: int | None
) -> tuple[str, str, int]:
    suffix = f" (choice {index})" if index else ""
    content = echo + suffix
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_object":
            content = _dumps({"answer": content})
        elif response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            value = example_from_schema(schema if schema is not None else {}, suffix=suffix)
            content = _dumps(value if value is not None else {})
    pieces = _words(content)
    if limit is not None and len(pieces) > limit:
        return "".join(pieces[:limit]), "length", limit
    return content, "stop", len(pieces)


def _chat_completion(request: Any, body: bytes) -> _Reply:
    if not isinstance(request, dict):
        return _invalid_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        )
    model = request.get("model")
    if not isinstance(model, str) or not model:
        return _invalid_request("you must provide a model parameter", param="model")
    failure = _model_error(model)
    if failure is not None:
        return failure
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid_request(
            "Invalid 'messages': expected a non-empty array.", param="messages", code="invalid_type"
        )
    if not all(isinstance(m, dict) for m in messages):
        return _invalid_request(
            "Invalid 'messages': every message must be an object.",
            param="messages",
            code="invalid_type",
        )
    n = request.get("n", 1)
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHOICES:
        return _invalid_request(
            f"Invalid 'n': expected an integer between 1 and {MAX_CHOICES}.", param="n"
        )
    limit = _max_tokens(request)
    if isinstance(limit, _Reply):
        return limit

    last = messages[-1]
    user_text = next(
        (_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    echo = f"Echo: {user_text}" if user_text else "Echo:"
    if last.get("role") == "tool":
        echo += f" (tool result: {_text_of(last.get('content'))})"
        tool = None
    else:
        tool = _pick_tool(request.get("tools"), request.get("tool_choice"))

    choices: list[_Choice] = []
    for index in range(n):
        if tool is not None:
            parameters = tool.get("parameters")
            arguments = example_from_schema(parameters if parameters is not None else {})
            arguments_json = json.dumps(
                arguments if isinstance(arguments, dict) else {}, separators=(",", ":")
            )
            call = {
                "id": "call_" + _sha256_hex(body, f":tool_call:{index}".encode())[:20],
                "type": "function",
                "function": {"name": tool["name"], "arguments": arguments_json},
            }
            tokens = len(_words(tool["name"])) + len(_words(arguments_json))
            choices.append(_Choice(index, None, (call,), "tool_calls", tokens))
        else:
            content, finish, tokens = _text_for_choice(
                echo, index, request.get("response_format"), limit
            )
            choices.append(_Choice(index, content, (), finish, tokens))

    prompt_tokens = sum(len(_words(_text_of(m.get("content")))) for m in messages) + 3
    usage = _usage(prompt_tokens, sum(choice.completion_tokens for choice in choices))
    header = {
        "id": "chatcmpl-" + _sha256_hex(body)[:24],
        "created": CREATED,
        "model": _response_model(model),
        "service_tier": _service_tier(request.get("service_tier")),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }

    if request.get("stream") is True:
        stream_options = request.get("stream_options")
        include_usage = isinstance(stream_options, dict) and bool(
            stream_options.get("include_usage")
        )
        events = _stream_events(header, choices, usage if include_usage else None)
        if model == "error-in-stream":
            error = {
                "error": {
                    "message": "The server had an error while streaming your response.",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
            events = (events[0], _dumps(error))
        return _Reply(status=200, events=events)

    payload = {
        "id": header["id"],
        "object": "chat.completion",
        "created": header["created"],
        "model": header["model"],
        "choices": [_message_choice(choice) for choice in choices],
        "usage": usage,
        "service_tier": header["service_tier"],
        "system_fingerprint": header["system_fingerprint"],
    }
    return _Reply(status=200, payload=payload)


def _message_choice(choice: _Choice) -> JSONObject:
    message: JSONObject = {
        "role": "assistant",
        "content": choice.content,
        "refusal": None,
        "annotations": [],
    }
    if choice.tool_calls:
        message["tool_calls"] = list(choice.tool_calls)
    return {
        "index": choice.index,
        "message": message,
        "logprobs": None,
        "finish_reason": choice.finish_reason,
    }


def _stream_events(
    header: JSONObject, choices: list[_Choice], usage: JSONObject | None
) -> tuple[str, ...]:
    def chunk(chunk_choices: list[JSONObject], chunk_usage: JSONObject | None = None) -> str:
        return _dumps(
            {
                "id": header["id"],
                "object": "chat.completion.chunk",
                "created": header["created"],
                "model": header["model"],
                "service_tier": header["service_tier"],
                "system_fingerprint": header["system_fingerprint"],
                "choices": chunk_choices,
                "usage": chunk_usage,
            }
        )

    def delta(index: int, body: JSONObject, finish_reason: str | None = None) -> JSONObject:
        return {"index": index, "delta": body, "logprobs": None, "finish_reason": finish_reason}

    events: list[str] = []
    for choice in choices:
        role = {"role": "assistant", "content": "", "refusal": None}
        events.append(chunk([delta(choice.index, role)]))
    for choice in choices:
        for piece in _words(choice.content or ""):
            events.append(chunk([delta(choice.index, {"content": piece})]))
        for position, call in enumerate(choice.tool_calls):
            function = call["function"]
            opening = {
                "index": position,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            events.append(chunk([delta(choice.index, {"tool_calls": [opening]})]))
            arguments: str = function["arguments"]
            for start in range(0, len(arguments), ARGUMENT_FRAGMENT_SIZE):
                fragment = {
                    "index": position,
                    "function": {"arguments": arguments[start : start + ARGUMENT_FRAGMENT_SIZE]},
                }
                events.append(chunk([delta(choice.index, {"tool_calls": [fragment]})]))
    for choice in choices:
        events.append(chunk([delta(choice.index, {}, choice.finish_reason)]))
    if usage is not None:
        events.append(chunk([], usage))
    events.append("[DONE]")
    return tuple(events)


# --------------------------------------------------------------------------- embeddings


def _embedding_vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(byte / 127.5 - 1.0, 6) for byte in digest[:4]]


def _embeddings(request: Any) -> _Reply:
    if not isinstance(request, dict):
        return _invalid_request("We could not parse the JSON body of your request.")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        return _invalid_request("you must provide a model parameter", param="model")
    failure = _model_error(model)
    if failure is not None:
        return failure
    raw_input = request.get("input")
    if isinstance(raw_input, str):
        inputs: list[Any] = [raw_input]
    elif isinstance(raw_input, list) and raw_input:
        inputs = raw_input
    else:
        return _invalid_request("'input' is a required property", param="input")
    as_base64 = request.get("encoding_format") == "base64"
    data: list[JSONObject] = []
    tokens = 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else _dumps(item)
        tokens += max(1, len(_words(text)))
        vector = _embedding_vector(text)
        embedding: Any = vector
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return _Reply(status=200, payload=payload)


# --------------------------------------------------------------------------- HTTP plumbing


def _not_found(method: str, path: str) -> _Reply:
    return _error(404, f"Invalid URL ({method} {path})", "invalid_request_error")


def _route(method: str, target: str, parsed: Any, body: bytes, body_is_json: bool) -> _Reply:
    path = urlsplit(target).path
    if method != "POST" or path not in (CHAT_PATH, EMBEDDINGS_PATH):
        return _not_found(method, path)
    if not body_is_json:
        return _invalid_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        )
    if path == CHAT_PATH:
        return _chat_completion(parsed, body)
    return _embeddings(parsed)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: OpenAIServer, port: int) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients hanging up mid-response are normal in tests."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openai-local-test-server"
    sys_version = ""

    def _owner_server(self) -> _Server:
        server = self.server
        assert isinstance(server, _Server)
        return server

    def setup(self) -> None:
        super().setup()
        server = self._owner_server()
        with server.connections_lock:
            server.connections.add(self.connection)

    def finish(self) -> None:
        server = self._owner_server()
        with server.connections_lock:
            server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr logging."""

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """A constant ``Date`` header (the ``created`` instant), so replies ignore the clock."""
        return DATE_HEADER

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send(_invalid_request("Malformed request body."), "", gzip_ok=False)
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        parsed: Any = None
        body_is_json = False
        try:
            parsed = json.loads(body)
            body_is_json = True
        except ValueError:
            parsed = None
        received = ReceivedRequest(
            method=self.command,
            path=self.path,
            headers=headers,
            body=body,
            json=parsed,
        )
        sequence = self._owner_server().owner._record(received)
        request_id = (
            "req_" + _sha256_hex(f"{sequence}:{self.command}:{self.path}:".encode(), body)[:32]
        )
        try:
            reply = _route(self.command, self.path, parsed, body, body_is_json)
        except Exception as exc:  # a bug in this server: report it to the client, not stderr
            reply = _error(
                500, f"openai_server bug: {exc!r}", "server_error", extra_headers=_NO_RETRY
            )
        gzip_ok = headers.get("x-local-gzip") == "1" and "gzip" in headers.get(
            "accept-encoding", ""
        )
        if "x-local-leak" in headers and reply.status < 400:
            reply = _leaking(reply, headers, self.path)
        if "x-local-shape" in headers and reply.status < 400:
            reply = _reshaped(reply, headers["x-local-shape"])
        try:
            self._send(reply, request_id, gzip_ok=gzip_ok, encoding=headers.get("x-local-encoding"))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _common_headers(self, request_id: str) -> None:
        self.send_header("openai-organization", ORGANIZATION)
        self.send_header("openai-project", PROJECT)
        self.send_header("openai-processing-ms", PROCESSING_MS)
        self.send_header("openai-version", API_VERSION)
        self.send_header("x-request-id", request_id or "req_" + "0" * 32)
        for cookie in COOKIES:
            self.send_header("Set-Cookie", cookie)

    def _send(
        self, reply: _Reply, request_id: str, *, gzip_ok: bool, encoding: str | None = None
    ) -> None:
        self.send_response(reply.status)
        self._common_headers(request_id)
        for name, value in reply.extra_headers:
            self.send_header(name, value)
        if encoding is not None:
            self._send_encoded(reply, encoding)
            return
        if reply.raw is not None:
            content_type, content = reply.raw
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)
            self.wfile.flush()
            return
        if reply.events is not None:
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in reply.events:
                data = f"data: {event}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        content = _dumps(reply.payload).encode()
        if gzip_ok:
            content = gzip.compress(content, mtime=0)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)
        self.wfile.flush()

    def _send_encoded(self, reply: _Reply, encoding: str) -> None:
        """The whole body (a stream too) compressed as ``x-local-encoding`` asks."""
        if reply.raw is not None:
            content_type, content = reply.raw
        elif reply.events is not None:
            content = "".join(f"data: {event}\n\n" for event in reply.events).encode()
            content_type = "text/event-stream; charset=utf-8"
        else:
            content = _dumps(reply.payload).encode()
            content_type = "application/json"
        coding, content = _compressed(content, encoding)
        self.send_header("Content-Encoding", coding)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)
        self.wfile.flush()


# --------------------------------------------------------------------------- leaks, for tests
#
# ``x-local-encoding: gzip | deflate | raw-deflate | br`` compresses a body (a stream too).
# ``x-local-leak: FORM`` puts a credential into the answer, ``x-local-leak-from: SOURCE`` says
# which: ``authorization`` (the default: the bearer token, or the password of Basic),
# ``proxy-authorization``, another header's name, ``query:NAME`` or ``env:NAME`` (a value only
# the server knows). FORM is ``plain``, ``base64``, ``base64url`` or ``url`` (the answer's
# content holds it so encoded), ``401`` (an error that repeats it), or, for a streamed request,
# ``split:content``, ``split:refusal``, ``split:reasoning_content`` (the value cut in two
# events of that delta field) or ``split:arguments`` (in a tool call's argument fragments).
# Forms written with JSON escapes (every character of the value as ``\uXXXX``): ``escaped``
# (the content of a JSON body), ``bom`` (the same body after a UTF-8 byte order mark),
# ``utf-16`` (the same body in UTF-16 with its byte order mark), ``ndjson`` (an
# ``application/x-ndjson`` body, the value in its second line), and for a streamed request
# ``single:content``, ``single:refusal``, ``single:reasoning_content`` or ``single:arguments``
# (the whole value in ONE event of that delta field). ``hex`` puts the value's UTF-8 bytes in
# hex into the content.


def _escaped(value: str) -> str:
    """``value`` as a JSON string's inside, every character ``\\uXXXX``."""
    return "".join(f"\\u{ord(c):04x}" for c in value)


def _with_escaped(payload: Any, place: str, value: str) -> str:
    """``payload`` as JSON text, with the string ``place`` in it replaced by ``value``
    JSON-escaped character by character."""
    text = _dumps(payload)
    marker = _dumps(place)
    if text.count(marker) != 1:
        raise ValueError(f"openai_server bug: {place!r} is not once in the payload")
    return text.replace(marker, f'"{_escaped(value)}"')


def _compressed(content: bytes, encoding: str) -> tuple[str, bytes]:
    import zlib

    if encoding == "gzip":
        return "gzip", gzip.compress(content, mtime=0)
    if encoding == "deflate":
        return "deflate", zlib.compress(content)
    if encoding == "raw-deflate":
        engine = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return "deflate", engine.compress(content) + engine.flush()
    if encoding == "br":
        import brotli

        return "br", bytes(brotli.compress(content))
    raise ValueError(f"unknown x-local-encoding {encoding!r}")


def _credential(source: str, headers: dict[str, str], target: str) -> str:
    import os
    from urllib.parse import parse_qs

    if source.startswith("env:"):
        return os.environ[source[len("env:") :]]
    if source.startswith("query:"):
        return parse_qs(urlsplit(target).query)[source[len("query:") :]][0]
    value = headers[source]
    scheme, _, credential = value.partition(" ")
    if scheme.lower() == "bearer":
        return credential
    if scheme.lower() == "basic":
        return base64.b64decode(credential).decode().partition(":")[2]
    return value


def _reshaped(reply: _Reply, spec: str) -> _Reply:
    """A completion with fields changed, as a service changes its answers over time.

    ``x-local-shape: finish_reason=length;service_tier=flex;model=m-2025-01-01`` sets those
    top-level or first-choice fields; ``usage=none`` drops the usage. Other replies pass."""
    payload = reply.payload
    if not isinstance(payload, dict) or payload.get("object") != "chat.completion":
        return reply
    payload = json.loads(json.dumps(payload))
    for part in filter(None, spec.split(";")):
        name, _, value = part.partition("=")
        if name == "finish_reason":
            payload["choices"][0]["finish_reason"] = value
        elif name == "usage" and value == "none":
            payload.pop("usage", None)
        else:
            payload[name] = value
    return replace(reply, payload=payload)


def _leaking(reply: _Reply, headers: dict[str, str], target: str) -> _Reply:
    from urllib.parse import quote

    value = _credential(headers.get("x-local-leak-from", "authorization"), headers, target)
    form = headers["x-local-leak"]
    if form == "401":
        return _error(
            401,
            f"Incorrect API key provided: {value}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            code="invalid_api_key",
            extra_headers=_NO_RETRY,
        )
    if form.startswith("split:"):
        return _split(reply, form[len("split:") :], value)
    if form.startswith("single:"):
        return _single(reply, form[len("single:") :], value)
    if form in ("escaped", "bom", "utf-16", "ndjson"):
        return _escaped_body(reply, form, value)
    encoded = {
        "plain": value,
        "base64": base64.b64encode(f"token={value}".encode()).decode(),
        "base64url": base64.urlsafe_b64encode(f"token={value}".encode()).decode().rstrip("="),
        "url": quote(value, safe=""),
        "hex": value.encode().hex(),
    }[form]
    payload = json.loads(_dumps(reply.payload))
    payload["choices"][0]["message"]["content"] = f"Your credential: {encoded}"
    return _Reply(reply.status, payload, None, reply.extra_headers)


def _split(reply: _Reply, field: str, value: str) -> _Reply:
    if reply.events is None:
        raise ValueError("x-local-leak: split:… needs a streamed request")
    chunks = [json.loads(event) for event in reply.events[:-1]]
    done = reply.events[-1]
    half = len(value) // 2
    if field == "arguments":
        pieces = ['{"key": "' + value[:half], value[half:] + '"}']
    else:
        pieces = [f"key={value[:half]}", f"{value[half:]}."]
    first, *rest = chunks
    template = next(c for c in rest if c["choices"] and "finish_reason" in c["choices"][0])
    leaked = []
    for piece in pieces:
        chunk = json.loads(json.dumps(template))
        choice = chunk["choices"][0]
        choice["finish_reason"] = None
        if field == "arguments":
            call = {"index": 0, "function": {"arguments": piece}}
            if not leaked:
                call.update(id="call_leak", type="function")
                call["function"]["name"] = "remember"
            choice["delta"] = {"tool_calls": [call]}
        else:
            choice["delta"] = {field: piece}
        leaked.append(chunk)
    tail = [c for c in rest if not c["choices"] or c["choices"][0].get("finish_reason")]
    if field == "arguments":
        for chunk in tail:
            for choice in chunk["choices"]:
                choice["finish_reason"] = "tool_calls"
    events = (*(_dumps(c) for c in [first, *leaked, *tail]), done)
    return _Reply(reply.status, None, events, reply.extra_headers)


def _escaped_body(reply: _Reply, form: str, value: str) -> _Reply:
    if reply.events is not None or reply.payload is None:
        raise ValueError(f"x-local-leak: {form} needs a request that is not streamed")
    payload = json.loads(_dumps(reply.payload))
    place = "\x00credential\x00"
    if form == "ndjson":
        # The answer as two documents, one a line; the value is in the second.
        first = {"object": "chat.completion.prelude", "id": payload["id"]}
        payload["choices"][0]["message"]["content"] = place
        text = _dumps(first) + "\n" + _with_escaped(payload, place, value) + "\n"
        return _Reply(
            reply.status,
            extra_headers=reply.extra_headers,
            raw=("application/x-ndjson", text.encode()),
        )
    payload["choices"][0]["message"]["content"] = place
    text = _with_escaped(payload, place, value)
    if form == "bom":
        content = b"\xef\xbb\xbf" + text.encode()
    elif form == "utf-16":
        content = text.encode("utf-16")  # with its byte order mark
    else:
        content = text.encode()
    return _Reply(
        reply.status, extra_headers=reply.extra_headers, raw=("application/json", content)
    )


def _single(reply: _Reply, field: str, value: str) -> _Reply:
    """The whole value in ONE event of ``field``, written with JSON escapes."""
    if reply.events is None:
        raise ValueError("x-local-leak: single:… needs a streamed request")
    chunks = [json.loads(event) for event in reply.events[:-1]]
    done = reply.events[-1]
    first, *rest = chunks
    template = next(c for c in rest if c["choices"] and "finish_reason" in c["choices"][0])
    chunk = json.loads(json.dumps(template))
    choice = chunk["choices"][0]
    choice["finish_reason"] = None
    place = "\x00credential\x00"
    if field == "arguments":
        # The arguments are JSON text inside a JSON string: escaped once, decoded once.
        call = {
            "index": 0,
            "id": "call_leak",
            "type": "function",
            "function": {"name": "remember", "arguments": place},
        }
        choice["delta"] = {"tool_calls": [call]}
        text = _with_escaped(chunk, place, '{"key": "' + value + '"}')
    else:
        choice["delta"] = {field: place}
        text = _with_escaped(chunk, place, f"key={value}.")
    tail = [c for c in rest if not c["choices"] or c["choices"][0].get("finish_reason")]
    if field == "arguments":
        for later in tail:
            for item in later["choices"]:
                item["finish_reason"] = "tool_calls"
    # The first event has no such field (as many servers send it): only one event holds it.
    first = json.loads(json.dumps(first))
    for item in first["choices"]:
        item["delta"].pop(field, None)
    events = (_dumps(first), text, *(_dumps(c) for c in tail), done)
    return _Reply(reply.status, None, events, reply.extra_headers)


class OpenAIServer:
    """A local OpenAI-compatible server running in a daemon thread.

    ``port=0`` picks a free port at :meth:`start`.  Use it as a context manager
    or call :meth:`start` / :meth:`stop` yourself.
    """

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._count = 0

    # lifecycle -----------------------------------------------------------

    def start(self) -> Self:
        """Bind ``127.0.0.1`` and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("OpenAIServer is already running")
        server = _Server(self, self._requested_port)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"openai-server-{server.server_address[1]}",
            daemon=True,
        )
        self._server = server
        self._thread = thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and free the port. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = None
        self._thread = None
        server.shutdown()
        with server.connections_lock:
            connections = list(server.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # addresses -----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (the requested one before :meth:`start` if it was not 0)."""
        if self._server is not None:
            port: int = self._server.server_address[1]
            return port
        if self._requested_port:
            return self._requested_port
        raise RuntimeError("OpenAIServer has not been started, so it has no port yet")

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1`` -- pass it as the SDK's ``base_url``."""
        return f"http://{HOST}:{self.port}/v1"

    # received requests -----------------------------------------------------

    def _record(self, request: ReceivedRequest) -> int:
        with self._lock:
            self._count += 1
            self._requests.append(request)
            return self._count

    @property
    def request_count(self) -> int:
        """Number of HTTP requests received since start (or the last :meth:`reset`)."""
        with self._lock:
            return self._count

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot (copy) of the requests received, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget the requests received so far and zero :attr:`request_count`."""
        with self._lock:
            self._count = 0
            self._requests.clear()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible API locally.")
    parser.add_argument("--port", type=int, default=8765, help="port to bind (default 8765)")
    args = parser.parse_args(argv)
    with OpenAIServer(port=args.port) as server:
        print(f"OpenAI-compatible test server listening on {server.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping", flush=True)


if __name__ == "__main__":
    main()
