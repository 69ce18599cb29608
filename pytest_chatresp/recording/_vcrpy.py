"""Every use of vcrpy beyond its documented API, in one place.

The rest of :mod:`pytest_chatresp.recording` uses vcrpy's public API only: ``vcr.VCR`` and its
options, ``register_matcher``, ``register_serializer``, ``register_persister`` and
``use_cassette``. What vcrpy offers no public way to do is done here, each use named with what
it relies on:

- ``vcr.request.Request._from_dict`` and ``Request._to_dict``: a request to and from the dict
  vcrpy stores (the persister hands vcrpy requests it read itself);
- ``vcr.serializers.compat.convert_to_bytes``: a stored response's body as the bytes vcrpy
  replays;
- ``vcr.serialize.serialize``: a cassette written with vcrpy's own serializers (yaml, json);
- ``vcr.persisters.filesystem.CassetteNotFoundError``: what a persister raises for a cassette
  that does not exist yet, so vcrpy starts an empty one;
- ``vcr.matchers.requests_match`` and the live cassette's ``_match_on``: whether a recorded
  request matches one sent, as replay would decide (``--chatresp-verify``);
- the live cassette's ``data`` (its (request, response) pairs), ``play_counts``,
  ``write_protected`` and ``filter_request``; and its methods ``play_response``, ``append`` and
  ``can_play_response_for``, replaced at run time by :func:`instrument` so that every replayed
  or recorded exchange, and every request it cannot answer, is seen as it happens;
- ``vcr.cassette.CassetteContextDecorator`` (its ``_patch_generator``) and
  ``vcr.patch.CassettePatcherBuilder`` (a set of patchers is kept per builder class: another
  one once vcrpy is imported afresh), with the ``getter`` and ``attribute`` of the
  ``unittest.mock`` patchers it builds, and the ``_connection_pool_to_connections`` of its
  ``ConnectionRemover``: vcrpy's patches, built once and entered for each cassette
  (:func:`use_cassette`); that vcrpy patches a custom patch's attribute only where it exists;
  ``vcr.errors.CannotOverwriteExistingCassetteException.__init__`` and its ``cassette``
  keyword, given the cassette entered in place of the stand-in the patchers were built for.

Tested with vcrpy 9.4.2, the newest release below the upper bound in pyproject.toml
(``vcrpy>=9.4,<10``). Check each use here before raising that bound.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "LOWEST_VCRPY",
    "cassette_not_found",
    "filtered",
    "instrument",
    "matching",
    "played",
    "request_as_dict",
    "request_from_dict",
    "response_with_bytes",
    "serialize",
    "stored",
    "use_cassette",
    "write_protected",
]


#: The lowest vcrpy recording and replay work with (``vcrpy>=9.4,<10`` in pyproject.toml).
LOWEST_VCRPY = (9, 4)


def installed_vcrpy() -> str | None:
    """The installed vcrpy's version (from its metadata: vcrpy is not imported), or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vcrpy")
    except PackageNotFoundError:
        return None


def vcrpy_problem(installed: str | None) -> str | None:
    """Why marked tests cannot run with this vcrpy version, or None when they can."""
    import re

    lowest = ".".join(map(str, LOWEST_VCRPY))
    remedy = f"Install a supported one: pip install 'vcrpy>={lowest},<10'"
    if installed is None:
        return (
            "@pytest.mark.chat_cassette records and replays through vcrpy, which is not "
            f"installed. {remedy}"
        )
    parts = re.match(r"(\d+)(?:\.(\d+))?", installed)
    found = (int(parts.group(1)), int(parts.group(2) or 0)) if parts else (0, 0)
    if found >= LOWEST_VCRPY:
        return None
    return (
        f"@pytest.mark.chat_cassette needs vcrpy {lowest} or newer; vcrpy {installed} is "
        "installed. The openai SDK sends its requests through httpx2, whose transports vcrpy "
        f"patches from {lowest} on: with an older vcrpy the SDK's calls would reach the network "
        "unrecorded, and replay would not answer them. "
        f"{remedy}. Tests that only read cassettes (the chat_completion, chat_completions and "
        "chat_cassette fixtures without the marker), --chatresp-collect-cassettes and the "
        "chatresp command do not use vcrpy."
    )


def request_from_dict(request: dict[str, Any]) -> Any:
    """A vcrpy request from the dict a cassette stores."""
    from vcr.request import Request

    return Request._from_dict(request)


def request_as_dict(request: Any) -> dict[str, Any]:
    """The dict a cassette stores for a vcrpy request."""
    as_dict: dict[str, Any] = request._to_dict()
    return as_dict


