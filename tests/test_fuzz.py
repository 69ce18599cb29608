"""Fuzzing the cassette reader: whatever a recorder wrote, loading it works or fails cleanly.

The property, for ANY input file:

* ``load_cassette(path)`` (and ``strict=True``) returns a :class:`Cassette` or raises
  :class:`CassetteError` whose text names the path (and the interaction index and field where
  one applies); no other exception escapes;
* on a returned cassette, ``cassette.completions`` and every ``exchange.completion`` work or
  raise :class:`CassetteError` by the same rule, and ``exchange.error`` (and its text),
  ``.chunks``, ``.violations``, ``.merged``, ``repr(cassette)`` and ``str(violation)`` never
  raise;
* loading never changes the file, and never runs what a YAML Python tag asks for;
* ``chatresp check PATH`` (when the command exists) exits 0, 1 or 2, without a traceback.

Inputs start from real cassettes (``cassettes/test_weather``) and from generated ones (plain,
streamed, tool call, n=2, errors, gzip ``!!binary`` bodies; vcrpy's YAML and JSON serializers,
the older httpx layout, pydantic-ai's ``parsed_body``, the readable format), then are mutated:
bytes (truncation, flips, insertions, non-UTF-8, line ends), the YAML/JSON tree (a node
replaced by a value of another type, a field removed or renamed), the JSON bodies and SSE
streams inside, gzip and base64 data, YAML aliases (small, bounded bombs), duplicate keys,
cycles and Python tags.

Profiles: ``ci`` (the default: 60 examples a test, well under 20 s) and ``long`` (5000)::

    /work/venv/bin/pytest -q tests/test_fuzz.py
    HYPOTHESIS_PROFILE=long timeout 300 /work/venv/bin/pytest -q tests/test_fuzz.py -x

Every bug the fuzzers found has a reproducer in ``KNOWN_BUGS``, kept as a regression test.
"""

from __future__ import annotations

import base64
import copy
import gzip
import http.server
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from pytest_chatresp import Cassette, CassetteError, load_cassette
from pytest_chatresp.cassette.stream import looks_like_sse, merge_chunks, parse_sse
from pytest_chatresp.errors import Violation, display_path, show_value

# --- settings -----------------------------------------------------------------------------------

# The suite's profile draws the same examples every run (a red CI is a regression, never luck);
# the long profile explores afresh each time.
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("long", settings.get_profile("ci"), max_examples=5000, derandomize=False)
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
# Applied test by test (not loaded globally), so other test modules keep their own settings.
FUZZ = settings.get_profile(_PROFILE if _PROFILE in ("ci", "long") else "ci")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "cassettes" / "test_weather").glob("*.yaml"))
EXAMPLE_TEXTS = [p.read_bytes() for p in EXAMPLES]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: The example documents, parsed once (and copied for each example through pickle, fast).
EXAMPLE_DOCUMENTS = [pickle.dumps(yaml.load(t, Loader=_LOADER)) for t in EXAMPLE_TEXTS]
#: What a YAML Python tag in a fuzzed file asks to create. It must never exist.
MARKER = Path(tempfile.gettempdir()) / f"chatresp-fuzz-marker-{os.getpid()}"
CHAT_URL = "https://api.openai.com/v1/chat/completions"

# --- the property -------------------------------------------------------------------------------


def check_error(exc: CassetteError, path: Path, index: int | None = None) -> None:
    """A ``CassetteError`` names the path, and the interaction index and field it has."""
    text = str(exc)
    shown = display_path(path)
    assert exc.violations, "a CassetteError without violations"
    for violation in exc.violations:
        assert isinstance(violation, Violation)
        line = str(violation)
        assert line.startswith(shown), f"{line!r} does not name {shown!r}"
        assert violation.message, f"an empty message: {violation!r}"
        if violation.index is not None:
            assert f"interaction {violation.index}" in line
        if violation.field:
            assert violation.field in line
        if index is not None:
            assert violation.index == index, f"{line!r} is not about interaction {index}"
        assert line in text


def check_cassette(cassette: Cassette, path: Path) -> None:
    """Everything a user reads from a loaded cassette works or raises ``CassetteError``."""
    assert isinstance(repr(cassette), str)
    assert len(cassette) == len(cassette.exchanges)
    for position, exchange in enumerate(cassette.exchanges):
        assert exchange.index == position
        error = exchange.error
        if error is not None:
            assert isinstance(str(error), str)
        assert isinstance(list(exchange.chunks), list)
        for violation in exchange.violations:
            assert isinstance(str(violation), str)
            assert violation.index == exchange.index
        assert exchange.merged is None or isinstance(exchange.merged, dict)
        assert isinstance(exchange.request.describe(), str)
        try:
            exchange.completion  # noqa: B018 - the property reads it
        except CassetteError as exc:
            check_error(exc, path, exchange.index)
    try:
        completions = cassette.completions
    except CassetteError as exc:
        check_error(exc, path)
    else:
        assert all(c is not None for c in completions)


def check_reader(path: Path, *, strict: bool) -> None:
    """The property for one file, in one mode; any other exception escapes."""
    before = path.read_bytes()
    try:
        cassette = load_cassette(path, strict=strict)
    except CassetteError as exc:
        check_error(exc, path)
        cassette = None
    assert path.read_bytes() == before, "loading changed the file"
    if cassette is not None:
        check_cassette(cassette, path)
    assert path.read_bytes() == before, "reading the cassette changed the file"
    assert not MARKER.exists(), "a YAML Python tag ran code"


@dataclass(frozen=True)
class Case:
    """One fuzzed file: its bytes and its suffix (``.yaml`` or ``.json``)."""

    data: bytes
    suffix: str = ".yaml"
    label: str = ""


def write_case(directory: str, case: Case) -> Path:
    path = Path(directory) / f"cassette{case.suffix}"
    path.write_bytes(case.data)
    return path


def escaped(case: Case) -> BaseException | None:
    """The exception that breaks the property on ``case``, if any (both modes)."""
    MARKER.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        path = write_case(directory, case)
        for strict in (False, True):
            try:
                check_reader(path, strict=strict)
            except Exception as exc:
                return exc
    return None


