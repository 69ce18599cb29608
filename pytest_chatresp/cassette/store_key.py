"""What a store entry is keyed by: the per-user secret and the build identity.

The secret tags every entry of the cassette store (``cassette/store.py``); it is random, made on
first use, and kept in the user's cache directory (``$XDG_CACHE_HOME/pytest-chatresp/store.key``),
outside any project tree, readable by the user only. The build identity names everything besides
a cassette's bytes that shapes what reading it gives, so an entry made by another version of the
plugin, of Python or of a parser is never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
import sys
from pathlib import Path

from pytest_chatresp.files import read_regular
from pytest_chatresp.provenance import version_of

from .decoding import decoder_versions

__all__ = ["STORE_FORMAT", "build_identity", "stats_dir", "user_cache_dir", "user_key"]

#: Bump when the stored form of an entry changes.
STORE_FORMAT = "3"
_KEY_BYTES = 32
_KEY_NAME = "store.key"
_PACKAGE = Path(__file__).resolve().parent.parent  # pytest_chatresp/


def user_cache_dir() -> Path:
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
        directory = directory or user_cache_dir()
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


def stats_dir(store: Path) -> Path | None:
    """Where the hits and misses of the store at ``store`` are kept: in the user's cache
    directory, outside the project tree, one directory per store."""
    try:
        name = hashlib.sha256(os.fsencode(store.resolve())).hexdigest()[:24]
        return user_cache_dir() / "stats" / name
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
    pydantic-core (their installed versions: a warm session imports neither pydantic nor
    PyYAML until a test reads a completion), and the optional decoders.
    """
    return "|".join(
        [
            f"store {STORE_FORMAT}",
            f"pytest-chatresp {_version('pytest-chatresp')} {_source_fingerprint()}",
            f"python {sys.implementation.name} {sys.version_info[0]}.{sys.version_info[1]}",
            f"pyyaml {_version('PyYAML')}",
            f"pydantic {_version('pydantic')}",
            f"pydantic-core {_version('pydantic-core')}",
            _decoders(),
        ]
    )
