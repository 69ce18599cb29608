"""What a test run replayed: completions, models, tiers, tokens, and fields the models don't know.

A :class:`RunReport` is plain data: tests add to it, pytest-xdist workers send it to the
controller as a dict, and the controller merges the dicts, so its totals equal a serial run's.
The JSON report (``--chatresp-report-json``) is the same dict with its format, the plugin's
version and the SHA-256 of every cassette it names; :mod:`pytest_chatresp.shards` merges the
reports of CI shards into the report one serial run writes, and refuses shards that cannot be
merged.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import read_regular

if TYPE_CHECKING:
    from .cassette.figures import Figures
    from .verification import VerifyReport

__all__ = [
    "KINDS",
    "REPORT_FORMAT",
    "RunReport",
    "Tally",
]

#: How a test met a completion: read from a cassette by a fixture, replayed, or recorded.
KINDS = ("read", "replayed", "recorded")
#: The JSON report's format: bump when its fields change meaning.
REPORT_FORMAT = 1
#: More interactions than any cassette holds: a report saying so is not believed.
_MAX_INTERACTIONS = 1_000_000
#: A report file larger than this is not read.
_MAX_REPORT_BYTES = 1 << 30
_TALLY_COUNTS = (
    "read",
    "replayed",
    "recorded",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "invalid",
)
_TALLY_COUNTERS = ("models", "tiers", "kinds")
_TALLY_FIELDS = frozenset(_TALLY_COUNTS + _TALLY_COUNTERS)


def plugin_version() -> str:
    """This plugin's installed version (``absent`` when run from a bare checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-chatresp")
    except PackageNotFoundError:
        return "absent"


