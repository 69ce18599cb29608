"""The parsed-cassette cache: each file parsed once per session, and once across sessions.

In a session, :class:`CassetteCache` keeps each file's parsed document and its validated
:class:`~pytest_chatresp.cassette.Cassette` (per rules) until the file changes. With a ``store``
directory (pytest's cache dir) it also keeps the parsed document between sessions, so a later
session does not parse YAML again for a file whose bytes did not change.

What is kept is plain data, never code: JSON, with the few values JSON has no type for (bytes,
tuples) listed beside it. The store lives in the project tree, where a stranger's pull request
can put any file, so an entry is used only when it carries a valid HMAC-SHA256 tag, keyed by a
random per-user secret kept outside the project tree (``~/.cache/pytest-chatresp/store.key``),
over the entry's key (the SHA-256 of the cassette's bytes, the plugin's build identity) and its
content. A file that is not a regular file, is too large, is cut short or carries a wrong tag is
ignored, as if absent: the file is parsed again and the entry rewritten.

Beside the document, the store keeps each cassette's verdict under the rules that judged it
(how many exchanges, every violation), tagged the same way and keyed by the cassette's bytes,
the build identity, the path it was shown as and the rules. A later session under the same rules
takes the verdict and builds the exchanges and models only when a test asks for them (by the same
code, from the same bytes); other rules, another version or other bytes find no verdict and
validate again.

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
import secrets
import stat
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_chatresp.checks import Rules
from pytest_chatresp.errors import CassetteError, Violation, display_path
from pytest_chatresp.files import (
    is_partial_write,
    read_regular,
    remove_partial_writes,
    write_private,
)
from pytest_chatresp.provenance import version_of

from . import document as _document
from . import loader as _loader
from .decoding import decoder_versions
from .loader import Cassette, collector_paused

__all__ = [
    "MAX_AGE_DAYS",
    "MAX_BYTES",
    "MAX_ENTRIES",
    "CacheStore",
    "CassetteCache",
    "StoreSummary",
    "build_identity",
    "clear_store",
    "describe_store",
    "user_key",
]

#: Bump when the stored form of an entry changes.
STORE_FORMAT = "3"
_MAGIC = b"chatresp-store 3 "
_TAG_HEX = 64
_KEY_BYTES = 32
_KEY_NAME = "store.key"
#: An entry may be this many times its cassette's size (plus a margin) before it is not read.
_SIZE_FACTOR = 8
_SIZE_MARGIN = 1 << 16
_PACKAGE = Path(__file__).resolve().parent.parent  # pytest_chatresp/
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


class _Unstorable(Exception):
    """A document holding a value plain JSON (with bytes and tuples) cannot say exactly."""


# --- the per-user secret ------------------------------------------------------------------------


def _key_dir() -> Path:
    """The user's cache directory (``$XDG_CACHE_HOME`` when absolute, as the spec says)."""
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    else:
        base = os.environ.get("XDG_CACHE_HOME", "")
        if not os.path.isabs(base):
            base = str(Path.home() / ".cache")
    return Path(base) / "pytest-chatresp"


def _private(info: os.stat_result, *, directory: bool) -> bool:
    """Owned by this user and not writable (for the key file: not readable) by anyone else."""
    if os.name == "nt":
        return True
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return False
    return stat.S_IMODE(info.st_mode) & (0o022 if directory else 0o077) == 0


def _read_key(path: Path) -> bytes | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or not _private(info, directory=False):
        return None
    key = read_regular(path, _KEY_BYTES)
    return key if key is not None and len(key) == _KEY_BYTES else None


