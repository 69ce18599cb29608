"""Recording and replay through vcrpy: record modes, scrubbing, matching and safe writing.

A :class:`Recorder` wraps one vcrpy cassette for one test. It makes the test's
:class:`~pytest_chatresp.cassette.Cassette` live (exchanges appear as the code under test makes
calls), remembers requests that the cassette cannot answer, scrubs secrets before anything is
kept, and writes the file atomically after a last scan for secrets.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import mismatch
from .cassette import (
    Cassette,
    Exchange,
    Request,
    build_exchange,
    interactions_of,
    read_document,
)
from .cassette.decoding import UnreadableBody, codings, decode
from .cassette.readable import FORMAT_KEY, decompressed
from .checks import CHECKS, Rules
from .errors import CassetteError, Violation, display_path, shorten
from .files import write_atomically
from .hygiene.policy import (
    DEFAULT_QUERY_PARAMETERS,
    DEFAULT_REQUEST_HEADERS,
    DEFAULT_RESPONSE_HEADERS,
    REDACTED,
    Secrets,
    redact_text,
    scrub_uri,
)
from .hygiene.scan import find_secrets
from .mismatch import Unmatched
from .provenance import METADATA_KEY, build_provenance, model_changes, owner

__all__ = [
    "DEFAULT_MATCH_ON",
    "DEFAULT_QUERY_PARAMETERS",
    "DEFAULT_REQUEST_HEADERS",
    "DEFAULT_RESPONSE_HEADERS",
    "RECORD_MODES",
    "RecordSettings",
    "Recorder",
    "SecretLeakError",
]

RECORD_MODES = ("none", "once", "new_episodes", "all")
SERIALIZERS = ("readable", "yaml", "json")
_READABLE = "chatresp-readable"
_NO_CHECKS = Rules(skip_checks=frozenset(CHECKS))
BODY_MATCHER = "chatresp_body"
DEFAULT_MATCH_ON: tuple[str, ...] = (
    "method",
    "scheme",
    "host",
    "port",
    "path",
    "query",
    BODY_MATCHER,
)


class SecretLeakError(CassetteError):
    """A cassette was not written because what was to be written holds a secret."""


@dataclass(frozen=True)
class RecordSettings:
    """How one test's cassette is recorded and replayed."""

    mode: str = "none"
    match_on: tuple[str, ...] = DEFAULT_MATCH_ON
    request_headers: tuple[str, ...] = DEFAULT_REQUEST_HEADERS
    response_headers: tuple[str, ...] = DEFAULT_RESPONSE_HEADERS
    query_parameters: tuple[str, ...] = DEFAULT_QUERY_PARAMETERS
    rules: Rules = field(default_factory=Rules)
    #: The test recording (its node id), named in the provenance of what it records.
    test: str = ""
    #: The format of new cassettes: readable, yaml or json.
    serializer: str = "readable"
    vcr_options: Mapping[str, Any] = field(default_factory=dict)


# --- scrubbing ----------------------------------------------------------------------------------


def _header_filter(secrets: Secrets, side: str) -> Callable[..., str]:
    """A vcrpy header filter: the value is learned (looked for elsewhere), then REDACTED."""

    def redacted(key: str, value: Any, request: Any = None) -> str:
        for item in value if isinstance(value, list | tuple) else [value]:
            secrets.learn(str(item), f"value of {side} header {str(key).lower()}")
        return REDACTED

    return redacted


def _scrub_headers(headers: Any, names: Iterable[str], secrets: Secrets) -> None:
    if not isinstance(headers, dict):
        return
    lowered = {name.lower() for name in names}
    redacted = _header_filter(secrets, "response")
    for key in list(headers):
        if str(key).lower() in lowered:
            value = headers[key]
            if isinstance(value, list):
                headers[key] = [redacted(key, item) for item in value]
            else:
                headers[key] = redacted(key, value)


def _replaced_body(body: Any, encoding: Any, secrets: Secrets) -> str | None:
    """A body with the known secrets replaced, decoded; ``None`` when none is in it."""
    if isinstance(body, bytes | bytearray):
        try:
            text = decode(bytes(body), codings(encoding)).decode("utf-8")
        except (UnreadableBody, UnicodeDecodeError):
            return None  # the last scan reports it if it holds a secret
    elif isinstance(body, str):
        text = body
    else:
        return None
    new = secrets.replace(text, learned_only=True)
    return None if new == text else new


def _header_values(headers: Any, name: str) -> list[str]:
    if not isinstance(headers, Mapping):
        return []
    return [
        str(item)
        for key, value in headers.items()
        if str(key).lower() == name
        for item in (value if isinstance(value, list | tuple) else [value])
    ]


