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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from pytest_chatresp.checks import Rules
from pytest_chatresp.errors import CassetteError, Violation, display_path

from . import document as _document
from .document import interactions_of
from .figures import Figures, figures_of
from .verdict import Verdict

if TYPE_CHECKING:
    from pytest_chatresp.models import ChatCompletion

    from .exchange import Exchange

__all__ = [
    "Cassette",
    "Completions",
    "cassette_from_document",
    "collector_paused",
    "load_cassette",
]


class Cassette:
    """A cassette file read into :class:`Exchange` objects, in the file's order."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        exchanges: list[Exchange],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.path = path if isinstance(path, Path) else Path(path)
        self._exchanges: list[Exchange] | None = exchanges
        self._metadata: dict[str, Any] = metadata or {}
        self._build: Callable[[], Cassette] | None = None
        self._build_one: Callable[[int], Exchange] | None = None
        self._one: dict[int, Exchange] = {}
        self._verdict: Verdict | None = None
        self._figures: Figures | None = None

    @classmethod
    def deferred(
        cls,
        path: str | os.PathLike[str],
        verdict: Verdict,
        build: Callable[[], Cassette],
        build_one: Callable[[int], Exchange],
    ) -> Cassette:
        """A cassette whose :class:`Verdict` is known already (the same file under the same
        rules), its exchanges built when first asked for: all of them by ``build``, or one
        interaction's by ``build_one`` (its index) when one completion is read. A test that
        reads only the verdict builds no model."""
        cassette = cls(path, [], verdict.metadata)
        cassette._exchanges, cassette._build, cassette._build_one = None, build, build_one
        cassette._verdict, cassette._figures = verdict, verdict.figures
        return cassette

    def _built(self) -> list[Exchange]:
        if self._exchanges is None:
            assert self._build is not None
            with collector_paused():
                built = self._build()
            exchanges = built.exchanges
            for index, exchange in self._one.items():  # the ones a test holds already
                exchanges[index] = exchange
            self._exchanges, self._metadata, self._build = exchanges, built.metadata, None
            self._build_one, self._one = None, {}
        return self._exchanges

    def _exchange(self, index: int) -> Exchange:
        """The exchange of interaction ``index``, built alone when the others are not."""
        if self._exchanges is not None or self._build_one is None:
            return self._built()[index]
        exchange = self._one.get(index)
        if exchange is None:
            with collector_paused():
                exchange = self._one[index] = self._build_one(index)
        return exchange

    @property
    def exchanges(self) -> list[Exchange]:
        """The exchanges, in the file's order."""
        return self._built()

    @exchanges.setter
    def exchanges(self, value: list[Exchange]) -> None:
        self._exchanges, self._build, self._build_one, self._verdict = value, None, None, None
        self._figures = None

    @property
    def metadata(self) -> dict[str, Any]:
        """vcrpy's cassette metadata; ``metadata["chatresp"]`` is the plugin's provenance."""
        if self._verdict is None or self._verdict.metadata is None:
            self._built()
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._built()
        self._metadata, self._verdict = value, None

    def __repr__(self) -> str:
        return f"<Cassette {display_path(self.path)}: {len(self)} exchanges>"

    def __len__(self) -> int:
        if self._exchanges is None and self._verdict is not None:
            return self._verdict.count
        return len(self.exchanges)

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
        if self._exchanges is None and self._verdict is not None:
            return list(self._verdict.violations)
        return [v for e in self.exchanges for v in e.violations]

    def verdict(self) -> Verdict:
        """What judging the file found: its exchanges, violations, completions, figures."""
        if self._exchanges is None and self._verdict is not None:
            return self._verdict
        return Verdict.of(self.exchanges, self._metadata, self.figures())

    def figures(self) -> Figures:
        """The run report's figures of the file: kinds, models, tiers, tokens, drift."""
        if self._figures is None:
            self._figures = figures_of(self.exchanges)
        return self._figures

    @property
    def completions(self) -> Completions:
        """The completion of every successful chat exchange, in order: a read-only sequence
        (equal to the list of the same completions) whose items are built when first read.

        Raises :class:`CassetteError` listing every violation when any response breaks the
        contract.
        """
        violations = self.violations
        if violations:
            raise CassetteError(violations)
        if self._exchanges is None and self._verdict is not None:
            indices = self._verdict.completions
            return Completions(self.path, len(indices), lambda k: self._completion_at(indices[k]))
        built = [e._completion for e in self.exchanges if e._completion is not None]
        return Completions(self.path, len(built), built.__getitem__)

    def _completion_at(self, index: int) -> ChatCompletion:
        completion = self._exchange(index)._completion
        if completion is None:  # the verdict said so of the same bytes under the same rules
            raise CassetteError.single(
                display_path(self.path), "holds no chat completion any more", index=index
            )
        return completion


class Completions(Sequence["ChatCompletion"]):
    """A cassette's chat completions, in order, each built when first read.

    Equal to a list of the same completions (as a list, not to a tuple); slicing, and adding
    a list, give a list.
    """

    __slots__ = ("_count", "_fetch", "_path")

    def __init__(self, path: Path, count: int, fetch: Callable[[int], ChatCompletion]) -> None:
        self._path, self._count, self._fetch = path, count, fetch

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> ChatCompletion: ...

    @overload
    def __getitem__(self, index: slice) -> list[ChatCompletion]: ...

    def __getitem__(self, index: int | slice) -> ChatCompletion | list[ChatCompletion]:
        if isinstance(index, slice):
            return [self._fetch(k) for k in range(self._count)[index]]
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(
                f"completion indices must be integers or slices, not {type(index).__name__}"
            )
        if not -self._count <= index < self._count:
            raise IndexError(
                f"completion index {index} out of range: {display_path(self._path)} holds "
                f"{self._count} chat completion(s)"
            )
        return self._fetch(index % self._count)

    def __iter__(self) -> Iterator[ChatCompletion]:
        for k in range(self._count):
            yield self._fetch(k)

    def __add__(self, other: object) -> list[ChatCompletion]:
        if isinstance(other, Completions | list):
            return [*self, *other]
        return NotImplemented

    def __radd__(self, other: object) -> list[ChatCompletion]:
        if isinstance(other, list):
            return [*other, *self]
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Completions | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Completions: {self._count} chat completion(s) of {display_path(self._path)}>"


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
    from .exchange import build_exchange

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
