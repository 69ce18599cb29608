"""The re-record loop: ``all`` replaces, shared cassettes merge, provenance is per interaction.

Like tests/test_recording.py, each test writes a user project with ``pytester`` whose tests call
the local server through the real ``openai`` SDK, and checks outcomes, messages and the files.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai_server import OpenAIServer
from test_recording import (
    ONE,
    ONE_CHANGED,
    TWO,
    asked,
    cassette_path,
    interactions,
    project,
    results,
    run,
    user_tests,
)

__all__ = ["project"]  # the fixture, shared with tests/test_recording.py


def metadata(pytester: pytest.Pytester, name: str = "test_a") -> dict[str, Any]:
    document = yaml.safe_load(cassette_path(pytester, name).read_text(encoding="utf-8"))
    found: dict[str, Any] = document["metadata"]["chatresp"]
    return found


def shared(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    path = pytester.path / "cassettes" / "shared.yaml"
    found: list[dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]
    return found


# --- 1. `all` re-records ------------------------------------------------------------------------


def test_all_replaces_a_changed_request(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, ONE)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)

    user_tests(project, ONE_CHANGED)
    failed = run(project)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        ["Record it again with: pytest --chatresp-record-mode=all test_user.py::test_a"]
    )
    failed.stdout.no_fnmatch_line("*no test played*")  # the mismatch says it already

    run(project, "--chatresp-record-mode=all").assert_outcomes(passed=1)
    assert [asked(i) for i in interactions(project)] == ["goodbye"]
    assert [e["test"] for e in metadata(project)["exchanges"]] == ["test_user.py::test_a"]

    replayed = run(project)
    replayed.assert_outcomes(passed=1)
    replayed.stdout.no_fnmatch_line("*interactions no test played*")
    assert openai_server.request_count == 2


def test_all_drops_what_this_test_no_longer_sends(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, TWO)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    assert len(interactions(project)) == 2

    user_tests(project, ONE)
    run(project, "--chatresp-record-mode=all").assert_outcomes(passed=1)
    assert [asked(i) for i in interactions(project)] == ["hello"]


SHARED = """
@pytest.mark.chat_cassette("shared.yaml")
def test_a():
    ask("from a, " + os.environ.get("VERSION", "first"))


@pytest.mark.chat_cassette("shared.yaml")
def test_b():
    ask("from b")
"""


def test_all_on_a_shared_cassette_keeps_what_other_tests_recorded(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_tests(project, SHARED)
    run(project, "--chatresp-record-mode=new_episodes").assert_outcomes(passed=2)
    assert [asked(i) for i in shared(project)] == ["from a, first", "from b"]

    monkeypatch.setenv("VERSION", "second")
    run(project, "--chatresp-record-mode=all", "-k", "test_a").assert_outcomes(
        passed=1, deselected=1
    )
    assert [asked(i) for i in shared(project)] == ["from b", "from a, second"]

    replayed = run(project)
    replayed.assert_outcomes(passed=2)
    replayed.stdout.no_fnmatch_line("*interactions no test played*")
    assert openai_server.request_count == 3


SAME = """
@pytest.mark.chat_cassette("shared.yaml")
def test_a():
    ask("same")


@pytest.mark.chat_cassette("shared.yaml")
def test_b():
    ask("same")
"""


def test_all_tells_identical_requests_of_two_tests_apart(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, SAME)
    run(project, "--chatresp-record-mode=once", "test_user.py::test_a").assert_outcomes(passed=1)
    run(project, "--chatresp-record-mode=all", "test_user.py::test_b").assert_outcomes(passed=1)
    run(project, "--chatresp-record-mode=all", "test_user.py::test_a").assert_outcomes(passed=1)
    document = yaml.safe_load((project.path / "cassettes" / "shared.yaml").read_text("utf-8"))
    owners = [e["test"] for e in document["metadata"]["chatresp"]["exchanges"]]
    assert owners == ["test_user.py::test_b", "test_user.py::test_a"]
    assert openai_server.request_count == 3


# --- 6. parallel recording ----------------------------------------------------------------------

SHARED_MANY = """
@pytest.mark.parametrize("n", range(8))
@pytest.mark.chat_cassette("shared.yaml")
def test_a(n):
    ask(f"worker message {n}")
