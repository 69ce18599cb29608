"""Reading cassette files: layouts, body encodings, streams, errors and broken input."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import zlib
from pathlib import Path
from typing import Any

import brotli
import pytest
import yaml
from vcr.request import Request as VcrRequest
from vcr.serialize import serialize as vcr_serialize
from vcr.serializers import jsonserializer, yamlserializer

from pytest_chatresp import Cassette, CassetteError, ChatCompletion, load_cassette
from pytest_chatresp.cassette import Exchange
from pytest_chatresp.cassette.cache import CassetteCache
from pytest_chatresp.errors import display_path
from pytest_chatresp.models import Source

CHAT_URL = "https://api.openai.com/v1/chat/completions"
Doc = dict[str, Any]


def completion(content: str = "Hello", **changes: Any) -> Doc:
    body: Doc = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": content, "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    body.update(changes)
    return body


def chunk(choices: list[Doc], **changes: Any) -> Doc:
    body: Doc = {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1700000001,
        "model": "gpt-4o-mini",
        "choices": choices,
    }
    body.update(changes)
    return body


def delta(index: int = 0, finish_reason: str | None = None, **fields: Any) -> Doc:
    return {"index": index, "delta": fields, "finish_reason": finish_reason}


def sse(*events: Doc, done: bool = True) -> str:
    """A server-sent event body, one ``data:`` event per chunk."""
    lines = [f"data: {json.dumps(event)}\n\n" for event in events]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines)


def interaction(
    body: Any,
    *,
    uri: str = CHAT_URL,
    status: int = 200,
    headers: dict[str, list[str]] | None = None,
) -> Doc:
    """One interaction as vcrpy's YAML serializer stores it."""
    return {
        "request": {
            "body": json.dumps({"model": "gpt-4o-mini", "messages": []}),
            "headers": {"Content-Type": ["application/json"]},
            "method": "POST",
            "uri": uri,
        },
        "response": {
            "body": {"string": body if isinstance(body, str | bytes) else json.dumps(body)},
            "headers": {"Content-Type": ["application/json"]} if headers is None else headers,
            "status": {"code": status, "message": "OK" if status < 400 else "Error"},
        },
    }


def write(path: Path, *interactions: Doc) -> Path:
    """A cassette as vcrpy's own YAML serializer writes it."""
    path.write_text(yamlserializer.serialize({"interactions": list(interactions), "version": 1}))
    return path


def only(cassette: Cassette) -> Exchange:
    (exchange,) = cassette.exchanges
    return exchange


def completion_of(exchange: Exchange) -> ChatCompletion:
    result = exchange.completion
    assert result is not None
    return result


# --- layouts ------------------------------------------------------------------------------------

VCRPY_YAML = """\
interactions:
- request:
    body: '{"messages": [{"role": "user", "content": "Hi there"}], "model": "gpt-4o-mini"}'
    headers:
      Content-Type:
      - application/json
    method: POST
    uri: https://api.openai.com/v1/chat/completions
  response:
    body:
      string: '{"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18", "service_tier": "default", "choices": [{"index":
        0, "message": {"role": "assistant", "content": "Hello!", "refusal": null},
        "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 9,
        "completion_tokens": 2, "total_tokens": 11}}'
    headers:
      Content-Type:
      - application/json
    status:
      code: 200
      message: OK
version: 1
"""


def test_vcrpy_yaml_layout(tmp_path: Path) -> None:
    path = tmp_path / "basic.yaml"
    path.write_text(VCRPY_YAML)
    cassette = load_cassette(path)
    exchange = only(cassette)
    assert exchange.is_chat
    assert exchange.is_completion
    assert not exchange.streamed
    assert exchange.status == 200
    assert exchange.request.method == "POST"
    assert exchange.request.model == "gpt-4o-mini"
    assert exchange.request.last_message == "Hi there"
    assert exchange.request.header("content-type") == "application/json"
    assert exchange.headers["content-type"] == ["application/json"]
    parsed = completion_of(exchange)
    assert parsed.model == "gpt-4o-mini-2024-07-18"
    assert parsed.service_tier == "default"
    assert parsed.choices[0].message.content == "Hello!"
    assert cassette.completions == [parsed]
    assert len(cassette) == 1
    assert list(cassette) == cassette.exchanges


def test_vcrpy_json_serializer_layout(tmp_path: Path) -> None:
    request = VcrRequest(
        "POST", CHAT_URL, json.dumps({"model": "m"}), {"Content-Type": "application/json"}
    )
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Content-Type": ["application/json"]},
        "body": {"string": json.dumps(completion("from json")).encode()},
    }
    text = vcr_serialize({"requests": [request], "responses": [response]}, jsonserializer)
    assert text.lstrip().startswith("{")
    path = tmp_path / "cassette.json"
    path.write_text(text)
    exchange = only(load_cassette(path))
    assert exchange.request.model == "m"
    assert completion_of(exchange).choices[0].message.content == "from json"


