"""Replaying recorded calls through the openai SDK, and asserting the response contract."""

from __future__ import annotations

import json

import openai
import pytest

from pytest_chatresp import (
    Cassette,
    ChatCompletion,
    assert_choice,
    assert_choices,
    assert_model,
    assert_tier,
    assert_tool_call,
    assert_usage,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}


@pytest.mark.chat_cassette
def test_forecast(client: openai.OpenAI, chat_cassette: Cassette) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    assert reply.choices[0].message.content == "Echo: What is the weather in Paris?"
    completion = chat_cassette.completions[-1]
    assert_choices(completion, count=1, finish_reason="stop")
    assert_choice(completion, contains="Paris")
    assert_usage(completion, max_total_tokens=200)
    assert_tier(completion, "default")
    assert_model(completion, "gpt-4o-mini*")


@pytest.mark.chat_cassette("test_weather/test_forecast.yaml")
def test_forecast_as_recorded(chat_completion: ChatCompletion) -> None:
    """A test that only reads: the one completion of a named cassette, validated."""
    assert_choices(chat_completion, count=1, finish_reason="stop")
    assert_usage(chat_completion, max_total_tokens=200)
    assert_tier(chat_completion, "default")


@pytest.mark.chat_cassette
def test_streamed_forecast(client: openai.OpenAI, chat_cassette: Cassette) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream the forecast for Lyon"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Echo: Stream the forecast for Lyon"
    (exchange,) = chat_cassette.exchanges
    assert exchange.streamed
    assert len(exchange.chunks) > 3
    assert exchange.completion is not None
    assert_choice(exchange.completion, content=text, finish_reason="stop")
    assert_usage(exchange.completion, max_total_tokens=200)


@pytest.mark.chat_cassette
def test_tool_call(client: openai.OpenAI, chat_cassette: Cassette) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Should I take an umbrella in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    arguments = assert_tool_call(chat_cassette.completions[-1], "get_weather")
    assert set(arguments) == {"city", "unit"}
    assert_choices(chat_cassette.completions[-1], finish_reason="tool_calls")
    assert json.loads(call.function.arguments)["unit"] == "celsius"  # type: ignore[union-attr]


@pytest.mark.chat_cassette
def test_two_choices(client: openai.OpenAI, chat_cassette: Cassette) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Two ways to say sunny"}],
        n=2,
    )
    completion = chat_cassette.completions[-1]
    assert_choices(completion, count=2, finish_reason="stop")
    assert_choice(completion, 1, matches=r"\(choice 1\)$")


@pytest.mark.chat_cassette
def test_flex_tier(client: openai.OpenAI, chat_cassette: Cassette) -> None:
    client.chat.completions.create(
        model="o4-mini",
        messages=[{"role": "user", "content": "A cheap, slow forecast please"}],
        service_tier="flex",
    )
    assert_tier(chat_cassette.completions[-1], "flex")
    assert_tier(chat_cassette.completions[-1], {"flex", "default"})


@pytest.mark.chat_cassette
def test_rate_limited(client: openai.OpenAI, chat_cassette: Cassette) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="error-429",
            messages=[{"role": "user", "content": "Too many forecasts"}],
        )
    (exchange,) = chat_cassette.exchanges
    assert exchange.error is not None
    assert exchange.error.status == 429
    assert chat_cassette.completions == []


# vcrpy's plain YAML keeps the body as the server sent it, gzip-compressed; the default
# readable format would store it decoded.
@pytest.mark.chat_cassette(serializer="yaml")
def test_gzip_body(client: openai.OpenAI, chat_cassette: Cassette) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Compressed forecast for Nice"}],
        extra_headers={"x-local-gzip": "1"},
    )
    (exchange,) = chat_cassette.exchanges
    assert exchange.headers["content-encoding"] == ["gzip"]
    assert_choice(chat_cassette.completions[-1], contains="Nice")


@pytest.mark.chat_cassette
@pytest.mark.asyncio
async def test_async_forecast(async_client: openai.AsyncOpenAI, chat_cassette: Cassette) -> None:
    reply = await async_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Async forecast for Brest"}],
    )
    assert_choice(chat_cassette.completions[-1], content=reply.choices[0].message.content)
