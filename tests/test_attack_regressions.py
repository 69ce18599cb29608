"""Regressions from the security review of the plugin: each test reproduces one way in.

A secret in a chained exception, a hostile store directory, control characters in collected
item names, a secret echoed in a response or a test id reaching the report or a message, and
numbers too long to print.
"""

from __future__ import annotations

import socket
import textwrap

import pytest

FAKE_TOKEN = "FAKE0tokv0123456789"


def test_a_recording_failure_prints_no_secret_from_the_chained_exception(
    pytester: pytest.Pytester,
) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pytester.makepyfile(
        test_m=textwrap.dedent(
            f"""
            import pytest, requests

            @pytest.mark.chat_cassette
            def test_conn():
                requests.get("http://127.0.0.1:{port}/v1/models?token={FAKE_TOKEN}")
            """
        )
    )
    result = pytester.runpytest_subprocess("--chatresp-record-mode=once", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["Recording failed: cannot connect to GET *token=REDACTED*"])
    assert FAKE_TOKEN not in result.stdout.str() + result.stderr.str()