"""


def test_workers_recording_into_one_cassette_both_land(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, SHARED_MANY)
    args = ("-p", "no:cacheprovider", "-n", "2")
    result = project.runpytest_subprocess(*args, "--chatresp-record-mode=new_episodes")
    result.assert_outcomes(passed=8)
    assert sorted(asked(i) for i in shared(project)) == sorted(
        f"worker message {n}" for n in range(8)
    )
    assert openai_server.request_count == 8
    assert sorted(p.name for p in (project.path / "cassettes").iterdir()) == ["shared.yaml"]

    project.runpytest_subprocess(*args).assert_outcomes(passed=8)
    assert openai_server.request_count == 8


# --- 7. provenance per interaction --------------------------------------------------------------


def test_new_episodes_keeps_the_provenance_of_what_it_did_not_record(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, ONE)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    path = cassette_path(project)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    old = {"pytest-chatresp": "0.0.1", "vcrpy": "9.0.0"}
    document["metadata"]["chatresp"]["versions"] = old
    (entry,) = document["metadata"]["chatresp"]["exchanges"]
    entry.update(recorded_at="2025-01-02T03:04:05Z", versions=old)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")

    user_tests(project, TWO)
    run(project, "--chatresp-record-mode=new_episodes").assert_outcomes(passed=1)
    kept, added = metadata(project)["exchanges"]
    assert (kept["recorded_at"], kept["versions"]) == ("2025-01-02T03:04:05Z", old)
    assert added["recorded_at"] > "2026"
    assert added["versions"]["vcrpy"] != "9.0.0"
    assert added["test"] == "test_user.py::test_a"

    result = run(project, "--chatresp-max-age=30")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_a.yaml was recorded * days ago (2025-01-02)*"])


# --- 2. the mismatch shows the difference -------------------------------------------------------

SYSTEM_PROMPT = """
@pytest.mark.chat_cassette
def test_a():
    client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": os.environ.get("PROMPT", "You are terse.")},
            {"role": "user", "content": "hello"},
        ],
    )
"""


def test_a_changed_system_prompt_is_shown(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_tests(project, SYSTEM_PROMPT)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)

    monkeypatch.setenv("PROMPT", "You are terse, and you answer in French.")
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "No recorded chat completion matches this request:",
            "  POST http://127.0.0.1:*/v1/chat/completions"
            " (model 'gpt-4o-mini', last message 'hello')",
            "    closest recording: interaction 0, which differs in 1 field:",
            "      messages[[]0[]].content",
            "        recorded: 'You are terse.'",
            "        now:      'You are terse, and you answer in French.'",
            "cassette: cassettes/test_user/test_a.yaml, record mode 'none'",
            "Record it again with: pytest --chatresp-record-mode=all test_user.py::test_a",
        ],
        consecutive=True,
    )
    assert openai_server.request_count == 1


TOOLS = """
UNIT = json.loads(os.environ.get("UNIT", "null"))
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
if UNIT:
    WEATHER = {**WEATHER, "properties": {**WEATHER["properties"], "unit": UNIT}}


def tool(name, parameters):
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


@pytest.mark.chat_cassette
def test_a():
    ask(
        "weather?",
        tools=[tool("get_time", {"type": "object", "properties": {}}), tool("get_weather", WEATHER)],
    )
"""


def test_a_changed_tool_schema_is_shown(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_tests(project, TOOLS)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)

    monkeypatch.setenv("UNIT", '{"type": "string", "enum": ["C", "F"]}')
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "No recorded chat completion matches this request:",
            "  POST http://127.0.0.1:*/v1/chat/completions"
            " (model 'gpt-4o-mini', last message 'weather?')",
            "    closest recording: interaction 0, which differs in 1 field:",
            "      tools[[]1[]].function.parameters.properties.unit",
            "        recorded: (absent)",
            '        now:      {"enum": [[]"C", "F"[]], "type": "string"}',
            "cassette: cassettes/test_user/test_a.yaml, record mode 'none'",
            "Record it again with: pytest --chatresp-record-mode=all test_user.py::test_a",
        ],
        consecutive=True,
    )


HOSTED = """
@pytest.mark.chat_cassette
def test_a():
    base_url = URL.replace("127.0.0.1", os.environ.get("HOST", "127.0.0.1"))
    sdk = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
