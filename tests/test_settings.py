"""The one settings model: declarations, resolution order, bad values, the project's ini file,
the typed marker, interrupts and long cassette names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers import completion, write_cassette

from pytest_chatresp.marker import CassetteMarker, MarkerError
from pytest_chatresp.settings import (
    BY_NAME,
    SETTINGS,
    SettingError,
    load_settings,
    read_project_ini,
    resolve,
)

# --- declarations and resolution -----------------------------------------------------------------


def test_every_setting_has_one_ini_key_option_and_dest() -> None:
    for spec in SETTINGS:
        assert spec.ini_key == f"chatresp_{spec.name}" == spec.dest
        assert spec.option == "--chatresp-" + spec.name.replace("_", "-")
    assert not {"match_on", "validate", "check", "max_age_fail"} & set(BY_NAME)


def test_resolution_order_is_marker_cli_ini_default() -> None:
    spec = BY_NAME["record_mode"]
    assert resolve(spec) == "none"
    assert resolve(spec, ini="once") == "once"
    assert resolve(spec, cli="all", ini="once") == "all"
    assert resolve(spec, marker="new_episodes", cli="all", ini="once") == "new_episodes"


def test_marker_allowances_add_to_the_run() -> None:
    spec = BY_NAME["skip_checks"]
    assert resolve(spec, marker=["stream"], ini=["usage-sum"]) == ("usage-sum", "stream")
    assert resolve(spec, marker="stream", cli=["created"], ini=["usage-sum"]) == (
        "created",
        "stream",
    )


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        (
            "record_mode",
            "sometimes",
            "chatresp_record_mode = 'sometimes' is not valid; "
            "use one of: none, once, new_episodes, all.",
        ),
        ("unplayed", "loud", "chatresp_unplayed = 'loud' is not valid; use one of: ignore, warn"),
        ("max_age", "old", "chatresp_max_age = 'old' is not valid; use a number of days."),
        (
            "max_age",
            "-1",
            "chatresp_max_age: -1 is not a number of days greater than 0 (0.5 is twelve hours;"
            " leave it unset for no age limit)",
        ),
        ("max_age", "0", "chatresp_max_age: 0 is not a number of days greater than 0"),
        ("strict", "maybe", "chatresp_strict = 'maybe' is not valid; use true or false."),
        ("allow", ["service_tier"], "chatresp_allow: 'service_tier' is not FIELD=VALUE"),
    ],
)
def test_bad_values_name_the_setting_the_value_and_the_allowed(
    name: str, raw: object, message: str
) -> None:
    with pytest.raises(SettingError) as caught:
        load_settings({}, {name: raw})
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--chatresp-max-age=old"],
            "ERROR: --chatresp-max-age = 'old' is not valid; use a number of days.",
        ),
        (
            ["--chatresp-max-age=-1"],
            "ERROR: --chatresp-max-age: -1 is not a number of days greater than 0 *",
        ),
        (
            ["--chatresp-unplayed=loud"],
            "ERROR: --chatresp-unplayed = 'loud' is not valid; use one of: ignore, warn, fail.",
        ),
        (
            ["--chatresp-skip-checks=usage-sum,nope"],
            "ERROR: --chatresp-skip-checks = 'nope' is not valid; use one of: usage-sum, *",
        ),
    ],
)
def test_bad_command_line_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(test_it="def test_x():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_ini_bool_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchatresp_strict = maybe\n")
    pytester.makepyfile(test_it="def test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: chatresp_strict = 'maybe' is not valid; use true or false."]
    )


def test_the_command_line_wins_over_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchatresp_record_mode = once\nchatresp_skip_checks = stream\n")
    pytester.makepyfile(test_it="def test_x():\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["chatresp: record mode once, checks skipped: stream"])
    result = pytester.runpytest("--chatresp-record-mode=all", "--chatresp-skip-checks=created")
    result.stdout.fnmatch_lines(["chatresp: record mode all, checks skipped: created"])
    result = pytester.runpytest("--chatresp-record-mode=none")
    result.stdout.fnmatch_lines(["chatresp: checks skipped: stream"])


MISSING = """
import pytest

