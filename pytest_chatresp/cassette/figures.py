"""What the run's report counts of a cassette's exchanges: kinds, models, tiers, tokens, drift.

:func:`figures_of` reads them from exchanges; the cache keeps them beside a cassette's verdict
(:meth:`Figures.to_plain`, :meth:`Figures.from_plain`), so a later session reports an unchanged
cassette without building its exchanges.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Figures", "drift_fields", "figures_of"]

_COUNTS = ("completions", "invalid", "prompt_tokens", "completion_tokens", "total_tokens")
_COUNTERS = ("kinds", "models", "tiers")


def drift_fields(model: Any, prefix: str = "") -> list[str]:
    """Paths of the fields of a response that the models don't know (``choices[].x``)."""
    from pydantic import BaseModel

    found: list[str] = []
    for name in model.model_extra or {}:
        found.append(f"{prefix}.{name}" if prefix else name)
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, BaseModel):
            found.extend(drift_fields(value, path))
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    found.extend(drift_fields(item, f"{path}[]"))
    return sorted(set(found))


def _tier(value: Any) -> str:
    return "null" if value is None else str(value)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class Figures:
    """The report's figures of some exchanges, whichever way a test met them."""

    #: Chat completions, valid or not (errors and other endpoints aside).
    completions: int = 0
    #: Of those, the ones that break the contract.
    invalid: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    tiers: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    #: ``(field path, cassette shown)`` → how many completions hold the unknown field; the
    #: place is ``None`` for a completion read from no cassette.
    drift: Counter[tuple[str, str | None]] = field(default_factory=Counter)

    def add_completion(self, completion: Any) -> None:
        """Count one valid ``ChatCompletion``."""
        self.completions += 1
        self.models[completion.model] += 1
        self.tiers[_tier(completion.service_tier)] += 1
        usage = completion.usage
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.total_tokens += usage.total_tokens
        source = completion.source
        place = source.path if source is not None else None
        for path in drift_fields(completion):
            self.drift[(path, place)] += 1

    def add_invalid(self, document: Any) -> None:
        """Count one completion that breaks the contract, by what its ``document`` says."""
        self.completions += 1
        self.invalid += 1
        document = document if isinstance(document, dict) else {}
        model = document.get("model")
        self.models[model if isinstance(model, str) else "?"] += 1
        self.tiers[_tier(document.get("service_tier"))] += 1
        usage = document.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens += _count(usage.get("prompt_tokens"))
            self.completion_tokens += _count(usage.get("completion_tokens"))
            self.total_tokens += _count(usage.get("total_tokens"))

    def to_plain(self) -> dict[str, Any]:
        """JSON-ready: counts, counters, drift as ``[path, place, count]`` rows."""
        plain: dict[str, Any] = {name: getattr(self, name) for name in _COUNTS}
        for name in _COUNTERS:  # in the order met, as a report lists a cassette's kinds
            plain[name] = dict(getattr(self, name))
        plain["drift"] = [[p, w, n] for (p, w), n in sorted(self.drift.items(), key=str)]
        return plain

    @classmethod
    def from_plain(cls, data: Any) -> Figures | None:
        """The figures :meth:`to_plain` gave, or ``None`` for anything else."""
        if type(data) is not dict or set(data) != {*_COUNTS, *_COUNTERS, "drift"}:
            return None
        figures = cls()
        for name in _COUNTS:
            value = data[name]
            if type(value) is not int or value < 0:
                return None
            setattr(figures, name, value)
        for name in _COUNTERS:
            counter = data[name]
            if type(counter) is not dict:
                return None
            for key, value in counter.items():
                if type(value) is not int or value < 0:
                    return None
                getattr(figures, name)[key] = value
        rows = data["drift"]
        if type(rows) is not list:
            return None
        for row in rows:
            if type(row) is not list or len(row) != 3:
                return None
            path, place, count = row
            if type(path) is not str or not (place is None or type(place) is str):
                return None
            if type(count) is not int or count < 0:
                return None
            figures.drift[(path, place)] += count
        return figures


def figures_of(exchanges: Iterable[Any]) -> Figures:
    """The figures of ``exchanges`` (``Exchange``): every exchange by kind, every chat
    completion valid or not (an invalid one adds the model, tier and tokens it says)."""
    figures = Figures()
    for exchange in exchanges:
        figures.kinds[exchange.kind] += 1
        if not exchange.is_completion:
            continue
        if exchange.valid and exchange._completion is not None:
            figures.add_completion(exchange._completion)
        else:
            figures.add_invalid(exchange.merged if exchange.streamed else exchange.json)
    return figures
