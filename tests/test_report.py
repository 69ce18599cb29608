"""Cassettes as test items (--chatresp-collect-cassettes) and the run report, through pytester."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import completion, glob, write_cassette


def bad_completion() -> dict[str, object]:
    body = completion()
    body["choices"][0]["finish_reason"] = "eos"  # type: ignore[index]
    return body


def project(pytester: pytest.Pytester) -> Path:
    cassettes = pytester.path / "cassettes"
    write_cassette(cassettes / "test_a/test_one.yaml", completion(model="gpt-4o-2024-08-06"))
    write_cassette(
        cassettes / "test_a/test_two.yaml",
        completion(service_tier="flex", x_groq={"id": "req_1"}),
        completion(),
    )
    write_cassette(cassettes / "test_b/test_three.json", completion(service_tier=None))
    pytester.makepyfile(
        test_a="""
        def test_one(chat_completion):
            assert chat_completion.model.startswith("gpt-4o")

        def test_two(chat_completions):
            assert len(chat_completions) == 2
        """,
        test_b="""
        def test_three(chat_completion, chat_completions, chat_cassette):
            assert chat_completions == [chat_completion]

        def test_unrelated():
            assert True
        """,
    )
    return cassettes


def test_check_mode_collects_every_cassette(pytester: pytest.Pytester) -> None:
    cassettes = project(pytester)
    write_cassette(cassettes / "broken/bad.yaml", completion(), bad_completion())
    (cassettes / "broken/unreadable.yaml").write_text("interactions: [\n")
    (cassettes / "test_a/test_one.shape.yaml").write_text("- model: gpt-4o\n")
    result = pytester.runpytest("--chatresp-collect-cassettes", "-v", "-p", "no:randomly")
    result.assert_outcomes(passed=7, failed=2)
    result.stdout.fnmatch_lines(
        [
            "cassettes/broken/bad.yaml::contract FAILED*",
            "cassettes/broken/unreadable.yaml::contract FAILED*",
            "cassettes/test_a/test_one.yaml::contract PASSED*",
            "cassettes/test_a/test_two.yaml::contract PASSED*",
            "cassettes/test_b/test_three.json::contract PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            glob(
                "cassettes/broken/bad.yaml, interaction 1: choices[0].finish_reason: expected "
                "'stop', 'length', 'tool_calls', 'content_filter' or 'function_call', got 'eos'"
            )
        ]
    )
    result.stdout.fnmatch_lines(["cassettes/broken/unreadable.yaml: not valid YAML at line 2*"])
    result.stdout.no_fnmatch_line("*shape.yaml*")
    result.stdout.no_fnmatch_line("*Traceback*")


def test_check_mode_from_addopts_works_with_k_and_x(pytester: pytest.Pytester) -> None:
    cassettes = project(pytester)
    write_cassette(cassettes / "broken/bad.yaml", bad_completion())
    write_cassette(cassettes / "broken/worse.yaml", bad_completion())
    pytester.makeini("[pytest]\naddopts = --chatresp-collect-cassettes\n")
    result = pytester.runpytest("-k", "test_two")
    result.assert_outcomes(passed=2, deselected=7)
    result = pytester.runpytest("-x", "-k", "broken")
    result.assert_outcomes(failed=1, deselected=7)
    result.stdout.fnmatch_lines(["chatresp: collecting every cassette"])


def test_check_mode_under_xdist(pytester: pytest.Pytester) -> None:
    cassettes = project(pytester)
    write_cassette(cassettes / "broken/bad.yaml", bad_completion())
    result = pytester.runpytest_subprocess(
        "--chatresp-collect-cassettes", "-n", "2", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=7, failed=1)


def report_lines(result: pytest.RunResult) -> list[str]:
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "chatresp" in line and "---" in line)
    return [line for line in lines[start + 1 :] if not line.startswith("=")]


def test_report_totals_models_tiers_tokens_and_drift(pytester: pytest.Pytester) -> None:
    project(pytester)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert report_lines(result)[:5] == [
        "total: 4 chat completions (4 read, 0 replayed, 0 recorded), tokens 40 prompt / "
        "20 completion / 60 total",
        "models: gpt-4o-2024-08-06 (1), gpt-4o-mini-2024-07-18 (3)",
        "tiers: default (2), flex (1), null (1)",
        "fields the models don't know (drift):",
        "  x_groq: 1 time(s), e.g. in cassettes/test_a/test_two.yaml",
    ]


def test_report_per_test_with_verbose(pytester: pytest.Pytester) -> None:
    project(pytester)
    result = pytester.runpytest("-v", "-p", "no:randomly")
    result.stdout.fnmatch_lines(
        [
            "test_a.py::test_one: 1 chat completions (1 read, 0 replayed, 0 recorded), tokens 10 "
            "prompt / 5 completion / 15 total",
            "test_a.py::test_two: 2 chat completions (2 read, *",
            "test_b.py::test_three: 1 chat completions (1 read, *",
            "total: 4 chat completions *",
        ]
    )
    result.stdout.no_fnmatch_line("test_b.py::test_unrelated:*")


def test_report_json_and_xdist_totals_equal_serial(pytester: pytest.Pytester) -> None:
    project(pytester)
    serial = pytester.runpytest_subprocess("--chatresp-report-json=serial.json")
    serial.assert_outcomes(passed=4)
    parallel = pytester.runpytest_subprocess("-n", "2", "--chatresp-report-json=parallel.json")
    parallel.assert_outcomes(passed=4)
    one = json.loads((pytester.path / "serial.json").read_text())
    two = json.loads((pytester.path / "parallel.json").read_text())
    assert one == two
    assert one["total"]["read"] == 4
    assert one["total"]["total_tokens"] == 60
    assert one["drift"] == {
        "x_groq": {"count": 1, "example": "cassettes/test_a/test_two.yaml"},
    }
    assert sorted(one["tests"]) == [
        "test_a.py::test_one",
        "test_a.py::test_two",
        "test_b.py::test_three",
    ]
    assert report_lines(serial)[0] == report_lines(parallel)[0]


def test_report_is_quiet_when_no_cassette_was_used(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_plain():\n    pass\n")
    result = pytester.runpytest("--chatresp-report-json=out.json")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*- chatresp -*")
    result.stdout.no_fnmatch_line("total: *")
    written = json.loads((pytester.path / "out.json").read_text())
    assert written["total"]["read"] == 0
    assert written["tests"] == {}


def test_a_failed_cassette_item_runs_again_by_its_id(pytester: pytest.Pytester) -> None:
    cassettes = project(pytester)
    write_cassette(cassettes / "broken/bad.yaml", bad_completion())
    result = pytester.runpytest(
        "--chatresp-collect-cassettes", "cassettes/broken/bad.yaml::contract"
    )
    result.assert_outcomes(failed=1)
    result = pytester.runpytest("--chatresp-collect-cassettes", "cassettes/test_a")
    result.assert_outcomes(passed=2)
    # Test paths elsewhere still get every cassette checked.
    result = pytester.runpytest("--chatresp-collect-cassettes", "test_a.py")
    result.assert_outcomes(passed=5, failed=1)


# --- pytest-xdist: every worker's share reaches the summary --------------------------------------

#: Two test files sharing one cassette of four interactions (told apart by ``seed``): ``test_w1``
#: plays 0 and 1, ``test_w2`` plays 2, nobody plays 3. ``--dist loadfile`` with two files sends
#: one file to each of two workers, and each test writes down the worker that ran it.
SHARED_TEST = """
import os
from pathlib import Path

