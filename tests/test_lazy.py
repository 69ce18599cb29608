"""A warm session: the stored verdict's figures, and completions built one by one when read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import completion, write_cassette

from pytest_chatresp.cassette import Cassette, load_cassette
from pytest_chatresp.cassette.cache import CassetteCache, _verdict_key
from pytest_chatresp.cassette.document import read_document
from pytest_chatresp.cassette.figures import Figures
from pytest_chatresp.cassette.loader import Completions
from pytest_chatresp.cassette.store import CacheStore
from pytest_chatresp.cassette.store_key import build_identity
from pytest_chatresp.checks import Rules
from pytest_chatresp.errors import CassetteError, display_path
from pytest_chatresp.report import RunReport

KEY = b"k" * 32


def _bodies(count: int) -> list[dict[str, object]]:
    bodies = []
    for n in range(count):
        body = completion(id=f"chatcmpl-{n}", model=f"gpt-4o-mini-{n % 3}")
        body["choices"][0]["message"]["content"] = f"answer {n}"  # type: ignore[index]
        if n % 2:
            body["service_tier"] = "flex"
            body["choices"][0]["message"]["annotations_v9"] = [n]  # type: ignore[index]
        bodies.append(body)
    return bodies


def _warm(path: Path, store: Path) -> Cassette:
    CassetteCache(store, key=KEY).load(path)  # the first session keeps the verdict
    return CassetteCache(store, key=KEY).load(path)


def _verdict_entry(store: Path, path: Path) -> tuple[CacheStore, str]:
    rules = Rules()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return CacheStore(store, KEY, build_identity()), _verdict_key(digest, display_path(path), rules)


def test_lazy_completions_equal_the_eager_ones(tmp_path: Path, whole_builds: list[str]) -> None:
    path = write_cassette(tmp_path / "many.yaml", *_bodies(5))
    eager = load_cassette(path).completions
    lazy = _warm(path, tmp_path / "store").completions
    whole_builds.clear()
    assert isinstance(lazy, Completions)
    assert len(lazy) == 5
    assert repr(lazy) == f"<Completions: 5 chat completion(s) of {display_path(path)}>"
    assert lazy[1].model_dump() == eager[1].model_dump()
    assert lazy[-1] == eager[-1]
    assert lazy[1:3] == eager[1:3] == list(eager)[1:3]
    assert whole_builds == []  # three items read, none of the others built
    assert lazy == eager
    assert list(lazy) == list(eager)
    assert lazy == list(eager)
    assert lazy != eager[:4]
    assert lazy != "not a sequence"
    assert [c.source for c in lazy] == [c.source for c in eager]
    with pytest.raises(IndexError, match=r"completion index 5 out of range: .*holds 5"):
        lazy[5]
    assert whole_builds == []
    assert lazy != tuple(eager)  # as a list is not equal to a tuple
    assert lazy + [eager[0]] == [*eager, eager[0]]  # noqa: RUF005 - the operator is the subject
    assert [eager[0]] + lazy == [eager[0], *eager]  # noqa: RUF005
    with pytest.raises(TypeError, match="completion indices must be integers or slices, not str"):
        lazy["x"]  # type: ignore[call-overload]


def test_a_held_completion_is_the_one_the_exchanges_hold(tmp_path: Path) -> None:
    path = write_cassette(tmp_path / "many.yaml", *_bodies(3))
    cassette = _warm(path, tmp_path / "store")
    second = cassette.completions[1]
    assert cassette.exchanges[1].completion is second
    assert cassette.completions[1] is second


def test_violations_are_raised_from_the_verdict_before_anything_is_built(
    tmp_path: Path, whole_builds: list[str]
) -> None:
    body = completion()
    body["usage"] = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 5}
    path = write_cassette(tmp_path / "bad.yaml", completion(), body)
    with pytest.raises(CassetteError) as cold:
        load_cassette(path).completions  # noqa: B018
    cassette = _warm(path, tmp_path / "store")
    whole_builds.clear()
    with pytest.raises(CassetteError) as warm:
        cassette.completions  # noqa: B018
    assert str(warm.value) == str(cold.value)
    assert "usage-sum" in str(warm.value)
    assert whole_builds == []


def test_the_stored_figures_and_metadata_equal_a_cold_reading(
    tmp_path: Path, whole_builds: list[str]
) -> None:
    path = write_cassette(tmp_path / "many.yaml", *_bodies(4))
    document = read_document(path)
    document["metadata"] = {"chatresp": {"recorded_at": "2026-11-02T10:00:00+00:00"}}
    path.write_text(json.dumps(document), encoding="utf-8")
    cold = load_cassette(path)
    warm = _warm(path, tmp_path / "store")
    whole_builds.clear()
    assert warm.figures() == cold.figures()
    assert warm.figures().drift == {("choices[].message.annotations_v9", display_path(path)): 2}
    assert warm.metadata == cold.metadata
    assert len(warm) == 4
    assert whole_builds == []


def _stored_payload(store: Path, path: Path) -> dict[str, object]:
    backing, key = _verdict_entry(store, path)
    payload = backing.get("verdict", key, 1 << 20)
    assert payload is not None
    data: dict[str, object] = json.loads(payload)
    return data


@pytest.mark.parametrize(
    "change",
    [
        {"figures": {"completions": 1}},  # not the figures' form
        {"completions": [7]},  # an interaction the file does not hold
        {"metadata": 3},
    ],
)
def test_a_stored_verdict_with_altered_figures_is_not_taken(
    tmp_path: Path, whole_builds: list[str], change: dict[str, object]
) -> None:
    path = write_cassette(tmp_path / "many.yaml", *_bodies(2))
    store = tmp_path / "store"
    CassetteCache(store, key=KEY).load(path)
    data = _stored_payload(store, path) | change
    backing, key = _verdict_entry(store, path)
    backing.put("verdict", key, json.dumps(data).encode())  # tagged, yet not a verdict's form
    whole_builds.clear()
    cassette = CassetteCache(store, key=KEY).load(path)
    assert whole_builds == ["many.yaml"]  # judged again
    assert cassette.figures() == load_cassette(path).figures()


def test_figures_tagged_without_the_key_are_not_taken(
    tmp_path: Path, whole_builds: list[str]
) -> None:
    path = write_cassette(tmp_path / "many.yaml", *_bodies(2))
    store = tmp_path / "store"
    CassetteCache(store, key=KEY).load(path)
    data = _stored_payload(store, path)
    figures = Figures.from_plain(data["figures"])
    assert figures is not None
    figures.prompt_tokens += 1_000_000
    data["figures"] = figures.to_plain()
    _, key = _verdict_entry(store, path)
    CacheStore(store, b"\0" * 32, build_identity()).put("verdict", key, json.dumps(data).encode())
    whole_builds.clear()
    cassette = CassetteCache(store, key=KEY).load(path)
    assert whole_builds == ["many.yaml"]
    assert cassette.figures() == load_cassette(path).figures()


def test_figures_round_trip_and_refuse_what_they_did_not_write() -> None:
    cassette = Figures(completions=2, invalid=1, prompt_tokens=3)
    cassette.models["m"] += 2
    cassette.drift[("x", None)] += 1
    assert Figures.from_plain(json.loads(json.dumps(cassette.to_plain()))) == cassette
    plain = cassette.to_plain()
    for bad in (
        plain | {"invalid": -1},
        plain | {"models": {"m": "2"}},
        plain | {"drift": [["x", 3, 1]]},
        plain | {"extra": 1},
        [plain],
    ):
        assert Figures.from_plain(bad) is None


_SUITE = """
def test_many(chat_completions):
    assert len(chat_completions) == 4
    assert chat_completions[0].choices[0].message.content == "answer 0"


