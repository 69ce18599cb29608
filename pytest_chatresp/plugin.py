"""pytest wiring: options, the marker, fixtures and hooks. The work happens in plain modules."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .cache import CassetteCache
    from .cassette import Cassette
    from .checks import Rules
    from .contract import ContractSnapshot
    from .models import ChatCompletion
    from .network import NetworkGuard
    from .recording import Recorder, RecordSettings
    from .report import RunReport

_MARKER = "chat_cassette"
_RECORD_MODES = ("none", "once", "new_episodes", "all")
_CACHE_KEY: pytest.StashKey[CassetteCache] = pytest.StashKey()
_RECORDER_KEY: pytest.StashKey[Recorder] = pytest.StashKey()
_RULES_KEY: pytest.StashKey[Rules] = pytest.StashKey()
_CONTRACTS_KEY: pytest.StashKey[list[str]] = pytest.StashKey()
_REPORT_KEY: pytest.StashKey[RunReport] = pytest.StashKey()
_READ_KEY: pytest.StashKey[bool] = pytest.StashKey()
_WANTED_KEY: pytest.StashKey[set[Path]] = pytest.StashKey()
_WORKER_REPORT = "chatresp_report"
#: Credential variables of the SDKs supported, set to a placeholder while a test replays.
_REPLAY_CREDENTIALS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")
_PLACEHOLDER_KEY = "chatresp-replay-placeholder"
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
    group.addoption(
        "--chatresp-record-mode",
        dest="chatresp_record_mode",
        default=None,
        choices=_RECORD_MODES,
        help="none (replay only, the default), once, new_episodes or all.",
    )
    parser.addini(
        "chatresp_record_mode",
        "record mode for tests with the chat_cassette marker (default: none).",
        default="none",
    )
    group.addoption(
        "--chatresp-block-network",
        dest="chatresp_block_network",
        action="store_true",
        default=None,
        help="in a replay run (record mode none), let no test connect to a host other than "
        "loopback and --chatresp-allow-hosts.",
    )
    parser.addini(
        "chatresp_block_network",
        "in a replay run, let no test connect to a host other than loopback and the allowed "
        "hosts (default: false).",
        type="bool",
        default=False,
    )
    group.addoption(
        "--chatresp-allow-hosts",
        dest="chatresp_allow_hosts",
        default=None,
        metavar="HOSTS",
        help="comma-separated hosts a test may connect to where the network is blocked.",
    )
    parser.addini(
        "chatresp_allow_hosts",
        "hosts a test may connect to where the network is blocked.",
        type="args",
        default=[],
    )
    parser.addini(
        "chatresp_validate",
        "validate the chat completions a marked test recorded or replayed (default: true).",
        type="bool",
        default=True,
    )
    parser.addini(
        "chatresp_match_on",
        "how a request finds its recording (default: method scheme host port path query "
        "chatresp_body).",
        type="args",
        default=[],
    )
    for ini, what in (
        ("chatresp_filter_request_headers", "request headers"),
        ("chatresp_filter_response_headers", "response headers"),
        ("chatresp_filter_query_parameters", "query parameters"),
    ):
        parser.addini(
            ini, f"more {what} to scrub before a cassette is written.", type="args", default=[]
        )
    group.addoption(
        "--chatresp-update-contracts",
        dest="chatresp_update_contracts",
        action="store_true",
        default=False,
        help="write missing contract files and rewrite those that differ.",
    )
    group.addoption(
        "--chatresp-check",
        dest="chatresp_check",
        action="store_true",
        default=None,
        help="collect every cassette under the cassette dir as a test that validates it.",
    )
    group.addoption(
        "--chatresp-report-json",
        dest="chatresp_report_json",
        default=None,
        metavar="PATH",
        help="write the end-of-run report (completions, models, tiers, tokens, drift) as JSON.",
    )
    group.addoption(
        "--chatresp-max-age",
        dest="chatresp_max_age",
        default=None,
        type=float,
        metavar="DAYS",
        help="warn about cassettes recorded more than DAYS days ago.",
    )
    group.addoption(
        "--chatresp-max-age-fail",
        dest="chatresp_max_age_fail",
        action="store_true",
        default=None,
        help="fail, rather than warn, for cassettes older than --chatresp-max-age.",
    )
    parser.addini(
        "chatresp_serializer",
        "format of new cassettes: readable (the default), yaml or json.",
        default="readable",
    )
    parser.addini("chatresp_max_age", "warn about cassettes older than this many days.")
    parser.addini(
        "chatresp_max_age_fail",
        "fail, rather than warn, for cassettes older than chatresp_max_age.",
        type="bool",
        default=False,
    )
    parser.addini(
        "chatresp_unplayed",
        "after a replay run, interactions of used cassettes that no test played: "
        "ignore, warn (the default) or fail.",
        default="warn",
    )
    parser.addini(
        "chatresp_allow",
        "deviations to accept, one FIELD=VALUE per line (service_tier=on_demand, "
        "choices[].finish_reason=eos, choices[].message.content=*), or CHECK:BEHAVIOUR "
        "(stream:no-done).",
        type="linelist",
        default=[],
    )
    parser.addini(
        "chatresp_check",
        "collect every cassette as a test that validates it (default: false).",
        type="bool",
        default=False,
    )
    parser.addini(
        "chatresp_skip_checks",
        "contract checks to skip, by name (usage-sum choice-index choice-count tool-args "
        "json-output tool-schema stream created).",
        type="args",
        default=[],
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
        f"{_MARKER}(path=None, *, record_mode=None, serializer=None, match_on=None, "
        "allow=None, skip_checks=None, expect_violations=False): replay or record this "
        "test's HTTP calls "
        "in a cassette, relative to the cassette dir "
        "(default: <cassette dir>/<test module>/<test name>.yaml); allow and skip_checks add "
        "to chatresp_allow and chatresp_skip_checks for this test.",
    )
    for name, allowed in (
        ("chatresp_serializer", ("readable", "yaml", "json")),
        ("chatresp_unplayed", ("ignore", "warn", "fail")),
    ):
        value = config.getini(name)
        if value not in allowed:
            raise pytest.UsageError(f"{name} = {value!r} is not one of: {', '.join(allowed)}.")
    try:
        _max_age(config)
    except ValueError:
        raise pytest.UsageError(
            f"chatresp_max_age = {config.getini('chatresp_max_age')!r} is not a number of days."
        ) from None
    mode = _cli_or_ini(config, "chatresp_record_mode")
    if mode not in _RECORD_MODES:
        raise pytest.UsageError(
            f"chatresp_record_mode = {mode!r} is not a record mode; "
            f"use one of: {', '.join(_RECORD_MODES)}."
        )
    from .checks import CHECKS, Rules

    config.stash[_CONTRACTS_KEY] = []
    skipped = [str(name) for name in config.getini("chatresp_skip_checks")]
    unknown = [name for name in skipped if name not in CHECKS]
    if unknown:
        raise pytest.UsageError(
            f"chatresp_skip_checks names unknown checks: {', '.join(unknown)}; "
            f"the checks are: {' '.join(CHECKS)}."
        )
    from .providers import parse_allowances

    try:
        allow = parse_allowances(config.getini("chatresp_allow"))
    except ValueError as exc:
        raise pytest.UsageError(f"chatresp_allow: {exc}") from None
    config.stash[_RULES_KEY] = Rules(
        strict=_strict(config), skip_checks=frozenset(skipped), allow=allow
    )
    if _cli_or_ini(config, "chatresp_check"):
        _bracketed_arguments(config)


def _bracketed_arguments(config: pytest.Config) -> None:
    """Check mode: a cassette named with ``[`` in its file name (``test_x[a-b].yaml``, a
    parametrized test's) runs again by its id, which pytest's command line would take for a
    parametrization: the argument becomes the cassette's directory, and collection keeps that
    cassette's item only."""
    wanted: set[Path] = set()
    for position, arg in enumerate(config.args):
        named = arg.split("::")[0]
        path = Path(config.invocation_params.dir, named)
        if "[" in named and path.is_file():
            config.args[position] = str(path.parent)
            wanted.add(path.resolve())
    if wanted:
        config.stash[_WANTED_KEY] = wanted


def pytest_report_header(config: pytest.Config) -> list[str]:
    active = []
    if _cli_or_ini(config, "chatresp_cassette_dir") != "cassettes":
        active.append(f"cassette dir {_cassette_dir(config)}")
    if _strict(config):
        active.append("strict validation")
    skipped = config.getini("chatresp_skip_checks")
    if skipped:
        active.append(f"checks skipped: {' '.join(skipped)}")
    allowed = [line.strip() for line in config.getini("chatresp_allow") if line.strip()]
    if allowed:
        active.append(f"allowed: {', '.join(allowed)}")
    mode = _cli_or_ini(config, "chatresp_record_mode")
    if mode != "none":
        active.append(f"record mode {mode}")
    if _cli_or_ini(config, "chatresp_check"):
        active.append("checking every cassette")
    return [f"chatresp: {', '.join(active)}"] if active else []


# --- settings: marker → CLI → ini → default ----------------------------------------------------


def _cli_or_ini(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name, default=None)
    return config.getini(name) if value is None else value


def _max_age(config: pytest.Config) -> float | None:
    value = config.getoption("chatresp_max_age", default=None)
    if value is None:
        raw = str(config.getini("chatresp_max_age") or "").strip()
        value = float(raw) if raw else None
    return None if value is None else float(value)


def _check_age(item: pytest.Item, path: Path, metadata: Any) -> str | None:
    """A failure message for a cassette older than the limit (a warning unless told to fail)."""
    limit = _max_age(item.config)
    if limit is None:
        return None
    from datetime import UTC, datetime

    from .errors import CassetteAgeWarning
    from .provenance import oldest_recording

    shown = _relative(item.config, path)
    recorded = oldest_recording(metadata)
    source = ""
    if recorded is None:
        # Not recorded by the plugin: what its responses say, when they say it.
        from .errors import CassetteError
        from .provenance import inferred_recording

        try:
            cassette = _cache(item.config).load(path, rules=_rules(item))
        except CassetteError:
            return None  # the replay or the fixture reports what is wrong with the file
        inferred = inferred_recording(cassette.exchanges)
        if inferred is None:
            _report(item.config).age_unknown.add(shown)
            return None
        recorded, source = inferred[0], f", inferred from {inferred[1]}"
    days = (datetime.now(UTC) - recorded).total_seconds() / 86400
    if days <= limit:
        return None
    message = (
        f"{shown} was recorded {days:.0f} days ago ({recorded:%Y-%m-%d}{source}), "
        f"more than --chatresp-max-age={limit:g}. Record it again with: "
        f"pytest --chatresp-record-mode=all {item.nodeid}"
    )
    if _cli_or_ini(item.config, "chatresp_max_age_fail"):
        return message
    warnings.warn(CassetteAgeWarning(message), stacklevel=1)
    return None


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
            pytest.fail(
                f"{item.nodeid}: @pytest.mark.{_MARKER} takes a cassette path (a string), "
                f"got {given!r}",
                pytrace=False,
            )
        named = Path(directory, given)
        if named.is_dir():
            pytest.fail(
                f"{item.nodeid}: @pytest.mark.{_MARKER}({str(given)!r}) names a directory, "
                "not a cassette file",
                pytrace=False,
            )
        return named
    module = Path(str(item.path)).stem
    base = Path(directory, module, _default_name(item))
    yaml_path = base.with_name(base.name + ".yaml")
    json_path = base.with_name(base.name + ".json")
    if yaml_path.exists():
        return yaml_path
    if json_path.exists() or _serializer(item) == "json":
        return json_path
    return yaml_path


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
    if not os.path.lexists(path):  # a link to nothing is refused by the reader, by name
        if item.get_closest_marker(_MARKER) is None:
            remedy = (
                f"Record it: mark the test with @pytest.mark.{_MARKER} and run "
                f"pytest --chatresp-record-mode=once {item.nodeid}"
            )
        elif _record_mode(item) != "none":
            remedy = (
                "The chat_completion and chat_completions fixtures read the recorded file, "
                "before the test runs, so they cannot see what it records now: use "
                "chat_cassette.completions in a test that records."
            )
        else:
            remedy = f"Record it with: pytest --chatresp-record-mode=once {item.nodeid}"
        pytest.fail(
            f"No cassette for {item.nodeid}: {_relative(item.config, path)} does not exist.\n"
            + remedy,
            pytrace=False,
        )
    try:
        cassette = _cache(item.config).load(path, rules=_rules(item))
        cassette.completions  # noqa: B018 - validates every response before the test body
    except CassetteError as exc:
        failure = str(exc)
    else:
        if not item.stash.get(_READ_KEY, False):
            item.stash[_READ_KEY] = True
            report = _report(item.config)
            report.add_exchanges(item.nodeid, "read", cassette.exchanges, str(path))
            if item.get_closest_marker(_MARKER) is not None:  # a test that reads uses them all
                everything = range(len(cassette.exchanges))
                report.note_played(_relative(item.config, path), len(everything), everything)
            too_old = _check_age(item, path, cassette.metadata)
            if too_old:
                pytest.fail(too_old, pytrace=False)
        return cassette
    pytest.fail(failure, pytrace=False)


def _record_mode(item: pytest.Item) -> str:
    mode = _marker_option(item, "record_mode")
    if mode is None:
        return str(_cli_or_ini(item.config, "chatresp_record_mode"))
    if mode not in _RECORD_MODES:
        pytest.fail(
            f"{item.nodeid}: record_mode={mode!r} in @pytest.mark.{_MARKER} is not a record mode; "
            f"use one of: {', '.join(_RECORD_MODES)}.",
            pytrace=False,
        )
    return str(mode)


def _serializer(item: pytest.Item) -> str:
    chosen = _marker_option(item, "serializer")
    if chosen is None:
        return str(item.config.getini("chatresp_serializer"))
    if chosen not in ("readable", "yaml", "json"):
        pytest.fail(
            f"{item.nodeid}: serializer={chosen!r} in @pytest.mark.{_MARKER} is not one of: "
            "readable, yaml, json.",
            pytrace=False,
        )
    return str(chosen)


_MARKER_ARGUMENTS = (
    "path",
    "record_mode",
    "serializer",
    "match_on",
    "allow",
    "skip_checks",
    "expect_violations",
)


def _marker_option(item: pytest.Item, name: str) -> Any:
    """A keyword argument of the test's marker (None when absent); unknown ones fail the test."""
    marker = item.get_closest_marker(_MARKER)
    if marker is None:
        return None
    unknown = [key for key in marker.kwargs if key not in _MARKER_ARGUMENTS]
    if unknown:
        pytest.fail(
            f"{item.nodeid}: @pytest.mark.{_MARKER} has no argument {unknown[0]!r}; "
            f"it takes: {', '.join(_MARKER_ARGUMENTS)}.",
            pytrace=False,
        )
    return marker.kwargs.get(name)


def _names(item: pytest.Item, name: str) -> tuple[str, ...]:
    """A marker argument that is a name or a list of names (``skip_checks``, ``allow``…)."""
    value = _marker_option(item, name)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    pytest.fail(
        f"{item.nodeid}: {name}={value!r} in @pytest.mark.{_MARKER} is not a string or a list "
        "of strings.",
        pytrace=False,
    )


def _rules(item: pytest.Item) -> Rules:
    """The run's rules, with what the test's marker skips and allows on top."""
    rules = item.config.stash[_RULES_KEY]
    skipped, allowed = _names(item, "skip_checks"), _names(item, "allow")
    if not skipped and not allowed:
        return rules
    from dataclasses import replace

    from .checks import CHECKS
    from .providers import parse_allowances

    unknown = [name for name in skipped if name not in CHECKS]
    if unknown:
        pytest.fail(
            f"{item.nodeid}: skip_checks= in @pytest.mark.{_MARKER} names unknown checks: "
            f"{', '.join(unknown)}; the checks are: {' '.join(CHECKS)}.",
            pytrace=False,
        )
    problem = None
    try:
        allow = parse_allowances(allowed)
    except ValueError as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(f"{item.nodeid}: allow= in @pytest.mark.{_MARKER}: {problem}", pytrace=False)
    return replace(
        rules, skip_checks=rules.skip_checks | frozenset(skipped), allow=rules.allow + allow
    )


def _record_settings(item: pytest.Item, vcr_options: dict[str, Any]) -> RecordSettings:
    from .recording import (
        DEFAULT_MATCH_ON,
        DEFAULT_QUERY_PARAMETERS,
        DEFAULT_REQUEST_HEADERS,
        DEFAULT_RESPONSE_HEADERS,
        RecordSettings,
    )

    config = item.config

    def more(name: str) -> tuple[str, ...]:
        return tuple(str(v).lower() for v in config.getini(name))

    return RecordSettings(
        mode=_record_mode(item),
        match_on=_names(item, "match_on")
        or tuple(config.getini("chatresp_match_on"))
        or DEFAULT_MATCH_ON,
        request_headers=DEFAULT_REQUEST_HEADERS + more("chatresp_filter_request_headers"),
        response_headers=DEFAULT_RESPONSE_HEADERS + more("chatresp_filter_response_headers"),
        query_parameters=DEFAULT_QUERY_PARAMETERS + more("chatresp_filter_query_parameters"),
        rules=_rules(item),
        serializer=_serializer(item),
        vcr_options=vcr_options,
        test=item.nodeid,
    )


def _unmatched_message(item: pytest.Item, recorder: Recorder) -> str:
    from .errors import printable
    from .hygiene.policy import redact_text
    from .mismatch import explain

    return printable(
        explain(
            recorder.unmatched,
            cassette=_relative(item.config, recorder.path),
            exists=recorder.path.exists(),
            mode=recorder.settings.mode,
            test=item.nodeid,
            clean=lambda text: redact_text(text, recorder.secrets),
        )
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    recorder = item.stash.get(_RECORDER_KEY, None)
    guard = _network_guard(item, recorder)
    if guard is None:
        if recorder is None:
            return (yield)
        return (yield from _recorded_call(item, recorder))
    with guard:
        try:
            if recorder is None:
                result = yield
            else:
                result = yield from _recorded_call(item, recorder)
        except (Exception, pytest.fail.Exception):
            if guard.blocked:
                raise pytest.fail.Exception(guard.message("", ""), pytrace=False) from None
            raise
    if guard.blocked:  # the code under test swallowed the error: the test fails all the same
        pytest.fail(guard.message("", ""), pytrace=False)
    return result


def _network_guard(item: pytest.Item, recorder: Recorder | None) -> NetworkGuard | None:
    """The guard for a test that must not reach the network, or None.

    A test that uses a cassette fixture without the marker may reach no host (loopback
    included) but those allowed; with the block-network setting, in a replay run, no test may
    reach a host other than loopback and those allowed. pytest-recording's ``vcr`` tests are
    left to it.
    """
    config = item.config
    fixture = next((f for f in _FIXTURES if f in getattr(item, "fixturenames", ())), None)
    unmarked = recorder is None and fixture is not None
    blocking = (
        bool(_cli_or_ini(config, "chatresp_block_network"))
        and _cli_or_ini(config, "chatresp_record_mode") == "none"
        and (recorder is None or recorder.settings.mode == "none")  # a marker may record
    )
    if not (unmarked or blocking) or item.get_closest_marker("vcr") is not None:
        return None
    from .network import NetworkGuard

    allowed = _allowed_hosts(config)
    attempts: dict[str, str] = {}  # host:port shown -> the host to allow

    def message(host: str, shown: str) -> str:
        if shown:
            attempts.setdefault(shown, host)
        allow = f"--chatresp-allow-hosts={','.join(dict.fromkeys(attempts.values()))}"
        hosts = ", ".join(attempts)
        if unmarked:
            reason = (
                f"a test that uses the {fixture} fixture without @pytest.mark.{_MARKER} may not "
                "reach the network"
            )
        else:
            reason = "--chatresp-block-network blocks the network in a replay run"
        return (
            f"Network blocked: {item.nodeid} tried to connect to {hosts}, and nothing was sent:\n"
            f"{reason}. Add @pytest.mark.{_MARKER} to replay (or record) its calls, or allow "
            f"the host with {allow} (ini chatresp_allow_hosts)."
        )

    return NetworkGuard(allowed, loopback=not unmarked, message=message)


def _allowed_hosts(config: pytest.Config) -> list[str]:
    cli = config.getoption("chatresp_allow_hosts", default=None)
    if cli is not None:
        return [host for host in str(cli).split(",") if host.strip()]
    return [str(host) for host in config.getini("chatresp_allow_hosts")]


def _recorded_call(item: pytest.Item, recorder: Recorder) -> Any:
    try:
        result = yield
    except (Exception, pytest.fail.Exception) as exc:  # an interrupt or an exit passes through
        failure = _after_call(item, recorder)
        if failure:
            # Replaces what the client raised (a connection error, say) with the reason.
            raise pytest.fail.Exception(failure, pytrace=False) from None
        failure = _recording_failure(item, recorder, exc)
        if failure:
            raise pytest.fail.Exception(failure, pytrace=False) from exc
        raise
    failure = _after_call(item, recorder)
    if failure:
        pytest.fail(failure, pytrace=False)
    return result


def _recording_failure(item: pytest.Item, recorder: Recorder, exc: BaseException) -> str | None:
    """Our message for a recording that could not be made: no key, or no server."""
    if _replaying(item, recorder.path):
        return None
    from .hygiene.policy import redact_text
    from .recording import connection_failure, missing_credentials

    def redact(text: str) -> str:
        return redact_text(text, recorder.secrets)

    variable = missing_credentials(exc)
    if variable:
        return (
            f"Recording needs a real API key: the client was given none and ${variable} is not "
            f"set.\nSet it for the recording run: {variable}=... pytest "
            f"--chatresp-record-mode={recorder.settings.mode} {item.nodeid}\n"
            "(Replay needs no key: while a test replays, the plugin sets a placeholder.)"
        )
    causes = connection_failure(exc)
    if causes is None:
        return None
    recorder.discard = True
    request = recorder.last_request
    target = request.describe(redact) if request is not None else "the server"
    from .mismatch import masked

    return "\n".join(
        [
            f"Recording failed: cannot connect to {masked(target, redact)}",
            f"test: {item.nodeid}",
            f"cassette: {_relative(item.config, recorder.path)} (not written), "
            f"record mode {recorder.settings.mode!r}",
            "Is the server running, and is the client's base_url right?",
            *(f"caused by: {masked(cause, redact)}" for cause in causes),
        ]
    )


def _replaying(item: pytest.Item, path: Path) -> bool:
    """Whether a marked test only replays: mode none, or once with its cassette there."""
    mode = _record_mode(item)
    return mode == "none" or (mode == "once" and path.is_file())


def _after_call(item: pytest.Item, recorder: Recorder) -> str | None:
    if recorder.unmatched:
        return _unmatched_message(item, recorder)
    if item.config.getini("chatresp_validate") and not _marker_option(item, "expect_violations"):
        violations = recorder.cassette.violations
        if violations:
            return "A recorded or replayed chat completion breaks the contract:\n" + "\n".join(
                str(v) for v in violations
            )
    return None


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def chatresp_vcr_config() -> dict[str, Any]:
    """Extra vcrpy options for marked tests; override it in a conftest.py."""
    return {}


@pytest.fixture(autouse=True)
def _chatresp_recording(request: pytest.FixtureRequest) -> Iterator[None]:
    item = request.node
    if not isinstance(item, pytest.Item) or item.get_closest_marker(_MARKER) is None:
        yield
        return
    from .errors import CassetteError
    from .recording import Recorder

    vcr_options = request.getfixturevalue("chatresp_vcr_config")
    if item.config.getini("chatresp_validate"):
        from .checks import prepare

        prepare()  # the checks' imports, done here rather than in the code under test's loop
    cache = _cache(item.config)
    recorder = Recorder(_cassette_path(item), _record_settings(item, vcr_options), cache.document)
    failure: str | None = None
    try:
        recorder.__enter__()
    except CassetteError as exc:
        failure = str(exc)
    if not failure and recorder.loaded:
        try:
            failure = _check_age(item, recorder.path, recorder.previous_metadata)
        except BaseException:  # the age warning made an error (filterwarnings): unpatch first
            recorder.__exit__(None, None, None)
            raise
        if failure:
            recorder.__exit__(None, None, None)
    if failure:
        pytest.fail(failure, pytrace=False)
    item.stash[_RECORDER_KEY] = recorder
    credentials = pytest.MonkeyPatch()
    if _replaying(item, recorder.path):
        for name in _REPLAY_CREDENTIALS:  # a client built with no key works in replay
            if not os.environ.get(name):
                credentials.setenv(name, _PLACEHOLDER_KEY)
    try:
        yield
    finally:
        credentials.undo()
        del item.stash[_RECORDER_KEY]
        report = _report(item.config)
        for kind, exchanges in (("replayed", recorder.replayed), ("recorded", recorder.recorded)):
            report.add_exchanges(item.nodeid, kind, exchanges, str(recorder.path))
        if recorder.loaded and recorder.settings.mode != "all":
            played = [e.index for e in recorder.replayed]
            report.note_played(_relative(item.config, recorder.path), recorder.loaded, played)
        try:
            recorder.__exit__(None, None, None)
        except CassetteError as exc:
            failure = str(exc)
        shown = _relative(item.config, recorder.path)
        report.model_changes.extend(f"{shown}: {change}" for change in recorder.model_changes)
        if failure:
            pytest.fail(failure, pytrace=False)


@pytest.fixture
def chat_cassette(request: pytest.FixtureRequest) -> Cassette:
    """The test's cassette.

    In a test with the chat_cassette marker it is live: its exchanges grow as the code under
    test makes calls. Otherwise it is the recorded file, every chat completion validated.
    """
    recorder: Recorder | None = request.node.stash.get(_RECORDER_KEY, None)
    if recorder is not None:
        return recorder.cassette
    return _load(request)


@pytest.fixture
def chat_completions(request: pytest.FixtureRequest) -> list[ChatCompletion]:
    """Every chat completion of the test's recorded cassette, in order."""
    return _load(request).completions


@pytest.fixture
def chat_completion(request: pytest.FixtureRequest) -> ChatCompletion:
    """The one chat completion of the test's recorded cassette."""
    cassette = _load(request)
    completions = cassette.completions
    if len(completions) != 1:
        shown = _relative(request.config, cassette.path)
        pytest.fail(
            f"{shown} holds {len(completions)} chat completions; the chat_completion fixture "
            "needs exactly one. Use the chat_completions fixture for a list.",
            pytrace=False,
        )
    return completions[0]


@pytest.fixture
def chat_contract(request: pytest.FixtureRequest) -> Iterator[ContractSnapshot]:
    """The shape contract beside the test's cassette: ``assert chat_contract == completion``."""
    from .contract import ContractSnapshot
    from .errors import CassetteError

    item = request.node
    assert isinstance(item, pytest.Item)
    config = item.config
    try:
        snapshot = ContractSnapshot(
            _cassette_path(item),
            may_write=_record_mode(item) != "none",
            update=bool(config.getoption("chatresp_update_contracts")),
            remedy=f"pytest --chatresp-update-contracts {item.nodeid}",
        )
    except CassetteError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield snapshot
    failure = None
    try:
        if snapshot.save():
            config.stash[_CONTRACTS_KEY].append(_relative(config, snapshot.path))
    except CassetteError as exc:
        failure = str(exc)
    if failure:
        pytest.fail(failure, pytrace=False)


def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> list[str] | None:
    from .contract import ContractSnapshot

    snapshot = left if isinstance(left, ContractSnapshot) else right
    if op != "==" or not isinstance(snapshot, ContractSnapshot) or not snapshot.explanation:
        return None
    return [f"{snapshot!r} == the completion", *snapshot.explanation]


def _cache(config: pytest.Config) -> CassetteCache:
    """The session's cassette cache, made on first use (it imports the reader)."""
    cache = config.stash.get(_CACHE_KEY, None)
    if cache is None:
        from .cache import CassetteCache

        pytest_cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider
        store = None
        if pytest_cache is not None:
            try:
                store = pytest_cache.mkdir("chatresp")
            except OSError:  # a file planted in its place: no store, the same results
                store = None
        cache = config.stash[_CACHE_KEY] = CassetteCache(store, project=config.rootpath)
    return cache


def _report(config: pytest.Config) -> RunReport:
    report = config.stash.get(_REPORT_KEY, None)
    if report is None:
        from .report import RunReport

        report = config.stash[_REPORT_KEY] = RunReport()
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    report = config.stash.get(_REPORT_KEY, None)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller reports
        if report:
            workeroutput[_WORKER_REPORT] = json.dumps(report.to_dict())
        return
    target = config.getoption("chatresp_report_json", default=None)
    if target:
        (report or _report(config)).write_json(Path(config.invocation_params.dir, target))
    if report and config.getini("chatresp_unplayed") == "fail" and report.unplayed():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    data = getattr(node, "workeroutput", {}).get(_WORKER_REPORT)
    if data:
        _report(node.config).merge(json.loads(data))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    written = config.stash.get(_CONTRACTS_KEY, [])
    report = config.stash.get(_REPORT_KEY, None)
    show_unplayed = config.getini("chatresp_unplayed") != "ignore"
    lines = (
        report.lines(verbose=config.get_verbosity() > 0, unplayed=show_unplayed) if report else []
    )
    if not written and not lines:
        return
    from .errors import printable

    terminalreporter.write_sep("-", "chatresp")
    for line in lines:
        terminalreporter.write_line(printable(line))  # models and tiers come from responses
    for path in written:
        terminalreporter.write_line(f"contract written: {path}")


# --- cassettes as test items (--chatresp-check) -------------------------------------------------


class CassetteCheckFailure(Exception):
    """A cassette checked as a test item breaks the contract."""


class CassetteCheckItem(pytest.Item):
    """Validates every chat completion of one cassette file."""

    def runtest(self) -> None:
        from .errors import CassetteError

        try:
            cassette = _cache(self.config).load(self.path, rules=self.config.stash[_RULES_KEY])
        except CassetteError as exc:
            raise CassetteCheckFailure(str(exc)) from None
        # Counted before judging: the report's totals are every completion read, as in
        # ``chatresp check``, valid or not.
        report = _report(self.config)
        report.add_exchanges(self.nodeid, "read", cassette.exchanges, str(self.path))
        if not any(e.is_completion for e in cassette.exchanges):
            kinds: dict[str, int] = {}
            for exchange in cassette.exchanges:
                kinds[exchange.kind] = kinds.get(exchange.kind, 0) + 1
            report.no_completion[_relative(self.config, self.path)] = kinds
        violations = cassette.violations
        if violations:
            raise CassetteCheckFailure(str(CassetteError(violations)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CassetteCheckFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # Line 0 (shown as line 1): the cassette as a whole, a location other plugins print.
        return self.path, 0, f"cassette {_relative(self.config, self.path)}"


class CassetteCheckFile(pytest.File):
    """A cassette file under the cassette dir, in check mode: one item that validates it."""

    def collect(self) -> Iterator[CassetteCheckItem]:
        yield CassetteCheckItem.from_parent(self, name="contract")


def _checked_cassette(config: pytest.Config, path: Path) -> bool:
    from .discovery import is_cassette

    return bool(_cli_or_ini(config, "chatresp_check")) and is_cassette(path, _cassette_dir(config))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _checked_cassette(parent.config, file_path):
        return CassetteCheckFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Check mode: every cassette is checked, also those below no collected path, unless the
    command line names paths in the cassette dir (``pytest --chatresp-check cassettes/x.yaml``):
    then those only. Files pytest does not collect (a FIFO, a link to a device) are checked too,
    and fail by name."""
    if not _cli_or_ini(config, "chatresp_check"):
        return
    wanted = config.stash.get(_WANTED_KEY, None)
    if wanted:
        folders = {path.parent for path in wanted}
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            path = Path(str(item.path)).resolve()
            chosen = path in wanted or path.parent not in folders
            (kept if chosen else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    directory = _cassette_dir(config).resolve()
    named = [
        Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args
    ]
    roots = [p for p in named if p == directory or directory in p.parents] or [directory]
    seen = {item.path for item in items if isinstance(item, CassetteCheckItem)}
    from .discovery import cassette_files

    for path in cassette_files(_cassette_dir(config)):
        where = Path(path.parent.resolve(), path.name)
        if path in seen or not any(where == root or root in where.parents for root in roots):
            continue
        if _checked_cassette(config, path):
            items.extend(CassetteCheckFile.from_parent(session, path=path).collect())


_FIXTURES = frozenset({"chat_cassette", "chat_completion", "chat_completions", "chat_contract"})


def cassette_used_by(item: pytest.Item) -> Path | None:
    """The cassette file a collected test uses, or ``None`` (``chatresp check --orphans``)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    if item.get_closest_marker(_MARKER) is None and not fixtures & _FIXTURES:
        return None
    try:
        return _cassette_path(item)
    except pytest.fail.Exception:
        return None


def cassette_dir(config: pytest.Config) -> Path:
    """The run's cassette directory (``chatresp check --orphans``)."""
    return _cassette_dir(config)
