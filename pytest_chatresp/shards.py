"""CI shards: reading the JSON reports that ``--chatresp-report-json`` wrote, checking each
strictly (its format, counts and cassette identities) and merging them into the report one run
of all their tests would have written. No pytest: ``chatresp report`` uses it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import CassetteError, display_path
from .files import read_regular
from .report import (
    _MAX_INTERACTIONS,
    _MAX_REPORT_BYTES,
    _TALLY_COUNTERS,
    _TALLY_COUNTS,
    _TALLY_FIELDS,
    REPORT_FORMAT,
    RunReport,
    plugin_version,
)
from .verification import TestVerification

__all__ = ["check_report", "merge_reports", "read_report"]


class _Malformed(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def _type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _expect(value: Any, kind: type, where: str, wanted: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Malformed(where, f"expected {wanted}, got {_type(value)}")
    return value


def _count_at(value: Any, where: str) -> int:
    number: int = _expect(value, int, where, "a count (an integer of 0 or more)")
    if number < 0:
        raise _Malformed(where, f"expected a count (an integer of 0 or more), got {number}")
    return number


def _object(value: Any, where: str) -> dict[str, Any]:
    mapping: dict[str, Any] = _expect(value, dict, where, "an object")
    return mapping


def _strings(value: Any, where: str) -> list[str]:
    items: list[Any] = _expect(value, list, where, "an array of strings")
    for position, item in enumerate(items):
        _expect(item, str, f"{where}[{position}]", "a string")
    return items


def _fields(value: Any, where: str, required: Sequence[str]) -> dict[str, Any]:
    mapping = _object(value, where)
    prefix = f"{where}." if where else ""
    for name in required:
        if name not in mapping:
            raise _Malformed(f"{prefix}{name}", "missing")
    for name in mapping:
        if name not in required:
            raise _Malformed(f"{prefix}{name}", "not a field of this report format")
    return mapping


def _check_tally(tally: Any, where: str) -> None:
    # The usual case checked quickly; the message built only for what is wrong.
    if type(tally) is not dict or tally.keys() != _TALLY_FIELDS:
        _fields(tally, where, _TALLY_COUNTS + _TALLY_COUNTERS)
    for name in _TALLY_COUNTS:
        number = tally[name]
        if type(number) is not int or number < 0:
            _count_at(number, f"{where}.{name}")
    for name in _TALLY_COUNTERS:
        counts = tally[name]
        if type(counts) is not dict:
            _object(counts, f"{where}.{name}")
        for key, number in counts.items():
            if type(number) is not int or number < 0:
                _count_at(number, f"{where}.{name}[{key!r}]")


def _sum_of(tallies: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The ``to_dict`` of the total of tallies given as ``to_dict``."""
    total: dict[str, Any] = dict.fromkeys(_TALLY_COUNTS, 0)
    for name in _TALLY_COUNTERS:
        total[name] = {}
    for tally in tallies:
        for name in _TALLY_COUNTS:
            total[name] += tally[name]
        for name in _TALLY_COUNTERS:
            counts = total[name]
            for key, number in tally[name].items():
                counts[key] = counts.get(key, 0) + number
    return total


def _check_document(document: Any) -> None:
    """Raise :class:`_Malformed` unless ``document`` is a report of :data:`REPORT_FORMAT`."""
    if not isinstance(document, dict):
        raise _Malformed(
            "", f"not a pytest-chatresp report (expected an object, got {_type(document)})"
        )
    if "format" not in document:
        raise _Malformed(
            "format",
            "missing: not a pytest-chatresp report, or one written by a version before 1 was "
            "its format; write it again with pytest --chatresp-report-json",
        )
    if document["format"] != REPORT_FORMAT or isinstance(document["format"], bool):
        raise _Malformed(
            "format",
            f"report format {document['format']!r} is not one this pytest-chatresp "
            f"({plugin_version()}) reads (format {REPORT_FORMAT}): merge the reports with the "
            "version that wrote them",
        )
    _fields(
        document,
        "",
        (
            "format",
            "plugin",
            "total",
            "tests",
            "drift",
            "played",
            "unplayed",
            "model_changes",
            "no_completion",
            "age_unknown",
            "cassettes",
            *(("verify",) if "verify" in document else ()),
        ),
    )
    if "verify" in document:
        _check_verify(document["verify"])
    _expect(document["plugin"], str, "plugin", "a string")
    _check_tally(document["total"], "total")
    for nodeid, tally in _object(document["tests"], "tests").items():
        _check_tally(tally, f"tests[{nodeid!r}]")
    for path, value in _object(document["drift"], "drift").items():
        where = f"drift[{path!r}]"
        drift = _fields(value, where, ("count", "example"))
        _count_at(drift["count"], f"{where}.count")
        _expect(drift["example"], str, f"{where}.example", "a string")
    for path, value in _object(document["played"], "played").items():
        where = f"played[{path!r}]"
        entry = _fields(value, where, ("interactions", "played"))
        loaded = _count_at(entry["interactions"], f"{where}.interactions")
        if loaded > _MAX_INTERACTIONS:
            raise _Malformed(
                f"{where}.interactions", f"{loaded} interactions: more than a cassette holds"
            )
        indices = _expect(entry["played"], list, f"{where}.played", "an array of indices")
        for position, index in enumerate(indices):
            if _count_at(index, f"{where}.played[{position}]") >= loaded:
                raise _Malformed(
                    f"{where}.played[{position}]",
                    f"interaction {index} of a cassette of {loaded} interaction(s)",
                )
    for path, indices in _object(document["unplayed"], "unplayed").items():
        _expect(indices, list, f"unplayed[{path!r}]", "an array of indices")
    _strings(document["model_changes"], "model_changes")
    for path, kinds in _object(document["no_completion"], "no_completion").items():
        for kind, count in _object(kinds, f"no_completion[{path!r}]").items():
            _count_at(count, f"no_completion[{path!r}][{kind!r}]")
    _strings(document["age_unknown"], "age_unknown")
    for path, identity in _object(document["cassettes"], "cassettes").items():
        if identity is not None:
            _expect(identity, str, f"cassettes[{path!r}]", "a string or null")
    if _sum_of(document["tests"].values()) != document["total"]:
        raise _Malformed("total", "does not add up to the tests' figures: the file was edited")