def test_json_text_under_a_yaml_name(tmp_path: Path) -> None:
    path = tmp_path / "cassette.yaml"
    path.write_text(jsonserializer.serialize({"interactions": [interaction(completion())]}))
    assert completion_of(only(load_cassette(path))).id == "chatcmpl-1"


def test_cassette_without_version(tmp_path: Path) -> None:
    path = tmp_path / "noversion.yaml"
    path.write_text(VCRPY_YAML.replace("version: 1\n", ""))
    assert "version" not in path.read_text()
    assert len(load_cassette(path).completions) == 1


def test_old_httpx_layout_content_and_status_code(tmp_path: Path) -> None:
    body = json.dumps(completion("old layout")).replace("'", "''")
    error = json.dumps({"error": {"message": "Bad key", "type": "auth", "code": "invalid_api_key"}})
    path = tmp_path / "httpx.yaml"
    path.write_text(
        f"""\
interactions:
- request:
    body: ''
    headers: {{}}
    method: POST
    uri: {CHAT_URL}
  response:
    content: '{body}'
    headers:
      Content-Type:
      - application/json
    http_version: HTTP/1.1
    status_code: 200
- request:
    body: ''
    headers: {{}}
    method: POST
    uri: {CHAT_URL}
  response:
    content: '{error}'
    headers: {{}}
    http_version: HTTP/1.1
    status_code: 401
version: 1
"""
    )
    ok, failed = load_cassette(path).exchanges
    assert ok.status == 200
    assert completion_of(ok).choices[0].message.content == "old layout"
    assert failed.status == 401
    assert failed.error is not None
    assert failed.error.message == "Bad key"
    assert failed.completion is None


def test_pydantic_ai_parsed_body_layout(tmp_path: Path) -> None:
    path = tmp_path / "parsed.yaml"
    path.write_text(
        """\
interactions:
- request:
    headers:
      content-type:
      - application/json
    method: POST
    parsed_body:
      messages:
      - content: What is the capital of France?
        role: user
      model: gpt-4o
    uri: https://example.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-12-01-preview
  response:
    headers:
      content-type:
      - application/json
    parsed_body:
      choices:
      - finish_reason: stop
        index: 0
        logprobs: null
        message:
          content: Paris.
          refusal: null
          role: assistant
      created: 1741880483
      id: chatcmpl-B
      model: gpt-4o-2024-11-20
      object: chat.completion
      prompt_filter_results: []
    status:
      code: 200
      message: OK
version: 1
"""
    )
    exchange = only(load_cassette(path))
    assert exchange.request.model == "gpt-4o"
    assert exchange.request.last_message == "What is the capital of France?"
    assert isinstance(exchange.json, dict)
    assert json.loads(str(exchange.body)) == exchange.json
    parsed = completion_of(exchange)
    assert parsed.choices[0].message.content == "Paris."
    assert parsed.model_extra == {"prompt_filter_results": []}


def test_parsed_body_with_yaml_only_types_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "dates.yaml"
    path.write_text(
        f"""\
interactions:
- request:
    method: POST
    uri: {CHAT_URL}
    parsed_body: {{model: m, when: 2024-01-01}}
  response:
    status: {{code: 200}}
    parsed_body: {{id: a, object: chat.completion, created: 2024-01-01, model: m, choices: []}}
"""
    )
    cassette = load_cassette(path)
    with pytest.raises(CassetteError, match=r"dates\.yaml, interaction 0: created: expected an"):
        _ = cassette.completions


def test_parsed_body_stream_stays_text(tmp_path: Path) -> None:
    stream = sse(
        chunk([delta(role="assistant", content="Hi")]), chunk([delta(finish_reason="stop")])
    )
    path = tmp_path / "parsed_stream.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "interactions": [
                    {
                        "request": {"method": "POST", "uri": CHAT_URL, "parsed_body": {"a": 1}},
                        "response": {"status": {"code": 200}, "parsed_body": stream},
                    }
                ]
            }
        )
    )
    exchange = only(load_cassette(path))
    assert exchange.streamed
    assert completion_of(exchange).choices[0].message.content == "Hi"


