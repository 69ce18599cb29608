"""Around one test: its recorder, its network guard, reading its cassette, and the messages
when something goes wrong. pytest-facing; plugin.py calls these from its hooks and fixtures."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .marker import MARKER
from .session import FIXTURES, marker_of, session_of

if TYPE_CHECKING:
    from .cassette import Cassette
    from .network import NetworkGuard
    from .recording import Recorder

__all__ = ["RECORDER_KEY", "guarded_call", "guarded_setup", "load", "recording"]

RECORDER_KEY: pytest.StashKey[Recorder] = pytest.StashKey()
_READ_KEY: pytest.StashKey[bool] = pytest.StashKey()
_CASSETTE_KEY: pytest.StashKey[Cassette] = pytest.StashKey()
#: Credential variables of the SDKs supported, set to a placeholder while a test replays.
_REPLAY_CREDENTIALS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")
_PLACEHOLDER_KEY = "chatresp-replay-placeholder"


def load(item: pytest.Item) -> Cassette:
    """The test's recorded cassette, every chat completion validated (the fixtures' value)."""
    from .errors import CassetteError, record_command

    session = session_of(item.config)
    path = session.cassette_path(item)
    marked = marker_of(item) is not None
    if not os.path.lexists(path):  # a link to nothing is refused by the reader, by name
        if not marked:
            remedy = (
                f"Record it: mark the test with @pytest.mark.{MARKER} and run "
                + record_command("once", item.nodeid)
            )
        elif session.settings_for(item).record_mode != "none":
            remedy = (
                "The chat_completion and chat_completions fixtures read the recorded file, "
                "before the test runs, so they cannot see what it records now: use "
                "chat_cassette.completions in a test that records."
            )
        else:
            remedy = f"Record it with: {record_command('once', item.nodeid)}"
        marker = marker_of(item)
        also = ""
        if marker is None or marker.path is None:
            other = session.default_paths(item)[1]
            if other != path:
                also = f" (nor {session.relative(other)}, in the other cassette layout)"
        pytest.fail(
            f"No cassette for {item.nodeid}: {session.relative(path)} does not exist{also}.\n"
            + remedy,
            pytrace=False,
        )
    try:
        # One cassette a test (its fixtures share it), of its own: no other test holds its
        # completions.
        cassette = item.stash.get(_CASSETTE_KEY, None)
        if cassette is None or cassette.path != path:
            cassette = session.cache.load(path, rules=session.rules_for(item))
            if _CASSETTE_KEY not in item.stash:  # let it go with the test
                item.addfinalizer(lambda: item.stash.__delitem__(_CASSETTE_KEY))
            item.stash[_CASSETTE_KEY] = cassette
        cassette.completions  # noqa: B018 - validates every response before the test body
    except CassetteError as exc:
        failure = str(exc)
    else:
        if not item.stash.get(_READ_KEY, False):
            item.stash[_READ_KEY] = True
            report = session.report
            report.add_figures(item.nodeid, "read", cassette.figures(), str(path))
            if marked:  # a test that reads uses them all
                everything = range(len(cassette))
                report.note_played(session.relative(path), len(everything), everything)
            session.apply_age_limit(item, path, cassette.metadata)
        return cassette
    pytest.fail(failure, pytrace=False)


def recording(
    item: pytest.Item, vcr_options: dict[str, Any], project: Any = None
) -> Iterator[None]:
    """The marked test's recorder, entered for the test and saved after it. ``project`` is the
    project's ``vcr_config`` fixture (pytest-recording's), applied under ``vcr_options``."""
    from .errors import CassetteError
    from .recording import Recorder

    session = session_of(item.config)
    if session.settings.verify:
        from .verify import before_test

        before_test(item)  # skips the test once a spending limit is reached
    path = session.cassette_path(item)
    settings = session.record_settings(item, vcr_options, project, path=path)
    recorder = Recorder(path, settings, session.cache.document)
    failure: str | None = None
    try:
        recorder.__enter__()
    except CassetteError as exc:
        failure = str(exc)
    if not failure and recorder.loaded:
        try:
            session.apply_age_limit(item, recorder.path, recorder.previous_metadata)
        except BaseException:  # the age warning made an error (filterwarnings): unpatch first
            recorder.__exit__(None, None, None)
            raise
    if failure:
        pytest.fail(failure, pytrace=False)
    item.stash[RECORDER_KEY] = recorder
    # Interactions recorded in this run are not "unplayed": the next replay run checks them.
    written_this_run = recorder.loaded and session.new_this_run(recorder.path)
    credentials = pytest.MonkeyPatch()
    if _replaying(recorder):
        for name in _REPLAY_CREDENTIALS:  # a client built with no key works in replay
            if not os.environ.get(name):
                credentials.setenv(name, _PLACEHOLDER_KEY)
    try:
        if recorder.may_check_schemas():
            from .checks import prepare

            prepare()  # the checks' imports, here rather than in the code under test's loop
        yield
    finally:
        credentials.undo()
        del item.stash[RECORDER_KEY]
        report = session.report
        report.add_exchanges(item.nodeid, "replayed", recorder.replayed, str(recorder.path))
        if recorder.recorded:  # nothing recorded adds nothing: the test's entry is there
            report.add_exchanges(item.nodeid, "recorded", recorder.recorded, str(recorder.path))
        shown = session.relative(recorder.path)
        if recorder.loaded and recorder.settings.mode != "all":
            played: Iterable[int] = [e.index for e in recorder.replayed]
            if written_this_run or recorder.unmatched:  # a mismatch says what differs already
                played = range(recorder.loaded)
            report.note_played(shown, recorder.loaded, played)
        try:
            recorder.__exit__(None, None, None)
        except CassetteError as exc:
            failure = str(exc)
        report.model_changes.extend(f"{shown}: {change}" for change in recorder.model_changes)
        if recorder.settings.verify:
            from .verify import after_test

            after_test(item, recorder)
        if failure:
            pytest.fail(failure, pytrace=False)


def _pytest_recording_block(item: pytest.Item, exc: BaseException) -> str | None:
    """pytest-recording's option or marker, when its network block is what ``exc`` comes from."""
    if item.get_closest_marker("block_network") is not None:
        blocker = "@pytest.mark.block_network"
    elif item.config.getoption("block_network", default=False) is True:
        blocker = "--block-network"
    else:
        return None
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, RuntimeError) and str(cause).startswith("Network is disabled"):
            return blocker
        cause = cause.__cause__ or cause.__context__
    return None


