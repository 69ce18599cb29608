"""Recording and replay through vcrpy, end to end.

Each test writes a small user project with ``pytester``, whose tests call the local
OpenAI-compatible server (``openai_server``) through the real ``openai`` SDK, ``httpx`` or
``requests`` under ``@pytest.mark.chat_cassette``, runs pytest on it in process, and checks the
outcome, the exact failure text, the cassettes on disk and how many requests reached the server.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

# Imported here, before any pytester run, so that the in-process runs reuse them: pytester
# forgets the modules a run imported, and PyYAML's C extension cannot be imported afresh (a
# second copy of ``yaml`` then fails to read every cassette). Loading hypothesis once also
# keeps its pytest plugin from importing it again in every run.
import httpx
import hypothesis  # noqa: F401
import openai  # noqa: F401
import pytest
import requests  # noqa: F401
import vcr.patch
import yaml
from openai_server import COOKIES, ORGANIZATION, PROJECT, OpenAIServer

from pytest_chatresp.recording import (
    DEFAULT_QUERY_PARAMETERS,
    DEFAULT_REQUEST_HEADERS,
    DEFAULT_RESPONSE_HEADERS,
)

# These tests look inside the files vcrpy writes, so they use its plain YAML layout;
# tests/test_readable.py covers the readable format.
INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
chatresp_serializer = yaml
"""

PRELUDE = """\
import json
import os

import httpx
import openai
import pytest
import requests

URL = os.environ["CHATRESP_TEST_BASE_URL"]
KEY = os.environ["CHATRESP_TEST_API_KEY"]
CHAT = URL + "/chat/completions"


def client(**options):
    return openai.OpenAI(base_url=URL, api_key=KEY, max_retries=0, **options)


def async_client():
    return openai.AsyncOpenAI(base_url=URL, api_key=KEY, max_retries=0)


def ask(text, **options):
    return client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **options
    )


def show(value):
    print("RESULT " + json.dumps(value, sort_keys=True))

"""

MODES = "none, once, new_episodes, all"


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def project(pytester: pytest.Pytester, openai_server: OpenAIServer) -> pytest.Pytester:
    """A user project with an ini file; the server's URL and fake key are in the environment."""
    pytester.makeini(INI)
    return pytester


def ini(pytester: pytest.Pytester, *lines: str) -> None:
    pytester.makeini(INI + "".join(f"{line}\n" for line in lines))


def user_tests(pytester: pytest.Pytester, source: str) -> None:
    """``test_user.py``: the prelude above, then ``source``."""
    pytester.makepyfile(test_user=PRELUDE + source)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def cassette_path(pytester: pytest.Pytester, name: str = "test_a") -> Path:
    return pytester.path / "cassettes" / "test_user" / f"{name}.yaml"