"""


def test_a_changed_host_shows_both_and_suggests_the_base_url(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_tests(project, HOSTED)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)

    monkeypatch.setenv("HOST", "localhost")
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "No recorded chat completion matches this request:",
            "  POST http://localhost:*/v1/chat/completions"
            " (model 'gpt-4o-mini', last message 'hi')",
            "    closest recording: interaction 0, which differs in 1 field:",
            "      host",
            "        recorded: '127.0.0.1'",
            "        now:      'localhost'",
            "cassette: cassettes/test_user/test_a.yaml, record mode 'none'",
            "Only where the request is sent differs (host): correct the client's base_url"
            " (or the endpoint your code builds) rather than recording again.",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*--chatresp-record-mode=all*")
    assert openai_server.request_count == 1


NEAREST = """
@pytest.mark.chat_cassette
def test_a():
    sdk = client()
    for text in ("alpha", "beta"):
        extra = json.loads(os.environ.get("EXTRA", "{}")) if text == "beta" else {}
        for attempt in range(3):  # the app retries what fails
            try:
                sdk.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **extra
                )
                break
            except Exception:  # the SDK lets the recorder's refusal through
                continue
"""


def test_the_closest_recording_is_chosen_by_how_much_differs_and_retries_show_once(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_tests(project, NEAREST)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)

    # Interaction 0 differs from the changed second request in two fields, interaction 1 in one.
    monkeypatch.setenv("EXTRA", '{"temperature": 0.5}')
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "No recording matches these 3 requests:",
            "  POST http://127.0.0.1:*/v1/chat/completions"
            " (model 'gpt-4o-mini', last message 'beta'), sent 3 times",
            "    closest recording: interaction 1, which differs in 1 field:",
            "      temperature",
            "        recorded: (absent)",
            "        now:      0.5",
            "cassette: cassettes/test_user/test_a.yaml, record mode 'none'",
            "Record it again with: pytest --chatresp-record-mode=all test_user.py::test_a",
        ],
        consecutive=True,
    )


def test_the_mismatch_message_masks_userinfo_and_secret_query_values(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(
        project,
        """
@pytest.mark.chat_cassette
def test_a():
    base_url = URL.replace("http://", "http://someone:FAKEpassword99@")
    sdk = openai.OpenAI(
        base_url=base_url, api_key=KEY, max_retries=0,
        default_query={"access_token": "FAKEtoken-0123456789", "sig": "FAKEsig0123"},
    )
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
""",
    )
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  POST http://127.0.0.1:*/v1/chat/completions"
            "?access_token=REDACTED&sig=REDACTED (model 'gpt-4o-mini', last message 'hi')",
        ]
    )
    text = result.stdout.str()
    assert "FAKEpassword99" not in text
    assert "FAKEtoken" not in text
    assert "FAKEsig" not in text


# --- 3. replay needs no key ---------------------------------------------------------------------

NO_KEY = """
@pytest.mark.chat_cassette
def test_a():
    # The app builds its client from the environment, as apps do.
    sdk = openai.OpenAI(base_url=URL, max_retries=0)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    openai.AzureOpenAI(azure_endpoint="https://example.invalid", api_version="2024-10-21")
    show(os.environ["OPENAI_API_KEY"])


def test_after():
    show([os.environ.get("OPENAI_API_KEY"), os.environ.get("AZURE_OPENAI_API_KEY")])
"""


CLIENT_FIXTURE = """
@pytest.fixture
def client():
    return openai.OpenAI(base_url=URL, max_retries=0)  # from the environment, at set-up


