"""The ``chatresp`` command: check, show and scrub cassette files outside pytest.

``chatresp check`` validates every chat completion in cassette files and directories,
``chatresp show`` prints what one cassette holds, exchange by exchange, and ``chatresp scrub``
removes secrets from cassettes already written, with the recording rules. Exit status: 0 when
all is well, 1 when a cassette is invalid, unreadable or (``scrub --check``) not clean, 2 on a
usage error. Every failure is a message, never a traceback.

The reader, the models and the YAML parser are imported when a command runs, not before, so
that ``chatresp --help`` starts at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .errors import CassetteError, display_path, printable, shorten
from .files import is_partial_write

if TYPE_CHECKING:
    from .cassette import Cassette, Exchange
    from .errors import Violation

__all__ = ["main"]

PROG = "chatresp"
DEFAULT_PATH = "cassettes"
_SUFFIXES = (".yaml", ".yml", ".json")
_PROGRESS_MIN_FILES = 20
_CONTENT_WIDTH = 100
_ARGUMENTS_WIDTH = 80
_EXIT_OK, _EXIT_FAILED, _EXIT_USAGE, _EXIT_INTERRUPTED = 0, 1, 2, 130


class _UsageError(Exception):
    """A usage error found after parsing (a path that does not exist): exit status 2."""


def _out(line: str = "") -> None:
    print(printable(line), file=sys.stdout)


def _err(line: str) -> None:
    print(printable(line), file=sys.stderr)


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-chatresp")
    except PackageNotFoundError:
        return "unknown"


# --- finding cassette files ---------------------------------------------------------------------


def _is_contract(path: Path) -> bool:
    from .contract import CONTRACT_SUFFIX

    return path.name.endswith(CONTRACT_SUFFIX)


@dataclass
class _Files:
    """The cassette files named on the command line, and the directories that could not be read."""

    paths: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _walk(root: Path, found: _Files) -> Iterator[Path]:
    def failed(error: OSError) -> None:
        where = display_path(error.filename) if error.filename else display_path(root)
        found.problems.append(f"{where}: cannot read the directory: {error.strerror}")

    for directory, subdirectories, names in os.walk(root, onerror=failed):
        # Hidden directories (.git, .venv, .tox …) hold no cassettes of the project's.
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        for name in sorted(names):
            if name.endswith(_SUFFIXES) and not is_partial_write(name):
                yield Path(directory) / name


def _key(path: Path) -> str:
    """The file a path names, to list each once."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return os.path.abspath(path)


def _collect(arguments: Sequence[str], *, links: bool = False) -> _Files:
    """Files and directories (recursively) to cassette files, in order, each once.

    Contract files (``*.contract.yaml``) are never cassettes and are skipped, even when named.
    With ``links``, a symbolic link is listed as itself, beside the file it points to.
    Raises :class:`_UsageError` for a path that does not exist.
    """
    found = _Files()
    missing = [argument for argument in arguments if not os.path.lexists(argument)]
    if missing:
        raise _UsageError("; ".join(f"no such file or directory: {m}" for m in missing))
    seen: set[str] = set()
    for argument in arguments:
        root = Path(argument)
        candidates = _walk(root, found) if root.is_dir() else iter([root])
        for path in candidates:
            if _is_contract(path):
                continue
            key = "link:" + os.path.abspath(path) if links and path.is_symlink() else _key(path)
            if key not in seen:
                seen.add(key)
                found.paths.append(path)
    return found


# --- check --------------------------------------------------------------------------------------


@dataclass
class _FileReport:
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


