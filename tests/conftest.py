"""Shared fixtures: a real OpenAI-compatible server on 127.0.0.1, and pytester helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401
import openai  # noqa: F401
import pytest
import vcr  # noqa: F401
from openai_server import OpenAIServer

# Imported here, before any pytester session: modules imported inside an in-process pytester
# run are dropped after it and imported (and assertion-rewritten) again by the next one.
import pytest_chatresp.assertions
import pytest_chatresp.cassette
import pytest_chatresp.recording  # noqa: F401

#: A deliberately fake key: tests never use a real one.
FAKE_KEY = "sk-FAKE-test-key-not-real-0000000000"
DATA = Path(__file__).resolve().parent / "data"
#: Real cassettes recorded by public projects, with their manifest and licences (NOTICE.md).
CORPUS = DATA / "corpus"


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


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, its sessions set up as this project's own (pytester clears PYTEST_ADDOPTS)."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    return pytester


@pytest.fixture
def whole_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the cassettes whose exchanges were all built from their document."""
    from pytest_chatresp.cassette import loader

    built: list[str] = []
    original = loader.cassette_from_document

    def counting(path: object, document: object, **options: object) -> object:
        built.append(Path(str(path)).name)
        return original(path, document, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "cassette_from_document", counting)
    return built


@pytest.fixture
def counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the cassette files parsed (read from their bytes), in order."""
    import pytest_chatresp.cassette.document as reader

    parsed: list[str] = []
    original = reader.read_document

    def counting(path: object, data: bytes | None = None) -> object:
        parsed.append(Path(str(path)).name)
        return original(path, data)  # type: ignore[arg-type]

    monkeypatch.setattr(reader, "read_document", counting)
    return parsed