def user_key(project: Path | None = None, directory: Path | None = None) -> bytes | None:
    """The per-user secret that tags store entries, made on first use; ``None`` if unusable.

    It lives in the user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``, or
    ``directory``), readable by the user only. A key inside ``project`` (the project tree,
    where a pull request could have put one) is not used.
    """
    try:
        directory = directory or _key_dir()
    except RuntimeError:  # no home directory to be found
        return None
    path = directory / _KEY_NAME
    if project is not None:
        try:
            if path.resolve().is_relative_to(project.resolve()):
                return None
        except (OSError, RuntimeError):
            return None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(directory)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or not _private(info, directory=True):
        return None
    key = _read_key(path)
    if key is not None:
        return key
    if os.path.lexists(path):
        return None  # something else sits there: not ours to replace
    try:
        # Written whole to a private file, then linked into place: another process sees
        # either no key or the complete one, and the first to link wins.
        fd, temporary = _new_private_file(directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(_KEY_BYTES))
            with contextlib.suppress(FileExistsError):  # another process linked first
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    except OSError:
        return None
    return _read_key(path)


def _stats_dir(store: Path) -> Path | None:
    """Where the hits and misses of the store at ``store`` are kept: in the user's cache
    directory, outside the project tree, one directory per store."""
    try:
        name = hashlib.sha256(os.fsencode(store.resolve())).hexdigest()[:24]
        return _key_dir() / "stats" / name
    except (OSError, RuntimeError):
        return None


def _new_private_file(directory: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=".store.key.", suffix=".tmp", dir=directory)


# --- what shapes a stored document --------------------------------------------------------------


def _version(distribution: str) -> str:
    return version_of(distribution) or "absent"