def _report(path: Path, rules: Any) -> _FileReport:
    from .cassette import load_cassette

    shown = display_path(path)
    report = _FileReport(shown)
    try:
        cassette = load_cassette(path, rules=rules)
    except CassetteError as exc:
        report.unreadable = str(exc)
        return report
    except OSError as exc:
        report.unreadable = f"{shown}: cannot read the file: {exc.strerror or exc}"
        return report
    except RecursionError:
        report.unreadable = f"{shown}: nested too deeply to read"
        return report
    except MemoryError:
        report.unreadable = f"{shown}: too large to read"
        return report
    except Exception as exc:  # the reader's bug must not hide the other files' results
        report.unreadable = f"{shown}: {_unexpected(exc)}"
        return report
    for exchange in cassette.exchanges:
        report.exchanges += 1
        report.kinds[exchange.kind] += 1
        if exchange.error is not None:
            report.errors += 1
        elif exchange.is_completion:
            report.completions += 1
            report.streamed += exchange.streamed
        if exchange.violations:
            report.invalid += 1
            report.violations.extend(exchange.violations)
    return report


def _unexpected(exc: BaseException) -> str:
    detail = shorten(str(exc), 200)
    return (
        f"unexpected error ({type(exc).__name__}{': ' + detail if detail else ''}); "
        "please report it to pytest-chatresp"
    )


@dataclass
class _Summary:
    files: int = 0
    exchanges: int = 0
    completions: int = 0
    streamed: int = 0
    errors: int = 0
    unreadable: int = 0
    invalid: int = 0
    violations: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, report: _FileReport) -> None:
        self.files += 1
        self.kinds.update(report.kinds)
        self.exchanges += report.exchanges
        self.completions += report.completions
        self.streamed += report.streamed
        self.errors += report.errors
        self.unreadable += report.unreadable is not None
        self.invalid += report.invalid
        self.violations += len(report.violations)

    @property
    def ok(self) -> bool:
        return not self.unreadable and not self.invalid

    def line(self) -> str:
        return (
            f"{_plural(self.files, 'file')}, {_plural(self.exchanges, 'exchange')}, "
            f"{_plural(self.completions, 'chat completion')} ({self.streamed} streamed), "
            f"{_plural(self.errors, 'error response')}, "
            + "".join(f"{_plural(n, kind + ' exchange')}, " for kind, n in self._others())
            + f"{_plural(self.unreadable, 'unreadable file')}, "
            f"{_plural(self.invalid, 'invalid completion')}"
        )

    def _others(self) -> list[tuple[str, int]]:
        """Exchanges neither chat completions nor errors, by kind: Responses API, embeddings…"""
        from .cassette import EXCHANGE_KINDS

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


def _skip_checks(values: Sequence[str]) -> frozenset[str]:
    from .checks import CHECKS

    names = {name.strip() for value in values for name in value.replace(",", " ").split()}
    unknown = sorted(name for name in names if name not in CHECKS)
    if unknown:
        raise _UsageError(
            f"unknown check{'s' if len(unknown) > 1 else ''} for --skip-checks: "
            f"{', '.join(unknown)}; the checks are {', '.join(CHECKS)}"
        )
    return frozenset(names)


def _allowances(lines: list[str]) -> tuple[Any, ...]:
    from .providers import parse_allowances

    try:
        return parse_allowances(lines)
    except ValueError as exc:
        raise _UsageError(f"--allow: {exc}") from None


