"""The run-wide state of the plugin, kept in ``config.stash``: settings, rules, cache, report.

pytest-facing: it reads the ``pytest.Config`` once, turns bad settings into
``pytest.UsageError``, and answers the fixtures' and hooks' questions about one test (its
marker, settings, rules and cassette path).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .discovery import MODULE_CASSETTES
from .errors import display_path, record_command
from .marker import MARKER, CassetteMarker, MarkerError
from .settings import BY_NAME, SETTINGS, Setting, SettingError, Settings, load_settings

if TYPE_CHECKING:
    from .cassette.cache import CassetteCache
    from .checks import Rules
    from .recording import RecordSettings
    from .report import RunReport

__all__ = [
    "MARKER_KEY",
    "SESSION_KEY",
    "ChatrespSession",
    "add_options",
    "marker_of",
    "read_markers",
    "session_of",
    "warn_shared_defaults",
]

_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
#: Longest cassette file stem kept as it is; longer ones are cut and given a hash.
_LONGEST_NAME = 120
_KEPT = 100


@dataclass
class ChatrespSession:
    """What the plugin knows for the whole run (cf. syrupy's session object)."""

    config: pytest.Config
    settings: Settings
    rules: Rules
    #: Where ``chatresp_cassette_dir`` is relative to: the rootdir, or the current directory
    #: when the command line set it.
    cassette_dir: Path
    #: Shape files written this run, shown in the summary.
    shapes_written: list[str] = field(default_factory=list)
    #: Collected cassettes: cassette files named on the command line with ``[`` in their name.
    wanted: set[Path] = field(default_factory=set)
    #: When the run started. A pytest-xdist worker starts before any worker runs a test (the
    #: controller waits for every worker's collection), so its own start serves as the run's.
    started: float = field(default_factory=time.time)
    _cache: CassetteCache | None = None
    _roots: list[Path] | None = None
    _report: RunReport | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> ChatrespSession:
        try:
            settings = load_settings(
                {spec.name: _cli_value(config, spec) for spec in SETTINGS},
                {spec.name: _ini_value(config, spec) for spec in SETTINGS if spec.ini},
            )
        except SettingError as exc:
            raise pytest.UsageError(str(exc)) from None
        from .checks import Rules

        cli_dir = config.getoption(BY_NAME["cassette_dir"].dest, default=None)
        base = config.invocation_params.dir if cli_dir is not None else config.rootpath
        return cls(
            config=config,
            settings=settings,
            rules=_rules(Rules(), settings),
            cassette_dir=Path(base, settings.cassette_dir),
        )

    @property
    def cassette_roots(self) -> list[Path]:
        """The cassette dir and every ``cassettes/`` folder beside a test module below the
        rootdir (pytest-recording's layout): where ``--chatresp-collect-cassettes`` and
        ``--orphans`` look."""
        if self._roots is None:
            from .discovery import cassette_roots

            self._roots = cassette_roots(self.cassette_dir, self.config.rootpath)
        return self._roots

    def relative(self, path: Path) -> str:
        """The one way a path is shown: relative to the rootdir when inside it."""
        return display_path(path, self.config.rootpath)

    @property
    def cache(self) -> CassetteCache:
        """The run's cassette cache, made on first use (it imports the reader)."""
        if self._cache is None:
            from .cassette.cache import CassetteCache

            pytest_cache = getattr(self.config, "cache", None)  # absent: -p no:cacheprovider
            store = None
            if pytest_cache is not None:
                try:
                    store = pytest_cache.mkdir("chatresp")
                except OSError:  # a file planted in its place: no store, the same results
                    store = None
            self._cache = CassetteCache(store, project=self.config.rootpath)
        return self._cache

    def run_fails(self) -> bool:
        """Whether what the plugin saw fails the run: unplayed interactions under
        ``chatresp_unplayed = fail``, or drift in a verify run."""
        if self.has_report and self.settings.unplayed == "fail" and self.report.unplayed():
            return True
        if self.settings.verify:
            from .verify import drifted

            return drifted(self)
        return False

    def end_cache_session(self) -> None:
        """Keep this session's hit rate for the next session's header (``pytest -v``)."""
        if self._cache is not None:
            worker = getattr(self.config, "workerinput", {})
            self._cache.end_session(worker.get("testrunuid"), worker.get("workerid"))

    @property
    def report(self) -> RunReport:
        if self._report is None:
            from .report import RunReport

            self._report = RunReport()
        return self._report

    @property
    def has_report(self) -> bool:
        return self._report is not None and bool(self._report)

    def active_settings(self) -> list[str]:
        """What the report header shows: every setting not at its default."""
        settings = self.settings
        described: dict[str, Callable[[], str]] = {
            "cassette_dir": lambda: f"cassette dir {self.cassette_dir}",
            "strict": lambda: "strict validation",
            "skip_checks": lambda: f"checks skipped: {' '.join(settings.skip_checks)}",
            "allow": lambda: f"allowed: {', '.join(settings.allow)}",
            "record_mode": lambda: f"record mode {settings.record_mode}",
            "collect_cassettes": lambda: "collecting every cassette",
            "max_age": lambda: f"max age {settings.max_age:g} days",
            "unplayed": lambda: f"unplayed interactions: {settings.unplayed}",
            "block_network": lambda: "network blocked in replay",
            "allow_hosts": lambda: f"allowed hosts: {', '.join(settings.allow_hosts)}",
            "verify": lambda: _verify_header(settings),
        }
        active = []
        for spec in SETTINGS:
            value = getattr(settings, spec.name)
            if value == spec.default or spec.name.startswith("verify_"):  # in verify's line
                continue
            describe = described.get(spec.name)
            if describe is not None:
                active.append(describe())
            elif spec.kind == "bool":
                active.append(spec.name.replace("_", " "))
            elif isinstance(value, tuple):
                active.append(f"{spec.name.replace('_', ' ')}: {', '.join(value)}")
            else:
                active.append(f"{spec.name.replace('_', ' ')} {value}")
        return active

    # --- one test ---------------------------------------------------------------------------

    def settings_for(self, item: pytest.Item) -> Settings:
        marker = marker_of(item)
        return self.settings if marker is None else self.settings.with_marker(marker.settings())

    def rules_for(self, item: pytest.Item) -> Rules:
        marker = marker_of(item)
        if marker is None or (not marker.allow and not marker.skip_checks):
            return self.rules
        from .checks import Rules

        return _rules(Rules(), self.settings_for(item))

    def cassette_path(self, item: pytest.Item) -> Path:
        marker = marker_of(item)
        if marker is not None and marker.path is not None:
            named = Path(self.cassette_dir, marker.path)
            if named.is_dir():
                pytest.fail(
                    f"{item.nodeid}: @pytest.mark.{MARKER}({marker.path!r}) names a directory, "
                    "not a cassette file",
                    pytrace=False,
                )
            return named
        first, second = self.default_paths(item)
        for path in (first, second):
            if _present(path):
                return path
        if self.settings_for(item).serializer == "json":
            return first.with_suffix(".json")
        return first

    def default_paths(self, item: pytest.Item) -> tuple[Path, Path]:
        """A test's default cassette in the configured layout, then in the other one."""
        ours = self.existing(Path(self.cassette_dir, _module(item), cassette_name(item)))
        theirs = self.existing(recording_layout_path(item))
        if self.settings.cassette_layout == "pytest-recording":
            return theirs, ours
        return ours, theirs

    @staticmethod
    def existing(stem: Path) -> Path:
        """The cassette of this stem: its ``.yaml`` file unless only the ``.json`` one exists."""
        yaml_path = stem.with_name(stem.name + ".yaml")
        json_path = stem.with_name(stem.name + ".json")
        return json_path if _present(json_path) and not _present(yaml_path) else yaml_path

    def record_settings(
        self, item: pytest.Item, vcr_options: dict[str, Any], project: Any = None
    ) -> RecordSettings:
        from .recording import (
            DEFAULT_MATCH_ON,
            DEFAULT_QUERY_PARAMETERS,
            DEFAULT_REQUEST_HEADERS,
            DEFAULT_RESPONSE_HEADERS,
            RecordSettings,
        )

        refused = [key for key in ("match_on", *_FILTERS) if key in vcr_options]
        if refused:
            pytest.fail(
                f"{item.nodeid}: the chatresp_vcr_config fixture sets {refused[0]!r}; "
                f"{_FILTERS.get(refused[0], 'use @pytest.mark.chat_cassette(match_on=[...])')}",
                pytrace=False,
            )
        if project:
            if not isinstance(project, Mapping):
                pytest.fail(
                    f"{item.nodeid}: the vcr_config fixture returns {type(project).__name__}, "
                    "not a dict of vcrpy options",
                    pytrace=False,
                )
            vcr_options = under_project_options(project, vcr_options)
        settings = self.settings_for(item)
        marker = marker_of(item)
        path = self.cassette_path(item)

        def lower(names: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(name.lower() for name in names)

        return RecordSettings(
            mode="all" if settings.verify else settings.record_mode,
            verify=settings.verify,
            match_on=(marker.match_on if marker else None) or DEFAULT_MATCH_ON,
            request_headers=DEFAULT_REQUEST_HEADERS + lower(settings.filter_request_headers),
            response_headers=DEFAULT_RESPONSE_HEADERS + lower(settings.filter_response_headers),
            query_parameters=DEFAULT_QUERY_PARAMETERS + lower(settings.filter_query_parameters),
            rules=self.rules_for(item),
            serializer=settings.serializer,
            vcr_options=vcr_options,
            test=item.nodeid,
            new_this_run=settings.record_mode == "once" and self.new_this_run(path),
        )

    def new_this_run(self, path: Path) -> bool:
        """Whether the cassette did not exist when the run started: absent, or written since.
        ``once`` records into such a cassette, so every test sharing it records on its first
        run."""
        try:
            return path.stat().st_mtime >= self.started
        except OSError:
            return True

    def apply_age_limit(self, item: pytest.Item, path: Path, metadata: Any) -> None:
        """Warn (``CassetteAgeWarning``) about a cassette older than ``chatresp_max_age``; the
        warning is an error under ``filterwarnings = error::pytest_chatresp.CassetteAgeWarning``."""
        limit = self.settings.max_age
        if limit is None:
            return
        import warnings
        from datetime import UTC, datetime

        from .errors import CassetteAgeWarning, CassetteError
        from .provenance import inferred_recording, oldest_recording

        shown = self.relative(path)
        recorded, source = oldest_recording(metadata), ""
        if recorded is None:  # not recorded by the plugin: what its responses say, if they do
            try:
                cassette = self.cache.load(path, rules=self.rules_for(item))
            except CassetteError:
                return  # the replay or the fixture reports what is wrong with the file
            inferred = inferred_recording(cassette.exchanges)
            if inferred is None:
                self.report.age_unknown.add(shown)
                return
            recorded, source = inferred[0], f", inferred from {inferred[1]}"
        days = (datetime.now(UTC) - recorded).total_seconds() / 86400
        if days > limit:
            message = (
                f"{shown} was recorded {days:.0f} days ago ({recorded:%Y-%m-%d}{source}), "
                f"more than --chatresp-max-age={limit:g}. Record it again with: "
                + record_command("all", item.nodeid)
            )
            made_an_error = False
            try:
                # Located at the test, not in the plugin's source.
                filename, lineno, _ = item.reportinfo()
                warnings.warn_explicit(
                    CassetteAgeWarning(message),
                    CassetteAgeWarning,
                    filename=str(filename),
                    lineno=(lineno or 0) + 1,
                )
            except CassetteAgeWarning:  # made an error by filterwarnings: our message only
                made_an_error = True
            if made_an_error:
                pytest.fail(message, pytrace=False)


#: Options of the project's ``vcr_config`` the plugin sets itself: where the cassette is, its
#: format, the record mode (``--chatresp-record-mode``) and the matching (the marker's
#: ``match_on``), so that one test's cassette behaves the same in every project.
OWN_VCR_OPTIONS = frozenset(
    {
        "cassette_library_dir",
        "path_transformer",
        "func_path_generator",
        "record_mode",
        "serializer",
        "persister",
        "match_on",
    }
)
_HOOKS = ("before_record_request", "before_record_response")


def under_project_options(project: Mapping[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    """The project's ``vcr_config`` with ``chatresp_vcr_config`` on top: the plugin's own
    options (:data:`OWN_VCR_OPTIONS`) left out, both hooks kept (the project's first), both
    header and query filters kept; for any other option ``chatresp_vcr_config`` wins."""
    merged = {key: value for key, value in project.items() if key not in OWN_VCR_OPTIONS}
    for key, value in ours.items():
        if key in _HOOKS and merged.get(key) is not None and value is not None:
            merged[key] = [*_as_list(merged[key]), *_as_list(value)]
        elif key in _FILTERS and key in merged:
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def _as_list(hooks: Any) -> list[Any]:
    return list(hooks) if isinstance(hooks, list | tuple) else [hooks]


_FILTERS = {
    "filter_headers": "use the ini keys chatresp_filter_request_headers and "
    "chatresp_filter_response_headers (or their --chatresp-filter-* options)",
    "filter_query_parameters": "use the ini key chatresp_filter_query_parameters (or "
    "--chatresp-filter-query-parameters)",
}


def _rules(empty: Rules, settings: Settings) -> Rules:
    from dataclasses import replace

    from .providers import parse_allowances

    return replace(
        empty,
        strict=settings.strict,
        skip_checks=frozenset(settings.skip_checks),
        allow=parse_allowances(settings.allow),
    )


def _cli_value(config: pytest.Config, spec: Setting) -> object:
    value = config.getoption(spec.dest, default=None)
    if isinstance(value, list) and spec.kind == "names":  # repeated, each comma-separated
        return [part.strip() for text in value for part in str(text).split(",") if part.strip()]
    return value


def _ini_value(config: pytest.Config, spec: Setting) -> object:
    try:
        value = config.getini(spec.ini_key)
    except ValueError as exc:  # pytest could not read a bool
        raise SettingError(spec.ini_key, str(exc), spec.describe_allowed()) from None
    return value if value != [] else None


def _present(path: Path) -> bool:
    """Whether something is at ``path``; a name too long for the file system names nothing."""
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def _module(item: pytest.Item) -> str:
    return Path(str(item.path)).stem


#: Characters pytest-recording replaces with ``-`` in a default cassette name.
_RECORDING_UNSAFE = re.compile(r"[<>?%*:|\"'/\\]")


def recording_layout_path(item: pytest.Item) -> Path:
    """pytest-recording's default cassette of a test, without its suffix:
    ``<test file's dir>/cassettes/<module>/<Class.>test_name``."""
    name = item.name
    cls = getattr(item, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    test_file = Path(str(item.path))
    return Path(
        test_file.parent, MODULE_CASSETTES, test_file.stem, _RECORDING_UNSAFE.sub("-", name)
    )


def cassette_name(item: pytest.Item) -> str:
    """The default cassette file stem of a test: ``Class.test_name[id]``, unsafe characters
    replaced; a name too long for a file system keeps its start and a stable hash."""
    name = item.name
    cls = getattr(item, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    name = _UNSAFE.sub("_", name)
    if len(name.encode("utf-8")) <= _LONGEST_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    kept = name.encode("utf-8")[:_KEPT].decode("utf-8", errors="ignore")
    return f"{kept}-{digest}"


MARKER_KEY: pytest.StashKey[CassetteMarker | None] = pytest.StashKey()
SESSION_KEY: pytest.StashKey[ChatrespSession] = pytest.StashKey()


def marker_of(item: pytest.Item) -> CassetteMarker | None:
    """The test's marker arguments, parsed once (at collection) and kept in ``item.stash``."""
    if MARKER_KEY not in item.stash:
        mark = item.get_closest_marker(MARKER)
        try:
            item.stash[MARKER_KEY] = (
                None if mark is None else CassetteMarker.parse(mark.args, mark.kwargs)
            )
        except MarkerError as exc:
            pytest.fail(f"{item.nodeid}: {exc}", pytrace=False)
    return item.stash[MARKER_KEY]


def session_of(config: pytest.Config) -> ChatrespSession:
    return config.stash[SESSION_KEY]


def read_markers(items: list[pytest.Item]) -> None:
    """Every test's marker, parsed at collection: bad arguments stop the run, naming each test."""
    problems = []
    for item in items:
        mark = item.get_closest_marker(MARKER)
        if mark is None:
            continue
        if item.get_closest_marker(VCR_MARKER) is not None:
            problems.append(both_markers(item.nodeid))
            continue
        try:
            item.stash[MARKER_KEY] = CassetteMarker.parse(mark.args, mark.kwargs)
        except MarkerError as exc:
            problems.append(f"{item.nodeid}: {exc}")
    if not problems and any(item.stash.get(MARKER_KEY, None) for item in items):
        from .recording import _vcrpy

        problem = _vcrpy.vcrpy_problem(_vcrpy.installed_vcrpy())
        if problem:
            problems.append(problem)
    if problems:
        raise pytest.UsageError("\n".join(problems))


def warn_shared_defaults(items: list[pytest.Item], fixtures: frozenset[str]) -> None:
    """Warn (:class:`~pytest_chatresp.errors.SharedCassetteWarning`) where tests of different
    files (``tests/unit/test_x.py`` and ``tests/integration/test_x.py``) have the same default
    cassette: the chatresp layout names it by the module's file name only."""
    owners: dict[Path, list[pytest.Item]] = {}
    for item in items:
        marker = item.stash.get(MARKER_KEY, None)
        if marker is not None and marker.path is not None:
            continue  # a cassette named on purpose may be shared
        if marker is None and not set(getattr(item, "fixturenames", ())) & fixtures:
            continue
        session = session_of(item.config)
        try:
            path = session.cassette_path(item)
        except pytest.fail.Exception:
            continue
        owners.setdefault(path, []).append(item)
    import warnings

    from .errors import SharedCassetteWarning

    for path, tests in owners.items():
        files = dict.fromkeys(Path(str(item.path)) for item in tests)
        if len(files) < 2:
            continue
        first, *others = tests
        other = next(item for item in others if Path(str(item.path)) != Path(str(first.path)))
        session = session_of(first.config)
        folder = session.relative(Path(str(other.path)).parent)
        suggested = Path(folder, Path(str(other.path)).stem, path.name).as_posix()
        warnings.warn(
            SharedCassetteWarning(
                f"{session.relative(path)} is the default cassette of both {first.nodeid} and "
                f"{other.nodeid}: test files of the same name in different folders share it, and "
                "each would replay and record the other's calls. Give one its own cassette with "
                f"@pytest.mark.{MARKER}({suggested!r}), or set chatresp_cassette_layout = "
                "pytest-recording, which keeps cassettes beside each test file."
            ),
            stacklevel=1,
        )


#: pytest-recording's marker.
VCR_MARKER = "vcr"


def both_markers(nodeid: str) -> str:
    """Why a test may not carry both markers: pytest-recording would serve its calls."""
    return (
        f"{nodeid}: has both @pytest.mark.{VCR_MARKER} (pytest-recording) and "
        f"@pytest.mark.{MARKER}. pytest-recording would replay and record its calls, writing "
        "its cassette without this plugin's scrubbing (an API key would reach the file), and "
        f"chat_cassette would see no call and validate nothing. Remove @pytest.mark.{VCR_MARKER} "
        f"to record, scrub and validate with @pytest.mark.{MARKER} (it reads pytest-recording's "
        f"cassette where it is), or remove @pytest.mark.{MARKER} to leave the test to "
        "pytest-recording."
    )


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


def _verify_header(settings: Any) -> str:
    from .verify import header

    return header(settings)


# --- what chatresp check --orphans asks of a collected session ---------------------------------


def cassette_used_by(item: pytest.Item) -> Path | None:
    """The cassette file a collected test uses, or ``None`` (``chatresp check --orphans``)."""
    from .running import FIXTURES

    if item.get_closest_marker(VCR_MARKER) is not None:  # pytest-recording's default cassette
        return session_of(item.config).existing(recording_layout_path(item))
    if marker_of(item) is None and not set(getattr(item, "fixturenames", ())) & FIXTURES:
        return None
    try:
        return session_of(item.config).cassette_path(item)
    except pytest.fail.Exception:
        return None


def cassette_dir(config: pytest.Config) -> Path:
    """The run's cassette directory (``chatresp check --orphans``)."""
    return session_of(config).cassette_dir


def cassette_roots(config: pytest.Config) -> list[Path]:
    """Every folder of the run's cassettes (``chatresp check --orphans``)."""
    return session_of(config).cassette_roots
