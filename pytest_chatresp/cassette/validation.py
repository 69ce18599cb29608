"""Validating a chat completion, or the chunks of a stream, into an exchange's violations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from pytest_chatresp.checks import CheckContext, Rules, run_checks
from pytest_chatresp.errors import Violation, field_path, shorten, violations_from
from pytest_chatresp.models import ChatCompletionChunk, validate_chunk, validate_completion
from pytest_chatresp.providers import (
    Allowance,
    accept_hint,
    allowance_for,
    allowance_works,
    normalized_path,
    provider_of,
    validate_allowing,
)

from .document import loads

if TYPE_CHECKING:
    from pytest_chatresp.models import ChatCompletion, Source

    from .stream import SSEEvent


class _Asked(Protocol):
    @property
    def uri(self) -> str: ...

    @property
    def json(self) -> Any: ...


class Judged(Protocol):
    """What validation reads of an exchange, and writes on it (``exchange.Exchange``)."""

    source: Source | None
    violations: list[Violation]
    events: list[SSEEvent]
    chunks: list[ChatCompletionChunk]
    _completion: ChatCompletion | None

    @property
    def request(self) -> _Asked: ...


__all__ = ["stream_error", "valid_chunks", "validate_document", "validate_stream"]


def stream_error(events: list[SSEEvent]) -> Any:
    from .stream import event_json  # streams only: a replay of completions never imports it

    for event in events:
        document = event_json(event)
        if isinstance(document, dict) and document.get("error"):
            return document
        if event.event == "error":
            return document if document is not None else event.data
    return None


def valid_chunks(documents: list[dict[str, Any]], strict: bool) -> list[ChatCompletionChunk]:
    chunks = []
    for document in documents:
        try:
            chunks.append(validate_chunk(document, strict=strict))
        except ValidationError:
            continue
    return chunks


def _chunk_field(loc: Any) -> str:
    """A chunk's field as the completion's: ``choices[0].delta.content`` → ``…message.content``.

    So that one allowance (``choices[].message.content=*``, ``service_tier=on_demand``)
    accepts a deviation whether it came in a completion or in the chunks of a stream.
    """
    return field_path(loc).replace(".delta.", ".message.", 1)


def _validate(
    exchange: Judged,
    document: Any,
    rules: Rules,
    *,
    chunk: int | None = None,
    suffix: str = "",
) -> Any:
    """Validate a completion (or, with ``chunk``, the stream event at that position).

    What the user allows is accepted; anything else is recorded as violations, with the line
    that would accept it when the provider is known and such a line would work.
    """
    assert exchange.source is not None

    def validate(data: Any) -> Any:
        if chunk is None:
            return validate_completion(data, strict=rules.strict)
        return validate_chunk(data, strict=rules.strict)

    try:
        return validate(document)
    except ValidationError as exc:
        error = exc
    errors = error.errors(include_url=False)
    field_of = field_path if chunk is None else _chunk_field
    if rules.allow:
        model = validate_allowing(document, errors, rules.allow, validate, field_of)
        if model is not None:
            return model
    provider = provider_of(exchange.request.uri, document)
    workable = (
        set()
        if provider in (None, "OpenAI")
        else {field_path(e["loc"]) for e in errors if allowance_works(document, e, validate)}
    )

    def hint(field: str, value: Any) -> str:
        if field not in workable:
            return ""
        shown = field.replace(".delta.", ".message.", 1)
        return accept_hint(provider, allowance_for(shown, value), command=rules.for_command)

    exchange.violations.extend(
        violations_from(
            error,
            exchange.source.path,
            exchange.source.index,
            strict=rules.strict,
            prefix="" if chunk is None else f"chunk[{chunk}]",
            suffix=suffix,
            hint=hint,
        )
    )
    if chunk is None:
        exchange.violations.extend(_checks_despite(exchange, document, errors, rules, validate))
    return None


def _checks_despite(
    exchange: Judged, document: Any, errors: list[Any], rules: Rules, validate: Any
) -> list[Violation]:
    """The contract checks a type error does not concern, so that one fix does not reveal the
    next finding: run on the completion with its wrong values kept as they are. A finding at
    a field that has a type error is left out (that field is reported already); a missing
    field leaves nothing to check."""
    assert exchange.source is not None
    if any(e["type"] == "missing" for e in errors):
        return []
    broken = {field_path(e["loc"]) for e in errors}
    anything = tuple(Allowance(normalized_path(field), "*") for field in sorted(broken))
    model = validate_allowing(document, errors, anything, validate, field_path)
    if model is None:
        return []
    context = CheckContext(
        exchange.source.path,
        exchange.source.index,
        exchange.request.json,
        uri=exchange.request.uri,
        allow=rules.allow,
        for_command=rules.for_command,
    )
    found = run_checks(model, context, rules.skip_checks, provisional=True)
    return [
        v
        for v in found
        if not any(v.field == f or (v.field or "").startswith((f + ".", f + "[")) for f in broken)
    ]


def validate_document(exchange: Judged, document: Any, rules: Rules) -> None:
    completion = _validate(exchange, document, rules)
    if completion is not None:
        completion._source = exchange.source
        exchange._completion = completion


def validate_stream(exchange: Judged, documents: list[dict[str, Any]], rules: Rules) -> None:
    from .stream import is_chunk, merge_chunks

    assert exchange.source is not None
    path, index = exchange.source.path, exchange.source.index
    for event in exchange.events:
        try:
            document = loads(event.data)
        except ValueError:
            exchange.violations.append(
                Violation(
                    path,
                    index,
                    f"chunk[{event.position}]",
                    f"the event data is not JSON: {shorten(event.data, 60)!r}",
                )
            )
            continue
        if not is_chunk(document):
            continue
        chunk = _validate(exchange, document, rules, chunk=event.position)
        if chunk is not None:
            exchange.chunks.append(chunk)
    if not documents:
        exchange.violations.append(
            Violation(path, index, None, "the stream holds no chat.completion.chunk event")
        )
        return
    if exchange.violations:
        return
    merged = merge_chunks(documents)
    completion = _validate(exchange, merged, rules, suffix=" (in the merged stream)")
    if completion is not None:
        completion._source = exchange.source
        exchange._completion = completion
