"""Small builders for the cassettes tests write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def completion(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1764000000,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Sunny, 21C", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    body.update(changes)
    return body


def write_cassette(
    path: Path,
    *bodies: dict[str, Any] | str,
    status: int = 200,
    request: dict[str, Any] | None = None,
) -> Path:
    """A vcrpy cassette of chat completion exchanges, one per body."""
    interactions = []
    for body in bodies:
        text = body if isinstance(body, str) else json.dumps(body)
        interactions.append(
            {
                "request": {
                    "method": "POST",
                    "uri": "https://api.openai.com/v1/chat/completions",
                    "body": json.dumps(request or {"model": "gpt-4o-mini", "messages": []}),
                    "headers": {"Content-Type": ["application/json"]},
                },
                "response": {
                    "status": {"code": status, "message": "OK"},
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"string": text},
                },
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON is valid YAML: the reader takes it either way.
    path.write_text(json.dumps({"interactions": interactions, "version": 1}, indent=1))
    return path


def glob(pattern: str) -> str:
    """An fnmatch pattern whose ``[`` are literal (field paths have them), ``*`` kept."""
    return pattern.replace("[", "[[]")
