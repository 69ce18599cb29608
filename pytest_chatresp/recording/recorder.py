"""One test's vcrpy cassette, made live and safe: record modes, scrubbing, matching, writing.

A :class:`Recorder` wraps one vcrpy cassette for one test. It makes the test's
:class:`~pytest_chatresp.cassette.Cassette` live (exchanges appear as the code under test makes
calls), remembers requests that the cassette cannot answer, scrubs secrets before anything is
kept, and writes the file atomically after a last scan for secrets (:mod:`.persister`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_chatresp.cassette import Cassette, Exchange, Request, build_exchange, read_document
from pytest_chatresp.cassette.readable import FORMAT_KEY
from pytest_chatresp.checks import CHECKS, Rules, may_need_schemas
from pytest_chatresp.errors import CassetteError, display_path
from pytest_chatresp.hygiene.policy import (
    DEFAULT_QUERY_PARAMETERS,
    DEFAULT_REQUEST_HEADERS,
    DEFAULT_RESPONSE_HEADERS,
    Secrets,
    scrub_uri,
)
from pytest_chatresp.provenance import METADATA_KEY, build_provenance, model_changes, owner

from . import _vcrpy
from .filters import header_filter, learned_replaced_in_request, scrub_headers
from .matching import BODY_MATCHER, DEFAULT_MATCH_ON, body, parts
from .persister import READABLE, Persister, ReadableSerializer, vcr_interactions

if TYPE_CHECKING:  # a mismatch and verify mode import theirs when they happen
    from .mismatch import Unmatched
    from .verify import Counterparts

__all__ = ["RecordSettings", "Recorder"]

_NO_CHECKS = Rules(skip_checks=frozenset(CHECKS))


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
    #: Verify mode: every request is sent live, compared with its recording, never written.
    verify: bool = False
    #: The cassette did not exist when the run started: ``once`` still records into it (as
    #: ``new_episodes`` does), so every test sharing a new cassette records.
    new_this_run: bool = False

    @property
    def replay_only(self) -> bool:
        """Whether this test may only replay: mode none, or once with its cassette there
        before the run."""
        return self.mode == "none" or (self.mode == "once" and not self.new_this_run)

    @property
    def vcr_mode(self) -> str:
        return "new_episodes" if self.mode == "once" and self.new_this_run else self.mode


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
        #: The file as vcrpy loaded it through :meth:`document`, kept for its metadata.
        self._loaded_document: Any = None
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
        self._counterparts: Counterparts | None = None

    @property
    def counterparts(self) -> Counterparts:
        """In verify mode, each live exchange and the recording it would have replayed."""
        if self._counterparts is None:
            from .verify import Counterparts

            self._counterparts = Counterparts(self)
        return self._counterparts

    def save_failed(self, error: BaseException) -> None:
        """Keep what went wrong writing the cassette, raised once vcrpy has closed it."""
        self._save_error = error

    def document(self, path: Path) -> Any:
        document = self._loaded_document = self._documents(path)
        return document

    def _serializer(self) -> str:
        """The format a save would write: a replay saves nothing (unless vcrpy's
        ``drop_unused_requests`` rewrites the file), so its file is not opened to tell."""
        settings = self.settings
        if settings.replay_only and not settings.vcr_options.get("drop_unused_requests"):
            return settings.serializer
        return self._format()

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

        The file is read again (under the lock :class:`~.persister.Persister` holds), so
        interactions another process wrote since this test started are kept. In mode ``all`` the
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
        requests, responses = vcr_interactions(document, self.path) if document else ([], [])
        disk_metadata = document.get("metadata") if isinstance(document, dict) else None
        pairs_on_disk = enumerate(zip(requests, responses, strict=True))
        kept: list[tuple[Any, Any, bool, int | None]] = [
            (rq, rs, False, i) for i, (rq, rs) in pairs_on_disk
        ]
        if self.settings.mode == "all":
            kept = [
                (rq, rs, False, i)
                for rq, rs, _, i in kept
                if owner(disk_metadata, i or 0, _vcrpy.request_as_dict(rq))
                not in (None, self.settings.test)
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
            as_dict = _vcrpy.request_as_dict(request)
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

        settings = self.settings
        options: dict[str, Any] = {
            "record_mode": settings.vcr_mode,
            "serializer": READABLE if (chosen := self._serializer()) == "readable" else chosen,
            "match_on": settings.match_on,
            "filter_headers": [
                (h, header_filter(self.secrets, "request")) for h in settings.request_headers
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
        if settings.verify:  # every request live, whatever the chatresp_vcr_config fixture says
            options["record_mode"] = "all"
        # The header filters run in replay-only mode too: what they take out is replaced in the
        # request's body and URI as well, on recording and on replay alike.
        recorder = vcr.VCR(**options)
        recorder.register_matcher(BODY_MATCHER, body)
        recorder.register_serializer(READABLE, ReadableSerializer)
        if settings.verify:
            from .verify import ReadOnlyPersister

            recorder.register_persister(ReadOnlyPersister(self))
        else:
            recorder.register_persister(Persister(self))
        return recorder

    def _scrub_request(self, request: Any) -> Any:
        # vcrpy's filter_query_parameters compares names with their case; this does not.
        request.uri, removed = scrub_uri(request.uri, self.settings.query_parameters)
        for what, value in removed:
            self.secrets.learn(value, f"value of {what}")
        learned_replaced_in_request(request, self.secrets)
        return request

    def _scrub_response(self, response: Any) -> Any:
        if isinstance(response, dict):
            scrub_headers(response.get("headers"), self.settings.response_headers, self.secrets)
        return response

    def __enter__(self) -> Recorder:
        self._context = _vcrpy.use_cassette(self._vcr(), str(self.path))
        try:
            self._vcr_cassette = self._context.__enter__()
        except CassetteError:
            self._context = None
            raise
        self._instrument(self._vcr_cassette)
        self.loaded = len(_vcrpy.stored(self._vcr_cassette))
        if self.loaded:
            document = self._loaded_document  # read by the persister as vcrpy loaded it
            self.previous_metadata = (
                document.get("metadata") if isinstance(document, dict) else None
            )
        return self

    def may_check_schemas(self) -> bool:
        """Whether an answer this test sees may be checked against a JSON Schema: the cassette
        may record, or one of its recorded requests may declare tools or a response format."""
        cassette = self._vcr_cassette
        if cassette is None or not _vcrpy.write_protected(cassette):
            return True
        return any(may_need_schemas(request.body) for request, _ in _vcrpy.stored(cassette))

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

        def replayed(index: int, request: Any, response: Any) -> None:
            self._add(index, request, response, self.replayed)

        def recorded(index: int, request: Any, response: Any) -> None:
            # Verify mode: the live exchanges are counted apart from those loaded from the file.
            position = index - self.loaded if self.settings.verify else index
            exchange = self._add(position, request, response, self.recorded)
            self._recorded_now[id(response)] = exchange
            if self.settings.verify:
                self.counterparts.add(cassette, request, exchange)

        def asking(request: Any) -> None:
            self._last = (cassette, request)

        def unanswered(request: Any) -> None:
            if _vcrpy.write_protected(cassette):
                self.unmatched.append(self._unmatched(cassette, request))

        _vcrpy.instrument(
            cassette, replayed=replayed, recorded=recorded, asking=asking, unanswered=unanswered
        )

    def _unmatched(self, cassette: Any, request: Any) -> Unmatched:
        """The request, and the recording closest to it (by how many fields differ)."""
        # By its name, as running.py imports it: one module, one ABSENT, even where pytester's
        # in-process runs import it afresh.
        from .mismatch import Unmatched
        from .mismatch import closest as closest_recording

        filtered = _vcrpy.filtered(cassette, request)
        now = parts(filtered)
        candidates = (
            (index, parts(stored), _vcrpy.played(cassette, index))
            for index, (stored, _) in enumerate(_vcrpy.stored(cassette))
        )
        closest, differences, played = closest_recording(now, candidates, self.settings.match_on)
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
        return self._request(_vcrpy.filtered(cassette, request))

    def _request(self, vcr_request: Any) -> Request:
        interaction = {
            "request": _vcrpy.request_as_dict(vcr_request),
            "response": {"status": {"code": 0}},
        }
        return build_exchange(self.shown, -1, interaction).request

    def _add(self, index: int, request: Any, response: Any, kind: list[Exchange]) -> Exchange:
        interaction = {"request": _vcrpy.request_as_dict(request), "response": response}
        exchange = build_exchange(
            self.shown,
            index,
            interaction,
            rules=self.settings.rules,
        )
        self.cassette.exchanges.append(exchange)
        kind.append(exchange)
        return exchange