def cassette_identity(path: Path) -> str | None:
    """``sha256:<hex>`` of a cassette's bytes, or ``None`` when it is not a readable file."""
    data = read_regular(path, sys.maxsize)
    return None if data is None else "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Tally:
    """One test's share of the report."""

    read: int = 0
    replayed: int = 0
    recorded: int = 0
    models: Counter[str] = field(default_factory=Counter)
    tiers: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    #: Completions counted above that break the contract (collected cassettes count them too).
    invalid: int = 0
    #: Exchanges by kind (``Exchange.kind``): chat completions, errors, Responses API, …
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def completions(self) -> int:
        return self.read + self.replayed + self.recorded

    def add(self, other: Tally) -> None:
        self.read += other.read
        self.replayed += other.replayed
        self.recorded += other.recorded
        self.invalid += other.invalid
        self.kinds.update(other.kinds)
        self.models.update(other.models)
        self.tiers.update(other.tiers)
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "replayed": self.replayed,
            "recorded": self.recorded,
            "models": dict(sorted(self.models.items())),
            "tiers": dict(sorted(self.tiers.items())),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "invalid": self.invalid,
            "kinds": dict(sorted(self.kinds.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        return cls(
            read=int(data.get("read", 0)),
            replayed=int(data.get("replayed", 0)),
            recorded=int(data.get("recorded", 0)),
            models=Counter(data.get("models", {})),
            tiers=Counter(data.get("tiers", {})),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            total_tokens=int(data.get("total_tokens", 0)),
            invalid=int(data.get("invalid", 0)),
            kinds=Counter(data.get("kinds", {})),
        )


class RunReport:
    """Completions seen in a run, per test, plus drift: unknown fields with a count and a place."""

    def __init__(self) -> None:
        self.tests: dict[str, Tally] = {}
        self.drift: dict[str, tuple[int, str]] = {}
        #: Per replayed cassette: how many interactions it held, and which were played.
        self.played: dict[str, tuple[int, set[int]]] = {}
        #: Served models that changed when a cassette was recorded again.
        self.model_changes: list[str] = []
        #: Cassettes checked (``--chatresp-collect-cassettes``) holding no chat completion:
        #: path → kinds.
        self.no_completion: dict[str, dict[str, int]] = {}
        #: Cassettes whose age --chatresp-max-age could not tell: no provenance, Date or created.
        self.age_unknown: set[str] = set()
        #: The cassettes the report names, by their bytes (``sha256:…``; ``None``: unreadable).
        self.cassettes: dict[str, str | None] = {}
        #: The version of the plugin that wrote the reports merged here (default: this one).
        self.plugin: str | None = None
        self._verify: VerifyReport | None = None

    @property
    def verify(self) -> VerifyReport:
        """What a verify run (``--chatresp-verify``) found; empty in other runs."""
        if self._verify is None:
            from .verification import VerifyReport

            self._verify = VerifyReport()
        return self._verify

    def __bool__(self) -> bool:
        return (
            bool(self._verify)
            or any(t.completions or t.kinds for t in self.tests.values())
            or bool(self.model_changes)
            or bool(self.unplayed())
            or bool(self.no_completion)
            or bool(self.age_unknown)
        )

    def note_played(self, path: str, loaded: int, played: Iterable[int]) -> None:
        """A test replayed ``played`` of the ``loaded`` interactions of cassette ``path``."""
        known, indices = self.played.get(path, (loaded, set()))
        self.played[path] = (max(known, loaded), indices | set(played))

    def unplayed(self) -> dict[str, list[int]]:
        """Interactions of replayed cassettes that no test played."""
        out = {}
        for path, (loaded, played) in sorted(self.played.items()):
            missing = [i for i in range(loaded) if i not in played]
            if missing:
                out[path] = missing
        return out

    def add(self, nodeid: str, kind: str, completions: Iterable[Any], where: str) -> None:
        """Count ``completions`` (``ChatCompletion``) met by test ``nodeid`` as ``kind``."""
        from .cassette.figures import Figures

        figures = Figures()
        for completion in completions:
            figures.add_completion(completion)
        self.add_figures(nodeid, kind, figures, where)

    def add_exchanges(self, nodeid: str, kind: str, exchanges: Iterable[Any], where: str) -> None:
        """Count every exchange (``Exchange``) by kind, and every chat completion met as
        ``kind``, valid or not: an invalid one adds the model, tier and tokens it says."""
        from .cassette.figures import figures_of

        self.add_figures(nodeid, kind, figures_of(exchanges), where)

    def add_figures(self, nodeid: str, kind: str, figures: Figures, where: str) -> None:
        """Add the :class:`Figures` of what test ``nodeid`` met as ``kind``; ``where`` is the
        place of drift found in completions read from no cassette."""
        met = Tally(
            invalid=figures.invalid,
            kinds=figures.kinds,
            models=figures.models,
            tiers=figures.tiers,
            prompt_tokens=figures.prompt_tokens,
            completion_tokens=figures.completion_tokens,
            total_tokens=figures.total_tokens,
        )
        setattr(met, kind, figures.completions)
        self.tests.setdefault(nodeid, Tally()).add(met)
        for (path, place), count in figures.drift.items():
            self._note_drift(path, count, place if place is not None else where)

    def _note_drift(self, path: str, count: int, place: str) -> None:
        """The example shown is the first place in order, not the first met: a serial run,
        its xdist workers and its CI shards name the same one."""
        known, example = self.drift.get(path, (0, place))
        self.drift[path] = (known + count, min(example, place))

    def identify(self, root: Path) -> None:
        """Note the SHA-256 of every cassette the report names (paths relative to ``root``)."""
        for path in sorted(set(self.played) | set(self.no_completion)):
            self.cassettes[path] = cassette_identity(root / path)

    def total(self) -> Tally:
        total = Tally()
        for tally in self.tests.values():
            total.add(tally)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "plugin": self.plugin or plugin_version(),
            "total": self.total().to_dict(),
            "tests": {nodeid: t.to_dict() for nodeid, t in sorted(self.tests.items())},
            "drift": {
                path: {"count": count, "example": example}
                for path, (count, example) in sorted(self.drift.items())
            },
            "played": {
                path: {"interactions": loaded, "played": sorted(played)}
                for path, (loaded, played) in sorted(self.played.items())
            },
            "unplayed": self.unplayed(),
            "model_changes": sorted(self.model_changes),
            "no_completion": dict(sorted(self.no_completion.items())),
            "age_unknown": sorted(self.age_unknown),
            "cassettes": dict(sorted(self.cassettes.items())),
        } | ({"verify": self._verify.to_dict()} if self._verify else {})

    def merge(self, data: dict[str, Any]) -> None:
        """Add a report sent as :meth:`to_dict` (by a pytest-xdist worker)."""
        for nodeid, tally in data.get("tests", {}).items():
            known = self.tests.get(nodeid)
            if known is None:
                self.tests[nodeid] = Tally.from_dict(tally)
            else:
                known.add(Tally.from_dict(tally))
        for path, entry in data.get("drift", {}).items():
            self._note_drift(path, int(entry["count"]), entry["example"])
        for path, entry in data.get("played", {}).items():
            self.note_played(path, int(entry["interactions"]), entry["played"])
        self.model_changes.extend(data.get("model_changes", []))
        self.no_completion.update(data.get("no_completion", {}))
        self.age_unknown.update(data.get("age_unknown", []))
        self.cassettes.update(data.get("cassettes", {}))
        if data.get("verify"):
            self.verify.merge(data["verify"])

    def lines(
        self, *, verbose: bool = False, unplayed: bool = True, failing: bool = False
    ) -> list[str]:
        """The terminal summary section, secrets redacted (a served model name, a test id or
        a path may echo one); ``failing``: unplayed interactions fail the run."""
        from .hygiene.policy import Secrets, redact_text

        secrets = Secrets.from_environment()
        return [redact_text(line, secrets) for line in self._lines(verbose, unplayed, failing)]

    def _lines(self, verbose: bool, unplayed: bool, failing: bool) -> list[str]:
        if not self:
            return []
        out: list[str] = []
        if not any(t.completions for t in self.tests.values()):
            return self._kinds(self.total()) + self._hygiene(unplayed, failing)
        if verbose:
            for nodeid, tally in sorted(self.tests.items()):
                if tally.completions:
                    out.append(f"{nodeid}: {_describe(tally)}")
        total = self.total()
        out.append(f"total: {_describe(total)}")
        out.append("models: " + ", ".join(f"{m} ({n})" for m, n in sorted(total.models.items())))
        out.append("tiers: " + ", ".join(f"{t} ({n})" for t, n in sorted(total.tiers.items())))
        out.extend(self._kinds(total))
        if self.drift:
            out.append("fields the models don't know (drift):")
            for path, (count, example) in sorted(self.drift.items()):
                out.append(f"  {path}: {count} time(s), e.g. in {example}")
        return out + self._hygiene(unplayed, failing)

    def _kinds(self, total: Tally) -> list[str]:
        """Exchanges other than chat completions, by kind, and checked cassettes with none."""
        out = []
        others = {
            k: n for k, n in total.kinds.items() if k not in ("chat completion", "chat stream")
        }
        if others:
            shown = ", ".join(f"{k} ({n})" for k, n in sorted(others.items()))
            out.append(f"other exchanges: {shown}")
        if self.no_completion:
            out.append("cassettes with no chat completion (nothing in them was validated):")
            for path, kinds in sorted(self.no_completion.items()):
                held = ", ".join(f"{k} ({n})" for k, n in sorted(kinds.items())) or "no exchanges"
                out.append(f"  {path}: {held}")
        return out

    def _hygiene(self, unplayed: bool, failing: bool = False) -> list[str]:
        out = []
        if self.age_unknown:
            shown = ", ".join(sorted(self.age_unknown)[:3])
            more = len(self.age_unknown) - 3
            out.append(
                f"age unknown for {len(self.age_unknown)} cassette(s) (no recorded_at metadata, "
                f"Date header or created): {shown}" + (f" and {more} more" if more > 0 else "")
            )
        if self.model_changes:
            out.append("served model changed on re-recording:")
            out.extend(f"  {change}" for change in sorted(self.model_changes))
        missing = self.unplayed() if unplayed else {}
        if missing:
            if failing:
                out.append(
                    "interactions no test played, which fails the run (chatresp_unplayed = "
                    "fail): record the tests that use these cassettes again with"
                    " --chatresp-record-mode=all to drop them, or set chatresp_unplayed = warn:"
                )
            else:
                out.append("interactions no test played (ini chatresp_unplayed = ignore to hide):")
            for path, indices in missing.items():
                loaded = self.played[path][0]
                shown = ", ".join(str(i) for i in indices)
                out.append(f"  {path}: interaction(s) {shown} of {loaded}")
        return out

    def write_json(self, path: Path, root: Path | None = None) -> None:
        """Write :meth:`to_dict` to ``path``; with ``root``, first :meth:`identify` the
        cassettes (their paths are relative to ``root``)."""
        if root is not None:
            self.identify(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        from .hygiene.policy import redact_text

        # Redacted as text: a secret is a substring of a JSON string, REDACTED keeps it valid.
        text = redact_text(_json_lines(self.to_dict()))
        path.write_text(text + "\n", encoding="utf-8")


def _json_lines(document: dict[str, Any]) -> str:
    """``document`` as JSON with each top-level key, and each entry of a top-level object
    (a test, a cassette), on a line of its own: a diff shows which test changed, and a
    5,000-test report is written by the C encoder (``indent`` would use the slow one)."""
    lines = ["{"]
    for number, (key, value) in enumerate(document.items()):
        comma = "," if number < len(document) - 1 else ""
        if isinstance(value, dict) and value:
            lines.append(f"  {json.dumps(key)}: {{")
            entries = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            lines.append(",\n".join(entries))
            lines.append("  }" + comma)
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines)


def _describe(tally: Tally) -> str:
    invalid = f"; {tally.invalid} invalid" if tally.invalid else ""
    return (
        f"{tally.completions} chat completions ({tally.read} read, {tally.replayed} replayed, "
        f"{tally.recorded} recorded{invalid}), tokens {tally.prompt_tokens} prompt / "
        f"{tally.completion_tokens} completion / {tally.total_tokens} total"
    )


# --- reading and merging the JSON reports of CI shards ------------------------------------------
