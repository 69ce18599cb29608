"""Contract checks a suite can adopt: each provider behaviour has a one-line way out.

The cassettes in ``tests/data/behaviours`` are real recordings (see its README). Each fails a
check by default, with a message naming the provider where it is recognisable and the line that
accepts the behaviour; with that line (ini, the marker's ``allow=``, or ``chatresp check
--allow``) it passes, and the rest of the contract is still checked.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA
from helpers import completion as completion_body
from helpers import write_cassette

from pytest_chatresp import load_cassette
from pytest_chatresp.checks import Rules
from pytest_chatresp.cli import main
from pytest_chatresp.errors import display_path
from pytest_chatresp.providers import parse_allowances

BEHAVIOURS = DATA / "behaviours"


def way_out(line: str) -> str:
    """The end of a failure under pytest: the ini line and the marker's argument."""
    return f'to accept it: chatresp_allow = {line}, or per test @pytest.mark.chat_cassette(allow=["{line}"]))'


def command_way_out(line: str) -> str:
    """The end of the same failure printed by ``chatresp check``: its option first."""
    return (
        f"to accept it: chatresp check --allow {shlex.quote(line)}, the ini line "
        f'chatresp_allow = {line}, or per test @pytest.mark.chat_cassette(allow=["{line}"]))'
    )


CASES = [
    (
        "gemini_total_with_reasoning.yaml",
        "interaction 0: usage.total_tokens: expected prompt_tokens + completion_tokens = 47, "
        "found 109 (62 more: reasoning tokens counted in the total?) [check usage-sum] (Gemini; "
        + way_out("usage-sum:reasoning"),
        "usage-sum:reasoning",
    ),
    (
        "openrouter_two_finish_reasons.yaml",
        "interaction 0: choices[0].finish_reason: expected one finish_reason in the stream, "
        "found 2 [check stream] (OpenRouter; " + way_out("stream:finish-twice"),
        "stream:finish-twice",
    ),
    (
        "created_in_milliseconds.yaml",
        "interaction 0: created: expected Unix seconds, found 1753879075170 (milliseconds?) "
        "[check created] (" + way_out("created:milliseconds"),
        "created:milliseconds",
    ),
    (
        "writer_without_done.yaml",
        "interaction 0: stream: expected the stream to end with data: [DONE], found no [DONE] "
        "[check stream] (Writer; " + way_out("stream:no-done"),
        "stream:no-done",
    ),
]


def check(*args: str) -> tuple[int, str]:
    status = main(["check", *args])
    return status, ""