def test_bad(chat_cassette):
    assert len(chat_cassette) == 2
"""


def test_the_report_of_a_warm_session_is_the_report_of_a_cold_one(
    pytester: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    write_cassette(pytester.path / "cassettes/test_it/test_many.yaml", *_bodies(4))
    body = completion()
    body["usage"] = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 5}
    write_cassette(pytester.path / "cassettes/test_it/test_bad.yaml", completion(), body)
    pytester.makepyfile(test_it=_SUITE)
    reports = []
    for run in ("cold", "warm"):
        result = pytester.runpytest(f"--chatresp-report-json={run}.json")
        result.assert_outcomes(passed=1, errors=1)
        reports.append((pytester.path / f"{run}.json").read_bytes())
    assert list((pytester.path / ".pytest_cache/d/chatresp").glob("*.verdict.json"))
    assert reports[0] == reports[1]
    report = json.loads(reports[1])
    assert report["total"]["read"] == 4
    assert report["total"]["invalid"] == 0
    assert report["drift"] == {
        "choices[].message.annotations_v9": {
            "count": 2,
            "example": "cassettes/test_it/test_many.yaml",
        }
    }


def test_a_report_adds_figures_as_it_adds_exchanges(tmp_path: Path) -> None:
    path = write_cassette(tmp_path / "many.yaml", *_bodies(3))
    cassette = load_cassette(path)
    by_exchanges, by_figures = RunReport(), RunReport()
    by_exchanges.add_exchanges("t", "read", cassette.exchanges, str(path))
    by_figures.add_figures("t", "read", cassette.figures(), str(path))
    assert by_figures.to_dict() == by_exchanges.to_dict()


def test_a_verdict_is_taken_after_replay_asked_for_the_document(
    tmp_path: Path, whole_builds: list[str]
) -> None:
    path = write_cassette(tmp_path / "many.yaml", *_bodies(3))
    store = tmp_path / "store"
    CassetteCache(store, key=KEY).load(path)
    warm = CassetteCache(store, key=KEY)
    warm.document(path)  # what a marked test's replay reads first
    whole_builds.clear()
    cassette = warm.load(path)
    assert whole_builds == []  # the stored verdict, not a second judgement
    assert cassette.completions == load_cassette(path).completions
    assert warm.backing is not None
    assert (warm.backing.hits, warm.backing.misses) == (1, 0)  # one cassette, one hit


# --- each test its own completions ---------------------------------------------------------------

SHARED_TESTS = """
import pytest

@pytest.mark.chat_cassette("shared.yaml")
def test_a(chat_completion):
    chat_completion.usage.total_tokens = 999
    chat_completion.choices.append(chat_completion.choices[0])

@pytest.mark.chat_cassette("shared.yaml")
def test_b(chat_completion):
    assert chat_completion.usage.total_tokens == 15
    assert len(chat_completion.choices) == 1

def test_c(chat_completions, chat_cassette):
    assert chat_cassette.completions[0] is chat_completions[0]  # one cassette within a test
    assert chat_completions[0].usage.total_tokens == 15
"""


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_a_test_that_changes_its_completion_changes_nothing_another_sees(
    pytester: pytest.Pytester, warm: bool
) -> None:
    write_cassette(pytester.path / "cassettes/shared.yaml", completion())
    link = pytester.path / "cassettes/test_shared/test_c.yaml"
    link.parent.mkdir(parents=True)
    link.symlink_to(pytester.path / "cassettes/shared.yaml")
    pytester.makepyfile(test_shared=SHARED_TESTS)
    if warm:
        pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3)
