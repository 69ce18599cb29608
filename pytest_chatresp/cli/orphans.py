"""``chatresp check --orphans``: cassette files under the cassette dir that no collected test uses.

The tests are collected here, in this process (``pytest --collect-only``), with a small plugin
that asks the chatresp plugin which cassette each collected test uses: nothing is written, no
option of pytest's command line is involved. The only module of the command that imports pytest.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_chatresp.discovery import cassette_files
from pytest_chatresp.errors import display_path

from .output import EXIT_FAILED, EXIT_OK, PROG, err, out

if TYPE_CHECKING:
    import pytest

__all__ = ["run_orphans"]

_SHOWN_OUTPUT = 4000
#: pytest's exit statuses for a collection that went through (``pytest.ExitCode``).
_COLLECTED = (0, 5)


class _Collector:
    """A pytest plugin object: the cassette dir and the cassettes of the collected tests."""

    def __init__(self) -> None:
        self.cassette_dir: Path | None = None
        self.roots: list[Path] = []
        self.used: set[Path] = set()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from pytest_chatresp.session import cassette_dir, cassette_roots, cassette_used_by

        self.cassette_dir = cassette_dir(session.config).resolve()
        self.roots = cassette_roots(session.config)
        for item in session.items:
            path = cassette_used_by(item)
            if path is not None:
                self.used.add(path.resolve())


@dataclass(frozen=True)
class _Collection:
    status: int
    output: str
    cassette_dir: Path | None
    roots: list[Path]
    used: set[Path]


def _collect_tests(test_paths: Sequence[str]) -> _Collection:
    """The cassette dir and the cassette files the tests below ``test_paths`` use, as pytest
    collects them here, with pytest's exit status and output (kept from the terminal)."""
    import pytest

    collector = _Collector()
    # This process imported the plugin before pytest could mark it for assert rewriting: that
    # warning is about the command, not the user's tests.
    arguments = ["--collect-only", "-q", "-p", "no:cacheprovider"]
    arguments += ["-W", "ignore::pytest.PytestAssertRewriteWarning", *test_paths]
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        status = pytest.main(arguments, plugins=[collector])
    return _Collection(
        int(status), captured.getvalue(), collector.cassette_dir, collector.roots, collector.used
    )


def _errors_of(output: str) -> str:
    """What pytest said went wrong: its errors section, without the ids of the tests that
    were collected (``--collect-only -q`` lists them first)."""
    lines = output.splitlines()
    start = next((n for n, line in enumerate(lines) if "= ERRORS =" in line), None)
    return "\n".join(lines[start:] if start is not None else lines)


def run_orphans(test_paths: Sequence[str]) -> int:
    from pytest_chatresp.hygiene.audit import orphans

    collection = _collect_tests(test_paths)
    directory = collection.cassette_dir
    # A module that fails to import hides its tests' cassettes: no verdict then.
    if collection.status not in _COLLECTED or directory is None:
        err(f"{PROG}: pytest could not collect the tests (exit {collection.status}):")
        err(_errors_of(collection.output)[-_SHOWN_OUTPUT:].rstrip())
        return EXIT_FAILED
    files: list[Path] = []
    found: list[Path] = []
    for root in collection.roots:
        below = cassette_files(root)
        files.extend(below)
        found.extend(orphans(root, collection.used, below))
    for path in found:
        out(f"orphan: {display_path(path)}")
    where = ", ".join(display_path(root) for root in collection.roots if root.is_dir())
    out(
        f"{len(found)} orphan{'' if len(found) == 1 else 's'} of {len(files)} cassette files "
        f"in {where or display_path(directory)} ({len(collection.used)} used by the collected "
        "tests)"
    )
    return EXIT_FAILED if found else EXIT_OK
