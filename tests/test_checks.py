"""Contract checks beyond types, the JSON content helper and shape files, through pytester."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import completion, glob, write_cassette

from pytest_chatresp.checks import CHECKS
from pytest_chatresp.providers import way_out

# The way out a failed check names when the failure is a known provider behaviour.
NO_DONE = (
    " (to accept it: chatresp_allow = stream:no-done, or per test "
    '@pytest.mark.chat_cassette(allow=["stream:no-done"]))'
)

READ_TEST = "def test_c(chat_completions):\n    assert chat_completions\n"
CASSETTE = "cassettes/test_c/test_c.yaml"


def tool_call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


def with_choice(**message: Any) -> dict[str, Any]:
    body = completion()
    finish = message.pop("finish_reason", "stop")
    body["choices"][0]["message"].update(message)
    body["choices"][0]["finish_reason"] = finish
    return body


def stream(*chunks: dict[str, Any], done: bool = True) -> str:
    events = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return events + ("data: [DONE]\n\n" if done else "")


def chunk(choices: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1764000000, "model": "m"}
    return {**base, "choices": choices, **top}


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "finish_reason": finish}


GOOD_STREAM = stream(
    chunk([delta(role="assistant", content="Hi")]),
    chunk([delta(finish="stop")]),
    chunk([], usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def request_with(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **fields}


# (check, a body that passes, a body that fails, the request, the failure text)
CASES: list[tuple[str, Any, Any, dict[str, Any] | None, str]] = [
    (
        "usage-sum",
        completion(),
        completion(usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 16}),
        None,
        "usage.total_tokens: expected prompt_tokens + completion_tokens = 15, found 16 "
        "(1 more: reasoning tokens counted in the total?) [check usage-sum]"
        + way_out(None, "usage-sum", "reasoning"),
    ),
    (
        "choice-index",
        completion(),
        completion(choices=[{**completion()["choices"][0], "index": 1}]),
        None,
        "choices: expected indices 0..0 in order, found [1] [check choice-index]",
    ),
    (
        "choice-count",
        completion(
            choices=[completion()["choices"][0], {**completion()["choices"][0], "index": 1}]
        ),
        completion(),
        request_with(n=2),
        "choices: expected 2 choice(s) (the request asked for n=2), found 1 [check choice-count]",
    ),
    (
        "tool-args",
        with_choice(
            content=None,
            tool_calls=[tool_call("get_weather", '{"city": "Paris"}')],
            finish_reason="tool_calls",
        ),
        with_choice(
            content=None,
            tool_calls=[tool_call("get_weather", '{"city": ')],
            finish_reason="tool_calls",
        ),
        None,
        "choices[0].message.tool_calls[0].function.arguments: expected JSON arguments, "
        "found '{\"city\": ' (Expecting value) [check tool-args]",
    ),
    (
        "tool-args",
        with_choice(content=None, tool_calls=[tool_call("f", "{}")], finish_reason="tool_calls"),
        with_choice(content="no call", finish_reason="tool_calls"),
        None,
        "choices[0].message.tool_calls: expected at least one tool call (finish_reason is "
        "'tool_calls'), found none [check tool-args]",
    ),
    (
        "json-output",
        with_choice(content='{"a": 1}'),
        with_choice(content="Sure! {a: 1}"),
        request_with(response_format={"type": "json_object"}),
        "choices[0].message.content: expected JSON (response_format json_object), found "
        "'Sure! {a: 1}' (Expecting value) [check json-output]",
    ),
    (
        "json-output",
        with_choice(content='{"name": "Ada", "age": 36}'),
        with_choice(content='{"name": "Ada", "age": "36"}'),
        request_with(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "p", "schema": PERSON_SCHEMA},
            }
        ),
        "choices[0].message.content.age: does not match the request's json_schema: '36' is not "
        "of type 'integer' [check json-output]",
    ),
    (
        "tool-schema",
        with_choice(
            content=None,
            tool_calls=[tool_call("get_weather", '{"city": "Paris"}')],
            finish_reason="tool_calls",
        ),
        with_choice(
            content=None,
            tool_calls=[tool_call("get_time", '{"city": "Paris"}')],
            finish_reason="tool_calls",
        ),
        request_with(tools=[WEATHER]),
        "choices[0].message.tool_calls[0].function.name: expected a declared tool "
        "('get_weather'), found 'get_time' [check tool-schema]",
    ),
    (
        "tool-schema",
        with_choice(
            content=None,
            tool_calls=[tool_call("get_weather", '{"city": "Paris", "days": 2}')],
            finish_reason="tool_calls",
        ),
        with_choice(
            content=None,
            tool_calls=[tool_call("get_weather", '{"days": "2"}')],
            finish_reason="tool_calls",
        ),
        request_with(tools=[WEATHER]),
        "choices[0].message.tool_calls[0].function.arguments: does not match the parameters of "
        "'get_weather': 'city' is a required property [check tool-schema]",
    ),
    (
        "stream",
        GOOD_STREAM,
        stream(
            chunk([delta(role="assistant", content="Hi")]),
            chunk([delta(finish="stop")]),
            done=False,
        ),
        None,
        "stream: expected the stream to end with data: [DONE], found no [DONE] [check stream]"
        + NO_DONE,
    ),
    (
        "stream",
        GOOD_STREAM,
        stream(
            chunk([delta(role="assistant", content="Hi")]), chunk([delta(finish="stop")], id="c2")
        ),
        None,
        "chunk[1].id: expected 'c1' as in the first chunk, found 'c2' [check stream]",
    ),
    (
        "stream",
        GOOD_STREAM,
        stream(
            chunk([delta(role="assistant", content="Hi")]),
            chunk([], usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
            chunk([delta(finish="stop")]),
        ),
        None,
        "chunk[1]: expected the usage chunk after every chunk with choices, found chunk 2 with "
        "choices after it [check stream]",
    ),
    (
        "stream",
        GOOD_STREAM,
        stream(
            chunk([delta(role="assistant", content="Hi", finish="stop")]),
            chunk([delta(finish="stop")]),
        ),
        None,
        "choices[0].finish_reason: expected one finish_reason in the stream, found 2 [check stream]"
        + way_out(None, "stream", "finish-twice"),
    ),
    (
        "created",
        completion(),
        completion(created=1764000000123),
        None,
        "created: expected Unix seconds, found 1764000000123 (milliseconds?) [check created]"
        + way_out(None, "created", "milliseconds"),
    ),
    (
        "created",
        completion(),
        completion(created=86400),
        None,
        "created: expected a time after 2015-01-01, found 86400 [check created]",
    ),
]


def write(path: Path, body: Any, request: dict[str, Any] | None) -> None:
    write_cassette(path, body if isinstance(body, str) else copy.deepcopy(body), request=request)
    if isinstance(body, str):  # a stream: the server said so
        document = json.loads(path.read_text())
        document["interactions"][0]["response"]["headers"] = {"Content-Type": ["text/event-stream"]}
        path.write_text(json.dumps(document))


@pytest.mark.parametrize(("check", "good", "bad", "request_body", "message"), CASES)
def test_check_passes_fails_and_can_be_skipped(
    pytester: pytest.Pytester, check: str, good: Any, bad: Any, request_body: Any, message: str
) -> None:
    pytester.makepyfile(test_c=READ_TEST)
    write(pytester.path / CASSETTE, good, request_body)
    pytester.runpytest().assert_outcomes(passed=1)

    write(pytester.path / CASSETTE, bad, request_body)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"{CASSETTE}, interaction 0: {message}"])

    pytester.makeini(f"[pytest]\nchatresp_skip_checks = {check}\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"chatresp: checks skipped: {check}"])


def test_every_check_has_a_case() -> None:
    assert {case[0] for case in CASES} == set(CHECKS)


def test_unknown_check_name_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchatresp_skip_checks = usage-sum tool-arguments\n")
    pytester.makepyfile(test_c="def test_c():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: chatresp_skip_checks = 'tool-arguments' is not valid; use one of: "
            "usage-sum, choice-index, *"
        ]
    )


# --- assert_json_content -----------------------------------------------------------------------

JSON_TEST = """
from pydantic import BaseModel
from pytest_chatresp import assert_json_content

