"""Synthetic vcrpy cassettes for the benchmarks, written with vcrpy's own YAML serializer.

Every cassette is built as vcrpy builds one when it records: ``vcr.request.Request`` objects
and response dicts (``status``, ``headers``, ``body.string`` as bytes) go through
``vcr.serialize.serialize(..., vcr.serializers.yamlserializer)``. Bodies look like what the
OpenAI API returns: pretty-printed JSON with two-space indents, the headers its servers send,
and usage that adds up. Everything is seeded, so every run writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "BASE_URL",
    "SUITE_BASE_URL",
    "chat_request_body",
    "completion_body",
    "exchanges",
    "stream_body",
    "write_cassette",
]

#: Where the synthetic requests went.
BASE_URL = "https://api.openai.com/v1"
#: The replay suite's base URL: never contacted, since every request is replayed.
SUITE_BASE_URL = "http://127.0.0.1:9/v1"

_PROSE = (
    "the forecast for tomorrow shows light rain in the morning clearing by noon with "
    "temperatures between twelve and eighteen degrees a gentle breeze from the south west "
    "and high pressure building over the weekend so plan outdoor activities for Saturday "
    "afternoon when the sun should be out for most of the day"
)
_WORDS = tuple(_PROSE.split())
_MODELS = ("gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "gpt-4.1-mini-2025-04-14")
_CITIES = ("Paris", "Lyon", "Berlin", "Madrid", "Rome", "Oslo", "Vienna", "Prague")


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _chat_id(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "chatcmpl-" + "".join(rng.choice(alphabet) for _ in range(29))


def _usage(rng: random.Random, completion_tokens: int) -> dict[str, Any]:
    prompt = rng.randint(12, 400)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_request_body(index: int, *, stream: bool = False, tools: bool = False) -> dict[str, Any]:
    """The JSON body the ``openai`` SDK sends for the ``index``-th synthetic call."""
    city = _CITIES[index % len(_CITIES)]
    body: dict[str, Any] = {
        "messages": [
            {"role": "user", "content": f"What is the weather in {city}? (question {index})"},
        ],
        "model": "gpt-4o-mini",
    }
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city.",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            }
        ]
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def completion_body(
    rng: random.Random, *, content_words: int = 40, tool_call: bool = False
) -> dict[str, Any]:
    """A ``chat.completion`` document as the API returns it."""
    tokens = content_words + rng.randint(0, 8)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if tool_call else _text(rng, content_words),
        "refusal": None,
        "annotations": [],
    }
    if tool_call:
        message["tool_calls"] = [
            {
                "id": "call_" + _hex(rng, 24),
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": json.dumps({"city": rng.choice(_CITIES)}),
                },
            }
        ]
    return {
        "id": _chat_id(rng),
        "object": "chat.completion",
        "created": 1_741_569_952 + rng.randint(0, 10_000_000),
        "model": rng.choice(_MODELS),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_call else "stop",
            }
        ],
        "usage": _usage(rng, tokens),
        "service_tier": "default",
        "system_fingerprint": "fp_" + _hex(rng, 10),
    }


def stream_body(rng: random.Random, chunks: int) -> str:
    """An SSE body of ``chunks`` ``chat.completion.chunk`` events (role, text, finish, usage)."""
    chat_id, model, created = _chat_id(rng), rng.choice(_MODELS), 1_741_569_952
    fingerprint = "fp_" + _hex(rng, 10)
    head = {
        "id": chat_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": fingerprint,
    }
    text_chunks = max(chunks - 3, 1)
    events: list[dict[str, Any]] = [
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "", "refusal": None},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            "usage": None,
            "obfuscation": _hex(rng, 8),
        }
    ]
    for _ in range(text_chunks):
        events.append(
            {
                **head,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": " " + rng.choice(_WORDS)},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
                "usage": None,
                "obfuscation": _hex(rng, 8),
            }
        )
    events.append(
        {
            **head,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            "usage": None,
            "obfuscation": _hex(rng, 8),
        }
    )
    events.append({**head, "choices": [], "usage": _usage(rng, text_chunks), "obfuscation": "x"})
    lines = [f"data: {json.dumps(event, separators=(',', ':'))}\n\n" for event in events]
    return "".join(lines) + "data: [DONE]\n\n"


def _request_headers(body: bytes) -> dict[str, str]:
    return {
        "accept": "application/json",
        "accept-encoding": "gzip, deflate",
        "authorization": "REDACTED",
        "content-length": str(len(body)),
        "content-type": "application/json",
        "host": "api.openai.com",
        "user-agent": "OpenAI/Python 1.99.9",
    }


def _response_headers(rng: random.Random, body: bytes, content_type: str) -> dict[str, list[str]]:
    return {
        "content-type": [content_type],
        "content-length": [str(len(body))],
        "openai-processing-ms": [str(rng.randint(200, 3000))],
        "x-request-id": ["req_" + _hex(rng, 32)],
        "server": ["cloudflare"],
    }


def _pair(
    rng: random.Random,
    request_body: dict[str, Any],
    response_body: bytes,
    content_type: str,
    base_url: str,
) -> tuple[Any, dict[str, Any]]:
    from vcr.request import Request

    sent = json.dumps(request_body, separators=(",", ":")).encode()
    headers = _request_headers(sent)
    request = Request("POST", f"{base_url}/chat/completions", sent, headers)
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": _response_headers(rng, response_body, content_type),
        "body": {"string": response_body},
    }
    return request, response


def exchanges(
    count: int,
    *,
    seed: int = 0,
    content_words: int = 12,
    base_url: str = BASE_URL,
    first_index: int = 0,
    tool_every: int = 10,
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """``count`` (vcr Request, response dict) pairs: plain answers, one in ``tool_every`` a tool
    call (none when ``tool_every`` is 0)."""
    rng = random.Random(seed)
    for index in range(first_index, first_index + count):
        tool = bool(tool_every) and index % tool_every == tool_every - 1
        request_body = chat_request_body(index, tools=tool)
        document = completion_body(rng, content_words=content_words, tool_call=tool)
        body = json.dumps(document).encode()
        yield _pair(rng, request_body, body, "application/json", base_url)


def stream_exchange(
    chunks: int, *, seed: int = 0, base_url: str = BASE_URL
) -> tuple[Any, dict[str, Any]]:
    """One streamed exchange of ``chunks`` events."""
    rng = random.Random(seed)
    body = stream_body(rng, chunks).encode()
    return _pair(
        rng, chat_request_body(0, stream=True), body, "text/event-stream; charset=utf-8", base_url
    )


def write_cassette(path: Path, pairs: Iterator[tuple[Any, dict[str, Any]]] | list[Any]) -> int:
    """Write the pairs as vcrpy writes a cassette (its YAML serializer); the file's size."""
    from vcr.serialize import serialize
    from vcr.serializers import yamlserializer

    requests, responses = [], []
    for request, response in pairs:
        requests.append(request)
        responses.append(response)
    text = serialize({"requests": requests, "responses": responses}, yamlserializer)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path.stat().st_size


def digest(path: Path) -> str:
    """A short content hash, to show that two runs wrote the same cassette."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
