"""vcrpy's patches, built once a process and entered for each test's cassette.

Each test's replay goes to its own cassette, a test without the marker reaches the network
as if vcrpy were not there, a patched attribute changed between tests is patched afresh, and
a cassette entered inside another one gets vcrpy's own patches.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import vcr
import vcr.cassette
import yaml
from openai_server import OpenAIServer
from test_recording import results, run, user_tests
from vcr.errors import CannotOverwriteExistingCassetteException

from pytest_chatresp.recording import _vcrpy

INI = """\
[pytest]
asyncio_default_fixture_loop_scope = function
chatresp_serializer = yaml
"""

THREE_TESTS = """
def post(send, text):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    headers = {"authorization": "Bearer " + KEY}
    response = send(CHAT, json=body, headers=headers, timeout=10)
    assert response.status_code == 200
    return response.json()["choices"][0]["message"]["content"]


@pytest.mark.chat_cassette
def test_a(chat_cassette):
    show(["a", post(requests.post, "first via requests")])
    assert len(chat_cassette.exchanges) == 1


def test_b():
    show(["b", post(httpx.post, "live, no marker")])


@pytest.mark.chat_cassette
def test_c(chat_cassette):
    show(["c", post(httpx.post, "second via httpx")])
    assert len(chat_cassette.exchanges) == 1
"""


def _shown(result: pytest.RunResult) -> dict[str, str]:
    return dict(results(result))


def test_each_test_replays_its_own_cassette_and_an_unmarked_test_goes_live(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    pytester.makeini(INI)
    user_tests(pytester, THREE_TESTS)
    recorded = run(pytester, "-s", "--chatresp-record-mode=once")
    recorded.assert_outcomes(passed=3)
    assert openai_server.request_count == 3
    for name, question in (("test_a", "first via requests"), ("test_c", "second via httpx")):
        path = pytester.path / "cassettes" / "test_user" / f"{name}.yaml"
        (interaction,) = yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]
        assert question in str(interaction["request"]["body"])
    assert not (pytester.path / "cassettes" / "test_user" / "test_b.yaml").exists()

    replayed = run(pytester, "-s")
    replayed.assert_outcomes(passed=3)
    assert openai_server.request_count == 4, "only the unmarked test reached the server"
    shown = _shown(replayed)
    assert shown["a"] == _shown(recorded)["a"]
    assert shown["c"] == _shown(recorded)["c"]
    assert shown["a"] != shown["c"]


# --- the patchers themselves ---------------------------------------------------------------


def _write(path: Path, content: str, times: int = 1) -> Path:
    """A vcrpy cassette answering POST /answer with ``content``, ``times`` times."""
    document = {
        "version": 1,
        "interactions": times
        * [
            {
                "request": {
                    "method": "POST",
                    "uri": "http://127.0.0.1:9/answer",
                    "body": None,
                    "headers": {},
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"content-type": ["text/plain"]},
                    "body": {"string": content},
                },
            }
        ],
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _answer() -> str:
    return httpx.post("http://127.0.0.1:9/answer").text


@pytest.fixture
def config() -> Any:
    return vcr.VCR(record_mode="none")


@pytest.fixture(autouse=True)
def _fresh_patches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no patchers built (the process's set is put back after it)."""
    monkeypatch.setattr(_vcrpy, "_PATCHES", _vcrpy._Patches())