class Person(BaseModel):
    name: str
    age: int

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}

def test_model(chat_completion):
    person = assert_json_content(chat_completion, Person)
    assert person == Person(name="Ada", age=36)

def test_schema(chat_completion):
    assert assert_json_content(chat_completion, SCHEMA) == {"name": "Ada", "age": 36}
"""


def test_json_content_with_a_model_and_a_schema(pytester: pytest.Pytester) -> None:
    for name in ("test_model", "test_schema"):
        path = pytester.path / f"cassettes/test_j/{name}.yaml"
        write_cassette(path, with_choice(content='{"name": "Ada", "age": 36}'))
    pytester.makepyfile(test_j=JSON_TEST)
    pytester.runpytest().assert_outcomes(passed=2)


def test_json_content_failures_name_the_offending_value(pytester: pytest.Pytester) -> None:
    for name in ("test_model", "test_schema"):
        path = pytester.path / f"cassettes/test_j/{name}.yaml"
        write_cassette(path, with_choice(content='{"name": "Ada", "age": "thirty-six"}'))
    pytester.makepyfile(test_j=JSON_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            glob(
                "E *AssertionError: cassettes/test_j/test_model.yaml, interaction 0: "
                "choices[0].message.content.age: expected content matching Person: input should be "
                "a valid integer, unable to parse string as an integer, found 'thirty-six'"
            ),
        ]
    )
    result.stdout.fnmatch_lines(
        [
            glob(
                "E *AssertionError: cassettes/test_j/test_schema.yaml, interaction 0: "
                "choices[0].message.content.age: expected content matching the schema, found "
                "'thirty-six' is not of type 'integer'"
            ),
        ]
    )


def test_json_content_that_is_not_json(pytester: pytest.Pytester) -> None:
    write_cassette(
        pytester.path / "cassettes/test_j/test_schema.yaml", with_choice(content="Ada, 36")
    )
    pytester.makepyfile(test_j=JSON_TEST)
    result = pytester.runpytest("-k", "schema")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(
        [
            glob(
                "E *choices[0].message.content: expected JSON content, found 'Ada, 36' "
                "(Expecting value)"
            ),
        ]
    )


# --- shapes -----------------------------------------------------------------------------------

SHAPE_TEST = """
import pytest

