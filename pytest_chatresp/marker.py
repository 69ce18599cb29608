"""The arguments of ``@pytest.mark.chat_cassette(...)`` as a typed object, checked once."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from .settings import BY_NAME, SettingError, parse

__all__ = ["MARKER", "CassetteMarker", "MarkerError"]

MARKER = "chat_cassette"


class MarkerError(ValueError):
    """A bad argument of the marker: names the argument, the value and what it may be."""


@dataclass(frozen=True)
class CassetteMarker:
    """What a test's ``chat_cassette`` marker says; None where it says nothing."""

    #: The cassette, relative to the cassette dir (default: ``<module>/<test name>.yaml``).
    path: str | None = None
    record_mode: str | None = None
    serializer: str | None = None
    #: vcrpy matchers for this test's requests.
    match_on: tuple[str, ...] | None = None
    #: Allowances added to ``chatresp_allow`` for this test.
    allow: tuple[str, ...] | None = None
    #: Checks skipped on top of ``chatresp_skip_checks`` for this test.
    skip_checks: tuple[str, ...] | None = None
    #: The test's cassette is known to break the contract (a regression test of the checks).
    expect_violations: bool = False

    @classmethod
    def arguments(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def signature(cls) -> str:
        return (
            f"{MARKER}(path=None, *, record_mode=None, serializer=None, match_on=None, "
            "allow=None, skip_checks=None, expect_violations=False)"
        )

    @classmethod
    def parse(cls, args: Sequence[Any], kwargs: Mapping[str, Any]) -> CassetteMarker:
        """The marker's arguments, checked; raises :class:`MarkerError` for the first bad one."""
        names = cls.arguments()
        unknown = [key for key in kwargs if key not in names]
        if unknown:
            raise MarkerError(
                f"@pytest.mark.{MARKER}({unknown[0]}=...): {unknown[0]!r} is not an argument; "
                f"it takes: {', '.join(names)}"
            )
        if len(args) > 1 or (args and "path" in kwargs):
            raise MarkerError(
                f"@pytest.mark.{MARKER} takes one positional argument, the cassette path; "
                f"got {len(args) + ('path' in kwargs)}"
            )
        values: dict[str, Any] = {}
        path = kwargs.get("path", args[0] if args else None)
        if path is not None:
            if not isinstance(path, str | os.PathLike) or not os.fspath(path):
                raise MarkerError(
                    f"@pytest.mark.{MARKER}(path={path!r}): the cassette path must be a "
                    "non-empty string"
                )
            values["path"] = os.fspath(path)
        for name in ("record_mode", "serializer", "allow", "skip_checks"):
            value = kwargs.get(name)
            if value is None:
                continue
            try:
                values[name] = parse(BY_NAME[name], value, where=f"{name}=")
            except SettingError as exc:
                raise MarkerError(
                    f"@pytest.mark.{MARKER}({name}={value!r}): {exc.allowed}"
                ) from None
        match_on = kwargs.get("match_on")
        if match_on is not None:
            if isinstance(match_on, str):
                match_on = [match_on]
            if not isinstance(match_on, list | tuple) or not all(
                isinstance(m, str) for m in match_on
            ):
                raise MarkerError(
                    f"@pytest.mark.{MARKER}(match_on={match_on!r}): use a list of vcrpy "
                    "matcher names"
                )
            values["match_on"] = tuple(match_on)
        expect = kwargs.get("expect_violations", False)
        if not isinstance(expect, bool):
            raise MarkerError(
                f"@pytest.mark.{MARKER}(expect_violations={expect!r}): use True or False"
            )
        values["expect_violations"] = expect
        return cls(**values)

    def settings(self) -> dict[str, Any]:
        """The settings this marker sets, for :meth:`Settings.with_marker`."""
        return {
            name: getattr(self, name)
            for name in ("record_mode", "serializer", "allow", "skip_checks")
            if getattr(self, name) is not None
        }
