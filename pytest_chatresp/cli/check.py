"""``chatresp check``: validate every chat completion in cassette files and directories."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pytest_chatresp.errors import display_path

from .output import EXIT_FAILED, EXIT_OK, PROG, UsageError, err, failure, out, plural
from .project import ProjectSettings, cassettes_named, project_settings

if TYPE_CHECKING:
    from pytest_chatresp.checks import Rules
    from pytest_chatresp.errors import Violation

__all__ = ["add_parser"]

_PROGRESS_MIN_FILES = 20


def add_parser(commands: Any) -> None:
    check = commands.add_parser(
        "check",
        help="validate every chat completion in cassette files and directories",
        description="Validate every chat completion in cassette files and directories "
        "(recursively: *.yaml, *.yml, *.json; *.shape.yaml files, dot directories and "
        "links to directories are skipped), with the project's settings (chatresp_allow, "
        "chatresp_skip_checks, chatresp_strict) unless a flag overrides them. One line per "
        "violation and per unreadable file, then the totals.",
    )
    check.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="cassette files or directories (default: the project's chatresp_cassette_dir, "
        "cassettes)",
    )
    check.add_argument("--strict", action="store_true", default=None, help="strict validation")
    check.add_argument(
        "--skip-checks",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help="contract checks to skip, by name (repeatable; instead of chatresp_skip_checks)",
    )
    check.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a deviation to accept, as ini chatresp_allow (repeatable; instead of the ini's)",
    )
    check.add_argument(
        "--orphans",
        action="store_true",
        help="list cassette files under the cassette dir that no collected test uses (collects "
        "the tests with pytest; PATHs are then test paths)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("-q", "--quiet", action="store_true", help="print the totals line only")
    check.set_defaults(handler=run)


# --- one file -----------------------------------------------------------------------------------


@dataclass
class _FileResult:
    path: str
    exchanges: int = 0
    completions: int = 0
    streamed: int = 0
    errors: int = 0
    invalid: int = 0
    violations: list[Violation] = field(default_factory=list)
    unreadable: str | None = None
    #: Exchanges by kind (``Exchange.kind``).
    kinds: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        if self.unreadable is not None:
            return self.unreadable.splitlines()
        return [str(violation) for violation in self.violations]

    def as_data(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "exchanges": self.exchanges,
            "completions": self.completions,
            "streamed": self.streamed,
            "errors": self.errors,
            "kinds": dict(sorted(self.kinds.items())),
            "violations": [
                {"index": v.index, "field": v.field, "message": v.message, "check": v.check}
                for v in self.violations
            ],
            "unreadable": self.unreadable,
        }


def _result(path: Path, rules: Rules) -> _FileResult:
    from pytest_chatresp.cassette import load_cassette

    shown = display_path(path)
    result = _FileResult(shown)
    try:
        cassette = load_cassette(path, rules=rules)
    except Exception as exc:  # one file's failure must not hide the other files' results
        result.unreadable = failure(exc, shown, "cannot read the file")
        return result
    for exchange in cassette.exchanges:
        result.exchanges += 1
        result.kinds[exchange.kind] += 1
        if exchange.error is not None:
            result.errors += 1
        elif exchange.is_completion:
            result.completions += 1
            result.streamed += exchange.streamed
        if exchange.violations:
            result.invalid += 1
            result.violations.extend(exchange.violations)
    return result


# --- the run ------------------------------------------------------------------------------------


@dataclass
class _Totals:
    files: int = 0
    exchanges: int = 0
    completions: int = 0
    streamed: int = 0
    errors: int = 0
    unreadable: int = 0
    invalid: int = 0
    violations: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, result: _FileResult) -> None:
        self.files += 1
        self.kinds.update(result.kinds)
        self.exchanges += result.exchanges
        self.completions += result.completions
        self.streamed += result.streamed
        self.errors += result.errors
        self.unreadable += result.unreadable is not None
        self.invalid += result.invalid
        self.violations += len(result.violations)

    @property
    def ok(self) -> bool:
        return not self.unreadable and not self.invalid

    def line(self) -> str:
        return (
            f"{plural(self.files, 'file')}, {plural(self.exchanges, 'exchange')}, "
            f"{plural(self.completions, 'chat completion')} ({self.streamed} streamed), "
            f"{plural(self.errors, 'error response')}, "
            + "".join(f"{plural(n, kind + ' exchange')}, " for kind, n in self._others())
            + f"{plural(self.unreadable, 'unreadable file')}, "
            f"{plural(self.invalid, 'invalid completion')}"
        )

    def _others(self) -> list[tuple[str, int]]:
        """Exchanges neither chat completions nor errors, by kind: Responses API, embeddings…"""
        from pytest_chatresp.cassette import EXCHANGE_KINDS

        others = [kind for kind in EXCHANGE_KINDS if "chat" not in kind and kind != "error"]
        return [(kind, self.kinds[kind]) for kind in others if self.kinds[kind]]

    def as_data(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "exchanges": self.exchanges,
            "completions": self.completions,
            "streamed": self.streamed,
            "errors": self.errors,
            "kinds": dict(sorted(self.kinds.items())),
            "unreadable": self.unreadable,
            "invalid": self.invalid,
            "violations": self.violations,
            "ok": self.ok,
        }


class _Progress:
    """``checking 37/120 …`` on a terminal's stderr, rewritten in place and cleared at the end."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.shown = False
        self.enabled = total > _PROGRESS_MIN_FILES and _is_terminal(sys.stderr)

    def update(self, done: int) -> None:
        if self.enabled:
            sys.stderr.write(f"\r checking {done}/{self.total} …")
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * (len(f" checking {self.total}/{self.total} …") + 1))
            sys.stderr.write("\r")
            sys.stderr.flush()
            self.shown = False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _skip_checks(values: Sequence[str], where: str) -> frozenset[str]:
    from pytest_chatresp.checks import CHECKS

    names = {name.strip() for value in values for name in value.replace(",", " ").split()}
    unknown = sorted(name for name in names if name not in CHECKS)
    if unknown:
        raise UsageError(
            f"unknown check{'s' if len(unknown) > 1 else ''} for {where}: "
            f"{', '.join(unknown)}; the checks are {', '.join(CHECKS)}"
        )
    return frozenset(names)


