"""What every subcommand shares: escaped output, the exit statuses, the usage error and the one
way a failure becomes a line of text (:func:`failure`), for one file as for the whole command."""

from __future__ import annotations

import sys

from pytest_chatresp.errors import CassetteError, printable, shorten

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "UsageError",
    "err",
    "failure",
    "out",
    "plural",
    "unexpected",
]

PROG = "chatresp"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A usage error found after parsing (a path that does not exist, a bad value): exit 2."""


def out(line: str = "") -> None:
    """A line on stdout, terminal control characters escaped."""
    print(printable(line), file=sys.stdout)


def err(line: str) -> None:
    """A line on stderr, terminal control characters escaped."""
    print(printable(line), file=sys.stderr)


def plural(count: int, noun: str, many: str | None = None) -> str:
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def unexpected(exc: BaseException) -> str:
    detail = shorten(str(exc), 200)
    return (
        f"unexpected error ({type(exc).__name__}{': ' + detail if detail else ''}); "
        "please report it to pytest-chatresp"
    )


def failure(exc: Exception, where: str, cannot: str | None = None) -> str:
    """The line that reports ``exc``, raised while working on what ``where`` names.

    A :class:`CassetteError` is its own message (it names the cassette); an ``OSError`` is
    ``where: <cannot>: <reason>``; anything else is a short line, never a traceback.
    """
    if isinstance(exc, CassetteError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{where}: {cannot + ': ' if cannot else ''}{exc.strerror or exc}"
    if isinstance(exc, RecursionError):
        return f"{where}: nested too deeply to read"
    if isinstance(exc, MemoryError):
        return f"{where}: too large to read"
    return f"{where}: {unexpected(exc)}"