def test_multidict_istr_header_keys(tmp_path: Path) -> None:
    path = tmp_path / "istr.yaml"
    path.write_text(
        VCRPY_YAML.replace(
            "    headers:\n      Content-Type:\n      - application/json\n    method: POST",
            "    headers:\n"
            "      ? !!python/object/apply:multidict._multidict.istr\n"
            "      - Content-Type\n"
            "      : - application/json\n"
            "      ? !!python/object/apply:multidict._multidict.istr\n"
            "      - X-Stainless-Lang\n"
            "      : - python\n"
            "    method: POST",
        )
    )
    assert "!!python/object/apply" in path.read_text()
    with pytest.raises(yaml.YAMLError):  # a safe loader refuses the tag...
        yaml.safe_load(path.read_text())
    exchange = only(load_cassette(path))  # ...we read it as the plain header name
    assert exchange.request.header("X-Stainless-Lang") == "python"
    assert exchange.request.header("content-type") == "application/json"
    assert completion_of(exchange).id == "chatcmpl-1"


def test_python_tags_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "was-called"
    path = tmp_path / "evil.yaml"
    path.write_text(
        "interactions: []\n"
        "x: !!python/object/apply:os.system\n"
        f"- touch {marker}\n"
        "y: !!python/object/apply:builtins.print ['hello']\n"
    )
    assert len(load_cassette(path)) == 0
    assert not marker.exists()


# --- body encodings -----------------------------------------------------------------------------


def binary_yaml(path: Path, body: bytes, headers: dict[str, str]) -> Path:
    """A cassette whose response body is a literal ``!!binary`` block, as vcrpy writes it."""
    encoded = base64.encodebytes(body).decode().replace("\n", "\n        ")
    header_text = "".join(f"      {k}:\n      - {v}\n" for k, v in headers.items()) or "      {}\n"
    path.write_text(
        f"""\
interactions:
- request:
    body: null
    headers: {{}}
    method: POST
    uri: {CHAT_URL}
  response:
    body:
      string: !!binary |
        {encoded.rstrip()}
    headers:
{header_text}    status:
      code: 200
      message: OK
version: 1
"""
    )
    return path


@pytest.mark.parametrize(
    "headers",
    [{"Content-Encoding": "gzip", "Content-Type": "application/json"}, {}],
    ids=["with-header", "without-header"],
)
def test_binary_gzip_body(tmp_path: Path, headers: dict[str, str]) -> None:
    body = gzip.compress(json.dumps(completion("zipped")).encode())
    path = binary_yaml(tmp_path / "gz.yaml", body, headers)
    assert "!!binary" in path.read_text()
    exchange = only(load_cassette(path))
    assert json.loads(str(exchange.body))["id"] == "chatcmpl-1"
    assert completion_of(exchange).choices[0].message.content == "zipped"


def test_str_body_with_stale_gzip_header(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stale.yaml",
        interaction(completion("plain"), headers={"Content-Encoding": ["gzip"]}),
    )
    assert completion_of(only(load_cassette(path))).choices[0].message.content == "plain"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, no zlib header
        ("br", brotli.compress),
        ("gzip", gzip.compress),
    ],
    ids=["deflate", "raw-deflate", "brotli", "gzip"],
)
def test_compressed_bodies(tmp_path: Path, encoding: str, compress: Any) -> None:
    body = compress(json.dumps(completion(encoding)).encode())
    path = write(tmp_path / "enc.yaml", interaction(body, headers={"Content-Encoding": [encoding]}))
    assert completion_of(only(load_cassette(path))).choices[0].message.content == encoding


def test_binary_body_that_is_plain_utf8(tmp_path: Path) -> None:
    body = json.dumps(completion("héllo"), ensure_ascii=False).encode()
    path = binary_yaml(tmp_path / "utf8.yaml", body, {})
    assert completion_of(only(load_cassette(path))).choices[0].message.content == "héllo"


# --- which exchanges are chat completions -------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://res.openai.azure.com/openai/deployments/x/chat/completions?api-version=2024-06-01",
        "https://api.mistral.ai/v1/chat/completions#stream",
        "https://api.groq.com/openai/v1/chat/completions",
        "https://openrouter.ai/api/v1/chat/completions",
        "http://localhost:4000/chat/completions",
        "http://localhost:4000/chat/completions/",
    ],
)
def test_chat_detected_by_path(tmp_path: Path, uri: str) -> None:
    body = {"id": "x", "choices": "not a list"}  # invalid and without "object": path alone
    exchange = only(load_cassette(write(tmp_path / "c.yaml", interaction(body, uri=uri))))
    assert exchange.is_chat
    assert exchange.is_completion
    assert not exchange.valid


def test_chat_detected_by_body(tmp_path: Path) -> None:
    path = write(
        tmp_path / "writer.yaml",
        interaction(completion("by body"), uri="https://api.writer.com/v1/chat"),
    )
    exchange = only(load_cassette(path))
    assert exchange.is_chat
    assert completion_of(exchange).choices[0].message.content == "by body"