def _allowances(lines: Sequence[str], where: str) -> tuple[Any, ...]:
    from pytest_chatresp.providers import parse_allowances

    try:
        return parse_allowances(list(lines))
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


def _rules(args: argparse.Namespace, settings: ProjectSettings) -> Rules:
    from pytest_chatresp.checks import Rules

    return Rules(
        strict=settings.strict,
        skip_checks=_skip_checks(
            settings.skip_checks, "--skip-checks" if args.skip_checks else "chatresp_skip_checks"
        ),
        allow=_allowances(settings.allow, "--allow" if args.allow else "chatresp_allow"),
        for_command=True,
    )


def run(args: argparse.Namespace) -> int:
    settings = project_settings(args)
    if args.orphans:
        from .orphans import run_orphans

        return run_orphans(args.paths)
    rules = _rules(args, settings)
    files = cassettes_named(args.paths, settings)
    totals = _Totals()
    results: list[_FileResult] = []
    progress = _Progress(len(files.paths))
    try:
        for position, path in enumerate(files.paths, start=1):
            progress.update(position)
            result = _result(path, rules)
            totals.add(result)
            if args.json:
                results.append(result)
            elif not args.quiet and result.lines():
                progress.clear()
                for line in result.lines():
                    out(line)
    finally:
        progress.clear()
    for problem in files.problems:
        err(f"{PROG}: {problem}")
    if args.json:
        document = {"files": [r.as_data() for r in results], "totals": totals.as_data()}
        out(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        out(totals.line())
    if not files.paths and not files.problems:
        shown = ", ".join(args.paths) if args.paths else display_path(settings.cassette_dir)
        err(f"{PROG}: no cassette files found in {shown}")
    return EXIT_OK if totals.ok and not files.problems else EXIT_FAILED
