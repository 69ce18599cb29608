"""The settings as pytest sees them: one option and one ini key each, under one ``dest``,
and the raw values a run gave them (resolved by :mod:`pytest_chatresp.settings`)."""

from __future__ import annotations

import pytest

from .settings import SETTINGS, Setting, SettingError

__all__ = ["add_options", "cli_value", "ini_value"]


def add_options(parser: pytest.Parser) -> None:
    """Each setting's option and ini key, under one dest."""
    group = parser.getgroup("chatresp", "recorded chat completion responses (pytest-chatresp)")
    for spec in SETTINGS:
        more = f" (ini {spec.ini_key})" if spec.ini else ""
        if spec.kind == "bool":
            group.addoption(
                spec.option,
                dest=spec.dest,
                action="store_true",
                default=None,
                help=spec.help + more,
            )
        elif spec.kind in ("names", "lines"):
            how = ", comma-separated" if spec.kind == "names" else ""
            group.addoption(
                spec.option,
                dest=spec.dest,
                action="append",
                default=None,
                metavar=spec.metavar,
                help=f"{spec.help}{more}; may be repeated{how}.",
            )
        else:
            group.addoption(
                spec.option,
                dest=spec.dest,
                default=None,
                metavar=spec.metavar,
                help=spec.help + more,
            )
        if spec.ini:
            parser.addini(
                spec.ini_key,
                f"{spec.help} (default: {_default(spec.default)}).",
                type=spec.ini_type,  # type: ignore[arg-type]
                default=None,
            )


def _default(value: object) -> str:
    if isinstance(value, tuple):
        return " ".join(value) or "none"
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value)


def cli_value(config: pytest.Config, spec: Setting) -> object:
    value = config.getoption(spec.dest, default=None)
    if isinstance(value, list) and spec.kind == "names":  # repeated, each comma-separated
        return [part.strip() for text in value for part in str(text).split(",") if part.strip()]
    return value


def ini_value(config: pytest.Config, spec: Setting) -> object:
    try:
        value = config.getini(spec.ini_key)
    except ValueError as exc:  # pytest could not read a bool
        raise SettingError(spec.ini_key, str(exc), spec.describe_allowed()) from None
    return value if value != [] else None
