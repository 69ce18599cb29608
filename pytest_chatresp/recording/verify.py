"""Verify mode's side of vcrpy: every request goes to the live service, nothing is written.

:class:`ReadOnlyPersister` reads the cassette as replay would and refuses every write, so a
verify run cannot change a cassette (or its provenance, kept in the cassette) whatever vcrpy
decides. :class:`Counterparts` finds, for each live exchange, the recorded exchange the same
request would have replayed: the same ``match_on``, the same order (the first one not played).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pytest_chatresp.cassette import Exchange, build_exchange

from . import _vcrpy
from .persister import Persister

if TYPE_CHECKING:
    from pytest_chatresp.checks import Rules

__all__ = ["Counterpart", "Counterparts", "ReadOnlyPersister"]


class ReadOnlyPersister(Persister):
    """Loads a cassette as :class:`~.persister.Persister` does; never writes one."""

    def save_cassette(self, cassette_path: str, cassette_dict: Any, serializer: Any) -> None:
        return None  # verify mode: what was sent and answered live is never kept


@dataclass(frozen=True)
class Counterpart:
    """A live exchange, and the recorded one its request would have replayed (or ``None``)."""

    live: Exchange
    recorded: Exchange | None


class _Settings(Protocol):
    @property
    def rules(self) -> Rules: ...


class _Recording(Protocol):
    """What :class:`Counterparts` asks of a test's recorder (``recorder.Recorder``)."""

    @property
    def loaded(self) -> int: ...

    @property
    def shown(self) -> str: ...

    @property
    def settings(self) -> _Settings: ...


class Counterparts:
    """The recorded counterpart of each live exchange of one test's cassette."""

    def __init__(self, recorder: _Recording) -> None:
        self._recorder = recorder
        self._used: set[int] = set()
        self.found: list[Counterpart] = []

    def add(self, cassette: Any, request: Any, live: Exchange) -> None:
        """Note ``live`` (its filtered vcrpy ``request``) and the recording it would replay."""
        recorder = self._recorder
        indices = _vcrpy.matching(cassette, request, recorder.loaded)
        index = next((i for i in indices if i not in self._used), None)
        recorded = None
        if index is not None:
            self._used.add(index)
            stored_request, stored_response = _vcrpy.stored(cassette)[index]
            interaction = {
                "request": _vcrpy.request_as_dict(stored_request),
                "response": stored_response,
            }
            recorded = build_exchange(
                recorder.shown, index, interaction, rules=recorder.settings.rules
            )
        self.found.append(Counterpart(live, recorded))
