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

from pytest_chatresp.discovery import Found, cassette_roots, find
from pytest_chatresp.errors import display_path

from .output import UsageError

if TYPE_CHECKING:
    from pytest_chatresp.hygiene.scrub import ScrubRules

__all__ = ["ProjectSettings", "cassettes_named", "project_settings", "scrub_rules"]


@dataclass(frozen=True)
class ProjectSettings:
    """What the subcommands read from the project: where cassettes live and the rules."""

    #: The directory relative settings start from: the ini file's, else the working directory.
    rootdir: Path
    #: The ini file read, if any.
    inifile: Path | None
    cassette_dir: Path
    strict: bool = False
    allow: tuple[str, ...] = ()
    skip_checks: tuple[str, ...] = ()
    filter_request_headers: tuple[str, ...] = ()
    filter_response_headers: tuple[str, ...] = ()
    filter_query_parameters: tuple[str, ...] = ()


def _start(paths: Sequence[str]) -> Path:
    """Where pytest would look for the ini: the common ancestor of the paths given that exist
    (a file's directory), else the working directory."""
    existing = [Path(os.path.abspath(p)) for p in paths if os.path.lexists(p)]
    directories = [str(p if p.is_dir() else p.parent) for p in existing]
    return Path(os.path.commonpath(directories)) if directories else Path(os.getcwd())


def _flag(args: argparse.Namespace, name: str) -> tuple[str, ...] | None:
    given = getattr(args, name, None)
    return tuple(given) if given else None


def project_settings(args: argparse.Namespace) -> ProjectSettings:
    """The settings for this run of the command, in the order command line → ini → default.

    The ini is the one pytest would read here (:func:`~pytest_chatresp.settings.read_project_ini`,
    from the paths given, else the working directory), its ``chatresp_*`` values resolved and
    checked by the plugin's own rules: a bad value is a usage error naming the key. The command's
    flags (``--strict``, ``--allow``, ``--skip-checks``) replace the ini's values.
    """
    from pytest_chatresp.settings import SettingError, load_settings, read_project_ini

    paths = [*getattr(args, "paths", ()), *getattr(args, "cassettes", ())]
    try:
        ini = read_project_ini(_start(paths))
        configured = load_settings({}, ini.values)
    except SettingError as exc:  # names the key (or the unreadable file), the value, the fix
        raise UsageError(str(exc)) from None
    rootdir = ini.rootdir if ini.rootdir is not None else Path(os.getcwd())
    strict = getattr(args, "strict", None)
    return ProjectSettings(
        rootdir=rootdir,
        inifile=ini.path,
        cassette_dir=rootdir / configured.cassette_dir,
        strict=configured.strict if strict is None else bool(strict),
        allow=_flag(args, "allow") or configured.allow,
        skip_checks=_flag(args, "skip_checks") or configured.skip_checks,
        filter_request_headers=configured.filter_request_headers,
        filter_response_headers=configured.filter_response_headers,
        filter_query_parameters=configured.filter_query_parameters,
    )


def cassettes_named(
    paths: Sequence[str], settings: ProjectSettings, *, links: bool = False
) -> Found:
    """The cassette files below ``paths`` (default: the project's cassette dir and each
    ``cassettes/`` folder beside a test module, pytest-recording's layout); a path that does
    not exist is a usage error."""
    if not paths:
        roots = [
            root
            for root in cassette_roots(settings.cassette_dir, settings.rootdir)
            if os.path.lexists(root)
        ]
        if not roots:
            raise UsageError(f"no such file or directory: {display_path(settings.cassette_dir)}")
        return find(roots, links=links)
    missing = [argument for argument in paths if not os.path.lexists(argument)]
    if missing:
        raise UsageError("; ".join(f"no such file or directory: {m}" for m in missing))
    return find(paths, links=links)


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
    from pytest_chatresp.hygiene.scrub import ScrubRules

    rules = ScrubRules.default(headers=headers, query_parameters=query_parameters)
    return dataclasses.replace(
        rules,
        request_headers=rules.request_headers | _names(settings.filter_request_headers),
        response_headers=rules.response_headers | _names(settings.filter_response_headers),
        query_parameters=rules.query_parameters | _names(settings.filter_query_parameters),
    )
