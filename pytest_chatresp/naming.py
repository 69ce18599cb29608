"""A test's default cassette name, in this plugin's layout and in pytest-recording's.

``<cassette dir>/<module>/<Class.>test_name[id]`` here, ``<test file's dir>/cassettes/<module>/
<Class.>test_name`` there; unsafe characters are replaced, and a name too long for a file
system keeps its start and a stable hash.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

__all__ = ["cassette_name", "module_of", "present", "recording_layout_path"]

_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
#: Longest cassette file stem kept as it is; longer ones are cut and given a hash.
_LONGEST_NAME = 120
_KEPT = 100


def present(path: str | os.PathLike[str]) -> bool:
    """Whether something is at ``path``; a name too long for the file system names nothing."""
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def module_of(item: pytest.Item) -> str:
    return Path(str(item.path)).stem


#: Characters pytest-recording replaces with ``-`` in a default cassette name.
_RECORDING_UNSAFE = re.compile(r"[<>?%*:|\"'/\\]")


def recording_layout_path(item: pytest.Item) -> Path:
    """pytest-recording's default cassette of a test, without its suffix:
    ``<test file's dir>/cassettes/<module>/<Class.>test_name``."""
    from .discovery import MODULE_CASSETTES  # not at start-up: discovery imports more

    name = item.name
    cls = getattr(item, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    test_file = Path(str(item.path))
    return Path(
        test_file.parent, MODULE_CASSETTES, test_file.stem, _RECORDING_UNSAFE.sub("-", name)
    )


def cassette_name(item: pytest.Item) -> str:
    """The default cassette file stem of a test: ``Class.test_name[id]``, unsafe characters
    replaced; a name too long for a file system keeps its start and a stable hash."""
    name = item.name
    cls = getattr(item, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    name = _UNSAFE.sub("_", name)
    if len(name.encode("utf-8")) <= _LONGEST_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    kept = name.encode("utf-8")[:_KEPT].decode("utf-8", errors="ignore")
    return f"{kept}-{digest}"