def check_case(case: Case) -> None:
    """Check the property on one generated file."""
    note(f"{case.label}: {case.suffix} file of {len(case.data)} bytes: {case.data[:3000]!r}")
    exc = escaped(case)
    if exc is not None:
        raise exc


# --- YAML and JSON text with values a dumper cannot write ---------------------------------------


@dataclass(frozen=True)
class Raw:
    """Text written as it is, in place of a value (a YAML tag, an alias, a JSON number)."""

    text: str


@dataclass(frozen=True)
class YamlRaw(Raw):
    """Raw text only YAML reads (a tag, a hexadecimal integer): never put in JSON text."""


#: An integer YAML reads (hexadecimal has no digit limit) but Python cannot print.
HUGE_HEX = YamlRaw("0x" + "f" * 4000)


def deep(levels: int) -> Raw:
    return Raw("[" * levels + "]" * levels)


def pairs(items: list[tuple[str, Any]]) -> Raw:
    """A mapping with duplicate keys allowed."""
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in items)
    return Raw("{" + body + "}")


_PLACEHOLDER = re.compile(r"\"?ZZFUZZ(\d+)ZZ\"?")


def render(document: Any, fmt: str, preamble: str = "") -> str:
    """``document`` as vcrpy's YAML (block style) or JSON serializer would write it.

    ``Raw`` values are written as their text, in place; in JSON, bytes become base64 text.
    """
    raws: list[str] = []

    def prepare(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"ZZFUZZ{len(raws) - 1}ZZ"
        if isinstance(value, dict):
            return {prepare(k): prepare(v) for k, v in value.items()}
        if isinstance(value, list):
            return [prepare(v) for v in value]
        if isinstance(value, bytes) and fmt == "json":
            return base64.b64encode(value).decode("ascii")
        return value

    prepared = prepare(document)
    if fmt == "json":
        text = json.dumps(prepared)
    else:
        text = yaml.safe_dump(prepared, width=10**9, allow_unicode=True, default_flow_style=False)
        text = preamble + text
    return _PLACEHOLDER.sub(lambda m: raws[int(m.group(1))], text)


# --- generated cassettes ------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
CREATED = st.sampled_from([1700000000, 1764000000, 1764000000, 0, -1, 10**30, 1700000000123])
TOKENS = st.sampled_from([0, 1, 5, 7, 10**30, -3])


@st.composite
def completion_body(draw: st.DrawFn, n: int = 1, tool: bool = False) -> dict[str, Any]:
    choices = []
    for index in range(n):
        message: dict[str, Any] = {"role": "assistant", "content": draw(TEXT), "refusal": None}
        finish = "stop"
        if tool:
            arguments = draw(st.sampled_from(['{"city":"Paris"}', "{}", '{"a": [1, 2]}']))
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ]
            finish = "tool_calls"
        choices.append(
            {"index": index, "message": message, "logprobs": None, "finish_reason": finish}
        )
    prompt, completion = draw(TOKENS), draw(TOKENS)
    return {
        "id": "chatcmpl-fuzz",
        "object": "chat.completion",
        "created": draw(CREATED),
        "model": "gpt-4o-mini",
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
        "service_tier": draw(st.sampled_from(["default", "flex", None, "on_demand"])),
        "system_fingerprint": "fp_fuzz",
    }