def test_the_patchers_are_built_once_and_each_cassette_answers(
    tmp_path: Path, config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[object] = []
    real_build = vcr.patch.CassettePatcherBuilder.build

    def counted(self: Any) -> Any:
        builds.append(self)
        return real_build(self)

    monkeypatch.setattr(vcr.patch.CassettePatcherBuilder, "build", counted)
    unpatched = httpx.HTTPTransport.handle_request
    answers = []
    for content in ("one", "two", "three"):
        with _vcrpy.use_cassette(config, str(_write(tmp_path / f"{content}.yaml", content))):
            assert httpx.HTTPTransport.handle_request is not unpatched
            answers.append(_answer())
        assert httpx.HTTPTransport.handle_request is unpatched
    assert answers == ["one", "two", "three"]
    assert len(builds) == 1


def test_an_attribute_patched_since_gets_new_patchers(
    tmp_path: Path, config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _vcrpy.use_cassette(config, str(_write(tmp_path / "one.yaml", "one"))):
        assert _answer() == "one"
    first = _vcrpy._PATCHES.for_cassette(object())
    assert _vcrpy._PATCHES.for_cassette(object()) is first
    replaced = httpx.HTTPTransport.handle_request

    def patched_since(self: Any, request: Any) -> Any:
        return replaced(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", patched_since)
    with _vcrpy.use_cassette(config, str(_write(tmp_path / "two.yaml", "two"))):
        assert _answer() == "two"
    assert _vcrpy._PATCHES.for_cassette(object()) is not first
    # Left as it was found when the cassette was entered, not as it was when first built.
    assert httpx.HTTPTransport.handle_request is patched_since


def test_a_cassette_inside_another_gets_vcrpys_own_patches(
    tmp_path: Path, config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    unpatched = httpx.HTTPTransport.handle_request
    with _vcrpy.use_cassette(config, str(_write(tmp_path / "outer.yaml", "outer", 3))):
        with _vcrpy.use_cassette(config, str(_write(tmp_path / "inner.yaml", "inner", 3))):
            assert _answer() == "inner"
        assert _answer() == "outer"
        with config.use_cassette(str(tmp_path / "inner.yaml")):  # vcrpy's own, inside ours
            assert _answer() == "inner"
        assert _answer() == "outer"
    assert httpx.HTTPTransport.handle_request is unpatched
    with _vcrpy.use_cassette(config, str(tmp_path / "inner.yaml")):  # and after them
        assert _answer() == "inner"


def test_a_custom_patch_whose_attribute_appears_later_is_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("late")

    class Replacement:
        pass

    config = vcr.VCR(record_mode="none", custom_patches=((module, "Client", Replacement),))
    with _vcrpy.use_cassette(config, str(tmp_path / "before.yaml")):
        assert not hasattr(module, "Client")  # vcrpy patches only what exists
    module.Client = object
    with _vcrpy.use_cassette(config, str(tmp_path / "after.yaml")):
        assert module.Client is Replacement
    assert module.Client is object


def test_patchers_for_a_new_custom_patch_each_test_are_not_kept_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("fresh")
    module.send = print
    for number in range(40):  # a vcr_config fixture making its replacement afresh each test

        def replacement(*args: object) -> None:
            return None

        config = vcr.VCR(record_mode="none", custom_patches=((module, "send", replacement),))
        with _vcrpy.use_cassette(config, str(tmp_path / f"{number}.yaml")):
            assert module.send is replacement
    assert len(_vcrpy._PATCHES._built) <= _vcrpy._Patches.KEPT


@pytest.mark.parametrize("send", [httpx.post, requests.post], ids=["httpx", "requests"])
def test_the_error_for_an_unrecorded_request_holds_the_real_cassette(
    tmp_path: Path, config: Any, monkeypatch: pytest.MonkeyPatch, send: Callable[[str], Any]
) -> None:
    path = str(tmp_path / "missing.yaml")
    with (
        _vcrpy.use_cassette(config, path) as cassette,
        pytest.raises(CannotOverwriteExistingCassetteException) as raised,
    ):
        send("http://127.0.0.1:9/answer")
    with _vcrpy.use_cassette(config, str(_write(tmp_path / "next.yaml", "next"))):
        assert _answer() == "next"
    assert raised.value.cassette is cassette
    assert isinstance(raised.value.cassette, vcr.cassette.Cassette)
    assert raised.value.cassette.path == path
    assert f"Cassette: {path}" in str(raised.value)


def test_vcrpy_and_httpx_imported_afresh_get_patchers_of_their_own(
    tmp_path: Path, config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytester's in-process runs forget the modules a run imported: the next run imports vcrpy
    # and the HTTP libraries afresh, while a module imported before them keeps its state.
    with _vcrpy.use_cassette(config, str(_write(tmp_path / "before.yaml", "before"))):
        assert _answer() == "before"
    modules = dict(sys.modules)
    try:
        for name in modules:
            if name.partition(".")[0] in ("vcr", "httpx"):
                del sys.modules[name]
        fresh_httpx = importlib.import_module("httpx")
        fresh_vcr = importlib.import_module("vcr")
        assert fresh_httpx is not httpx
        fresh = fresh_vcr.VCR(record_mode="none")
        with _vcrpy.use_cassette(fresh, str(_write(tmp_path / "after.yaml", "after"))):
            assert fresh_httpx.post("http://127.0.0.1:9/answer").text == "after"
    finally:
        sys.modules.clear()
        sys.modules.update(modules)
    with _vcrpy.use_cassette(config, str(tmp_path / "before.yaml")):
        assert _answer() == "before"


OUTER = '''
import os
import subprocess
import sys

import pytest_chatresp.recording  # noqa: F401  (before any run; vcrpy and httpx are not)

pytest_plugins = ["pytester"]

INNER = """
import os

import httpx
import pytest


@pytest.mark.chat_cassette
def test_a():
    url = os.environ["CHATRESP_TEST_BASE_URL"] + "/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    key = os.environ["CHATRESP_TEST_API_KEY"]
    response = httpx.post(url, json=body, headers={"authorization": "Bearer " + key})
    assert response.status_code == 200
"""


def test_recorded_then_replayed_in_process(pytester):
    assert "vcr" not in sys.modules and "httpx" not in sys.modules
    pytester.makeini("[pytest]\\nchatresp_serializer = yaml\\n")
    pytester.makepyfile(test_inner=INNER)
    pytester.runpytest_inprocess("--chatresp-record-mode=once").assert_outcomes(passed=1)
    print("RECORDED", sorted(os.listdir(pytester.path / "cassettes" / "test_inner")))
    pytester.runpytest_inprocess().assert_outcomes(passed=1)
'''


def test_in_process_runs_importing_vcrpy_afresh_replay_through_their_own_patches(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_outer=OUTER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*RECORDED ?'test_a.yaml'?*", "*1 replayed, 0 recorded*"])
    assert openai_server.request_count == 1, "the replaying run reached the server"