def test_stream_detected_by_chunk_objects(tmp_path: Path) -> None:
    stream = sse(
        chunk([delta(role="assistant", content="s")]), chunk([delta(finish_reason="stop")])
    )
    path = write(tmp_path / "s.yaml", interaction(stream, uri="https://api.writer.com/v1/chat"))
    exchange = only(load_cassette(path))
    assert exchange.is_chat
    assert exchange.streamed
    assert completion_of(exchange).choices[0].message.content == "s"


def test_non_chat_exchanges_are_kept_but_not_validated(tmp_path: Path) -> None:
    embeddings = {"object": "list", "data": [{"object": "embedding", "embedding": [0.1]}]}
    path = write(
        tmp_path / "mixed.yaml",
        interaction(embeddings, uri="https://api.openai.com/v1/embeddings"),
        interaction("<html>not json</html>", uri="https://example.com/page"),
        interaction(completion("chat")),
    )
    cassette = load_cassette(path)
    emb, html, chat = cassette.exchanges
    assert chat.is_chat
    for other in (emb, html):
        assert not other.is_chat
        assert other.completion is None
        assert other.valid
        assert not other.is_completion
    assert emb.json == embeddings
    assert html.body == "<html>not json</html>"
    assert [e.index for e in cassette.chat_exchanges] == [2]
    assert [c.choices[0].message.content for c in cassette.completions] == ["chat"]


# --- streams --------------------------------------------------------------------------------------


def stream_exchange(
    tmp_path: Path, body: str, name: str = "stream.yaml", skip_checks: tuple[str, ...] = ()
) -> Exchange:
    headers = {"Content-Type": ["text/event-stream; charset=utf-8"]}
    path = write(tmp_path / name, interaction(body, headers=headers))
    return only(load_cassette(path, skip_checks=skip_checks))