def _learned_replaced_in_request(request: Any, secrets: Secrets) -> None:
    """A request's URI, headers and body with the values scrubbed so far replaced.

    Done as the request is scrubbed, so that a replayed request is changed the same way and
    still matches its recording.
    """
    if not secrets.learned:
        return

    def replace(text: str) -> str:
        return secrets.replace(text, learned_only=True)

    request.uri = replace(request.uri)
    request.headers = {k: replace(str(v)) for k, v in request.headers.items()}
    encoding = _header_values(request.headers, "content-encoding")
    body = _replaced_body(request.body, encoding, secrets)
    if body is not None:
        request.body = body


def _learned_replaced_in_response(response: Any, secrets: Secrets) -> Any:
    """A copy of a response with every value scrubbed elsewhere replaced wherever it is (a 401
    body that repeats the bearer token); a body that changes is stored decoded."""
    if not secrets.learned or not isinstance(response, dict):
        return response
    response = dict(response)
    headers = dict(response.get("headers") or {})
    for key, value in headers.items():
        values = value if isinstance(value, list) else [value]
        headers[key] = [secrets.replace(str(v), learned_only=True) for v in values]
    raw = response.get("body")
    string = raw.get("string") if isinstance(raw, dict) else None
    body = _replaced_body(string, _header_values(headers, "content-encoding"), secrets)
    if body is not None:
        response["body"] = {**raw, "string": body} if isinstance(raw, dict) else body
        for key in [k for k in headers if str(k).lower() == "content-encoding"]:
            del headers[key]
        for key in [k for k in headers if str(k).lower() == "content-length"]:
            headers[key] = [str(len(body.encode("utf-8")))]
    response["headers"] = headers
    return response


def _leaks(cassette_dict: Any, data: str, secrets: Secrets) -> list[tuple[str, str]]:
    """The last scan: what is about to be written, and the file's text read back."""
    leaks = find_secrets(
        {
            "requests": [r._to_dict() for r in cassette_dict["requests"]],
            "responses": cassette_dict["responses"],
        },
        secrets,
    )
    kinds = {kind for _, kind in leaks}
    try:
        written: Any = read_document("<cassette>", data.encode("utf-8"))
    except CassetteError:
        written = None
    for where, kind in find_secrets([data, written], secrets):
        if kind not in kinds:
            kinds.add(kind)
            leaks.append((f"the cassette file ({where.partition('.')[2] or 'text'})", kind))
    # A field path is made of the document's keys, and a key may be the secret itself.
    return [(redact_text(where, secrets), kind) for where, kind in leaks]


# --- matching -----------------------------------------------------------------------------------


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _body_data(request: Any) -> Any:
    body = request.body
    if not body:
        return None
    return _comparable(body if isinstance(body, bytes) else str(body).encode())


@functools.lru_cache(maxsize=512)
def _comparable(raw: bytes) -> Any:
    """A body as matching compares it; vcrpy compares the same bodies many times a request."""
    try:
        raw = decode(raw)  # a gzip-compressed request body is compared decoded
    except UnreadableBody:
        return raw
    try:
        return _without_nulls(json.loads(raw))
    except ValueError:
        return raw


def _parts(request: Any) -> mismatch.Parts:
    """A vcrpy request as the mismatch message compares it (the body parsed as matching does)."""
    return mismatch.Parts(request.method, request.uri, dict(request.headers), _body_data(request))


def body(r1: Any, r2: Any) -> None:  # the name vcrpy shows when a request does not match
    """vcrpy matcher: JSON bodies compared as data (key order, white space and nulls ignored)."""
    a, b = _body_data(r1), _body_data(r2)
    if a != b:
        raise AssertionError("the request bodies differ")


# --- what went wrong while recording ------------------------------------------------------------

_CONNECTION_ERRORS = frozenset({"ConnectError", "ConnectTimeout", "APIConnectionError"})