def _orphans(args: argparse.Namespace) -> int:
    """Cassettes under the cassette dir that no collected test uses (pytest collects them)."""
    import subprocess
    import tempfile

    from .audit import orphans

    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch, "used.json")
        command = [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--chatresp-list-cassettes={listing}",
            *args.paths,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if not listing.is_file():
            _err(f"{PROG}: pytest could not collect the tests (exit {done.returncode}):")
            _err(done.stdout[-2000:] + done.stderr[-2000:])
            return _EXIT_FAILED
        data = json.loads(listing.read_text(encoding="utf-8"))
    cassette_dir = Path(data["cassette_dir"])
    used = {Path(p) for p in data["used"]}
    files = _collect([str(cassette_dir)]) if cassette_dir.is_dir() else None
    found = orphans(cassette_dir, used, files.paths if files else [])
    for path in found:
        _out(f"orphan: {display_path(path)}")
    total = len(files.paths) if files else 0
    _out(
        f"{len(found)} orphan{'' if len(found) == 1 else 's'} of {total} cassette files in "
        f"{display_path(cassette_dir)} ({len(used)} used by the collected tests)"
    )
    return _EXIT_FAILED if found else _EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from .checks import Rules

    if args.orphans:
        return _orphans(args)
    rules = Rules(
        strict=args.strict,
        skip_checks=_skip_checks(args.skip_checks),
        allow=_allowances(args.allow),
    )
    files = _collect(args.paths or [DEFAULT_PATH])
    summary = _Summary()
    reports: list[_FileReport] = []
    progress = _Progress(len(files.paths))
    try:
        for position, path in enumerate(files.paths, start=1):
            progress.update(position)
            report = _report(path, rules)
            summary.add(report)
            if args.json:
                reports.append(report)
            elif not args.quiet and report.lines():
                progress.clear()
                for line in report.lines():
                    _out(line)
    finally:
        progress.clear()
    for problem in files.problems:
        _err(f"{PROG}: {problem}")
    if args.json:
        document = {"files": [r.as_data() for r in reports], "summary": summary.as_data()}
        _out(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        _out(summary.line())
    if not files.paths and not files.problems:
        _err(f"{PROG}: no cassette files found in {', '.join(args.paths or [DEFAULT_PATH])}")
    return _EXIT_OK if summary.ok and not files.problems else _EXIT_FAILED


# --- show ---------------------------------------------------------------------------------------


def _first_line(text: str, width: int = _CONTENT_WIDTH) -> str:
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return shorten(first + (" …" if len(lines) > 1 else ""), width)


def _text_of(content: Any) -> str | None:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text") if isinstance(part, dict) else part
            for part in content
            if isinstance(part, dict | str)
        ]
        joined = " ".join(t for t in texts if isinstance(t, str))
        return joined or None
    return None


def _calls_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's tool calls (and a legacy ``function_call``) as ``{"name", "arguments"}``."""
    out: list[dict[str, Any]] = []
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        body = call.get("function")
        if not isinstance(body, dict):
            body = call.get("custom")
        if not isinstance(body, dict):
            body = {}
        arguments = body.get("arguments", body.get("input"))
        out.append({"name": body.get("name"), "arguments": arguments})
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and legacy.get("name"):
        out.append({"name": legacy.get("name"), "arguments": legacy.get("arguments")})
    return out


def _document(exchange: Exchange) -> dict[str, Any] | None:
    """The completion as the file holds it (merged, for a stream), valid or not."""
    document = exchange.merged if exchange.streamed else exchange.json
    return document if isinstance(document, dict) else None


def _exchange_data(exchange: Exchange) -> dict[str, Any]:
    """What ``show`` prints about an exchange, as data (the same keys for every exchange)."""
    request = exchange.request
    error = exchange.error
    data: dict[str, Any] = {
        "index": exchange.index,
        "method": request.method,
        "path": request.path,
        "status": exchange.status,
        "chat": exchange.is_chat,
        "kind": exchange.kind,
        "model_requested": None,
        "model_served": None,
        "service_tier": None,
        "finish_reasons": [],
        "usage": None,
        "streamed": exchange.streamed,
        "chunks": len(exchange.events) if exchange.streamed else None,
        "error": None,
        "violations": [],
        "choices": [],
    }
    if error is not None:
        data["error"] = {
            "status": error.status,
            "type": error.type,
            "code": error.code,
            "message": error.message,
            "text": str(error),
        }
    if not exchange.is_chat:
        return data
    data["model_requested"] = request.model
    data["violations"] = [
        {"field": v.field, "message": v.message, "check": v.check} for v in exchange.violations
    ]
    if error is not None:
        return data
    document = _document(exchange) or {}
    model, usage, choices = document.get("model"), document.get("usage"), document.get("choices")
    choices = [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []
    data["model_served"] = model if isinstance(model, str) else None
    data["service_tier"] = document.get("service_tier")
    data["finish_reasons"] = [choice.get("finish_reason") for choice in choices]
    if isinstance(usage, dict):
        keys = ("prompt_tokens", "completion_tokens", "total_tokens")
        data["usage"] = {key: usage.get(key) for key in keys}
    data["choices"] = [_choice_data(choice, position) for position, choice in enumerate(choices)]
    return data


def _choice_data(choice: dict[str, Any], position: int) -> dict[str, Any]:
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    index = choice.get("index")
    refusal = message.get("refusal")
    return {
        "index": index if isinstance(index, int) and not isinstance(index, bool) else position,
        "content": _text_of(message.get("content")),
        "refusal": refusal if isinstance(refusal, str) else None,
        "tool_calls": _calls_of(message),
    }


def _show_lines(data: dict[str, Any]) -> list[str]:
    status = "?" if data["status"] is None else data["status"]
    lines = [f"#{data['index']} {data['method']} {data['path'] or '/'} → {status}"]
    indent = "    "
    if not data["chat"]:
        lines.append(f"{indent}kind: {data['kind']}")
        if data["error"] is not None:
            lines.append(f"{indent}error: {data['error']['text']}")
        return lines
    requested, served = data["model_requested"], data["model_served"]
    if requested or served:
        model = f"{requested or '?'} → {served}" if served else str(requested)
        lines.append(f"{indent}model: {model}")
    error = data["error"]
    if error is not None:
        lines.append(f"{indent}error: {error['text']}")
        return lines
    if data["service_tier"] is not None:
        lines.append(f"{indent}tier: {data['service_tier']}")
    if data["finish_reasons"]:
        reasons = ", ".join(str(r) for r in data["finish_reasons"])
        lines.append(f"{indent}finish: {reasons}")
    usage = data["usage"]
    if usage is not None:
        prompt, completion, total = (
            usage["prompt_tokens"],
            usage["completion_tokens"],
            usage["total_tokens"],
        )
        lines.append(f"{indent}usage: {prompt} prompt + {completion} completion = {total} total")
    lines.append(
        f"{indent}streamed ({_plural(data['chunks'], 'chunk')})"
        if data["streamed"]
        else f"{indent}not streamed"
    )
    for violation in data["violations"]:
        where = f"{violation['field']}: " if violation["field"] else ""
        lines.append(f"{indent}invalid: {where}{violation['message']}")
    for choice in data["choices"]:
        label = f"{indent}[{choice['index']}]"
        calls = choice["tool_calls"]
        if choice["content"] and choice["content"].strip():
            lines.append(f"{label} {_first_line(choice['content'])}")
        elif choice["refusal"]:
            lines.append(f"{label} refusal: {_first_line(choice['refusal'])}")
        elif not calls:
            lines.append(f"{label} (no content)")
        for call in calls:
            arguments = call["arguments"]
            if not isinstance(arguments, str):
                arguments = "" if arguments is None else json.dumps(arguments)
            text = shorten(" ".join(arguments.split()), _ARGUMENTS_WIDTH)
            lines.append(f"{label} {call['name'] or '?'}({text})")
    return lines


def _load_one(argument: str) -> Cassette:
    from .cassette import load_cassette

    if not os.path.lexists(argument):
        raise _UsageError(f"no such file or directory: {argument}")
    if os.path.isdir(argument):
        raise _UsageError(f"{argument} is a directory; show takes one cassette file")
    return load_cassette(argument)  # refuses a FIFO, a device, a link to nothing, by name


def _show(args: argparse.Namespace) -> int:
    cassette = _load_one(args.cassette)
    exchanges = [_exchange_data(exchange) for exchange in cassette.exchanges]
    if args.json:
        document = {"path": display_path(cassette.path), "exchanges": exchanges}
        _out(json.dumps(document, indent=2, ensure_ascii=False, default=str))
        return _EXIT_OK
    if not exchanges:
        _out(f"{display_path(cassette.path)}: no exchanges")
    for data in exchanges:
        for line in _show_lines(data):
            _out(line)
    return _EXIT_OK


# --- scrub --------------------------------------------------------------------------------------


def _audit(args: argparse.Namespace) -> int:
    from .audit import audit_file
    from .scrub import ScrubRules

    if args.max_body_kb < 1:
        raise _UsageError("--max-body-kb must be 1 or more")
    files = _collect(args.paths or [DEFAULT_PATH])
    rules = ScrubRules.default()
    status = _EXIT_FAILED if files.problems else _EXIT_OK
    for problem in files.problems:
        _err(f"{PROG}: {problem}")
    findings: list[dict[str, Any]] = []
    for path in files.paths:
        try:
            found = audit_file(path, rules=rules, max_body_bytes=args.max_body_kb * 1024)
        except CassetteError as exc:
            _out(str(exc))
            status = _EXIT_FAILED
            continue
        except (OSError, RecursionError, MemoryError) as exc:
            _out(f"{display_path(path)}: {_unexpected(exc)}")
            status = _EXIT_FAILED
            continue
        for finding in found:
            status = _EXIT_FAILED
            if args.json:
                findings.append(
                    {
                        "path": finding.path,
                        "index": finding.index,
                        "where": finding.where,
                        "what": finding.what,
                    }
                )
            else:
                _out(str(finding))
    if args.json:
        _out(json.dumps({"findings": findings, "files": len(files.paths)}, indent=2))
    else:
        flagged = "nothing flagged" if status == _EXIT_OK else "see above"
        _out(f"{len(files.paths)} file{'' if len(files.paths) == 1 else 's'} audited: {flagged}")
    return status


def _scrub(args: argparse.Namespace) -> int:
    from .files import write_atomically
    from .scrub import ScrubRules, scrub_file

    files = _collect(args.cassettes, links=True)
    rules = ScrubRules.default(headers=args.header, query_parameters=args.query)
    status = _EXIT_OK
    for problem in files.problems:
        _err(f"{PROG}: {problem}")
        status = _EXIT_FAILED
    scrubbed = {_key(path) for path in files.paths if not path.is_symlink()}
    for path in files.paths:
        shown = display_path(path)
        if path.is_symlink():
            # Never read or written through: the file it points to may be anywhere.
            target = os.path.realpath(path)
            if target in scrubbed:
                _out(f"skipped {shown}: a symbolic link to {display_path(target)}, scrubbed there")
            else:
                _out(
                    f"{shown}: a symbolic link to {display_path(target)}, outside the paths "
                    "given: not followed, not scrubbed (scrub the file it points to)"
                )
                status = _EXIT_FAILED
            continue
        try:
            result = scrub_file(path, rules)
            if result.changed and not args.check:
                assert result.text is not None
                write_atomically(path, result.text)
        except CassetteError as exc:
            _out(str(exc))
            status = _EXIT_FAILED
            continue
        except OSError as exc:
            _out(f"{shown}: cannot scrub: {exc.strerror or exc}")
            status = _EXIT_FAILED
            continue
        except RecursionError:
            _out(f"{shown}: nested too deeply to read")
            status = _EXIT_FAILED
            continue
        except MemoryError:
            _out(f"{shown}: too large to read")
            status = _EXIT_FAILED
            continue
        except Exception as exc:  # one file's surprise must not stop the others
            _out(f"{shown}: {_unexpected(exc)}")
            status = _EXIT_FAILED
            continue
        if not result.changed:
            _out(f"clean {shown}")
        elif args.check:
            _out(f"would scrub {shown}: {result.describe()}")
            status = _EXIT_FAILED
        else:
            _out(f"scrubbed {shown}: {result.describe()}")
    if not files.paths and not files.problems:
        _err(f"{PROG}: no cassette files found in {', '.join(args.cassettes)}")
    return status


# --- the command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check, show and scrub recorded chat completion cassettes (vcrpy files).",
        epilog="Exit status: 0 all is well, 1 something is invalid, unreadable or not clean, "
        "2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        help="validate every chat completion in cassette files and directories",
        description="Validate every chat completion in cassette files and directories "
        "(recursively: *.yaml, *.yml, *.json; *.contract.yaml files are skipped). One line per "
        "violation and per unreadable file, then a summary.",
    )
    check.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help=f"cassette files or directories (default: {DEFAULT_PATH})",
    )
    check.add_argument("--strict", action="store_true", help="strict validation")
    check.add_argument(
        "--skip-checks",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help="contract checks to skip, by name (repeatable)",
    )
    check.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a deviation to accept, as ini chatresp_allow (repeatable)",
    )
    check.add_argument(
        "--orphans",
        action="store_true",
        help="list cassette files under the cassette dir that no collected test uses (runs "
        "pytest's collection here; PATHs are then test paths)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("-q", "--quiet", action="store_true", help="print the summary line only")
    check.set_defaults(handler=_check)

    audit = commands.add_parser(
        "audit",
        help="flag secrets, org and project ids, cookies and oversized bodies",
        description="Flag what a cassette should not hold, in any cassette, including ones "
        "recorded before the plugin: secrets, organisation and project ids, cookies, and "
        "bodies larger than a threshold. Reads only; chatresp scrub removes secrets.",
    )
    audit.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help=f"cassette files or directories (default: {DEFAULT_PATH})",
    )
    audit.add_argument(
        "--max-body-kb",
        type=int,
        default=100,
        metavar="KB",
        help="flag request or response bodies larger than this (default: 100)",
    )
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.set_defaults(handler=_audit)

    show = commands.add_parser(
        "show",
        help="print what a cassette holds, exchange by exchange",
        description="Print each exchange of a cassette: request, status, model, tier, finish "
        "reasons, usage, streaming, errors, violations and the start of each choice.",
    )
    show.add_argument("cassette", metavar="CASSETTE", help="a cassette file")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_show)

    scrub = commands.add_parser(
        "scrub",
        help="remove secrets from cassettes already written",
        description="Replace secrets with REDACTED, in place, by the recording rules: secret "
        "request and response headers, secret query parameters, URL userinfo, strings shaped "
        "like an OpenAI key (sk-...) and the values of environment variables named *_KEY, "
        "*_APIKEY, *_TOKEN, *_SECRET or *_PASSWORD, bodies decoded. Everything else in the "
        "file is kept as it was.",
    )
    scrub.add_argument(
        "cassettes", nargs="+", metavar="CASSETTE", help="cassette files or directories"
    )
    scrub.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a file holds something to scrub",
    )
    scrub.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME",
        help="another request or response header to scrub (repeatable)",
    )
    scrub.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="NAME",
        help="another query parameter to scrub (repeatable)",
    )
    scrub.set_defaults(handler=_scrub)
    return parser