def test_stream_is_merged_into_one_completion(tmp_path: Path) -> None:
    body = sse(
        chunk([delta(role="assistant", content="")], system_fingerprint="fp_1", obfuscation="a"),
        chunk([delta(content="Hel")], system_fingerprint="fp_1", obfuscation="bb"),
        chunk([delta(content="lo")], usage=None),
        chunk([delta(finish_reason="stop")]),
        chunk([], usage={"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}),
    )
    exchange = stream_exchange(tmp_path, body)
    assert exchange.streamed
    assert exchange.stream_done
    assert len(exchange.chunks) == 5
    assert all(c.object == "chat.completion.chunk" for c in exchange.chunks)
    assert exchange.chunks[1].choices[0].delta.content == "Hel"
    parsed = completion_of(exchange)
    assert parsed.object == "chat.completion"
    assert parsed.id == "chatcmpl-9"
    assert parsed.created == 1700000001
    assert parsed.system_fingerprint == "fp_1"
    assert parsed.choices[0].message.content == "Hello"
    assert parsed.choices[0].message.role == "assistant"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None
    assert parsed.usage.total_tokens == 6
    assert "obfuscation" not in (parsed.model_extra or {})
    assert exchange.merged is not None
    assert exchange.merged["choices"][0]["message"]["content"] == "Hello"


def test_stream_tool_call_fragments_merge_by_index(tmp_path: Path) -> None:
    def call(index: int, **fields: Any) -> Doc:
        return {"index": index, **fields}

    body = sse(
        chunk([delta(role="assistant", content=None)]),
        chunk(
            [
                delta(
                    tool_calls=[
                        call(
                            0, id="call_a", type="function", function={"name": "f", "arguments": ""}
                        )
                    ]
                )
            ]
        ),
        chunk([delta(tool_calls=[call(0, function={"arguments": '{"ci'})])]),
        chunk(
            [
                delta(
                    tool_calls=[
                        call(
                            1,
                            id="call_b",
                            type="function",
                            function={"name": "g", "arguments": "{"},
                        )
                    ]
                )
            ]
        ),
        chunk(
            [
                delta(
                    tool_calls=[
                        call(0, function={"arguments": 'ty": "Paris"}'}),
                        call(1, function={"arguments": "}"}),
                    ]
                )
            ]
        ),
        chunk([delta(finish_reason="tool_calls")]),
    )
    parsed = completion_of(stream_exchange(tmp_path, body))
    message = parsed.choices[0].message
    assert message.content is None
    assert message.tool_calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [  # type: ignore[union-attr]
        ("call_a", "f", '{"city": "Paris"}'),
        ("call_b", "g", "{}"),
    ]
    assert parsed.choices[0].finish_reason == "tool_calls"


def test_stream_interleaved_choices(tmp_path: Path) -> None:
    body = sse(
        chunk([delta(0, role="assistant", content="A"), delta(1, role="assistant", content="X")]),
        chunk([delta(1, content="Y")]),
        chunk([delta(0, content="B")]),
        chunk([delta(1, finish_reason="length")]),
        chunk([delta(0, finish_reason="stop")]),
    )
    parsed = completion_of(stream_exchange(tmp_path, body))
    assert [(c.index, c.message.content, c.finish_reason) for c in parsed.choices] == [
        (0, "AB", "stop"),
        (1, "XY", "length"),
    ]


def test_stream_crlf_comments_no_space_and_no_done(tmp_path: Path) -> None:
    first = json.dumps(chunk([delta(role="assistant", content="Hi")]))
    second = json.dumps(chunk([delta(content="!", finish_reason="stop")]))
    body = (
        f": OPENROUTER PROCESSING\r\n\r\ndata:{first}\r\n\r\n: keep-alive\r\ndata: {second}\r\n\r\n"
    )
    # Without [DONE] the stream check objects; the merge itself does not care.
    exchange = stream_exchange(tmp_path, body, skip_checks=("stream",))
    assert not exchange.stream_done
    assert len(exchange.chunks) == 2
    assert completion_of(exchange).choices[0].message.content == "Hi!"


def test_stream_without_done_still_merges(tmp_path: Path) -> None:
    body = sse(chunk([delta(role="assistant", content="x", finish_reason="stop")]), done=False)
    exchange = stream_exchange(tmp_path, body, skip_checks=("stream",))
    assert exchange.stream_done is False
    assert completion_of(exchange).choices[0].message.content == "x"


def test_stream_without_content_type_is_recognised(tmp_path: Path) -> None:
    body = sse(chunk([delta(role="assistant", content="y", finish_reason="stop")]))
    exchange = only(load_cassette(write(tmp_path / "s.yaml", interaction(body, headers={}))))
    assert exchange.streamed
    assert completion_of(exchange).choices[0].message.content == "y"


def test_stream_missing_finish_reason_is_reported(tmp_path: Path) -> None:
    body = sse(chunk([delta(role="assistant", content="x")]))
    exchange = stream_exchange(tmp_path, body, name="nofinish.yaml")
    assert not exchange.valid
    with pytest.raises(
        CassetteError,
        match=r"nofinish\.yaml, interaction 0: choices\[0\]\.finish_reason: expected 'stop', "
        r"'length', 'tool_calls', 'content_filter' or 'function_call', got null "
        r"\(in the merged stream\)",
    ):
        _ = exchange.completion


def test_stream_bad_chunk_is_reported_with_its_position(tmp_path: Path) -> None:
    body = sse(
        chunk([delta(role="assistant", content="x")]),
        chunk([delta(finish_reason="eos")]),
    )
    exchange = stream_exchange(tmp_path, body, name="badchunk.yaml")
    assert [(v.field, v.message) for v in exchange.violations] == [
        (
            "chunk[1].choices[0].finish_reason",
            "expected 'stop', 'length', 'tool_calls', 'content_filter' or 'function_call', "
            "got 'eos'",
        )
    ]


# --- API errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, {"message": "Incorrect API key", "type": "invalid_request_error", "code": "bad_key"}),
        (429, {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}),
        (500, {"message": "The server had an error", "type": "server_error", "code": 500}),
    ],
)
def test_error_status_is_an_error_not_a_completion(tmp_path: Path, status: int, error: Doc) -> None:
    path = write(tmp_path / "err.yaml", interaction({"error": error}, status=status))
    cassette = load_cassette(path)
    exchange = only(cassette)
    assert exchange.is_chat
    assert exchange.error is not None
    assert exchange.error.status == status
    assert exchange.error.message == error["message"]
    assert exchange.error.type == error["type"]
    assert exchange.error.code == str(error["code"])
    assert str(exchange.error).startswith(f"HTTP {status} ({error['type']}): ")
    assert exchange.completion is None
    assert exchange.valid
    assert not exchange.is_completion
    assert cassette.completions == []
    assert cassette.errors == [exchange]


def test_error_status_with_a_non_json_body(tmp_path: Path) -> None:
    path = write(tmp_path / "502.yaml", interaction("<html>Bad gateway</html>", status=502))
    exchange = only(load_cassette(path))
    assert exchange.error is not None
    assert exchange.error.status == 502
    assert exchange.error.message == "<html>Bad gateway</html>"
    assert exchange.completion is None


def test_error_body_under_200(tmp_path: Path) -> None:
    body = {"error": {"message": "Filtered", "type": None, "code": "content_filter"}}
    exchange = only(load_cassette(write(tmp_path / "e200.yaml", interaction(body))))
    assert exchange.error is not None
    assert exchange.error.status == 200
    assert exchange.error.message == "Filtered"
    assert exchange.error.code == "content_filter"
    assert exchange.completion is None