def chunks_of(body: dict[str, Any], pieces: int) -> list[dict[str, Any]]:
    """The stream of chunks a server sends for ``body``."""
    top: dict[str, Any] = {k: body[k] for k in ("id", "created", "model") if k in body}
    top["object"] = "chat.completion.chunk"
    out: list[dict[str, Any]] = []
    for choice in body["choices"]:
        message, index = choice["message"], choice["index"]
        out.append({**top, "choices": [{"index": index, "delta": {"role": "assistant"}}]})
        content = message.get("content") or ""
        step = max(1, len(content) // max(1, pieces))
        for start in range(0, len(content), step):
            delta = {"content": content[start : start + step]}
            out.append({**top, "choices": [{"index": index, "delta": delta}]})
        for position, call in enumerate(message.get("tool_calls") or []):
            delta = {"tool_calls": [{"index": position, **call}]}
            out.append({**top, "choices": [{"index": index, "delta": delta}]})
        finish = {"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}
        out.append({**top, "choices": [finish]})
    out.append({**top, "choices": [], "usage": body.get("usage")})
    return out


@st.composite
def sse_text(draw: st.DrawFn, chunks: list[dict[str, Any]]) -> str:
    """An SSE body, well-formed or broken in the ways recorders and servers break it."""
    end = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    events = [f"data: {json.dumps(c)}" for c in chunks]
    events.append(draw(st.sampled_from(["data: [DONE]", "data: [DONE]", "data: [DONE", ""])))
    for _ in range(draw(st.integers(0, 2))):
        broken = draw(
            st.sampled_from(
                [
                    "not-data: {}",
                    '{"id": "x"}',
                    'data: {"id": "chatcmpl-fuzz", "object": "chat.completion.chunk", "cho',
                    "event: error\ndata: this is not JSON",
                    'event: error\ndata: {"error": {"message": "overloaded"}}',
                    'data: {"error": "x"}',
                    "data:",
                    ": keep-alive",
                    "data: {}",
                    "data: null",
                    "data: [1, 2]",
                    "id: 7\nretry: 10",
                    "event:\ndata: {",
                    "",
                ]
            )
        )
        events.insert(draw(st.integers(0, len(events))), broken)
    separator = draw(st.sampled_from([end + end, end + end, end]))
    return separator.join(events) + separator


def request_body(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": draw(TEXT)}],
    }
    if kind == "stream":
        body.update(stream=True, stream_options={"include_usage": True})
    if kind == "n2":
        body["n"] = 2
    if kind == "tool":
        parameters = draw(
            st.sampled_from(
                [
                    {"type": "object", "properties": {"city": {"type": "string"}}},
                    {"type": "object", "required": ["city"]},
                    {"type": "object", "properties": {"a": {"type": "array", "maxItems": 1}}},
                ]
            )
        )
        body["tools"] = [
            {"type": "function", "function": {"name": "get_weather", "parameters": parameters}}
        ]
    if draw(st.integers(0, 4)) == 0:
        schema = draw(
            st.sampled_from(
                [
                    {"type": "object", "required": ["answer"]},
                    {"type": "string"},
                    {"type": "object", "properties": {"a": {"minimum": 3}}},
                ]
            )
        )
        body["response_format"] = draw(
            st.sampled_from(
                [
                    {"type": "json_object"},
                    {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
                ]
            )
        )
    return body


KINDS = ["plain", "stream", "tool", "n2", "error", "gzip", "deflate", "other", "stream-error"]


@st.composite
def interaction(draw: st.DrawFn) -> dict[str, Any]:
    """One interaction in vcrpy's layout, of every kind the example suite records."""
    kind = draw(st.sampled_from(KINDS))
    request = request_body(draw, "stream" if kind.startswith("stream") else kind)
    response_headers: dict[str, Any] = {"content-type": ["application/json"]}
    status = 200
    body = draw(completion_body(n=2 if kind == "n2" else 1, tool=kind == "tool"))
    text: str | bytes = json.dumps(body)
    uri = CHAT_URL
    if kind.startswith("stream"):
        chunks = chunks_of(body, draw(st.integers(1, 4)))
        if kind == "stream-error":
            chunks.insert(1, {"error": {"message": "server overloaded", "type": "server_error"}})
        text = draw(sse_text(chunks))
        response_headers["content-type"] = ["text/event-stream; charset=utf-8"]
    elif kind == "error":
        status = draw(st.sampled_from([400, 401, 429, 500, 503, 200]))
        error = {"message": draw(TEXT), "type": "requests", "param": None, "code": "rate_limit"}
        text = json.dumps({"error": error})
    elif kind in ("gzip", "deflate"):
        raw = json.dumps(body).encode()
        text = gzip.compress(raw) if kind == "gzip" else zlib.compress(raw)
        response_headers["content-encoding"] = [kind]
    elif kind == "other":
        uri = "https://api.openai.com/v1/embeddings"
        text = json.dumps({"object": "list", "data": [{"embedding": [0.1, 0.2]}]})
    return {
        "request": {
            "body": json.dumps(request, separators=(",", ":")),
            "headers": {"authorization": ["REDACTED"], "content-type": ["application/json"]},
            "method": "POST",
            "uri": uri,
        },
        "response": {
            "body": {"string": text},
            "headers": response_headers,
            "status": {"code": status, "message": "OK" if status == 200 else "Error"},
        },
    }


def relayout(item: dict[str, Any], layout: str) -> dict[str, Any]:
    """The same interaction in the older httpx layout or pydantic-ai's ``parsed_body``."""
    request, response = dict(item["request"]), dict(item["response"])
    if layout == "httpx":
        response["content"] = response.pop("body")["string"]
        response["status_code"] = response.pop("status")["code"]
    elif layout == "parsed":
        text = response["body"]["string"]
        try:
            response["parsed_body"] = json.loads(text)
        except ValueError:  # a stream, or compressed: pydantic-ai keeps those as text
            pass
        else:
            del response["body"]
        request["parsed_body"] = json.loads(request.pop("body"))
    return {"request": request, "response": response}


@st.composite
def generated_document(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A vcrpy cassette document and the serializer it is written with."""
    layout = draw(st.sampled_from(["vcrpy", "vcrpy", "httpx", "parsed"]))
    items = [relayout(draw(interaction()), layout) for _ in range(draw(st.integers(1, 3)))]
    has_bytes = any(
        isinstance(i["response"].get("body", {}).get("string"), bytes)
        for i in items
        if isinstance(i["response"].get("body"), dict)
    )
    fmt = "yaml" if has_bytes else draw(st.sampled_from(["yaml", "yaml", "json"]))
    return {"interactions": items, "version": 1}, fmt


# --- mutations ----------------------------------------------------------------------------------

#: Fields the brief names, hit more often than the rest.
FIELDS = frozenset(
    [
        "interactions",
        "request",
        "response",
        "body",
        "string",
        "status",
        "code",
        "message",
        "uri",
        "method",
        "headers",
        "content",
        "status_code",
        "parsed_body",
        "id",
        "object",
        "created",
        "model",
        "choices",
        "index",
        "delta",
        "role",
        "finish_reason",
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "tool_calls",
        "function",
        "arguments",
        "name",
        "type",
        "logprobs",
        "service_tier",
        "error",
        "n",
        "response_format",
        "tools",
        "json_schema",
        "schema",
        "parameters",
        "content-encoding",
        "content-type",
    ]
)

YAML_SNIPPETS = [
    f'!!python/object/apply:os.system ["touch {MARKER}"]',
    f"!!python/object/apply:subprocess.call [[touch, {MARKER}]]",
    f"!!python/object/apply:builtins.open [{MARKER}, w]",
    f'!!python/object/new:os.system ["touch {MARKER}"]',
    f"!!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path [{MARKER}]]",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:__main__.Evil {a: 1}",
    "!!python/tuple [1, 2]",
    "!!python/object/apply:multidict.istr [content-type]",
    '!!binary "not base64 at all!!"',
    '!!binary "H4sI%%%%"',
    "!!binary H4sIAAAAAAAAA",
    "2001-13-45",
    "2024-01-01 10:00:00",
    "0x" + "f" * 4000,
    "1:2:3:4:5",
    "!!float 1e400",
    "!!int 1e3",
    "!!int 0b" + "1" * 5000,
    ".nan",
    "-.inf",
    "&cycle [*cycle]",
    "&loop {a: *loop}",
    "*undefined_alias",
    "!!set {a, b}",
    "!!omap [a: 1, b: 2]",
    "!!pairs [a: 1, a: 2]",
    "{? [1, 2] : x}",
    "{2020-01-01: 1, 2020-01-02: 2}",
    "{!!binary YWJj: 1}",
    "{<<: {method: GET}, uri: 'http://x'}",
    "!<tag:example.com,2000:app/foo> bar",
    "!local 1",
    "~",
    "''",
    "'   '",
    "|\n  literal",
]

JSON_SNIPPETS = [
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "9" * 5000,
    "9" * 4000,
    "1" + "0" * 400,
    "-0",
    '"\\ud800"',
    '"\\u0000"',
    "1.0",
    "true",
]

STRINGS = [
    "",
    " ",
    "chat.completion",
    "chat.completion.chunk",
    "assistant",
    "user",
    "stop",
    "tool_calls",
    "eos",
    "[DONE]",
    "data: [DONE]",
    "data: {}",
    "event: error\ndata: nope",
    "1700000000",
    "200",
    "²",
    "١٢٣",
    "9" * 5000,
    "http://[::1/v1/chat/completions",
    "http://api.groq.com:99999/v1/chat/completions",
    "https://api.groq.com/openai/v1/chat/completions",
    "/v1/chat/completions",
    "gzip",
    "br",
    "deflate",
    "text/event-stream",
    "\x00",
    "\u2028",
    "{",
    '{"error": {"message": [1]}}',
    "[" * 50,
]


_STATUSES = ["²", "9" * 5000, " 200 ", "abc", -1, 10**30, 1.5, True, None, HUGE_HEX, 0, 999]
_TOKENS = [10**30, -1, 1.5, "3", None, True, HUGE_HEX, YamlRaw("1:2:3:4:5:6:7:8:9")]
_SCHEMAS = [
    {"type": "foo"},
    {"type": 5},
    {"pattern": "["},
    {"$ref": "#/nowhere"},
    {"$ref": "#"},
    {"$schema": 5},
    {"$schema": "http://example.invalid/unknown-draft"},
    {"properties": {"a": {"minimum": "x"}}},
    {"properties": {"a": {"type": "unknown"}}},
    {"properties": 5},
    {"required": "a"},
    {"enum": 5},
    {"items": [1]},
    {"maxLength": -1},
    {"format": "date-time", "type": "string"},
    [],
    "string",
]
#: Values aimed at one field: what breaks the code that reads that field.
TARGETED: dict[str, list[Any]] = {
    "uri": [
        "http://[::1/v1/chat/completions",
        "http://[zz]/v1/chat/completions",
        "http://api.groq.com:99999/v1/chat/completions",
        "http://api.groq.com:-1/v1/chat/completions",
        "https://api.groq.com/openai/v1/chat/completions",
        "/v1/chat/completions",
        "chat/completions",
        "",
        5,
        HUGE_HEX,
    ],
    "method": [None, 5, "", "get", ["POST"], HUGE_HEX],
    "code": _STATUSES,
    "status": [*_STATUSES, {"code": "²"}, {"code": HUGE_HEX}],
    "status_code": _STATUSES,
    "headers": [
        {"x": deep(990)},
        {"x": HUGE_HEX},
        {"x": [HUGE_HEX]},
        {HUGE_HEX: "x"},
        {"x": YamlRaw("&h [*h]")},
        {"content-encoding": ["gzip"]},
        {"content-encoding": ["br"]},
        {"content-encoding": ["deflate"]},
        {"content-type": ["text/event-stream"]},
        ["a", "b"],
        "x",
    ],
    "arguments": [
        "[" * 100_000,
        '{"a": ' + "9" * 5000 + "}",
        '{"a": 1e400}',
        "{",
        "null",
        "[]",
        '"x"',
    ],
    "content": ["9" * 5000, "[" * 100_000, "{", '{"a": NaN}', '{"answer": 1}', HUGE_HEX],
    "message": [deep(990), [HUGE_HEX], [1], {"a": 1}, HUGE_HEX, None],
    "created": [10**30, -1, 1.5, "1700000000", True, HUGE_HEX, Raw("1e400")],
    "prompt_tokens": _TOKENS,
    "completion_tokens": _TOKENS,
    "total_tokens": _TOKENS,
    "index": [HUGE_HEX, -1, True, "0", 10**30, 2, None],
    "n": [HUGE_HEX, 10**30, 0, -1, "2", True],
    "schema": _SCHEMAS,
    "parameters": _SCHEMAS,
    "model": [HUGE_HEX, 1, None, deep(990), [HUGE_HEX]],
    "id": [HUGE_HEX, 1, None, YamlRaw("2020-01-01")],
    "finish_reason": ["eos", None, 1, HUGE_HEX],
    "role": ["user", None, 1],
    "service_tier": ["on_demand", 1, HUGE_HEX],
    "string": [b"\x1f\x8bjunk", b"\xff\xfe", "data: [DONE", "[" * 5000, {"a": 1}, 5],
    "parsed_body": [{YamlRaw("2020-01-01"): 1}, {YamlRaw("!!binary YWJj"): 1}, "data: x", 5],
    "error": [{"message": deep(990)}, {"message": [HUGE_HEX]}, {"code": HUGE_HEX}, "x", 1],
}


def targeted_values(key: Any, yaml_ok: bool) -> list[Any]:
    values = TARGETED.get(key, []) if isinstance(key, str) else []
    return [v for v in values if yaml_ok or not isinstance(v, YamlRaw)]


def weird_values(yaml_ok: bool) -> st.SearchStrategy[Any]:
    """A value of any type, at any size: what a wrong recorder (or a bad edit) puts there."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([10**400, 10**30, -(10**30), 2**63, 0, 1, 200, 429]),
        st.floats(),
        st.sampled_from(STRINGS),
        TEXT,
        st.binary(max_size=16),
    )
    nested = st.one_of(
        st.lists(scalars, max_size=3),
        st.dictionaries(st.sampled_from(sorted(FIELDS)), scalars, max_size=3),
        st.sampled_from([deep(5000), deep(990), deep(500), deep(60)]),
        st.builds(
            pairs,
            st.lists(st.tuples(st.sampled_from(["a", "role", "id"]), st.integers()), max_size=3),
        ),
    )
    snippets = st.sampled_from(YAML_SNIPPETS if yaml_ok else JSON_SNIPPETS).map(Raw)
    return st.one_of(scalars, nested, snippets)


def _slots(tree: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) in a tree of dicts and lists."""
    stack = [tree]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node))
        for key in keys:
            yield node, key
            if isinstance(node[key], dict | list):
                stack.append(node[key])


RENAMES = st.sampled_from(["", "x", "Body", "STRING", "uri ", "status_code", "content", "json"])


@st.composite
def mutated_tree(draw: st.DrawFn, tree: Any, yaml_ok: bool) -> Any:
    """``tree`` with 1-3 mutations: a node replaced, a key removed or renamed, a node wrapped."""
    # Copies throughout: a mutation must never reach a value another example will draw.
    holder = {"root": copy.deepcopy(tree)}
    for _ in range(draw(st.integers(1, 3))):
        slots = list(_slots(holder))
        named = [s for s in slots if isinstance(s[1], str) and s[1] in FIELDS]
        use_named = draw(st.integers(0, 3)) > 0
        pool = named if named and use_named else slots
        container, key = pool[draw(st.integers(0, len(pool) - 1))]
        operation = draw(st.sampled_from(["replace"] * 4 + ["delete", "rename", "wrap"]))
        if container is holder:
            operation = "replace"
        targeted = targeted_values(key, yaml_ok)
        aimed = draw(st.integers(0, 3)) > 0
        if operation == "replace" and targeted and aimed:
            container[key] = copy.deepcopy(draw(st.sampled_from(targeted)))
        elif operation == "replace":
            container[key] = copy.deepcopy(draw(weird_values(yaml_ok)))
        elif operation == "wrap":
            container[key] = draw(st.sampled_from([[container[key]], {"string": container[key]}]))
        elif isinstance(container, dict):
            value = container.pop(key)
            if operation == "rename":
                container[draw(RENAMES) or f"{key}_"] = value
        else:
            del container[key]
    return holder["root"]


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one byte-level mutation."""
    position = draw(st.integers(0, len(data)))
    operation = draw(
        st.sampled_from(
            [
                "truncate",
                "flip",
                "insert",
                "non-utf8",
                "delete",
                "cr",
                "crlf",
                "duplicate-line",
                "drop-line",
                "tab",
                "bom",
                "utf16",
            ]
        )
    )
    if operation == "truncate":
        return data[:position]
    if operation == "flip" and position < len(data):
        flipped = data[position] ^ draw(st.integers(1, 255))
        return data[:position] + bytes([flipped]) + data[position + 1 :]
    if operation == "insert":
        return data[:position] + draw(st.binary(min_size=1, max_size=8)) + data[position:]
    if operation == "non-utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xfe\xff"]))
        return data[:position] + bad + data[position:]
    if operation == "delete":
        return data[:position] + data[position + draw(st.integers(1, 64)) :]
    if operation == "cr":
        return data.replace(b"\n", b"\r")
    if operation == "crlf":
        return data.replace(b"\n", b"\r\n")
    if operation == "bom":
        return b"\xef\xbb\xbf" + data
    if operation == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16")
    lines = data.split(b"\n")
    at = draw(st.integers(0, len(lines) - 1))
    if operation == "duplicate-line":
        lines.insert(at, lines[at])
    elif operation == "drop-line":
        del lines[at]
    elif operation == "tab":
        lines[at] = b"\t" + lines[at]
    return b"\n".join(lines)


