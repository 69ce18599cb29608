"""Nothing the plugin does while a test runs blocks a running event loop.

The user's suite runs under BlockBuster, which fails any blocking call (``os.getcwd``, a
directory listing, opening a file, ``os.stat``…) made inside a running asyncio loop, as
agent frameworks' suites do. An async test replays a tool call through ``openai.AsyncOpenAI``
under the marker: the replayed response is read, validated and checked (the tool's JSON
Schema too) inside the loop, without a blocking call.
"""

from __future__ import annotations

import json

import pytest
from helpers import completion
from openai_server import OpenAIServer

pytest.importorskip("blockbuster")

CONFTEST = """
import pytest
from blockbuster import blockbuster_ctx


@pytest.fixture(autouse=True)
def blockbuster():
    with blockbuster_ctx() as guard:
        yield guard
"""

USER_TEST = """
import os

import openai
import pytest

TOOLS = {tools}


@pytest.fixture
def client():  # built outside the loop: the SDK reads its certificates when it is made
    return openai.AsyncOpenAI(
        base_url=os.environ["CHATRESP_TEST_BASE_URL"],
        api_key=os.environ["CHATRESP_TEST_API_KEY"],
        max_retries=0,
    )


@pytest.mark.asyncio
@pytest.mark.chat_cassette
async def test_capital(client, chat_cassette):
    answer = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{{"role": "user", "content": "Capital of France?"}}],
        tools=TOOLS,
    )
    assert answer.choices[0].message.tool_calls[0].function.name == "get_capital"
    assert len(chat_cassette.completions) == 1


@pytest.mark.asyncio
@pytest.mark.chat_cassette("streamed.yaml")
async def test_streamed(client, chat_cassette):
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": "Hi"}}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello"
    assert chat_cassette.completions[0].choices[0].message.content == "Hello"


@pytest.mark.asyncio
async def test_guard_is_on():
    with pytest.raises(Exception, match="Blocking call"):
        os.getcwd()
"""

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_capital",
            "parameters": {
                "type": "object",
                "properties": {"country": {"type": "string"}},
                "required": ["country"],
            },
        },
    }
]


def test_replay_under_blockbuster(pytester: pytest.Pytester, openai_server: OpenAIServer) -> None:
    request = {
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "model": "gpt-4o-mini",
        "tools": TOOLS,
    }
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_capital", "arguments": '{"country": "France"}'},
    }
    body = completion(
        choices=[
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ]
    )
    interaction = {
        "request": {
            "body": json.dumps(request),
            "headers": {"content-type": ["application/json"]},
            "method": "POST",
            "uri": openai_server.base_url + "/chat/completions",
        },
        "response": {
            "body": {"string": json.dumps(body)},
            "headers": {"content-type": ["application/json"]},
            "status": {"code": 200, "message": "OK"},
        },
    }
    path = pytester.path / "cassettes" / "test_user" / "test_capital.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"interactions": [interaction], "version": 1}), encoding="utf-8")
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1764000000, "model": "m"}
    events = [
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
        {**chunk, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {
            **chunk,
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        },
    ]
    streamed = {
        "request": {
            **interaction["request"],
            "body": json.dumps(
                {
                    "messages": [{"role": "user", "content": "Hi"}],
                    "model": "gpt-4o-mini",
                    "stream": True,
                }
            ),
        },
        "response": {
            "body": {
                "string": "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            },
            "headers": {"content-type": ["text/event-stream"]},
            "status": {"code": 200, "message": "OK"},
        },
    }
    (pytester.path / "cassettes" / "streamed.yaml").write_text(
        json.dumps({"interactions": [streamed], "version": 1}), encoding="utf-8"
    )
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user=USER_TEST.format(tools=repr(TOOLS)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    assert openai_server.request_count == 0


# --- no check turns an unexpected error into a verdict ------------------------------------------


def test_schema_check_lets_unexpected_errors_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only an unusable schema's errors become "cannot check"; a blocking call refused by a
    guard (or any other failure of the machine) is no contract violation."""
    from pytest_chatresp import checks

    def refused(value: object, schema: object) -> list[tuple[str, str]]:
        raise RuntimeError("Blocking call to os.listdir")

    monkeypatch.setattr(checks, "schema_errors", refused)
    with pytest.raises(RuntimeError, match="Blocking call"):
        checks._schema_check({}, {"type": "object"})
    monkeypatch.undo()
    errors, unusable = checks._schema_check({}, {"type": "no-such-type"})
    assert errors == []
    assert unusable is not None
    assert unusable.startswith("UnknownType")


# --- locations and ids of cassette items ---------------------------------------------------------

LOCATION_PLUGIN = """
def pytest_runtest_logreport(report):
    if report.when == "call":
        print(f"LOCATION {report.location!r}")
"""


def test_check_items_have_a_line_and_bracketed_ids_run_again(pytester: pytest.Pytester) -> None:
    from helpers import write_cassette

    directory = pytester.path / "cassettes" / "test_models"
    write_cassette(directory / "test_name_suggestion[openai-chat].yaml", completion())
    write_cassette(directory / "test_name_suggestion[groq].yaml", completion())
    write_cassette(directory / "plain.yaml", completion())
    pytester.makeconftest(LOCATION_PLUGIN)
    result = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-collect-cassettes", "-s")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*LOCATION ('cassettes/test_models/plain.yaml', 0, 'cassette cassettes/test_models/plain.yaml')"
        ]
    )
    nodeid = "cassettes/test_models/test_name_suggestion[openai-chat].yaml::contract"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--chatresp-collect-cassettes", "-v", nodeid
    )
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines([nodeid.replace("[", "[[]") + " PASSED*"])