def test_error_body_under_200_with_a_stream_content_type(tmp_path: Path) -> None:
    body = json.dumps({"error": {"message": "Token limit reached", "code": 400}})
    exchange = stream_exchange(tmp_path, body)
    assert exchange.error is not None
    assert exchange.error.message == "Token limit reached"
    assert exchange.error.code == "400"


@pytest.mark.parametrize(
    "error_event",
    [
        'data: {"error": {"message": "Overloaded", "type": "server_error"}}\n\n',
        'event: error\ndata: {"message": "Overloaded"}\n\n',
    ],
    ids=["error-data", "error-event"],
)
def test_stream_with_an_error_event(tmp_path: Path, error_event: str) -> None:
    body = sse(chunk([delta(role="assistant", content="Hi")]), done=False) + error_event
    exchange = stream_exchange(tmp_path, body)
    assert exchange.error is not None
    assert exchange.error.message == "Overloaded"
    assert exchange.completion is None
    assert len(exchange.chunks) == 1


# --- the cassette ---------------------------------------------------------------------------------


def test_completions_in_file_order_with_their_source(tmp_path: Path) -> None:
    path = write(
        tmp_path / "order.yaml",
        interaction(completion("first")),
        interaction({"object": "list", "data": []}, uri="https://api.openai.com/v1/embeddings"),
        interaction({"error": {"message": "slow down"}}, status=429),
        interaction(sse(chunk([delta(role="assistant", content="second", finish_reason="stop")]))),
        interaction(completion("third")),
    )
    cassette = load_cassette(path)
    completions = cassette.completions
    assert [c.choices[0].message.content for c in completions] == ["first", "second", "third"]
    shown = display_path(path)
    assert [c.source for c in completions] == [Source(shown, 0), Source(shown, 3), Source(shown, 4)]
    assert str(completions[1].source) == f"{shown}, interaction 3"
    assert [e.index for e in cassette.errors] == [2]
    assert [e.index for e in cassette.chat_exchanges] == [0, 2, 3, 4]
    assert cassette.violations == []
    assert "5 exchanges" in repr(cassette)


def test_strict_loading(tmp_path: Path) -> None:
    doc = completion()
    doc["x_groq"] = {"id": "r"}
    path = write(tmp_path / "strict.yaml", interaction(doc))
    assert len(load_cassette(path).completions) == 1
    with pytest.raises(CassetteError, match=r"interaction 0: x_groq: unknown field"):
        _ = load_cassette(path, strict=True).completions


def test_loading_leaves_the_file_unchanged(tmp_path: Path) -> None:
    gz = gzip.compress(json.dumps(completion()).encode())
    path = write(
        tmp_path / "same.yaml",
        interaction(gz, headers={"Content-Encoding": ["gzip"]}),
        interaction(sse(chunk([delta(role="assistant", content="x", finish_reason="stop")]))),
    )
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    stat = path.stat()
    cassette = load_cassette(path)
    _ = cassette.completions
    _ = [e.merged for e in cassette]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert path.stat().st_mtime_ns == stat.st_mtime_ns


# --- broken input ---------------------------------------------------------------------------------


def load_error(path: Path) -> CassetteError:
    with pytest.raises(CassetteError) as info:
        load_cassette(path)
    assert info.value.path == display_path(path)
    assert path.name in str(info.value)
    return info.value


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("interactions:\n- request:\n    uri: [unclosed\n  response: {}\n")
    err = load_error(path)
    assert re.search(r"bad\.yaml: not valid YAML at line \d+, column \d+", str(err))
    assert err.index is None


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a string\n", "42\n"])
def test_document_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text)
    assert "expected a mapping" in str(load_error(path))


@pytest.mark.parametrize("text", ["version: 1\n", "interactions: {a: 1}\n", "interactions:\n"])
def test_no_interactions_list(tmp_path: Path, text: str) -> None:
    path = tmp_path / "noint.yaml"
    path.write_text(text)
    err = load_error(path)
    assert err.field == "interactions"
    assert "no 'interactions' list" in str(err)


def test_interaction_without_request(tmp_path: Path) -> None:
    path = tmp_path / "noreq.yaml"
    path.write_text(
        f"interactions:\n- request: {{method: GET, uri: '{CHAT_URL}'}}\n"
        "  response: {status: {code: 200}, body: {string: ''}}\n"
        "- response: {status: {code: 200}}\n"
    )
    err = load_error(path)
    assert (err.index, err.field) == (1, "request")
    assert str(err).startswith(f"{display_path(path)}, interaction 1: request: ")


