"""The README's examples, run: what it shows is what the product does."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pytest_chatresp.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def console_blocks() -> list[tuple[str, list[str]]]:
    """``$ chatresp …`` commands of the README's text blocks on the shipped cassettes."""
    found = []
    for block in re.findall(r"```text\n(.*?)```", README, flags=re.S):
        lines = [line.removeprefix("  ") for line in block.splitlines()]
        while lines and not lines[-1].strip():
            lines.pop()
        shipped = " cassettes" in (lines[0] if lines else "")
        if lines and lines[0].startswith("$ chatresp ") and shipped:
            found.append((lines[0][2:], lines[1:]))
    return found


@pytest.mark.parametrize(("command", "expected"), console_blocks(), ids=lambda v: str(v)[:40])
def test_console_examples(
    command: str,
    expected: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    main(shlex.split(command)[1:])
    assert capsys.readouterr().out.splitlines() == expected


def test_there_are_console_examples() -> None:
    assert len(console_blocks()) >= 2


def test_the_two_set_up_commands_are_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    block = re.search(r"```console\n(python3 -m venv .*?)```", README, flags=re.S)
    assert block is not None
    first, second = block.group(1).strip().splitlines()
    assert first.endswith(".venv/bin/pytest examples")
    assert second == ".venv/bin/pytest"
    assert ".venv/bin/pytest examples\n" in ci
    assert ci.rstrip().endswith(".venv/bin/pytest")


def test_every_option_and_ini_key_is_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    names = set(re.findall(r"(--chatresp-[a-z-]+|chatresp_[a-z_]+)", result.stdout.str()))
    assert names, "the help lists the plugin's options"
    missing = sorted(name for name in names if f"`{name}" not in README)
    assert not missing, f"not in the README: {missing}"