def _replaying(recorder: Recorder) -> bool:
    """Whether a marked test only replays: mode none, or once with its cassette there before
    the run."""
    return recorder.settings.replay_only


def guarded_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    """The body of ``pytest_runtest_setup``: a fixture of a test that records (one that makes
    the client, say) failing for want of a key or a server gets the recording's own message."""
    try:
        return (yield)
    except Exception as exc:  # an interrupt or an exit passes through
        recorder = item.stash.get(RECORDER_KEY, None)
        failure = _recording_failure(item, recorder, exc) if recorder is not None else None
        if failure:
            raise pytest.fail.Exception(failure, pytrace=False) from None
        raise


def guarded_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """The body of ``pytest_runtest_call``: the test under its network guard and recorder.
    Interrupts and exits pass through untouched."""
    recorder = item.stash.get(RECORDER_KEY, None)
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
    settings = session_of(item.config).settings
    fixture = next((f for f in sorted(FIXTURES) if f in getattr(item, "fixturenames", ())), None)
    unmarked = recorder is None and fixture is not None
    blocking = (
        settings.block_network
        and settings.record_mode == "none"
        and (recorder is None or recorder.settings.mode == "none")  # a marker may record
    )
    if not (unmarked or blocking) or item.get_closest_marker("vcr") is not None:
        return None
    from .network import NetworkGuard

    attempts: dict[str, str] = {}  # host:port shown -> the host to allow

    def message(host: str, shown: str) -> str:
        if shown:
            attempts.setdefault(shown, host)
        allow = f"--chatresp-allow-hosts={','.join(dict.fromkeys(attempts.values()))}"
        hosts = ", ".join(attempts)
        if unmarked:
            reason = (
                f"a test that uses the {fixture} fixture without @pytest.mark.{MARKER} may not "
                "reach the network"
            )
        else:
            reason = "--chatresp-block-network blocks the network in a replay run"
        return (
            f"Network blocked: {item.nodeid} tried to connect to {hosts}, and nothing was sent:\n"
            f"{reason}. Add @pytest.mark.{MARKER} to replay (or record) its calls, or allow "
            f"the host with {allow} (ini chatresp_allow_hosts)."
        )

    return NetworkGuard(list(settings.allow_hosts), loopback=not unmarked, message=message)


def _recorded_call(item: pytest.Item, recorder: Recorder) -> Generator[None, Any, Any]:
    try:
        result = yield
    except (Exception, pytest.fail.Exception) as exc:  # an interrupt or an exit passes through
        failure = _after_call(item, recorder)
        if failure:
            # Replaces what the client raised (a connection error, say) with the reason.
            raise pytest.fail.Exception(failure, pytrace=False) from None
        failure = _recording_failure(item, recorder, exc)
        if failure:
            # from None: the message lists the causes, redacted; pytest would print the
            # chained exception's own text, secrets and all.
            raise pytest.fail.Exception(failure, pytrace=False) from None
        raise
    failure = _after_call(item, recorder)
    if failure:
        pytest.fail(failure, pytrace=False)
    return result


