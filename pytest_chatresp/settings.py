"""Every setting of pytest-chatresp, declared once, and the one way a value is resolved.

Each field of :class:`Settings` is a setting: its ini key is ``chatresp_<name>``, its command-line
option ``--chatresp-<name-with-dashes>``, both under the dest ``chatresp_<name>``. A value is
resolved by :func:`resolve` in the order marker → command line → ini → default, for the plugin
and for the ``chatresp`` command alike; :func:`read_project_ini` reads a project's ini file the
way pytest finds it, so the command sees what ``pytest`` sees. This module imports no pytest.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .inifile import UnreadableConfig, find_pytest_config

__all__ = [
    "LAYOUTS",
    "RECORD_MODES",
    "SERIALIZERS",
    "SETTINGS",
    "UNPLAYED",
    "ProjectIni",
    "Setting",
    "SettingError",
    "Settings",
    "load_settings",
    "parse",
    "read_project_ini",
    "resolve",
    "setting",
]

RECORD_MODES = ("none", "once", "new_episodes", "all")
LAYOUTS = ("chatresp", "pytest-recording")
SERIALIZERS = ("readable", "yaml", "json")
UNPLAYED = ("ignore", "warn", "fail")

#: How a value is written: pytest's ini types, plus a number and a choice among names.
Kind = Literal["string", "bool", "float", "count", "choice", "names", "lines"]
#: pytest's ini type for each kind (``None``: a string; a bool is read here, so that a bad
#: one is reported like any other bad value).
INI_TYPES: dict[str, str | None] = {
    "string": None,
    "bool": None,
    "float": None,
    "count": None,
    "choice": None,
    "names": "args",
    "lines": "linelist",
}


class SettingError(ValueError):
    """A bad value of a setting: names the setting, the value and what it may be."""

    def __init__(self, where: str, value: object, allowed: str, *, reason: bool = False) -> None:
        self.where, self.value, self.allowed = where, value, allowed
        if reason:  # ``allowed`` already says what is wrong with the value
            super().__init__(f"{where}: {allowed}")
        else:
            super().__init__(f"{where} = {_shown(value)} is not valid; {allowed}.")


def _shown(value: object) -> str:
    if isinstance(value, list | tuple):
        return " ".join(repr(str(v)) for v in value) or "(empty)"
    return repr(value)


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting (the metadata of a :class:`Settings` field)."""

    kind: Kind
    help: str
    choices: tuple[str, ...] = ()
    #: The marker may set it (``@pytest.mark.chat_cassette(record_mode=...)``).
    marker: bool = False
    #: The marker's value adds to the run's instead of replacing it.
    marker_adds: bool = False
    #: An ini key (False: a command-line choice only).
    ini: bool = True
    metavar: str | None = None
    #: The allowed values when they are known only at run time (the check names).
    names: Callable[[], Sequence[str]] | None = None
    #: Validates the parsed value further; raises ``ValueError`` with the reason.
    validate: Callable[[Any], None] | None = None
    name: str = ""
    default: Any = None

    @property
    def ini_key(self) -> str:
        return f"chatresp_{self.name}"

    @property
    def dest(self) -> str:
        return f"chatresp_{self.name}"

    @property
    def option(self) -> str:
        return "--chatresp-" + self.name.replace("_", "-")

    @property
    def ini_type(self) -> str | None:
        return INI_TYPES[self.kind]

    def allowed(self) -> tuple[str, ...]:
        return tuple(self.names()) if self.names is not None else self.choices

    def describe_allowed(self) -> str:
        allowed = self.allowed()
        if allowed:
            return f"use one of: {', '.join(allowed)}"
        return {
            "bool": "use true or false",
            "float": "use a number of days",
            "count": "use a whole number, 0 or more",
            "string": "use a string",
            "names": "use names separated by spaces",
            "lines": "use one value per line",
            "choice": "use one of the choices",
        }[self.kind]


def setting(default: Any, kind: Kind, help: str, **more: Any) -> Any:
    """A field of :class:`Settings`: its default and its declaration."""
    spec = Setting(kind=kind, help=help, default=default, **more)
    if isinstance(default, list | tuple):
        return field(default=tuple(default), metadata={"setting": spec})
    return field(default=default, metadata={"setting": spec})


def _check_names() -> Sequence[str]:
    from .checks import CHECKS

    return tuple(CHECKS)


def _valid_allowances(lines: tuple[str, ...]) -> None:
    from .providers import parse_allowances

    parse_allowances(lines)


def _valid_age(days: float | None) -> None:
    if days is not None and not (0 < days < float("inf")):
        raise ValueError(
            f"{days:g} is not a number of days greater than 0 (0.5 is twelve hours; leave it "
            "unset for no age limit)"
        )


