"""Candidate optimisations, applied by monkeypatching, to measure them before anyone edits code.

Nothing here changes a file of the package: :func:`apply` swaps functions in the imported
modules of this process only. Each patch is meant to behave exactly as the code it replaces
(``check_equivalence`` compares them on a cassette document). ``bench_profile.py`` measures
them in-process, and as a pytest plugin (``-p whatif`` with ``CHATRESP_WHATIF=name,name``)
they apply to a whole replay suite.

The names:

- ``gc``: pause the cyclic garbage collector while a cassette is parsed and built
  (``read_document``, ``cassette_from_document``, ``CassetteCache.load``).
- ``headers``: a ``_headers`` with a fast path for the usual ``{str: [str]}`` layout.
- ``sse``: ``looks_like_sse`` answers at once for a body that starts with ``{`` or ``[``
  instead of splitting the whole body into lines first.
- ``display``: ``display_path`` memoised per (path, working directory).
- ``validator``: the models rebuilt without the ``mode="before"`` validator every model
  carries (the required-but-nullable check, which only strict mode needs).
- ``schema``: compiled jsonschema validators cached per schema in ``checks.schema_errors``.
- ``format``: ``Recorder._format`` worked out once per recorder and from the first 64 bytes,
  instead of twice and from a full read of the file each time.
"""

from __future__ import annotations

import functools
import gc
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ALL = ("gc", "headers", "sse", "display", "validator", "schema", "format")


def _paused(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return wrapper


def fast_headers(raw: Any) -> dict[str, list[str]]:
    """``cassette.exchange._headers`` with a fast path for ``{str: [str, ...]}``."""
    out: dict[str, list[str]] = {}
    if not isinstance(raw, Mapping):
        return out
    for name, value in raw.items():
        key = name.lower() if type(name) is str else str(name).lower()
        if type(value) is list and all(type(v) is str for v in value):
            values = list(value)
        else:
            items = value if isinstance(value, list | tuple) else [value]
            values = [str(v) for v in items if v is not None]
        previous = out.get(key)
        if previous is None:
            out[key] = values
        else:
            previous.extend(values)
    return out


def _fast_sse(original: Callable[[str], bool]) -> Callable[[str], bool]:
    def looks_like_sse(text: str) -> bool:
        if text[:1] in ("{", "[") or text.lstrip()[:1] in ("{", "["):
            return False
        return original(text)

    return looks_like_sse


def _memo_display(original: Callable[[Any], str]) -> Callable[[Any], str]:
    @functools.lru_cache(maxsize=4096)
    def cached(text: str, cwd: str) -> str:
        return original(text)

    def display_path(path: str | os.PathLike[str]) -> str:
        return cached(os.fspath(path), os.getcwd())

    return display_path


def drop_before_validator() -> int:
    """Rebuild every model without the ``before`` validator; how many models were rebuilt.

    Lax validation then costs what it would if the required-but-nullable check ran only in
    strict mode. Strict mode loses the check in this process: a what-if, not a fix.
    """
    from pytest_chatresp import models

    classes = [
        value
        for value in vars(models).values()
        if isinstance(value, type) and issubclass(value, models._Model)
    ]
    for cls in classes:
        cls.__pydantic_decorators__.model_validators.pop("_require_nullable_keys", None)
    for cls in classes:  # models.py defines the leaves first
        cls.model_rebuild(force=True)
    return len(classes)


def _cached_schema_errors() -> Callable[..., list[tuple[str, str]]]:
    import jsonschema

    validators: dict[str, Any] = {}

    def schema_errors(value: Any, schema: Mapping[str, Any]) -> list[tuple[str, str]]:
        key = json.dumps(schema, sort_keys=True, default=str)
        validator = validators.get(key)
        if validator is None:
            validator_class = jsonschema.validators.validator_for(schema)
            validator = validators[key] = validator_class(schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: (len(e.absolute_path), e.path))
        out = []
        for error in errors:
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            out.append((path.lstrip("."), error.message))
        return out

    return schema_errors


def _format_once(recorder_class: Any) -> None:
    original = recorder_class._format

    def _format(self: Any) -> str:
        memo = self.__dict__.get("_whatif_format")
        if memo is None:
            real = Path.read_bytes

            def head(path: Path) -> bytes:
                if path == self.path:
                    with open(path, "rb") as handle:
                        return handle.read(64)
                return real(path)

            setattr(Path, "read_bytes", head)  # noqa: B010 - a what-if, in this process only
            try:
                memo = self.__dict__["_whatif_format"] = original(self)
            finally:
                setattr(Path, "read_bytes", real)  # noqa: B010
        return str(memo)

    recorder_class._format = _format


def _get(owner: Any, name: str) -> Any:
    """``owner.name``, for names a module uses but does not export."""
    return getattr(owner, name)


def _swap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``owner.name`` with ``make(the current value)``."""
    setattr(owner, name, make(getattr(owner, name)))


def apply(names: tuple[str, ...] | list[str]) -> list[str]:
    """Apply the named patches in this process; the names applied (unknown ones are skipped)."""
    from pytest_chatresp import checks
    from pytest_chatresp.cassette import document, exchange, loader, stream

    try:
        from pytest_chatresp import recording
    except ImportError:  # pragma: no cover - recording needs vcrpy
        recording = None  # type: ignore[assignment]
    applied = []
    for name in names:
        if name == "gc":
            _swap(document, "read_document", _paused)
            for function in ("cassette_from_document", "load_cassette"):
                _swap(loader, function, _paused)
            from pytest_chatresp.cassette.cache import CassetteCache

            _swap(CassetteCache, "load", _paused)
        elif name == "headers":
            _swap(exchange, "_headers", lambda _: fast_headers)
        elif name == "sse":
            _swap(stream, "looks_like_sse", _fast_sse)
        elif name == "display":
            for module in (document, loader):
                _swap(module, "display_path", _memo_display)
            if recording is not None and hasattr(recording, "display_path"):
                _swap(recording, "display_path", lambda _: _get(document, "display_path"))
        elif name == "validator":
            drop_before_validator()
        elif name == "schema":
            _swap(checks, "schema_errors", lambda _: _cached_schema_errors())
        elif name == "format":
            if recording is None or not hasattr(recording.Recorder, "_format"):
                continue
            _format_once(recording.Recorder)
        else:
            continue
        applied.append(name)
    return applied


def check_equivalence(document: Any) -> None:
    """Raise if a pure patch answers differently from the code it replaces on ``document``."""
    from pytest_chatresp.cassette import exchange, stream

    original_sse: Callable[[str], bool] = _get(stream, "looks_like_sse")
    original_headers: Callable[[Any], Any] = _get(exchange, "_headers")
    sse = _fast_sse(original_sse)
    for interaction in document["interactions"]:
        for part in (interaction["request"], interaction["response"]):
            if fast_headers(part.get("headers")) != original_headers(part.get("headers")):
                raise AssertionError("fast_headers differs")
        body = interaction["response"]["body"]["string"]
        if isinstance(body, str) and sse(body) != original_sse(body):
            raise AssertionError("looks_like_sse differs")


# --- as a pytest plugin: -p whatif, with CHATRESP_WHATIF=gc,headers,... -------------------------

_requested = [n for n in os.environ.get("CHATRESP_WHATIF", "").split(",") if n]
if _requested and __name__ == "whatif":
    apply(list(ALL) if _requested == ["all"] else _requested)
