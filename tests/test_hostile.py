"""Hostile files: YAML bombs, cassettes that are not regular files, control characters, links.

Any file in the project tree may come from a stranger's pull request. Each one here gets the
plugin's own error, naming the file, from every entry point: the fixtures, replay under the
marker, ``--chatresp-collect-cassettes`` and each ``chatresp`` subcommand. Whatever would hang or exhaust
memory if its guard went missing runs in a child process, with a timeout (a guard against a
hang, not a timing assertion) and, for the bombs, a limit on its address space.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from helpers import completion, write_cassette

from pytest_chatresp.cassette import document as reader
from pytest_chatresp.cassette import load_cassette, read_cassette_bytes
from pytest_chatresp.cli import main
from pytest_chatresp.errors import CassetteError, printable

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, devices and rlimits")

#: Long enough for any run below to finish on a busy machine; a hang fails instead of waiting.
HANG = 120

CASSETTE_HEAD = """\
interactions:
- request:
    body: '{"model": "gpt-4o-mini", "messages": []}'
    headers:
      Content-Type: [application/json]
      X-Junk: *junk
    method: POST
    uri: https://api.openai.com/v1/chat/completions
  response:
    body: {string: '{"id": "chatcmpl-1", "object": "chat.completion", "created": 1764000000,
      "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant",
      "content": "hi"}, "finish_reason": "stop"}]}'}
    headers: {}
    status: {code: 200, message: OK}
version: 1
"""


def _with_junk(preamble: str) -> str:
    """A valid cassette whose first request header is ``*junk``, defined in ``preamble``."""
    return preamble + CASSETTE_HEAD


def laughs_bomb() -> str:
    """A billion laughs: 10**9 list items once expanded, from a file of 1 KB."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, 9)]
    return _with_junk("bomb:\n" + "".join(f"  {line}\n" for line in lines) + "junk: &junk [*l8]\n")


def merge_bomb() -> str:
    """Merge keys (``<<``) of mappings that merge the level below, ten times, nine deep."""
    lines = ["m0: &m0 {" + ", ".join(f"k{i}: v" for i in range(10)) + "}"]
    lines += [f"m{n}: &m{n} {{<<: [" + ", ".join([f"*m{n - 1}"] * 10) + "]}" for n in range(1, 9)]
    return _with_junk("bomb:\n" + "".join(f"  {line}\n" for line in lines) + "junk: &junk [*m8]\n")


def string_bomb() -> str:
    """A 1 MB file whose anchored string is referenced 3,000 times: 3 GB once expanded."""
    references = ", ".join(["*s"] * 3000)
    filler = "x" * (1_000_000 - len(references) - len(CASSETTE_HEAD) - 40)
    return _with_junk(f"s: &s {filler}\njunk: &junk [{references}]\n")


#: Line breaks YAML reads besides LF and CR: an anchor may follow any of them.
_BREAKS = {"nel": "\x85", "ls": "\u2028", "ps": "\u2029"}