@dataclass(frozen=True)
class Settings:
    """The resolved settings of a run (or of one test, with its marker on top)."""

    cassette_dir: str = setting(
        "cassettes",
        "string",
        "directory of the cassettes (ini: relative to the rootdir; command line: to the "
        "current directory)",
        metavar="DIR",
    )
    cassette_layout: str = setting(
        "chatresp",
        "choice",
        "where a test's cassette is found and a new one recorded: chatresp "
        "(<cassette dir>/<module>/<test>.yaml) or pytest-recording "
        "(<test file's dir>/cassettes/<module>/<test>.yaml); an existing cassette in the "
        "other layout is read when there is none in this one",
        choices=LAYOUTS,
        metavar="LAYOUT",
    )
    record_mode: str = setting(
        "none",
        "choice",
        "none (replay only), once (record a missing cassette), new_episodes (replay, and "
        "record requests not in the cassette) or all (record everything again)",
        choices=RECORD_MODES,
        marker=True,
        metavar="MODE",
    )
    serializer: str = setting(
        "readable",
        "choice",
        "format of new cassettes: readable, yaml or json",
        choices=SERIALIZERS,
        marker=True,
        metavar="FORMAT",
    )
    strict: bool = setting(
        False, "bool", "also reject unknown fields and coerced values, and require nullable keys"
    )
    allow: tuple[str, ...] = setting(
        (),
        "lines",
        "deviations to accept: FIELD=VALUE (service_tier=on_demand, "
        "choices[].finish_reason=eos) or CHECK:BEHAVIOUR (stream:no-done), one per line",
        marker=True,
        marker_adds=True,
        validate=_valid_allowances,
        metavar="ALLOWANCE",
    )
    skip_checks: tuple[str, ...] = setting(
        (),
        "names",
        "contract checks to skip, by name",
        marker=True,
        marker_adds=True,
        names=_check_names,
        metavar="CHECK",
    )
    max_age: float | None = setting(
        None,
        "float",
        "warn (CassetteAgeWarning) about cassettes recorded more than DAYS days ago",
        validate=_valid_age,
        metavar="DAYS",
    )
    unplayed: str = setting(
        "warn",
        "choice",
        "after a replay run, interactions of used cassettes that no test played: ignore, "
        "warn or fail (exit status 1)",
        choices=UNPLAYED,
        metavar="WHAT",
    )
    block_network: bool = setting(
        False,
        "bool",
        "in a replay run (record mode none), let no test connect to a host other than "
        "loopback and the allowed hosts",
    )
    allow_hosts: tuple[str, ...] = setting(
        (), "names", "hosts a test may connect to where the network is blocked", metavar="HOST"
    )
    filter_request_headers: tuple[str, ...] = setting(
        (), "names", "more request headers to scrub before a cassette is written", metavar="NAME"
    )
    filter_response_headers: tuple[str, ...] = setting(
        (), "names", "more response headers to scrub before a cassette is written", metavar="NAME"
    )
    filter_query_parameters: tuple[str, ...] = setting(
        (), "names", "more query parameters to scrub before a cassette is written", metavar="NAME"
    )
    collect_cassettes: bool = setting(
        False,
        "bool",
        "collect every cassette under the cassette dir as a test item that validates it",
        ini=False,
    )
    update_shapes: bool = setting(
        False,
        "bool",
        "write missing shape files (chat_shape) and rewrite those that differ",
        ini=False,
    )
    report_json: str | None = setting(
        None,
        "string",
        "write the run report (completions, models, tiers, tokens, drift) as JSON",
        ini=False,
        metavar="PATH",
    )
    verify: bool = setting(
        False,
        "bool",
        "send every request of the marked tests to the live service (a real API key needed) "
        "and list how the answers differ from the recordings; nothing is written",
        ini=False,
    )
    verify_max_requests: int | None = setting(
        None,
        "count",
        "with --chatresp-verify: skip the marked tests left once N live requests were sent",
        metavar="N",
    )
    verify_max_tokens: int | None = setting(
        None,
        "count",
        "with --chatresp-verify: skip the marked tests left once the live answers used N tokens",
        metavar="N",
    )
    verify_served_model: bool = setting(
        True,
        "bool",
        "with --chatresp-verify: a change of served model alone (gpt-4o-2024-08-06 → "
        "gpt-4o-2024-11-20) counts as drift and fails the run",
    )

    def with_marker(self, marker: Mapping[str, Any]) -> Settings:
        """These settings with a test's marker arguments on top (those the marker may set)."""
        changes: dict[str, Any] = {}
        for spec in SETTINGS:
            if spec.marker and marker.get(spec.name) is not None:
                changes[spec.name] = resolve(
                    spec, marker=marker[spec.name], cli=getattr(self, spec.name)
                )
        return dataclasses.replace(self, **changes) if changes else self


def _declared() -> tuple[Setting, ...]:
    out = []
    for f in dataclasses.fields(Settings):
        spec: Setting = f.metadata["setting"]
        out.append(dataclasses.replace(spec, name=f.name, default=f.default))
    return tuple(out)


#: Every setting, in the order of the README's table.
SETTINGS: tuple[Setting, ...] = _declared()
BY_NAME: dict[str, Setting] = {spec.name: spec for spec in SETTINGS}


# --- parsing and resolution ----------------------------------------------------------------------