@st.composite
def mutated_json_text(draw: st.DrawFn, text: str) -> str:
    """A JSON body with a node of another type, a field removed or renamed, or a bad number."""
    try:
        tree = json.loads(text)
    except ValueError:
        return draw(mutated_bytes(text.encode())).decode("utf-8", "replace")
    return render(draw(mutated_tree(tree, yaml_ok=False)), "json")


@st.composite
def mutated_sse(draw: st.DrawFn, text: str) -> str:
    """A stream with one event's JSON mutated, or its lines broken."""
    events = re.split(r"(\r\n|\r|\n){2}", text)
    datas = [i for i, e in enumerate(events) if e.startswith("data: {")]
    in_json = draw(st.booleans())
    if datas and in_json:
        at = datas[draw(st.integers(0, len(datas) - 1))]
        events[at] = "data: " + draw(mutated_json_text(events[at][len("data: ") :]))
        return "".join(events)
    return draw(mutated_bytes(text.encode())).decode("utf-8", "replace")


@st.composite
def mutated_compressed(draw: st.DrawFn, data: bytes) -> bytes:
    """Compressed data corrupted: valid magic, bad data; truncated; or another text inside."""
    operation = draw(st.sampled_from(["corrupt", "truncate", "magic-only", "recompress", "plain"]))
    if operation == "corrupt" and len(data) > 11:
        position = draw(st.integers(10, len(data) - 1))
        return data[:position] + bytes([data[position] ^ 0x55]) + data[position + 1 :]
    if operation == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if operation == "magic-only":
        return b"\x1f\x8b" + draw(st.binary(max_size=24))
    if operation == "recompress":
        try:
            inner = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            inner = b"{}"
        return gzip.compress(draw(mutated_bytes(inner)))
    return b'{"id": "plain bytes under a gzip header"}'


