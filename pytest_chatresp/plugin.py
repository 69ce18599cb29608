"""pytest wiring: options, the marker, fixtures and hooks. The work happens in other modules:
settings.py (every setting), marker.py (the marker's arguments), session.py (the run's state),
running.py (around one test), cassette_items.py (cassettes as items), report.py (run report)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .marker import CassetteMarker
from .options import add_options
from .session import (
    FIXTURES,
    SESSION_KEY,
    ChatrespSession,
    default_owners,
    marker_of,
    read_markers,
    session_of,
    warn_shared_defaults,
)

if TYPE_CHECKING:
    from .cassette import Cassette
    from .models import ChatCompletion
    from .shapes import ShapeSnapshot

_WORKER_REPORT = "chatresp_report"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{CassetteMarker.signature()}: replay or record this test's HTTP calls "
        "in a cassette, relative to the cassette dir "
        "(default: <cassette dir>/<test module>/<test name>.yaml); allow and skip_checks add "
        "to chatresp_allow and chatresp_skip_checks for this test.",
    )
    session = config.stash[SESSION_KEY] = ChatrespSession.from_config(config)
    if session.settings.verify:
        from .verify import check_start

        check_start(session)
    if session.settings.collect_cassettes:
        from .cassette_items import take_bracketed_arguments

        take_bracketed_arguments(session)


def pytest_report_header(config: pytest.Config) -> list[str]:
    chatresp = session_of(config)
    active = chatresp.active_settings()
    store = chatresp.cache.header_line() if config.get_verbosity() > 0 else None
    return ([f"chatresp: {', '.join(active)}"] if active else []) + ([store] if store else [])


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def chatresp_vcr_config() -> dict[str, Any]:
    """Extra vcrpy options for marked tests; override it in a conftest.py."""
    return {}


@pytest.fixture(autouse=True)
def _chatresp_recording(request: pytest.FixtureRequest) -> Iterator[None]:
    item = request.node
    if not isinstance(item, pytest.Item) or marker_of(item) is None:
        yield
        return
    from .running import recording

    try:  # pytest-recording's: the project's vcrpy options, under ours
        project = request.getfixturevalue("vcr_config")
    except pytest.FixtureLookupError:
        project = {}
    yield from recording(item, request.getfixturevalue("chatresp_vcr_config"), project)


@pytest.fixture
def chat_cassette(request: pytest.FixtureRequest) -> Cassette:
    """The test's cassette.

    In a test with the chat_cassette marker it is live: its exchanges grow as the code under
    test makes calls. Otherwise it is the recorded file, every chat completion validated.
    """
    from .running import RECORDER_KEY, load

    recorder = request.node.stash.get(RECORDER_KEY, None)
    return recorder.cassette if recorder is not None else load(request.node)


@pytest.fixture
def chat_completions(request: pytest.FixtureRequest) -> Sequence[ChatCompletion]:
    """Every chat completion of the test's recorded cassette, in order, each built when read."""
    from .running import load

    return load(request.node).completions


@pytest.fixture
def chat_completion(request: pytest.FixtureRequest) -> ChatCompletion:
    """The one chat completion of the test's recorded cassette."""
    from .running import load

    cassette = load(request.node)
    completions = cassette.completions
    if len(completions) != 1:
        pytest.fail(
            f"{session_of(request.config).relative(cassette.path)} holds {len(completions)} "
            "chat completions; the chat_completion fixture needs exactly one. Use the "
            "chat_completions fixture for all of them.",
            pytrace=False,
        )
    return completions[0]


@pytest.fixture
def chat_shape(request: pytest.FixtureRequest) -> Iterator[ShapeSnapshot]:
    """The shape snapshot beside the test's cassette: ``assert chat_shape == completion``."""
    from .errors import CassetteError
    from .shapes import ShapeSnapshot

    item = request.node
    session = session_of(item.config)
    verifying = session.settings.verify  # compares the live answer, writes nothing
    try:
        snapshot = ShapeSnapshot(
            session.cassette_path(item),
            may_write=session.settings_for(item).record_mode != "none" and not verifying,
            update=session.settings.update_shapes and not verifying,
            remedy=f"pytest --chatresp-update-shapes {item.nodeid}",
        )
    except CassetteError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield snapshot
    failure = None
    try:
        if snapshot.save():
            session.shapes_written.append(session.relative(snapshot.path))
    except CassetteError as exc:
        failure = str(exc)
    if failure:
        pytest.fail(failure, pytrace=False)


# --- hooks ---------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    from .running import guarded_setup

    return (yield from guarded_setup(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    from .running import guarded_call

    return (yield from guarded_call(item))


def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> list[str] | None:
    from .shapes import ShapeSnapshot

    snapshot = left if isinstance(left, ShapeSnapshot) else right
    if op != "==" or not isinstance(snapshot, ShapeSnapshot) or not snapshot.explanation:
        return None
    return [f"{snapshot!r} == the completion", *snapshot.explanation]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    session = session_of(parent.config)
    if not session.settings.collect_cassettes:
        return None
    from .cassette_items import CassetteFile, collects_cassette

    if collects_cassette(session, file_path):
        return CassetteFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Every marker is read here, once, so a bad argument stops the run naming the test."""
    read_markers(items)
    owners = default_owners(items, FIXTURES)
    warn_shared_defaults(owners)
    chatresp = session_of(config)
    chatresp.expect_readers(owners)
    if chatresp.settings.collect_cassettes:
        from .cassette_items import add_unreached_cassettes

        add_unreached_cassettes(chatresp, session, items)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    session_of(item.config).done(item)


def pytest_sessionfinish(session: pytest.Session) -> None:
    chatresp = session_of(session.config)
    chatresp.end_cache_session()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller reports
        if chatresp.has_report:
            workeroutput[_WORKER_REPORT] = json.dumps(chatresp.report.to_dict())
        return
    if chatresp.settings.report_json:
        chatresp.write_report_json(session)
    if chatresp.run_fails():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    data = getattr(node, "workeroutput", {}).get(_WORKER_REPORT)
    if data:
        session_of(node.config).report.merge(json.loads(data))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    chatresp = session_of(config)
    lines = chatresp.summary_lines(verbose=config.get_verbosity() > 0)
    if not chatresp.shapes_written and not lines:
        return
    from .errors import printable

    terminalreporter.write_sep("-", "chatresp")
    for line in lines:
        terminalreporter.write_line(printable(line))  # models and tiers come from responses
    for path in chatresp.shapes_written:
        terminalreporter.write_line(f"shape written: {path}")
