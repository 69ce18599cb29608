"""Which files are cassettes: one discovery for ``chatresp`` and ``--chatresp-collect-cassettes``.

A cassette file is named ``*.yaml``, ``*.yml`` or ``*.json``, is not a shape file
(``*.shape.yaml``) and is not the temporary file of an unfinished write
(:func:`~pytest_chatresp.files.is_partial_write`). Below a directory, discovery:

- descends into subdirectories, except dot directories (``.git``, ``.venv``, ``.cache``…),
  which hold no cassettes of the project's, as pytest's ``norecursedirs`` skips them;
- does not descend into a symbolic link to a directory: it may point anywhere (outside the
  project, or back up the tree), and the directory it points to, when inside, is found as
  itself;
- lists every other entry with a cassette's name, symbolic links included, and leaves the
  verdict to the reader: a link to a regular file is read, a link to a device, a FIFO or
  nothing is refused by name (``read_cassette_bytes``), never opened;
- lists files in a stable order: a directory's files by name, then its subdirectories by name.

Nothing here reads a file or imports pytest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import display_path
from .files import is_partial_write
from .shapes import SHAPE_SUFFIX

__all__ = [
    "CASSETTE_SUFFIXES",
    "MODULE_CASSETTES",
    "Found",
    "cassette_files",
    "cassette_roots",
    "find",
    "is_cassette",
    "is_cassette_name",
    "module_cassette_dirs",
]

CASSETTE_SUFFIXES = (".yaml", ".yml", ".json")
#: The folder beside a test module that holds its cassettes in pytest-recording's layout
#: (``<test file's dir>/cassettes/<module>/<test>.yaml``).
MODULE_CASSETTES = "cassettes"


def is_cassette_name(name: str) -> bool:
    """Whether a file of this name may be a cassette (by its name alone)."""
    return (
        name.endswith(CASSETTE_SUFFIXES)
        and not name.endswith(SHAPE_SUFFIX)
        and not is_partial_write(name)
    )


def _skipped_directory(name: str) -> bool:
    return name.startswith(".")


@dataclass
class Found:
    """Cassette files, in order, each once; and the directories that could not be read."""

    paths: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _walk(root: Path, problems: list[str]) -> Iterator[Path]:
    def failed(error: OSError) -> None:
        where = display_path(error.filename) if error.filename else display_path(root)
        problems.append(f"{where}: cannot read the directory: {error.strerror}")

    # followlinks=False: a link to a directory is listed among the directories, never entered;
    # it is reported, so that what is not read is not taken for clean.
    for directory, subdirectories, names in os.walk(root, onerror=failed, followlinks=False):
        subdirectories[:] = sorted(d for d in subdirectories if not _skipped_directory(d))
        for name in subdirectories:
            link = Path(directory, name)
            if link.is_symlink():
                problems.append(_not_followed(link))
        for name in sorted(names):
            if is_cassette_name(name):
                yield Path(directory, name)


def _not_followed(link: Path) -> str:
    target = display_path(os.path.realpath(link))
    return (
        f"{display_path(link)}: a symbolic link to the directory {target}: not followed "
        "(name the directory it points to)"
    )


def _through_link(root: Path) -> Path | None:
    """The first symbolic link on the way to ``root`` (from the working directory when it is
    relative), itself included; ``None`` when there is none."""
    path = Path() if not root.is_absolute() else Path(root.anchor)
    for part in root.parts[1:] if root.is_absolute() else root.parts:
        path = path / part
        if part not in (".", "..") and path.is_symlink():
            return path
    return None


def cassette_files(directory: Path) -> list[Path]:
    """The cassette files below ``directory``, in order; none when it is not a directory."""
    if not directory.is_dir():
        return []
    return list(_walk(directory, []))


#: Directories that hold no test modules of the project's (besides dot directories).
_NOT_TESTS = frozenset({"__pycache__", "node_modules", "venv", "build", "dist", "site-packages"})


def _is_test_module(name: str) -> bool:
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def module_cassette_dirs(rootdir: Path) -> list[Path]:
    """Every ``cassettes/`` folder beside a test module (``test_*.py`` or ``*_test.py``) below
    ``rootdir``, pytest-recording's layout, in order. Dot directories, virtual environments
    and links to directories are not entered, as in :func:`find`."""
    found: list[Path] = []
    for directory, subdirectories, names in os.walk(rootdir, followlinks=False):
        here = Path(directory)
        if (here / "pyvenv.cfg").exists():
            subdirectories[:] = []
            continue
        subdirectories[:] = sorted(
            d
            for d in subdirectories
            if not _skipped_directory(d) and d not in _NOT_TESTS and not d.endswith(".egg-info")
        )
        if MODULE_CASSETTES in subdirectories and any(_is_test_module(n) for n in names):
            found.append(here / MODULE_CASSETTES)
            subdirectories.remove(MODULE_CASSETTES)  # its files are cassettes, not tests
    return found


def cassette_roots(cassette_dir: Path, rootdir: Path) -> list[Path]:
    """Where a project's cassettes are: the cassette dir, then each ``cassettes/`` folder beside
    a test module (:func:`module_cassette_dirs`) that is not inside it; each once."""
    roots = [cassette_dir]
    inside = Path(os.path.abspath(cassette_dir))
    for folder in module_cassette_dirs(rootdir):
        absolute = Path(os.path.abspath(folder))
        if absolute != inside and inside not in absolute.parents:
            roots.append(folder)
    return roots


def _key(path: Path) -> str:
    """The file a path names, to list each once."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return os.path.abspath(path)


def find(paths: Sequence[str | Path], *, links: bool = False) -> Found:
    """Files and directories (recursively) to cassette files, in order, each once.

    A file named directly is listed whatever its suffix, but a shape file or a partial write
    is skipped even when named (a shell glob names them). With ``links``, a symbolic link is
    listed as itself, beside the file it points to; otherwise each file is listed once however
    many links name it, and a directory reached through a symbolic link (named, or a
    parent of a named path) is reported among the problems, not read. A link to a directory
    inside a directory given is reported too, never entered. Paths that do not exist are the
    caller's to refuse beforehand.
    """
    found = Found()
    seen: set[str] = set()
    for argument in paths:
        root = Path(argument)
        through = _through_link(root.parent if not root.is_dir() else root) if links else None
        if through is not None:  # written through, a file outside the paths given could change
            found.problems.append(_not_followed(through))
            continue
        if root.is_dir():
            candidates: Iterator[Path] = _walk(root, found.problems)
        elif root.name.endswith(SHAPE_SUFFIX) or is_partial_write(root.name):
            continue
        else:
            candidates = iter([root])
        for path in candidates:
            key = "link:" + os.path.abspath(path) if links and path.is_symlink() else _key(path)
            if key not in seen:
                seen.add(key)
                found.paths.append(path)
    return found


def is_cassette(path: Path, directory: Path) -> bool:
    """Whether discovery below ``directory`` lists ``path``: for files met another way (pytest's
    own collection, which enters dot directories when told to, and links to directories)."""
    if not is_cassette_name(path.name):
        return False
    base = Path(os.path.abspath(directory))
    try:
        relative = Path(os.path.abspath(path)).relative_to(base)
    except ValueError:
        try:  # the same directory reached through another name (a linked temporary dir)
            base = directory.resolve()
            relative = Path(path.parent.resolve(), path.name).relative_to(base)
        except (ValueError, OSError, RuntimeError):
            return False
    for part in relative.parts[:-1]:
        base = base / part
        if _skipped_directory(part) or base.is_symlink():
            return False
    return not path.is_dir()  # as os.walk: a link to a directory is a directory