def _tolerant_streams() -> None:
    """Characters the terminal cannot show are escaped rather than fatal."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError, TypeError):
                reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (the console script exits with it)."""
    _tolerant_streams()
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse's usage errors
        return exc.code if isinstance(exc.code, int) else _EXIT_USAGE if exc.code else _EXIT_OK
    try:
        status: int = args.handler(args)
    except _UsageError as exc:
        _err(f"{PROG} {args.command}: error: {exc}")
        return _EXIT_USAGE
    except CassetteError as exc:
        _err(str(exc))
        return _EXIT_FAILED
    except KeyboardInterrupt:
        _err(f"{PROG}: interrupted")
        return _EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return _EXIT_FAILED
    except OSError as exc:
        _err(f"{PROG}: {exc.strerror or exc}")
        return _EXIT_FAILED
    except (RecursionError, MemoryError) as exc:
        _err(f"{PROG}: {'nested too deeply' if isinstance(exc, RecursionError) else 'too large'}")
        return _EXIT_FAILED
    except Exception as exc:
        _err(f"{PROG}: {_unexpected(exc)}")
        return _EXIT_FAILED
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return _EXIT_FAILED
    except (OSError, ValueError):
        pass
    return status


def _silence_stdout() -> None:
    """After a closed pipe (``chatresp check | head``), keep the interpreter's exit quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
