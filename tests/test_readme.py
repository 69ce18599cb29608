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
    assert second == ".venv/bin/pytest -n auto"
    assert ".venv/bin/pytest examples\n" in ci
    assert ci.rstrip().endswith(".venv/bin/pytest -n auto")


def test_every_option_and_ini_key_is_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    names = set(re.findall(r"(--chatresp-[a-z-]+|chatresp_[a-z_]+)", result.stdout.str()))
    assert names, "the help lists the plugin's options"
    missing = sorted(name for name in names if f"`{name}" not in README)
    assert not missing, f"not in the README: {missing}"


def settings_table(readme: str = README) -> list[list[str]]:
    start = readme.index("| command line | ini | marker | default | meaning |")
    rows = []
    for line in readme[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _plain(cell: str) -> str:
    """A table cell without Markdown: code spans and links as their text."""
    return re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", cell).replace("`", "")


def _default_cell(default: object) -> str:
    if isinstance(default, bool):
        return "true" if default else "false"
    if default is None or default == ():
        return ""
    return f"`{default}`"


def settings_table_mismatches(rows: list[list[str]]) -> list[str]:
    """How the table differs from ``SETTINGS``: it must hold one row per setting, in declared
    order, none missing and none extra: its option (with the value's name), its ini key beside
    it, the marker, the default and the meaning ``--help`` gives."""
    from pytest_chatresp.settings import SETTINGS

    options = [row[0].strip("`").split("=")[0] for row in rows]
    declared = [spec.option for spec in SETTINGS]
    if options != declared:
        missing = [option for option in declared if option not in options]
        extra = [option for option in options if option not in declared]
        return [f"rows {options}, settings {declared}: missing {missing}, extra {extra}"]
    problems = []
    for row, spec in zip(rows, SETTINGS, strict=True):
        value = f"={spec.metavar}" if spec.kind != "bool" else ""
        marker = ("yes (adds)" if spec.marker_adds else "yes") if spec.marker else ""
        expected = [
            f"`{spec.option}{value}`",
            f"`{spec.ini_key}`" if spec.ini else "",
            marker,
            _default_cell(spec.default),
        ]
        if row[:4] != expected:
            problems.append(f"{spec.name}: {row[:4]} != {expected}")
        # The README may say more after a "; ", never something else.
        if _plain(row[4]).split("; ")[0] != spec.help.split("; ")[0]:
            problems.append(f"{spec.name}: meaning {row[4]!r} is not the help {spec.help!r}")
    return problems


def test_the_settings_table_is_every_setting() -> None:
    assert settings_table_mismatches(settings_table()) == []


def test_the_settings_table_comparison_sees_a_missing_an_extra_or_a_wrong_row() -> None:
    lines = README.splitlines(keepends=True)
    header = lines.index("| command line | ini | marker | default | meaning |\n")
    first, last = header + 2, header + 2 + len(settings_table()) - 1
    last_option = settings_table()[-1][0].strip("`").split("=")[0]
    missing = "".join(lines[:last] + lines[last + 1 :])
    extra = "".join([*lines[: last + 1], "| `--chatresp-gone` |  |  | false | gone |\n"])
    row = lines[first].replace("`chatresp_cassette_dir`", "")
    no_ini = "".join([*lines[:first], row, *lines[first + 1 :]])
    for readme, expected in (
        (missing, f"missing ['{last_option}'], extra []"),
        (extra, "missing [], extra ['--chatresp-gone']"),
        (no_ini, "cassette_dir: "),
    ):
        problems = settings_table_mismatches(settings_table(readme))
        assert len(problems) == 1, problems
        assert expected in problems[0]


def migration_files() -> dict[str, str]:
    """The migration guide's example: each file after its ``<!-- migration: PATH -->`` comment."""
    found = re.findall(r"<!-- migration: (\S+) -->\n```[a-z]+\n(.*?)```", README, flags=re.S)
    return dict(found)


def test_the_migration_example_replays_pytest_recordings_cassette(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = migration_files()
    assert sorted(files) == [
        "tests/cassettes/test_weather/test_forecast.yaml",
        "tests/conftest.py",
        "tests/test_weather.py",
    ]
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-block-network")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["total: 1 chat completions (0 read, 1 replayed, 0 recorded)*"])
    checked = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-collect-cassettes", "-v")
    checked.stdout.fnmatch_lines(
        ["tests/cassettes/test_weather/test_forecast.yaml::contract PASSED*"]
    )


BENCHMARK_BEGIN = "<!-- benchmark-table:begin -->"
BENCHMARK_END = "<!-- benchmark-table:end -->"


def benchmark_targets() -> list[str]:
    """The keys of ``TARGETS`` in benchmarks/run.py, read without running it."""
    import ast

    tree = ast.parse((ROOT / "benchmarks" / "run.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "TARGETS":
            assert isinstance(node.value, ast.Dict)
            return [ast.literal_eval(key) for key in node.value.keys if key is not None]
    raise AssertionError("benchmarks/run.py declares no TARGETS")


def test_the_performance_table_is_written_by_the_benchmark() -> None:
    assert README.count(BENCHMARK_BEGIN) == 1
    assert README.count(BENCHMARK_END) == 1
    start, end = README.index(BENCHMARK_BEGIN), README.index(BENCHMARK_END)
    assert start < end
    block = README[start:end].splitlines()
    header = "| measure | target | measured | met | medians (min\u2013max) |"
    assert header in block
    rows = [line for line in block[block.index(header) + 2 :] if line.startswith("|")]
    keys = [re.match(r"\| \*\*([A-Za-z0-9-]+)\*\* ", row) for row in rows]
    assert all(keys), rows
    assert [key.group(1) for key in keys if key] == benchmark_targets()
    met = [row.split(" | ")[3] for row in rows]
    assert set(met) <= {"yes", "**no**"}
    assert f"**{met.count('yes')} of {len(rows)} targets met" in README[start:end]


def test_the_performance_prose_holds_no_typed_figures() -> None:
    section = README[README.index("## Performance\n") : README.index(BENCHMARK_BEGIN)]
    section += README[README.index(BENCHMARK_END) : README.index("### The cache")]
    figures = re.findall(r"\d[\d.,]*\s*(?:\u00d7|x\b|ms\b|µs|s\b|%)", section)
    assert not figures, f"figures typed by hand outside the generated table: {figures}"
