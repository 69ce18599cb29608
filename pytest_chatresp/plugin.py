"""pytest wiring: options, the marker, fixtures and hooks. The work happens in plain modules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .cassette import Cassette, CassetteCache
    from .models import ChatCompletion

_MARKER = "chat_cassette"
_CACHE_KEY: pytest.StashKey[CassetteCache] = pytest.StashKey()
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chatresp", "recorded chat completion responses (pytest-chatresp)")
    group.addoption(
        "--chatresp-cassette-dir",
        dest="chatresp_cassette_dir",
        default=None,
        metavar="DIR",
        help="directory of the cassettes (default: ini chatresp_cassette_dir, or 'cassettes').",
    )
    group.addoption(
        "--chatresp-strict",
        dest="chatresp_strict",
        action="store_true",
        default=None,
        help="also reject unknown fields and coerced values, and require nullable keys.",
    )
    parser.addini(
        "chatresp_cassette_dir",
        "directory of the cassettes, relative to the rootdir (default: cassettes).",
        default="cassettes",
    )
    parser.addini(
        "chatresp_strict",
        "validate responses in strict mode (default: false).",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(path=None): the test's cassette, relative to the cassette dir "
        "(default: <cassette dir>/<test module>/<test name>.yaml).",
    )
    from .cassette import CassetteCache

    config.stash[_CACHE_KEY] = CassetteCache()


def pytest_report_header(config: pytest.Config) -> list[str]:
    active = []
    if _cli_or_ini(config, "chatresp_cassette_dir") != "cassettes":
        active.append(f"cassette dir {_cassette_dir(config)}")
    if _strict(config):
        active.append("strict validation")
    return [f"chatresp: {', '.join(active)}"] if active else []


# --- settings: marker → CLI → ini → default ----------------------------------------------------


def _cli_or_ini(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name, default=None)
    return config.getini(name) if value is None else value


def _strict(config: pytest.Config) -> bool:
    return bool(_cli_or_ini(config, "chatresp_strict"))


def _cassette_dir(config: pytest.Config) -> Path:
    cli = config.getoption("chatresp_cassette_dir", default=None)
    if cli is not None:
        return Path(config.invocation_params.dir, cli)
    return Path(config.rootpath, str(config.getini("chatresp_cassette_dir")))


def _default_name(node: pytest.Item) -> str:
    name = node.name
    cls = getattr(node, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    return _UNSAFE.sub("_", name)


def _cassette_path(item: pytest.Item) -> Path:
    directory = _cassette_dir(item.config)
    marker = item.get_closest_marker(_MARKER)
    if marker is not None and (marker.args or "path" in marker.kwargs):
        given = marker.kwargs.get("path", marker.args[0] if marker.args else None)
        if not isinstance(given, str | Path) or not str(given):
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{_MARKER} takes a cassette path (a string), "
                f"got {given!r}"
            )
        return Path(directory, given)
    module = Path(str(item.path)).stem
    base = Path(directory, module, _default_name(item))
    yaml_path = base.with_name(base.name + ".yaml")
    json_path = base.with_name(base.name + ".json")
    return json_path if not yaml_path.exists() and json_path.exists() else yaml_path


def _relative(config: pytest.Config, path: Path) -> str:
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return str(path)


def _load(request: pytest.FixtureRequest) -> Cassette:
    from .errors import CassetteError

    item = request.node
    assert isinstance(item, pytest.Item)
    path = _cassette_path(item)
    if not path.exists():
        pytest.fail(
            f"No cassette for {item.nodeid}: {_relative(item.config, path)} does not exist.\n"
            f"Record it with: pytest --chatresp-record-mode=once {item.nodeid}",
            pytrace=False,
        )
    try:
        cassette = item.config.stash[_CACHE_KEY].load(path, strict=_strict(item.config))
        cassette.completions  # noqa: B018 - validates every response before the test body
    except CassetteError as exc:
        failure = str(exc)
    else:
        return cassette
    pytest.fail(failure, pytrace=False)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def chat_cassette(request: pytest.FixtureRequest) -> Cassette:
    """The test's cassette, every chat completion in it validated."""
    return _load(request)


@pytest.fixture
def chat_completions(chat_cassette: Cassette) -> list[ChatCompletion]:
    """Every chat completion of the test's cassette, in order."""
    return chat_cassette.completions


@pytest.fixture
def chat_completion(request: pytest.FixtureRequest, chat_cassette: Cassette) -> ChatCompletion:
    """The one chat completion of the test's cassette."""
    completions = chat_cassette.completions
    if len(completions) != 1:
        shown = _relative(request.config, chat_cassette.path)
        pytest.fail(
            f"{shown} holds {len(completions)} chat completions; the chat_completion fixture "
            "needs exactly one. Use the chat_completions fixture for a list.",
            pytrace=False,
        )
    return completions[0]
