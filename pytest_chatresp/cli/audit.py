"""``chatresp audit``: flag what a cassette should not hold (reads only)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pytest_chatresp.errors import display_path

from .output import EXIT_FAILED, EXIT_OK, PROG, UsageError, err, failure, out
from .project import cassettes_named, project_settings, scrub_rules

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    audit = commands.add_parser(
        "audit",
        help="flag secrets, org and project ids, cookies and oversized bodies",
        description="Flag what a cassette should not hold, in any cassette, including ones "
        "recorded before the plugin: secrets (by the recording rules and the project's "
        "chatresp_filter_* settings), organisation and project ids, cookies, and bodies larger "
        "than a threshold. Reads only; chatresp scrub removes secrets.",
    )
    audit.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="cassette files or directories (default: the project's chatresp_cassette_dir, "
        "cassettes)",
    )
    audit.add_argument(
        "--max-body-kb",
        type=int,
        default=100,
        metavar="KB",
        help="flag request or response bodies larger than this (default: 100)",
    )
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pytest_chatresp.hygiene.audit import audit_file

    if args.max_body_kb < 1:
        raise UsageError("--max-body-kb must be 1 or more")
    settings = project_settings(args)
    files = cassettes_named(args.paths, settings)
    rules = scrub_rules(settings)
    status = EXIT_FAILED if files.problems else EXIT_OK
    for problem in files.problems:
        err(f"{PROG}: {problem}")
    findings: list[dict[str, Any]] = []
    for path in files.paths:
        try:
            found = audit_file(path, rules=rules, max_body_bytes=args.max_body_kb * 1024)
        except Exception as exc:  # one file's failure must not stop the others
            out(failure(exc, display_path(path), "cannot read the file"))
            status = EXIT_FAILED
            continue
        for finding in found:
            status = EXIT_FAILED
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
                out(str(finding))
    if args.json:
        out(json.dumps({"findings": findings, "files": len(files.paths)}, indent=2))
    else:
        flagged = "nothing flagged" if status == EXIT_OK else "see above"
        out(f"{len(files.paths)} file{'' if len(files.paths) == 1 else 's'} audited: {flagged}")
    return status
