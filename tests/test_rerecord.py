"""The re-record loop: ``all`` replaces, shared cassettes merge, provenance is per interaction.

Like tests/test_recording.py, each test writes a user project with ``pytester`` whose tests call
the local server through the real ``openai`` SDK, and checks outcomes, messages and the files.
"""

from __future__ import annotations

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
