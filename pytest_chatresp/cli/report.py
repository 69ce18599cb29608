"""``chatresp report``: merge the JSON reports of CI shards into the report of one run.

Each shard runs ``pytest --chatresp-report-json=SHARD.json`` (under pytest-xdist or not); this
command reads every shard's report, refuses reports that cannot be merged (malformed, of another
format or plugin version, tests run twice, cassettes that differ between shards), prints the
end-of-run summary the plugin prints and, with ``--json OUT``, writes the merged report, equal
to the one a serial run of all the shards' tests writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pytest_chatresp.errors import CassetteError, display_path

from .output import EXIT_FAILED, EXIT_OK, err, out

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to ``subparsers`` (``add_subparsers()``' result)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="merge the JSON reports of CI shards and print the summary",
        description="Merge the reports that pytest --chatresp-report-json wrote in CI shards "
        "into the report of one run of all their tests, and print its summary: totals, models, "
        "tiers, drift and the interactions no shard played.",
        epilog="Exit status: 0 merged, 1 a report is unreadable, malformed or not of the same "
        "run (or, with --unplayed fail, an interaction no shard played).",
    )
    parser.add_argument("reports", nargs="+", metavar="SHARD.json", help="the shards' reports")
    parser.add_argument("--json", metavar="OUT", help="write the merged report as JSON to OUT")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="one line per test, as pytest -v shows"
    )
    parser.add_argument(
        "--unplayed",
        choices=("warn", "ignore", "fail"),
        default="warn",
        help="interactions no shard played, as ini chatresp_unplayed: list them (warn, the "
        "default), hide them, or list them and exit 1 (fail)",
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Merge ``args.reports``; print the summary; write ``args.json``. The exit status."""
    from pytest_chatresp.shards import merge_reports, read_report

    paths = [Path(name) for name in args.reports]
    try:
        documents = [read_report(path) for path in paths]
        report = merge_reports(documents, [display_path(path) for path in paths])
    except CassetteError as exc:
        err(f"chatresp report: {exc}")
        return EXIT_FAILED
    if args.json:
        target = Path(args.json)
        try:
            report.write_json(target)
        except OSError as exc:
            shown = display_path(target)
            err(f"chatresp report: cannot write {shown}: {exc.strerror}")
            return EXIT_FAILED
    for line in report.lines(verbose=args.verbose, unplayed=args.unplayed != "ignore"):
        out(line)
    if args.unplayed == "fail" and report.unplayed():
        return EXIT_FAILED
    return EXIT_OK