@pytest.mark.chat_cassette
def test_a(client):
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
"""


def test_a_client_fixture_without_a_key_gets_the_recordings_message(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    user_tests(project, CLIENT_FIXTURE)
    result = run(project, "--chatresp-record-mode=once", "test_user.py::test_a")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_a*",
            "Recording needs a real API key: the client was given none and $OPENAI_API_KEY is"
            " not set.",
        ]
    )
    result.stdout.no_fnmatch_line("*openai.OpenAIError*")
    assert not cassette_path(project).exists()
    # Replaying, the same fixture needs no key: the plugin sets a placeholder before it runs.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-FAKE-recording-key-not-real-000000")
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    monkeypatch.delenv("OPENAI_API_KEY")
    run(project).assert_outcomes(passed=1)


def test_replay_needs_no_key_and_recording_names_the_missing_one(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    user_tests(project, NO_KEY)

    result = run(project, "--chatresp-record-mode=once", "test_user.py::test_a")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "Recording needs a real API key: the client was given none and $OPENAI_API_KEY is"
            " not set.",
            "Set it for the recording run: OPENAI_API_KEY=... pytest --chatresp-record-mode=once"
            " test_user.py::test_a",
            "(Replay needs no key: while a test replays, the plugin sets a placeholder.)",
        ],
        consecutive=True,
    )
    assert not cassette_path(project).exists()

    monkeypatch.setenv("OPENAI_API_KEY", "sk-FAKE-recording-key-not-real-000000")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "FAKE-azure-key-not-real")
    run(project, "--chatresp-record-mode=once", "-s", "test_user.py::test_a").assert_outcomes(
        passed=1
    )

    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    replayed = run(project, "-s", "-p", "no:randomly")
    replayed.assert_outcomes(passed=2)
    assert results(replayed) == ["chatresp-replay-placeholder", [None, None]]
    assert openai_server.request_count == 1


# --- 5. recording errors have context -----------------------------------------------------------


def test_recording_against_a_server_that_is_down_names_url_test_and_cassette(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CHATRESP_TEST_BASE_URL", f"http://127.0.0.1:{port}/v1")
    user_tests(project, ONE)
    result = run(project, "--chatresp-record-mode=once")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"Recording failed: cannot connect to POST http://127.0.0.1:{port}/v1/chat/completions"
            " (model 'gpt-4o-mini', last message 'hello')",
            "test: test_user.py::test_a",
            "cassette: cassettes/test_user/test_a.yaml (not written), record mode 'once'",
            "Is the server running, and is the client's base_url right?",
            "caused by: *Connect*Error: *",  # the SDK's error or its transport's, as raised
        ],
        consecutive=True,
    )
    causes = [line for line in result.outlines if line.startswith("caused by: ")]
    assert causes[-1] == "caused by: ConnectionRefusedError: [Errno 111] Connection refused"
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*was the direct cause of*")  # the causes are listed once
    assert len(result.outlines) < 40
    assert not cassette_path(project).exists()


def test_an_interrupt_in_a_marked_test_passes_through(project: pytest.Pytester) -> None:
    user_tests(
        project,
        """
@pytest.mark.chat_cassette
def test_a():
    raise KeyboardInterrupt
""",
    )
    result = project.runpytest_inprocess("-p", "no:cacheprovider", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.no_fnmatch_line("*No recorded chat completion*")


# --- 4. no accidental network -------------------------------------------------------------------

FORGOTTEN = """
MARK = pytest.mark.chat_cassette if os.environ.get("MARKED") else (lambda test: test)


@MARK
def test_sdk(chat_cassette):
    ask("hello")


def test_httpx(chat_shape):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    httpx.post(CHAT, json=body, headers={"authorization": "Bearer " + KEY})


def test_requests(chat_shape):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    requests.post(CHAT, json=body, timeout=5)


def test_swallowed(chat_shape):
    try:
        ask("hello")
    except Exception:
        pass


@pytest.mark.vcr  # pytest-recording's: its tests are left to it
def test_theirs(chat_shape):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "theirs"}]}
    assert httpx.post(CHAT, json=body).status_code == 200
