"""Files on disk, handled as a stranger may have planted them.

``write_atomically`` writes through a temporary file created exclusively in the target's
directory (never through a symlink planted at a predictable name), then renames it over the
target. A temporary file left by a killed write is recognisable (``is_partial_write``), is never
taken for a cassette, and is removed by the next write to the same path. ``read_regular`` reads
a file only if it is a regular file (not a symlink, directory, FIFO or device), up to a bound.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from pathlib import Path

from .errors import CassetteError, display_path

__all__ = [
    "is_partial_write",
    "read_regular",
    "remove_partial_writes",
    "write_atomically",
    "write_private",
]

#: ``.<name>.chatresp-<pid>-<random>.tmp``: the temporary file of a write to ``<name>``.
_PARTIAL = re.compile(r"\A\.(?P<name>.+)\.chatresp-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp\Z")
#: A partial write older than this is left over, whatever its process.
_ABANDONED_AFTER_S = 3600.0
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_READ_FLAGS = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def is_partial_write(name: str) -> bool:
    """Whether a file name is the temporary file of an unfinished (or killed) write."""
    return _PARTIAL.match(name) is not None


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # signal 0 would end the process there: rely on the file's age
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def remove_partial_writes(directory: Path, name: str | None = None) -> None:
    """Remove what killed writes (to ``name``, or to any file) left in ``directory``.

    Only files of a process that no longer runs, or older than an hour, are removed; a symlink
    is removed itself, never its target.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return
    now = time.time()
    for candidate in names:
        match = _PARTIAL.match(candidate)
        if match is None or (name is not None and match["name"] != name):
            continue
        leftover = directory / candidate
        try:
            info = os.lstat(leftover)
            if stat.S_ISDIR(info.st_mode):
                continue
            if _running(int(match["pid"])) and now - info.st_mtime < _ABANDONED_AFTER_S:
                continue
            os.unlink(leftover)
        except (OSError, ValueError):
            continue


def _temporary(path: Path) -> tuple[int, str]:
    """A new file beside ``path``, created exclusively (``O_EXCL``: a planted link is not used)."""
    return tempfile.mkstemp(
        prefix=f".{path.name}.chatresp-{os.getpid()}-", suffix=".tmp", dir=path.parent
    )


def write_private(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically, readable by the user only; ``False`` on failure.

    For files the plugin keeps for itself (its cache), where a failed write only costs speed.
    Leftovers of killed writes are not looked for here (see :func:`remove_partial_writes`).
    """
    try:
        fd, temporary = _temporary(path)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)  # replaces a link or file at ``path``, never its target
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        return False
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def write_atomically(path: Path, data: str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The temporary file is created exclusively in ``path``'s directory, so a symlink planted at
    its name is neither followed nor overwritten; a symlink at ``path`` itself is replaced by
    the new file, its target left as it was.
    """
    shown = display_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_partial_writes(path.parent, path.name)
        fd, temporary = _temporary(path)
    except OSError as exc:
        raise CassetteError.single(
            shown,
            f"cannot write the cassette: {exc.strerror} ({display_path(path.parent)})",
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        try:  # mkstemp makes the file private; keep the old file's mode, or the usual one
            info = os.lstat(path)
            mode = stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else 0o644
        except OSError:
            mode = 0o644
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise CassetteError.single(shown, f"cannot write the cassette: {exc.strerror}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else ``None``.

    A symlink, directory, FIFO or device is not opened for reading (``O_NOFOLLOW``,
    ``O_NONBLOCK``, then ``fstat`` of what was opened).
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks = []
        remaining = info.st_size
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        if os.read(fd, 1):  # grew while read: not what fstat described
            return None
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
