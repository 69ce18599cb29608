"""The assertion helpers: what they accept, and the exact text of every failure."""

from __future__ import annotations

import json
import re
from typing import Any

import openai.types.chat
import pytest

from pytest_chatresp import (
    ChatCompletion,
    assert_choice,
    assert_choices,
    assert_model,
    assert_tier,
    assert_tool_call,
    assert_usage,
)
from pytest_chatresp.models import Source

WHERE = "cassettes/t/x.yaml, interaction 2: "


def make(**changes: Any) -> ChatCompletion:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1764000000,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "It is sunny in Paris today."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    body.update(changes)
    completion = ChatCompletion.model_validate(body)
    completion._source = Source("cassettes/t/x.yaml", 2)
    return completion


def tool_completion(arguments: str = '{"city": "Paris", "unit": "celsius"}') -> ChatCompletion:
    return make(
        choices=[
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": arguments},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    )


def fails(message: str) -> Any:
    return pytest.raises(AssertionError, match="^" + re.escape(message))


def test_passing_assertions_return_quietly() -> None:
    completion = make()
    assert_choices(completion, count=1, finish_reason="stop")
    assert_choice(completion, content="It is sunny in Paris today.", finish_reason="stop")
    assert_choice(completion, contains="Paris", matches=r"sunny\b")
    assert_usage(completion, prompt_tokens=10, completion_tokens=5, total_tokens=15)
    assert_usage(completion, max_prompt_tokens=10, max_completion_tokens=5, max_total_tokens=15)
    assert_tier(completion, "default")
    assert_tier(completion, ["default", "flex"])
    assert_model(completion, "gpt-4o-mini*")
    assert_model(completion, "gpt-4o-mini-2024-07-18")


def test_choices_count() -> None:
    with fails(WHERE + "choices: expected 2 choice(s), found 1"):
        assert_choices(make(), count=2)


def test_choices_finish_reason_shows_content() -> None:
    with fails(
        WHERE + "choices[0].finish_reason: expected 'length', found 'stop'\n"
        "  content: 'It is sunny in Paris today.'"
    ):
        assert_choices(make(), finish_reason="length")
    with fails(WHERE + "choices[0].finish_reason: expected one of 'length', 'tool_calls'"):
        assert_choices(make(), finish_reason=("length", "tool_calls"))


def test_choice_content_contains_matches() -> None:
    completion = make()
    with fails(
        WHERE + "choices[0].message.content: expected 'Rainy', found 'It is sunny in Paris today.'"
    ):
        assert_choice(completion, content="Rainy")
    with fails(WHERE + "choices[0].message.content: expected text containing 'Lyon', found "):
        assert_choice(completion, contains="Lyon")
    with fails(WHERE + "choices[0].message.content: expected text matching /rain/"):
        assert_choice(completion, matches="rain")
    with fails(WHERE + "choices: expected a choice at index 3, found 1 choice(s)"):
        assert_choice(completion, 3)


def test_long_content_is_shortened() -> None:
    long = "word " * 200
    choices = [
        {"index": 0, "message": {"role": "assistant", "content": long}, "finish_reason": "stop"}
    ]
    with pytest.raises(AssertionError) as info:
        assert_choice(make(choices=choices), contains="absent")
    assert "…" in str(info.value)
    assert len(str(info.value)) < 400


def test_usage_limits_and_sum() -> None:
    with fails(WHERE + "usage.completion_tokens: expected at most 4, found 5\n  usage: prompt 10,"):
        assert_usage(make(), max_completion_tokens=4)
    with fails(WHERE + "usage.prompt_tokens: expected 9, found 10"):
        assert_usage(make(), prompt_tokens=9)
    bad_sum = make(usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 16})
    with fails(
        WHERE + "usage.total_tokens: expected prompt_tokens + completion_tokens = 15, found 16"
    ):
        assert_usage(bad_sum)
    with fails(WHERE + "usage: expected token usage, found none"):
        assert_usage(make(usage=None))


def test_tier() -> None:
    with fails(WHERE + "service_tier: expected 'flex', found 'default'"):
        assert_tier(make(), "flex")
    with fails(WHERE + "service_tier: expected None, found 'default'"):
        assert_tier(make(), None)
    with fails(WHERE + "service_tier: expected one of 'flex', 'priority', found 'default'"):
        assert_tier(make(), ("flex", "priority"))
    assert_tier(make(service_tier=None), None)


def test_model() -> None:
    with fails(
        WHERE + "model: expected a model matching 'gpt-4o-2*', found 'gpt-4o-mini-2024-07-18'"
    ):
        assert_model(make(), "gpt-4o-2*")
    with fails(WHERE + "model: expected model 'gpt-4o-mini', found 'gpt-4o-mini-2024-07-18'"):
        assert_model(make(), "gpt-4o-mini")


def test_tool_call() -> None:
    completion = tool_completion()
    assert assert_tool_call(completion, "get_weather") == {"city": "Paris", "unit": "celsius"}
    assert (
        assert_tool_call(completion, "get_weather", arguments={"city": "Paris"})["unit"]
        == "celsius"
    )
    with fails(
        WHERE + "choices[0].message.tool_calls: expected a call to 'get_time', "
        'found get_weather({"city": "Paris", "unit": "celsius"})'
    ):
        assert_tool_call(completion, "get_time")
    with fails(
        WHERE + "choices[0].message.tool_calls[0].function.arguments: expected arguments including "
        '{"city": "Lyon"}, found {"city": "Paris", "unit": "celsius"}\n'
        "  city: expected 'Lyon', found 'Paris'"
    ):
        assert_tool_call(completion, "get_weather", arguments={"city": "Lyon"})
    with pytest.raises(AssertionError, match=r"\n  days: expected 3, found no such argument$"):
        assert_tool_call(completion, "get_weather", arguments={"days": 3})


def test_tool_call_with_arguments_that_are_not_json() -> None:
    with fails(
        WHERE + "choices[0].message.tool_calls[0].function.arguments: expected a JSON object, "
        "found '{\"city\": '"
    ):
        assert_tool_call(tool_completion('{"city": '), "get_weather", arguments={"city": "Paris"})


def test_no_tool_calls_at_all() -> None:
    with fails(WHERE + "choices[0].message.tool_calls: expected a call to 'x', found content: "):
        assert_tool_call(make(), "x")


def test_helpers_accept_sdk_objects_and_dicts_without_a_source() -> None:
    body = make().model_dump(mode="json")
    sdk = openai.types.chat.ChatCompletion.model_validate(body)
    assert_choices(sdk, count=1)
    assert_usage(body, max_total_tokens=100)
    with fails("service_tier: expected 'flex', found 'default'"):
        assert_tier(sdk, "flex")
    with pytest.raises(TypeError, match="expected a chat completion"):
        assert_choices(json.dumps(body))


def test_helpers_take_an_exchange(tmp_path: Any) -> None:
    from pytest_chatresp import load_cassette

    body = make().model_dump(mode="json", exclude_unset=True)
    path = tmp_path / "c.yaml"
    interaction = {
        "request": {"method": "POST", "uri": "https://api.openai.com/v1/chat/completions"},
        "response": {"status": {"code": 200}, "body": {"string": json.dumps(body)}},
    }
    path.write_text(json.dumps({"interactions": [interaction]}))
    (exchange,) = load_cassette(path).exchanges
    with pytest.raises(AssertionError, match=r"c\.yaml, interaction 0: service_tier"):
        assert_tier(exchange, "flex")


def test_an_error_exchange_fails_with_the_file_the_interaction_and_the_error(
    tmp_path: Any,
) -> None:
    from helpers import write_cassette

    from pytest_chatresp import load_cassette

    error = {
        "error": {
            "message": "Invalid value for 'model': the model 'error-400' always fails.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "invalid_value",
        }
    }
    path = write_cassette(tmp_path / "bad_model.yaml", error, status=400)
    (exchange,) = load_cassette(path).exchanges
    with pytest.raises(AssertionError) as caught:
        assert_choices(exchange, count=1)
    assert str(caught.value) == (
        f"{path}, interaction 0: expected a chat completion, found an error response (HTTP 400 "
        "(invalid_request_error): Invalid value for 'model': the model 'error-400' always "
        "fails.)"
    )


def test_every_public_name_is_importable_from_the_package() -> None:
    import pytest_chatresp

    homes = [name for names in pytest_chatresp._HOMES.values() for name in names]
    assert sorted(homes) == sorted(pytest_chatresp.__all__)
    for name in pytest_chatresp.__all__:
        assert getattr(pytest_chatresp, name) is not None


def test_the_version_and_the_annotation_types_are_public() -> None:
    from importlib.metadata import version

    import pytest_chatresp
    from pytest_chatresp.checks import Rules
    from pytest_chatresp.shapes import ShapeSnapshot

    assert pytest_chatresp.__version__ == version("pytest-chatresp")
    assert pytest_chatresp.Rules is Rules
    assert pytest_chatresp.ShapeSnapshot is ShapeSnapshot
    assert "ShapeSnapshot" in pytest_chatresp.__all__
    # The snapshot is a shape, not a contract: the old name is gone, with no alias.
    assert "ContractSnapshot" not in pytest_chatresp.__all__
    with pytest.raises(AttributeError):
        pytest_chatresp.ContractSnapshot  # noqa: B018
