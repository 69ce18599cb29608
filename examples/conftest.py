"""Fixtures for the example suite.

The examples call an OpenAI-compatible API through the real ``openai`` SDK. Replayed from
``cassettes/`` they need no key and no network; ``python examples/record.py`` re-records them
against the local server in ``tests/openai_server.py``.
"""

from __future__ import annotations

import os

import openai
import pytest

#: Where the cassettes were recorded; replay matches on it, so it never changes.
BASE_URL = "http://127.0.0.1:8765/v1"


@pytest.fixture
def client() -> openai.OpenAI:
    # Replay needs no key; recording against a real API would read OPENAI_API_KEY.
    key = os.environ.get("OPENAI_API_KEY", "not-needed-for-replay")
    return openai.OpenAI(base_url=BASE_URL, api_key=key, max_retries=0)


@pytest.fixture
def async_client() -> openai.AsyncOpenAI:
    key = os.environ.get("OPENAI_API_KEY", "not-needed-for-replay")
    return openai.AsyncOpenAI(base_url=BASE_URL, api_key=key, max_retries=0)