def _bodies(document: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """Every (part, key) holding a request or response body in a cassette document."""
    items = document.get("interactions") if isinstance(document, dict) else None
    for item in items if isinstance(items, list) else []:
        for side in ("request", "response"):
            part = item.get(side) if isinstance(item, dict) else None
            if not isinstance(part, dict):
                continue
            body = part.get("body")
            if isinstance(body, dict) and "string" in body:
                yield body, "string"
            elif isinstance(body, str | bytes):
                yield part, "body"
            for key in ("content", "parsed_body"):
                if key in part:
                    yield part, key


@st.composite
def mutated_body(draw: st.DrawFn, document: Any) -> Any:
    """``document`` with one body mutated: its JSON, its stream, its compressed bytes."""
    bodies = list(_bodies(document))
    if not bodies:
        return document
    part, key = bodies[draw(st.integers(0, len(bodies) - 1))]
    value = part[key]
    if isinstance(value, bytes):
        part[key] = draw(mutated_compressed(value))
    elif isinstance(value, str) and looks_like_sse(value):
        part[key] = draw(mutated_sse(value))
    elif isinstance(value, str):
        part[key] = draw(mutated_json_text(value))
    elif isinstance(value, dict | list):
        part[key] = draw(mutated_tree(value, yaml_ok=True))
    return document


def _bomb(levels: int, fanout: int) -> str:
    """A billion-laughs preamble, kept small: fanout**levels nodes at most (10**4 here)."""
    anchors = ["&b0 [" + ", ".join(["lol"] * fanout) + "]"]
    for level in range(1, levels):
        anchors.append(f"&b{level} [" + ", ".join([f"*b{level - 1}"] * fanout) + "]")
    return "_fuzz: [" + ", ".join(anchors) + "]\n"


# --- the strategies of fuzzed files -------------------------------------------------------------


@st.composite
def mutated_examples(draw: st.DrawFn) -> Case:
    """A real cassette of the example suite, with 1-3 byte-level mutations."""
    index = draw(st.integers(0, len(EXAMPLE_TEXTS) - 1))
    data = EXAMPLE_TEXTS[index]
    for _ in range(draw(st.integers(1, 3))):
        data = draw(mutated_bytes(data))
    return Case(data, draw(st.sampled_from([".yaml", ".yaml", ".json"])), EXAMPLES[index].name)


@st.composite
def tree_mutated_examples(draw: st.DrawFn) -> Case:
    """A real cassette parsed, its tree or a body mutated, written as YAML or JSON."""
    index = draw(st.integers(0, len(EXAMPLE_TEXTS) - 1))
    document = pickle.loads(EXAMPLE_DOCUMENTS[index])
    if draw(st.booleans()):
        document = draw(mutated_body(document))
    else:
        document = draw(mutated_tree(document, yaml_ok=True))
    fmt = draw(st.sampled_from(["yaml", "yaml", "json"]))
    return Case(render(document, fmt).encode(), f".{fmt}", f"tree of {EXAMPLES[index].name}")


@st.composite
def generated_cassettes(draw: st.DrawFn) -> Case:
    """A generated cassette (any kind, layout, serializer), then mutated in a body or tree."""
    document, fmt = draw(generated_document())
    if draw(st.integers(0, 9)) == 0:
        readable = _readable(document)
        if readable is not None:
            data = readable.encode()
            if draw(st.booleans()):
                data = draw(mutated_bytes(data))
            return Case(data, ".yaml", "readable format")
    operation = draw(st.sampled_from(["none", "body", "body", "tree", "bytes"]))
    if operation == "body":
        document = draw(mutated_body(document))
    elif operation == "tree":
        document = draw(mutated_tree(document, yaml_ok=fmt == "yaml"))
    data = render(document, fmt).encode()
    if operation == "bytes":
        data = draw(mutated_bytes(data))
    suffix = f".{fmt}" if draw(st.integers(0, 4)) else ".yml"
    return Case(data, suffix, f"generated {operation}")


@st.composite
def yaml_specials(draw: st.DrawFn) -> Case:
    """Aliases (a bounded bomb), cycles, duplicate keys, Python tags, odd YAML at any node."""
    document, _ = draw(generated_document())
    preamble = ""
    if draw(st.booleans()):
        fanout = draw(st.integers(2, 10))
        levels = draw(st.integers(1, 4 if fanout > 6 else 6))
        preamble = _bomb(levels, fanout)
        alias = Raw(f"*b{draw(st.integers(0, levels - 1))}")
        slots = list(_slots(document))
        for _ in range(draw(st.integers(1, 3))):
            container, key = slots[draw(st.integers(0, len(slots) - 1))]
            container[key] = alias
    for _ in range(draw(st.integers(0, 2))):
        slots = list(_slots(document))
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        container[key] = Raw(draw(st.sampled_from(YAML_SNIPPETS)))
    data = render(document, "yaml", preamble).encode()
    if draw(st.booleans()):  # duplicate keys: a line written twice, the second one changed
        lines = data.split(b"\n")
        at = draw(st.integers(0, len(lines) - 1))
        lines.insert(at + 1, re.sub(rb":( .*)?$", b": null", lines[at]))
        data = b"\n".join(lines)
    return Case(data, ".yaml", "yaml specials")


def _readable(document: dict[str, Any]) -> str | None:
    """The document in the plugin's readable format, when this version writes one."""
    try:
        from pytest_chatresp.cassette.readable import serialize
    except ImportError:
        return None
    try:
        return str(serialize(document))
    except Exception:
        return None


ANY_CASE = st.one_of(
    mutated_examples(), tree_mutated_examples(), generated_cassettes(), yaml_specials()
)

# --- the fuzz tests -----------------------------------------------------------------------------


@FUZZ
@given(mutated_examples())
def test_byte_mutations_of_example_cassettes(case: Case) -> None:
    check_case(case)


@FUZZ
@given(tree_mutated_examples())
def test_tree_mutations_of_example_cassettes(case: Case) -> None:
    check_case(case)


@FUZZ
@given(generated_cassettes())
def test_generated_and_mutated_cassettes(case: Case) -> None:
    check_case(case)


@FUZZ
@given(yaml_specials())
def test_yaml_aliases_tags_and_duplicate_keys(case: Case) -> None:
    check_case(case)


SSE_PIECES = [
    "data:",
    "data: ",
    "event:",
    "event: error",
    "id:",
    ":",
    "{",
    "}",
    "\n",
    "\r",
    "[DONE]",
]
SSE_PIECES += ['{"object": "chat.completion.chunk"}', '{"error": 1}', "x", " "]
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(sorted(FIELDS)) | TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    st.lists(st.sampled_from(SSE_PIECES)).map("".join) | st.text(),
    st.lists(
        st.dictionaries(st.sampled_from(sorted(FIELDS)) | TEXT, JSON_VALUES, max_size=6),
        max_size=5,
    ),
)
def test_stream_helpers_never_raise(text: str, chunks: list[dict[str, Any]]) -> None:
    looks_like_sse(text)
    events, _ = parse_sse(text)
    assert [e.position for e in events] == list(range(len(events)))
    merged = merge_chunks(chunks)
    assert merged["object"] == "chat.completion"
    assert isinstance(merged["choices"], list)