def _source_fingerprint() -> str:
    """The package's own modules (name, size, mtime): an edited checkout is another build."""
    digest = hashlib.sha256()
    for module in sorted(_PACKAGE.rglob("*.py")):
        try:
            info = module.stat()
        except OSError:
            continue
        name = module.relative_to(_PACKAGE).as_posix()
        digest.update(f"{name}:{info.st_size}:{info.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def _decoders() -> str:
    found = decoder_versions()
    return f"brotli {found['brotli']}" if "brotli" in found else "brotli absent"


def build_identity() -> str:
    """Everything besides a cassette's bytes that shapes what reading it gives.

    The store's format, this plugin's version and source, Python, PyYAML, pydantic and
    pydantic-core, and the optional decoders.
    """
    import pydantic
    import pydantic_core
    import yaml

    return "|".join(
        [
            f"store {STORE_FORMAT}",
            f"pytest-chatresp {_version('pytest-chatresp')} {_source_fingerprint()}",
            f"python {sys.implementation.name} {sys.version_info[0]}.{sys.version_info[1]}",
            f"pyyaml {yaml.__version__}",
            f"pydantic {pydantic.VERSION}",
            f"pydantic-core {pydantic_core.__version__}",
            _decoders(),
        ]
    )


# --- plain data ---------------------------------------------------------------------------------

_PLAIN = (str, int, float, bool, type(None))


def _encode(document: Any) -> bytes:
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
                    raise _Unstorable
                trail.append(key)
                mapping[key] = plain(item)
                trail.pop()
            return mapping
        if kind is bytes:
            patches.append(["bytes", list(trail)])
            return base64.b64encode(value).decode("ascii")
        raise _Unstorable

    try:
        body = {"patches": patches, "document": plain(document)}
    except RecursionError:
        raise _Unstorable from None
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, it survives
        return json.dumps(body, separators=(",", ":")).encode("ascii")
    except (ValueError, RecursionError):  # a cycle, an integer too long for text
        raise _Unstorable from None


def _decode(payload: bytes) -> Any:
    """The document :func:`_encode` wrote (raises ``ValueError``/``LookupError``/``TypeError``)."""
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


def _reached_directly(store: Path, project: Path | None) -> bool:
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


# --- verdicts -----------------------------------------------------------------------------------


def _verdict_key(digest: str, shown: str, rules: Rules) -> str:
    """What a verdict is the verdict of: the bytes, the path shown in its messages, the rules."""
    judged = [
        digest,
        shown,
        rules.strict,
        sorted(rules.skip_checks),
        [f"{type(a).__qualname__}:{a!r}" for a in rules.allow],
    ]
    return hashlib.sha256(json.dumps(judged).encode("utf-8", "surrogatepass")).hexdigest()


def _verdict_of(payload: bytes, shown: str) -> tuple[int, list[Violation]] | None:
    """The (exchange count, violations) a verdict entry holds, or ``None`` if it is not one."""
    try:
        data = json.loads(payload)
        stored, count, found = data["shown"], data["count"], data["violations"]
    except (ValueError, LookupError, TypeError, RecursionError):
        return None
    if stored != shown or type(count) is not int or count < 0 or type(found) is not list:
        return None
    violations = []
    for item in found:
        if type(item) is not list or len(item) != 4:
            return None
        index, where, message, check = item
        if not (index is None or type(index) is int) or type(message) is not str:
            return None
        if not (where is None or type(where) is str) or not (check is None or type(check) is str):
            return None
        violations.append(Violation(shown, index, where, message, check))
    return count, violations


# --- the cache ----------------------------------------------------------------------------------


@dataclass
class _Entry:
    """What the cache knows of one file as it is now (its stat signature)."""

    signature: tuple[int, int, int]
    digest: str | None = None
    data: bytes | None = None
    document: Any = None
    parsed: bool = False
    #: A stored verdict served this file (the session's hit): its document is not counted again.
    served: bool = False
    cassettes: dict[Rules, Cassette] = field(default_factory=dict)


class CassetteCache:
    """Parses each cassette file once, and again only when the file changed.

        The parsed document is shared by the fixtures (as :class:`Cassette`) and by replay through
        vcrpy, so a test that does both parses the file once. With a ``store`` directory (pytest's
        cache dir) and a usable per-user ``key`` (by default :func:`user_key`, refused inside
        ``project``), the parsed document is also kept between sessions under the SHA-256 of the
        file's bytes and :func:`build_identity`, and so is each verdict (under its rules): a later
    session's :meth:`load` of an unchanged file takes the verdict and builds exchanges on demand.
    """

    def __init__(
        self,
        store: Path | None = None,
        *,
        key: bytes | None = None,
        project: Path | None = None,
    ) -> None:
        self.store = store
        self._project = project
        self._key = key
        self._backing: CacheStore | None = None
        self._backing_made = False
        self._entries: dict[str, _Entry] = {}

    @property
    def backing(self) -> CacheStore | None:
        """The on-disk store, made on first use; ``None`` without a store dir or a usable key."""
        if not self._backing_made:
            self._backing_made = True
            if self.store is not None and _reached_directly(self.store, self._project):
                key = self._key if self._key is not None else user_key(self._project)
                if key is not None:
                    self._backing = CacheStore(
                        self.store, key, build_identity(), _stats_dir(self.store)
                    )
        return self._backing

    def header_line(self) -> str | None:
        """The on-disk store in a line for pytest's header, or ``None`` without a store."""
        backing = self.backing
        return backing.header_line() if backing is not None else None

    def end_session(self, run: str | None = None, worker: str | None = None) -> None:
        """Keep this session's hits and misses (of pytest-xdist ``worker`` of ``run``)."""
        if self._backing is not None:
            self._backing.save_stats(run, worker)

    def _entry(self, path: Path) -> _Entry:
        resolved = path.resolve()
        try:
            info = resolved.stat()
        except OSError:
            return _Entry((0, 0, 0), document=_document.read_document(path), parsed=True)
        signature = (info.st_mtime_ns, info.st_size, info.st_ino)
        name = str(resolved)
        entry = self._entries.get(name)
        if entry is None or entry.signature != signature:
            entry = _Entry(signature)
            # Read as the reader reads a cassette (a regular file, bounded in size); a file it
            # refuses is left to ``read_document``, which refuses it by name.
            if self.backing is not None and stat.S_ISREG(info.st_mode):
                try:
                    entry.data = _document.read_cassette_bytes(resolved)
                except CassetteError:
                    entry.data = None
                else:
                    entry.digest = hashlib.sha256(entry.data).hexdigest()
            self._entries[name] = entry
        return entry

    def _document_of(self, path: Path, entry: _Entry) -> Any:
        if entry.parsed:
            return entry.document
        digest, data = entry.digest, entry.data
        backing = self.backing if digest is not None and data is not None else None
        with collector_paused():
            document: Any = None
            if backing is not None and digest is not None and data is not None:
                document = self._stored_document(backing, digest, len(data), entry.served)
            if document is None:
                document = _document.read_document(path, data)
                if backing is not None and digest is not None and data is not None:
                    self._keep_document(backing, digest, len(data), document)
        entry.document, entry.parsed, entry.data = document, True, None
        return document

    @staticmethod
    def _limit(size: int) -> int:
        return size * _SIZE_FACTOR + _SIZE_MARGIN

    def _stored_document(
        self, backing: CacheStore, digest: str, size: int, served: bool = False
    ) -> Any:
        payload = backing.get("document", digest, self._limit(size), counted=not served)
        if payload is None:
            return None
        try:
            return _decode(payload)
        except (ValueError, LookupError, TypeError, RecursionError):
            return None

    def _keep_document(self, backing: CacheStore, digest: str, size: int, document: Any) -> None:
        try:
            payload = _encode(document)
        except _Unstorable:
            return
        if len(payload) <= self._limit(size):
            backing.put("document", digest, payload)

    def document(self, path: str | os.PathLike[str]) -> Any:
        """The parsed file."""
        path = Path(path)
        return self._document_of(path, self._entry(path))

    def load(
        self, path: str | os.PathLike[str], *, strict: bool = False, rules: Rules | None = None
    ) -> Cassette:
        """The file as a :class:`Cassette` validated under ``rules`` (or ``strict``)."""
        rules = rules or Rules(strict=strict)
        path = Path(path)
        entry = self._entry(path)
        cassette = entry.cassettes.get(rules)
        if cassette is None:
            cassette = self._stored_verdict(path, entry, rules)
        if cassette is None:
            document = self._document_of(path, entry)
            with collector_paused():
                cassette = _loader.cassette_from_document(path, document, rules=rules)
            self._keep_verdict(path, entry, rules, cassette)
        entry.cassettes[rules] = cassette
        return cassette

    def _build(self, path: Path, entry: _Entry, rules: Rules, verdict: list[Violation]) -> Cassette:
        document = self._document_of(path, entry)
        return _loader.cassette_from_document(path, document, rules=rules, verdict=verdict)

    def _stored_verdict(self, path: Path, entry: _Entry, rules: Rules) -> Cassette | None:
        backing, digest, data = self.backing, entry.digest, entry.data
        if backing is None or digest is None or data is None:
            return None
        shown = display_path(path)
        key = _verdict_key(digest, shown, rules)
        payload = backing.get("verdict", key, self._limit(len(data)), counted=False)
        verdict = _verdict_of(payload, shown) if payload is not None else None
        if verdict is None:
            return None
        backing.hits += 1
        entry.served = True
        count, violations = verdict
        return Cassette.deferred(
            path, lambda: self._build(path, entry, rules, violations), count, violations
        )

    def _keep_verdict(self, path: Path, entry: _Entry, rules: Rules, cassette: Cassette) -> None:
        backing, digest = self.backing, entry.digest
        if backing is None or digest is None:
            return
        shown = display_path(path)
        violations = cassette.violations
        if any(v.path != shown for v in violations):
            return  # not the verdict of this file alone: judged again each session
        payload = {
            "shown": shown,
            "count": len(cassette),
            "violations": [[v.index, v.field, v.message, v.check] for v in violations],
        }
        try:
            text = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        except (ValueError, UnicodeEncodeError):
            return
        backing.put("verdict", _verdict_key(digest, shown, rules), text)