def _broken_laughs_bomb(brk: str) -> Callable[[], str]:
    """A billion laughs in one flow sequence, each anchor right after ``brk``."""

    def bomb() -> str:
        parts = ["&l0 [" + ", ".join(["lol"] * 10) + "]"]
        parts += [f"&l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, 9)]
        parts.append("&junk [*l8]")
        return _with_junk("bomb: [" + ",".join(brk + part for part in parts) + "]\n")

    return bomb


def _broken_merge_bomb(brk: str) -> Callable[[], str]:
    """The merge-key bomb in one flow sequence, each anchor right after ``brk``."""

    def bomb() -> str:
        parts = ["&m0 {" + ", ".join(f"k{i}: v" for i in range(10)) + "}"]
        parts += [f"&m{n} {{<<: [" + ", ".join([f"*m{n - 1}"] * 10) + "]}" for n in range(1, 9)]
        parts.append("&junk [*m8]")
        return _with_junk("bomb: [" + ",".join(brk + part for part in parts) + "]\n")

    return bomb


BOMBS: dict[str, Callable[[], str]] = {
    "laughs": laughs_bomb,
    "merge": merge_bomb,
    "string": string_bomb,
    **{f"laughs-{name}": _broken_laughs_bomb(brk) for name, brk in _BREAKS.items()},
    **{f"merge-{name}": _broken_merge_bomb(brk) for name, brk in _BREAKS.items()},
}
BOMB_REFUSED = (
    "YAML aliases would expand it to more than * characters (a 'billion laughs' file?); not read"
)

_CHILD = """
import resource, sys, tracemalloc
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
from pytest_chatresp import CassetteError, load_cassette
load_cassette  # imported before measuring
tracemalloc.start()
try:
    load_cassette(sys.argv[1])
except CassetteError as exc:
    print(exc)
else:
    print("loaded")
print(tracemalloc.get_traced_memory()[1])
"""


@pytest.mark.parametrize("kind", BOMBS)
def test_a_bomb_is_refused_before_it_is_built(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMBS[kind]())
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=HANG,
        check=True,
    )
    message, peak = done.stdout.splitlines()
    assert "bomb.yaml: YAML aliases would expand it to more than " in message
    # The file's bytes and its node graph, a few times over: never the expanded document.
    assert int(peak) < 16 * len(path.read_bytes()) + 32 * 2**20


def test_a_few_anchors_still_load(tmp_path: Path) -> None:
    """PyYAML's dumper anchors a value used twice (vcrpy's headers, say): that file loads."""
    headers = {"Content-Type": ["application/json"], "X-Note": ["shared " * 50]}
    body = json.dumps(completion())
    interaction = {
        "request": {
            "method": "POST",
            "uri": "https://api.openai.com/v1/chat/completions",
            "body": "{}",
            "headers": headers,
        },
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": headers,
            "body": {"string": body},
        },
    }
    text = yaml.safe_dump({"interactions": [interaction] * 200, "version": 1})
    assert "&id001" in text
    assert "*id001" in text
    path = tmp_path / "anchored.yaml"
    path.write_text(text)
    assert len(load_cassette(path).completions) == 200