@pytest.mark.chat_cassette(record_mode="none")
def test_marker_replays(chat_completion):
    pass

@pytest.mark.chat_cassette
def test_run_records(chat_completion):
    pass
"""


def test_the_marker_wins_over_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchatresp_record_mode = once\n")
    pytester.makepyfile(test_it=MISSING)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*No cassette for test_it.py::test_marker_replays*",
            "Record it with: pytest --chatresp-record-mode=once test_it.py::test_marker_replays",
            "*No cassette for test_it.py::test_run_records*",
            "The chat_completion and chat_completions fixtures read the recorded file*",
        ]
    )


def test_the_marker_serializer_wins_over_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchatresp_serializer = json\n")
    pytester.makepyfile(
        test_it="""
import pytest

@pytest.mark.chat_cassette(serializer="yaml")
def test_yaml(chat_completion):
    pass

def test_json(chat_completion):
    pass
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.stdout.fnmatch_lines(
        [
            "*cassettes/test_it/test_yaml.yaml does not exist*",
            "*cassettes/test_it/test_json.json does not exist*",
        ]
    )


# --- the typed marker ----------------------------------------------------------------------------


def test_the_marker_is_parsed_into_a_typed_object() -> None:
    parsed = CassetteMarker.parse(
        ["x.yaml"], {"record_mode": "once", "allow": "service_tier=on_demand", "match_on": "path"}
    )
    assert parsed == CassetteMarker(
        path="x.yaml", record_mode="once", allow=("service_tier=on_demand",), match_on=("path",)
    )
    with pytest.raises(MarkerError, match=r"\(expect_violations='yes'\): use True or False"):
        CassetteMarker.parse([], {"expect_violations": "yes"})
    with pytest.raises(MarkerError, match="takes one positional argument"):
        CassetteMarker.parse(["a.yaml", "b.yaml"], {})


def test_bad_marker_arguments_stop_the_run_at_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_it="""
import pytest

@pytest.mark.chat_cassette(recordmode="all")
def test_typo():
    pass

@pytest.mark.chat_cassette(serializer=3)
def test_type():
    pass

@pytest.mark.chat_cassette(match_on=[1])
def test_match():
    pass

def test_plain():
    pass
"""
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_it.py::test_typo: @pytest.mark.chat_cassette(recordmode=...): "
            "'recordmode' is not an argument; it takes: path, record_mode, serializer, match_on, "
            "allow, skip_checks, expect_violations",
            "test_it.py::test_type: @pytest.mark.chat_cassette(serializer=3): "
            "use one of: readable, yaml, json",
            "test_it.py::test_match: @pytest.mark.chat_cassette(match_on=[[]1[]]): "
            "use a list of vcrpy matcher names",
        ]
    )
    result.stdout.no_fnmatch_line("*passed*")


# --- the project's ini file, as pytest finds it --------------------------------------------------