def response_with_bytes(response: Any) -> Any:
    """A stored response with its body as the bytes vcrpy replays."""
    from vcr.serializers import compat

    return compat.convert_to_bytes(response)


def serialize(cassette_dict: Any, serializer: Any) -> str:
    """A cassette's requests and responses written by a vcrpy serializer."""
    from vcr.serialize import serialize as vcr_serialize

    return str(vcr_serialize(cassette_dict, serializer))


def cassette_not_found() -> Exception:
    """What a persister raises for a cassette not written yet: vcrpy starts an empty one."""
    from vcr.persisters.filesystem import CassetteNotFoundError

    error: Exception = CassetteNotFoundError()
    return error


def stored(cassette: Any) -> list[tuple[Any, Any]]:
    """The live cassette's (request, response) pairs, in order."""
    pairs: list[tuple[Any, Any]] = cassette.data
    return pairs


def played(cassette: Any, index: int) -> bool:
    """Whether the live cassette has replayed its interaction at ``index``."""
    return bool(cassette.play_counts[index] > 0)


def write_protected(cassette: Any) -> bool:
    """Whether the live cassette's record mode forbids recording this request."""
    return bool(cassette.write_protected)


def filtered(cassette: Any, request: Any) -> Any:
    """A request as the live cassette matches it (its filters and hooks applied)."""
    return cassette.filter_request(request) or request


def matching(cassette: Any, request: Any, count: int) -> list[int]:
    """The indices, among the first ``count`` stored interactions, whose request matches
    ``request`` (already filtered) by the cassette's ``match_on``."""
    from vcr.matchers import requests_match

    pairs = stored(cassette)[:count]
    return [
        index
        for index, (recorded, _) in enumerate(pairs)
        if requests_match(request, recorded, cassette._match_on)
    ]


def instrument(
    cassette: Any,
    *,
    replayed: Callable[[int, Any, Any], None],
    recorded: Callable[[int, Any, Any], None],
    asking: Callable[[Any], None],
    unanswered: Callable[[Any], None],
) -> None:
    """Replace the live cassette's methods so that each replay (``replayed(index, request,
    response)``), each interaction recorded (``recorded(index, request, response)``), each
    request asked about (``asking(request)``, before the cassette looks) and each one it has no
    answer for (``unanswered(request)``) is seen as it happens."""
    original_play = cassette.play_response
    original_append = cassette.append
    original_can_play = cassette.can_play_response_for

    def play_response(request: Any) -> Any:
        response = original_play(request)
        for index, (stored_request, stored_response) in enumerate(cassette.data):
            if stored_response is response:
                replayed(index, stored_request, response)
                break
        return response

    def append(request: Any, response: Any) -> None:
        before = len(cassette.data)
        original_append(request, response)
        if len(cassette.data) > before:
            stored_request, stored_response = cassette.data[-1]
            recorded(len(cassette.data) - 1, stored_request, stored_response)

    def can_play_response_for(request: Any) -> bool:
        asking(request)
        answered = bool(original_can_play(request))
        if not answered:
            unanswered(request)
        return answered

    cassette.play_response = play_response
    cassette.append = append
    cassette.can_play_response_for = can_play_response_for


# --- vcrpy's patches, built once ------------------------------------------------------------------


class _LiveCassette:
    """What vcrpy's patched classes and functions take for "the cassette": the one entered now.

    Entering a cassette, vcrpy builds its patches for that cassette: some forty patchers and a
    class made for it per stub, most of the cost of a test's replay. Built once for this
    stand-in, the same patchers are entered for each cassette, the stand-in pointing at it.
    After a cassette is left it still points at it, so a connection kept from that test
    answers as vcrpy's own would (from the cassette it was made under).
    """

    __slots__ = ("cassette",)

    def __init__(self) -> None:
        self.cassette: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cassette, name)

    # What Python looks up on the type, not the instance: vcrpy's messages use them.
    def __len__(self) -> int:
        return len(self.cassette)

    def __contains__(self, request: object) -> bool:
        return request in self.cassette

    def __str__(self) -> str:
        return str(self.cassette)


class _Neutral:
    """The cassette the patchers are built for: what the builder reads, naming no test."""

    def __init__(self, cassette: Any) -> None:
        self._path = ""
        self.skip_patchers = tuple(getattr(cassette, "skip_patchers", ()))
        self.custom_patches = tuple(getattr(cassette, "custom_patches", ()))


_MISSING = object()