@pytest.mark.parametrize(("name", "message", "line"), CASES, ids=[c[0] for c in CASES])
def test_behaviour_fails_with_its_way_out_and_passes_with_it(
    name: str, message: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = BEHAVIOURS / name
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    printed = message.replace(way_out(line), command_way_out(line))
    assert f"{display_path(path)}, {printed}" in out
    # The command it suggests, as a shell would split it, accepts the behaviour.
    suggested = printed.split("to accept it: ")[1].split(", the ini line")[0]
    assert shlex.split(suggested)[:3] == ["chatresp", "check", "--allow"]
    assert main([*shlex.split(suggested)[1:], str(path)]) == 0
    capsys.readouterr()


def test_null_finish_reason_is_null_not_missing() -> None:
    cassette = load_cassette(BEHAVIOURS / "finish_reason_null.yaml")
    messages = [(v.field, v.message) for v in cassette.violations]
    assert messages == [
        (
            "choices[0].finish_reason",
            "expected 'stop', 'length', 'tool_calls', 'content_filter' or 'function_call', "
            "got null (in the merged stream)",
        )
    ]


def test_null_arguments_are_null_not_empty() -> None:
    cassette = load_cassette(BEHAVIOURS / "arguments_null.yaml")
    exchange = cassette.exchanges[0]
    assert exchange.merged is not None
    call = exchange.merged["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["arguments"] is None  # as the openai SDK's accumulation keeps it
    assert [(v.field, v.message) for v in exchange.violations] == [
        (
            "choices[0].message.tool_calls[0].function.arguments",
            "expected a string, got null (in the merged stream)",
        )
    ]
    allowed = Rules(
        allow=parse_allowances(["choices[].message.tool_calls[].function.arguments=null"])
    )
    assert load_cassette(BEHAVIOURS / "arguments_null.yaml", rules=allowed).exchanges[0].valid


def stream_body(*chunks: dict[str, Any], done: bool = True) -> str:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + (
        "data: [DONE]\n\n" if done else ""
    )


def chunk(choices: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "gpt-4o-mini",
        "choices": choices,
        **extra,
    }


TOOL_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Version?"}],
    "tools": [
        {
            "type": "function",
            "function": {"name": "llm_version", "parameters": {"type": "object", "properties": {}}},
        }
    ],
}


def test_empty_arguments_for_a_tool_without_parameters(tmp_path: Path) -> None:
    call = {
        "index": 0,
        "id": "c",
        "type": "function",
        "function": {"name": "llm_version", "arguments": ""},
    }
    body = stream_body(
        chunk(
            [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "tool_calls": [call]},
                    "finish_reason": None,
                }
            ]
        ),
        chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
    )
    path = write_cassette(tmp_path / "empty.yaml", body, request=TOOL_REQUEST)
    document = json.loads(path.read_text())
    document["interactions"][0]["response"]["headers"] = {"Content-Type": ["text/event-stream"]}
    path.write_text(json.dumps(document))
    (violation,) = load_cassette(path).violations
    assert str(violation) == (
        f"{display_path(path)}, interaction 0: choices[0].message.tool_calls[0].function.arguments: expected "
        "a JSON object ('{}' for no arguments), found '' for 'llm_version', a tool without "
        "parameters [check tool-args] (" + way_out("tool-args:empty")
    )
    rules = Rules(allow=parse_allowances(["tool-args:empty"]))
    assert load_cassette(path, rules=rules).violations == []
    # A tool that takes parameters gets no such leave: '' is no JSON object.
    request = json.loads(json.dumps(TOOL_REQUEST))
    request["tools"][0]["function"]["parameters"]["properties"] = {"x": {"type": "string"}}
    document["interactions"][0]["request"]["body"] = json.dumps(request)
    path.write_text(json.dumps(document))
    (violation,) = load_cassette(path, rules=rules).violations
    assert "expected JSON arguments, found ''" in violation.message


def test_moderation_chunk_after_the_usage_chunk_is_accepted(tmp_path: Path) -> None:
    """api.openai.com sends the moderation chunk after the usage chunk; the SDK merges it."""
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    result = {
        "type": "moderation_results",
        "model": "omni-moderation-latest",
        "results": [
            {
                "type": "moderation_result",
                "model": "omni-moderation-latest",
                "flagged": False,
                "categories": {"violence": False},
                "category_scores": {"violence": 0.001},
                "category_applied_input_types": {"violence": ["text"]},
            }
        ],
    }
    moderation = {"input": result, "output": result}
    body = stream_body(
        chunk(
            [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]
        ),
        chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        chunk([], usage=usage),
        chunk([], moderation=moderation),
    )
    path = write_cassette(tmp_path / "moderated.yaml", body)
    document = json.loads(path.read_text())
    document["interactions"][0]["response"]["headers"] = {"Content-Type": ["text/event-stream"]}
    path.write_text(json.dumps(document))
    exchange = load_cassette(path).exchanges[0]
    assert [str(v) for v in exchange.violations] == []
    assert exchange.completion is not None
    assert exchange.completion.usage is not None
    assert exchange.completion.usage.total_tokens == 2
    # The usage chunk before a chunk with choices is still out of place.
    misplaced = stream_body(
        chunk(
            [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]
        ),
        chunk([], usage=usage),
        chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    )
    document["interactions"][0]["response"]["body"]["string"] = misplaced
    path.write_text(json.dumps(document))
    assert [v.message for v in load_cassette(path).violations] == [
        "expected the usage chunk after every chunk with choices, found chunk 2 with choices "
        "after it [check stream]"
    ]


def test_a_bad_behaviour_line_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchatresp_allow = stream:no-end\n")
    pytester.makepyfile(test_c="def test_c():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*chatresp_allow: 'stream:no-end' is no known check behaviour (known: "
            "usage-sum:reasoning, stream:finish-twice, stream:no-done, tool-args:empty, "
            "created:milliseconds)*"
        ]
    )


MARKED = """
import pytest


@pytest.mark.chat_cassette("writer.yaml", allow=["stream:no-done"])
def test_allowed(chat_completions):
    assert chat_completions


def test_strict(chat_completions):
    pass
"""


