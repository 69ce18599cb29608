"""Adopting the plugin in a pytest-recording suite: its cassettes where pytest-recording keeps
them (``<test file's dir>/cassettes/<module>/<test>.yaml``), found by the marker, the fixtures,
--chatresp-collect-cassettes and the command; a test under both markers refused; its cassettes
never orphans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import completion
from openai_server import OpenAIServer

REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Weather?"}]}

SDK_TEST = """
import os

import openai
import pytest


def client():
    return openai.OpenAI(
        base_url=os.environ["CHATRESP_TEST_BASE_URL"],
        api_key=os.environ["CHATRESP_TEST_API_KEY"],
        max_retries=0,
    )


@pytest.mark.chat_cassette
def test_weather(chat_cassette):
    reply = client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather?"}]
    )
    print("REPLY", reply.choices[0].message.content)
    assert len(chat_cassette.completions) == 1
"""


def recorded_by_pytest_recording(base: str, content: str = "Sunny, 21C") -> str:
    """One chat completion as pytest-recording writes it (vcrpy's YAML serializer)."""
    body = completion()
    body["choices"][0]["message"]["content"] = content
    interaction: dict[str, Any] = {
        "request": {
            "body": json.dumps(REQUEST),
            "headers": {"content-type": ["application/json"]},
            "method": "POST",
            "uri": base + "/chat/completions",
        },
        "response": {
            "body": {"string": json.dumps(body)},
            "headers": {"content-type": ["application/json"]},
            "status": {"code": 200, "message": "OK"},
        },
    }
    return yaml.safe_dump({"interactions": [interaction], "version": 1})


def place(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_marked_test_replays_pytest_recordings_cassette(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    place(
        pytester.path / "tests/cassettes/test_app/test_weather.yaml",
        recorded_by_pytest_recording(openai_server.base_url),
    )
    place(pytester.path / "tests/test_app.py", SDK_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*REPLY Sunny, 21C*"])
    assert openai_server.request_count == 0
    assert not (pytester.path / "cassettes").exists(), "nothing written at our default place"


@pytest.mark.parametrize(
    ("layout", "served"),
    [(None, "ours"), ("pytest-recording", "theirs"), ("chatresp", "ours")],
)
def test_the_configured_layout_wins_when_both_exist(
    pytester: pytest.Pytester, openai_server: OpenAIServer, layout: str | None, served: str
) -> None:
    place(
        pytester.path / "tests/cassettes/test_app/test_weather.yaml",
        recorded_by_pytest_recording(openai_server.base_url, "theirs"),
    )
    place(
        pytester.path / "cassettes/test_app/test_weather.yaml",
        recorded_by_pytest_recording(openai_server.base_url, "ours"),
    )
    place(pytester.path / "tests/test_app.py", SDK_TEST)
    args = ["-p", "no:cacheprovider", "-s"]
    if layout is not None:
        pytester.makeini(f"[pytest]\nchatresp_cassette_layout = {layout}\n")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*REPLY {served}*"])
    if layout == "pytest-recording":
        result.stdout.fnmatch_lines(["chatresp: cassette layout pytest-recording"])
        # the command line overrides the ini
        again = pytester.runpytest(*args, "--chatresp-cassette-layout=chatresp")
        again.stdout.fnmatch_lines(["*REPLY ours*"])


@pytest.mark.parametrize(
    ("layout", "written"),
    [
        ("chatresp", "cassettes/test_app/test_weather.yaml"),
        ("pytest-recording", "tests/cassettes/test_app/test_weather.yaml"),
    ],
)
def test_a_new_recording_goes_where_the_layout_says(
    pytester: pytest.Pytester, openai_server: OpenAIServer, layout: str, written: str
) -> None:
    place(pytester.path / "tests/test_app.py", SDK_TEST)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--chatresp-record-mode=once",
        f"--chatresp-cassette-layout={layout}",
    )
    result.assert_outcomes(passed=1)
    assert openai_server.request_count == 1
    files = sorted(
        str(p.relative_to(pytester.path)) for p in pytester.path.rglob("*.yaml") if p.is_file()
    )
    assert files == [written]
    assert "sk-FAKE" not in (pytester.path / written).read_text()


def test_a_bad_layout_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--chatresp-cassette-layout=vcr")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--chatresp-cassette-layout = 'vcr' is not valid; use one of: chatresp, pytest-recording."
        ]
    )


def test_fixture_reads_pytest_recordings_cassette(pytester: pytest.Pytester) -> None:
    place(
        pytester.path / "tests/cassettes/test_app/TestGroup.test_one.yaml",
        recorded_by_pytest_recording("https://api.openai.com/v1"),
    )
    place(
        pytester.path / "tests/test_app.py",
        "class TestGroup:\n"
        "    def test_one(self, chat_completion):\n"
        "        assert chat_completion.choices[0].message.content == 'Sunny, 21C'\n",
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_both_markers_are_refused_and_nothing_is_written(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    place(
        pytester.path / "tests/test_both.py",
        SDK_TEST.replace(
            "@pytest.mark.chat_cassette", "@pytest.mark.vcr\n@pytest.mark.chat_cassette"
        ),
    )
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--record-mode=once", "--chatresp-record-mode=once"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: tests/test_both.py::test_weather: has both @pytest.mark.vcr (pytest-recording) "
            "and @pytest.mark.chat_cassette. pytest-recording would replay and record its calls, "
            "writing its cassette without this plugin's scrubbing (an API key would reach the "
            "file), and chat_cassette would see no call and validate nothing. Remove "
            "@pytest.mark.vcr to record, scrub and validate with @pytest.mark.chat_cassette*"
        ]
    )
    assert openai_server.request_count == 0
    assert not list(pytester.path.rglob("*.yaml"))


def two_layouts(root: Path, base: str) -> None:
    place(root / "cassettes/test_new/test_new.yaml", recorded_by_pytest_recording(base))
    place(root / "tests/cassettes/test_old/test_old.yaml", recorded_by_pytest_recording(base))
    place(
        root / "tests/unit/cassettes/test_unit/test_gone.yaml", recorded_by_pytest_recording(base)
    )
    place(
        root / "tests/test_old.py", "import pytest\n\n@pytest.mark.vcr\ndef test_old():\n    pass\n"
    )
    place(root / "tests/test_new.py", "def test_new(chat_completion):\n    pass\n")
    place(root / "tests/unit/test_unit.py", "def test_other():\n    pass\n")
    place(root / "pytest.ini", "[pytest]\n")


def test_check_mode_collects_every_cassettes_folder(pytester: pytest.Pytester) -> None:
    two_layouts(pytester.path, "https://api.openai.com/v1")
    result = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-collect-cassettes", "-v")
    result.stdout.fnmatch_lines_random(
        [
            "cassettes/test_new/test_new.yaml::contract PASSED*",
            "tests/cassettes/test_old/test_old.yaml::contract PASSED*",
            "tests/unit/cassettes/test_unit/test_gone.yaml::contract PASSED*",
        ]
    )
    named = pytester.runpytest(
        "-p", "no:cacheprovider", "--chatresp-collect-cassettes", "tests/cassettes", "-v"
    )
    named.assert_outcomes(passed=1)
    named.stdout.fnmatch_lines(["tests/cassettes/test_old/test_old.yaml::contract PASSED*"])


def chatresp(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_chatresp.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_command_sees_the_same_cassettes(tmp_path: Path) -> None:
    two_layouts(tmp_path, "https://api.openai.com/v1")
    checked = chatresp(tmp_path, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("3 files, 3 exchanges, 3 chat completions")
    audited = chatresp(tmp_path, "audit")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert audited.stdout == "3 files audited: nothing flagged\n"
    orphans = chatresp(tmp_path, "check", "--orphans")
    assert orphans.returncode == 1, orphans.stdout + orphans.stderr
    assert orphans.stdout.splitlines() == [
        "orphan: tests/unit/cassettes/test_unit/test_gone.yaml",
        "1 orphan of 3 cassette files in cassettes, tests/cassettes, tests/unit/cassettes "
        "(2 used by the collected tests)",
    ]


def test_the_projects_vcr_config_applies_under_our_scrubbing(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    place(
        pytester.path / "tests/conftest.py",
        """
import pytest


def mark(request):
    request.headers["X-Seen-By"] = "project-hook"
    return request


@pytest.fixture
def vcr_config():
    return {
        "filter_headers": [("x-team-token", "TEAM-REDACTED")],
        "before_record_request": mark,
        "record_mode": "all",
        "match_on": ["method"],
    }
""",
    )
    place(
        pytester.path / "tests/test_app.py",
        SDK_TEST.replace(
            "max_retries=0,", "max_retries=0, default_headers={'X-Team-Token': 'team-secret-1'},"
        ),
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-record-mode=once")
    result.assert_outcomes(passed=1)
    written = (pytester.path / "cassettes/test_app/test_weather.yaml").read_text()
    assert "TEAM-REDACTED" in written
    assert "team-secret-1" not in written
    assert "project-hook" in written
    assert "sk-FAKE" not in written, "our scrubbing still applies"
    # record_mode and match_on are the plugin's: the replay matches on the body, offline
    replay = pytester.runpytest("-p", "no:cacheprovider")
    replay.assert_outcomes(passed=1)
    assert openai_server.request_count == 1


@pytest.mark.parametrize(
    ("how", "remedy"),
    [
        (
            "--block-network",
            "Drop --block-network for the recording run: pytest "
            "--chatresp-record-mode=once tests/test_app.py::test_weather",
        ),
        ("mark", "Remove @pytest.mark.block_network from the test to record it"),
    ],
)
def test_pytest_recordings_network_block_says_what_to_drop(
    pytester: pytest.Pytester, openai_server: OpenAIServer, how: str, remedy: str
) -> None:
    source = SDK_TEST
    args = ["-p", "no:cacheprovider", "--chatresp-record-mode=once"]
    if how == "mark":
        source = source.replace(
            "@pytest.mark.chat_cassette", "@pytest.mark.block_network\n@pytest.mark.chat_cassette"
        )
    else:
        args.append(how)
    place(pytester.path / "tests/test_app.py", source)
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    blocker = "--block-network" if how != "mark" else "@pytest.mark.block_network"
    result.stdout.fnmatch_lines(
        [
            f"*Recording failed: pytest-recording's {blocker} blocked the connection, and "
            "nothing was sent",
            "test: tests/test_app.py::test_weather",
            "cassette: cassettes/test_app/test_weather.yaml (not written), record mode 'once'",
            remedy,
            "(--chatresp-block-network blocks the network in replay runs only, so marked tests "
            "can record.)",
        ]
    )
    assert openai_server.request_count == 0
    assert not (pytester.path / "cassettes").exists()


FAKED_VCRPY = """
import pytest_chatresp.recording._vcrpy as vcrpy_uses


def pytest_configure(config):
    real = vcrpy_uses.installed_vcrpy
    vcrpy_uses.installed_vcrpy = lambda: {version!r}
    config.add_cleanup(lambda: setattr(vcrpy_uses, "installed_vcrpy", real))
"""


@pytest.mark.parametrize("version", ["8.2.1", "9.3.9"])
def test_an_older_vcrpy_is_a_start_up_error_saying_why(
    pytester: pytest.Pytester, version: str
) -> None:
    pytester.makeconftest(FAKED_VCRPY.format(version=version))
    pytester.makepyfile(
        test_app="import pytest\n\n@pytest.mark.chat_cassette\ndef test_x():\n    pass\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: @pytest.mark.chat_cassette needs vcrpy 9.4 or newer; vcrpy {version} is "
            "installed. The openai SDK sends its requests through httpx2, whose transports vcrpy "
            "patches from 9.4 on: with an older vcrpy the SDK's calls would reach the network "
            "unrecorded, and replay would not answer them. Install a supported one: pip install "
            "'vcrpy>=9.4,<10'. Tests that only read cassettes*"
        ]
    )


def test_an_older_vcrpy_leaves_reading_tests_alone(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKED_VCRPY.format(version="8.2.1"))
    place(
        pytester.path / "cassettes/test_app/test_read.yaml",
        recorded_by_pytest_recording("https://api.openai.com/v1"),
    )
    pytester.makepyfile(test_app="def test_read(chat_completion):\n    pass\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("installed", "problem"),
    [("9.4.0", False), ("9.4.2", False), ("10.0", False), ("9.3.9", True), ("8.2.1", True)],
)
def test_the_lowest_vcrpy(installed: str, problem: bool) -> None:
    from pytest_chatresp.recording._vcrpy import vcrpy_problem

    assert (vcrpy_problem(installed) is not None) == problem
    assert "not installed" in (vcrpy_problem(None) or "")


def test_same_named_test_files_sharing_a_default_cassette_are_warned_about(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    for folder in ("unit", "integration"):
        place(pytester.path / f"tests/{folder}/__init__.py", "")
        place(pytester.path / f"tests/{folder}/test_dup.py", SDK_TEST)
    place(pytester.path / "tests/__init__.py", "")
    result = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-record-mode=once")
    result.stdout.fnmatch_lines(
        [
            "*SharedCassetteWarning: cassettes/test_dup/test_weather.yaml is the default cassette "
            "of both tests/integration/test_dup.py::test_weather and "
            "tests/unit/test_dup.py::test_weather: test files of the same name in different "
            "folders share it, and each would replay and record the other's calls. Give one its "
            "own cassette with @pytest.mark.chat_cassette('tests/unit/test_dup/test_weather.yaml'), "
            "or set chatresp_cassette_layout = pytest-recording, which keeps cassettes beside each "
            "test file."
        ]
    )
    # pytest-recording's layout keeps them apart: no warning, two cassettes
    for path in pytester.path.rglob("*.yaml"):
        path.unlink()
    apart = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--chatresp-record-mode=once",
        "--chatresp-cassette-layout=pytest-recording",
    )
    apart.assert_outcomes(passed=2)
    apart.stdout.no_fnmatch_line("*SharedCassetteWarning*")
    assert (pytester.path / "tests/unit/cassettes/test_dup/test_weather.yaml").is_file()
    assert (pytester.path / "tests/integration/cassettes/test_dup/test_weather.yaml").is_file()


def test_a_missing_cassette_names_both_places_looked_at(pytester: pytest.Pytester) -> None:
    place(pytester.path / "tests/test_app.py", "def test_gone(chat_completion):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "No cassette for tests/test_app.py::test_gone: cassettes/test_app/test_gone.yaml does "
            "not exist (nor tests/cassettes/test_app/test_gone.yaml, in the other cassette "
            "layout).",
        ]
    )
