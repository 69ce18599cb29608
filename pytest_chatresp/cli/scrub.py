"""``chatresp scrub``: remove secrets from cassettes already written, by the recording rules."""

from __future__ import annotations

import argparse
import os
from typing import Any

from pytest_chatresp.errors import display_path

from .output import EXIT_FAILED, EXIT_OK, PROG, err, failure, out
from .project import cassettes_named, project_settings, scrub_rules

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    scrub = commands.add_parser(
        "scrub",
        help="remove secrets from cassettes already written",
        description="Replace secrets with REDACTED, in place, by the recording rules: secret "
        "request and response headers, secret query parameters (with the project's "
        "chatresp_filter_* settings), URL userinfo, strings shaped like an OpenAI key (sk-...) "
        "and the values of environment variables named *_KEY, *_APIKEY, *_TOKEN, *_SECRET or "
        "*_PASSWORD, bodies decoded. Everything else in the file is kept as it was.",
    )
    scrub.add_argument(
        "cassettes", nargs="+", metavar="CASSETTE", help="cassette files or directories"
    )
    scrub.add_argument(
        "--dry-run",
        action="store_true",
        help="write nothing; exit 1 if a file holds something to scrub",
    )
    scrub.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME",
        help="another request or response header to scrub (repeatable; adds to the "
        "chatresp_filter_*_headers settings)",
    )
    scrub.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="NAME",
        help="another query parameter to scrub (repeatable; adds to "
        "chatresp_filter_query_parameters)",
    )
    scrub.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pytest_chatresp.files import write_atomically
    from pytest_chatresp.hygiene.scrub import scrub_file

    settings = project_settings(args)
    files = cassettes_named(args.cassettes, settings, links=True)
    rules = scrub_rules(settings, headers=args.header, query_parameters=args.query)
    status = EXIT_OK
    for problem in files.problems:
        err(f"{PROG}: {problem}")
        status = EXIT_FAILED
    scrubbed = {os.path.realpath(path) for path in files.paths if not path.is_symlink()}
    for path in files.paths:
        shown = display_path(path)
        if path.is_symlink():
            # Never read or written through: the file it points to may be anywhere.
            target = os.path.realpath(path)
            if target in scrubbed:
                out(f"skipped {shown}: a symbolic link to {display_path(target)}, scrubbed there")
            else:
                out(
                    f"{shown}: a symbolic link to {display_path(target)}, outside the paths "
                    "given: not followed, not scrubbed (scrub the file it points to)"
                )
                status = EXIT_FAILED
            continue
        try:
            result = scrub_file(path, rules)
            if result.changed and not args.dry_run:
                assert result.text is not None
                write_atomically(path, result.text)
        except Exception as exc:  # one file's failure must not stop the others
            out(failure(exc, shown, "cannot scrub"))
            status = EXIT_FAILED
            continue
        if not result.changed:
            out(f"clean {shown}")
        elif args.dry_run:
            out(f"would scrub {shown}: {result.describe()}")
            status = EXIT_FAILED
        else:
            out(f"scrubbed {shown}: {result.describe()}")
    if not files.paths and not files.problems:
        err(f"{PROG}: no cassette files found in {', '.join(args.cassettes)}")
    return status
