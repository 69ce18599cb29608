"""The configuration file pytest would read, found as pytest finds it: from a directory upward,
the first of pytest.toml, pytest.ini (its ``[pytest]`` section wins even when empty),
pyproject.toml (``[tool.pytest.ini_options]``), tox.ini (``[pytest]``) and setup.cfg
(``[tool:pytest]``); a pyproject.toml without pytest settings still names the rootdir.

It knows nothing of the settings (``settings.py`` reads its values) nor of messages
(``errors.py`` takes the rootdir from it to show paths): no import of either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FoundConfig", "UnreadableConfig", "find_pytest_config"]


class UnreadableConfig(ValueError):
    """A configuration file that cannot be read (bad TOML or ini syntax, bad encoding)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


@dataclass(frozen=True)
class FoundConfig:
    """The rootdir pytest would choose, the file it would read, and its pytest section."""

    rootdir: Path | None
    path: Path | None
    section: dict[str, object] = field(default_factory=dict)


def find_pytest_config(start: Path) -> FoundConfig:
    """The configuration pytest would use when run in ``start``."""
    start = start.resolve()
    pyproject: Path | None = None
    for base in (start, *start.parents):
        for name in _CANDIDATES:
            path = base / name
            if not path.is_file():
                continue
            if name == "pyproject.toml" and pyproject is None:
                pyproject = path
            section = _pytest_section(path)
            if section is not None:
                return FoundConfig(base, path, section)
    if pyproject is not None:
        return FoundConfig(pyproject.parent, pyproject)
    return FoundConfig(None, None)


def _ini_sections(path: Path, sections: Iterable[str]) -> dict[str, str] | None:
    import configparser  # imported when a file is read: not at the plugin's start

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise UnreadableConfig(path, str(exc)) from None
    for section in sections:
        if parser.has_section(section):
            return dict(parser.items(section))
    return None


def _toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UnreadableConfig(path, str(exc)) from None


def _pytest_section(path: Path) -> dict[str, object] | None:
    """pytest's configuration in one candidate file, or None when the file has none."""
    name = path.name
    if name in ("pytest.toml", ".pytest.toml"):
        table = _toml(path).get("pytest", {})
        return dict(table) if isinstance(table, dict) else {}
    if name in ("pytest.ini", ".pytest.ini"):
        return dict(_ini_sections(path, ("pytest",)) or {})  # wins even when empty
    if name == "pyproject.toml":
        tool = _toml(path).get("tool", {})
        pytest_table = tool.get("pytest") if isinstance(tool, dict) else None
        if not isinstance(pytest_table, dict):
            return None
        options = pytest_table.get("ini_options")
        if isinstance(options, dict):
            return dict(options)
        return {k: v for k, v in pytest_table.items() if k != "ini_options"}
    if name == "tox.ini":
        found = _ini_sections(path, ("pytest",))
        return None if found is None else dict(found)
    found = _ini_sections(path, ("tool:pytest",))  # setup.cfg
    return None if found is None else dict(found)


#: The file names pytest looks for in each directory, in its order.
_CANDIDATES = (
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
)