@pytest.mark.chat_cassette("test_k.yaml")
def test_k(chat_completions, chat_shape):
    for completion in chat_completions:
        assert chat_shape == completion
"""


def tool_body(name: str) -> dict[str, Any]:
    return with_choice(
        content=None,
        tool_calls=[tool_call(name, '{"city": "Paris", "unit": "celsius"}')],
        finish_reason="tool_calls",
    )


def test_shape_life_cycle(pytester: pytest.Pytester) -> None:
    cassette = write_cassette(pytester.path / "cassettes/test_k.yaml", tool_body("get_weather"))
    shape_file = pytester.path / "cassettes/test_k.shape.yaml"
    pytester.makepyfile(test_k=SHAPE_TEST)

    # Replay only: a missing shape file fails with the command that writes it.
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*cassettes/test_k.shape.yaml: no shape file for this completion.",
            "*Write it with: pytest --chatresp-update-shapes test_k.py::test_k",
        ]
    )
    assert not shape_file.exists()

    # Written on request, then passing.
    result = pytester.runpytest("--chatresp-update-shapes")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["shape written: cassettes/test_k.shape.yaml"])
    text = shape_file.read_text()
    assert "name: get_weather" in text
    assert "model: gpt-4o-mini\n" in text  # without the date suffix
    assert "arguments: [city, unit]" in text
    pytester.runpytest().assert_outcomes(passed=1)

    # A re-recording with another tool fails with a diff, and the file is not touched.
    write_cassette(cassette, tool_body("get_time"))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the shape of completion 0 differs from cassettes/test_k.shape.yaml:",
            glob("*choices[0].tool_calls[0].name: 'get_weather' → 'get_time'"),
            "*If the change is intended, update the shape file with: "
            "pytest --chatresp-update-shapes test_k.py::test_k",
        ]
    )
    assert shape_file.read_text() == text

    # Updated on purpose.
    pytester.runpytest("--chatresp-update-shapes").assert_outcomes(passed=1)
    assert "name: get_time" in shape_file.read_text()
    pytester.runpytest().assert_outcomes(passed=1)


def test_shape_written_by_a_recording_run_and_shows_what_appeared(
    pytester: pytest.Pytester,
) -> None:
    write_cassette(pytester.path / "cassettes/test_k.yaml", with_choice(content="plain"))
    pytester.makepyfile(test_k=SHAPE_TEST)
    result = pytester.runpytest("--chatresp-record-mode=once")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "cassettes/test_k.shape.yaml").exists()
    write_cassette(pytester.path / "cassettes/test_k.yaml", tool_body("get_weather"))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            glob("*choices[0].content: 'text' → None"),
            glob("*choices[0].finish_reason: 'stop' → 'tool_calls'"),
            glob("*choices[0].tool_calls[0].arguments: ['city', 'unit'] appeared"),
            glob("*choices[0].tool_calls[0].name: 'get_weather' appeared"),
        ]
    )


def test_shape_records_json_keys(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes/test_k.yaml", with_choice(content='{"b": 1, "a": 2}'))
    pytester.makepyfile(test_k=SHAPE_TEST)
    pytester.runpytest("--chatresp-update-shapes").assert_outcomes(passed=1)
    assert "json: [a, b]" in (pytester.path / "cassettes/test_k.shape.yaml").read_text()


def test_a_shape_compared_with_something_else(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes/test_k.yaml", with_choice(content="plain"))
    pytester.makepyfile(
        test_k="""
        import pytest

        @pytest.mark.chat_cassette("test_k.yaml")
        def test_k(chat_shape):
            assert chat_shape == {"id": "x"}
        """
    )
    result = pytester.runpytest("--chatresp-update-shapes")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*not a chat completion: * validation error* for ChatCompletion"])
    result.stdout.no_fnmatch_line("*pydantic_core*")


# --- usage-sum: under-counts as well as over-counts ----------------------------------------------


@pytest.mark.parametrize("total", [14, 0])
def test_usage_total_below_the_sum_is_flagged(pytester: pytest.Pytester, total: int) -> None:
    pytester.makepyfile(test_c=READ_TEST)
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": total}
    write(pytester.path / CASSETTE, completion(usage=usage), None)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"{CASSETTE}, interaction 0: usage.total_tokens: expected prompt_tokens + "
            f"completion_tokens = 15, found {total} [check usage-sum]"
        ]
    )


def test_usage_total_below_the_sum_is_flagged_when_replayed(pytester: pytest.Pytester) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 14}
    write_cassette(
        pytester.path / "cassettes/test_r/test_r.yaml",
        completion(usage=usage),
        request={"model": "m"},
    )
    pytester.makepyfile(
        test_r="""
        import httpx
        import pytest

        @pytest.mark.chat_cassette
        def test_r():
            httpx.post("https://api.openai.com/v1/chat/completions", json={"model": "m"})
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "A recorded or replayed chat completion breaks the contract:",
            "cassettes/test_r/test_r.yaml, interaction 0: usage.total_tokens: expected "
            "prompt_tokens + completion_tokens = 15, found 14 [check usage-sum]",
        ]
    )


