"""The ``chatresp`` command in a project: it reads the project's ini as pytest does, discovers
the same cassette files as ``pytest --chatresp-collect-cassettes``, and finds orphans by collecting the tests
in process, without a plumbing option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import completion, write_cassette

from pytest_chatresp.cli import main
from pytest_chatresp.discovery import cassette_files, find, is_cassette

POSIX = pytest.mark.skipif(os.name == "nt", reason="symbolic links and FIFOs")

PASSED_SUMMARY = (
    "1 file, 1 exchange, 1 chat completion (0 streamed), 0 error responses, "
    "0 unreadable files, 0 invalid completions"
)

#: The same two settings, written in each place pytest reads them from.
INI_FILES = {
    "pytest.ini": (
        "pytest.ini",
        "[pytest]\nchatresp_cassette_dir = recordings\nchatresp_allow = service_tier=on_demand\n",
    ),
    "pyproject.toml": (
        "pyproject.toml",
        '[tool.pytest.ini_options]\nchatresp_cassette_dir = "recordings"\n'
        'chatresp_allow = ["service_tier=on_demand"]\n',
    ),
    "tox.ini": (
        "tox.ini",
        "[tox]\nenvlist = py\n\n[pytest]\nchatresp_cassette_dir = recordings\n"
        "chatresp_allow = service_tier=on_demand\n",
    ),
    "setup.cfg": (
        "setup.cfg",
        "[metadata]\nname = demo\n\n[tool:pytest]\nchatresp_cassette_dir = recordings\n"
        "chatresp_allow = service_tier=on_demand\n",
    ),
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def chatresp(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_chatresp.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tier_project(root: Path) -> None:
    """A test replaying a Groq-style completion (service_tier on_demand) from recordings/."""
    write_cassette(
        root / "recordings/test_tier/test_tier.yaml", completion(service_tier="on_demand")
    )
    (root / "test_tier.py").write_text(
        "def test_tier(chat_completion):\n    assert chat_completion.service_tier == 'on_demand'\n"
    )


# --- the project's ini ----------------------------------------------------------------------


@pytest.mark.parametrize("location", INI_FILES)
def test_check_reads_each_ini_location_and_passes_where_pytest_passes(
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    location: str,
) -> None:
    name, text = INI_FILES[location]
    tier_project(pytester.path)
    (pytester.path / name).write_text(text)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    capsys.readouterr()
    # No path: the configured cassette dir (recordings/, not cassettes/), its allowance.
    assert run(capsys, "check") == (0, PASSED_SUMMARY + "\n", "")
    # The ini is found from a subdirectory too, as pytest finds it; paths stay the rootdir's.
    (pytester.path / "sub").mkdir()
    monkeypatch.chdir(pytester.path / "sub")
    status, out, _ = run(capsys, "check")
    assert (status, out.splitlines()[-1]) == (0, PASSED_SUMMARY)


@pytest.mark.parametrize("location", INI_FILES)
def test_without_the_allowance_both_fail(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], location: str
) -> None:
    name, text = INI_FILES[location]
    tier_project(pytester.path)
    kept = [line for line in text.splitlines() if "chatresp_allow" not in line]
    (pytester.path / name).write_text("\n".join(kept) + "\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(errors=1)
    capsys.readouterr()
    status, out, _ = run(capsys, "check")
    assert status == 1
    assert [line for line in out.splitlines() if "service_tier" in line], out
    assert out.splitlines()[0].startswith("recordings/test_tier/test_tier.yaml, interaction 0: ")


def test_flags_override_the_ini(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    tier_project(pytester.path)
    (pytester.path / "pytest.ini").write_text(INI_FILES["pytest.ini"][1])
    # --allow replaces the ini's allowances: on_demand is a violation again.
    status, out, _ = run(capsys, "check", "--allow", "choices[].finish_reason=eos")
    assert status == 1
    assert "service_tier: expected" in out.splitlines()[0]
    # A path on the command line replaces the cassette dir; the ini's allowance still holds.
    write_cassette(pytester.path / "elsewhere/x.yaml", completion(service_tier="on_demand"))
    assert run(capsys, "check", "elsewhere") == (0, PASSED_SUMMARY + "\n", "")


def test_skipped_checks_and_strictness_come_from_the_ini(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    over = completion(usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 99})
    write_cassette(pytester.path / "cassettes/over.yaml", over)
    assert run(capsys, "check")[0] == 1
    (pytester.path / "pytest.ini").write_text("[pytest]\nchatresp_skip_checks = usage-sum\n")
    assert run(capsys, "check")[0] == 0
    # Strict mode rejects a field the contract does not know, lax mode keeps it.
    write_cassette(pytester.path / "cassettes/over.yaml", completion(unknown_field=1))
    assert run(capsys, "check")[0] == 0
    (pytester.path / "pytest.ini").write_text("[pytest]\nchatresp_strict = true\n")
    status, out, _ = run(capsys, "check")
    assert status == 1
    assert "unknown_field" in out


def test_a_bad_ini_value_is_a_usage_error_naming_the_key_value_and_choices(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    (pytester.path / "cassettes").mkdir()
    (pytester.path / "tox.ini").write_text("[pytest]\nchatresp_skip_checks = usage-sum nope\n")
    status, out, err = run(capsys, "check")
    assert (status, out) == (2, "")
    assert err.startswith("chatresp check: error: chatresp_skip_checks = 'nope' is not ")
    assert "use one of: usage-sum, " in err
    (pytester.path / "tox.ini").write_text("[pytest]\nchatresp_strict = maybe\n")
    status, _, err = run(capsys, "audit")
    assert status == 2
    assert err == (
        "chatresp audit: error: chatresp_strict = 'maybe' is not valid; use true or false.\n"
    )


def filtered_cassette(path: Path) -> Path:
    """A cassette holding values only the project's filters call secret (all fake)."""
    write_cassette(path, completion())
    document = json.loads(path.read_text())
    interaction = document["interactions"][0]
    interaction["request"]["uri"] += "?tenant=FAKE-tenant-0001"
    interaction["request"]["headers"]["X-Session-Ref"] = ["FAKE-session-ref-0001"]
    interaction["response"]["headers"]["X-Trace-Ref"] = ["FAKE-trace-ref-0001"]
    path.write_text(json.dumps(document))
    return path


