"""A cassette's verdict under some rules, as the cache keeps it between sessions.

The verdict is everything a session asks of a cassette before a test looks inside it: how many
exchanges it holds, every violation, which interactions hold a chat completion, the report's
figures (:mod:`.figures`) and vcrpy's metadata. A later session under the same rules takes it
instead of building the exchanges; they are built, one by one, only when a test reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_chatresp.checks import CLOCK_CHECKS
from pytest_chatresp.errors import Violation

from .figures import Figures, figures_of

if TYPE_CHECKING:
    from .exchange import Exchange

__all__ = ["Verdict"]


@dataclass(frozen=True)
class Verdict:
    """What judging one cassette file under some rules found."""

    #: How many exchanges the file holds.
    count: int
    violations: list[Violation]
    #: The interactions holding a chat completion, in order.
    completions: list[int]
    figures: Figures
    #: vcrpy's metadata of the file; ``None`` when it could not be kept as plain data.
    metadata: dict[str, Any] | None

    @classmethod
    def of(
        cls, exchanges: list[Exchange], metadata: dict[str, Any], figures: Figures | None = None
    ) -> Verdict:
        """The verdict of a cassette read into ``exchanges`` (whose ``figures`` are known)."""
        return cls(
            len(exchanges),
            [v for e in exchanges for v in e.violations],
            [e.index for e in exchanges if e._completion is not None],
            figures if figures is not None else figures_of(exchanges),
            metadata,
        )

    def to_payload(self, shown: str) -> bytes | None:
        """The verdict as JSON, for the cassette shown as ``shown``; ``None`` when it is not
        the verdict of that file alone (a violation names another) or of this moment only
        (a finding of a check in :data:`~pytest_chatresp.checks.CLOCK_CHECKS`)."""
        if any(v.path != shown or v.check in CLOCK_CHECKS for v in self.violations):
            return None  # another file's, or a finding the clock may take back
        metadata: str | None = None
        if self.metadata is not None:
            from .store import Unstorable, encode_document  # only where there is a store

            try:
                metadata = encode_document(self.metadata).decode("utf-8")
            except Unstorable:
                metadata = None
        payload = {
            "shown": shown,
            "count": self.count,
            "violations": [[v.index, v.field, v.message, v.check] for v in self.violations],
            "completions": self.completions,
            "figures": self.figures.to_plain(),
            "metadata": metadata,
        }
        try:
            return json.dumps(payload, separators=(",", ":")).encode("utf-8")
        except (ValueError, UnicodeEncodeError):
            return None

    @classmethod
    def from_payload(cls, payload: bytes, shown: str) -> Verdict | None:
        """The verdict :meth:`to_payload` wrote for ``shown``, or ``None`` for anything else."""
        try:
            data = json.loads(payload)
            stored, count, found = data["shown"], data["count"], data["violations"]
            completions, figures = data["completions"], Figures.from_plain(data["figures"])
            kept = data["metadata"]
        except (ValueError, LookupError, TypeError, RecursionError):
            return None
        if stored != shown or type(count) is not int or count < 0 or type(found) is not list:
            return None
        if figures is None or type(completions) is not list:
            return None
        if any(type(i) is not int or not 0 <= i < count for i in completions):
            return None
        violations = []
        for item in found:
            if type(item) is not list or len(item) != 4:
                return None
            index, where, message, check = item
            if not (index is None or type(index) is int) or type(message) is not str:
                return None
            if not (where is None or type(where) is str):
                return None
            if not (check is None or type(check) is str):
                return None
            violations.append(Violation(shown, index, where, message, check))
        metadata: Any = None
        if kept is not None:
            if type(kept) is not str:
                return None
            from .store import decode_document

            try:
                metadata = decode_document(kept.encode("utf-8"))
            except (ValueError, LookupError, TypeError, RecursionError):
                return None
            if type(metadata) is not dict:
                return None
        return cls(count, violations, completions, figures, metadata)
