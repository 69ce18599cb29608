"""The bounded store: old and surplus entries go, `chatresp cache` shows and clears it, and
pytest -v shows its size and hit rate."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pytest
from helpers import completion, write_cassette

from pytest_chatresp.cassette.store import CacheStore, clear_store, describe_store
from pytest_chatresp.cli.cache import add_parser

POSIX = pytest.mark.skipif(os.name == "nt", reason="symlinks")
DAY = 86_400.0


def store(directory: Path) -> CacheStore:
    return CacheStore(directory, b"k" * 32, "identity")


def filled(directory: Path, ages_in_days: list[float], size: int = 100) -> list[Path]:
    """Entries written by one session, aged (their last use) as given."""
    writer = store(directory)
    paths = []
    now = time.time()
    for number, age in enumerate(ages_in_days):
        digest = f"{number:064x}"
        writer.put("document", digest, b"x" * size)
        path = writer.path_of("document", digest)
        os.utime(path, (now - age * DAY, now - age * DAY))
        paths.append(path)
    return paths


def test_entries_unused_for_the_age_bound_are_removed(tmp_path: Path) -> None:
    paths = filled(tmp_path, [0, 10, 29, 31, 400])
    assert store(tmp_path).sweep() == 2
    assert [path.exists() for path in paths] == [True, True, True, False, False]


def test_the_least_recently_used_go_beyond_the_count_and_size_bounds(tmp_path: Path) -> None:
    paths = filled(tmp_path, [3, 1, 4, 2, 5])
    assert store(tmp_path).sweep(max_entries=3) == 2
    assert [path.exists() for path in paths] == [True, True, False, True, False]
    size = paths[0].stat().st_size
    assert store(tmp_path).sweep(max_bytes=2 * size) == 1
    assert [path.exists() for path in paths] == [False, True, False, True, False]


def test_a_used_entry_counts_as_new_and_a_session_sweeps_once(tmp_path: Path) -> None:
    old, other = filled(tmp_path, [40, 40])
    reader = store(tmp_path)
    assert reader.get("document", f"{0:064x}", 1000) == b"x" * 100
    assert (reader.hits, reader.misses) == (1, 0)
    assert time.time() - old.stat().st_mtime < DAY  # its use is recorded
    assert other.exists()  # reading sweeps nothing: it adds nothing
    # The first write of a session sweeps: the unused entry goes, the used one stays.
    reader.put("document", "f" * 64, b"new")
    assert old.exists()
    assert not other.exists()
    planted = filled(tmp_path, [50])[0]
    reader.put("document", "e" * 64, b"newer")  # not twice in a session
    assert planted.exists()


def test_hits_of_the_last_run_add_up_over_its_workers(tmp_path: Path) -> None:
    stats = tmp_path / "stats"
    for worker, hits, misses in (("gw2", 9, 9), ("gw0", 3, 1), ("gw1", 5, 0)):
        session = CacheStore(tmp_path / "store", b"k" * 32, "identity", stats)
        session.hits, session.misses = hits, misses
        session.save_stats("old-run" if worker == "gw2" else "run-1", worker)
        time.sleep(0.01)
    assert store(tmp_path).last_stats() is None  # no place for statistics: none shown
    reader = CacheStore(tmp_path / "store", b"k" * 32, "identity", stats)
    assert reader.last_stats() == (8, 1)
    assert reader.header_line().endswith("; last session 8 hit(s), 1 miss(es) (88% hits)")
    forger = CacheStore(tmp_path / "store", b"f" * 32, "identity", stats)
    forger.hits = 1000
    forger.save_stats("run-2", "gw3")  # written under another key: not believed
    assert reader.last_stats() == (8, 1)


@POSIX
def test_sweep_and_clear_remove_only_the_store_files_never_a_link_target(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    old_time = time.time() - 100 * DAY
    os.utime(outside, (old_time, old_time))
    (entry,) = filled(directory, [1])
    link = directory / ("b" * 40 + ".document.json")
    link.symlink_to(outside)
    (directory / "notes.txt").write_text("not ours")
    store(directory).sweep()
    assert outside.read_text() == "keep me"
    assert link.is_symlink()
    assert describe_store(directory).entries == 1
    size = entry.stat().st_size
    removed = clear_store(directory)
    assert (removed.entries, removed.size) == (1, size)
    assert not link.is_symlink()
    assert not entry.exists()
    assert outside.read_text() == "keep me"
    assert sorted(os.listdir(directory)) == ["notes.txt"]


def cache_command(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="chatresp")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cache", *argv])
    status: int = args.handler(args)
    return status


def test_chatresp_cache_shows_and_clears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cache_command() == 0
    assert capsys.readouterr().out == "no cassette cache at .pytest_cache/d/chatresp\n"
    filled(tmp_path / ".pytest_cache/d/chatresp", [0, 2], size=2000)
    assert cache_command() == 0
    today = time.strftime("%Y-%m-%d", time.gmtime())
    two_days_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * DAY))
    assert capsys.readouterr().out.splitlines() == [
        ".pytest_cache/d/chatresp, 2 entries, 4.1 KiB",
        f"last used: {two_days_ago} (oldest) to {today} (newest)",
        "bounds: unused for 30 days, or beyond 10000 entries or 512 MiB (least recently used "
        "first), entries are removed",
    ]
    assert cache_command("--clear") == 0
    assert capsys.readouterr().out == "removed 2 entries, 4.1 KiB from .pytest_cache/d/chatresp\n"
    assert describe_store(tmp_path / ".pytest_cache/d/chatresp").entries == 0
    filled(tmp_path / "elsewhere/d/chatresp", [0])
    assert cache_command("--cache-dir", "elsewhere") == 0
    assert capsys.readouterr().out.startswith("elsewhere/d/chatresp, 1 entry, ")


SUITE = """
def test_one(chat_completion):
    assert chat_completion.model

def test_two(chat_completion):
    assert chat_completion.model
"""


def test_verbose_header_shows_the_store_and_the_last_sessions_hits(
    pytester: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    write_cassette(pytester.path / "cassettes/test_it/test_one.yaml", completion())
    write_cassette(pytester.path / "cassettes/test_it/test_two.yaml", completion(model="m2"))
    pytester.makepyfile(test_it=SUITE)
    first = pytester.runpytest_subprocess("-v")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["chatresp cache: .pytest_cache/d/chatresp, 0 entries, 0 bytes"])
    second = pytester.runpytest_subprocess("-v", "-n", "2")
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(
        [
            "chatresp cache: .pytest_cache/d/chatresp, 4 entries, * KiB; last session 0 hit(s), "
            "2 miss(es) (0% hits)"
        ]
    )
    third = pytester.runpytest_subprocess("-v")
    third.stdout.fnmatch_lines(  # both workers' hits add up
        ["chatresp cache: *, 4 entries, * KiB; last session 2 hit(s), 0 miss(es) (100% hits)"]
    )
    quiet = pytester.runpytest_subprocess()
    quiet.stdout.no_fnmatch_line("chatresp cache:*")
