"""The run-wide state of the plugin, kept in ``config.stash``: settings, rules, cache, report.

pytest-facing: it reads the ``pytest.Config`` once, turns bad settings into
``pytest.UsageError``, and answers the fixtures' and hooks' questions about one test (its
marker, settings, rules and cassette path).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .errors import display_path, record_command
from .marker import MARKER, CassetteMarker, MarkerError
from .naming import cassette_name, module_of, present, recording_layout_path
from .options import cli_value, ini_value
from .settings import BY_NAME, SETTINGS, SettingError, Settings, load_settings

if TYPE_CHECKING:
    from .cassette.cache import CassetteCache
    from .checks import Rules
    from .recording import RecordSettings
    from .report import RunReport

__all__ = [
    "FIXTURES",
    "MARKER_KEY",
    "SESSION_KEY",
    "ChatrespSession",
    "default_owners",
    "marker_of",
    "read_markers",
    "session_of",
    "warn_shared_defaults",
]

#: The fixtures that read a test's cassette (a test using one has a default cassette).
FIXTURES = frozenset({"chat_cassette", "chat_completion", "chat_completions", "chat_shape"})


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
    #: Why the run report was not written, when it was not (a run cut short).
    not_written: str | None = None
    #: Collected cassettes: cassette files named on the command line with ``[`` in their name.
    wanted: set[Path] = field(default_factory=set)
    #: When the run started. A pytest-xdist worker starts before any worker runs a test (the
    #: controller waits for every worker's collection), so its own start serves as the run's.
    started: float = field(default_factory=time.time)
    _cache: CassetteCache | None = None
    _roots: list[Path] | None = None
    _report: RunReport | None = None
    #: Tests yet to run, by the default cassette they were collected with (see :meth:`done`).
    _readers: dict[Path, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: pytest.Config) -> ChatrespSession:
        try:
            settings = load_settings(
                {spec.name: cli_value(config, spec) for spec in SETTINGS},
                {spec.name: ini_value(config, spec) for spec in SETTINGS if spec.ini},
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
        settings = self.settings
        return settings.verify and bool(self.report.verify.drifted(settings.verify_served_model))

    def write_report_json(self, session: pytest.Session) -> None:
        """Write the run report where ``--chatresp-report-json`` says, unless the run was cut
        short: a shard's report that looks whole but is not would be merged as whole."""
        config = session.config
        target = Path(config.invocation_params.dir, str(self.settings.report_json))
        if session.exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR):
            self.not_written = (
                f"run report not written to {self.relative(target)}: the run was cut short, "
                "and its figures are not those of the whole run"
            )
            return
        self.report.write_json(target, root=config.rootpath)

    def summary_lines(self, *, verbose: bool) -> list[str]:
        """The run's summary for the terminal: the run report's figures, unplayed
        interactions as the settings ask, and what a verify run found."""
        settings = self.settings
        lines = (
            self.report.lines(
                verbose=verbose,
                unplayed=settings.unplayed != "ignore",
                failing=settings.unplayed == "fail",
            )
            if self.has_report
            else []
        )
        if settings.verify:
            lines += self.report.verify.lines(settings.verify_served_model)
        if self.not_written:
            lines.append(self.not_written)
        return lines

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

    def expect_readers(self, owners: dict[Path, list[pytest.Item]]) -> None:
        """Note the tests collected for each default cassette (of :func:`default_owners`)."""
        for path, tests in owners.items():
            self._readers[path] = self._readers.get(path, 0) + len(tests)
            for item in tests:
                item.stash[_OWNED_KEY] = path

    def done(self, item: pytest.Item) -> None:
        """After a test: the parsed document of a cassette no test left to run reads is let go
        (the verdicts stay), and so are the test's default paths."""
        if _DEFAULTS_KEY in item.stash:
            del item.stash[_DEFAULTS_KEY]
        path = item.stash.get(_OWNED_KEY, None)
        if path is None:
            return
        del item.stash[_OWNED_KEY]
        left = self._readers[path] = self._readers[path] - 1
        if left <= 0 and self._cache is not None:
            self._cache.release(path)

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
            if present(path):
                return path
        if self.settings_for(item).serializer == "json":
            return _defaults_of(self, item)[1]  # the first layout's .json file
        return first

    def default_paths(self, item: pytest.Item) -> tuple[Path, Path]:
        """A test's default cassette in the configured layout, then in the other one. Which
        file of each layout is there is asked afresh: a test may have recorded one since."""
        first_yaml, first_json, second_yaml, second_json = _defaults_of(self, item)
        return _existing(first_yaml, first_json), _existing(second_yaml, second_json)

    @staticmethod
    def existing(stem: Path) -> Path:
        """The cassette of this stem: its ``.yaml`` file unless only the ``.json`` one exists."""
        return _existing(*_suffixed(stem))

    def record_settings(
        self,
        item: pytest.Item,
        vcr_options: dict[str, Any],
        project: Any = None,
        *,
        path: Path | None = None,
    ) -> RecordSettings:
        """How ``item`` records and replays its cassette (at ``path``, if already known)."""
        from .recording import (
            DEFAULT_MATCH_ON,
            DEFAULT_QUERY_PARAMETERS,
            DEFAULT_REQUEST_HEADERS,
            DEFAULT_RESPONSE_HEADERS,
            RecordSettings,
        )
        from .recording.vcr_config import REFUSED_OPTIONS, under_project_options

        refused = [key for key in ("match_on", *REFUSED_OPTIONS) if key in vcr_options]
        if refused:
            instead = REFUSED_OPTIONS.get(
                refused[0], "use @pytest.mark.chat_cassette(match_on=[...])"
            )
            pytest.fail(
                f"{item.nodeid}: the chatresp_vcr_config fixture sets {refused[0]!r}; {instead}",
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
        path = path if path is not None else self.cassette_path(item)

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
        from .provenance import inferred_recording, oldest_recording, recording_tests

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
            if marker_of(item) is not None:
                remedy = "Record it again with: " + record_command("all", item.nodeid)
            elif tests := [t for t in recording_tests(metadata) if t != item.nodeid]:
                remedy = "Record it again by running the test that wrote it: " + (
                    record_command("all", tests[0])
                )
            else:
                remedy = (
                    f"{item.nodeid} only reads it: record it again from a test marked "
                    f"@pytest.mark.{MARKER} that makes its calls, with "
                    "--chatresp-record-mode=all"
                )
            message = (
                f"{shown} was recorded {_age(days)} ago ({recorded:%Y-%m-%d}{source}), "
                f"more than --chatresp-max-age={_number(limit)}. {remedy}"
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


def _age(days: float) -> str:
    """``40 days``, ``1 day``, ``5 hours``, ``3 minutes``."""
    for size, unit in ((1.0, "day"), (1 / 24, "hour"), (1 / 1440, "minute")):
        if days >= size:
            count = int(days / size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"


def _number(limit: float) -> str:
    """A number of days as a user writes it, without an exponent: ``30``, ``0.00001``."""
    return str(int(limit)) if limit == int(limit) else f"{limit:.8f}".rstrip("0")


#: Options of the project's ``vcr_config`` the plugin sets itself: where the cassette is, its
#: format, the record mode (``--chatresp-record-mode``) and the matching (the marker's
#: ``match_on``), so that one test's cassette behaves the same in every project.
def _rules(empty: Rules, settings: Settings) -> Rules:
    from dataclasses import replace

    from .providers import parse_allowances

    return replace(
        empty,
        strict=settings.strict,
        skip_checks=frozenset(settings.skip_checks),
        allow=parse_allowances(settings.allow),
    )


MARKER_KEY: pytest.StashKey[CassetteMarker | None] = pytest.StashKey()
#: A test's default cassette files: the configured layout's .yaml and .json, then the other
#: layout's. Only the names are kept: whether each exists is asked each time.
_DEFAULTS_KEY: pytest.StashKey[tuple[Path, Path, Path, Path]] = pytest.StashKey()
_OWNED_KEY: pytest.StashKey[Path] = pytest.StashKey()
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


def _suffixed(stem: Path) -> tuple[Path, Path]:
    """The ``.yaml`` and ``.json`` files of a cassette stem."""
    return stem.with_name(stem.name + ".yaml"), stem.with_name(stem.name + ".json")


def _existing(yaml_path: Path, json_path: Path) -> Path:
    """The ``.yaml`` file unless only the ``.json`` one exists."""
    return json_path if present(json_path) and not present(yaml_path) else yaml_path


def _defaults_of(session: ChatrespSession, item: pytest.Item) -> tuple[Path, Path, Path, Path]:
    """The names of a test's default cassette files, worked out once per test (they depend on
    the test and the run's settings only)."""
    defaults = item.stash.get(_DEFAULTS_KEY, None)
    if defaults is None:
        ours = _suffixed(Path(session.cassette_dir, module_of(item), cassette_name(item)))
        theirs = _suffixed(recording_layout_path(item))
        if session.settings.cassette_layout == "pytest-recording":
            ours, theirs = theirs, ours
        defaults = item.stash[_DEFAULTS_KEY] = (*ours, *theirs)
    return defaults


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


def default_owners(
    items: list[pytest.Item], fixtures: frozenset[str]
) -> dict[Path, list[pytest.Item]]:
    """The tests of each default cassette: tests with the marker or a cassette fixture, those
    naming their cassette left out."""
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
    return owners


def warn_shared_defaults(owners: dict[Path, list[pytest.Item]]) -> None:
    """Warn (:class:`~pytest_chatresp.errors.SharedCassetteWarning`) where tests of different
    files (``tests/unit/test_x.py`` and ``tests/integration/test_x.py``) have the same default
    cassette (of :func:`default_owners`): the chatresp layout names it by the module's file
    name only."""
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


def _verify_header(settings: Any) -> str:
    from .verification import verify_header

    return verify_header(settings)


# --- what chatresp check --orphans asks of a collected session ---------------------------------


def cassette_used_by(item: pytest.Item) -> Path | None:
    """The cassette file a collected test uses, or ``None`` (``chatresp check --orphans``)."""
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