def _after_call(item: pytest.Item, recorder: Recorder) -> str | None:
    if recorder.unmatched:
        return _unmatched_message(item, recorder)
    rejected = _rejected_key(item, recorder)
    if rejected:
        return rejected
    marker = marker_of(item)
    if marker is not None and not marker.expect_violations:
        violations = recorder.cassette.violations
        if violations:
            what = "A recorded or replayed chat completion"
            if recorder.settings.verify:
                what = "A live answer (--chatresp-verify)"
            return f"{what} breaks the contract:\n" + "\n".join(str(v) for v in violations)
    return None


#: Statuses that say the credential was refused: such an answer is not worth replaying.
_AUTH_FAILURES = (401, 403)


def _rejected_key(item: pytest.Item, recorder: Recorder) -> str | None:
    """Our message when the server refused the credential while recording (401 or 403); the
    cassette is then not written, and the client's error (which may quote the key) not shown."""
    rejected = next((e for e in recorder.recorded if e.status in _AUTH_FAILURES), None)
    if rejected is None:
        return None
    from .errors import printable, record_command
    from .hygiene.policy import redact_text
    from .recording.mismatch import masked

    def redact(text: str) -> str:
        return redact_text(text, recorder.secrets)

    recorder.discard = True
    error = rejected.error
    detail = " ".join(str(x) for x in (rejected.status, error and error.code) if x)
    secrets = recorder.secrets
    from_environment = [v for v in secrets.environment if v in secrets.learned]
    names = sorted(secrets.environment[v].removeprefix("$") for v in from_environment)
    sent = {
        what
        for value, what in secrets.learned.items()
        if (value in from_environment or not names) and what.startswith("value of request")
    }
    variable = " or ".join(f"${n}" for n in names) or "the API key variable ($OPENAI_API_KEY)"
    header = ", ".join(sorted(sent)) or "the request"
    lines = [
        f"Recording failed: the server rejected the API key ({detail}) for "
        + masked(rejected.request.describe(redact), redact),
        f"test: {item.nodeid}",
        f"cassette: {session_of(item.config).relative(recorder.path)} (not written), "
        f"record mode {recorder.settings.mode!r}",
        f"Put a valid key in {variable} (sent as the {header}, REDACTED here), then record again: "
        + record_command(recorder.settings.mode, item.nodeid),
    ]
    if error is not None and error.message:
        lines.append(f"the server said: {masked(error.message, redact)}")
    return printable("\n".join(lines))


def _unmatched_message(item: pytest.Item, recorder: Recorder) -> str:
    from .errors import printable
    from .hygiene.policy import redact_text
    from .recording.mismatch import explain

    return printable(
        explain(
            recorder.unmatched,
            cassette=session_of(item.config).relative(recorder.path),
            exists=recorder.path.exists(),
            mode=recorder.settings.mode,
            test=item.nodeid,
            clean=lambda text: redact_text(text, recorder.secrets),
        )
    )


def _recording_failure(item: pytest.Item, recorder: Recorder, exc: BaseException) -> str | None:
    """Our message for a recording that could not be made: no key, or no server."""
    if _replaying(recorder):
        return None
    from .errors import record_command
    from .hygiene.policy import redact_text
    from .recording import connection_failure, missing_credentials
    from .recording.mismatch import masked

    def redact(text: str) -> str:
        return redact_text(text, recorder.secrets)

    blocker = _pytest_recording_block(item, exc)
    if blocker:
        recorder.discard = True
        return "\n".join(
            [
                f"Recording failed: pytest-recording's {blocker} blocked the connection, and "
                "nothing was sent",
                f"test: {item.nodeid}",
                f"cassette: {session_of(item.config).relative(recorder.path)} (not written), "
                f"record mode {recorder.settings.mode!r}",
                (
                    "Drop --block-network for the recording run: pytest "
                    f"--chatresp-record-mode={recorder.settings.mode} {item.nodeid}"
                    if blocker.startswith("--")
                    else "Remove @pytest.mark.block_network from the test to record it"
                ),
                "(--chatresp-block-network blocks the network in replay runs only, so marked "
                "tests can record.)",
            ]
        )
    variable = missing_credentials(exc)
    if variable:
        return (
            f"Recording needs a real API key: the client was given none and ${variable} is not "
            f"set.\nSet it for the recording run: {variable}=... "
            f"{record_command(recorder.settings.mode, item.nodeid)}\n"
            "(Replay needs no key: while a test replays, the plugin sets a placeholder.)"
        )
    causes = connection_failure(exc)
    if causes is None:
        return None
    recorder.discard = True
    request = recorder.last_request
    target = request.describe(redact) if request is not None else "the server"
    return "\n".join(
        [
            f"Recording failed: cannot connect to {masked(target, redact)}",
            f"test: {item.nodeid}",
            f"cassette: {session_of(item.config).relative(recorder.path)} (not written), "
            f"record mode {recorder.settings.mode!r}",
            "Is the server running, and is the client's base_url right?",
            *(f"caused by: {masked(cause, redact)}" for cause in causes),
        ]
    )