"""


def test_a_forgotten_marker_cannot_reach_the_network(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_tests(project, FORGOTTEN)
    monkeypatch.setenv("MARKED", "1")
    run(project, "--chatresp-record-mode=once", "test_user.py::test_sdk").assert_outcomes(passed=1)
    monkeypatch.delenv("MARKED")
    assert openai_server.request_count == 1

    result = run(project, "--record-mode=once")
    result.assert_outcomes(failed=4, passed=1)
    for test, fixture in (
        ("test_sdk", "chat_cassette"),
        ("test_httpx", "chat_shape"),
        ("test_requests", "chat_shape"),
        ("test_swallowed", "chat_shape"),
    ):
        result.stdout.fnmatch_lines(
            [
                f"*_ {test} _*",
                f"Network blocked: test_user.py::{test} tried to connect to 127.0.0.1:*,"
                " and nothing was sent:",
                f"a test that uses the {fixture} fixture without @pytest.mark.chat_cassette may"
                " not reach the network. Add @pytest.mark.chat_cassette to replay (or record) its"
                " calls, or allow the host with --chatresp-allow-hosts=127.0.0.1"
                " (ini chatresp_allow_hosts).",
            ],
            consecutive=True,
        )
    assert openai_server.request_count == 2, "only pytest-recording's test reached the server"

    run(project, "--chatresp-allow-hosts=127.0.0.1").assert_outcomes(passed=5)
    assert openai_server.request_count == 6


BLOCKED_RUN = """
def test_elsewhere():
    httpx.get("http://192.0.2.1:9/", timeout=5)


def test_loopback():
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(CHAT, json=body).status_code == 200


@pytest.mark.vcr
def test_theirs():
    pass
"""


def test_block_network_blocks_every_test_of_a_replay_run_but_loopback(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, BLOCKED_RUN)
    run(project).assert_outcomes(passed=2, failed=1)  # without the setting, no guard

    for option in ("--chatresp-block-network", "-ochatresp_block_network=true"):
        result = run(project, option)
        result.assert_outcomes(passed=2, failed=1)
        result.stdout.fnmatch_lines(
            [
                "Network blocked: test_user.py::test_elsewhere tried to connect to 192.0.2.1:9,"
                " and nothing was sent:",
                "--chatresp-block-network blocks the network in a replay run. Add"
                " @pytest.mark.chat_cassette to replay (or record) its calls, or allow the host"
                " with --chatresp-allow-hosts=192.0.2.1 (ini chatresp_allow_hosts).",
            ],
            consecutive=True,
        )
    # Recording runs are not blocked.
    result = run(project, "--chatresp-block-network", "--chatresp-record-mode=once", "-k", "loop")
    result.assert_outcomes(passed=1, deselected=2)


# --- 8. per-test options on the marker ----------------------------------------------------------

CORRUPTED = """
@pytest.fixture
def chatresp_vcr_config(request):
    # Same lengths, so the recorded content-length stays right.
    if "sum" in request.node.name:
        old, new = b'"total_tokens": 6', b'"total_tokens": 7'
    else:
        old, new = b'"finish_reason": "stop"', b'"finish_reason": "eos" '

    def corrupt(response):
        response["body"]["string"] = response["body"]["string"].replace(old, new)
        return response

    return {"before_record_response": corrupt}


@pytest.mark.chat_cassette("eos.yaml", expect_violations=True)
def test_expects(chat_cassette):
    ask("hello")
    (violation,) = chat_cassette.exchanges[0].violations
    assert violation.field == "choices[0].finish_reason"


@pytest.mark.chat_cassette("eos.yaml", allow="choices[].finish_reason=eos")
def test_allows(chat_cassette):
    ask("hello")
    assert chat_cassette.exchanges[0].violations == []


@pytest.mark.chat_cassette("eos.yaml")
def test_strict(chat_cassette):
    ask("hello")


@pytest.mark.chat_cassette("sum.yaml", skip_checks=["usage-sum"])
def test_sum_skipped(chat_cassette):
    ask("hello")


@pytest.mark.chat_cassette("sum.yaml")
def test_sum_checked(chat_cassette):
    ask("hello")
