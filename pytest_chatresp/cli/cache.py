"""``chatresp cache``: show what the parsed-cassette store holds, or clear it.

The store is ``<cache_dir>/d/chatresp`` (pytest's cache directory, ``.pytest_cache`` unless the
ini option ``cache_dir`` says otherwise). Showing and clearing read file names and sizes only:
no entry is opened, and only the store's own files are removed.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

from pytest_chatresp.errors import display_path

from .output import EXIT_FAILED, EXIT_OK, err, out

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``cache`` subcommand to ``subparsers`` (``add_subparsers()``' result)."""
    from pytest_chatresp.cassette.store import MAX_AGE_DAYS, MAX_BYTES, MAX_ENTRIES

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cache",
        help="show the parsed-cassette cache (path, entries, size), or clear it",
        description="Show where the parsed-cassette cache is, how many entries it holds and "
        f"their size, or remove them all with --clear. Entries unused for {MAX_AGE_DAYS} days, "
        f"and the least recently used beyond {MAX_ENTRIES} entries or {MAX_BYTES >> 20} MiB, "
        "are removed by the plugin itself.",
    )
    parser.add_argument("--clear", action="store_true", help="remove every entry")
    parser.add_argument(
        "--cache-dir",
        default=".pytest_cache",
        metavar="DIR",
        help="pytest's cache directory, as its ini option cache_dir (default: .pytest_cache)",
    )
    parser.set_defaults(handler=run)
    return parser


def _day(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d")


def run(args: argparse.Namespace) -> int:
    """Show or clear the store under ``args.cache_dir``. The exit status."""
    from pytest_chatresp.cassette.store import (
        MAX_AGE_DAYS,
        MAX_BYTES,
        MAX_ENTRIES,
        clear_store,
        describe_store,
    )

    directory = Path(args.cache_dir, "d", "chatresp")
    shown = display_path(directory)
    if not directory.is_dir() or directory.is_symlink():
        out(f"no cassette cache at {shown}")
        return EXIT_OK
    if args.clear:
        removed = clear_store(directory)
        left = describe_store(directory)
        out(f"removed {removed.amount()} from {shown}")
        if left.entries:
            err(f"could not remove {left.entries} entr(ies): see {shown}")
            return EXIT_FAILED
        return EXIT_OK
    summary = describe_store(directory)
    out(summary.describe())
    if summary.oldest is not None and summary.newest is not None:
        out(f"last used: {_day(summary.oldest)} (oldest) to {_day(summary.newest)} (newest)")
    out(
        f"bounds: unused for {MAX_AGE_DAYS} days, or beyond {MAX_ENTRIES} entries or "
        f"{MAX_BYTES >> 20} MiB (least recently used first), entries are removed"
    )
    return EXIT_OK
