"""The parsed-cassette cache: what it keeps, and that nothing planted in it runs or lies."""

from __future__ import annotations

import datetime
import hashlib
import json
import marshal
import os
import stat
import tempfile
from pathlib import Path

import pytest
from helpers import completion, write_cassette

from pytest_chatresp.cassette import Cassette, load_cassette
from pytest_chatresp.cassette.cache import CassetteCache
from pytest_chatresp.cassette.store import CacheStore
from pytest_chatresp.cassette.store_key import build_identity, user_key
from pytest_chatresp.checks import Rules
from pytest_chatresp.cli import main
from pytest_chatresp.errors import CassetteError, display_path
from pytest_chatresp.files import is_partial_write, read_regular, write_atomically

POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes, FIFOs and symlinks")


@pytest.fixture
def user_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's cache directory (where the store's key lives), outside any project tree."""
    directory = tmp_path_factory.mktemp("user-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(directory))
    return directory


def _answer(text: str) -> dict[str, object]:
    body = completion(id=f"chatcmpl-{text}")
    body["choices"][0]["message"]["content"] = text  # type: ignore[index]
    return body


# --- through pytest -------------------------------------------------------------------------------

_SUITE = """
import httpx
import pytest

@pytest.mark.chat_cassette
def test_a(chat_completion):
    reply = httpx.post(
        "https://api.openai.com/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": []},
    )
    content = reply.json()["choices"][0]["message"]["content"]
    print("SERVED", content, chat_completion.choices[0].message.content)
    assert content == chat_completion.choices[0].message.content == "recorded-a"

def test_b(chat_completion):
    print("SERVED", chat_completion.choices[0].message.content)
    assert chat_completion.choices[0].message.content == "recorded-b"
"""

_HOSTILE_KINDS = (
    "pickle",
    "marshal",
    "plain-json",
    "forged-tag",
    "swapped",
    "truncated",
    "symlink",
    "directory",
    "fifo",
    "key",
)


def _pickle_payload(marker: Path) -> bytes:
    """Protocol-0 pickle of ``open(marker, 'w')``: unpickling it creates ``marker``."""
    return f"cbuiltins\nopen\n(S'{marker}'\nS'w'\ntR.".encode()


def _other_document(where: Path) -> dict[str, object]:
    """A cassette document with another answer than the test's cassette holds."""
    planted: dict[str, object] = json.loads(
        write_cassette(where / "planted.yaml", _answer("planted")).read_text()
    )
    return planted