class _Patches:
    """The process's one set of vcrpy patchers (per ``skip_patchers`` and ``custom_patches``).

    A set is built again when a patched attribute is no longer what it was when the set was
    built (something else patched it since): the patchers would otherwise put back a stale
    original. So it is when an attribute a custom patch names has come or gone since: vcrpy
    patches only the attributes there are when the cassette is entered. The latest
    :attr:`KEPT` sets are kept, so that a custom patch made afresh for each test does not
    keep every test's set.
    """

    KEPT = 8

    def __init__(self) -> None:
        self.live = _LiveCassette()
        self.entered = False
        #: Per key: the patchers, what they depend on, and its values when they were built.
        self._built: dict[Any, tuple[list[Any], list[tuple[Any, str]], list[Any]]] = {}

    @staticmethod
    def _key(builder: type, cassette: Any) -> Any:
        """What a set is built from: vcrpy's builder (another one once vcrpy, and with it the
        HTTP libraries it patches, is imported afresh, as pytester's in-process runs do) and
        the cassette's patch options."""
        custom = getattr(cassette, "custom_patches", ())
        return (
            builder,
            tuple(getattr(cassette, "skip_patchers", ())),
            tuple((id(obj), attribute, id(new)) for obj, attribute, new in custom),
        )

    @staticmethod
    def _targets(cassette: Any, patchers: list[Any]) -> list[tuple[Any, str]]:
        """What the set depends on: each attribute patched, and each a custom patch names."""
        patched = [(p.getter(), p.attribute) for p in patchers if hasattr(p, "getter")]
        custom = getattr(cassette, "custom_patches", ())
        return patched + [(obj, attribute) for obj, attribute, _ in custom]

    @staticmethod
    def _state(targets: list[tuple[Any, str]]) -> list[Any]:
        """Each target's value now (``_MISSING`` where there is none)."""
        return [getattr(obj, attribute, _MISSING) for obj, attribute in targets]

    @staticmethod
    def left(patchers: list[Any]) -> None:
        """After a cassette: each connection remover forgets the connections it closed, as
        a remover built for the next cassette would hold none."""
        for patcher in patchers:
            removed = getattr(patcher, "_connection_pool_to_connections", None)
            if isinstance(removed, dict):
                removed.clear()

    def _naming_the_cassette(self, init: Callable[..., None]) -> Callable[..., None]:
        """vcrpy's error for a request it may not record, given the cassette entered rather
        than the stand-in: its ``cassette`` stays the test's after the test."""
        live = self.live

        @functools.wraps(init)
        def naming_the_cassette(error: Any, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("cassette") is live:
                kwargs["cassette"] = live.cassette
            init(error, *args, **kwargs)

        return naming_the_cassette

    def for_cassette(self, cassette: Any) -> list[Any]:
        from unittest import mock

        from vcr.errors import CannotOverwriteExistingCassetteException as Refused
        from vcr.patch import CassettePatcherBuilder

        key = self._key(CassettePatcherBuilder, cassette)
        built = self._built.pop(key, None)
        if built is not None and all(
            now is then for now, then in zip(self._state(built[1]), built[2], strict=True)
        ):
            self._built[key] = built  # the most recently used, kept longest
            return built[0]
        self.live.cassette = _Neutral(cassette)
        patchers = list(CassettePatcherBuilder(self.live).build())
        patchers.append(
            mock.patch.object(Refused, "__init__", self._naming_the_cassette(Refused.__init__))
        )
        targets = self._targets(cassette, patchers)
        self._built[key] = (patchers, targets, self._state(targets))
        while len(self._built) > self.KEPT:
            del self._built[next(iter(self._built))]
        return patchers


_PATCHES = _Patches()


@functools.lru_cache(maxsize=_Patches.KEPT)
def _context_class(base: type) -> type:
    """vcrpy's cassette context (``base``, of the vcrpy imported now) patching through the
    process's one set of patchers."""

    class SharedPatchesContext(base):  # type: ignore[misc]
        def _patch_generator(self, cassette: Any) -> Iterator[Any]:
            patches = _PATCHES
            if patches.entered:  # a cassette entered inside another: vcrpy's own patches
                yield from super()._patch_generator(cassette)
                return
            patchers = patches.for_cassette(cassette)
            patches.live.cassette = cassette
            patches.entered = True
            try:
                with contextlib.ExitStack() as stack:
                    for patcher in patchers:
                        stack.enter_context(patcher)
                    yield cassette
            finally:
                patches.entered = False
                patches.left(patchers)

    return SharedPatchesContext


def use_cassette(config: Any, path: str) -> Any:
    """``config.use_cassette(path)`` (``config`` a ``vcr.VCR``), patching through patchers
    built once a process rather than once a cassette; the same behaviour, at a fraction of
    the cost."""
    from vcr.cassette import Cassette, CassetteContextDecorator

    return _context_class(CassetteContextDecorator)(
        Cassette, functools.partial(config.get_merged_config, path=path)
    )