def test_marker_allow_and_ini_allow(pytester: pytest.Pytester) -> None:
    directory = pytester.path / "cassettes"
    directory.mkdir()
    shutil.copyfile(BEHAVIOURS / "writer_without_done.yaml", directory / "writer.yaml")
    (directory / "test_c").mkdir()
    shutil.copyfile(
        BEHAVIOURS / "writer_without_done.yaml", directory / "test_c" / "test_strict.yaml"
    )
    pytester.makepyfile(test_c=MARKED)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*found no [[]DONE] [[]check stream] (Writer; to accept it: *"])
    pytester.makeini("[pytest]\nchatresp_allow = stream:no-done\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


BAD_MARKERS = """
import pytest


@pytest.mark.chat_cassette("writer.yaml", allow=["stream:nope"])
def test_bad_allow(chat_completions):
    pass


@pytest.mark.chat_cassette("writer.yaml", skip_checks=["streams"])
def test_bad_skip(chat_completions):
    pass


@pytest.mark.chat_cassette("writer.yaml", skip_checks="stream")
def test_one_name(chat_completions):
    pass
"""


def test_bad_marker_allowances_say_what_is_known(pytester: pytest.Pytester) -> None:
    directory = pytester.path / "cassettes"
    directory.mkdir()
    shutil.copyfile(BEHAVIOURS / "writer_without_done.yaml", directory / "writer.yaml")
    pytester.makepyfile(test_c=BAD_MARKERS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_c.py::test_bad_allow: @pytest.mark.chat_cassette(allow=*): "
            "'stream:nope' is no known check behaviour (known: usage-sum:reasoning, "
            "stream:finish-twice, stream:no-done, tool-args:empty, created:milliseconds)",
            "test_c.py::test_bad_skip: @pytest.mark.chat_cassette(skip_checks=*): use one of: "
            "usage-sum, choice-index, choice-count, tool-args, json-output, tool-schema, "
            "stream, created",
        ]
    )


def test_check_mode_totals_under_xdist(pytester: pytest.Pytester) -> None:
    directory = pytester.path / "cassettes"
    directory.mkdir()
    for name in ("writer_without_done.yaml", "gemini_total_with_reasoning.yaml"):
        shutil.copyfile(BEHAVIOURS / name, directory / name)
    write_cassette(directory / "plain.yaml", completion_body())
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--chatresp-collect-cassettes",
        "-n",
        "2",
        "--chatresp-report-json=r.json",
    )
    result.assert_outcomes(passed=1, failed=2)
    total = json.loads((pytester.path / "r.json").read_text())["total"]
    assert (total["read"], total["invalid"]) == (4, 3)
    assert total["kinds"] == {"chat completion": 3, "chat stream": 1}


def _suggested(out: str) -> list[str]:
    """The ``chatresp check`` command a failure line suggests, split as a shell splits it."""
    (line,) = [line for line in out.splitlines() if "to accept it: " in line]
    suggested = line.split("to accept it: ")[1].split(", the ini line")[0]
    return shlex.split(suggested)


def test_the_command_suggests_a_quoted_allowance_that_accepts_the_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = DATA / "providers" / "together.yaml"
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        "(Together; to accept it: chatresp check --allow 'choices[].finish_reason=eos', the ini "
        "line chatresp_allow = choices[].finish_reason=eos, or per test "
        '@pytest.mark.chat_cassette(allow=["choices[].finish_reason=eos"]))'
    ) in out
    command = _suggested(out)
    assert command == ["chatresp", "check", "--allow", "choices[].finish_reason=eos"]
    assert main([*command[1:], str(path)]) == 0
    capsys.readouterr()


def test_the_command_suggests_skipping_a_check_with_its_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Groq counting fewer total tokens than the sum: no allowance accepts that, skipping the
    # check does.
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 12}
    path = write_cassette(tmp_path / "groq_short.yaml", completion_body(usage=usage))
    path.write_text(path.read_text().replace("api.openai.com", "api.groq.com"))
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        "[check usage-sum] (Groq; to accept it: chatresp check --skip-checks usage-sum, the ini "
        "line chatresp_skip_checks = usage-sum, or per test "
        '@pytest.mark.chat_cassette(skip_checks=["usage-sum"]))'
    ) in out
    command = _suggested(out)
    assert command == ["chatresp", "check", "--skip-checks", "usage-sum"]
    assert main([*command[1:], str(path)]) == 0
    capsys.readouterr()