def _plant(kind: str, entries: list[Path], key_file: Path, marker: Path, outside: Path) -> None:
    genuine = {entry: entry.read_bytes() for entry in entries}
    for position, entry in enumerate(entries):
        if kind != "key":
            entry.unlink()
        if kind == "pickle":
            entry.write_bytes(_pickle_payload(marker))
        elif kind == "marshal":
            entry.write_bytes(marshal.dumps(_other_document(marker.parent)))
        elif kind == "plain-json":
            entry.write_text(
                json.dumps({"patches": [], "document": _other_document(marker.parent)})
            )
        elif kind == "forged-tag":  # the right format and name, tagged without the user's key
            forger = CacheStore(entry.parent, b"\0" * 32, build_identity())
            payload = json.dumps(
                {"patches": [], "document": _other_document(marker.parent)}
            ).encode()
            forger.put("document", "0" * 64, payload)
            forged = forger.path_of("document", "0" * 64)
            forged.replace(entry)
        elif kind == "swapped":  # genuine entries, each under the other's name
            entry.write_bytes(genuine[entries[(position + 1) % len(entries)]])
        elif kind == "truncated":
            entry.write_bytes(genuine[entry][: len(genuine[entry]) // 2])
        elif kind == "symlink":
            entry.symlink_to(outside)
        elif kind == "directory":
            entry.mkdir()
            (entry / "x").write_bytes(_pickle_payload(marker))
        elif kind == "fifo":
            os.mkfifo(entry)
    if kind == "key":
        key_file.chmod(0o600)
        key_file.write_bytes(_pickle_payload(marker))


@POSIX
@pytest.mark.parametrize("kind", _HOSTILE_KINDS)
def test_a_planted_store_gives_the_results_of_a_cold_run(
    pytester: pytest.Pytester, user_cache: Path, tmp_path: Path, kind: str
) -> None:
    write_cassette(pytester.path / "cassettes/test_it/test_a.yaml", _answer("recorded-a"))
    write_cassette(pytester.path / "cassettes/test_it/test_b.yaml", _answer("recorded-b"))
    pytester.makepyfile(test_it=_SUITE)
    pytester.runpytest("-s").assert_outcomes(passed=2)
    store = pytester.path / ".pytest_cache/d/chatresp"
    entries = sorted(p for p in store.iterdir() if p.is_file())
    assert len(entries) == 4, entries  # each cassette's document and verdict
    key_file = user_cache / "pytest-chatresp/store.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    marker = tmp_path / "ran"
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"patches": [], "document": _other_document(tmp_path)}))
    before = outside.read_bytes()

    _plant(kind, entries, key_file, marker, outside)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*SERVED recorded-a recorded-a*", "*SERVED recorded-b*"])
    assert not marker.exists()
    assert outside.read_bytes() == before  # a symlink's target is neither read nor written
    # And the next session is served as well (the store rewritten where it could be).
    again = pytester.runpytest("-s")
    again.assert_outcomes(passed=2)
    assert not marker.exists()
    assert outside.read_bytes() == before


_TEST_B = """
def test_b(chat_completion):
    assert chat_completion.choices[0].message.content == "recorded-b"
"""


def test_no_store_when_the_key_would_live_in_the_project_tree(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytester's HOME is the project itself: ~/.cache/pytest-chatresp/store.key would be a file
    # a pull request could add, so the store is not used at all.
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    write_cassette(pytester.path / "cassettes/test_it/test_b.yaml", _answer("recorded-b"))
    pytester.makepyfile(test_it=_TEST_B)
    pytester.runpytest().assert_outcomes(passed=1)
    assert not (pytester.path / ".cache/pytest-chatresp/store.key").exists()
    assert list((pytester.path / ".pytest_cache/d/chatresp").iterdir()) == []


def test_a_new_plugin_version_does_not_use_what_an_older_one_kept(
    pytester: pytest.Pytester,
    user_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    counting_parses: list[str],
) -> None:
    from pytest_chatresp.cassette import store_key as cache

    write_cassette(pytester.path / "cassettes/test_it/test_b.yaml", _answer("recorded-b"))
    pytester.makepyfile(test_it=_TEST_B)
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest().assert_outcomes(passed=1)
    assert counting_parses == ["test_b.yaml"]  # the second session used the store

    real = cache._version
    monkeypatch.setattr(
        cache, "_version", lambda name: "99.0" if name == "pytest-chatresp" else real(name)
    )
    pytester.runpytest().assert_outcomes(passed=1)
    assert counting_parses == ["test_b.yaml", "test_b.yaml"]  # parsed again under the new version
    assert len(list((pytester.path / ".pytest_cache/d/chatresp").iterdir())) == 4


def test_a_change_of_rules_gives_a_new_verdict_from_a_warm_store(
    pytester: pytest.Pytester, user_cache: Path, counting_parses: list[str]
) -> None:
    body = _answer("recorded-b")
    body["choices"][0]["finish_reason"] = "eos"  # type: ignore[index]
    write_cassette(pytester.path / "cassettes/test_it/test_b.yaml", body)
    pytester.makepyfile(test_it=_TEST_B)
    pytester.makeini("[pytest]\nchatresp_allow = choices[].finish_reason=eos\n")
    pytester.runpytest().assert_outcomes(passed=1)

    pytester.makeini("[pytest]\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_b.yaml*finish_reason*eos*"])
    assert counting_parses == ["test_b.yaml"]  # the stored document, judged under the new rules

    pytester.makeini(
        "[pytest]\nchatresp_strict = true\nchatresp_allow = choices[].finish_reason=eos\n"
    )
    pytester.runpytest().assert_outcomes(passed=1)


