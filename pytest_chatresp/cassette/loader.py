"""Cassettes: a file read into exchanges, every chat completion in it validated.

``load_cassette(path)`` reads what vcrpy writes (its YAML and JSON serializers, the older httpx
layout, pydantic-ai's ``parsed_body`` variant), decodes bodies (``!!binary``, gzip, deflate,
brotli when installed), merges streamed responses, and validates each chat completion. A file
that cannot be read raises :class:`CassetteError`; a completion that breaks the contract is
recorded as violations on its exchange and raised when the completion is asked for.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_chatresp.checks import Rules
from pytest_chatresp.errors import CassetteError, Violation, display_path
from pytest_chatresp.models import ChatCompletion

from . import document as _document
from .document import interactions_of
from .exchange import Exchange, build_exchange

__all__ = ["Cassette", "cassette_from_document", "collector_paused", "load_cassette"]


class Cassette:
    """A cassette file read into :class:`Exchange` objects, in the file's order."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        exchanges: list[Exchange],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self._exchanges: list[Exchange] | None = exchanges
        self._metadata: dict[str, Any] = metadata or {}
        self._build: Callable[[], Cassette] | None = None
        self._verdict: list[Violation] = []
        self._count = 0

    @classmethod
    def deferred(
        cls,
        path: str | os.PathLike[str],
        build: Callable[[], Cassette],
        count: int,
        violations: list[Violation],
    ) -> Cassette:
        """A cassette whose verdict (``count`` exchanges, ``violations``) is known already,
        its exchanges built by ``build`` (the same file under the same rules) when first asked
        for: a test that reads only the verdict builds no model."""
        cassette = cls(path, [])
        cassette._exchanges, cassette._build = None, build
        cassette._count, cassette._verdict = count, violations
        return cassette

    def _built(self) -> list[Exchange]:
        if self._exchanges is None:
            assert self._build is not None
            with collector_paused():
                built = self._build()
            self._exchanges, self._metadata, self._build = built.exchanges, built.metadata, None
        return self._exchanges

    @property
    def exchanges(self) -> list[Exchange]:
        """The exchanges, in the file's order."""
        return self._built()

    @exchanges.setter
    def exchanges(self, value: list[Exchange]) -> None:
        self._exchanges, self._build = value, None

    @property
    def metadata(self) -> dict[str, Any]:
        """vcrpy's cassette metadata; ``metadata["chatresp"]`` is the plugin's provenance."""
        self._built()
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._built()
        self._metadata = value

    def __repr__(self) -> str:
        return f"<Cassette {display_path(self.path)}: {len(self)} exchanges>"

    def __len__(self) -> int:
        return self._count if self._exchanges is None else len(self._exchanges)

    def __iter__(self) -> Iterator[Exchange]:
        return iter(self.exchanges)

    @property
    def chat_exchanges(self) -> list[Exchange]:
        """Exchanges with the chat completions endpoint (including errors)."""
        return [e for e in self.exchanges if e.is_chat]

    @property
    def errors(self) -> list[Exchange]:
        """Exchanges the API answered with an error."""
        return [e for e in self.exchanges if e.error is not None]

    @property
    def violations(self) -> list[Violation]:
        if self._exchanges is None:
            return list(self._verdict)
        return [v for e in self._exchanges for v in e.violations]

    @property
    def completions(self) -> list[ChatCompletion]:
        """The completion of every successful chat exchange, in order.

        Raises :class:`CassetteError` listing every violation when any response breaks the
        contract.
        """
        violations = self.violations
        if violations:
            raise CassetteError(violations)
        return [e._completion for e in self.exchanges if e._completion is not None]


def cassette_from_document(
    path: str | os.PathLike[str],
    document: Any,
    *,
    rules: Rules | None = None,
    verdict: list[Violation] | None = None,
) -> Cassette:
    """Build a :class:`Cassette` from a parsed cassette document.

    ``verdict`` is every violation a judgement of the same document under the same ``rules``
    found (from the cache's tagged store): the contract checks of well-typed completions are
    then not run again.
    """
    shown = display_path(path)
    interactions = interactions_of(document, shown)
    found: dict[int | None, list[Violation]] = {}
    for violation in verdict or ():
        found.setdefault(violation.index, []).append(violation)
    exchanges = [
        build_exchange(
            shown,
            index,
            interaction,
            rules=rules,
            checked=None if verdict is None else found.get(index, []),
        )
        for index, interaction in enumerate(interactions)
    ]
    metadata = document.get("metadata")
    return Cassette(path, exchanges, metadata if isinstance(metadata, dict) else None)


def load_cassette(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    skip_checks: Iterable[str] = (),
    rules: Rules | None = None,
) -> Cassette:
    """Read a vcrpy cassette file and validate every chat completion in it.

    ``strict`` turns on strict validation; ``skip_checks`` names contract checks to skip
    (see :data:`pytest_chatresp.checks.CHECKS`); ``rules`` gives both at once.

    Raises :class:`CassetteError` when the file cannot be read as a cassette. Contract
    violations are raised when :attr:`Cassette.completions` (or an exchange's ``completion``)
    is read.
    """
    rules = rules or Rules(strict=strict, skip_checks=frozenset(skip_checks))
    with collector_paused():
        return cassette_from_document(path, _document.read_document(path), rules=rules)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Reading a cassette makes many objects, all alive at the end: the garbage collector's
    passes over them find nothing to free, and cost as much as the parsing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