def test_interaction_without_response(tmp_path: Path) -> None:
    path = tmp_path / "noresp.yaml"
    path.write_text(f"interactions:\n- request: {{method: POST, uri: '{CHAT_URL}'}}\n")
    err = load_error(path)
    assert (err.index, err.field) == (0, "response")
    assert str(err) == f"{display_path(path)}, interaction 0: response: required field is missing"


@pytest.mark.parametrize("interaction_text", ["null", "[1, 2]", "just text"])
def test_interaction_that_is_not_a_mapping(tmp_path: Path, interaction_text: str) -> None:
    path = tmp_path / "notmap.yaml"
    path.write_text(f"interactions:\n- {interaction_text}\n")
    err = load_error(path)
    assert err.index == 0
    assert "expected a mapping" in str(err)


@pytest.mark.parametrize(
    ("request_text", "field", "message"),
    [
        ("{method: POST}", "request.uri", "required field is missing"),
        ("{method: POST, uri: 5}", "request.uri", "expected a string"),
        (f"{{uri: '{CHAT_URL}'}}", "request.method", "required field is missing"),
    ],
)
def test_request_without_uri_or_method(
    tmp_path: Path, request_text: str, field: str, message: str
) -> None:
    path = tmp_path / "nouri.yaml"
    path.write_text(f"interactions:\n- request: {request_text}\n  response: {{}}\n")
    err = load_error(path)
    assert (err.index, err.field) == (0, field)
    assert str(err) == f"{display_path(path)}, interaction 0: {field}: {message}"


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(VCRPY_YAML.replace("Hello!", "Caf\xe9").encode("latin-1"))
    assert re.search(r"not UTF-8 text \(byte \d+ is 0xe9\)", str(load_error(path)))


@pytest.mark.parametrize("content", [b"", b"  \n\n", b"\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.yaml"
    path.write_bytes(content)
    assert str(load_error(path)).endswith("empty.yaml: the file is empty")


def test_missing_file(tmp_path: Path) -> None:
    assert "no such cassette file" in str(load_error(tmp_path / "absent.yaml"))


def test_truncated_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.yaml"
    cut = VCRPY_YAML.index('"gpt-4o-mini-2024')
    path.write_text(VCRPY_YAML[:cut])  # ends inside the quoted body string
    assert "not valid YAML" in str(load_error(path))


def test_yaml_file_truncated_after_a_key(tmp_path: Path) -> None:
    path = tmp_path / "cut2.yaml"
    path.write_text(VCRPY_YAML[: VCRPY_YAML.index("  response:") + len("  response:\n")])
    err = load_error(path)
    assert (err.index, err.field) == (0, "response")


def test_truncated_json_file(tmp_path: Path) -> None:
    text = jsonserializer.serialize({"interactions": [interaction(completion())]})
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2])
    assert "not valid JSON" in str(load_error(path))


def test_deeply_nested_file(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"interactions": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "nested too deeply" in str(load_error(path))


def completion_error(path: Path) -> CassetteError:
    """Loading works; reading the completions raises."""
    cassette = load_cassette(path)
    with pytest.raises(CassetteError) as info:
        _ = cassette.completions
    assert info.value.path == display_path(path)
    return info.value


def test_chat_body_that_is_not_json(tmp_path: Path) -> None:
    path = write(tmp_path / "text.yaml", interaction("method=POST pathname=/chat/completions"))
    err = completion_error(path)
    assert str(err) == (
        f"{display_path(path)}, interaction 0: the response body is not JSON: "
        "'method=POST pathname=/chat/completions'"
    )


def test_chat_body_that_is_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "blank.yaml", interaction(""))
    assert str(completion_error(path)).endswith("interaction 0: the response body is empty")


def test_chat_response_without_body(tmp_path: Path) -> None:
    path = tmp_path / "nobody.yaml"
    path.write_text(
        f"interactions:\n- request: {{method: POST, uri: '{CHAT_URL}'}}\n"
        "  response: {status: {code: 200}}\n"
    )
    assert str(completion_error(path)).endswith("interaction 0: the response has no body")


def test_chat_body_nested_too_deeply(tmp_path: Path) -> None:
    path = write(tmp_path / "deepbody.yaml", interaction("[" * 100_000 + "]" * 100_000))
    assert "interaction 0: the response body is not JSON" in str(completion_error(path))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda gz: gz[: len(gz) // 2],  # truncated
        lambda gz: gz[:10] + b"\x00" * (len(gz) - 10),  # garbage after the header
    ],
    ids=["truncated", "garbage"],
)
def test_corrupt_gzip_body(tmp_path: Path, corrupt: Any) -> None:
    body = corrupt(gzip.compress(json.dumps(completion()).encode()))
    path = write(tmp_path / "gz.yaml", interaction(body, headers={"Content-Encoding": ["gzip"]}))
    err = completion_error(path)
    assert err.index == 0
    assert "interaction 0: the body is compressed but corrupt" in str(err)