import httpx
import pytest

@pytest.mark.chat_cassette("shared.yaml")
def test_plays():
    Path("{name}.worker").write_text(os.environ.get("PYTEST_XDIST_WORKER", "none"))
    for n in {plays}:
        reply = httpx.post("https://api.openai.com/v1/chat/completions", json={{"model": "m", "seed": n}})
        assert reply.json()["id"] == f"c{{n}}"
"""


def shared_cassette(pytester: pytest.Pytester) -> None:
    path = write_cassette(
        pytester.path / "cassettes/shared.yaml",
        *(completion(id=f"c{n}", x_seen={"n": n}) for n in range(4)),
    )
    document = json.loads(path.read_text())
    document["interactions"][0]["response"]["body"]["string"] = json.dumps(
        completion(id="c0", x_seen={"n": 0}, x_first=True)
    )
    for n, interaction in enumerate(document["interactions"]):
        interaction["request"]["body"] = json.dumps({"model": "m", "seed": n})
    path.write_text(json.dumps(document))
    pytester.makepyfile(
        test_w1=SHARED_TEST.format(name="test_w1", plays=[0, 1]),
        test_w2=SHARED_TEST.format(name="test_w2", plays=[2]),
    )


SHARED_REPORT = [
    "total: 3 chat completions (0 read, 3 replayed, 0 recorded), tokens 30 prompt / "
    "15 completion / 45 total",
    "models: gpt-4o-mini-2024-07-18 (3)",
    "tiers: default (3)",
    "fields the models don't know (drift):",
    "  x_first: 1 time(s), e.g. in cassettes/shared.yaml",
    "  x_seen: 3 time(s), e.g. in cassettes/shared.yaml",
    "interactions no test played (ini chatresp_unplayed = ignore to hide):",
    "  cassettes/shared.yaml: interaction(s) 3 of 4",
]


def test_xdist_summary_adds_up_drift_and_played_interactions_of_both_workers(
    pytester: pytest.Pytester,
) -> None:
    shared_cassette(pytester)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    workers = {(pytester.path / f"{name}.worker").read_text() for name in ("test_w1", "test_w2")}
    assert workers == {"gw0", "gw1"}, "the two test files must run on different workers"
    assert report_lines(result) == SHARED_REPORT


def test_xdist_summary_equals_the_serial_one_for_a_shared_cassette(
    pytester: pytest.Pytester,
) -> None:
    shared_cassette(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    assert report_lines(result) == SHARED_REPORT


def test_xdist_workers_together_playing_a_whole_cassette_leave_nothing_unplayed(
    pytester: pytest.Pytester,
) -> None:
    shared_cassette(pytester)
    pytester.makepyfile(test_w2=SHARED_TEST.format(name="test_w2", plays=[2, 3]))
    pytester.makeini("[pytest]\nchatresp_unplayed = fail\n")
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider", "--chatresp-report-json=r.json"
    )
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    workers = {(pytester.path / f"{name}.worker").read_text() for name in ("test_w1", "test_w2")}
    assert workers == {"gw0", "gw1"}, "the two test files must run on different workers"
    result.stdout.no_fnmatch_line("*no test played*")
    written = json.loads((pytester.path / "r.json").read_text())
    assert written["played"] == {
        "cassettes/shared.yaml": {"interactions": 4, "played": [0, 1, 2, 3]}
    }
    assert written["unplayed"] == {}
    assert written["drift"] == {
        "x_first": {"count": 1, "example": "cassettes/shared.yaml"},
        "x_seen": {"count": 4, "example": "cassettes/shared.yaml"},
    }
    assert written["total"]["replayed"] == 4


def test_unplayed_fail_says_why_the_run_fails(pytester: pytest.Pytester) -> None:
    shared_cassette(pytester)
    pytester.makeini("[pytest]\nchatresp_unplayed = fail\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "interactions no test played, which fails the run (chatresp_unplayed = fail): "
            "record the tests that use these cassettes again with --chatresp-record-mode=all to "
            "drop them, or set chatresp_unplayed = warn:",
            "  cassettes/shared.yaml: interaction(s) 3 of 4",
        ],
        consecutive=True,
    )


def test_a_run_cut_short_writes_no_report_that_looks_whole(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes/test_cut/test_a.yaml", completion())
    pytester.makepyfile(
        test_cut="""
        def test_a(chat_completion):
            pass

        def test_b():
            raise KeyboardInterrupt
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--chatresp-report-json=report.json"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "run report not written to report.json: the run was cut short, and its figures are "
            "not those of the whole run"
        ]
    )
    assert not (pytester.path / "report.json").exists()
    result = pytester.runpytest(
        "-p", "no:randomly", "-k", "test_a", "--chatresp-report-json=report.json"
    )
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / "report.json").is_file()
