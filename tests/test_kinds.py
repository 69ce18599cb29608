"""Exchanges by kind, and the run report of collected cassettes: every completion read, as
``chatresp check`` counts them.

A body is an error only when its ``error`` is present and not null (every successful Responses
API body says ``"error": null``). Responses API, embeddings and other exchanges are kept and
counted by kind, never as errors or chat completions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import completion

from pytest_chatresp import load_cassette
from pytest_chatresp.cli import main

RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1764000000,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "model": "gpt-4o-mini-2024-07-18",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Sunny", "annotations": []}],
        }
    ],
    "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
}
EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
    "model": "text-embedding-3-small",
    "usage": {"prompt_tokens": 2, "total_tokens": 2},
}
ERROR = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}}
STREAM = (
    'data: {"id":"c1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n'
    'data: {"id":"c1","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini",'
    '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    "data: [DONE]\n\n"
)


def interaction(path: str, body: Any, status: int = 200, stream: bool = False) -> dict[str, Any]:
    """One interaction as vcrpy's YAML serializer stores it."""
    return {
        "request": {
            "body": json.dumps({"model": "gpt-4o-mini", "input": "Weather?"}),
            "headers": {"content-type": ["application/json"]},
            "method": "POST",
            "uri": f"https://api.openai.com/v1{path}",
        },
        "response": {
            "body": {"string": body if isinstance(body, str) else json.dumps(body)},
            "headers": {"content-type": ["text/event-stream" if stream else "application/json"]},
            "status": {"code": status, "message": "OK"},
        },
    }


def cassette(path: Path, *interactions: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"interactions": list(interactions), "version": 1}))
    return path


def test_kinds_of_exchanges(tmp_path: Path) -> None:
    path = cassette(
        tmp_path / "mixed.yaml",
        interaction("/responses", RESPONSE),
        interaction("/embeddings", EMBEDDINGS),
        interaction("/chat/completions", completion()),
        interaction("/chat/completions", STREAM, stream=True),
        interaction("/chat/completions", ERROR, status=429),
        interaction("/responses", {**RESPONSE, "error": {"message": "boom", "type": "server"}}),
        interaction("/files", {"object": "file", "id": "file-1"}),
    )
    loaded = load_cassette(path)
    assert [e.kind for e in loaded.exchanges] == [
        "responses",
        "embeddings",
        "chat completion",
        "chat stream",
        "error",
        "error",
        "other",
    ]
    responses = loaded.exchanges[0]
    assert responses.error is None  # "error": null is a success
    assert not responses.is_completion
    assert str(loaded.exchanges[5].error) == "HTTP 200 (server): boom"
    assert len(loaded.completions) == 2


def test_check_counts_by_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    cassette(
        tmp_path / "cassettes" / "a.yaml",
        interaction("/responses", RESPONSE),
        interaction("/responses", RESPONSE),
        interaction("/embeddings", EMBEDDINGS),
        interaction("/chat/completions", completion()),
    )
    assert main(["check", "cassettes"]) == 0
    assert capsys.readouterr().out == (
        "1 file, 4 exchanges, 1 chat completion (0 streamed), 0 error responses, "
        "2 responses exchanges, 1 embeddings exchange, 0 unreadable files, 0 invalid completions\n"
    )
    assert main(["show", "cassettes/a.yaml", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["exchanges"]
    assert [(e["kind"], e["error"]) for e in shown] == [
        ("responses", None),
        ("responses", None),
        ("embeddings", None),
        ("chat completion", None),
    ]
    assert main(["show", "cassettes/a.yaml"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        "#0 POST /v1/responses → 200",
        "    kind: responses",
    ]


def test_check_mode_counts_every_completion_like_chatresp_check(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failing cassette item adds its completions to the totals, and the models it saw."""
    directory = pytester.path / "cassettes"
    cassette(
        directory / "good.yaml",
        interaction("/chat/completions", completion()),
        interaction("/chat/completions", STREAM, stream=True),
        interaction("/chat/completions", ERROR, status=429),
    )
    broken = completion(model="gpt-4o-2024-08-06")
    broken["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 99}
    cassette(
        directory / "bad.yaml",
        interaction("/chat/completions", broken),
        interaction("/chat/completions", completion(choices=[{"index": 0}])),
    )
    cassette(directory / "responses_only.yaml", interaction("/responses", RESPONSE))
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--chatresp-collect-cassettes",
        "--chatresp-report-json=report.json",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "total: 4 chat completions (4 read, 0 replayed, 0 recorded; 2 invalid), "
            "tokens 30 prompt / 15 completion / 129 total",
            "models: gpt-4o-2024-08-06 (1), gpt-4o-mini (1), gpt-4o-mini-2024-07-18 (2)",
            "other exchanges: error (1), responses (1)",
            "cassettes with no chat completion (nothing in them was validated):",
            "  cassettes/responses_only.yaml: responses (1)",
        ]
    )
    total = json.loads((pytester.path / "report.json").read_text())["total"]
    monkeypatch.chdir(pytester.path)
    capsys.readouterr()
    assert main(["check", "--json", "cassettes"]) == 1
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert total["read"] == totals["completions"] == 4
    assert total["invalid"] == totals["invalid"] == 2
    assert total["kinds"] == totals["kinds"]
    assert total["kinds"]["error"] == totals["errors"] == 1


RESPONSES_TEST = """
import os

import openai
import pytest


@pytest.mark.chat_cassette("responses.yaml")
def test_responses(chat_cassette):
    client = openai.OpenAI(
        base_url=os.environ["CHATRESP_TEST_BASE_URL"],
        api_key=os.environ["CHATRESP_TEST_API_KEY"],
        max_retries=0,
    )
    response = client.responses.create(model="gpt-4o-mini", input="Weather?")
    assert response.output_text == "Sunny"
    assert response.error is None
    exchange = chat_cassette.exchanges[0]
    assert (exchange.kind, exchange.error) == ("responses", None)
    assert chat_cassette.completions == []
"""


def test_responses_api_replayed_is_no_error(pytester: pytest.Pytester, openai_server: Any) -> None:
    recorded = interaction("/responses", RESPONSE)
    recorded["request"]["uri"] = openai_server.base_url + "/responses"
    cassette(pytester.path / "cassettes" / "responses.yaml", recorded)
    pytester.makepyfile(test_user=RESPONSES_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["other exchanges: responses (1)"])
    assert openai_server.request_count == 0
