"""What a verify run found (``--chatresp-verify``): per test and cassette, how the live answers
differ from the recordings they would have replayed, and what the run spent.

Each live chat completion is compared with its recorded counterpart by shape
(:func:`~pytest_chatresp.shapes.shape_of`: model family, service tier, finish reasons, tool
names and argument keys, content kind and top-level JSON keys, usage present) and by served
model; contract violations the live answer has and the recording had not are listed, and so
is every request that matched no recording. This module imports no pytest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .shapes import diff_shapes, shape_of

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["TestVerification", "VerifyReport", "compare"]


@dataclass
class TestVerification:
    """What verifying one test found."""

    cassette: str
    requests: int = 0
    tokens: int = 0
    #: Shape fields that changed: ``interaction 0: choices[0].finish_reason: 'stop' → 'length'``.
    changes: list[str] = field(default_factory=list)
    #: Served models that changed while the shape did not (drift when so configured).
    served_model: list[str] = field(default_factory=list)
    #: Contract violations of a live answer that its recording did not have.
    violations: list[str] = field(default_factory=list)
    #: Live requests that no recording matched (replay would have failed them).
    unmatched: list[str] = field(default_factory=list)

    def drifted(self, served_model: bool) -> bool:
        return bool(
            self.changes
            or self.violations
            or self.unmatched
            or (served_model and self.served_model)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cassette": self.cassette,
            "requests": self.requests,
            "tokens": self.tokens,
            "changes": self.changes,
            "served_model": self.served_model,
            "violations": self.violations,
            "unmatched": self.unmatched,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestVerification:
        return cls(
            str(data["cassette"]),
            int(data["requests"]),
            int(data["tokens"]),
            *(list(map(str, data[key])) for key in _LISTS),
        )


_LISTS = ("changes", "served_model", "violations", "unmatched")


def _where(index: int, recorded: int | None) -> str:
    if recorded is None or recorded == index:
        return f"interaction {index}"
    return f"interaction {index} (recorded as {recorded})"


def compare(cassette: str, pairs: Iterable[tuple[Any, Any]]) -> TestVerification:
    """Compare each (live, recorded) exchange pair of one test; ``recorded`` may be ``None``."""
    found = TestVerification(cassette)
    for position, (live, recorded) in enumerate(pairs):
        found.requests += 1
        completion = live._completion
        found.tokens += _tokens(live)
        if recorded is None:
            found.unmatched.append(
                f"interaction {position}: {live.request.method} {live.request.path} "
                "matched no recording"
            )
            continue
        where = _where(position, recorded.index)
        before = set(map(_violation, recorded.violations))
        found.violations.extend(
            f"{where}: {text}" for text in map(_violation, live.violations) if text not in before
        )
        old = recorded._completion
        if completion is None or old is None:
            if (completion is None) != (old is None) and not live.violations:
                was, now = recorded.kind, live.kind
                if recorded.error is not None:
                    was = f"error {recorded.status}"
                if live.error is not None:
                    now = f"error {live.status}"
                found.changes.append(f"{where}: answer: {was!r} → {now!r}")
            continue
        found.changes.extend(
            f"{where}: {line}" for line in diff_shapes(shape_of(old), shape_of(completion))
        )
        if old.model != completion.model and not any(
            c.startswith(f"{where}: model:") for c in found.changes
        ):
            found.served_model.append(f"{where}: model: {old.model!r} → {completion.model!r}")
    return found


def _tokens(exchange: Any) -> int:
    """The total tokens an answer says it used, valid or not (0 when it says nothing)."""
    completion = exchange._completion
    if completion is not None:
        return int(completion.usage.total_tokens) if completion.usage is not None else 0
    document = exchange.merged if exchange.streamed else exchange.json
    usage = document.get("usage") if isinstance(document, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else 0


def _violation(violation: Any) -> str:
    """A violation as compared across files: its field and message, not its place."""
    return f"{violation.field}: {violation.message}" if violation.field else violation.message


def _new_violation(line: str) -> str:
    where, _, text = line.partition(": ")
    return f"{where}: new violation: {text}"


@dataclass
class VerifyReport:
    """The verify section of the run report; merged across pytest-xdist workers."""

    tests: dict[str, TestVerification] = field(default_factory=dict)
    #: Marked tests not verified, and why (a limit was reached).
    skipped: dict[str, str] = field(default_factory=dict)
    #: The limit that stopped verification, as the summary says it.
    stopped: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tests or self.skipped)

    @property
    def requests(self) -> int:
        return sum(t.requests for t in self.tests.values())

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.tests.values())

    def drifted(self, served_model: bool) -> list[str]:
        """The tests whose answers drifted."""
        return sorted(n for n, t in self.tests.items() if t.drifted(served_model))

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "tokens": self.tokens,
            "tests": {n: t.to_dict() for n, t in sorted(self.tests.items())},
            "not_verified": dict(sorted(self.skipped.items())),
            "stopped": sorted(set(self.stopped)),
        }

    def merge(self, data: dict[str, Any]) -> None:
        for nodeid, entry in data.get("tests", {}).items():
            self.tests[nodeid] = TestVerification.from_dict(entry)
        self.skipped.update(data.get("not_verified", {}))
        self.stopped.extend(data.get("stopped", []))

    def lines(self, served_model: bool) -> list[str]:
        """The terminal summary: what was verified, what drifted, what was not verified."""
        if not self:
            return []
        drifted = self.drifted(served_model)
        out = [
            f"verified {len(self.tests)} test(s) against the live service: "
            f"{self.requests} request(s), {self.tokens} token(s); "
            f"{len(drifted)} drifted, {len(self.skipped)} not verified"
        ]
        for nodeid in sorted(self.tests):
            found = self.tests[nodeid]
            served = [
                line if served_model else f"(not counted) {line}" for line in found.served_model
            ]
            shown = [
                *found.changes,
                *served,
                *(_new_violation(v) for v in found.violations),
                *found.unmatched,
            ]
            if shown:
                out.append(f"drift in {nodeid} ({found.cassette}):")
                out.extend(f"  {line}" for line in shown)
        if self.stopped:
            out.append("verification stopped: " + "; ".join(sorted(set(self.stopped))))
        if self.skipped:
            out.append("not verified (nothing sent):")
            out.extend(f"  {nodeid}" for nodeid in sorted(self.skipped))
        return out


def verify_header(settings: Settings) -> str:
    """The report header's words for a verify run: what it may spend."""
    limits = [
        f"{value} {what}"
        for value, what in (
            (settings.verify_max_requests, "requests"),
            (settings.verify_max_tokens, "tokens"),
        )
        if value is not None
    ]
    spend = f"at most {' and '.join(limits)}" if limits else "no limit on requests or tokens"
    return f"verifying against the live service ({spend}; nothing written)"
