"""--chatresp-verify: the marked tests' requests sent live, compared with their recordings,
nothing written. Against the local server, whose x-local-shape header changes its answers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import FAKE_KEY
from helpers import glob
from openai_server import OpenAIServer

TESTS = """\
import os

import openai
import pytest


def ask(text):
    shape = os.environ.get("CHATRESP_TEST_SHAPE")
    client = openai.OpenAI(
        base_url=os.environ["CHATRESP_TEST_BASE_URL"],
        max_retries=0,
        default_headers={"x-local-shape": shape} if shape else None,
    )
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )


@pytest.mark.chat_cassette
def test_weather():
    assert ask("weather?").choices[0].message.content == "Echo: weather?"


@pytest.mark.chat_cassette
def test_stops():
    assert ask("stop?").choices[0].finish_reason == "stop"


@pytest.mark.chat_cassette
def test_third():
    assert ask("third?").usage is not None
"""


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def recorded(
    pytester: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The three tests recorded; the hash of every file under cassettes/."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.delenv("CHATRESP_TEST_SHAPE", raising=False)
    pytester.makepyfile(test_live=TESTS)
    result = pytester.runpytest("--chatresp-record-mode=once")
    result.assert_outcomes(passed=3)
    openai_server.reset()
    hashes = _hashes(pytester.path / "cassettes")
    assert len(hashes) == 3
    return hashes


def test_no_drift_passes_and_sends_every_request(
    pytester: pytest.Pytester, openai_server: OpenAIServer, recorded: dict[str, str]
) -> None:
    result = pytester.runpytest("--chatresp-verify", "--chatresp-report-json=report.json")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    assert openai_server.request_count == 3
    result.stdout.fnmatch_lines(
        [
            "chatresp: *verifying against the live service (no limit on requests or tokens; "
            "nothing written)",
            "verified 3 test(s) against the live service: 3 request(s), * token(s); "
            "0 drifted, 0 not verified",
        ]
    )
    result.stdout.no_fnmatch_line("drift in *")
    assert _hashes(pytester.path / "cassettes") == recorded
    verify = json.loads((pytester.path / "report.json").read_text())["verify"]
    assert verify["requests"] == 3
    assert verify["tokens"] > 0
    assert verify["tests"]["test_live.py::test_weather"] == {
        "cassette": "cassettes/test_live/test_weather.yaml",
        "requests": 1,
        "tokens": verify["tests"]["test_live.py::test_weather"]["tokens"],
        "changes": [],
        "served_model": [],
        "violations": [],
        "unmatched": [],
    }


def test_drift_fails_the_run_and_names_the_field(
    pytester: pytest.Pytester,
    openai_server: OpenAIServer,
    recorded: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATRESP_TEST_SHAPE", "finish_reason=length;service_tier=flex")
    result = pytester.runpytest("--chatresp-verify", "-k", "weather or stops")
    # The test's own assertion is verified on the live answer, and fails as itself.
    result.assert_outcomes(passed=1, failed=1, deselected=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert openai_server.request_count == 2
    result.stdout.fnmatch_lines(
        [
            "*assert 'length' == 'stop'*",
            "verified 2 test(s) against the live service: 2 request(s), * token(s); "
            "2 drifted, 0 not verified",
            glob("drift in test_live.py::test_stops (cassettes/test_live/test_stops.yaml):"),
            glob("  interaction 0: choices[0].finish_reason: 'stop' → 'length'"),
            "  interaction 0: service_tier: 'default' → 'flex'",
            glob("drift in test_live.py::test_weather (cassettes/test_live/test_weather.yaml):"),
            glob("  interaction 0: choices[0].finish_reason: 'stop' → 'length'"),
        ]
    )
    assert _hashes(pytester.path / "cassettes") == recorded


def test_drift_alone_fails_a_run_whose_tests_pass(
    pytester: pytest.Pytester,
    openai_server: OpenAIServer,
    recorded: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATRESP_TEST_SHAPE", "usage=none")
    result = pytester.runpytest("--chatresp-verify", "-k", "weather")
    result.assert_outcomes(passed=1, deselected=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["  interaction 0: usage: True → False"])


def test_a_served_model_change_counts_unless_set_not_to(
    pytester: pytest.Pytester,
    openai_server: OpenAIServer,
    recorded: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATRESP_TEST_SHAPE", "model=gpt-4o-mini-2025-06-01")
    result = pytester.runpytest("--chatresp-verify", "-k", "weather")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    changed = "interaction 0: model: 'gpt-4o-mini-2025-01-01' → 'gpt-4o-mini-2025-06-01'"
    result.stdout.fnmatch_lines([f"  {changed}"])
    result = pytester.runpytest(
        "--chatresp-verify", "-k", "weather", "-o", "chatresp_verify_served_model=false"
    )
    result.assert_outcomes(passed=1, deselected=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*0 drifted*", f"  (not counted) {changed}"])
    assert _hashes(pytester.path / "cassettes") == recorded


def test_a_request_no_recording_matches_is_drift_and_nothing_is_written(
    pytester: pytest.Pytester, openai_server: OpenAIServer, recorded: dict[str, str]
) -> None:
    pytester.makepyfile(
        test_new=TESTS.split("@pytest.mark", maxsplit=1)[0]
        + "@pytest.mark.chat_cassette\ndef test_new():\n    ask('new?')\n"
    )
    result = pytester.runpytest("--chatresp-verify", "test_new.py")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            glob("drift in test_new.py::test_new (cassettes/test_new/test_new.yaml):"),
            "  interaction 0: POST /v1/chat/completions matched no recording",
        ]
    )
    assert _hashes(pytester.path / "cassettes") == recorded


def test_the_request_limit_stops_verifying(
    pytester: pytest.Pytester, openai_server: OpenAIServer, recorded: dict[str, str]
) -> None:
    result = pytester.runpytest("--chatresp-verify", "--chatresp-verify-max-requests=1", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    assert result.ret == pytest.ExitCode.OK
    assert openai_server.request_count == 1
    result.stdout.fnmatch_lines(
        ["chatresp: verifying against the live service (at most 1 requests; nothing written)"]
    )
    reason = "--chatresp-verify-max-requests=1 reached (1 live request(s) sent)"
    result.stdout.fnmatch_lines(
        [
            "verified 1 test(s) against the live service: 1 request(s), * token(s); "
            "0 drifted, 2 not verified",
            f"verification stopped: {reason}",
            "not verified (nothing sent):",
            "  test_live.py::test_stops",
            "  test_live.py::test_third",
            f"SKIPPED * not verified: {reason}",
        ]
    )
    assert _hashes(pytester.path / "cassettes") == recorded


def test_the_token_limit_stops_verifying(
    pytester: pytest.Pytester, openai_server: OpenAIServer, recorded: dict[str, str]
) -> None:
    result = pytester.runpytest("--chatresp-verify", "--chatresp-verify-max-tokens=1")
    result.assert_outcomes(passed=1, skipped=2)
    assert openai_server.request_count == 1
    result.stdout.fnmatch_lines(
        ["verification stopped: --chatresp-verify-max-tokens=1 reached (* token(s) used)"]
    )


def test_a_bad_limit_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--chatresp-verify-max-requests=ten")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--chatresp-verify-max-requests = 'ten' is not valid; use a whole number, 0 or more.*"]
    )


def test_verify_needs_a_real_key(
    pytester: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    pytester.makepyfile(test_live=TESTS)
    result = pytester.runpytest("--chatresp-verify")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--chatresp-verify * needs a real API key: set $OPENAI_API_KEY*"])
    assert openai_server.request_count == 0


def test_verify_under_xdist(
    pytester: pytest.Pytester,
    openai_server: OpenAIServer,
    recorded: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATRESP_TEST_SHAPE", "service_tier=flex")
    result = pytester.runpytest("-n", "2", "--chatresp-verify", "--chatresp-report-json=r.json")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert openai_server.request_count == 3
    result.stdout.fnmatch_lines(["*3 request(s), * token(s); 3 drifted, 0 not verified"])
    verify = json.loads((pytester.path / "r.json").read_text())["verify"]
    assert sorted(verify["tests"]) == [
        "test_live.py::test_stops",
        "test_live.py::test_third",
        "test_live.py::test_weather",
    ]
    assert verify["tests"]["test_live.py::test_third"]["changes"] == [
        "interaction 0: service_tier: 'default' → 'flex'"
    ]
    assert _hashes(pytester.path / "cassettes") == recorded


def test_a_new_contract_violation_is_reported(
    pytester: pytest.Pytester,
    openai_server: OpenAIServer,
    recorded: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATRESP_TEST_SHAPE", "finish_reason=bogus")
    result = pytester.runpytest("--chatresp-verify", "-k", "third")
    result.assert_outcomes(failed=1, deselected=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "A live answer (--chatresp-verify) breaks the contract:",
            glob("cassettes/test_live/test_third.yaml, interaction 0: choices[0].finish_reason: *"),
            glob("drift in test_live.py::test_third (cassettes/test_live/test_third.yaml):"),
            glob("  interaction 0: new violation: choices[0].finish_reason: *"),
        ]
    )
    assert _hashes(pytester.path / "cassettes") == recorded


def test_a_shape_is_compared_with_the_live_answer_and_never_written(
    pytester: pytest.Pytester, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.delenv("CHATRESP_TEST_SHAPE", raising=False)
    pytester.makepyfile(
        test_shape=TESTS.split("@pytest.mark", maxsplit=1)[0] + "@pytest.mark.chat_cassette\n"
        "def test_shape(chat_cassette, chat_shape):\n"
        "    ask('shape?')\n"
        "    assert chat_shape == chat_cassette.completions[0]\n"
    )
    pytester.runpytest("--chatresp-record-mode=once").assert_outcomes(passed=1)
    before = _hashes(pytester.path / "cassettes")
    assert sorted(before) == [
        "test_shape/test_shape.shape.yaml",
        "test_shape/test_shape.yaml",
    ]
    monkeypatch.setenv("CHATRESP_TEST_SHAPE", "service_tier=flex")
    result = pytester.runpytest("--chatresp-verify", "--chatresp-update-shapes")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*service_tier: 'default' → 'flex'*"])
    result.stdout.no_fnmatch_line("shape written*")
    assert _hashes(pytester.path / "cassettes") == before


def test_the_limits_are_read_from_the_ini_file(
    pytester: pytest.Pytester, openai_server: OpenAIServer, recorded: dict[str, str]
) -> None:
    pytester.makeini("[pytest]\nchatresp_verify_max_requests = 2\n")
    result = pytester.runpytest("--chatresp-verify")
    result.assert_outcomes(passed=2, skipped=1)
    assert openai_server.request_count == 2
    result.stdout.fnmatch_lines(["  test_live.py::test_third"])


def test_the_vcr_config_fixture_cannot_turn_verifying_into_replaying(
    pytester: pytest.Pytester, openai_server: OpenAIServer, recorded: dict[str, str]
) -> None:
    pytester.makeconftest(
        "import pytest\n\n\n@pytest.fixture\ndef chatresp_vcr_config():\n"
        "    return {'record_mode': 'none'}\n"
    )
    result = pytester.runpytest("--chatresp-verify", "-k", "weather")
    result.assert_outcomes(passed=1, deselected=2)
    assert openai_server.request_count == 1
    assert _hashes(pytester.path / "cassettes") == recorded


def test_the_verify_section_is_checked_and_merged_by_chatresp_report() -> None:
    from pytest_chatresp.errors import CassetteError
    from pytest_chatresp.report import RunReport
    from pytest_chatresp.shards import merge_reports
    from pytest_chatresp.verification import TestVerification

    shards = []
    for nodeid, tokens in (("t.py::test_a", 6), ("t.py::test_b", 9)):
        report = RunReport()
        report.verify.tests[nodeid] = TestVerification(
            "cassettes/t/x.yaml",
            requests=1,
            tokens=tokens,
            changes=["interaction 0: usage: True → False"],
        )
        shards.append(report.to_dict())
    merged = merge_reports(shards).to_dict()["verify"]
    assert (merged["requests"], merged["tokens"]) == (2, 15)
    assert sorted(merged["tests"]) == ["t.py::test_a", "t.py::test_b"]
    shards[1]["verify"]["tests"]["t.py::test_b"]["tokens"] = "many"
    with pytest.raises(CassetteError, match=r"verify\.tests\['t\.py::test_b'\]\.tokens"):
        merge_reports(shards, ["one.json", "two.json"])
