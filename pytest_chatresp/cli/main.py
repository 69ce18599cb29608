"""The command line: the parser (each subcommand adds its own) and the one error ladder."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from . import audit, cache, check, report, scrub, show
from .output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    err,
    failure,
)

__all__ = ["main"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-chatresp")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check, show and scrub recorded chat completion cassettes (vcrpy files).",
        epilog="Exit status: 0 all is well, 1 something is invalid, unreadable or not clean, "
        "2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for subcommand in (check, audit, show, scrub, report, cache):
        subcommand.add_parser(commands)
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
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE if exc.code else EXIT_OK
    try:
        status: int = args.handler(args)
    except UsageError as exc:
        err(f"{PROG} {args.command}: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_FAILED
    except Exception as exc:  # a cassette's error is its message; anything else a short line
        err(failure(exc, PROG))
        return EXIT_FAILED
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_FAILED
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