def _bool(spec: Setting, where: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "y", "on", "t"):
        return True
    if text in ("0", "false", "no", "n", "off", "f"):
        return False
    raise SettingError(where, raw, spec.describe_allowed())


def _strings(spec: Setting, where: str, raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        if spec.kind == "lines":
            return tuple(line.strip() for line in raw.splitlines() if line.strip())
        return tuple(shlex.split(raw))
    if isinstance(raw, list | tuple) and all(isinstance(v, str) for v in raw):
        return tuple(str(v).strip() for v in raw if str(v).strip())
    raise SettingError(where, raw, "use a string or a list of strings")


def parse(spec: Setting, raw: object, where: str | None = None) -> Any:
    """The typed value of a raw one (an ini string or list, a command-line value, a marker
    argument); raises :class:`SettingError` naming ``where`` (default: the ini key)."""
    where = where or spec.ini_key
    value: Any
    if spec.kind == "bool":
        value = _bool(spec, where, raw)
    elif spec.kind == "float":
        try:
            value = float(str(raw).strip()) if str(raw).strip() else None
        except ValueError:
            raise SettingError(where, raw, spec.describe_allowed()) from None
    elif spec.kind == "count":
        text = str(raw).strip()
        if text and not (text.isascii() and text.isdigit()):
            raise SettingError(where, raw, spec.describe_allowed())
        value = int(text) if text else None
    elif spec.kind in ("names", "lines"):
        value = _strings(spec, where, raw)
        allowed = spec.allowed()
        unknown = [name for name in value if allowed and name not in allowed]
        if unknown:
            raise SettingError(where, unknown, spec.describe_allowed())
    else:
        if not isinstance(raw, str):
            raise SettingError(where, raw, spec.describe_allowed())
        value = raw.strip() if spec.kind == "choice" else raw
        if spec.choices and value not in spec.choices:
            raise SettingError(where, raw, spec.describe_allowed())
    if spec.validate is not None and value is not None:
        try:
            spec.validate(value)
        except ValueError as exc:
            raise SettingError(where, raw, str(exc), reason=True) from None
    return value


def resolve(
    spec: Setting,
    *,
    marker: object = None,
    cli: object = None,
    ini: object = None,
    marker_where: str | None = None,
) -> Any:
    """The value of one setting: the marker's, else the command line's, else the ini's, else
    the default (None: not given). A marker value of a ``marker_adds`` setting adds to the rest.
    """
    base = spec.default
    for raw, where in ((ini, spec.ini_key), (cli, spec.option)):
        if raw is not None:
            base = parse(spec, raw, where)
    if marker is None:
        return base
    value = parse(spec, marker, marker_where or f"{spec.name}=")
    if spec.marker_adds:
        return tuple(dict.fromkeys((*base, *value)))
    return value


def load_settings(cli: Mapping[str, object], ini: Mapping[str, object]) -> Settings:
    """The run's settings from command-line values and ini values, keyed by setting name
    (None or absent: not given). Raises :class:`SettingError` for the first bad value."""
    return Settings(
        **{
            spec.name: resolve(spec, cli=cli.get(spec.name), ini=ini.get(spec.name))
            for spec in SETTINGS
        }
    )


# --- the project's ini file, as pytest finds it --------------------------------------------------


@dataclass(frozen=True)
class ProjectIni:
    """The ini file pytest would use from a directory, and its chatresp values."""

    #: The rootdir pytest would choose (the ini file's directory), or None without one.
    rootdir: Path | None
    #: The file read, or None.
    path: Path | None
    #: Raw values of the chatresp settings it sets, keyed by setting name: a string, a bool,
    #: or a list of strings, as pytest's ``getini`` would give them for the setting's type.
    values: dict[str, object] = field(default_factory=dict)


def _raw(spec: Setting, value: object) -> object:
    """A value as pytest's ``getini`` gives it for the setting's type."""
    if not isinstance(value, str):
        return value  # TOML: native types, checked when parsed
    if spec.kind == "names":
        return shlex.split(value)
    if spec.kind == "lines":
        return [line.strip() for line in value.splitlines() if line.strip()]
    if spec.kind == "bool":
        return _bool(spec, spec.ini_key, value)
    return value


def read_project_ini(start: Path) -> ProjectIni:
    """The chatresp values of the ini file pytest would read when run in ``start`` (see
    :func:`pytest_chatresp.inifile.find_pytest_config`); a file that cannot be read is a
    :class:`SettingError` naming it."""
    try:
        found = find_pytest_config(start)
    except UnreadableConfig as exc:
        raise SettingError(str(exc.path), "(unreadable)", f"fix the file: {exc.reason}") from None
    return ProjectIni(found.rootdir, found.path, _chatresp_values(found.section))


def _chatresp_values(section: Mapping[str, object]) -> dict[str, object]:
    values: dict[str, object] = {}
    for spec in SETTINGS:
        if spec.ini and spec.ini_key in section:
            values[spec.name] = _raw(spec, section[spec.ini_key])
    return values
