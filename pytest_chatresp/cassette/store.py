"""The cassette store: tagged entries of plain data kept between sessions in pytest's cache dir.

What is kept is plain data, never code: JSON, with the few values JSON has no type for (bytes,
tuples) listed beside it. The store lives in the project tree, where a stranger's pull request
can put any file, so an entry is used only when it carries a valid HMAC-SHA256 tag, keyed by the
per-user secret of ``cassette/store_key.py`` over the entry's name (its kind, the build identity
and its key) and its content. A file that is not a regular file, is too large, is cut short or
carries a wrong tag is ignored, as if absent.

The store is bounded: an entry's modification time is the last time a session used it (set by
the store on use, not left to the file system's access time), and the first write of a session
removes entries unused for :data:`MAX_AGE_DAYS`, then the least recently used beyond
:data:`MAX_ENTRIES` entries or :data:`MAX_BYTES`. Each session's hits and misses are kept in
the user's cache directory, for the next session's header. :func:`describe_store` and
:func:`clear_store` show and empty a store without its key (``chatresp cache``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_chatresp.errors import display_path
from pytest_chatresp.files import (
    is_partial_write,
    read_regular,
    remove_partial_writes,
    write_private,
)

from .store_key import STORE_FORMAT

__all__ = [
    "MAX_AGE_DAYS",
    "MAX_BYTES",
    "MAX_ENTRIES",
    "CacheStore",
    "StoreSummary",
    "Unstorable",
    "clear_store",
    "decode_document",
    "describe_store",
    "encode_document",
    "reached_directly",
]

_MAGIC = f"chatresp-store {STORE_FORMAT} ".encode()
_TAG_HEX = 64
_LEGACY_SUFFIXES = (".pickle.v1", ".pickle.v2", ".marshal.v1", ".marshal.v2")
#: An entry no session used for this long is removed.
MAX_AGE_DAYS = 30
#: Beyond this many entries, or this many bytes, the least recently used are removed.
MAX_ENTRIES = 10_000
MAX_BYTES = 512 << 20
#: A used entry's time is brought up to date when older than this (one write a day at most).
_TOUCH_AFTER_S = 86_400.0
_DAY_S = 86_400.0
_ENTRY = re.compile(r"\A[0-9a-f]{40}\.[a-z]+\.json\Z")
_STATS_NAME = re.compile(r"\Astats\.[A-Za-z0-9_-]{1,32}\.json\Z")
_WORKER = re.compile(r"\A[A-Za-z0-9_-]{1,32}\Z")
_STATS_LABEL = b"stats\n"
_STATS_LIMIT = 4096
_MAX_WORKERS = 256


class Unstorable(Exception):
    """A document holding a value plain JSON (with bytes and tuples) cannot say exactly."""


# --- plain data ---------------------------------------------------------------------------------

_PLAIN = (str, int, float, bool, type(None))


def encode_document(document: Any) -> bytes:
    """``document`` as JSON, with the places of its bytes and tuples beside it."""
    patches: list[list[Any]] = []
    trail: list[int | str] = []

    def plain(value: Any) -> Any:
        kind = type(value)
        if kind in _PLAIN:
            return value
        if kind is list or kind is tuple:
            if kind is tuple:
                patches.append(["tuple", list(trail)])
            out = []
            for index, item in enumerate(value):
                trail.append(index)
                out.append(plain(item))
                trail.pop()
            return out
        if kind is dict:
            mapping = {}
            for key, item in value.items():
                if type(key) is not str:
                    raise Unstorable
                trail.append(key)
                mapping[key] = plain(item)
                trail.pop()
            return mapping
        if kind is bytes:
            patches.append(["bytes", list(trail)])
            return base64.b64encode(value).decode("ascii")
        raise Unstorable

    try:
        body = {"patches": patches, "document": plain(document)}
    except RecursionError:
        raise Unstorable from None
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, it survives
        return json.dumps(body, separators=(",", ":")).encode("ascii")
    except (ValueError, RecursionError):  # a cycle, an integer too long for text
        raise Unstorable from None


def decode_document(payload: bytes) -> Any:
    """The document :func:`encode_document` wrote.

    Raises ``ValueError``, ``LookupError`` or ``TypeError`` for a payload it did not write.
    """
    body = json.loads(payload)
    document = body["document"]
    for kind, trail in reversed(body["patches"]):  # the innermost first
        if not trail:
            document = _restored(kind, document)
            continue
        parent = document
        for step in trail[:-1]:
            parent = parent[step]
        parent[trail[-1]] = _restored(kind, parent[trail[-1]])
    return document


def _restored(kind: str, value: Any) -> Any:
    if kind == "bytes":
        return base64.b64decode(value, validate=True)
    if kind == "tuple":
        return tuple(value)
    raise ValueError(f"unknown patch {kind!r}")


# --- the store ----------------------------------------------------------------------------------


class CacheStore:
    """Tagged entries of plain data in a directory the plugin does not trust.

    An entry is ``chatresp-store 3 <tag>\\n<payload>``, the tag being the HMAC-SHA256 of the
    entry's key and payload under the per-user secret. Only a process holding that secret can
    make an entry this store uses, and an entry made for one key is refused under another.
    """

    def __init__(
        self, directory: Path, key: bytes, identity: str, stats: Path | None = None
    ) -> None:
        self.directory = directory
        #: Where the sessions' hits and misses are kept (outside the project), if anywhere.
        self.stats = stats
        self._key = key
        self.identity = identity
        self.hits = 0
        self.misses = 0
        self._swept = False

    def _name(self, kind: str, digest: str) -> tuple[str, bytes]:
        label = f"{kind}\n{self.identity}\n{digest}".encode()
        return f"{hashlib.sha256(label).hexdigest()[:40]}.{kind}.json", label

    def _tag(self, label: bytes, payload: bytes) -> bytes:
        mac = hmac.new(self._key, label, hashlib.sha256)
        mac.update(b"\0")
        mac.update(payload)
        return mac.hexdigest().encode("ascii")

    def path_of(self, kind: str, digest: str) -> Path:
        return self.directory / self._name(kind, digest)[0]

    def _read_tagged(self, path: Path, label: bytes, limit: int) -> bytes | None:
        blob = read_regular(path, limit + len(_MAGIC) + _TAG_HEX + 1)
        header = len(_MAGIC) + _TAG_HEX + 1
        if blob is None or len(blob) < header or not blob.startswith(_MAGIC):
            return None
        tag, payload = blob[len(_MAGIC) : header - 1], blob[header:]
        if blob[header - 1 : header] != b"\n" or not hmac.compare_digest(
            tag, self._tag(label, payload)
        ):
            return None
        return payload

    def _write_tagged(self, path: Path, label: bytes, payload: bytes) -> None:
        write_private(path, _MAGIC + self._tag(label, payload) + b"\n" + payload)

    def get(self, kind: str, digest: str, limit: int, *, counted: bool = True) -> bytes | None:
        """The payload kept under ``(kind, digest)``, or ``None`` (absent, unreadable, forged).

        A lookup is a hit or a miss of the session unless ``counted`` is false.
        """
        name, label = self._name(kind, digest)
        payload = self._read_tagged(self.directory / name, label, limit)
        if payload is None:
            self.misses += counted
            return None
        self.hits += counted
        self._touch(self.directory / name)
        return payload

    def put(self, kind: str, digest: str, payload: bytes) -> None:
        """Keep ``payload`` under ``(kind, digest)``; a failure only costs the next session time."""
        name, label = self._name(kind, digest)
        if not self._usable_directory():
            return
        if not self._swept:  # once a session: bounds, and what killed sessions left behind
            self.sweep()
        self._write_tagged(self.directory / name, label, payload)

    @staticmethod
    def _touch(path: Path) -> None:
        """Record that the entry at ``path`` was used now (its modification time)."""
        if os.utime not in os.supports_follow_symlinks:
            return
        with contextlib.suppress(OSError):
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and time.time() - info.st_mtime > _TOUCH_AFTER_S:
                os.utime(path, follow_symlinks=False)  # a link swapped in is not followed

    def sweep(
        self,
        *,
        max_age_days: float = MAX_AGE_DAYS,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
    ) -> int:
        """Remove entries unused for ``max_age_days``, then the least recently used beyond
        ``max_entries`` or ``max_bytes``, partial writes and the older store's files. Done by
        a session's first write (a session that only reads adds nothing); returns how many
        entries were removed."""
        self._swept = True
        if not self._usable_directory():
            return 0
        remove_partial_writes(self.directory)
        self._remove_legacy()
        entries = _entries(self.directory)
        oldest = time.time() - max_age_days * _DAY_S
        removed = 0
        kept_bytes = kept = 0
        for path, info in sorted(entries, key=lambda item: -item[1].st_mtime):
            kept_bytes += info.st_size
            kept += 1
            if info.st_mtime < oldest or kept > max_entries or kept_bytes > max_bytes:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed += 1
                kept_bytes -= info.st_size
                kept -= 1
        return removed

    def save_stats(self, run: str | None = None, worker: str | None = None) -> None:
        """Keep this session's hits and misses for the next session's header.

        Each pytest-xdist worker of a run (``run``, its id ``worker``) keeps its own, and
        :meth:`last_stats` adds up those of the latest run.
        """
        if self.stats is None or not (self.hits or self.misses):
            return
        try:
            self.stats.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            return
        worker = worker if worker is not None and _WORKER.match(worker) else "main"
        name = f"stats.{worker}.json"
        payload = {"run": run or uuid.uuid4().hex, "at": time.time(), "hits": self.hits}
        payload["misses"] = self.misses
        label = _STATS_LABEL + name.encode()
        self._write_tagged(self.stats / name, label, json.dumps(payload).encode())

    def last_stats(self) -> tuple[int, int] | None:
        """Hits and misses of the last run (all its workers), or ``None`` if none was kept."""
        runs: dict[str, tuple[float, int, int]] = {}
        if self.stats is None:
            return None
        try:
            names = sorted(n for n in os.listdir(self.stats) if _STATS_NAME.match(n))
        except OSError:
            return None
        for name in names[:_MAX_WORKERS]:
            label = _STATS_LABEL + name.encode()
            payload = self._read_tagged(self.stats / name, label, _STATS_LIMIT)
            if payload is None:
                continue
            try:
                data = json.loads(payload)
                run, at, hits, misses = data["run"], data["at"], data["hits"], data["misses"]
            except (ValueError, TypeError, LookupError):
                continue
            counts = (hits, misses)
            if not isinstance(run, str) or not isinstance(at, float):
                continue
            if not all(type(n) is int and n >= 0 for n in counts):
                continue
            known = runs.get(run, (at, 0, 0))
            runs[run] = (max(known[0], at), known[1] + hits, known[2] + misses)
        if not runs:
            return None
        _, hits, misses = max(runs.values())
        return hits, misses

    def header_line(self) -> str:
        """The store in a line: where, how many entries and bytes, the last session's hits."""
        summary = describe_store(self.directory)
        line = f"chatresp cache: {summary.describe()}"
        stats = self.last_stats()
        if stats is not None:
            hits, misses = stats
            rate = 100 * hits // (hits + misses) if hits + misses else 0
            line += f"; last session {hits} hit(s), {misses} miss(es) ({rate}% hits)"
        return line

    def _remove_legacy(self) -> None:
        """Entries of the older store (pickles and marshal blobs) are never read: remove them."""
        with contextlib.suppress(OSError):
            for name in os.listdir(self.directory):
                if name.endswith(_LEGACY_SUFFIXES):
                    with contextlib.suppress(OSError):
                        if not stat.S_ISDIR(os.lstat(self.directory / name).st_mode):
                            os.unlink(self.directory / name)

    def _usable_directory(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            info = os.lstat(self.directory)
        except OSError:
            return False
        return stat.S_ISDIR(info.st_mode)  # a planted symlink is not written through


def reached_directly(store: Path, project: Path | None) -> bool:
    """Whether no symbolic link leads to ``store`` from the project tree (or, for a store
    outside it, from the cache dir it was made in): a planted ``.pytest_cache/d`` link would
    otherwise have entries written, and old ones removed, wherever it points."""
    store = store.absolute()
    base = store.parent.parent  # pytest's cache dir: <cache_dir>/d/chatresp
    if project is not None and store.is_relative_to(project.absolute()):
        base = project.absolute()
    path = base
    for part in store.relative_to(base).parts:
        path = path / part
        if path.is_symlink():
            return False
    return True


def _entries(directory: Path) -> list[tuple[Path, os.stat_result]]:
    """The store's entries (by name) that are regular files, with their ``lstat``."""
    found = []
    with contextlib.suppress(OSError), os.scandir(directory) as listing:
        for item in listing:
            if _ENTRY.match(item.name):
                with contextlib.suppress(OSError):
                    info = item.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode):
                        found.append((Path(item.path), info))
    return found


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1 << 20:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1 << 20):.1f} MiB"