def test_corrupt_brotli_body(tmp_path: Path) -> None:
    path = write(
        tmp_path / "br.yaml", interaction(b"\xff" * 20, headers={"Content-Encoding": ["br"]})
    )
    assert "the body is compressed but corrupt" in str(completion_error(path))


def test_truncated_stream(tmp_path: Path) -> None:
    whole = sse(
        chunk([delta(role="assistant", content="x")]),
        chunk([delta(content="y", finish_reason="stop")]),
        done=False,
    )
    body = whole[: whole.rindex('"finish_reason"')]  # the last data line cut mid-JSON
    path = write(tmp_path / "cut.yaml", interaction(body))
    err = completion_error(path)
    assert err.field == "chunk[1]"
    assert re.search(r"cut\.yaml, interaction 0: chunk\[1\]: the event data is not JSON", str(err))


def test_stream_without_chunks(tmp_path: Path) -> None:
    path = write(tmp_path / "nochunks.yaml", interaction(": just a comment\n\ndata: [DONE]\n\n"))
    assert "the stream holds no chat.completion.chunk event" in str(completion_error(path))


def test_field_of_the_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path / "x.yaml", interaction(completion(created="abc")))
    exchange = only(load_cassette(path))
    assert not exchange.valid
    with pytest.raises(
        CassetteError, match=r"x\.yaml, interaction 0: created: expected an integer"
    ):
        _ = exchange.completion
    err = completion_error(path)
    assert (err.index, err.field) == (0, "created")
    assert str(err).endswith(
        "x.yaml, interaction 0: created: expected an integer, got string 'abc'"
    )


def test_every_violation_of_the_file_is_listed(tmp_path: Path) -> None:
    bad_role = completion()
    bad_role["choices"][0]["message"]["role"] = "user"
    path = write(
        tmp_path / "two.yaml",
        interaction(completion(service_tier="on_demand")),
        interaction(completion("fine")),
        interaction(bad_role),
    )
    cassette = load_cassette(path)
    assert [e.valid for e in cassette] == [False, True, False]
    assert completion_of(cassette.exchanges[1]).choices[0].message.content == "fine"
    err = completion_error(path)
    lines = str(err).splitlines()
    assert [(v.index, v.field) for v in err.violations] == [
        (0, "service_tier"),
        (2, "choices[0].message.role"),
    ]
    assert lines[1] == (
        f"{display_path(path)}, interaction 2: choices[0].message.role: "
        "expected 'assistant', got 'user'"
    )


@pytest.mark.parametrize(
    "text",
    [
        "interactions: !!binary AAAA\n",
        "interactions: [*undefined]\n",
        "a: 1\n---\nb: 2\n",
        "interactions: []\x00\n",
        "? [a, b]\n: 1\n",
        '{"interactions": [1,]}',
    ],
    ids=["binary", "alias", "two-documents", "nul", "unhashable-key", "json-ish"],
)
def test_odd_input_only_raises_cassette_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    load_error(path)


# --- the cache ------------------------------------------------------------------------------------


def test_cache_loads_once_and_reloads_after_a_change(tmp_path: Path) -> None:
    path = write(tmp_path / "cached.yaml", interaction(completion("one")))
    cache = CassetteCache()
    first = cache.load(path)
    again = cache.load(str(path))
    # Parsed once; each caller's cassette its own, with completions equal and not shared.
    assert cache.document(path) is cache.document(path)
    assert again is not first
    assert again.completions == first.completions
    assert again.completions[0] is not first.completions[0]
    strict = cache.load(path, strict=True)
    assert strict.completions == first.completions
    assert first.completions[0].choices[0].message.content == "one"

    write(path, interaction(completion("two, longer")))
    second = cache.load(path)
    assert second.completions[0].choices[0].message.content == "two, longer"
    assert cache.load(path).completions == second.completions


def test_cache_notices_a_same_size_rewrite(tmp_path: Path) -> None:
    path = write(tmp_path / "cached.yaml", interaction(completion("aaa")))
    cache = CassetteCache()
    first = cache.load(path)
    stat = path.stat()
    write(path, interaction(completion("bbb")))
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = cache.load(path)
    assert second is not first
    assert second.completions[0].choices[0].message.content == "bbb"


def test_cache_raises_cassette_error_for_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="no such cassette file"):
        CassetteCache().load(tmp_path / "absent.yaml")
