"""``--chatresp-collect-cassettes``: every cassette under the cassette dir, and in each
``cassettes/`` folder beside a test module (pytest-recording's layout), as a test item."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .discovery import cassette_files, is_cassette
from .session import ChatrespSession, session_of

__all__ = [
    "CassetteFile",
    "CassetteItem",
    "CassetteItemFailure",
    "add_unreached_cassettes",
    "collects_cassette",
    "take_bracketed_arguments",
]


class CassetteItemFailure(Exception):
    """A cassette collected as a test item breaks the contract."""


class CassetteItem(pytest.Item):
    """Validates every chat completion of one cassette file."""

    def runtest(self) -> None:
        from .errors import CassetteError

        session = session_of(self.config)
        try:
            cassette = session.cache.load(self.path, rules=session.rules)
        except CassetteError as exc:
            raise CassetteItemFailure(str(exc)) from None
        # Counted before judging: the report's totals are every completion read, as in
        # ``chatresp check``, valid or not.
        report = session.report
        figures = cassette.figures()
        report.add_figures(self.nodeid, "read", figures, str(self.path))
        if not figures.completions:
            report.no_completion[session.relative(self.path)] = dict(figures.kinds)
        violations = cassette.violations
        if violations:
            raise CassetteItemFailure(str(CassetteError(violations)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CassetteItemFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # Line 0 (shown as line 1): the cassette as a whole, a location other plugins print.
        from .errors import printable

        shown = printable(session_of(self.config).relative(self.path))
        return self.path, 0, f"cassette {shown}"


class CassetteFile(pytest.File):
    """A cassette file under the cassette dir, collected: one item that validates it.

    Its node id, which pytest prints raw (progress, section headers, the summary), has the
    file name's control characters escaped; the file is still found by its path.
    """

    @classmethod
    def from_parent(  # type: ignore[override]
        cls, parent: pytest.Collector, *, path: Path, **kwargs: Any
    ) -> CassetteFile:
        from .errors import printable

        node: CassetteFile = super().from_parent(parent, path=path, **kwargs)
        shown = printable(node.nodeid)
        if shown != node.nodeid:
            node = super().from_parent(parent, path=path, nodeid=shown, **kwargs)
        return node

    def collect(self) -> Iterator[CassetteItem]:
        yield CassetteItem.from_parent(self, name="contract")


def collects_cassette(session: ChatrespSession, path: Path) -> bool:
    """Whether this file is collected: one the discovery lists below the cassette dir."""
    return session.settings.collect_cassettes and any(
        is_cassette(path, root) for root in session.cassette_roots
    )


def take_bracketed_arguments(session: ChatrespSession) -> None:
    """A cassette named with ``[`` in its file name (``test_x[a-b].yaml``, a parametrized
    test's) runs again by its id, which pytest's command line would take for a
    parametrization: the argument becomes the cassette's directory, and collection keeps that
    cassette's item only."""
    config = session.config
    for position, arg in enumerate(config.args):
        named = arg.split("::")[0]
        path = Path(config.invocation_params.dir, named)
        if "[" in named and path.is_file():
            config.args[position] = str(path.parent)
            session.wanted.add(path.resolve())


def add_unreached_cassettes(
    session: ChatrespSession, collector: pytest.Session, items: list[pytest.Item]
) -> None:
    """Every cassette is collected, also those below no collected path, unless the command line
    names paths in the cassette dir: then those only. Files pytest does not collect (a FIFO, a
    link to a device) are collected too, and fail by name. Cassettes named by a bracketed id
    keep only their own item in their folder."""
    config = session.config
    directories = [directory.resolve() for directory in session.cassette_roots]
    named = [
        Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args
    ]
    roots = [p for p in named if any(p == d or d in p.parents for d in directories)] or directories
    seen = {item.path for item in items if isinstance(item, CassetteItem)}
    for directory in session.cassette_roots:
        for path in cassette_files(directory):
            where = Path(path.parent.resolve(), path.name)
            if path in seen or not any(where == root or root in where.parents for root in roots):
                continue
            seen.add(path)
            if collects_cassette(session, path):
                items.extend(CassetteFile.from_parent(collector, path=path).collect())
    if session.wanted:
        folders = {path.parent for path in session.wanted}
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            path = Path(str(item.path)).resolve()
            chosen = path in session.wanted or path.parent not in folders
            (kept if chosen else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