# --- a type error does not hide the other findings ----------------------------------------------


def test_a_type_error_does_not_hide_a_failed_check(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_c=READ_TEST)
    body = with_choice(role="user")
    body["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 14}
    write(pytester.path / CASSETTE, body, None)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"{CASSETTE}, interaction 0: choices[0].message.role: expected 'assistant', got 'user'",
            f"{CASSETTE}, interaction 0: usage.total_tokens: expected prompt_tokens + "
            "completion_tokens = 15, found 14 [check usage-sum]",
        ]
    )


def test_a_field_of_the_wrong_type_is_reported_once_not_again_by_a_check(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_c=READ_TEST)
    body = with_choice(role="user")
    body["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": "fifteen"}
    write(pytester.path / CASSETTE, body, None)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"{CASSETTE}, interaction 0: choices[0].message.role: expected 'assistant', got 'user'",
            f"{CASSETTE}, interaction 0: usage.total_tokens: expected an integer, got string "
            "'fifteen'",
        ]
    )
    assert "usage-sum" not in result.stdout.str()


def test_a_missing_field_leaves_the_checks_unrun(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_c=READ_TEST)
    body = completion(usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 14})
    del body["choices"][0]["finish_reason"]
    write(pytester.path / CASSETTE, body, None)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"{CASSETTE}, interaction 0: choices[0].finish_reason: required field is missing"]
    )
    assert "usage-sum" not in result.stdout.str()


# --- which recorded requests need the schema checks' imports ----------------------------------


@pytest.mark.parametrize(
    ("body", "needs"),
    [
        (None, False),
        (b"", False),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}', False),
        ('{"model": "gpt-4o-mini"}', False),
        (b'{"model": "m", "tools": [{"type": "function"}]}', True),
        (b'{"model": "m", "response_format": {"type": "json_schema"}}', True),
        # An escaped key is still the key once parsed.
        (b'{"model": "m", "\\u0074ools": []}', True),
        (b"\x1f\x8b\x08\x00compressed", True),  # gzip: it may decode to anything
        (b"model=m", True),  # not JSON text: left to the checks
        ({"model": "m"}, True),  # already parsed: not looked into
    ],
)
def test_may_need_schemas(body: object, needs: bool) -> None:
    from pytest_chatresp.checks import may_need_schemas

    assert may_need_schemas(body) is needs
