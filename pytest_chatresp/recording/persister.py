"""The persister vcrpy reads and writes cassettes through, and the readable serializer.

Reading goes through the package's own reader (which refuses what is not a regular cassette
file); writing takes an exclusive lock, merges what other processes wrote meanwhile, scans for
secrets and writes the file atomically.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_chatresp.cassette import interactions_of, read_document, readable
from pytest_chatresp.cassette.readable import decompressed
from pytest_chatresp.errors import CassetteError, Violation, display_path, shorten
from pytest_chatresp.files import write_atomically

from . import _vcrpy
from .filters import leaks, learned_replaced_in_response

if TYPE_CHECKING:
    from pytest_chatresp.hygiene.policy import Secrets

__all__ = ["READABLE", "Persister", "ReadableSerializer", "SecretLeakError", "vcr_interactions"]

#: The name the readable serializer is registered under with vcrpy.
READABLE = "chatresp-readable"


class SecretLeakError(CassetteError):
    """A cassette was not written because what was to be written holds a secret."""


def _unshared(value: Any) -> Any:
    """``value`` with each dict and list copied, so that none appears twice."""
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value


class ReadableSerializer:
    """The readable format (:mod:`pytest_chatresp.cassette.readable`) as a vcrpy serializer."""

    @staticmethod
    def serialize(cassette_dict: dict[str, Any]) -> str:
        return readable.serialize(cassette_dict)

    @staticmethod
    def deserialize(cassette_string: str) -> Any:
        return read_document("<cassette>", cassette_string.encode("utf-8"))


class Owner(Protocol):
    """What a persister asks of the recorder it reads and writes for (``recorder.Recorder``)."""

    discard: bool
    secrets: Secrets

    def document(self, path: Path) -> Any: ...

    def save_failed(self, error: BaseException) -> None: ...

    def merged(self, cassette_dict: Any) -> dict[str, Any]: ...


class Persister:
    """vcrpy persister: loads through our reader, writes atomically after a secret scan."""

    def __init__(self, recorder: Owner) -> None:
        self._recorder = recorder

    def load_cassette(self, cassette_path: str, serializer: Any) -> Any:
        path = Path(cassette_path)
        if not os.path.lexists(path) or (path.is_file() and path.stat().st_size == 0):
            raise _vcrpy.cassette_not_found()
        document = self._recorder.document(path)  # refuses what is not a regular file
        requests, responses = vcr_interactions(document, path)
        if document.get("metadata"):
            return requests, responses, document["metadata"]
        return requests, responses

    def save_cassette(self, cassette_path: str, cassette_dict: Any, serializer: Any) -> None:
        # vcrpy undoes its patches only after a save that returns: an error raised from here
        # would leave HTTP clients patched, answering later tests from this cassette, until the
        # garbage collector happens to break vcrpy's reference cycle. Recorder.__exit__ raises
        # it once the cassette is closed.
        if self._recorder.discard:
            return
        try:
            with _locked(Path(cassette_path).parent):
                self._save(cassette_path, cassette_dict, serializer)
        except BaseException as exc:
            self._recorder.save_failed(exc)

    def _save(self, cassette_path: str, cassette_dict: Any, serializer: Any) -> None:
        path = Path(cassette_path)
        shown = display_path(path)
        cassette_dict = self._recorder.merged(cassette_dict)
        secrets = self._recorder.secrets
        responses = [learned_replaced_in_response(r, secrets) for r in cassette_dict["responses"]]
        # One object in two places would be written as a YAML anchor and alias (vcrpy's yaml).
        cassette_dict = {**cassette_dict, "responses": responses}
        if "metadata" in cassette_dict:
            cassette_dict["metadata"] = _unshared(cassette_dict["metadata"])
        if getattr(serializer, "__name__", "").endswith("jsonserializer"):
            # JSON holds no bytes: store compressed bodies decoded, as the readable format does.
            responses = [decompressed(response) for response in cassette_dict["responses"]]
            cassette_dict = {**cassette_dict, "responses": responses}
        try:
            data = _vcrpy.serialize(cassette_dict, serializer)
        except (TypeError, ValueError) as exc:
            raise CassetteError.single(
                shown,
                f"not written: the serializer cannot store it ({shorten(str(exc), 120)}); "
                "chatresp_serializer = readable or yaml can",
            ) from None
        found = leaks(cassette_dict, data, self._recorder.secrets)
        if found:
            described = sorted({f"{kind} in {where}" for where, kind in found})
            raise SecretLeakError(
                [
                    Violation(
                        shown,
                        None,
                        None,
                        "not written, because it would hold a secret: "
                        + "; ".join(described)
                        + ". Scrub it with ini chatresp_filter_request_headers, "
                        "chatresp_filter_response_headers or chatresp_filter_query_parameters, "
                        "or in the chatresp_vcr_config fixture (before_record_request/response).",
                    )
                ]
            )
        write_atomically(path, data)


def vcr_interactions(document: Any, path: Path) -> tuple[list[Any], list[Any]]:
    """A document's interactions as vcrpy holds them: its requests and its responses."""
    interactions = interactions_of(document, display_path(path))
    requests = [_vcrpy.request_from_dict(i["request"]) for i in interactions]
    responses = [_vcrpy.response_with_bytes(i["response"]) for i in interactions]
    return requests, responses


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (where it can be had): one writer at a time.

    Test processes (pytest-xdist workers) recording into the same cassette each read the file
    again under the lock and add what they recorded, so none loses what another wrote. The
    lock is on the directory itself, so no lock file is left beside the cassettes. A directory
    not made yet is made under the lock of the nearest one that exists, then locked too: a
    writer that finds it made locks it, and so waits. One left empty (nothing was written) is
    removed again.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    missing: list[Path] = []
    existing = directory
    while not existing.is_dir() and existing.parent != existing:
        missing.append(existing)
        existing = existing.parent
    held: list[int] = []
    made: list[Path] = []
    try:
        for target in [existing, *([directory] if missing else [])]:
            if target is directory and missing:
                try:
                    for parent in reversed(missing):
                        if not parent.is_dir():  # made meanwhile by a writer before this one
                            parent.mkdir()
                            made.append(parent)
                except OSError:  # the write reports why the directory is unusable
                    break
            try:
                descriptor = os.open(target, os.O_RDONLY)
            except OSError:  # the write reports why the directory is unusable
                break
            held.append(descriptor)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        for parent in reversed(made):
            with contextlib.suppress(OSError):  # not empty: the cassette was written
                parent.rmdir()
        for descriptor in reversed(held):
            os.close(descriptor)