def _chain_of(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def connection_failure(exc: BaseException) -> list[str] | None:
    """``module.Type: message`` for each exception of a chain caused by a failed connection
    (the client's own, then its causes), or None when it was something else."""
    chain = _chain_of(exc)
    if not any(
        isinstance(e, ConnectionError) or type(e).__name__ in _CONNECTION_ERRORS for e in chain
    ):
        return None
    shown = []
    for e in chain if len(chain) <= 4 else [*chain[:3], chain[-1]]:  # the root cause last
        module = type(e).__module__.split(".")[0]
        name = type(e).__name__ if module == "builtins" else f"{module}.{type(e).__name__}"
        shown.append(shorten(f"{name}: {e}", 160))
    return shown


def missing_credentials(exc: BaseException) -> str | None:
    """The variable an SDK wanted, when ``exc`` is its "Missing credentials" error."""
    text = str(exc)
    if not type(exc).__module__.startswith("openai") or "Missing credentials" not in text:
        return None
    return "AZURE_OPENAI_API_KEY" if "AZURE_OPENAI_API_KEY" in text else "OPENAI_API_KEY"


# --- the recorder -------------------------------------------------------------------------------


class _Persister:
    """vcrpy persister: loads through our reader, writes atomically after a secret scan."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def load_cassette(self, cassette_path: str, serializer: Any) -> Any:
        from vcr.persisters.filesystem import CassetteNotFoundError

        path = Path(cassette_path)
        if not os.path.lexists(path) or (path.is_file() and path.stat().st_size == 0):
            raise CassetteNotFoundError()
        document = self._recorder.document(path)  # refuses what is not a regular file
        requests, responses = _vcr_interactions(document, path)
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
            self._recorder._save_error = exc

    def _save(self, cassette_path: str, cassette_dict: Any, serializer: Any) -> None:
        from vcr.serialize import serialize

        path = Path(cassette_path)
        shown = display_path(path)
        cassette_dict = self._recorder.merged(cassette_dict)
        secrets = self._recorder.secrets
        responses = [_learned_replaced_in_response(r, secrets) for r in cassette_dict["responses"]]
        cassette_dict = {**cassette_dict, "responses": responses}
        if getattr(serializer, "__name__", "").endswith("jsonserializer"):
            # JSON holds no bytes: store compressed bodies decoded, as the readable format does.
            responses = [decompressed(response) for response in cassette_dict["responses"]]
            cassette_dict = {**cassette_dict, "responses": responses}
        try:
            data = serialize(cassette_dict, serializer)
        except (TypeError, ValueError) as exc:
            raise CassetteError.single(
                shown,
                f"not written: the serializer cannot store it ({shorten(str(exc), 120)}); "
                "chatresp_serializer = readable or yaml can",
            ) from None
        leaks = _leaks(cassette_dict, data, self._recorder.secrets)
        if leaks:
            described = sorted({f"{kind} in {where}" for where, kind in leaks})
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


def _vcr_interactions(document: Any, path: Path) -> tuple[list[Any], list[Any]]:
    """A document's interactions as vcrpy holds them: its requests and its responses."""
    from vcr.request import Request as VcrRequest
    from vcr.serializers import compat

    interactions = interactions_of(document, display_path(path))
    requests = [VcrRequest._from_dict(i["request"]) for i in interactions]
    responses = [compat.convert_to_bytes(i["response"]) for i in interactions]
    return requests, responses


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (where it can be had): one writer at a time.

    Test processes (pytest-xdist workers) recording into the same cassette each read the file
    again under the lock and add what they recorded, so none loses what another wrote. The
    lock is on the directory itself (or the nearest one that exists), so no lock file is left
    beside the cassettes.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    while not directory.is_dir() and directory.parent != directory:
        directory = directory.parent  # not made yet: whoever makes it holds its parent
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # the write reports why the directory is unusable
        yield
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _chain(first: Any, last: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One vcrpy hook: ``first`` (a hook or a list of hooks, as vcrpy takes) then ``last``."""
    hooks = [*(first if isinstance(first, list | tuple) else [first]), last]

    def chained(value: Any) -> Any:
        for hook in hooks:
            if value is None:
                return None
            value = hook(value)
        return value

    return chained


class Recorder:
    """One test's vcrpy cassette, made live and safe.

    Use as a context manager around the code under test. ``cassette`` grows as requests are
    replayed or recorded; ``unmatched`` lists the requests the cassette could not answer in a
    mode that may not record them.
    """

    def __init__(
        self,
        path: Path,
        settings: RecordSettings,
        documents: Callable[[Path], Any] | None = None,
    ) -> None:
        self.path = path
        #: The path as messages show it, resolved here: replayed responses are read inside
        #: the code under test, perhaps in a running event loop, where no call may block.
        self.shown = display_path(path)
        self.settings = settings
        self.cassette = Cassette(path, [])
        self.unmatched: list[Unmatched] = []
        #: The exchanges replayed from the file, and those recorded by this test, in order.
        self.replayed: list[Exchange] = []
        self.recorded: list[Exchange] = []
        self._documents = documents or read_document
        #: The secret values known for this cassette: the environment's, and those scrubbed.
        self.secrets = Secrets.from_environment()
        self._context: Any = None
        self._vcr_cassette: Any = None
        self._save_error: BaseException | None = None
        #: Set when what was recorded must not be written (the recording failed).
        self.discard = False
        self._last: tuple[Any, Any] | None = None  # the last request sent, and its cassette
        #: What this test recorded, by the identity of the stored response.
        self._recorded_now: dict[int, Exchange] = {}
        #: Metadata of the file as it was before this test, and what changed on re-recording.
        self.previous_metadata: Any = None
        self.model_changes: list[str] = []
        #: Interactions the file held when the test started, and the indices replayed.
        self.loaded = 0

    def document(self, path: Path) -> Any:
        return self._documents(path)

    def _format(self) -> str:
        """The serializer: the file's own, unless it is new or recorded again with ``all``."""
        if self.settings.mode == "all" or not self.path.is_file():
            return self.settings.serializer
        try:
            with self.path.open("rb") as handle:
                head = handle.read(256).lstrip()
        except OSError:
            return self.settings.serializer
        if head.startswith(FORMAT_KEY.encode()):  # the readable serializer writes it first
            return "readable"
        return "json" if head.startswith(b"{") else "yaml"

    def merged(self, cassette_dict: Any) -> dict[str, Any]:
        """What to write: the file as it is now, and what this test recorded, with provenance.

        The file is read again (under the lock :class:`_Persister` holds), so interactions
        another process wrote since this test started are kept. In mode ``all`` the
        interactions this test recorded before, and those no test of ours recorded, are
        dropped: the cassette then holds what this test recorded now, beside what other tests
        recorded into it.
        """
        pairs = list(zip(cassette_dict["requests"], cassette_dict["responses"], strict=False))
        new = [(rq, rs) for rq, rs in pairs if id(rs) in self._recorded_now]
        if not new and self.recorded:  # a before_save_interaction hook copied them
            new = pairs[-len(self.recorded) :]
        document: Any = None
        if self.path.is_file() and self.path.stat().st_size:
            document = read_document(self.path)
        requests, responses = _vcr_interactions(document, self.path) if document else ([], [])
        disk_metadata = document.get("metadata") if isinstance(document, dict) else None
        pairs_on_disk = enumerate(zip(requests, responses, strict=True))
        kept: list[tuple[Any, Any, bool, int | None]] = [
            (rq, rs, False, i) for i, (rq, rs) in pairs_on_disk
        ]
        if self.settings.mode == "all":
            kept = [
                (rq, rs, False, i)
                for rq, rs, _, i in kept
                if owner(disk_metadata, i or 0, rq._to_dict()) not in (None, self.settings.test)
            ]
        interactions = kept + [(rq, rs, True, None) for rq, rs in new]  # new ones last
        metadata = dict(disk_metadata or cassette_dict.get("metadata") or {})
        metadata[METADATA_KEY] = self.provenance(interactions, disk_metadata)
        return {
            "requests": [rq for rq, _, _, _ in interactions],
            "responses": [rs for _, rs, _, _ in interactions],
            "metadata": metadata,
        }

    def provenance(
        self, interactions: list[tuple[Any, Any, bool, int | None]], disk_metadata: Any
    ) -> dict[str, Any]:
        """The ``metadata.chatresp`` for the interactions about to be written: (request,
        response, recorded now, index in the file on disk) each."""
        shown = display_path(self.path)
        described = []
        for index, (request, response, recorded_now, was) in enumerate(interactions):
            as_dict = request._to_dict()
            exchange = self._recorded_now.get(id(response))  # read when it was recorded
            if exchange is None:
                try:
                    exchange = build_exchange(
                        shown, index, {"request": as_dict, "response": response}, rules=_NO_CHECKS
                    )
                except CassetteError:
                    exchange = None
            described.append((as_dict, exchange, recorded_now, was))
        metadata = build_provenance(described, disk_metadata, self.settings.test or None)
        self.model_changes = model_changes(self.previous_metadata, metadata)
        return metadata

    def _vcr(self) -> Any:
        import vcr

        from .cassette import readable

        settings = self.settings
        options: dict[str, Any] = {
            "record_mode": settings.mode,
            "serializer": _READABLE if (chosen := self._format()) == "readable" else chosen,
            "match_on": settings.match_on,
            "filter_headers": [
                (h, _header_filter(self.secrets, "request")) for h in settings.request_headers
            ],
            # Query parameters are scrubbed by _scrub_request, which ignores their case.
            "filter_query_parameters": [],
            "before_record_request": self._scrub_request,
            "before_record_response": self._scrub_response,
            "decode_compressed_response": False,
        }
        user = dict(settings.vcr_options)
        for hook in ("before_record_request", "before_record_response"):
            if user.get(hook) is not None:
                # The user's hooks run first, so that what they leave is scrubbed too.
                options[hook] = _chain(user.pop(hook), options[hook])
        for key in ("filter_headers", "filter_query_parameters"):
            if key in user:
                options[key] = [*options[key], *user.pop(key)]
        options.update(user)
        # The header filters run in replay-only mode too: what they take out is replaced in the
        # request's body and URI as well, on recording and on replay alike.
        recorder = vcr.VCR(**options)
        recorder.register_matcher(BODY_MATCHER, body)
        recorder.register_serializer(_READABLE, readable)
        recorder.register_persister(_Persister(self))
        return recorder

    def _scrub_request(self, request: Any) -> Any:
        # vcrpy's filter_query_parameters compares names with their case; this does not.
        request.uri, removed = scrub_uri(request.uri, self.settings.query_parameters)
        for what, value in removed:
            self.secrets.learn(value, f"value of {what}")
        _learned_replaced_in_request(request, self.secrets)
        return request

    def _scrub_response(self, response: Any) -> Any:
        if isinstance(response, dict):
            _scrub_headers(response.get("headers"), self.settings.response_headers, self.secrets)
        return response

    def __enter__(self) -> Recorder:
        self._context = self._vcr().use_cassette(str(self.path))
        try:
            self._vcr_cassette = self._context.__enter__()
        except CassetteError:
            self._context = None
            raise
        self._instrument(self._vcr_cassette)
        self.loaded = len(self._vcr_cassette.data)
        if self.loaded:
            document = self.document(self.path)
            self.previous_metadata = (
                document.get("metadata") if isinstance(document, dict) else None
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        context, self._context = self._context, None
        if context is None:
            return
        self._save_error = None
        context.__exit__(*exc_info)
        error, self._save_error = self._save_error, None
        if error is not None:
            raise error

    def _instrument(self, cassette: Any) -> None:
        """Wrap the vcrpy cassette so that every replayed or recorded exchange is seen."""
        original_play = cassette.play_response
        original_append = cassette.append
        original_can_play = cassette.can_play_response_for

        def play_response(request: Any) -> Any:
            response = original_play(request)
            for index, (_, stored) in enumerate(cassette.data):
                if stored is response:
                    self._add(index, cassette.data[index][0], response, self.replayed)
                    break
            return response

        def append(request: Any, response: Any) -> None:
            before = len(cassette.data)
            original_append(request, response)
            if len(cassette.data) > before:
                stored_request, stored_response = cassette.data[-1]
                index = len(cassette.data) - 1
                exchange = self._add(index, stored_request, stored_response, self.recorded)
                self._recorded_now[id(stored_response)] = exchange

        def can_play_response_for(request: Any) -> bool:
            self._last = (cassette, request)
            answer = bool(original_can_play(request))
            if not answer and cassette.write_protected:
                self.unmatched.append(self._unmatched(cassette, request))
            return answer

        cassette.play_response = play_response
        cassette.append = append
        cassette.can_play_response_for = can_play_response_for

    def _unmatched(self, cassette: Any, request: Any) -> Unmatched:
        """The request, and the recording closest to it (by how many fields differ)."""
        filtered = cassette.filter_request(request) or request
        now = _parts(filtered)
        candidates = (
            (index, _parts(stored), cassette.play_counts[index] > 0)
            for index, (stored, _) in enumerate(cassette.data)
        )
        closest, differences, played = mismatch.closest(now, candidates, self.settings.match_on)
        identity = json.dumps([now.method, now.uri, repr(now.body)])
        for earlier in self.unmatched:
            if earlier.identity == identity:  # the client sent it again (a retry)
                self.unmatched.remove(earlier)
                return replace(earlier, count=earlier.count + 1)
        return Unmatched(
            self._request(filtered),
            closest,
            tuple(differences),
            already_played=played and not differences,
            identity=identity,
        )

    @property
    def last_request(self) -> Request | None:
        """The last request the code under test sent (scrubbed as it would be recorded)."""
        if self._last is None:
            return None
        cassette, request = self._last
        return self._request(cassette.filter_request(request) or request)

    def _request(self, vcr_request: Any) -> Request:
        interaction = {"request": vcr_request._to_dict(), "response": {"status": {"code": 0}}}
        return build_exchange(self.shown, -1, interaction).request

    def _add(self, index: int, request: Any, response: Any, kind: list[Exchange]) -> Exchange:
        interaction = {"request": request._to_dict(), "response": response}
        exchange = build_exchange(
            self.shown,
            index,
            interaction,
            rules=self.settings.rules,
        )
        self.cassette.exchanges.append(exchange)
        kind.append(exchange)
        return exchange