# --- the store ------------------------------------------------------------------------------------


def test_the_stored_document_is_the_parsed_one_bytes_and_tuples_included(tmp_path: Path) -> None:
    import pytest_chatresp.cassette.document as reader

    path = write_cassette(tmp_path / "c.yaml", _answer("hello"))
    key = b"k" * 32
    document = CassetteCache(tmp_path / "store", key=key).document(path)
    document["interactions"][0]["response"]["body"]["string"] = b"\x1f\x8b not text"
    document["extra"] = {"pair": (1, [b"\x00", (2, "\udc80")]), "ok": [1.5, None, True]}
    store = CacheStore(tmp_path / "store", key, build_identity())
    from pytest_chatresp.cassette.store import decode_document, encode_document

    store.put("document", "d" * 64, encode_document(document))
    payload = store.get("document", "d" * 64, 1 << 20)
    assert payload is not None
    assert decode_document(payload) == document
    assert type(decode_document(payload)["extra"]["pair"]) is tuple
    assert reader.read_document(path) == CassetteCache(tmp_path / "store", key=key).document(path)


def test_an_entry_is_refused_under_another_key_or_identity(tmp_path: Path) -> None:
    written = CacheStore(tmp_path, b"a" * 32, "one")
    written.put("document", "d" * 64, b"{}")
    assert written.get("document", "d" * 64, 100) == b"{}"
    assert CacheStore(tmp_path, b"b" * 32, "one").get("document", "d" * 64, 100) is None
    assert CacheStore(tmp_path, b"a" * 32, "two").get("document", "d" * 64, 100) is None
    assert written.get("document", "e" * 64, 100) is None
    assert written.get("document", "d" * 64, 1) is None  # larger than the bound: not read
    assert (written.hits, written.misses) == (1, 2)


def test_a_document_json_cannot_hold_is_parsed_each_session(tmp_path: Path) -> None:
    import yaml

    path = write_cassette(tmp_path / "dated.yaml", _answer("dated"))
    document = json.loads(path.read_text())
    document["recorded_at"] = datetime.date(2026, 1, 2)
    path.write_text(yaml.safe_dump(document))
    cache = CassetteCache(tmp_path / "store", key=b"k" * 32)
    assert cache.document(path)["recorded_at"] == datetime.date(2026, 1, 2)
    assert cache.load(path).completions[0].choices[0].message.content == "dated"
    assert list((tmp_path / "store").glob("*.document.json")) == []