@dataclass(frozen=True)
class StoreSummary:
    """What a store directory holds: its entries, their bytes, and when they were last used."""

    directory: Path
    entries: int
    size: int
    newest: float | None = None
    oldest: float | None = None

    def amount(self) -> str:
        """``3 entries, 1.2 MiB``."""
        noun = "entry" if self.entries == 1 else "entries"
        return f"{self.entries} {noun}, {_size(self.size)}"

    def describe(self) -> str:
        """``.pytest_cache/d/chatresp, 3 entries, 1.2 MiB``."""
        return f"{display_path(self.directory)}, {self.amount()}"


def describe_store(directory: Path) -> StoreSummary:
    """What the store at ``directory`` holds (no key needed: nothing is read but names)."""
    entries = _entries(directory)
    times = [info.st_mtime for _, info in entries]
    return StoreSummary(
        directory,
        len(entries),
        sum(info.st_size for _, info in entries),
        max(times, default=None),
        min(times, default=None),
    )


def clear_store(directory: Path) -> StoreSummary:
    """Remove every entry of the store at ``directory`` (and its leftovers); what was removed.

    Only the store's own files are removed, by name; a link is removed itself, not its target.
    """
    removed = describe_store(directory)
    count = size = 0
    with contextlib.suppress(OSError), os.scandir(directory) as listing:
        for item in listing:
            name = item.name
            ours = _ENTRY.match(name) or is_partial_write(name)
            if not ours and not name.endswith(_LEGACY_SUFFIXES):
                continue
            with contextlib.suppress(OSError):
                info = item.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    continue
                os.unlink(item.path)
                if _ENTRY.match(name) and stat.S_ISREG(info.st_mode):
                    count, size = count + 1, size + info.st_size
    return StoreSummary(directory, count, size, removed.newest, removed.oldest)
