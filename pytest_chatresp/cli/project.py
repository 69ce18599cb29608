"""The project as the command sees it: its settings (its ini, found as pytest finds it, under
the command's flags) and its cassette files, so that ``chatresp`` judges cassettes as ``pytest``
does."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_chatresp.discovery import Found, find

from .output import UsageError

if TYPE_CHECKING:
    from pytest_chatresp.scrub import ScrubRules

__all__ = ["ProjectSettings", "cassettes_named", "project_settings", "scrub_rules"]

DEFAULT_CASSETTE_DIR = "cassettes"


@dataclass(frozen=True)
class ProjectSettings:
    """What the subcommands read from the project: where cassettes live and the rules."""

    #: The directory relative settings start from (the ini file's; the working directory).
    rootdir: Path
    cassette_dir: Path
    strict: bool = False
    allow: tuple[str, ...] = ()
    skip_checks: tuple[str, ...] = ()
    filter_request_headers: tuple[str, ...] = ()
    filter_response_headers: tuple[str, ...] = ()
    filter_query_parameters: tuple[str, ...] = ()


def _flag(args: argparse.Namespace, name: str) -> tuple[str, ...] | None:
    given = getattr(args, name, None)
    return tuple(given) if given else None


def project_settings(args: argparse.Namespace) -> ProjectSettings:
    """The settings for this run of the command: each flag given, else the default."""
    rootdir = Path(os.getcwd())
    return ProjectSettings(
        rootdir=rootdir,
        cassette_dir=rootdir / DEFAULT_CASSETTE_DIR,
        strict=bool(getattr(args, "strict", False)),
        allow=_flag(args, "allow") or (),
        skip_checks=_flag(args, "skip_checks") or (),
    )


def cassettes_named(
    paths: Sequence[str], settings: ProjectSettings, *, links: bool = False
) -> Found:
    """The cassette files below ``paths`` (default: the project's cassette dir); a path that
    does not exist is a usage error."""
    from pytest_chatresp.errors import display_path

    arguments = list(paths) or [display_path(settings.cassette_dir)]
    missing = [argument for argument in arguments if not os.path.lexists(argument)]
    if missing:
        raise UsageError("; ".join(f"no such file or directory: {m}" for m in missing))
    return find(arguments, links=links)


def _names(values: Iterable[str]) -> frozenset[str]:
    return frozenset(name.strip().lower() for name in values if name.strip())


def scrub_rules(
    settings: ProjectSettings,
    *,
    headers: Iterable[str] = (),
    query_parameters: Iterable[str] = (),
) -> ScrubRules:
    """The recording's scrub rules with the project's ``chatresp_filter_*`` names, plus
    ``headers`` (request and response) and ``query_parameters`` given on the command line."""
    from pytest_chatresp.scrub import ScrubRules

    rules = ScrubRules.default(headers=headers, query_parameters=query_parameters)
    return dataclasses.replace(
        rules,
        request_headers=rules.request_headers | _names(settings.filter_request_headers),
        response_headers=rules.response_headers | _names(settings.filter_response_headers),
        query_parameters=rules.query_parameters | _names(settings.filter_query_parameters),
    )