"""


def test_marker_options_allow_skip_and_expect_violations(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    user_tests(project, CORRUPTED)
    for test in ("test_expects", "test_sum_skipped"):
        result = run(project, "--chatresp-record-mode=once", f"test_user.py::{test}")
        result.assert_outcomes(passed=1)

    result = run(project)
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_strict _*",
            "A recorded or replayed chat completion breaks the contract:",
            "cassettes/eos.yaml, interaction 0: choices[[]0[]].finish_reason: *",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*_ test_sum_checked _*", "*", "cassettes/sum.yaml, interaction 0: usage*"]
    )
    assert openai_server.request_count == 2


def test_marker_match_on_and_unknown_arguments(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_tests(
        project,
        """
@pytest.mark.chat_cassette(match_on=["method", "path"])
def test_a():
    ask(os.environ.get("TEXT", "hello"))


@pytest.mark.chat_cassette(recordmode="all")
def test_b():
    pass


@pytest.mark.chat_cassette(skip_checks="no-such-check")
def test_c():
    pass
""",
    )
    run(project, "--chatresp-record-mode=once", "test_user.py::test_a").assert_outcomes(passed=1)
    monkeypatch.setenv("TEXT", "a changed body, not matched on")
    run(project, "test_user.py::test_a").assert_outcomes(passed=1)  # matched without the body
    result = run(project)  # the bad markers stop the run at collection, naming each test
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_user.py::test_b: @pytest.mark.chat_cassette(recordmode=...): "
            "'recordmode' is not an argument; it takes: path, record_mode, serializer, "
            "match_on, allow, skip_checks, expect_violations",
            "test_user.py::test_c: @pytest.mark.chat_cassette(skip_checks='no-such-check'): "
            "use one of: *",
        ]
    )
    assert openai_server.request_count == 1


# --- a secret scrubbed from a request body still replays ----------------------------------------

KEY_IN_PROMPT = """
@pytest.mark.chat_cassette
def test_a():
    key = os.environ["OPENAI_API_KEY"]
    sdk = openai.OpenAI(base_url=URL, max_retries=0)
    reply = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"my key is {key} " + os.environ.get("END", "ok")}],
    )
    show(reply.choices[0].message.content)
"""


def test_a_key_in_the_request_body_is_scrubbed_and_still_replays(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-proj-FAKE0123456789abcdefghij"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    user_tests(project, KEY_IN_PROMPT)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    assert [asked(i) for i in interactions(project)] == ["my key is REDACTED ok"]

    replayed = run(project, "-s")  # with the key set, as when recording
    replayed.assert_outcomes(passed=1)
    assert results(replayed) == ["Echo: my key is REDACTED ok"]

    monkeypatch.delenv("OPENAI_API_KEY")  # the placeholder stands in the prompt now
    replayed = run(project, "-s")
    replayed.assert_outcomes(passed=1)
    assert results(replayed) == ["Echo: my key is REDACTED ok"]
    assert openai_server.request_count == 1

    monkeypatch.setenv("END", "changed")  # what is not the secret is still compared
    failed = run(project)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        [
            "      messages[0].content",
            "        recorded: 'my key is REDACTED ok'",
            "        now:      'my key is chatresp-replay-placeholder changed'",
        ],
        consecutive=True,
    )
    assert key not in failed.stdout.str()


# --- `once` on a cassette new in this run --------------------------------------------------------

SHARED_NEW = """
@pytest.mark.chat_cassette("shared.yaml")
def test_a():
    ask("from a")


@pytest.mark.chat_cassette("shared.yaml")
def test_b():
    ask("from b")
"""

SHARED_NEWER = (
    SHARED_NEW
    + """

@pytest.mark.chat_cassette("shared.yaml")
def test_c():
    ask("from c")
