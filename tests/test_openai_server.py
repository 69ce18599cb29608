"""The local OpenAI-compatible server works with the real SDK, httpx and requests."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
import requests
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam
from openai_server import CREATED, SYSTEM_FINGERPRINT, OpenAIServer

API_KEY = "sk-FAKE-test-key-not-real"
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello local server"}]
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "verbose": {"type": "boolean"},
            },
            "required": ["city", "days", "unit"],
        },
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def fresh_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def client(server: OpenAIServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0) as sdk:
        yield sdk


@pytest_asyncio.fixture
async def async_client(server: OpenAIServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0) as sdk:
        yield sdk


# ----------------------------------------------------------------------------- basics


def test_base_url_and_port(server: OpenAIServer) -> None:
    assert server.port > 0
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.running


def test_port_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not been started"):
        _ = OpenAIServer().port
    assert OpenAIServer(port=12345).base_url == "http://127.0.0.1:12345/v1"


def test_sync_non_stream(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    second = client.chat.completions.create(model="gpt-4o-mini", messages=USER)

    assert first.id == second.id
    assert first.id.startswith("chatcmpl-")
    assert len(first.id) == len("chatcmpl-") + 24
    assert first.object == "chat.completion"
    assert first.created == CREATED
    assert first.model == "gpt-4o-mini-2025-01-01"
    assert first.service_tier == "default"
    assert first.system_fingerprint == SYSTEM_FINGERPRINT
    [choice] = first.choices
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: hello local server"
    assert choice.message.refusal is None
    assert choice.message.tool_calls is None
    assert first.usage is not None
    assert first.usage.prompt_tokens == 3 + 3
    assert first.usage.completion_tokens == 4
    assert first.usage.total_tokens == 10
    assert first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert first.usage.completion_tokens_details is not None
    assert first.usage.completion_tokens_details.reasoning_tokens == 0

    other = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "something else"}]
    )
    assert other.id != first.id


def test_dated_model_is_not_suffixed_twice(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-2024-08-06", messages=USER)
    assert reply.model == "gpt-4o-2024-08-06"


def test_list_of_parts_content(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "ignored earlier turn"},
            {"role": "assistant", "content": "ok"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "this picture"},
                ],
            },
        ],
    )
    assert reply.choices[0].message.content == "Echo: describe this picture"


def test_sync_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        chunks = list(stream)

    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1
    assert {chunk.model for chunk in chunks} == {"gpt-4o-mini-2025-01-01"}
    assert {chunk.created for chunk in chunks} == {CREATED}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello local server"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 4
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert all(reason is None for reason in finishes[:-1])

    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 4
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + 4
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_stream_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    with client.chat.completions.create(model="m", messages=USER, stream=True) as stream:
        chunks = list(stream)
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


# ----------------------------------------------------------------------------- tools


def test_tool_call_then_tool_result_terminates(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER_TOOL],
    )
    [choice] = reply.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert len(call.id) == len("call_") + 20
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 1, "unit": "celsius"}

    follow_up = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": call.function.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert follow_up.choices[0].finish_reason == "stop"
    assert follow_up.choices[0].message.tool_calls is None
    assert follow_up.choices[0].message.content == (
        "Echo: weather in Paris? (tool result: sunny, 21C)"
    )


def test_tool_choice_none_answers_with_text(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=USER, tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert reply.choices[0].message.content == "Echo: hello local server"


def test_streamed_tool_call_fragments(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        tools=[WEATHER_TOOL],
        stream=True,
    )
    with stream:
        chunks = list(stream)
    fragments = [
        call
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for call in c.choices[0].delta.tool_calls
    ]
    assert len(fragments) > 2
    assert fragments[0].id is not None
    assert fragments[0].function is not None
    assert fragments[0].function.name == "get_weather"
    assert all(fragment.id is None for fragment in fragments[1:])
    arguments = "".join(f.function.arguments or "" for f in fragments if f.function)
    assert json.loads(arguments)["city"] == "Paris"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# ----------------------------------------------------------------------------- options


def test_n_choices_differ(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=USER, n=2)
    assert [choice.index for choice in reply.choices] == [0, 1]
    contents = [choice.message.content for choice in reply.choices]
    assert contents == ["Echo: hello local server", "Echo: hello local server (choice 1)"]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 4 + 6


@pytest.mark.parametrize(
    ("requested", "expected"),
    [("flex", "flex"), ("priority", "priority"), ("auto", "default"), ("default", "default")],
)
def test_service_tier(client: openai.OpenAI, requested: Any, expected: str) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        service_tier=requested,
    )
    assert reply.service_tier == expected


def test_fast_tier_maps_to_priority(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        extra_body={"service_tier": "fast"},
    )
    assert reply.service_tier == "priority"


def test_max_tokens_truncates(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        max_completion_tokens=2,
    )
    assert reply.choices[0].message.content == "Echo: hello"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 2


def test_response_format_json_object(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        response_format={"type": "json_object"},
    )
    content = reply.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"answer": "Echo: hello local server"}


def test_response_format_json_schema(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "score": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"$ref": "#/$defs/Kind"},
        },
        "required": ["location", "score", "tags", "kind"],
        "additionalProperties": False,
        "$defs": {"Kind": {"type": "string", "enum": ["a", "b"]}},
    }
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        },
    )
    content = reply.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"location": "Paris", "score": 1.5, "tags": [], "kind": "a"}


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("model", "status", "exception", "code"),
    [
        ("error-400", 400, openai.BadRequestError, "invalid_value"),
        ("error-401", 401, openai.AuthenticationError, "invalid_api_key"),
        ("error-404", 404, openai.NotFoundError, "model_not_found"),
        ("error-429", 429, openai.RateLimitError, "rate_limit_exceeded"),
        ("error-500", 500, openai.InternalServerError, None),
    ],
)
def test_error_statuses(
    client: openai.OpenAI,
    model: str,
    status: int,
    exception: type[openai.APIStatusError],
    code: str | None,
) -> None:
    with pytest.raises(exception) as excinfo:
        client.chat.completions.create(model=model, messages=USER)
    error = excinfo.value
    assert error.status_code == status
    assert error.code == code
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}
    assert error.response.headers["x-request-id"].startswith("req_")


def test_errors_are_not_retried_even_with_default_retries(fresh_server: OpenAIServer) -> None:
    with openai.OpenAI(base_url=fresh_server.base_url, api_key=API_KEY) as sdk:
        for model in ("error-429", "error-500"):
            with pytest.raises(openai.APIStatusError):
                sdk.chat.completions.create(model=model, messages=USER)
    assert fresh_server.request_count == 2
    assert all(r.headers["x-stainless-retry-count"] == "0" for r in fresh_server.requests)


def test_error_in_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="error-in-stream", messages=USER, stream=True)
    with stream, pytest.raises(openai.APIError, match="error while streaming"):
        list(stream)


def test_invalid_json_and_unknown_path(server: OpenAIServer) -> None:
    with httpx.Client(base_url=server.base_url) as http:
        bad = http.post(
            "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        empty = http.post("/chat/completions")
        missing = http.get("/models")
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    assert empty.status_code == 400
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}


# ----------------------------------------------------------------------------- async


@pytest.mark.asyncio
async def test_async_non_stream(async_client: openai.AsyncOpenAI) -> None:
    reply = await async_client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert reply.choices[0].message.content == "Echo: hello local server"
    assert reply.model == "gpt-4o-mini-2025-01-01"


@pytest.mark.asyncio
async def test_async_stream(async_client: openai.AsyncOpenAI) -> None:
    stream = await async_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    async with stream:
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: hello local server"
    assert chunks[-1].usage is not None


@pytest.mark.asyncio
async def test_async_error(async_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await async_client.chat.completions.create(model="error-404", messages=USER)


# ----------------------------------------------------------------------------- other clients


def test_embeddings_via_sdk(client: openai.OpenAI) -> None:
    default = client.embeddings.create(model="text-embedding-3-small", input="hello")
    floats = client.embeddings.create(
        model="text-embedding-3-small", input="hello", encoding_format="float"
    )
    assert default.object == "list"
    assert default.model == "text-embedding-3-small"
    assert len(default.data[0].embedding) == 4
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)


def test_httpx_gzip(server: OpenAIServer) -> None:
    payload = {"model": "gpt-4o-mini", "messages": USER}
    url = f"{server.base_url}/chat/completions"
    with httpx.Client() as http:
        zipped = http.post(url, json=payload, headers={"x-local-gzip": "1"})
        plain = http.post(url, json=payload)
        with http.stream("POST", url, json=payload, headers={"x-local-gzip": "1"}) as raw:
            raw_body = b"".join(raw.iter_raw())
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert json.loads(gzip.decompress(raw_body)) == zipped.json() == plain.json()
    assert zipped.json()["choices"][0]["message"]["content"] == "Echo: hello local server"
    assert zipped.headers["openai-organization"] == "org-FAKE0local0org0000000"
    assert zipped.headers["openai-project"] == "proj_FAKE0local0project000"
    assert zipped.headers["openai-version"] == "2020-10-01"
    assert "openai-processing-ms" in zipped.headers
    assert zipped.headers["x-request-id"].startswith("req_")
    assert zipped.headers["x-request-id"] != plain.headers["x-request-id"]
    cookies = zipped.headers.get_list("set-cookie")
    assert cookies == [
        "__cf_bm=FAKE-cookie-value-0123456789; path=/; HttpOnly",
        "_cfuvid=FAKE-cfuvid-0123456789; path=/",
    ]


def test_requests_and_cookies(server: OpenAIServer) -> None:
    with requests.Session() as session:
        response = session.post(
            f"{server.base_url}/chat/completions",
            json={"model": "gpt-4o-mini", "messages": USER, "stream": True},
            headers={"Authorization": f"Bearer {API_KEY}"},
            stream=True,
        )
        with response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]"
    assert all(line.startswith(b"data: ") for line in lines)
    assert session.cookies.get("__cf_bm") == "FAKE-cookie-value-0123456789"
    assert session.cookies.get("_cfuvid") == "FAKE-cfuvid-0123456789"
    assert "__cf_bm=" in response.headers["set-cookie"]


# ----------------------------------------------------------------------------- bookkeeping


def test_request_count_and_recorded_requests(fresh_server: OpenAIServer) -> None:
    assert fresh_server.request_count == 0
    with openai.OpenAI(base_url=fresh_server.base_url, api_key=API_KEY, max_retries=0) as sdk:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=USER)
        with sdk.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True) as s:
            list(s)
        sdk.embeddings.create(model="text-embedding-3-small", input="x")
    assert fresh_server.request_count == 3

    first = fresh_server.requests[0]
    assert first.method == "POST"
    assert first.path == "/v1/chat/completions"
    assert first.headers["authorization"] == f"Bearer {API_KEY}"
    assert all(name == name.lower() for name in first.headers)
    assert first.json == {"model": "gpt-4o-mini", "messages": USER}
    assert json.loads(first.body) == first.json
    assert fresh_server.requests[2].path == "/v1/embeddings"

    with httpx.Client() as http:
        http.post(f"{fresh_server.base_url}/chat/completions?api-version=1", content=b"nope")
    assert fresh_server.requests[-1].path == "/v1/chat/completions?api-version=1"
    assert fresh_server.requests[-1].json is None

    fresh_server.reset()
    assert fresh_server.request_count == 0
    assert fresh_server.requests == []


def test_restart_after_stop() -> None:
    srv = OpenAIServer()
    srv.start()
    srv.stop()
    srv.stop()
    assert not srv.running
    with srv, httpx.Client() as http:
        response = http.post(f"{srv.base_url}/embeddings", json={"model": "m", "input": "x"})
    assert response.status_code == 200


def test_server_is_quiet(capfd: pytest.CaptureFixture[str], fresh_server: OpenAIServer) -> None:
    with socket.create_connection(("127.0.0.1", fresh_server.port)) as raw:
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    with socket.create_connection(("127.0.0.1", fresh_server.port)) as raw:
        raw.sendall(b"garbage\r\n\r\n")
        raw.recv(65536)
    with httpx.Client() as http:
        response = http.post(f"{fresh_server.base_url}/chat/completions", json={"model": "m"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"
    fresh_server.stop()
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""
