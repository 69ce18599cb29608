"""Verify mode (``--chatresp-verify``), around the run and around each marked test.

At start-up a real API key is required. Before each marked test, the spending limits are
checked: once one is reached, the marked tests left are skipped, naming the limit, and sent
nothing. After each, its live exchanges are compared with the recordings they would have
replayed (:mod:`.verification`) and the findings added to the run report. At the end, drift
fails the run. Limits are counted per process: under pytest-xdist each worker spends up to them.
pytest-facing; plugin.py and running.py call these.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from .session import ChatrespSession, session_of

if TYPE_CHECKING:
    from .recording import Recorder

__all__ = ["KEY_VARIABLES", "after_test", "before_test", "check_start"]

#: Where the SDKs supported read their key; verify mode needs one of them set.
KEY_VARIABLES = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")
_PLACEHOLDERS = ("", "chatresp-replay-placeholder")


def check_start(session: ChatrespSession) -> None:
    """Refuse a verify run without a real API key, before any test runs."""
    if not session.settings.verify:
        return
    if any(os.environ.get(name, "").strip() not in _PLACEHOLDERS for name in KEY_VARIABLES):
        return
    raise pytest.UsageError(
        "--chatresp-verify sends every request of the marked tests to the live service, and "
        f"needs a real API key: set ${KEY_VARIABLES[0]} (or ${KEY_VARIABLES[1]}), for example "
        "from a CI secret: OPENAI_API_KEY=... pytest --chatresp-verify"
    )


def _limit_reached(session: ChatrespSession) -> str | None:
    settings, verify = session.settings, session.report.verify
    requests, tokens = settings.verify_max_requests, settings.verify_max_tokens
    if requests is not None and verify.requests >= requests:
        return (
            f"--chatresp-verify-max-requests={requests} reached "
            f"({verify.requests} live request(s) sent)"
        )
    if tokens is not None and verify.tokens >= tokens:
        return f"--chatresp-verify-max-tokens={tokens} reached ({verify.tokens} token(s) used)"
    return None


def before_test(item: pytest.Item) -> None:
    """Skip the marked test, sending nothing, once a spending limit is reached."""
    session = session_of(item.config)
    reason = _limit_reached(session)
    if reason is None:
        return
    verify = session.report.verify
    verify.skipped[item.nodeid] = reason
    verify.stopped.append(reason)
    pytest.skip(f"not verified: {reason}")


def after_test(item: pytest.Item, recorder: Recorder) -> None:
    """Compare the test's live exchanges with their recordings; note what was spent."""
    from .verification import compare

    session = session_of(item.config)
    pairs = [(c.live, c.recorded) for c in recorder.counterparts.found]
    session.report.verify.tests[item.nodeid] = compare(session.relative(recorder.path), pairs)