@POSIX
def test_the_key_is_private_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    key = user_key(directory=directory)
    assert key is not None
    assert len(key) == 32
    assert user_key(directory=directory) == key
    assert stat.S_IMODE((directory / "store.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    (directory / "store.key").chmod(0o644)
    assert user_key(directory=directory) is None
    assert user_key(project=tmp_path, directory=tmp_path / "inside") is None
    assert not (tmp_path / "inside").exists()


# --- safe files -----------------------------------------------------------------------------------


@pytest.fixture
def predictable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """mkstemp's random names made predictable: first 'planted', then fresh ones."""
    names = iter(["planted", *(f"fresh{i}" for i in range(100))])
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)


@POSIX
def test_a_symlink_at_the_temporary_name_is_not_followed(
    tmp_path: Path, predictable_names: None
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    cassette = tmp_path / "cassettes/c.yaml"
    cassette.parent.mkdir()
    planted = cassette.parent / f".c.yaml.chatresp-{os.getpid()}-planted.tmp"
    planted.symlink_to(target)
    write_atomically(cassette, "interactions: []\n")
    assert cassette.read_text() == "interactions: []\n"
    assert target.read_text() == "keep me"
    assert planted.is_symlink()  # a live process's name: left to it


@POSIX
def test_a_symlink_at_the_cassette_path_is_replaced_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    cassette = tmp_path / "c.yaml"
    cassette.symlink_to(target)
    write_atomically(cassette, "interactions: []\n")
    assert not cassette.is_symlink()
    assert cassette.read_text() == "interactions: []\n"
    assert target.read_text() == "keep me"


def _dead_pid() -> int:
    for pid in range(4_000_000, 3_000_000, -7919):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            continue
    pytest.skip("no free process id found")


@POSIX
def test_a_killed_writes_leftover_is_no_cassette_and_the_next_write_removes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "cassettes"
    cassette = write_cassette(directory / "c.yaml", _answer("kept"))
    leftover = directory / f".c.yaml.chatresp-{_dead_pid()}-abc123.tmp"
    leftover.write_text(cassette.read_text()[:40])
    other = directory / f".d.yaml.chatresp-{_dead_pid()}-abc123.tmp"
    other.write_text("half")
    assert is_partial_write(leftover.name)
    assert not is_partial_write("c.yaml")

    assert main(["check", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "chatresp-" not in out
    assert ".tmp" not in out

    write_atomically(cassette, cassette.read_text())
    assert not leftover.exists()
    assert other.exists()  # another path's leftover waits for a write to that path
    assert sorted(p.name for p in directory.iterdir()) == [other.name, "c.yaml"]


def test_a_write_into_an_unwritable_place_is_a_cassette_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CassetteError, match="cannot write the cassette"):
        write_atomically(tmp_path / "file" / "c.yaml", "x")


@POSIX
def test_read_regular_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    regular = tmp_path / "regular"
    regular.write_bytes(b"12345")
    assert read_regular(regular, 5) == b"12345"
    assert read_regular(regular, 4) is None
    (tmp_path / "link").symlink_to(regular)
    assert read_regular(tmp_path / "link", 100) is None
    os.mkfifo(tmp_path / "fifo")
    assert read_regular(tmp_path / "fifo", 100) is None  # and does not wait for a writer
    assert read_regular(tmp_path, 100) is None
    if os.path.exists("/dev/zero"):
        assert read_regular(Path("/dev/zero"), 100) is None
    assert read_regular(tmp_path / "absent", 100) is None


def test_the_package_holds_no_code_executing_deserializer() -> None:
    package = Path(__file__).resolve().parent.parent / "pytest_chatresp"
    sources = {str(p.relative_to(package)): p.read_text() for p in package.rglob("*.py")}
    for forbidden in ("import pickle", "import marshal", "import shelve", "eval("):
        assert [name for name, text in sources.items() if forbidden in text] == []


@POSIX
def test_the_store_removes_what_killed_sessions_left_once_a_session(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    store = tmp_path / "store"
    store.mkdir()
    dead = _dead_pid()
    left = store / f".abc.document.json.chatresp-{dead}-x1.tmp"
    left.write_text("half an entry")
    linked = store / f".def.document.json.chatresp-{dead}-x2.tmp"
    linked.symlink_to(target)
    live = store / f".ghi.document.json.chatresp-{os.getpid()}-x3.tmp"
    live.write_text("being written")
    legacy = store / f"{'0' * 64}-{'1' * 16}.pickle.v2"  # what an older version kept
    legacy.write_bytes(_pickle_payload(tmp_path / "ran"))
    cassette = write_cassette(tmp_path / "c.yaml", _answer("hello"))
    CassetteCache(store, key=b"k" * 32).load(cassette)
    assert sorted(p.name for p in store.iterdir() if p.name.startswith(".")) == [live.name]
    assert target.read_text() == "keep me"
    assert not legacy.exists()
    assert not (tmp_path / "ran").exists()
    assert len(list(store.glob("*.document.json"))) == 1


@POSIX
@pytest.mark.parametrize("kind", ["file", "symlink", "parent symlink"])
def test_a_planted_store_directory_changes_nothing(
    pytester: pytest.Pytester, user_cache: Path, tmp_path: Path, kind: str
) -> None:
    write_cassette(pytester.path / "cassettes/test_it/test_b.yaml", _answer("recorded-b"))
    pytester.makepyfile(test_it=_TEST_B)
    store = pytester.path / ".pytest_cache/d/chatresp"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if kind == "parent symlink":  # .pytest_cache/d itself a link out of the project
        store.parent.parent.mkdir()
        store.parent.symlink_to(elsewhere)
        (elsewhere / "chatresp").mkdir()
        victims = [elsewhere / "chatresp" / name for name in ("victim.pickle.v2", "x.marshal.v1")]
        for victim in victims:
            victim.write_text("not the plugin's")
    else:
        store.parent.mkdir(parents=True)
        victims = []
    if kind == "file":
        store.write_bytes(_pickle_payload(tmp_path / "ran"))
    elif kind == "symlink":
        store.symlink_to(elsewhere)
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest().assert_outcomes(passed=1)
    assert not (tmp_path / "ran").exists()
    for victim in victims:  # nothing outside the project removed…
        assert victim.read_text() == "not the plugin's"
    written = sorted(path.name for path in elsewhere.rglob("*") if path.is_file())
    assert written == sorted(victim.name for victim in victims)  # …nor written


def test_the_identity_changes_with_what_shapes_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from pytest_chatresp.cassette import store_key as cache

    fake = types.ModuleType("brotli")
    fake.__version__ = "9.9"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "brotli", fake)
    with_brotli = build_identity()
    monkeypatch.setitem(sys.modules, "brotli", None)  # not installed
    without = build_identity()
    assert "brotli 9.9" in with_brotli
    assert "brotli absent" in without
    for part in ("store 3", "pytest-chatresp ", "pyyaml ", "pydantic ", "pydantic-core "):
        assert part in without
    monkeypatch.setattr(cache, "_version", lambda name: "0.0-other")
    assert build_identity() != without


@POSIX
def test_a_fifo_cassette_is_not_read_by_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_chatresp.cassette.document as reader

    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    handed: list[object] = []

    def refusing(path: object, data: bytes | None = None) -> object:
        handed.append(data)
        raise CassetteError.single(str(path), "not a regular file")

    monkeypatch.setattr(reader, "read_document", refusing)
    with pytest.raises(CassetteError, match="not a regular file"):
        CassetteCache(tmp_path / "store", key=b"k" * 32).load(fifo)
    assert handed == [None]  # the cache did not open the FIFO itself: the reader decides


# --- verdicts -------------------------------------------------------------------------------------


def _miscounted(where: Path) -> Path:
    """A cassette whose usage does not add up: one violation of the ``usage-sum`` check."""
    body = _answer("miscounted")
    body["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 99}
    return write_cassette(where / "miscounted.yaml", body)


def _verdict_path(store: Path, key: bytes, cassette: Path, rules: Rules) -> Path:
    from pytest_chatresp.cassette.cache import _verdict_key

    digest = hashlib.sha256(cassette.read_bytes()).hexdigest()
    name = _verdict_key(digest, display_path(cassette), rules)
    return CacheStore(store, key, build_identity()).path_of("verdict", name)


def _outcome(cassette: Cassette) -> tuple[int, list[str], list[dict[str, object]] | str]:
    """What a test sees of a cassette: its size, its violations, its completions or error."""
    violations = [str(v) for v in cassette.violations]
    try:
        completions: list[dict[str, object]] | str = [c.model_dump() for c in cassette.completions]
    except CassetteError as exc:
        completions = str(exc)
    return len(cassette), violations, completions


def test_a_warm_session_takes_the_verdict_and_builds_only_what_is_asked_for(
    tmp_path: Path, whole_builds: list[str]
) -> None:
    good = write_cassette(tmp_path / "good.yaml", _answer("good"))
    bad = _miscounted(tmp_path)
    cold = {path: _outcome(load_cassette(path)) for path in (good, bad)}
    store, key = tmp_path / "store", b"k" * 32
    for path in (good, bad):
        CassetteCache(store, key=key).load(path)
    assert len(list(store.glob("*.verdict.json"))) == 2
    whole_builds.clear()

    warm = CassetteCache(store, key=key)
    cassettes = {path: warm.load(path) for path in (good, bad)}
    assert whole_builds == []  # the verdicts alone
    assert [len(c) for c in cassettes.values()] == [1, 1]
    assert [str(v) for v in cassettes[bad].violations] == cold[bad][1]
    assert "usage-sum" in cold[bad][1][0]
    with pytest.raises(CassetteError, match="usage-sum"):
        cassettes[bad].completions  # noqa: B018 - raised from the verdict
    assert whole_builds == []
    assert {path: _outcome(c) for path, c in cassettes.items()} == cold
    assert whole_builds == []  # the completions asked for, built one by one from the same bytes
    first = cassettes[good].completions[0]
    assert cassettes[good].exchanges[0].completion is first  # the one a test holds, kept
    assert whole_builds == ["good.yaml"]
    assert cassettes[good].metadata == load_cassette(good).metadata
    built = cassettes[bad].exchanges  # the checks' findings taken from the verdict
    assert [str(v) for v in built[0].violations] == cold[bad][1]
    assert [str(v) for v in cassettes[bad].violations] == cold[bad][1]


def test_a_forged_verdict_is_not_taken(tmp_path: Path, whole_builds: list[str]) -> None:
    bad = _miscounted(tmp_path)
    cold = _outcome(load_cassette(bad))
    store, key = tmp_path / "store", b"k" * 32
    CassetteCache(store, key=key).load(bad)
    genuine = _verdict_path(store, key, bad, Rules())
    assert genuine.exists()
    # The right name and form, saying the file is clean, tagged without the user's key.
    from pytest_chatresp.cassette.cache import _verdict_key

    forger = CacheStore(store, b"\0" * 32, build_identity())
    claim = {"shown": display_path(bad), "count": 1, "violations": []}
    digest = hashlib.sha256(bad.read_bytes()).hexdigest()
    forger.put(
        "verdict", _verdict_key(digest, display_path(bad), Rules()), json.dumps(claim).encode()
    )
    assert _verdict_path(store, b"\0" * 32, bad, Rules()) == genuine  # the name is no secret
    whole_builds.clear()
    assert _outcome(CassetteCache(store, key=key).load(bad)) == cold
    assert whole_builds == ["miscounted.yaml"]  # judged again, and the genuine verdict kept again
    assert _outcome(CassetteCache(store, key=key).load(bad)) == cold


def test_a_verdict_serves_only_the_rules_that_made_it(tmp_path: Path) -> None:
    bad = _miscounted(tmp_path)
    lenient = Rules(skip_checks=frozenset({"usage-sum"}))
    store, key = tmp_path / "store", b"k" * 32
    assert CassetteCache(store, key=key).load(bad, rules=lenient).violations == []
    assert _verdict_path(store, key, bad, lenient).exists()
    assert not _verdict_path(store, key, bad, Rules()).exists()

    warm = CassetteCache(store, key=key)
    assert [v.check for v in warm.load(bad).violations] == ["usage-sum"]
    assert warm.load(bad, rules=lenient).violations == []
    assert _verdict_path(store, key, bad, Rules()).exists()
    again = CassetteCache(store, key=key)
    assert [v.check for v in again.load(bad).violations] == ["usage-sum"]
    assert again.load(bad, rules=lenient).violations == []
    strict = CassetteCache(store, key=key).load(bad, rules=Rules(strict=True))
    assert [v.check for v in strict.violations] == ["usage-sum"]


def test_swapped_verdicts_are_not_taken(tmp_path: Path) -> None:
    good = write_cassette(tmp_path / "good.yaml", _answer("good"))
    bad = _miscounted(tmp_path)
    store, key = tmp_path / "store", b"k" * 32
    cold = {path: _outcome(load_cassette(path)) for path in (good, bad)}
    for path in (good, bad):
        CassetteCache(store, key=key).load(path)
    first, second = (_verdict_path(store, key, p, Rules()) for p in (good, bad))
    one, other = first.read_bytes(), second.read_bytes()
    first.write_bytes(other)
    second.write_bytes(one)
    warm = CassetteCache(store, key=key)
    assert {path: _outcome(warm.load(path)) for path in (good, bad)} == cold
    # A verdict kept while the file was shown under another path is not this one's either.
    moved = tmp_path / "moved"
    moved.mkdir()
    copy = moved / bad.name
    copy.write_bytes(bad.read_bytes())
    seen = CassetteCache(store, key=key).load(copy)
    assert [v.path for v in seen.violations] == [display_path(copy)]


@pytest.mark.parametrize("cache", ["cache on", "cache off"])
@POSIX
def test_a_huge_cassette_is_refused_with_or_without_the_cache(
    pytester: pytest.Pytester, user_cache: Path, cache: str
) -> None:
    """The store reads a cassette as the reader does: bounded, the same refusal by name."""
    cassette = pytester.path / "cassettes" / "test_g" / "test_g.yaml"
    cassette.parent.mkdir(parents=True)
    with cassette.open("wb") as handle:  # sparse: 300 MiB of zeros that take no disk
        handle.truncate(300 * 1024 * 1024)
    pytester.makepyfile(test_g="def test_g(chat_completion):\n    pass\n")
    options = ["-p", "no:cacheprovider"] if cache == "cache off" else []
    result = pytester.runpytest_subprocess(*options, timeout=120)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*cassettes/test_g/test_g.yaml: holds more than the 256 MiB a cassette may hold"
            " (314,572,800 bytes read); not read: split it into several cassettes"
        ]
    )


# --- documents let go once no test left to run reads them ---------------------------------------

_KEPT_CONFTEST = """
from pathlib import Path

from pytest_chatresp.session import session_of


def pytest_sessionfinish(session):
    entries = session_of(session.config).cache._entries.items()
    print(f"KEPT {sorted(Path(name).name for name, entry in entries if entry.parsed)}")
"""

_READING_TEST = """
def test_{name}(chat_completion):
    assert chat_completion.choices[0].message.content
"""


def test_a_document_is_let_go_after_its_last_reader_and_kept_between_readers(
    pytester: pytest.Pytester, counting_parses: list[str]
) -> None:
    pytester.makeconftest(_KEPT_CONFTEST)
    for folder in ("unit", "integration"):  # the same default cassette: cassettes/test_x/
        (pytester.path / folder).mkdir()
        (pytester.path / folder / "test_x.py").write_text(
            _READING_TEST.format(name="shared") + _READING_TEST.format(name=f"only_{folder}")
        )
    for name in ("test_shared", "test_only_unit", "test_only_integration"):
        write_cassette(pytester.path / "cassettes" / "test_x" / f"{name}.yaml", completion())
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-s", "-W", "ignore", "--import-mode=importlib"
    )
    result.assert_outcomes(passed=4)
    assert sorted(counting_parses) == [  # the shared one parsed once: kept between its readers
        "test_only_integration.yaml",
        "test_only_unit.yaml",
        "test_shared.yaml",
    ]
    assert "KEPT []" in result.stdout.str()  # and each let go after its last reader


def test_a_document_read_again_after_it_was_let_go_is_parsed_again(tmp_path: Path) -> None:
    path = write_cassette(tmp_path / "one.yaml", completion())
    cache = CassetteCache()
    first = cache.load(path)
    cache.release(path)
    again = cache.load(path)
    assert again.completions == first.completions
    assert again.completions[0] is not first.completions[0]