INI_LINES = (
    "chatresp_cassette_dir = recordings\n"
    "chatresp_allow =\n    service_tier=on_demand\n    stream:no-done\n"
    "chatresp_skip_checks = usage-sum created\n"
    "chatresp_strict = true\n"
)
EXPECTED = {
    "cassette_dir": "recordings",
    "allow": ["service_tier=on_demand", "stream:no-done"],
    "skip_checks": ["usage-sum", "created"],
    "strict": True,
}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.ini", "[pytest]\n" + INI_LINES),
        ("tox.ini", "[tox]\nenvlist = py\n[pytest]\n" + INI_LINES),
        ("setup.cfg", "[metadata]\nname = x\n[tool:pytest]\n" + INI_LINES),
        (
            "pyproject.toml",
            "[tool.pytest.ini_options]\n"
            'chatresp_cassette_dir = "recordings"\n'
            'chatresp_allow = ["service_tier=on_demand", "stream:no-done"]\n'
            'chatresp_skip_checks = "usage-sum created"\n'
            'chatresp_strict = "true"\n',
        ),
    ],
)
def test_the_ini_is_read_from_each_location(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    below = tmp_path / "tests" / "deep"
    below.mkdir(parents=True)
    found = read_project_ini(below)
    assert found.rootdir == tmp_path.resolve()
    assert found.path == tmp_path.resolve() / name
    assert found.values == EXPECTED
    settings = load_settings({}, found.values)
    assert settings.cassette_dir == "recordings"
    assert settings.skip_checks == ("usage-sum", "created")


def test_the_ini_agrees_with_pytest(pytester: pytest.Pytester) -> None:
    pytester.makefile(".cfg", setup="[tool:pytest]\n" + INI_LINES)
    pytester.makepyfile(test_it="def test_x():\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "chatresp: cassette dir */recordings, strict validation, allowed: "
            "service_tier=on_demand, stream:no-done, checks skipped: usage-sum created"
        ]
    )
    assert read_project_ini(pytester.path).values == EXPECTED


def test_pytest_ini_wins_even_when_empty(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "tox.ini").write_text("[pytest]\n" + INI_LINES, encoding="utf-8")
    found = read_project_ini(tmp_path)
    assert (found.path, found.values) == (tmp_path.resolve() / "pytest.ini", {})


def test_files_without_a_pytest_section_are_passed_over(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[pytest]\n" + INI_LINES, encoding="utf-8")
    (tmp_path / "tox.ini").write_text("[tox]\n", encoding="utf-8")
    inner = tmp_path / "pkg"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    found = read_project_ini(inner)
    # pytest's rule: a pyproject.toml without pytest settings names the rootdir only when no
    # ini file is found above it either.
    assert (found.rootdir, found.values) == (inner.resolve(), {})
    (tmp_path / "tox.ini").write_text("[pytest]\nchatresp_unplayed = fail\n", encoding="utf-8")
    found = read_project_ini(inner)
    assert (found.rootdir, found.values) == (tmp_path.resolve(), {"unplayed": "fail"})


def test_an_unreadable_ini_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options\n", encoding="utf-8")
    with pytest.raises(SettingError, match=r"pyproject\.toml"):
        read_project_ini(tmp_path)


# --- interrupts and long names -------------------------------------------------------------------

INTERRUPTED = """
import httpx
import pytest

@pytest.mark.chat_cassette
def test_stop():
    try:
        httpx.post("https://api.openai.com/v1/chat/completions", json={"model": "m"})
    except Exception:
        pass
    raise {error}

def test_after():
    pass
"""


def test_a_keyboard_interrupt_after_an_unmatched_request_stops_the_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_it=INTERRUPTED.replace("{error}", "KeyboardInterrupt"))
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    result.stdout.no_fnmatch_line("*No recorded chat completion matches*")
    result.stdout.no_fnmatch_line("*test_after*PASSED*")


def test_a_system_exit_is_not_replaced_by_the_plugins_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it=INTERRUPTED.replace("{error}", "SystemExit(3)"))
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*SystemExit: 3*"])
    result.stdout.no_fnmatch_line("*No recorded chat completion matches*")


def test_a_cassette_name_too_long_for_the_file_system_is_shortened(
    pytester: pytest.Pytester,
) -> None:
    long_id = "x" * 300
    name = f"test_p[{long_id}]"
    expected = name[:100] + "-" + hashlib.sha256(name.encode()).hexdigest()[:10]
    write_cassette(pytester.path / f"cassettes/test_it/{expected}.yaml", completion(id="long"))
    pytester.makepyfile(
        test_it=f"""
import pytest

@pytest.mark.parametrize("key", ["long", "short"], ids=["{long_id}", "short"])
def test_p(chat_completion, key):
    assert chat_completion.id == "long"
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*cassettes/test_it/test_p[[]short[]].yaml does not exist*"])
    result.stdout.no_fnmatch_line("*OSError*")