FILTERS = (
    "[pytest]\nchatresp_filter_request_headers = x-session-ref\n"
    "chatresp_filter_response_headers = x-trace-ref\n"
    "chatresp_filter_query_parameters = tenant\n"
)


def test_scrub_and_audit_honour_the_filter_settings(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    path = filtered_cassette(pytester.path / "cassettes/old.yaml")
    assert run(capsys, "scrub", "--dry-run", "cassettes") == (0, "clean cassettes/old.yaml\n", "")
    assert run(capsys, "audit") == (0, "1 file audited: nothing flagged\n", "")
    (pytester.path / "pytest.ini").write_text(FILTERS)
    status, out, _ = run(capsys, "audit")
    assert status == 1
    assert out.splitlines() == [
        "cassettes/old.yaml: query parameter tenant: should not be recorded "
        "(chatresp scrub removes it)",
        "cassettes/old.yaml: request header x-session-ref: should not be recorded "
        "(chatresp scrub removes it)",
        "cassettes/old.yaml: response header x-trace-ref: should not be recorded "
        "(chatresp scrub removes it)",
        "1 file audited: see above",
    ]
    status, out, _ = run(capsys, "scrub", "cassettes")
    assert status == 0
    assert out.startswith("scrubbed cassettes/old.yaml: 3 values (")
    text = path.read_text()
    assert "FAKE-" not in text
    assert run(capsys, "scrub", "--dry-run", "cassettes") == (0, "clean cassettes/old.yaml\n", "")


def test_scrub_flags_add_to_the_filter_settings(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    filtered_cassette(pytester.path / "cassettes/old.yaml")
    (pytester.path / "pytest.ini").write_text(
        "[pytest]\nchatresp_filter_request_headers = x-session-ref\n"
    )
    status, out, _ = run(capsys, "scrub", "--dry-run", "--query", "tenant", "cassettes")
    assert status == 1
    assert out == (
        "would scrub cassettes/old.yaml: 2 values (query parameter tenant, "
        "request header x-session-ref)\n"
    )


# --- one discovery ----------------------------------------------------------------------------


@POSIX
def test_the_command_and_check_mode_discover_the_same_files(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    root = pytester.path
    cassettes = root / "cassettes"
    outside = write_cassette(root / "outside/kept.yaml", completion())
    for name in ("a.yaml", "b.yml", "c.json", "nested/deeper/d.yaml", "real/e.yaml"):
        write_cassette(cassettes / name, completion())
    write_cassette(cassettes / ".hidden/skipped.yaml", completion())
    (cassettes / "a.shape.yaml").write_text("model: gpt-4o-mini\n")
    (cassettes / ".a.yaml.chatresp-99999-abc123.tmp").write_text("partial")
    (cassettes / "notes.txt").write_text("not a cassette")
    (cassettes / "linked.yaml").symlink_to(outside)  # a link to a file: read
    (cassettes / "alias").symlink_to(cassettes / "real")  # a link to a directory: not entered
    (cassettes / "away").symlink_to(root / "outside")
    os.mkfifo(cassettes / "pipe.yaml")  # listed, and refused by the reader by name
    expected = [
        "cassettes/a.yaml",
        "cassettes/b.yml",
        "cassettes/c.json",
        "cassettes/linked.yaml",
        "cassettes/pipe.yaml",
        "cassettes/nested/deeper/d.yaml",
        "cassettes/real/e.yaml",
    ]
    # The one discovery, directly.
    listed = [path.relative_to(root).as_posix() for path in cassette_files(cassettes)]
    assert listed == expected
    assert [str(p) for p in find(["cassettes"]).paths] == expected
    every = [p for p in cassettes.rglob("*") if not p.is_dir() or p.is_symlink()]
    every += [cassettes / "alias/e.yaml", cassettes / "away/kept.yaml"]
    assert sorted(p.relative_to(root).as_posix() for p in every if is_cassette(p, cassettes)) == (
        sorted(expected)
    )
    # The command.
    status, out, _ = run(capsys, "check", "--json")
    assert status == 1  # the FIFO
    assert [entry["path"] for entry in json.loads(out)["files"]] == expected
    # pytest's --chatresp-collect-cassettes, which walks the tree its own way (it enters linked directories).
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--chatresp-collect-cassettes", "--collect-only", "-q"
    )
    collected = [line.split("::")[0] for line in result.outlines if "::contract" in line]
    assert sorted(collected) == sorted(expected)
    checked = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-collect-cassettes")
    checked.assert_outcomes(passed=6, failed=1)
    checked.stdout.fnmatch_lines(
        ["*cassettes/pipe.yaml: is a FIFO (named pipe), not a cassette file"]
    )


def test_a_shape_file_or_partial_write_named_directly_is_skipped(tmp_path: Path) -> None:
    shape = tmp_path / "x.shape.yaml"
    shape.write_text("model: gpt-4o-mini\n")
    partial = tmp_path / ".x.yaml.chatresp-4242-abc.tmp"
    partial.write_text("partial")
    plain = write_cassette(tmp_path / "x.yaml", completion())
    assert find([shape, partial, plain, tmp_path]).paths == [plain]


# --- orphans ----------------------------------------------------------------------------------


def test_pytest_has_no_plumbing_option_for_orphans(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert not [line for line in result.outlines if "list-cassettes" in line]
    assert "--chatresp-collect-cassettes" in result.stdout.str()


def test_orphans_follow_the_configured_cassette_dir_and_skip_what_discovery_skips(
    pytester: pytest.Pytester,
) -> None:
    root = pytester.path
    (root / "pytest.ini").write_text("[pytest]\nchatresp_cassette_dir = recordings\n")
    write_cassette(root / "recordings/test_it/test_used.yaml", completion())
    write_cassette(root / "recordings/test_it/test_gone.yaml", completion())
    write_cassette(root / "recordings/.old/ignored.yaml", completion())
    write_cassette(root / "cassettes/test_it/test_elsewhere.yaml", completion())
    (root / "recordings/test_it/test_used.shape.yaml").write_text("model: gpt-4o-mini\n")
    (root / "test_it.py").write_text(
        "import pytest\n\n"
        "def test_used(chat_completion):\n    pass\n\n"
        "@pytest.mark.chat_cassette('test_it/test_new.yaml')\n"
        "def test_new():\n    pass\n\n"
        "def test_plain():\n    pass\n"
    )
    done = chatresp(root, "check", "--orphans")
    assert (done.returncode, done.stderr) == (1, ""), done.stdout
    # cassettes/ beside test_it.py is that module's folder in pytest-recording's layout
    assert done.stdout.splitlines() == [
        "orphan: recordings/test_it/test_gone.yaml",
        "orphan: cassettes/test_it/test_elsewhere.yaml",
        "2 orphans of 3 cassette files in recordings, cassettes (2 used by the collected tests)",
    ]
    assert not list(root.glob("*.json"))  # nothing written beside the project
    # Test paths narrow the collection: then test_used's cassette is an orphan too.
    (root / "test_other.py").write_text("def test_other(chat_cassette):\n    pass\n")
    done = chatresp(root, "check", "--orphans", "test_other.py")
    assert done.stdout.splitlines()[-1] == (
        "3 orphans of 3 cassette files in recordings, cassettes (1 used by the collected tests)"
    )


def test_orphans_give_no_verdict_when_collection_fails(pytester: pytest.Pytester) -> None:
    root = pytester.path
    write_cassette(root / "cassettes/test_broken/test_one.yaml", completion())
    (root / "test_broken.py").write_text(
        "import no_such_module_here\n\ndef test_one(chat_completion):\n    pass\n"
    )
    (root / "test_fine.py").write_text("def test_listed(chat_completion):\n    pass\n")
    done = chatresp(root, "check", "--orphans")
    assert done.returncode == 1
    assert "orphan" not in done.stdout
    lines = done.stderr.splitlines()
    assert lines[0] == "chatresp: pytest could not collect the tests (exit 2):"
    assert "ERRORS" in lines[1]  # what went wrong, not the ids collected before it
    assert any("no_such_module_here" in line for line in lines)
    assert not any("test_listed" in line for line in lines)
    assert "PytestAssertRewriteWarning" not in done.stderr
