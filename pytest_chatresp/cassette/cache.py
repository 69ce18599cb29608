"""The parsed-cassette cache: each file parsed once per session, and once across sessions.

In a session, :class:`CassetteCache` keeps each file's parsed document and its verdict (per
rules) until the file changes; each :meth:`~CassetteCache.load` gives a
:class:`~pytest_chatresp.cassette.Cassette` of its own, whose models no other caller holds.
With a store directory (pytest's cache dir, see ``cassette/store.py``) it also keeps, between
sessions:

- the parsed **document**, keyed by the SHA-256 of the cassette's bytes, so a later session does
  not parse YAML again for a file whose bytes did not change;
- each cassette's **verdict** under the rules that judged it (how many exchanges, every
  violation), keyed by the cassette's bytes, the path it was shown as and the rules. A later
  session under the same rules takes the verdict and builds the exchanges and models only when a
  test asks for them (by the same code, from the same bytes); other rules, another version or
  other bytes find no verdict and validate again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_chatresp.checks import Rules
from pytest_chatresp.errors import CassetteError, display_path

from . import document as _document
from . import loader as _loader
from .document import interactions_of
from .loader import Cassette, collector_paused
from .verdict import Verdict

if TYPE_CHECKING:
    from .exchange import Exchange
    from .store import CacheStore

__all__ = ["CassetteCache"]

#: An entry may be this many times its cassette's size (plus a margin) before it is not read.
_SIZE_FACTOR = 8
_SIZE_MARGIN = 1 << 16


# --- verdicts -----------------------------------------------------------------------------------


def _verdict_key(digest: str, shown: str, rules: Rules) -> str:
    """What a verdict is the verdict of: the bytes, the path shown in its messages, the rules."""
    judged = [
        digest,
        shown,
        rules.strict,
        rules.for_command,
        sorted(rules.skip_checks),
        [f"{type(a).__qualname__}:{a!r}" for a in rules.allow],
    ]
    return hashlib.sha256(json.dumps(judged).encode("utf-8", "surrogatepass")).hexdigest()


# --- the cache ----------------------------------------------------------------------------------


@dataclass
class _Entry:
    """What the cache knows of one file as it is now (its stat signature)."""

    signature: tuple[int, int, int]
    digest: str | None = None
    data: bytes | None = None
    #: How many bytes the file held when read (its ``digest``'s), kept once ``data`` is parsed.
    size: int = 0
    document: Any = None
    parsed: bool = False
    #: A stored verdict served this file (the session's hit): its document is not counted again.
    served: bool = False
    #: The verdict under each rules the file was judged by, for the cassettes of later callers.
    verdicts: dict[Rules, Verdict] = field(default_factory=dict)


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
        #: Each path as given, resolved when it was last read (what :meth:`release` looks up).
        self._names: dict[str, str] = {}

    @property
    def backing(self) -> CacheStore | None:
        """The on-disk store, made on first use; ``None`` without a store dir or a usable key."""
        if not self._backing_made:
            self._backing_made = True
            if self.store is not None:
                self._backing = self._open_store(self.store)
        return self._backing

    def _open_store(self, store: Path) -> CacheStore | None:
        from .store import CacheStore, reached_directly
        from .store_key import build_identity, stats_dir, user_key

        if not reached_directly(store, self._project):
            return None
        key = self._key if self._key is not None else user_key(self._project)
        if key is None:
            return None
        return CacheStore(store, key, build_identity(), stats_dir(store))

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
        name = self._names[os.fspath(path)] = str(resolved)
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
                    entry.size = len(entry.data)
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
        from .store import decode_document

        try:
            return decode_document(payload)
        except (ValueError, LookupError, TypeError, RecursionError):
            return None

    def _keep_document(self, backing: CacheStore, digest: str, size: int, document: Any) -> None:
        from .store import Unstorable, encode_document

        try:
            payload = encode_document(document)
        except Unstorable:
            return
        if len(payload) <= self._limit(size):
            backing.put("document", digest, payload)

    def release(self, path: str | os.PathLike[str]) -> None:
        """Let go of a file's parsed document (its verdicts stay): read again if asked for."""
        name = self._names.get(os.fspath(path))
        entry = self._entries.get(name) if name is not None else None
        if entry is not None and entry.parsed:
            entry.document, entry.parsed = None, False

    def document(self, path: str | os.PathLike[str]) -> Any:
        """The parsed file."""
        path = Path(path)
        return self._document_of(path, self._entry(path))

    def load(
        self, path: str | os.PathLike[str], *, strict: bool = False, rules: Rules | None = None
    ) -> Cassette:
        """The file as a :class:`Cassette` validated under ``rules`` (or ``strict``).

        Each call gives a cassette of its own, whose completions no other caller holds (a test
        that changes one changes nothing another test sees); the file is judged once, later
        calls build their exchanges from the kept document under the verdict found.
        """
        rules = rules or Rules(strict=strict)
        path = Path(path)
        entry = self._entry(path)
        judged = entry.verdicts.get(rules)
        if judged is not None:
            return self._deferred(path, entry, rules, judged)
        cassette = self._stored_verdict(path, entry, rules)
        if cassette is None:
            document = self._document_of(path, entry)
            with collector_paused():
                cassette = _loader.cassette_from_document(path, document, rules=rules)
            self._keep_verdict(path, entry, rules, cassette)
        # The verdict is kept, not the cassette: its models are the caller's, and go with it.
        entry.verdicts[rules] = cassette.verdict()
        return cassette

    def _build(self, path: Path, entry: _Entry, rules: Rules, verdict: Verdict) -> Cassette:
        document = self._document_of(path, entry)
        return _loader.cassette_from_document(
            path, document, rules=rules, verdict=verdict.violations
        )

    def _build_one(
        self, path: Path, entry: _Entry, rules: Rules, verdict: Verdict, index: int
    ) -> Exchange:
        from .exchange import build_exchange

        shown = display_path(path)
        interactions = interactions_of(self._document_of(path, entry), shown)
        if len(interactions) != verdict.count:
            raise CassetteError.single(shown, "changed while it was read", field="interactions")
        checked = [v for v in verdict.violations if v.index == index]
        return build_exchange(shown, index, interactions[index], rules=rules, checked=checked)

    def _stored_verdict(self, path: Path, entry: _Entry, rules: Rules) -> Cassette | None:
        # The bytes may be parsed already (replay asked for the document first): their digest
        # and size still say what the verdict is the verdict of.
        backing, digest = self.backing, entry.digest
        if backing is None or digest is None:
            return None
        shown = display_path(path)
        key = _verdict_key(digest, shown, rules)
        payload = backing.get("verdict", key, self._limit(entry.size), counted=False)
        verdict = Verdict.from_payload(payload, shown) if payload is not None else None
        if verdict is None:
            return None
        if not entry.parsed:  # a document looked up for replay was counted already
            backing.hits += 1
        entry.served = True
        return self._deferred(path, entry, rules, verdict)

    def _deferred(self, path: Path, entry: _Entry, rules: Rules, verdict: Verdict) -> Cassette:
        return Cassette.deferred(
            path,
            verdict,
            lambda: self._build(path, entry, rules, verdict),
            lambda index: self._build_one(path, entry, rules, verdict, index),
        )

    def _keep_verdict(self, path: Path, entry: _Entry, rules: Rules, cassette: Cassette) -> None:
        backing, digest = self.backing, entry.digest
        if backing is None or digest is None:
            return
        shown = display_path(path)
        payload = cassette.verdict().to_payload(shown)
        if payload is not None:  # None: not the verdict of this file alone, judged each session
            backing.put("verdict", _verdict_key(digest, shown, rules), payload)