"""
)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_once_records_every_test_of_a_cassette_new_in_this_run(
    project: pytest.Pytester, openai_server: OpenAIServer, workers: list[str]
) -> None:
    user_tests(project, SHARED_NEW)
    first = run(project, "--chatresp-record-mode=once", "-p", "no:randomly", *workers)
    first.assert_outcomes(passed=2)
    first.stdout.no_fnmatch_line("*no test played*")  # what this run recorded counts as played
    assert sorted(asked(i) for i in shared(project)) == ["from a", "from b"]

    replayed = run(project, "--chatresp-record-mode=once")
    replayed.assert_outcomes(passed=2)
    assert openai_server.request_count == 2

    # A cassette there before the run is replay-only in `once`, as in vcrpy.
    user_tests(project, SHARED_NEWER)
    failed = run(project, "--chatresp-record-mode=once")
    failed.assert_outcomes(passed=2, failed=1)
    failed.stdout.fnmatch_lines(["cassette: cassettes/shared.yaml, record mode 'once'"])
    assert len(shared(project)) == 2
    assert openai_server.request_count == 2


# --- a rejected key while recording -------------------------------------------------------------

REJECTED = """
@pytest.mark.chat_cassette
def test_a():
    sdk = openai.OpenAI(base_url=URL, max_retries=0)
    sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-local-leak": "401"},  # a 401 that repeats the bearer token
    )


@pytest.mark.chat_cassette
def test_swallowed():
    sdk = openai.OpenAI(base_url=URL, max_retries=0)
    try:
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-local-leak": "401"},
        )
    except openai.AuthenticationError:
        pass
"""


def test_a_rejected_key_while_recording_writes_nothing_and_prints_no_key(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-proj-FAKE0123456789abcdefghij"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    user_tests(project, REJECTED)
    result = run(project, "--chatresp-record-mode=once", "-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "Recording failed: the server rejected the API key (401 invalid_api_key) for POST "
            "http://127.0.0.1:*/v1/chat/completions (model 'gpt-4o-mini', last message 'hi')",
            "test: test_user.py::test_a",
            "cassette: cassettes/test_user/test_a.yaml (not written), record mode 'once'",
            "Put a valid key in $OPENAI_API_KEY (sent as the value of request header "
            "authorization, REDACTED here), then record again: "
            "pytest --chatresp-record-mode=once test_user.py::test_a",
            "the server said: Incorrect API key provided: REDACTED. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(["test: test_user.py::test_swallowed"])
    assert key not in result.stdout.str() + result.stderr.str()
    assert "AuthenticationError" not in result.stdout.str()
    assert not (project.path / "cassettes").exists()


QUOTED = """
@pytest.mark.chat_cassette
@pytest.mark.parametrize("text", ["c d"])
def test_a(text):
    ask(text + os.environ.get("END", ""))
"""


def test_printed_commands_are_shell_quoted(
    project: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_tests(project, QUOTED)
    run(project, "--chatresp-record-mode=once").assert_outcomes(passed=1)
    monkeypatch.setenv("END", " changed")
    failed = run(project)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        ["Record it again with: pytest --chatresp-record-mode=all 'test_user.py::test_a[c d]'"]
    )


@pytest.mark.parametrize("serializer", ["yaml", "readable"])
def test_written_cassettes_hold_no_yaml_aliases(
    project: pytest.Pytester, openai_server: OpenAIServer, serializer: str
) -> None:
    user_tests(project, TWO)
    run(
        project, "--chatresp-record-mode=once", "-o", f"chatresp_serializer={serializer}"
    ).assert_outcomes(passed=1)
    text = cassette_path(project).read_text(encoding="utf-8")
    assert "versions:" in text
    assert "&id0" not in text
    assert "*id0" not in text


# --- 8. the write lock, for a directory not made yet ---------------------------------------------


def test_a_directory_made_for_a_cassette_is_locked_while_it_is_written(tmp_path: Path) -> None:
    import fcntl
    import os

    from pytest_chatresp.recording.persister import _locked

    target = tmp_path / "new" / "cassettes"
    with _locked(target):
        assert target.is_dir()  # made under its parent's lock, then locked itself
        other = os.open(target, os.O_RDONLY)  # as a writer that finds it made would
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    assert not (tmp_path / "new").exists(), "nothing was written: removed again"

    with _locked(target):
        (target / "shared.yaml").write_text("interactions: []\n")
    assert (target / "shared.yaml").is_file()
