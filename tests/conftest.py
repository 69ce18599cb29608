"""Shared fixtures: a real OpenAI-compatible server on 127.0.0.1, and pytester helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai_server import OpenAIServer

#: A deliberately fake key: tests never use a real one.
FAKE_KEY = "sk-FAKE-test-key-not-real-0000000000"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def _server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def openai_server(_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIServer:
    """The local server, its request count reset; its URL is in $CHATRESP_TEST_BASE_URL."""
    _server.reset()
    monkeypatch.setenv("CHATRESP_TEST_BASE_URL", _server.base_url)
    monkeypatch.setenv("CHATRESP_TEST_API_KEY", FAKE_KEY)
    return _server