def interactions(pytester: pytest.Pytester, name: str = "test_a") -> list[dict[str, Any]]:
    document = yaml.safe_load(cassette_path(pytester, name).read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = document["interactions"]
    return found


def results(result: pytest.RunResult) -> list[Any]:
    """What the user tests showed with ``show(...)`` (they run with ``-s``)."""
    marker = "RESULT "
    return [json.loads(line.split(marker, 1)[1]) for line in result.outlines if marker in line]


def header(headers: dict[str, Any], name: str) -> list[str]:
    values = [v for k, v in headers.items() if k.lower() == name.lower()]
    assert len(values) == 1, (name, headers)
    value = values[0]
    return value if isinstance(value, list) else [value]


def body_text(part: dict[str, Any]) -> str:
    body = part["body"]
    raw = body["string"] if isinstance(body, dict) else body
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def asked(interaction: dict[str, Any]) -> str:
    """The last message of a recorded request."""
    content: str = json.loads(body_text(interaction["request"]))["messages"][-1]["content"]
    return content


def answered(interaction: dict[str, Any]) -> str:
    """The content of a recorded (non-streamed, uncompressed) response."""
    body = json.loads(body_text(interaction["response"]))
    content: str = body["choices"][0]["message"]["content"]
    return content


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` and a hash of its content."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def stray_files(pytester: pytest.Pytester) -> list[str]:
    """Temporary files left next to the cassettes."""
    return sorted(p.name for p in pytester.path.rglob("*") if p.name.endswith(".tmp"))


@pytest.fixture
def no_gc() -> Iterator[None]:
    """No garbage collection during the test: what is left behind is not cleaned up by luck."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def httpx_unpatched() -> bool:
    """vcrpy's patches are undone: httpx talks to the network again."""
    return httpx.HTTPTransport.handle_request is vcr.patch._HttpxHttpTransport_handle_request


UNPATCHED = """

def test_after():
    # The previous test's cassette is closed: this unmarked test's HTTP is not intercepted.
    import vcr.patch

    assert httpx.HTTPTransport.handle_request is vcr.patch._HttpxHttpTransport_handle_request
"""


# --- 1. record once, replay offline -------------------------------------------------------------

CALLS = {
    "openai-sync": """
@pytest.mark.chat_cassette
def test_a(chat_cassette):
    completion = ask("hello sync")
    assert chat_cassette.completions[0].id == completion.id
    show(completion.model_dump(mode="json"))
""",
    "openai-sync-stream": """
@pytest.mark.chat_cassette
def test_a(chat_cassette):
    stream = ask("hello streamed world", stream=True, stream_options={"include_usage": True})
    chunks = [chunk.model_dump(mode="json") for chunk in stream]
    assert chunks[-1]["usage"]["total_tokens"] > 0
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Echo: hello streamed world"
    (merged,) = chat_cassette.completions
    assert merged.choices[0].message.content == text
    assert merged.usage.total_tokens == chunks[-1]["usage"]["total_tokens"]
    assert chat_cassette.exchanges[0].streamed
    show(chunks)
""",
    "openai-async": """
@pytest.mark.asyncio
@pytest.mark.chat_cassette
async def test_a(chat_cassette):
    async with async_client() as sdk:
        completion = await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello async"}]
        )
    assert chat_cassette.completions[0].id == completion.id
    show(completion.model_dump(mode="json"))
""",
    "openai-async-stream": """
@pytest.mark.asyncio
@pytest.mark.chat_cassette
async def test_a(chat_cassette):
    async with async_client() as sdk:
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hello async stream"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk.model_dump(mode="json") async for chunk in stream]
    assert chunks[-1]["usage"]["total_tokens"] > 0
    (merged,) = chat_cassette.completions
    assert merged.choices[0].message.content == "Echo: hello async stream"
    show(chunks)
""",
    "openai-tool-call": """
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


@pytest.mark.chat_cassette
def test_a(chat_cassette):
    completion = ask("weather?", tools=[WEATHER])
    (call,) = completion.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 1}
    assert completion.choices[0].finish_reason == "tool_calls"
    recorded = chat_cassette.completions[0].choices[0].message.tool_calls[0]
    assert recorded.id == call.id
    show(completion.model_dump(mode="json"))
""",
    "openai-error": """
@pytest.mark.chat_cassette
def test_a(chat_cassette):
    # (A refused key, 401 or 403, is not recorded: see tests/test_rerecord.py.)
    with pytest.raises(openai.NotFoundError) as caught:
        client().chat.completions.create(
            model="error-404", messages=[{"role": "user", "content": "let me in"}]
        )
    (exchange,) = chat_cassette.errors
    assert exchange.error.status == 404
    assert chat_cassette.completions == []
    show(caught.value.body)
""",
    "httpx-gzip": """
@pytest.mark.chat_cassette
def test_a(chat_cassette):
    response = httpx.post(
        CHAT,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "zipped"}]},
        headers={"authorization": "Bearer " + KEY, "x-local-gzip": "1"},
    )
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert chat_cassette.completions[0].id == response.json()["id"]
    show(response.json())
""",
    "requests": """
@pytest.mark.chat_cassette
def test_a(chat_cassette):
    response = requests.post(
        CHAT,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "via requests"}]},
        headers={"authorization": "Bearer " + KEY},
        timeout=10,
    )
    assert response.status_code == 200
    assert chat_cassette.completions[0].id == response.json()["id"]
    show(response.json())
""",
}


@pytest.mark.parametrize("kind", list(CALLS))
def test_record_once_then_replay_offline(
    project: pytest.Pytester, openai_server: OpenAIServer, kind: str
) -> None:
    user_tests(project, CALLS[kind])

    recorded = run(project, "-s", "--chatresp-record-mode=once")
    recorded.assert_outcomes(passed=1)
    assert openai_server.request_count == 1
    (interaction,) = interactions(project)
    assert interaction["request"]["uri"] == openai_server.base_url + "/chat/completions"
    assert header(interaction["request"]["headers"], "authorization") == ["REDACTED"]
    if kind == "httpx-gzip":  # kept as the server sent it, compressed
        assert interaction["response"]["body"]["string"][:2] == b"\x1f\x8b"

    replayed = run(project, "-s")  # record mode none: replay only
    replayed.assert_outcomes(passed=1)
    assert openai_server.request_count == 1, "the replay reached the server"
    assert results(replayed) == results(recorded)
    assert len(results(replayed)) == 1


# --- 2. the live chat_cassette fixture ----------------------------------------------------------

LIVE = """
@pytest.mark.chat_cassette
def test_a(chat_cassette):
    sdk = client()
    assert len(chat_cassette.exchanges) == 0
    for n, text in enumerate(["one", "two", "three"], start=1):
        completion = sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
        assert len(chat_cassette.exchanges) == n
        assert len(chat_cassette.completions) == n
        assert chat_cassette.exchanges[-1].index == n - 1
        assert chat_cassette.exchanges[-1].request.last_message == text
        assert chat_cassette.completions[-1].id == completion.id
    assert [c.choices[0].message.content for c in chat_cassette.completions] == [
        "Echo: one", "Echo: two", "Echo: three"
    ]
"""


def test_live_cassette_grows_in_order(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, LIVE)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    assert openai_server.request_count == 3
    assert len(interactions(project)) == 3
    run(project).assert_outcomes(passed=1)
    assert openai_server.request_count == 3


# --- 3. record modes ----------------------------------------------------------------------------

ONE = """
@pytest.mark.chat_cassette
def test_a():
    assert ask("hello").choices[0].message.content == "Echo: hello"
"""

ONE_CHANGED = """
@pytest.mark.chat_cassette
def test_a():
    ask("goodbye")
"""

TWO = """
@pytest.mark.chat_cassette
def test_a(chat_cassette):
    ask("hello")
    ask("and more")
    assert [e.index for e in chat_cassette.exchanges] == [0, 1]
"""


def test_mode_none_without_a_cassette_names_the_request(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(
        project,
        ONE
        + """

@pytest.mark.chat_cassette
def test_b():
    # The client's errors are swallowed: the test fails all the same.
    for text in ("first", "second"):
        try:
            ask(text)
        except Exception:
            pass
""",
    )
    result = run(project)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "No recorded chat completion matches this request:",
            f"  POST {openai_server.base_url}/chat/completions"
            " (model 'gpt-4o-mini', last message 'hello')",
            "cassette: cassettes/test_user/test_a.yaml (does not exist), record mode 'none'",
            "Record it with: pytest --chatresp-record-mode=once test_user.py::test_a",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "No recording matches these 2 requests:",
            "  POST */chat/completions (model 'gpt-4o-mini', last message 'first')",
            "  POST */chat/completions (model 'gpt-4o-mini', last message 'second')",
            "cassette: cassettes/test_user/test_b.yaml (does not exist), record mode 'none'",
            "Record it with: pytest --chatresp-record-mode=once test_user.py::test_b",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    assert openai_server.request_count == 0
    assert not (project.path / "cassettes").exists()


def test_mode_none_with_a_changed_request_shows_the_closest_recording(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, ONE)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    before = cassette_path(project).read_bytes()

    user_tests(project, ONE_CHANGED)
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "No recorded chat completion matches this request:",
            f"  POST {openai_server.base_url}/chat/completions"
            " (model 'gpt-4o-mini', last message 'goodbye')",
            "    closest recording: interaction 0, which differs in 1 field:",
            "      messages[[]0[]].content",
            "        recorded: 'hello'",
            "        now:      'goodbye'",
            "cassette: cassettes/test_user/test_a.yaml, record mode 'none'",
            "Record it again with: pytest --chatresp-record-mode=all test_user.py::test_a",
        ],
        consecutive=True,
    )
    assert openai_server.request_count == 1
    assert cassette_path(project).read_bytes() == before


def test_mode_once_with_a_cassette_refuses_a_new_request(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, ONE)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    before = cassette_path(project).read_bytes()

    user_tests(project, TWO)
    result = run(project, "--chatresp-record-mode=once")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "No recorded chat completion matches this request:",
            "  POST */chat/completions (model 'gpt-4o-mini', last message 'and more')",
            "    closest recording: interaction 0, which differs in 1 field:",
            "      messages[[]0[]].content",
            "        recorded: 'hello'",
            "        now:      'and more'",
            "cassette: cassettes/test_user/test_a.yaml, record mode 'once'",
            "Record it again with: pytest --chatresp-record-mode=all test_user.py::test_a",
        ],
        consecutive=True,
    )
    assert openai_server.request_count == 1
    assert cassette_path(project).read_bytes() == before


def test_mode_new_episodes_appends(project: pytest.Pytester, openai_server: OpenAIServer) -> None:
    user_tests(project, ONE)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    (first,) = interactions(project)

    user_tests(project, TWO)
    run(project, "--chatresp-record-mode=new_episodes").assert_outcomes(passed=1)
    assert openai_server.request_count == 2, "only the new request reaches the server"
    kept, added = interactions(project)
    assert kept == first
    assert asked(added) == "and more"

    run(project).assert_outcomes(passed=1)
    assert openai_server.request_count == 2


def test_mode_all_records_again(project: pytest.Pytester, openai_server: OpenAIServer) -> None:
    user_tests(project, ONE)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    (first,) = interactions(project)

    run(project, "--chatresp-record-mode=all").assert_outcomes(passed=1)
    assert openai_server.request_count == 2, "the cassette exists, yet the request was sent"
    (again,) = interactions(project)
    # The server numbers its requests: a new request id proves the response was recorded anew.
    first_id = header(first["response"]["headers"], "x-request-id")
    assert header(again["response"]["headers"], "x-request-id") != first_id
    assert again["request"] == first["request"]


def test_cli_record_mode_wins_over_ini(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    ini(project, "chatresp_record_mode = once")
    user_tests(project, ONE)

    result = run(project, "--chatresp-record-mode=none")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["cassette: cassettes/test_user/test_a.yaml (does not exist), record mode 'none'"]
    )
    result.stdout.no_fnmatch_line("chatresp: *record mode*")
    assert openai_server.request_count == 0
    assert not cassette_path(project).exists()

    result = run(project)  # the ini alone
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["chatresp: record mode once, serializer yaml"])
    assert openai_server.request_count == 1
    assert cassette_path(project).exists()


def test_marker_record_mode_wins_over_cli_and_ini(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    ini(project, "chatresp_record_mode = all")
    user_tests(
        project,
        """
@pytest.mark.chat_cassette(record_mode="once")
def test_a():
    ask("marked once")


@pytest.mark.chat_cassette(record_mode="none")
def test_b():
    ask("marked none")


@pytest.mark.chat_cassette("shared/named.yaml", record_mode="once")
def test_c():
    ask("named")
""",
    )
    result = run(project, "--chatresp-record-mode=new_episodes")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_b _*",
            "No recorded chat completion matches this request:",
            "  POST */chat/completions (model 'gpt-4o-mini', last message 'marked none')",
            "cassette: cassettes/test_user/test_b.yaml (does not exist), record mode 'none'",
        ]
    )
    assert openai_server.request_count == 2
    assert not cassette_path(project, "test_b").exists()
    named = project.path / "cassettes" / "shared" / "named.yaml"
    assert named.is_file()

    # Replayed, not recorded again as 'all' or the CLI's new_episodes would.
    before = tree(project.path / "cassettes")
    result = run(project, "--chatresp-record-mode=all", "-k", "test_a or test_c")
    result.assert_outcomes(passed=2, deselected=1)
    assert openai_server.request_count == 2
    assert tree(project.path / "cassettes") == before


def test_bad_record_mode_in_ini_is_a_usage_error(project: pytest.Pytester) -> None:
    ini(project, "chatresp_record_mode = sometimes")
    user_tests(project, ONE)
    result = run(project)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: chatresp_record_mode = 'sometimes' is not valid; use one of: {MODES}."]
    )


def test_bad_record_mode_on_the_command_line_is_a_usage_error(project: pytest.Pytester) -> None:
    user_tests(project, ONE)
    result = run(project, "--chatresp-record-mode=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --chatresp-record-mode = 'sometimes' is not valid; use one of: {MODES}."]
    )


def test_bad_record_mode_in_the_marker_stops_the_run_at_collection(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(
        project,
        """
@pytest.mark.chat_cassette(record_mode="sometimes")
def test_a():
    ask("hello")


@pytest.mark.chat_cassette
def test_b():
    ask("hello")
""",
    )
    result = run(project, "--chatresp-record-mode=once")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_user.py::test_a: @pytest.mark.chat_cassette(record_mode='sometimes'):"
            f" use one of: {MODES}",
        ]
    )
    result.stderr.no_fnmatch_line("*Traceback*")
    assert openai_server.request_count == 0
    assert not cassette_path(project).exists()


# --- 4. validation of what was recorded or replayed ---------------------------------------------

CORRUPTING = """
@pytest.fixture
def chatresp_vcr_config():
    def corrupt(response):
        body = response["body"]["string"]
        # Same length, so the recorded content-length stays right.
        response["body"]["string"] = body.replace(
            b'"finish_reason": "stop"', b'"finish_reason": "eos" '
        )
        return response

    return {"before_record_response": corrupt}


@pytest.mark.chat_cassette
def test_a():
    ask("hello")
"""

BROKEN_CONTRACT = [
    "A recorded or replayed chat completion breaks the contract:",
    "cassettes/test_user/test_a.yaml, interaction 0: choices[[]0[]].finish_reason: expected *,"
    " got 'eos'",
]


def test_a_recorded_response_that_breaks_the_contract_fails(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, CORRUPTING)
    result = run(project, "--chatresp-record-mode=once")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(BROKEN_CONTRACT, consecutive=True)
    assert "eos" in body_text(interactions(project)[0]["response"])

    result = run(project)  # replayed from the file
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(BROKEN_CONTRACT, consecutive=True)
    assert openai_server.request_count == 1


def _interaction(content: str, response: dict[str, Any]) -> dict[str, Any]:
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    return {
        "request": {
            "method": "POST",
            "uri": "https://api.example.test/v1/chat/completions",
            "headers": {"content-type": ["application/json"]},
            "body": json.dumps(request),
        },
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": {"content-type": ["application/json"]},
            "body": {"string": json.dumps(response)},
        },
    }


def _completion(role: str) -> dict[str, Any]:
    message = {"role": role, "content": "Hi", "refusal": None}
    return {
        "id": "chatcmpl-handwritten",
        "object": "chat.completion",
        "created": 1764000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
    }


def test_a_handwritten_cassette_that_breaks_the_contract_fails_on_replay(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    path = cassette_path(project)
    path.parent.mkdir(parents=True)
    document = {
        "version": 1,
        "interactions": [
            _interaction("first", _completion("assistant")),
            _interaction("second", _completion("robot")),
        ],
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    user_tests(
        project,
        """
URL = "https://api.example.test/v1/chat/completions"


@pytest.mark.chat_cassette
def test_a(chat_cassette):
    for text in ("first", "second"):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
        assert httpx.post(URL, json=body).json()["id"] == "chatcmpl-handwritten"
    assert len(chat_cassette.exchanges) == 2
""",
    )
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "A recorded or replayed chat completion breaks the contract:",
            "cassettes/test_user/test_a.yaml, interaction 1: choices[[]0[]].message.role:"
            " expected 'assistant', got 'robot'",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*interaction 0*")
    assert openai_server.request_count == 0


# --- 5. secrets ---------------------------------------------------------------------------------


def _secret(name: str) -> str:
    """A secret-looking value that the last scan would not catch: only scrubbing hides it."""
    return f"hush-{name}-0123456789"


class Leak(NamedTuple):
    """Where a secret goes, under what name, its value, and ini lines that scrub it."""

    where: str
    name: str
    secret: str
    settings: tuple[str, ...] = ()


LEAKS = [
    *(
        pytest.param(Leak("request-header", name, _secret(name)), id=f"request-header-{name}")
        for name in DEFAULT_REQUEST_HEADERS
    ),
    *(
        pytest.param(Leak("query", name, _secret(name)), id=f"query-{name}")
        for name in DEFAULT_QUERY_PARAMETERS
    ),
    pytest.param(Leak("query", "API_KEY", _secret("upper")), id="query-API_KEY-any-case"),
    pytest.param(Leak("response-header", "set-cookie", COOKIES[0].split(";")[0]), id="set-cookie"),
    pytest.param(
        Leak("response-header", "openai-organization", ORGANIZATION), id="openai-organization"
    ),
    pytest.param(Leak("response-header", "openai-project", PROJECT), id="openai-project"),
    pytest.param(
        Leak(
            "request-header",
            "x-custom-secret",
            _secret("custom"),
            ("chatresp_filter_request_headers = X-Custom-Secret",),
        ),
        id="ini-request-header",
    ),
    pytest.param(
        Leak(
            "query",
            "accessToken",
            _secret("access"),
            ("chatresp_filter_query_parameters = accessToken",),
        ),
        id="ini-query-mixed-case",
    ),
    pytest.param(
        Leak(
            "response-header",
            "x-request-id",
            "req_",
            ("chatresp_filter_response_headers = X-Request-ID",),
        ),
        id="ini-response-header",
    ),
]


def test_the_leak_matrix_covers_every_default_name() -> None:
    covered = {leak.name for param in LEAKS for leak in param.values if isinstance(leak, Leak)}
    assert covered >= {
        *DEFAULT_REQUEST_HEADERS,
        *DEFAULT_QUERY_PARAMETERS,
        *DEFAULT_RESPONSE_HEADERS,
    }


@pytest.mark.parametrize("leak", LEAKS)
def test_secrets_are_scrubbed_from_the_cassette(
    project: pytest.Pytester, openai_server: OpenAIServer, leak: Leak
) -> None:
    where, name, secret, settings = leak
    ini(project, *settings)
    headers = {name: secret} if where == "request-header" else {}
    query = f"?{name}={secret}&keep=1" if where == "query" else ""
    user_tests(
        project,
        f"""
@pytest.mark.chat_cassette
def test_a():
    body = {{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "hi"}}]}}
    response = httpx.post(CHAT + {query!r}, json=body, headers={headers!r})
    assert response.status_code == 200
""",
    )
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    text = cassette_path(project).read_text(encoding="utf-8")
    assert secret not in text
    (interaction,) = interactions(project)
    if where == "request-header":
        assert header(interaction["request"]["headers"], name) == ["REDACTED"]
    elif where == "query":
        query_part = urlsplit(interaction["request"]["uri"]).query
        assert parse_qs(query_part) == {name: ["REDACTED"], "keep": ["1"]}
    elif name == "set-cookie":  # the server sets two cookies: the list keeps its length
        assert header(interaction["response"]["headers"], name) == ["REDACTED"] * len(COOKIES)
    else:
        assert header(interaction["response"]["headers"], name) == ["REDACTED"]

    # The scrubbed recording still answers the request that holds the secret.
    run(project).assert_outcomes(passed=1)
    assert openai_server.request_count == 1


REFUSED = "cassettes/test_user/test_a.yaml: not written, because it would hold a secret: "


@pytest.mark.usefixtures("no_gc")
def test_a_key_in_the_request_body_is_refused(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    key = "sk-" + "Leaked0Key0" * 3
    user_tests(
        project,
        f"""
@pytest.mark.chat_cassette
def test_a():
    body = {{
        "model": "gpt-4o-mini",
        "messages": [{{"role": "user", "content": "hi"}}],
        "api_key": {key!r},
    }}
    assert httpx.post(CHAT, json=body).status_code == 200
"""
        + UNPATCHED,
    )
    result = run(project, "--chatresp-record-mode=once")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_a _*",
            REFUSED + "a string shaped like an OpenAI API key (sk-…) in *requests[[]0[]].body*"
            " Scrub it with ini chatresp_filter_request_headers, *",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    assert key not in result.stdout.str() + result.stderr.str()
    assert openai_server.request_count == 1
    assert httpx_unpatched()
    assert not (project.path / "cassettes").exists()
    assert stray_files(project) == []


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzipped"])
def test_an_environment_secret_in_the_response_is_refused(
    project: pytest.Pytester,
    openai_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    gzipped: bool,
) -> None:
    token = "tok-4f1d-secret-9a7e"
    monkeypatch.setenv("MY_SERVICE_TOKEN", token)
    extra = {"x-local-gzip": "1"} if gzipped else {}
    # The request's copy is scrubbed by the user, so only the server's echo holds the token.
    user_tests(
        project,
        f"""
@pytest.fixture
def chatresp_vcr_config():
    def scrub(request):
        token = os.environ["MY_SERVICE_TOKEN"].encode()
        request.body = request.body.replace(token, b"REDACTED")
        return request

    return {{"before_record_request": [scrub]}}  # a list of hooks, as vcrpy takes too


@pytest.mark.chat_cassette
def test_a():
    raw = client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{{"role": "user", "content": os.environ["MY_SERVICE_TOKEN"]}}],
        extra_headers={extra!r},
    )
    assert raw.headers.get("content-encoding") == {"gzip" if gzipped else None!r}
    assert raw.parse().choices[0].message.content.endswith(os.environ["MY_SERVICE_TOKEN"])
""",
    )
    result = run(project, "--chatresp-record-mode=once")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_a _*",
            REFUSED + "*the value of $MY_SERVICE_TOKEN in responses[[]0[]].body.string. Scrub *",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*MY_SERVICE_TOKEN in requests*")
    assert token not in result.stdout.str() + result.stderr.str()
    assert openai_server.request_count == 1
    assert not (project.path / "cassettes").exists()
    assert stray_files(project) == []


def test_the_redacted_placeholder_and_short_values_are_not_secrets(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLACEHOLDER_API_KEY", "REDACTED")
    monkeypatch.setenv("SHORT_TOKEN", "Echo")  # under 8 characters, and in every response
    user_tests(
        project,
        """
@pytest.mark.chat_cassette
def test_a():
    ask("hello", extra_headers={"x-api-key": "REDACTED"})
""",
    )
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    text = cassette_path(project).read_text(encoding="utf-8")
    assert "REDACTED" in text
    assert "Echo: hello" in text


# --- 6. matching --------------------------------------------------------------------------------

COMPACT = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
SAME_DATA = (
    '{ "messages" : [ {"content": "hello", "role": "user"} ],\n'
    '  "n": null,\n "model": "gpt-4o-mini" }'
)
OTHER_DATA = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"n":2}'


def _posting(body: str) -> str:
    return f"""
@pytest.mark.chat_cassette
def test_a():
    headers = {{"content-type": "application/json"}}
    assert httpx.post(CHAT, content={body!r}, headers=headers).status_code == 200
"""


def test_request_bodies_match_as_json_data(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, _posting(COMPACT))
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    assert openai_server.request_count == 1

    user_tests(project, _posting(SAME_DATA))
    run(project).assert_outcomes(passed=1)
    assert openai_server.request_count == 1

    user_tests(project, _posting(OTHER_DATA))
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "No recorded chat completion matches this request:",
            "  POST */chat/completions (model 'gpt-4o-mini', last message 'hello')",
            "    closest recording: interaction 0, which differs in 1 field:",
            "      n",
            "        recorded: (absent)",
            "        now:      2",
        ],
        consecutive=True,
    )
    assert openai_server.request_count == 1


# --- 7. writing ---------------------------------------------------------------------------------


def test_mode_none_never_writes(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    user_tests(
        project,
        """
@pytest.mark.chat_cassette
def test_a():
    ask("kept")


@pytest.mark.chat_cassette
def test_b():
    ask("recorded" if os.environ.get("RECORDING") else "changed")
""",
    )
    monkeypatch.setenv("RECORDING", "1")
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=2)
    monkeypatch.delenv("RECORDING")
    project.makepyfile(test_other=PRELUDE + ONE)  # no cassette at all

    before = tree(project.path)
    result = run(project)
    result.assert_outcomes(passed=1, failed=2)
    assert tree(project.path) == before
    assert openai_server.request_count == 2


def _recorded_then_extended(pytester: pytest.Pytester) -> bytes:
    user_tests(pytester, ONE)
    run(pytester, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    user_tests(pytester, TWO)
    return cassette_path(pytester).read_bytes()


@pytest.mark.usefixtures("no_gc")
def test_a_failed_write_keeps_the_previous_cassette(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _recorded_then_extended(project)
    replace = os.replace

    def failing_replace(src: Any, dst: Any, **kwargs: Any) -> None:
        if str(dst).endswith(".yaml"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    result = run(project, "--chatresp-record-mode=new_episodes")
    result.assert_outcomes(passed=1, errors=1)
    assert httpx_unpatched()
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_a _*",
            "cassettes/test_user/test_a.yaml: cannot write the cassette: Input/output error",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    assert cassette_path(project).read_bytes() == before
    assert stray_files(project) == []


@pytest.mark.usefixtures("no_gc")
def test_an_interrupted_write_keeps_the_previous_cassette(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _recorded_then_extended(project)
    replace = os.replace

    def interrupted(src: Any, dst: Any, **kwargs: Any) -> None:
        if str(dst).endswith(".yaml"):
            raise KeyboardInterrupt
        replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", interrupted)
    result = project.runpytest_inprocess(
        "-p", "no:cacheprovider", "--chatresp-record-mode=new_episodes", no_reraise_ctrlc=True
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert cassette_path(project).read_bytes() == before
    assert stray_files(project) == []
    assert httpx_unpatched()


def test_a_cassette_dir_that_cannot_be_created_is_a_clear_error(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    ini(project, "chatresp_cassette_dir = blocked")
    (project.path / "blocked").write_text("a file where the cassette dir should be\n")
    user_tests(project, ONE)
    result = run(project, "--chatresp-record-mode=once")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at teardown of test_a _*",
            "blocked/test_user/test_a.yaml: cannot write the cassette: Not a directory"
            " (blocked/test_user)",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    assert (project.path / "blocked").is_file()
    assert stray_files(project) == []


def test_a_read_only_cassette_dir_is_a_clear_error(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = project.path / "cassettes" / "test_user"
    directory.mkdir(parents=True)
    directory.chmod(0o555)
    try:
        if os.access(directory, os.W_OK):
            # As root the mode does not stop writes: the file system's refusal is simulated.
            import tempfile

            def refused(*args: Any, dir: Any = None, **kwargs: Any) -> Any:
                raise PermissionError(13, "Permission denied", str(dir))

            monkeypatch.setattr(tempfile, "mkstemp", refused)
        user_tests(project, ONE)
        result = run(project, "--chatresp-record-mode=once")
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(
            [
                "cassettes/test_user/test_a.yaml: cannot write the cassette: Permission denied"
                " (cassettes/test_user)"
            ]
        )
        assert list(directory.iterdir()) == []
    finally:
        directory.chmod(0o755)


# --- 8. scale out -------------------------------------------------------------------------------

WORKERS = 6


def test_xdist_workers_record_and_replay_their_own_cassettes(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(
        project,
        f"""
@pytest.mark.parametrize("n", range({WORKERS}))
@pytest.mark.chat_cassette
def test_a(n, chat_cassette):
    for turn in range(n % 3 + 1):
        ask(f"worker message {{n}} turn {{turn}}")
    assert len(chat_cassette.exchanges) == n % 3 + 1
""",
    )
    args = ("-p", "no:cacheprovider", "-n", "2")
    result = project.runpytest_subprocess(*args, "--chatresp-record-mode=once")
    result.assert_outcomes(passed=WORKERS)
    expected_requests = sum(n % 3 + 1 for n in range(WORKERS))
    assert openai_server.request_count == expected_requests
    for n in range(WORKERS):
        recorded = interactions(project, f"test_a[{n}]")
        sent = [f"worker message {n} turn {turn}" for turn in range(n % 3 + 1)]
        assert [asked(i) for i in recorded] == sent
        assert [answered(i) for i in recorded] == [f"Echo: {text}" for text in sent]
    assert stray_files(project) == []

    result = project.runpytest_subprocess(*args)
    result.assert_outcomes(passed=WORKERS)
    assert openai_server.request_count == expected_requests

    # One test records a new episode while the others replay, still under -n 2: nothing lost.
    user_tests(
        project,
        f"""
@pytest.mark.parametrize("n", range({WORKERS}))
@pytest.mark.chat_cassette
def test_a(n, chat_cassette):
    for turn in range(n % 3 + 1):
        ask(f"worker message {{n}} turn {{turn}}")
    if n == 0:
        ask("a new episode")
""",
    )
    result = project.runpytest_subprocess(*args, "--chatresp-record-mode=new_episodes")
    result.assert_outcomes(passed=WORKERS)
    assert openai_server.request_count == expected_requests + 1
    assert [asked(i) for i in interactions(project, "test_a[0]")] == [
        "worker message 0 turn 0",
        "a new episode",
    ]
    for n in range(1, WORKERS):
        assert len(interactions(project, f"test_a[{n}]")) == n % 3 + 1
    assert stray_files(project) == []


def test_works_next_to_pytest_recording(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(
        project,
        """
@pytest.mark.chat_cassette
def test_ours(chat_cassette):
    ask("ours")
    assert len(chat_cassette.exchanges) == 1


@pytest.mark.vcr
def test_theirs():
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "theirs"}]}
    assert httpx.post(CHAT, json=body).status_code == 200
""",
    )
    result = run(project, "--chatresp-record-mode=once", "--record-mode=once")
    result.assert_outcomes(passed=2)
    assert openai_server.request_count == 2
    (ours,) = interactions(project, "test_ours")
    assert header(ours["request"]["headers"], "authorization") == ["REDACTED"]
    assert answered(interactions(project, "test_theirs")[0]) == "Echo: theirs"

    run(project).assert_outcomes(passed=2)
    assert openai_server.request_count == 2


# --- 9. what pytest shows -----------------------------------------------------------------------


def test_help_lists_the_record_mode_option(project: pytest.Pytester) -> None:
    result = run(project, "--help")
    result.stdout.fnmatch_lines(
        [
            "recorded chat completion responses (pytest-chatresp):",
            "*--chatresp-record-mode=MODE*",
            "*none (replay only), once (record a missing cassette),*",
        ]
    )
    result.stdout.fnmatch_lines(["*chatresp_record_mode (string):*", "*none (replay only)*"])


def test_markers_lists_chat_cassette(project: pytest.Pytester) -> None:
    result = run(project, "--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.chat_cassette(path=None, *, record_mode=None, serializer=None, "
            "match_on=None, allow=None, skip_checks=None, expect_violations=False): "
            "replay or record this test's HTTP calls in a cassette, relative to the cassette dir "
            "(default: <cassette dir>/<test module>/<test name>.yaml); allow and skip_checks add "
            "to chatresp_allow and chatresp_skip_checks for this test."
        ]
    )


def test_report_header_shows_a_record_mode_other_than_none(project: pytest.Pytester) -> None:
    project.makepyfile(test_user="def test_a():\n    pass\n")
    result = run(project)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["chatresp: serializer yaml"])  # the project's ini, no record mode

    result = run(project, "--chatresp-record-mode=once")
    result.stdout.fnmatch_lines(["chatresp: record mode once, serializer yaml"])

    ini(project, "chatresp_record_mode = new_episodes")
    result = run(project)
    result.stdout.fnmatch_lines(["chatresp: record mode new_episodes, serializer yaml"])


def test_a_url_encoded_secret_is_found_too(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "ab+cd/ef==ghij&k"  # percent-encoded in the URL: %2B, %2F, %3D, %26
    monkeypatch.setenv("MY_SERVICE_SECRET", secret)
    user_tests(
        project,
        """
@pytest.mark.chat_cassette
def test_a():
    c = client(default_query={"state": os.environ["MY_SERVICE_SECRET"]})
    c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
""",
    )
    result = run(project, "--chatresp-record-mode=once")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*not written, because it would hold a secret: the value of $MY_SERVICE_SECRET*"]
    )
    assert not cassette_path(project).exists()
    assert secret not in result.stdout.str()


def test_the_unmatched_request_message_shows_no_key(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(
        project,
        """
@pytest.mark.chat_cassette
def test_a():
    ask("my key: sk-FAKEabcdefghijklmnopqrstuvwxyz0123456789abcdefghij, keep it")
""",
    )
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*POST * (model 'gpt-4o-mini', last message 'my key: REDACTED, keep it')"]
    )
    assert "sk-FAKE" not in result.stdout.str()