@settings(
    FUZZ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=ANY_CASE)
def test_cli_check_on_fuzzed_files(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_chatresp import cli

    check_case(case)
    with tempfile.TemporaryDirectory() as directory:
        path = write_case(directory, case)
        capsys.readouterr()
        status = cli.main(["check", str(path)])
        out, err = capsys.readouterr()
        assert path.read_bytes() == case.data
    note(f"chatresp check: {status}\n{out}{err}")
    assert status in (0, 1, 2)
    assert "Traceback" not in out + err
    assert "unexpected error" not in out + err
    assert not MARKER.exists()


# --- regression tests ---------------------------------------------------------------------------


def cassette(
    response: Any = None,
    *,
    request: Any = None,
    status: Any = 200,
    uri: Any = CHAT_URL,
    request_headers: Any = None,
    layout: str = "string",
) -> dict[str, Any]:
    """A one-interaction cassette document.

    With ``layout="parsed"`` (pydantic-ai's layout) bodies are YAML structure, so they can hold
    what JSON cannot (dates, hexadecimal integers beyond Python's 4300-digit limit).
    """
    response = completion() if response is None else response
    if layout == "parsed":
        request_part: dict[str, Any] = {"parsed_body": request}
        response_part: dict[str, Any] = {"parsed_body": response}
    else:
        request_part = {"body": None if request is None else json.dumps(request)}
        text = response if isinstance(response, str) else json.dumps(response)
        response_part = {"body": {"string": text}}
    request_part.update(method="POST", uri=uri, headers=request_headers or {})
    response_part.update(headers={}, status={"code": status, "message": "OK"})
    return {"interactions": [{"request": request_part, "response": response_part}], "version": 1}


def completion(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "Hi", "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    body.update(changes)
    return body


def _with_content(content: str) -> dict[str, Any]:
    body = completion()
    body["choices"][0]["message"]["content"] = content
    return body


def tool_completion(arguments: str) -> dict[str, Any]:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    body = completion()
    body["choices"][0]["finish_reason"] = "tool_calls"
    body["choices"][0]["message"].update(content=None, tool_calls=[call])
    return body


def yaml_case(document: Any, preamble: str = "") -> Case:
    return Case(render(document, "yaml", preamble).encode(), ".yaml")


@dataclass(frozen=True)
class KnownBug:
    """A failure the fuzzer found (fixed), its reproducer, and the module of the fix."""

    name: str
    module: str
    case: Callable[[], Case]


JSON_OBJECT = {"response_format": {"type": "json_object"}}
GROQ_URL = "https://api.groq.com/openai/v1/chat/completions"


def _json_schema_request(schema: Any) -> dict[str, Any]:
    return {"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}


def _tool_request(parameters: Any) -> dict[str, Any]:
    return {"tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}]}


KNOWN_BUGS = [
    # errors.py (fixed here): show_value called repr() unbounded.
    KnownBug(
        "strict-extra-field-huge-int",
        "errors.py",
        lambda: yaml_case(cassette(completion(extra=HUGE_HEX), layout="parsed")),
    ),
    KnownBug(
        "violation-value-list-with-huge-int",
        "errors.py",
        lambda: yaml_case(cassette(completion(model=[HUGE_HEX]), layout="parsed")),
    ),
    # cassette/
    KnownBug(
        "uri-invalid-ipv6",
        "cassette/exchange.py",
        lambda: yaml_case(cassette(uri="http://[::1/v1/chat/completions")),
    ),
    KnownBug(
        "status-superscript-digit", "cassette/exchange.py", lambda: yaml_case(cassette(status="²"))
    ),
    KnownBug(
        "status-too-many-digits",
        "cassette/exchange.py",
        lambda: yaml_case(cassette(status="9" * 5000)),
    ),
    KnownBug(
        "status-huge-int-error-text",
        "cassette/exchange.py",
        lambda: yaml_case(cassette({"error": "x"}, status=HUGE_HEX)),
    ),
    KnownBug(
        "header-value-huge-int",
        "cassette/document.py",
        lambda: yaml_case(cassette(request_headers={"x": HUGE_HEX})),
    ),
    KnownBug(
        "header-value-deep-list",
        "cassette/document.py",
        lambda: yaml_case(cassette(request_headers={"x": deep(990)})),
    ),
    KnownBug(
        "error-message-deep-list",
        "cassette/document.py",
        lambda: yaml_case(cassette({"error": {"message": deep(990)}}, status=429, layout="parsed")),
    ),
    KnownBug(
        "error-code-huge-int",
        "cassette/document.py",
        lambda: yaml_case(cassette({"error": {"code": HUGE_HEX}}, status=429, layout="parsed")),
    ),
    KnownBug(
        "parsed-body-date-key",
        "cassette/document.py",
        lambda: yaml_case(cassette({Raw("2020-01-01"): 1}, layout="parsed")),
    ),
    # checks.py
    KnownBug(
        "tool-arguments-deep-json",
        "checks.py",
        lambda: yaml_case(cassette(tool_completion("[" * 100000))),
    ),
    KnownBug(
        "tool-arguments-long-number",
        "checks.py",
        lambda: yaml_case(cassette(tool_completion('{"a": ' + "9" * 5000 + "}"))),
    ),
    KnownBug(
        "json-content-long-number",
        "checks.py",
        lambda: yaml_case(cassette(_with_content("9" * 5000), request=JSON_OBJECT)),
    ),
    KnownBug(
        "json-content-deep",
        "checks.py",
        lambda: yaml_case(cassette(_with_content("[" * 100000), request=JSON_OBJECT)),
    ),
    KnownBug(
        "json-schema-unknown-type",
        "checks.py",
        lambda: yaml_case(
            cassette(_with_content('{"a": 1}'), request=_json_schema_request({"type": "foo"}))
        ),
    ),
    KnownBug(
        "json-schema-bad-pattern",
        "checks.py",
        lambda: yaml_case(
            cassette(_with_content('"x"'), request=_json_schema_request({"pattern": "["}))
        ),
    ),
    KnownBug(
        "json-schema-dangling-ref",
        "checks.py",
        lambda: yaml_case(
            cassette(_with_content('{"a": 1}'), request=_json_schema_request({"$ref": "#/no"}))
        ),
    ),
    KnownBug(
        "json-schema-dollar-schema-int",
        "checks.py",
        lambda: yaml_case(
            cassette(_with_content('{"a": 1}'), request=_json_schema_request({"$schema": 5}))
        ),
    ),
    KnownBug(
        "tool-parameters-bad-minimum",
        "checks.py",
        lambda: yaml_case(
            cassette(
                tool_completion('{"a": 1}'),
                request=_tool_request({"properties": {"a": {"minimum": "x"}}}),
            )
        ),
    ),
    KnownBug(
        "tool-parameters-self-ref",
        "checks.py",
        lambda: yaml_case(
            cassette(tool_completion('{"a": 1}'), request=_tool_request({"$ref": "#"}))
        ),
    ),
    KnownBug(
        "usage-huge-int",
        "checks.py",
        lambda: yaml_case(
            cassette(
                completion(
                    usage={"prompt_tokens": HUGE_HEX, "completion_tokens": 1, "total_tokens": 1}
                ),
                layout="parsed",
            )
        ),
    ),
    KnownBug(
        "created-huge-int",
        "checks.py",
        lambda: yaml_case(cassette(completion(created=HUGE_HEX), layout="parsed")),
    ),
    KnownBug(
        "choice-index-huge-int",
        "checks.py",
        lambda: yaml_case(
            cassette(
                completion(choices=[{**completion()["choices"][0], "index": HUGE_HEX}]),
                layout="parsed",
            )
        ),
    ),
    KnownBug(
        "request-n-huge-int",
        "checks.py",
        lambda: yaml_case(cassette(request={"n": HUGE_HEX}, layout="parsed")),
    ),
    # providers.py
    KnownBug(
        "uri-port-out-of-range",
        "providers.py",
        lambda: yaml_case(cassette(completion(model=1), uri="http://x:99999/v1/chat/completions")),
    ),
    KnownBug(
        "provider-hint-deep-document",
        "providers.py",
        lambda: yaml_case(cassette(completion(model=deep(990)), uri=GROQ_URL, layout="parsed")),
    ),
    KnownBug(
        "provider-hint-huge-int",
        "providers.py",
        lambda: yaml_case(cassette(completion(model=HUGE_HEX), uri=GROQ_URL, layout="parsed")),
    ),
]


@pytest.mark.parametrize("bug", KNOWN_BUGS, ids=[bug.name for bug in KNOWN_BUGS])
def test_regression(bug: KnownBug) -> None:
    exc = escaped(bug.case())
    if exc is not None:
        raise exc


def test_the_example_cassettes_load_cleanly() -> None:
    """The shipped example cassettes load cleanly."""
    for data in EXAMPLE_TEXTS:
        assert escaped(Case(data)) is None


CODE_TAGS = [s for s in YAML_SNIPPETS if s.startswith("!!python/") and str(MARKER) in s]


@pytest.mark.parametrize("snippet", CODE_TAGS, ids=[s.split()[0] for s in CODE_TAGS])
def test_python_tags_never_run(snippet: str) -> None:
    document = cassette(request_headers={"x-evil": Raw(snippet)})
    document["extra"] = Raw(snippet)
    case = yaml_case(document)
    assert escaped(case) is None
    assert not MARKER.exists()


def test_show_value_is_bounded() -> None:
    """errors.show_value: the repr's start, in bounded time, whatever the value (fixed bug)."""
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    nested: list[Any] = []
    inner = nested
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    bomb: Any = ["lol"] * 10
    for _ in range(12):  # 10**13 leaves once expanded
        bomb = [bomb] * 10
    assert show_value(cyclic) == "[[...]]"
    assert show_value(nested, 10) == "<array nested too deeply to show>"
    assert show_value(bomb, 20) == "[[[[[[[[[[[[['lol',…"
    assert show_value(16**5000) == "<integer of 20001 bits>"
    assert show_value({"a": (1,), "b": {2}, "c": frozenset()}) == repr(
        {"a": (1,), "b": {2}, "c": frozenset()}
    )


_BOMB_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
from pytest_chatresp import CassetteError, load_cassette
try:
    load_cassette(sys.argv[1])
except CassetteError:
    pass
"""


@pytest.mark.skipif(sys.platform == "win32", reason="uses resource limits")
def test_alias_bomb_does_not_hang(tmp_path: Path) -> None:
    """A 1 KB billion-laughs file (10**8 nodes once expanded) loads or is refused at once.

    Run in a child process with a time and memory limit: the fuzz tests only use small bombs.
    """
    document = cassette(request_headers={"x": Raw("*b7")})
    path = tmp_path / "bomb.yaml"
    path.write_text(render(document, "yaml", _bomb(8, 10)))
    subprocess.run(
        [sys.executable, "-c", _BOMB_SCRIPT, str(path)],
        timeout=4,
        check=True,
        capture_output=True,
    )


class _SchemaServer(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - shared with the test, one server at a time

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"type": "string"}')

    def log_message(self, *args: Any) -> None:
        pass


def test_a_recorded_json_schema_ref_never_reaches_the_network() -> None:
    """Replay is offline: a ``$ref`` to a URL in a recorded request must not be fetched."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _SchemaServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _SchemaServer.hits.clear()
    try:
        url = f"http://127.0.0.1:{server.server_port}/schema.json"
        case = yaml_case(
            cassette(_with_content('{"a": 1}'), request=_json_schema_request({"$ref": url}))
        )
        exc = escaped(case)
    finally:
        server.shutdown()
        server.server_close()
    assert not _SchemaServer.hits, f"jsonschema fetched {_SchemaServer.hits}"
    if exc is not None:
        raise exc
