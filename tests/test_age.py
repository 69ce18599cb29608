"""Age for every cassette: provenance first, else what the recorded responses say.

Cassettes recorded by pytest-recording or vcrpy carry no provenance metadata; their age comes
from the responses' ``Date`` header (or the bodies' ``created``), and the message says it was
inferred. A cassette that says neither is reported once per run as of unknown age.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import completion
from openai_server import OpenAIServer

OLD_DATE = "Wed, 30 Apr 2025 10:00:00 GMT"
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Weather?"}]}


def interaction(
    base: str, body: dict[str, Any], date: str | None, path: str = "/chat/completions"
) -> dict[str, Any]:
    """One interaction as pytest-recording (vcrpy's YAML serializer) writes it."""
    headers = {"content-type": ["application/json"]}
    if date:
        headers["date"] = [date]
    return {
        "request": {
            "body": json.dumps(REQUEST),
            "headers": {"content-type": ["application/json"]},
            "method": "POST",
            "uri": base + path,
        },
        "response": {
            "body": {"string": json.dumps(body)},
            "headers": headers,
            "status": {"code": 200, "message": "OK"},
        },
    }


def write(pytester: pytest.Pytester, name: str, *interactions: dict[str, Any]) -> Path:
    path = pytester.path / "cassettes" / "test_user" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"interactions": list(interactions), "version": 1}))
    return path


def test_age_inferred_from_the_date_header(pytester: pytest.Pytester) -> None:
    write(pytester, "test_dated", interaction("https://api.openai.com/v1", completion(), OLD_DATE))
    pytester.makepyfile(test_user="def test_dated(chat_completion):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-max-age=30")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*CassetteAgeWarning: cassettes/test_user/test_dated.yaml was recorded * days ago "
            "(2025-04-30, inferred from its Date header), more than --chatresp-max-age=30. "
            "test_user.py::test_dated only reads it: record it again from a test marked "
            "@pytest.mark.chat_cassette that makes its calls, with --chatresp-record-mode=all"
        ]
    )


def test_age_inferred_from_created_fails_when_told(pytester: pytest.Pytester) -> None:
    body = completion(created=1700000000)  # 2023-11-14
    write(pytester, "test_created", interaction("https://api.openai.com/v1", body, None))
    pytester.makepyfile(test_user="def test_created(chat_completion):\n    pass\n")
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--chatresp-max-age=30",
        "-W",
        "error::pytest_chatresp.CassetteAgeWarning",
    )
    result.assert_outcomes(errors=1)  # in the fixture, before the test
    result.stdout.fnmatch_lines(
        [
            "cassettes/test_user/test_created.yaml was recorded * days ago "
            "(2023-11-14, inferred from the responses' created), more than "
            "--chatresp-max-age=30. test_user.py::test_created only reads it: record it again "
            "from a test marked @pytest.mark.chat_cassette that makes its calls, with "
            "--chatresp-record-mode=all"
        ]
    )


def test_replayed_cassette_age_inferred(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    """A pytest-recording cassette replayed under the marker, through the SDK."""
    write(pytester, "test_replay", interaction(openai_server.base_url, completion(), OLD_DATE))
    pytester.makepyfile(
        test_user="""
import os

import openai
import pytest


@pytest.mark.chat_cassette
def test_replay():
    client = openai.OpenAI(
        base_url=os.environ["CHATRESP_TEST_BASE_URL"],
        api_key=os.environ["CHATRESP_TEST_API_KEY"],
        max_retries=0,
    )
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather?"}]
    )
"""
    )
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--chatresp-max-age=30",
        "-W",
        "error::pytest_chatresp.CassetteAgeWarning",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*(2025-04-30, inferred from its Date header)*"])
    assert openai_server.request_count == 0


def test_age_unknown_reported_once_per_run(pytester: pytest.Pytester) -> None:
    embeddings = {"object": "list", "data": [], "model": "text-embedding-3-small"}
    for name in ("test_one", "test_two"):
        write(
            pytester,
            name,
            interaction("https://api.openai.com/v1", embeddings, None, path="/embeddings"),
        )
    pytester.makepyfile(
        test_user="def test_one(chat_cassette):\n    pass\n\n\n"
        "def test_two(chat_cassette):\n    pass\n\n\n"
        "def test_two_again(chat_cassette):\n    pass\n"
    )
    (pytester.path / "cassettes" / "test_user" / "test_two_again.yaml").write_text(
        (pytester.path / "cassettes" / "test_user" / "test_two.yaml").read_text()
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-max-age=30")
    result.assert_outcomes(passed=3)
    lines = [line for line in result.outlines if line.startswith("age unknown")]
    assert lines == [
        "age unknown for 3 cassette(s) (no recorded_at metadata, Date header or created): "
        "cassettes/test_user/test_one.yaml, cassettes/test_user/test_two.yaml, "
        "cassettes/test_user/test_two_again.yaml"
    ]


def test_no_age_note_without_max_age(pytester: pytest.Pytester) -> None:
    embeddings = {"object": "list", "data": [], "model": "text-embedding-3-small"}
    write(pytester, "test_one", interaction("https://x.test/v1", embeddings, None, "/embeddings"))
    pytester.makepyfile(test_user="def test_one(chat_cassette):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("age unknown*")
