"""Cassette age: ``chatresp_max_age`` / ``--chatresp-max-age`` and how an old cassette fails.

Each setting is tested both ways round (a limit the cassette is over, and one it is under), from
the ini file and from the command line, so that ignoring either source fails a test. The cassettes
are written by hand with the provenance metadata a recording leaves (``recorded_at``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import completion, write_cassette
from openai_server import OpenAIServer

#: One test replaying its cassette (the recording fixture's path), one reading it through the
#: ``chat_completion`` fixture (the reading path): the age limit applies to both.
TESTS = """
import httpx
import pytest

@pytest.mark.chat_cassette
def test_replays():
    reply = httpx.post("https://api.openai.com/v1/chat/completions", json={"model": "m"})
    assert reply.json()["id"] == "replayed"

def test_reads(chat_completion):
    assert chat_completion.id == "read"
"""

WARNING = (
    "*CassetteAgeWarning: cassettes/test_old/{name}.yaml was recorded * days ago (2020-01-01), "
    "more than --chatresp-max-age={limit}. Record it again with: "
    "pytest --chatresp-record-mode=all test_old.py::{name}"
)
#: A test that only reads its cassette (a fixture, no marker) records nothing: not its command.
READS_WARNING = (
    "*CassetteAgeWarning: cassettes/test_old/test_reads.yaml was recorded * days ago "
    "(2020-01-01), more than --chatresp-max-age={limit}. test_old.py::test_reads only reads it: "
    "record it again from a test marked @pytest.mark.chat_cassette that makes its calls, with "
    "--chatresp-record-mode=all"
)


def recorded_on(path: Path, day: str) -> None:
    """Give a cassette the provenance of one exchange recorded on ``day``."""
    document = json.loads(path.read_text())
    document["metadata"] = {"chatresp": {"exchanges": [{"recorded_at": f"{day}T00:00:00Z"}]}}
    path.write_text(json.dumps(document))


@pytest.fixture
def old(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project whose two cassettes were recorded on 2020-01-01."""
    for name, id_ in (("test_replays", "replayed"), ("test_reads", "read")):
        path = write_cassette(
            pytester.path / f"cassettes/test_old/{name}.yaml",
            completion(id=id_),
            request={"model": "m"},
        )
        recorded_on(path, "2020-01-01")
    pytester.makepyfile(test_old=TESTS)
    return pytester


def ini(pytester: pytest.Pytester, *lines: str) -> None:
    pytester.makeini("[pytest]\n" + "".join(f"{line}\n" for line in lines))


def test_without_a_limit_an_old_cassette_passes_quietly(old: pytest.Pytester) -> None:
    result = old.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*CassetteAgeWarning*")


def test_ini_max_age_warns_about_an_old_cassette(old: pytest.Pytester) -> None:
    ini(old, "chatresp_max_age = 30")
    result = old.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines(
        [
            WARNING.format(name="test_replays", limit=30),
            READS_WARNING.format(limit=30),
        ]
    )


def test_ini_max_age_above_the_age_passes_quietly(old: pytest.Pytester) -> None:
    ini(old, "chatresp_max_age = 100000")
    result = old.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*CassetteAgeWarning*")


def test_the_command_line_max_age_wins_over_the_ini(old: pytest.Pytester) -> None:
    ini(old, "chatresp_max_age = 100000")
    result = old.runpytest("--chatresp-max-age=30", "-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines([WARNING.format(name="test_replays", limit=30)])

    ini(old, "chatresp_max_age = 30")
    result = old.runpytest("--chatresp-max-age=100000")
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*CassetteAgeWarning*")


def test_a_cassette_younger_than_the_limit_passes_quietly(old: pytest.Pytester) -> None:
    recorded_on(old.path / "cassettes/test_old/test_replays.yaml", "2099-01-01")
    ini(old, "chatresp_max_age = 30")
    result = old.runpytest()
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines([READS_WARNING.format(limit=30)])
    result.stdout.no_fnmatch_line("*test_replays.yaml was recorded*")


def test_filterwarnings_turns_the_age_warning_into_an_error(old: pytest.Pytester) -> None:
    ini(
        old,
        "chatresp_max_age = 30",
        "filterwarnings = error::pytest_chatresp.CassetteAgeWarning",
    )
    result = old.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_replays*",
            "cassettes/test_old/test_replays.yaml "
            "was recorded * days ago (2020-01-01), more than --chatresp-max-age=30.*",
            "*ERROR at setup of test_reads*",
            "cassettes/test_old/test_reads.yaml "
            "was recorded * days ago (2020-01-01), more than --chatresp-max-age=30.*",
        ]
    )


#: Runs after test_old.py: a plain call to the local server, which only passes if the failed
#: tests before it left no cassette patched in.
LATER_CALL = """
import os
import openai

def test_later_call_reaches_the_server():
    client = openai.OpenAI(
        base_url=os.environ["CHATRESP_TEST_BASE_URL"],
        api_key=os.environ["CHATRESP_TEST_API_KEY"],
        max_retries=0,
    )
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.object == "chat.completion"
"""


@pytest.mark.parametrize(
    "setting",
    ["filterwarnings = error::pytest_chatresp.CassetteAgeWarning"],
)
def test_an_old_cassette_error_leaves_no_cassette_active(
    old: pytest.Pytester, openai_server: OpenAIServer, setting: str
) -> None:
    ini(old, "chatresp_max_age = 30", setting)
    old.makepyfile(test_zz=LATER_CALL)
    replayed = old.path / "cassettes/test_old/test_replays.yaml"
    before = replayed.read_bytes()
    result = old.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=2, passed=1)
    assert openai_server.request_count == 1
    assert replayed.read_bytes() == before
    assert not (old.path / "cassettes/test_zz").exists()


def test_the_warning_points_at_the_test_and_the_header_names_the_setting(
    old: pytest.Pytester,
) -> None:
    result = old.runpytest(
        "--chatresp-max-age=30",
        "--chatresp-block-network",
        "--chatresp-allow-hosts=x.example",
        "-o",
        "chatresp_unplayed=fail",
        "-o",
        "chatresp_serializer=json",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "chatresp: serializer json, max age 30 days, unplayed interactions: fail, "
            "network blocked in replay, allowed hosts: x.example",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*test_old.py:4: CassetteAgeWarning: *", "    @pytest.mark.chat_cassette"]
    )
    result.stdout.no_fnmatch_line("*pytest_chatresp*")


def test_a_read_only_test_is_told_the_test_that_recorded_its_cassette(
    old: pytest.Pytester,
) -> None:
    path = old.path / "cassettes/test_old/test_reads.yaml"
    document = json.loads(path.read_text())
    document["metadata"]["chatresp"]["exchanges"][0]["test"] = "tests/test_app.py::test_call"
    path.write_text(json.dumps(document))
    result = old.runpytest("--chatresp-max-age=30", "-k", "reads")
    result.assert_outcomes(passed=1, deselected=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*cassettes/test_old/test_reads.yaml was recorded * days ago (2020-01-01), more than "
            "--chatresp-max-age=30. Record it again by running the test that wrote it: "
            "pytest --chatresp-record-mode=all tests/test_app.py::test_call"
        ]
    )


def test_a_limit_below_a_day_is_written_as_given(old: pytest.Pytester) -> None:
    result = old.runpytest("--chatresp-max-age=0.00001", "-k", "replays")
    result.assert_outcomes(passed=1, deselected=1, warnings=1)
    result.stdout.fnmatch_lines(["*more than --chatresp-max-age=0.00001. Record it again*"])