def _check_verify(section: Any) -> None:
    fields = ("requests", "tokens", "tests", "not_verified", "stopped")
    verify = _fields(section, "verify", fields)
    _count_at(verify["requests"], "verify.requests")
    _count_at(verify["tokens"], "verify.tokens")
    for nodeid, entry in _object(verify["tests"], "verify.tests").items():
        where = f"verify.tests[{nodeid!r}]"
        test = _fields(entry, where, tuple(TestVerification(cassette="").to_dict()))
        _expect(test["cassette"], str, f"{where}.cassette", "a string")
        _count_at(test["requests"], f"{where}.requests")
        _count_at(test["tokens"], f"{where}.tokens")
        for key in ("changes", "served_model", "violations", "unmatched"):
            _strings(test[key], f"{where}.{key}")
    for nodeid, reason in _object(verify["not_verified"], "verify.not_verified").items():
        _expect(reason, str, f"verify.not_verified[{nodeid!r}]", "a string")
    _strings(verify["stopped"], "verify.stopped")


def check_report(document: Any, name: str) -> None:
    """Raise :class:`~pytest_chatresp.errors.CassetteError` naming ``name`` (the file) and the
    field unless ``document`` is a JSON report this version reads."""
    try:
        _check_document(document)
    except _Malformed as exc:
        raise CassetteError.single(name, exc.message, field=exc.where or None) from None


def read_report(path: Path) -> dict[str, Any]:
    """The JSON report at ``path``, parsed (:func:`merge_reports` checks it)."""
    shown = display_path(path)
    data = read_regular(path, _MAX_REPORT_BYTES)
    if data is None:
        problem = "no such file" if not path.exists() else "not a regular file, or over 1 GiB"
        raise CassetteError.single(shown, f"cannot read the report: {problem}")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CassetteError.single(shown, f"not a JSON report: {exc}") from None
    result: dict[str, Any] = document
    return result


def merge_reports(
    documents: Sequence[dict[str, Any]], names: Sequence[str] | None = None
) -> RunReport:
    """The report of the shards whose JSON reports are ``documents`` (named ``names``).

    It is the report one run of all their tests writes: figures added up, played interactions
    joined (an interaction is unplayed when no shard played it). Raises
    :class:`~pytest_chatresp.errors.CassetteError` for a malformed report, for reports of
    different plugin versions, for a test that two shards ran, and for a cassette whose bytes
    differ between shards.
    """
    names = list(names) if names is not None else [f"report {n + 1}" for n in range(len(documents))]
    if len(names) != len(documents):
        raise ValueError("one name per document")
    for document, name in zip(documents, names, strict=True):
        check_report(document, name)
    report = RunReport()
    ran: dict[str, str] = {}
    seen: dict[str, tuple[str | None, str]] = {}
    sizes: dict[str, tuple[int, str]] = {}
    for document, name in zip(documents, names, strict=True):
        first = names[0]
        if document["plugin"] != documents[0]["plugin"]:
            raise CassetteError.single(
                name,
                f"written by pytest-chatresp {document['plugin']}, {first} by "
                f"{documents[0]['plugin']}: merge the reports of shards that ran one version",
                field="plugin",
            )
        for nodeid in document["tests"]:
            if nodeid in ran:
                again = (
                    "is given twice"
                    if ran[nodeid] == name
                    else f"holds {nodeid}, which ran in {ran[nodeid]} too"
                )
                raise CassetteError.single(
                    name,
                    f"{again}: shards must run disjoint sets of tests, or their figures would "
                    "count twice",
                    field="tests",
                )
            ran[nodeid] = name
        for path, identity in document["cassettes"].items():
            known = seen.setdefault(path, (identity, name))
            if known[0] != identity:
                raise CassetteError.single(
                    name,
                    f"{path} is {_identity(identity)} here and {_identity(known[0])} in "
                    f"{known[1]}: the shards ran on different cassette contents; run every "
                    "shard on one commit",
                    field="cassettes",
                )
        for path, entry in document["played"].items():
            known_size = sizes.setdefault(path, (entry["interactions"], name))
            if known_size[0] != entry["interactions"]:
                raise CassetteError.single(
                    name,
                    f"{path} holds {entry['interactions']} interaction(s) here and "
                    f"{known_size[0]} in {known_size[1]}: the shards ran on different cassette "
                    "contents",
                    field="played",
                )
        report.merge(document)
    report.plugin = documents[0]["plugin"] if documents else None
    return report


def _identity(identity: str | None) -> str:
    return "unreadable" if identity is None else identity[:19] + "…"
