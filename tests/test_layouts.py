"""Every cassette layout the README lists replays under the marker, through the real SDK.

Each test writes a cassette in one recorder's layout, whose requests name the local server
(``openai_server``), then runs a user test that makes the same calls with the ``openai`` SDK
under ``@pytest.mark.chat_cassette`` in record mode ``none``: the answers come from the
cassette, and no request reaches the server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DATA
from helpers import completion
from openai_server import OpenAIServer

from pytest_chatresp.cassette import readable

INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

USER_TEST = """\
import os

import openai
import pytest

URL = os.environ["CHATRESP_TEST_BASE_URL"]
KEY = os.environ["CHATRESP_TEST_API_KEY"]


@pytest.mark.chat_cassette("{name}")
def test_replay(chat_cassette):
    client = openai.OpenAI(base_url=URL, api_key=KEY, max_retries=0)
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": "Weather?"}}]
    )
    assert answer.choices[0].message.content == "Sunny, 21C"
    assert [c.model for c in chat_cassette.completions] == ["gpt-4o-mini-2024-07-18"]
"""

REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Weather?"}]}


def vcrpy_interaction(base: str) -> dict[str, Any]:
    """One interaction as vcrpy's serializers hold it."""
    return {
        "request": {
            "body": json.dumps(REQUEST),
            "headers": {"content-type": ["application/json"]},
            "method": "POST",
            "uri": f"{base}/chat/completions",
        },
        "response": {
            "body": {"string": json.dumps(completion())},
            "headers": {"content-type": ["application/json"]},
            "status": {"code": 200, "message": "OK"},
        },
    }


def replay(pytester: pytest.Pytester, name: str, text: str) -> pytest.RunResult:
    path = pytester.path / "cassettes" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    pytester.makeini(INI)
    pytester.makepyfile(test_user=USER_TEST.format(name=name))
    return pytester.runpytest("-p", "no:cacheprovider")


def test_vcrpy_yaml_replays(pytester: pytest.Pytester, openai_server: OpenAIServer) -> None:
    document = {"interactions": [vcrpy_interaction(openai_server.base_url)], "version": 1}
    result = replay(pytester, "plain.yaml", yaml.safe_dump(document))
    result.assert_outcomes(passed=1)
    assert openai_server.request_count == 0


def test_vcrpy_json_replays(pytester: pytest.Pytester, openai_server: OpenAIServer) -> None:
    document = {"interactions": [vcrpy_interaction(openai_server.base_url)], "version": 1}
    result = replay(pytester, "plain.json", json.dumps(document, indent=4))
    result.assert_outcomes(passed=1)
    assert openai_server.request_count == 0


def test_older_httpx_layout_replays(pytester: pytest.Pytester, openai_server: OpenAIServer) -> None:
    """vcrpy's httpx stubs once wrote ``status_code``, ``http_version`` and ``content``."""
    interaction = vcrpy_interaction(openai_server.base_url)
    interaction["response"] = {
        "content": json.dumps(completion()),
        "headers": {"content-type": ["application/json"]},
        "http_version": "HTTP/1.1",
        "status_code": 200,
    }
    document = {"interactions": [interaction], "version": 1}
    result = replay(pytester, "old_httpx.yaml", yaml.safe_dump(document))
    result.assert_outcomes(passed=1)
    assert openai_server.request_count == 0


def test_readable_layout_replays(pytester: pytest.Pytester, openai_server: OpenAIServer) -> None:
    document = {"interactions": [vcrpy_interaction(openai_server.base_url)], "version": 1}
    text = readable.serialize(document)
    assert "json:" in text  # the readable layout, not vcrpy's
    result = replay(pytester, "readable.yaml", text)
    result.assert_outcomes(passed=1)
    assert openai_server.request_count == 0


PYDANTIC_AI_TEST = """\
import os
from pathlib import Path

import openai
import pytest
import yaml

URL = os.environ["CHATRESP_TEST_BASE_URL"]
KEY = os.environ["CHATRESP_TEST_API_KEY"]
CASSETTE = Path(__file__).parent / "cassettes" / "pydantic_ai.yaml"


@pytest.mark.chat_cassette("pydantic_ai.yaml")
def test_replay(chat_cassette):
    client = openai.OpenAI(base_url=URL, api_key=KEY, max_retries=0)
    recorded = yaml.safe_load(CASSETTE.read_text())["interactions"]
    names = []
    for interaction in recorded:  # the calls the recording app made, in order
        answer = client.chat.completions.create(**interaction["request"]["parsed_body"])
        names.append(answer.choices[0].message.tool_calls[0].function.name)
    assert names == ["get_user_country", "final_result"]
    assert len(chat_cassette.completions) == 2
"""


def test_pydantic_ai_parsed_body_replays(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    """pydantic-ai's own layout: JSON bodies as structure under ``parsed_body``."""
    source = Path(DATA, "layouts", "pydantic_ai_parsed_body.yaml").read_text(encoding="utf-8")
    text = source.replace("{BASE}", openai_server.base_url)
    path = pytester.path / "cassettes" / "pydantic_ai.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    pytester.makeini(INI)
    pytester.makepyfile(test_user=PYDANTIC_AI_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert openai_server.request_count == 0
    assert path.read_text(encoding="utf-8") == text  # replay never rewrites the file


def test_parsed_body_normalised_for_vcrpy() -> None:
    """What vcrpy is handed: its own layout, the JSON text of each parsed body."""
    document = yaml.safe_load(
        Path(DATA, "layouts", "pydantic_ai_parsed_body.yaml").read_text(encoding="utf-8")
    )
    plain = readable.to_plain(document)
    request, response = plain["interactions"][0]["request"], plain["interactions"][0]["response"]
    assert "parsed_body" not in request
    assert "parsed_body" not in response
    assert json.loads(request["body"])["model"] == "gpt-4o"
    assert json.loads(response["body"]["string"])["model"] == "gpt-4o-2024-08-06"
    assert "parsed_body" in document["interactions"][0]["request"]  # the original is untouched
