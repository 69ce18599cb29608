"""CI shards: the JSON reports of shards merge into exactly the report of one serial run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import completion, write_cassette

from pytest_chatresp.cli.report import add_parser
from pytest_chatresp.errors import CassetteError
from pytest_chatresp.report import REPORT_FORMAT
from pytest_chatresp.shards import merge_reports, read_report

#: A test file replaying interactions ``plays`` of the four of ``shared.yaml``.
REPLAY_TEST = """
import httpx
import pytest

@pytest.mark.chat_cassette("shared.yaml")
def test_plays():
    for n in {plays}:
        reply = httpx.post("https://api.openai.com/v1/chat/completions", json={{"model": "m", "seed": n}})
        assert reply.json()["id"] == f"c{{n}}"
"""


def suite(pytester: pytest.Pytester) -> None:
    """Tests reading their own cassettes (models, tiers, drift) and replaying a shared one:
    ``test_w1`` plays interactions 0 and 1, ``test_w2`` plays 2, nobody plays 3. The field
    ``x_groq`` is in a cassette of each shard: the example named is the same in every order."""
    cassettes = pytester.path / "cassettes"
    write_cassette(cassettes / "test_a/test_one.yaml", completion(model="gpt-4o-2024-08-06"))
    write_cassette(
        cassettes / "test_a/test_two.yaml",
        completion(service_tier="flex", x_groq={"id": "req_1"}),
        completion(),
    )
    write_cassette(
        cassettes / "test_b/test_three.json", completion(service_tier=None, x_groq={"id": "r"})
    )
    shared = write_cassette(
        cassettes / "shared.yaml", *(completion(id=f"c{n}", x_seen={"n": n}) for n in range(4))
    )
    document = json.loads(shared.read_text())
    for n, interaction in enumerate(document["interactions"]):
        interaction["request"]["body"] = json.dumps({"model": "m", "seed": n})
    shared.write_text(json.dumps(document))
    pytester.makepyfile(
        test_a="""
        def test_one(chat_completion):
            assert chat_completion.model.startswith("gpt-4o")

        def test_two(chat_completions):
            assert len(chat_completions) == 2
        """,
        test_b="""
        def test_three(chat_completion, chat_completions):
            assert chat_completions == [chat_completion]

        def test_unrelated():
            assert True
        """,
        test_w1=REPLAY_TEST.format(plays=[0, 1]),
        test_w2=REPLAY_TEST.format(plays=[2]),
    )


def run_shard(pytester: pytest.Pytester, name: str, *args: str) -> dict[str, Any]:
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", f"--chatresp-report-json={name}", *args
    )
    assert result.ret == 0, result.stdout.str()
    written: dict[str, Any] = json.loads((pytester.path / name).read_text())
    return written


def summary(result: pytest.RunResult) -> list[str]:
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "- chatresp -" in line)
    return [line for line in lines[start + 1 :] if not line.startswith("=")]


def report_command(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="chatresp")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *argv])
    status: int = args.handler(args)
    return status


EXPECTED_SUMMARY = [
    "total: 7 chat completions (4 read, 3 replayed, 0 recorded), tokens 70 prompt / "
    "35 completion / 105 total",
    "models: gpt-4o-2024-08-06 (1), gpt-4o-mini-2024-07-18 (6)",
    "tiers: default (5), flex (1), null (1)",
    "fields the models don't know (drift):",
    "  x_groq: 2 time(s), e.g. in cassettes/test_a/test_two.yaml",
    "  x_seen: 3 time(s), e.g. in cassettes/shared.yaml",
    "interactions no test played (ini chatresp_unplayed = ignore to hide):",
    "  cassettes/shared.yaml: interaction(s) 3 of 4",
]


def test_shards_merge_into_the_serial_report(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    suite(pytester)
    serial_run = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "--chatresp-report-json=serial.json"
    )
    serial_run.assert_outcomes(passed=6)
    assert summary(serial_run) == EXPECTED_SUMMARY
    serial = json.loads((pytester.path / "serial.json").read_text())
    assert serial["format"] == REPORT_FORMAT
    assert serial["cassettes"]["cassettes/shared.yaml"].startswith("sha256:")

    one = run_shard(pytester, "one.json", "test_a.py", "test_w1.py")
    two = run_shard(pytester, "two.json", "test_b.py", "test_w2.py", "-n", "2")
    # Each shard alone sees interaction 2 (or 0 and 1) unplayed; together only 3 is.
    assert one["unplayed"] == {"cassettes/shared.yaml": [2, 3]}
    assert two["unplayed"] == {"cassettes/shared.yaml": [0, 1, 3]}

    merged = merge_reports([one, two], ["one.json", "two.json"]).to_dict()
    assert merged == serial
    assert merge_reports([two, one]).to_dict() == serial

    monkeypatch.chdir(pytester.path)
    capsys.readouterr()
    assert report_command("one.json", "two.json", "--json", "merged.json") == 0
    assert capsys.readouterr().out.splitlines() == EXPECTED_SUMMARY
    assert (pytester.path / "merged.json").read_text() == (
        pytester.path / "serial.json"
    ).read_text()
    # --unplayed fail: the merge job fails on what no shard played; ignore hides it.
    assert report_command("one.json", "two.json", "--unplayed", "fail") == 1
    capsys.readouterr()
    assert report_command("one.json", "two.json", "--unplayed", "ignore") == 0
    assert capsys.readouterr().out.splitlines() == EXPECTED_SUMMARY[:-2]


def test_three_shards_by_k_and_node_ids_with_verbose_summary(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    suite(pytester)
    pytester.makepyfile(test_w2=REPLAY_TEST.format(plays=[2, 3]))
    serial_run = pytester.runpytest_subprocess(
        "-v", "-p", "no:randomly", "-p", "no:cacheprovider", "--chatresp-report-json=serial.json"
    )
    serial = json.loads((pytester.path / "serial.json").read_text())
    assert serial["unplayed"] == {}
    shards = [
        run_shard(pytester, "s1.json", "-k", "test_one or test_three"),
        run_shard(pytester, "s2.json", "test_a.py::test_two", "test_w2.py", "-n", "2"),
        run_shard(pytester, "s3.json", "-k", "test_unrelated or test_w1"),
    ]
    assert merge_reports(shards).to_dict() == serial
    monkeypatch.chdir(pytester.path)
    capsys.readouterr()
    assert report_command("-v", "s3.json", "s1.json", "s2.json", "--unplayed", "fail") == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == summary(serial_run)
    assert printed[0] == (
        "test_a.py::test_one: 1 chat completions (1 read, 0 replayed, 0 recorded), tokens 10 "
        "prompt / 5 completion / 15 total"
    )


def test_shards_of_different_cassette_contents_are_refused(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    suite(pytester)
    run_shard(pytester, "one.json", "test_w1.py")
    shared = pytester.path / "cassettes/shared.yaml"
    shared.write_text(shared.read_text() + "\n")  # the same interactions, other bytes
    run_shard(pytester, "two.json", "test_w2.py")
    monkeypatch.chdir(pytester.path)
    capsys.readouterr()
    assert report_command("one.json", "two.json") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    message = captured.err.strip()
    assert message.startswith(
        "chatresp report: two.json: cassettes: cassettes/shared.yaml is sha256:"
    )
    assert message.endswith(
        "in one.json: the shards ran on different cassette contents; run every shard on one commit"
    )


# --- refusals, as data -----------------------------------------------------------------------------


def shard(**changes: Any) -> dict[str, Any]:
    """A small valid report: one test that read one completion of one cassette."""
    tally = {
        "read": 1,
        "replayed": 0,
        "recorded": 0,
        "models": {"gpt-4o-mini": 1},
        "tiers": {"default": 1},
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "invalid": 0,
        "kinds": {"chat completion": 1},
    }
    document: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "plugin": "1.0.0",
        "total": dict(tally),
        "tests": {"test_a.py::test_one": dict(tally)},
        "drift": {},
        "played": {"cassettes/a.yaml": {"interactions": 1, "played": [0]}},
        "unplayed": {},
        "model_changes": [],
        "no_completion": {},
        "age_unknown": [],
        "cassettes": {"cassettes/a.yaml": "sha256:" + "a" * 64},
    }
    document.update(changes)
    return document


def refusal(*documents: dict[str, Any]) -> str:
    with pytest.raises(CassetteError) as caught:
        merge_reports(list(documents), [f"shard{n}.json" for n in range(1, len(documents) + 1)])
    return str(caught.value)


def test_other_formats_and_malformed_reports_are_refused_by_name() -> None:
    assert refusal(shard(format=2)).startswith(
        "shard1.json: format: report format 2 is not one this pytest-chatresp ("
    )
    assert refusal(shard(format=2)).endswith(
        f"reads (format {REPORT_FORMAT}): merge the reports with the version that wrote them"
    )
    old = shard()
    del old["format"]
    assert refusal(old).startswith("shard1.json: format: missing: not a pytest-chatresp report")
    bad = shard()
    bad["tests"]["test_a.py::test_one"]["read"] = "1"
    assert refusal(bad) == (
        "shard1.json: tests['test_a.py::test_one'].read: expected a count (an integer of 0 or "
        "more), got a string"
    )
    assert refusal(shard(), shard(played={"x.yaml": {"interactions": 2, "played": [2]}})) == (
        "shard2.json: played['x.yaml'].played[0]: interaction 2 of a cassette of 2 interaction(s)"
    )
    huge = shard(played={"x.yaml": {"interactions": 10**12, "played": []}})
    assert refusal(huge) == (
        "shard1.json: played['x.yaml'].interactions: 1000000000000 interactions: more than a "
        "cassette holds"
    )
    assert refusal(shard(extra=1)) == "shard1.json: extra: not a field of this report format"
    edited = shard()
    edited["total"]["read"] = 5
    assert refusal(edited) == (
        "shard1.json: total: does not add up to the tests' figures: the file was edited"
    )
    assert refusal([1, 2]) == (  # type: ignore[arg-type]
        "shard1.json: not a pytest-chatresp report (expected an object, got an array)"
    )


def test_shards_of_other_versions_or_the_same_tests_are_refused() -> None:
    other = shard(plugin="1.1.0", tests={"test_b.py::test_two": shard()["total"]})
    assert refusal(shard(), other) == (
        "shard2.json: plugin: written by pytest-chatresp 1.1.0, shard1.json by 1.0.0: merge the "
        "reports of shards that ran one version"
    )
    assert refusal(shard(), shard()) == (
        "shard2.json: tests: holds test_a.py::test_one, which ran in shard1.json too: shards "
        "must run disjoint sets of tests, or their figures would count twice"
    )
    with pytest.raises(CassetteError) as caught:
        merge_reports([shard(), shard()], ["shard1.json", "shard1.json"])
    assert str(caught.value) == (
        "shard1.json: tests: is given twice: shards must run disjoint sets of tests, or their "
        "figures would count twice"
    )
    resized = shard(
        tests={"test_b.py::test_two": shard()["total"]},
        played={"cassettes/a.yaml": {"interactions": 3, "played": [0]}},
    )
    assert refusal(shard(), resized) == (
        "shard2.json: played: cassettes/a.yaml holds 3 interaction(s) here and 1 in shard1.json: "
        "the shards ran on different cassette contents"
    )


def test_unreadable_report_files_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cut.json").write_text('{"format": 1, "tot')
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(CassetteError, match=r"\Acut.json: not a JSON report: "):
        read_report(tmp_path / "cut.json")
    with pytest.raises(CassetteError, match=r"\Adir.json: cannot read the report: not a regular"):
        read_report(tmp_path / "dir.json")
    assert report_command("absent.json") == 1
    assert capsys.readouterr().err == (
        "chatresp report: absent.json: cannot read the report: no such file\n"
    )
    (tmp_path / "good.json").write_text(json.dumps(shard()))
    assert report_command("good.json", "--json", "dir.json") == 1
    assert capsys.readouterr().err.startswith("chatresp report: cannot write dir.json: ")