def test_a_cycle_is_sized_once(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(_with_junk("junk: &junk [a, *junk]\n"))
    exchange = load_cassette(path).exchanges[0]
    assert exchange.request.header("x-junk") is not None


def test_expansion_is_bounded_by_the_file_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the floor, the bound grows with the file: a larger file may repeat more."""
    monkeypatch.setattr(reader, "_EXPANSION_FLOOR", 1000)
    references = ", ".join(["*s"] * 100)
    repeated = _with_junk(f"s: &s {'y' * 100}\njunk: &junk [{references}]\n").encode()
    limit = f"{8 * len(repeated):,}"
    with pytest.raises(CassetteError, match=f"expand it to more than {limit} characters"):
        reader.read_document("small.yaml", repeated)
    padded = b"# " + b"p" * 4000 + b"\n" + repeated  # the same aliases in a larger file
    assert reader.read_document("padded.yaml", padded)["version"] == 1


# --- files that are not regular files -------------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _device(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _directory(path: Path) -> None:
    path.mkdir()


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "gone.yaml")


SPECIAL: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (_fifo, "is a FIFO (named pipe), not a cassette file"),
    "device": (_device, "is a device, not a cassette file"),
    "directory": (_directory, "is a directory, not a cassette file"),
    "dangling": (_dangling, "a symbolic link to */gone.yaml, which does not exist"),
}


@pytest.mark.parametrize("kind", SPECIAL)
def test_read_cassette_bytes_refuses_by_name(tmp_path: Path, kind: str) -> None:
    make, message = SPECIAL[kind]
    path = tmp_path / "odd.yaml"
    make(path)
    with pytest.raises(CassetteError) as caught:
        read_cassette_bytes(path)
    assert caught.value.path.endswith("odd.yaml")
    assert fnmatch.fnmatch(caught.value.violations[0].message, message)


def test_a_link_to_a_regular_file_is_read(tmp_path: Path) -> None:
    target = write_cassette(tmp_path / "shared" / "weather.yaml", completion())
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    assert read_cassette_bytes(link) == target.read_bytes()
    assert len(load_cassette(link).completions) == 1


def test_a_huge_file_is_refused_naming_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_cassette(tmp_path / "big.yaml", completion())
    monkeypatch.setattr(reader, "MAX_CASSETTE_BYTES", 1024 * 1024)
    assert read_cassette_bytes(path) == path.read_bytes()
    path.write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(CassetteError, match=r"more than the 1 MiB a cassette may hold"):
        read_cassette_bytes(path)


FIXTURE_TESTS = """
import pytest

def test_cassette(chat_cassette):
    pass

def test_completions(chat_completions):
    pass

def test_completion(chat_completion):
    pass

@pytest.mark.chat_cassette
def test_replay():
    pass
"""
FIXTURE_NAMES = ("test_cassette", "test_completions", "test_completion", "test_replay")


def _odd_cassettes(pytester: pytest.Pytester, make: Callable[[Path], None]) -> None:
    directory = pytester.path / "cassettes" / "test_odd"
    directory.mkdir(parents=True)
    for name in FIXTURE_NAMES:
        make(directory / f"{name}.yaml")


@pytest.mark.parametrize("kind", SPECIAL)
def test_fixtures_and_replay_refuse_a_file_that_is_not_regular(
    pytester: pytest.Pytester, kind: str
) -> None:
    make, message = SPECIAL[kind]
    _odd_cassettes(pytester, make)
    pytester.makepyfile(test_odd=FIXTURE_TESTS)
    result = pytester.runpytest_subprocess(timeout=HANG)
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(
        [f"*cassettes/test_odd/{name}.yaml: {message}" for name in FIXTURE_NAMES],
        consecutive=False,
    )


@pytest.mark.parametrize("kind", BOMBS)
def test_fixtures_and_replay_refuse_a_bomb(pytester: pytest.Pytester, kind: str) -> None:
    text = BOMBS[kind]()
    _odd_cassettes(pytester, lambda path: path.write_text(text))
    pytester.makepyfile(test_odd=FIXTURE_TESTS)
    result = pytester.runpytest_subprocess(timeout=HANG)
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(
        [f"*cassettes/test_odd/{name}.yaml: {BOMB_REFUSED}" for name in FIXTURE_NAMES]
    )


def test_check_mode_refuses_odd_files_and_bombs(pytester: pytest.Pytester) -> None:
    cassettes = pytester.path / "cassettes"
    cassettes.mkdir()
    write_cassette(cassettes / "good.yaml", completion())
    for kind in ("fifo", "device", "dangling"):
        SPECIAL[kind][0](cassettes / f"{kind}.yaml")
    for kind, bomb in BOMBS.items():
        (cassettes / f"{kind}.yaml").write_text(bomb())
    result = pytester.runpytest_subprocess(
        "--chatresp-collect-cassettes", "-p", "no:cacheprovider", timeout=HANG
    )
    result.assert_outcomes(passed=1, failed=3 + len(BOMBS))
    # The regular files as pytest collects them, then those it does not collect, in order.
    result.stdout.fnmatch_lines(
        [
            f"cassettes/laughs.yaml: {BOMB_REFUSED}",
            f"cassettes/merge.yaml: {BOMB_REFUSED}",
            f"cassettes/string.yaml: {BOMB_REFUSED}",
            "cassettes/dangling.yaml: a symbolic link to */cassettes/gone.yaml, which does not exist",
            f"cassettes/device.yaml: {SPECIAL['device'][1]}",
            f"cassettes/fifo.yaml: {SPECIAL['fifo'][1]}",
        ]
    )
    # Named on the command line, the cassette dir's odd files are checked all the same.
    named = pytester.runpytest_subprocess(
        "--chatresp-collect-cassettes", "-p", "no:cacheprovider", "cassettes", timeout=HANG
    )
    named.assert_outcomes(passed=1, failed=3 + len(BOMBS))
    named.stdout.fnmatch_lines([f"cassettes/fifo.yaml: {SPECIAL['fifo'][1]}"])


# --- the command ----------------------------------------------------------------------------


def chatresp(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a child process: a reader that blocked would fail the test, not hang it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_chatresp.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )


SUBCOMMANDS = (("check",), ("show",), ("scrub",), ("scrub", "--dry-run"), ("audit",))


@pytest.mark.parametrize("kind", ["fifo", "device", "dangling"])
def test_every_subcommand_refuses_a_file_that_is_not_regular(tmp_path: Path, kind: str) -> None:
    make, message = SPECIAL[kind]
    make(tmp_path / "odd.yaml")
    for subcommand in SUBCOMMANDS:
        done = chatresp(tmp_path, *subcommand, "odd.yaml")
        assert done.returncode == 1, (subcommand, done.stdout, done.stderr)
        output = (done.stdout + done.stderr).splitlines()
        if kind == "dangling":
            assert any(line.startswith("odd.yaml: a symbolic link to ") for line in output)
        elif subcommand[0] == "scrub" and kind == "device":  # a link: never followed
            assert output[0].startswith("odd.yaml: a symbolic link to /dev/zero, outside")
        else:
            assert f"odd.yaml: {message}" in output, subcommand


def test_a_directory_named_like_a_cassette_is_refused_by_show(tmp_path: Path) -> None:
    (tmp_path / "odd.yaml").mkdir()
    done = chatresp(tmp_path, "show", "odd.yaml")
    assert (done.returncode, done.stderr) == (
        2,
        "chatresp show: error: odd.yaml is a directory; show takes one cassette file\n",
    )


@pytest.mark.parametrize("kind", BOMBS)
def test_every_subcommand_refuses_a_bomb(tmp_path: Path, kind: str) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMBS[kind]())
    for subcommand in SUBCOMMANDS:
        done = chatresp(tmp_path, *subcommand, "bomb.yaml")
        assert done.returncode == 1, (subcommand, done.stdout, done.stderr)
        lines = (done.stdout + done.stderr).splitlines()
        assert any(
            line.startswith("bomb.yaml: YAML aliases would expand it to more than ")
            for line in lines
        ), (subcommand, lines)
    assert (tmp_path / "bomb.yaml").read_text() == BOMBS[kind]()


# --- control characters ---------------------------------------------------------------------

#: What a response could hold to act on a terminal: a title (OSC 0), a clipboard write (OSC 52),
#: a screen clear (CSI, 7-bit and as the C1 character), a carriage return and a bidi override.
HOSTILE = "\x1b]0;pwned\x07Sunny \x1b]52;c;ZWNobyBldmls\x07\x1b[2J\x9b2J\r\u202eok"
ESCAPED = "\\u001b]0;pwned\\u0007Sunny \\u001b]52;c;ZWNobyBldmls\\u0007\\u001b[2J\\u009b2J\\u000d\\u202eok"


def _is_clean(text: str) -> bool:
    return printable(text) == text


def test_printable_escapes_controls_and_keeps_newlines_and_tabs() -> None:
    assert printable(HOSTILE) == ESCAPED
    assert printable("line one\n\tline two é 字") == "line one\n\tline two é 字"
    assert json.loads(json.dumps(printable("\x9b"))) == "\\u009b"


def _hostile_cassettes(directory: Path) -> None:
    message = {"role": "assistant", "content": HOSTILE, "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    write_cassette(directory / "shown.yaml", completion(choices=[choice]))
    error = {"error": {"message": HOSTILE, "type": "invalid_request_error", "code": None}}
    write_cassette(directory / "error.yaml", error, status=400)
    write_cassette(directory / "bad.yaml", completion(model=HOSTILE, created="x"))
    write_cassette(directory / f"name{HOSTILE[:12]}.yaml", completion())


def test_show_escapes_control_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _hostile_cassettes(tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in ("shown.yaml", "error.yaml", "bad.yaml"):
        for json_output in ([], ["--json"]):
            assert main(["show", name, *json_output]) == 0
            out, err = capsys.readouterr()
            assert _is_clean(out + err), (name, json_output, out)
            if json_output:
                json.loads(out)
    assert main(["show", "shown.yaml"]) == 0
    assert "    [0] \\u001b]0;pwned\\u0007Sunny \\u001b]52;c;" in capsys.readouterr().out
    assert main(["show", "error.yaml"]) == 0
    assert "\\u001b]52;c;ZWNobyBldmls\\u0007" in capsys.readouterr().out


@pytest.mark.parametrize(
    "arguments",
    [["check"], ["check", "--json"], ["audit"], ["audit", "--json"], ["scrub", "--dry-run"]],
)
def test_check_audit_and_scrub_escape_control_characters(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
) -> None:
    _hostile_cassettes(tmp_path)
    (tmp_path / f"broken{HOSTILE[:12]}.yaml").write_text("interactions: [\n")
    monkeypatch.chdir(tmp_path)
    main([*arguments, "."])
    out, err = capsys.readouterr()
    assert _is_clean(out + err), out + err
    assert "broken\\u001b]0;pwned\\u0007Su.yaml" in out
    if arguments == ["check", "--json"]:
        json.loads(out)


def test_a_failure_message_escapes_control_characters(pytester: pytest.Pytester) -> None:
    arguments = json.dumps({"city": "\x9b2J\u202eParis"}, ensure_ascii=False)
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": arguments},
    }
    message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}
    model = "gpt-4o\x1b]0;pwned\x07"  # shown in the run's summary
    write_cassette(
        pytester.path / "cassettes" / "test_it" / "test_call.yaml",
        completion(choices=[choice], model=model),
    )
    pytester.makepyfile(
        test_it=textwrap.dedent(
            """
            from pytest_chatresp import assert_tool_call

            def test_call(chat_completion):
                assert_tool_call(chat_completion, "weather", arguments={"city": "Rome"})
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert _is_clean(output)
    result.stdout.fnmatch_lines(
        ['*found {"city": "\\u009b2J\\u202eParis"}*', "models: gpt-4o\\u001b]0;pwned\\u0007 (1)"]
    )


# --- scrub and symbolic links ---------------------------------------------------------------


def _secret_cassette(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = CASSETTE_HEAD.replace(
        "      X-Junk: *junk\n",
        "      Authorization: [Bearer sk-proj-FAKE000000000000000000000000000000000000]\n",
    )
    path.write_text(text)
    return path


def test_scrub_reports_a_link_outside_and_leaves_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = _secret_cassette(tmp_path / "elsewhere" / "private.yaml")
    before = outside.read_bytes()
    cassettes = tmp_path / "project" / "cassettes"
    inside = _secret_cassette(cassettes / "real.yaml")
    (cassettes / "a_outside.yaml").symlink_to(outside)
    (cassettes / "b_inside.yaml").symlink_to(inside)
    monkeypatch.chdir(tmp_path / "project")
    assert main(["scrub", "cassettes"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "cassettes/a_outside.yaml: a symbolic link to "
        f"{outside}, outside the paths given: not followed, not scrubbed "
        "(scrub the file it points to)"
    )
    assert (
        out[1]
        == "skipped cassettes/b_inside.yaml: a symbolic link to cassettes/real.yaml, scrubbed there"
    )
    assert out[2].startswith("scrubbed cassettes/real.yaml: ")
    assert outside.read_bytes() == before
    assert (cassettes / "a_outside.yaml").is_symlink()
    assert (cassettes / "b_inside.yaml").is_symlink()
    assert b"sk-proj-FAKE" not in inside.read_bytes()
    # Named on its own, a link is not followed either.
    assert main(["scrub", "cassettes/a_outside.yaml"]) == 1
    assert capsys.readouterr().out.startswith("cassettes/a_outside.yaml: a symbolic link to ")
    assert outside.read_bytes() == before
