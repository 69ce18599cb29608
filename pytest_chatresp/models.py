"""Pydantic models of a chat completion response, its stream chunks and API errors.

The default mode judges a response as the ``openai`` SDK's ``ChatCompletion.model_validate``
does: closed enums, required keys, lax scalar coercion, and unknown fields kept. Strict mode
(``validate_completion(..., strict=True)``) additionally rejects unknown fields and coerced
scalars, and requires the keys the contract marks required-but-nullable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from pydantic_core import PydanticCustomError

__all__ = [
    "FINISH_REASONS",
    "SERVICE_TIERS",
    "Annotation",
    "AnnotationURLCitation",
    "ChatCompletion",
    "ChatCompletionAudio",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionMessageCustomToolCall",
    "ChatCompletionMessageFunctionToolCall",
    "ChatCompletionMessageToolCall",
    "ChatCompletionResponse",
    "ChatCompletionTokenLogprob",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaAudio",
    "ChoiceDeltaFunctionCall",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionTokensDetails",
    "CompletionUsage",
    "Custom",
    "ErrorObject",
    "FinishReason",
    "Function",
    "FunctionCall",
    "Moderation",
    "ModerationError",
    "ModerationResult",
    "ModerationResults",
    "PromptTokensDetails",
    "ServiceTier",
    "Source",
    "TopLogprob",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
ServiceTier = Literal["auto", "default", "flex", "scale", "priority", "fast"]
FINISH_REASONS: tuple[str, ...] = (
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "function_call",
)
SERVICE_TIERS: tuple[str, ...] = ("auto", "default", "flex", "scale", "priority", "fast")


@dataclass(frozen=True)
class Source:
    """Where a completion was read from: the cassette file and the interaction index."""

    path: str
    index: int

    def __str__(self) -> str:
        return f"{self.path}, interaction {self.index}"


_M = TypeVar("_M", bound="_Model")


class _Model(BaseModel):
    """Base of every response model: unknown fields are kept, as the SDK keeps them."""

    model_config = ConfigDict(extra="allow", defer_build=True)


# --- logprobs ---------------------------------------------------------------------------------


class TopLogprob(_Model):
    token: str
    bytes: list[int] | None = None
    logprob: float


class ChatCompletionTokenLogprob(_Model):
    token: str
    bytes: list[int] | None = None
    logprob: float
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(_Model):
    content: list[ChatCompletionTokenLogprob] | None = None
    refusal: list[ChatCompletionTokenLogprob] | None = None


# --- usage ------------------------------------------------------------------------------------


class CompletionTokensDetails(_Model):
    accepted_prediction_tokens: int | None = None
    audio_tokens: int | None = None
    reasoning_tokens: int | None = None
    rejected_prediction_tokens: int | None = None
    text_tokens: int | None = None


class PromptTokensDetails(_Model):
    audio_tokens: int | None = None
    cache_write_tokens: int | None = None
    cached_tokens: int | None = None
    image_tokens: int | None = None
    text_tokens: int | None = None


class CompletionUsage(_Model):
    completion_tokens: int
    prompt_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


# --- message ----------------------------------------------------------------------------------


class AnnotationURLCitation(_Model):
    end_index: int
    start_index: int
    title: str
    url: str


class Annotation(_Model):
    type: Literal["url_citation"]
    url_citation: AnnotationURLCitation


class ChatCompletionAudio(_Model):
    id: str
    data: str
    expires_at: int
    transcript: str


class FunctionCall(_Model):
    """The deprecated ``message.function_call``."""

    arguments: str
    name: str


class Function(_Model):
    arguments: str
    name: str


class ChatCompletionMessageFunctionToolCall(_Model):
    id: str
    function: Function
    type: Literal["function"]


class Custom(_Model):
    input: str
    name: str


class ChatCompletionMessageCustomToolCall(_Model):
    id: str
    custom: Custom
    type: Literal["custom"]


#: The tool call union, told apart by ``type``.
ChatCompletionMessageToolCall = Annotated[
    ChatCompletionMessageFunctionToolCall | ChatCompletionMessageCustomToolCall,
    Field(discriminator="type"),
]


class ChatCompletionMessage(_Model):
    content: str | None = None
    refusal: str | None = None
    role: Literal["assistant"]
    annotations: list[Annotation] | None = None
    audio: ChatCompletionAudio | None = None
    function_call: FunctionCall | None = None
    tool_calls: list[ChatCompletionMessageToolCall] | None = None


# --- moderation -------------------------------------------------------------------------------


class ModerationResult(_Model):
    categories: dict[str, bool]
    category_applied_input_types: dict[str, list[Literal["text", "image"]]]
    category_scores: dict[str, float]
    flagged: bool
    model: str
    type: Literal["moderation_result"]


class ModerationResults(_Model):
    model: str
    results: list[ModerationResult]
    type: Literal["moderation_results"]


class ModerationError(_Model):
    code: str
    message: str
    type: Literal["error"]


_ModerationPart = Annotated[ModerationResults | ModerationError, Field(discriminator="type")]


class Moderation(_Model):
    input: _ModerationPart
    output: _ModerationPart


# --- the completion ---------------------------------------------------------------------------


class Choice(_Model):
    finish_reason: FinishReason
    index: int
    logprobs: ChoiceLogprobs | None = None
    message: ChatCompletionMessage


class ChatCompletion(_Model):
    """A chat completion response (``object: "chat.completion"``)."""

    id: str
    choices: list[Choice]
    created: int
    model: str
    object: Literal["chat.completion"]
    metadata: dict[str, str] | None = None
    moderation: Moderation | None = None
    service_tier: ServiceTier | None = None
    system_fingerprint: str | None = None
    usage: CompletionUsage | None = None

    _source: Source | None = PrivateAttr(default=None)

    @property
    def source(self) -> Source | None:
        """The cassette file and interaction this completion was read from, if any."""
        return self._source


#: The name the contract's seed uses for :class:`ChatCompletion`.
ChatCompletionResponse = ChatCompletion


# --- stream chunks ----------------------------------------------------------------------------


class ChoiceDeltaAudio(_Model):
    id: str | None = None
    data: str | None = None
    expires_at: int | None = None
    transcript: str | None = None


class ChoiceDeltaFunctionCall(_Model):
    arguments: str | None = None
    name: str | None = None


class ChoiceDeltaToolCallFunction(_Model):
    arguments: str | None = None
    name: str | None = None


class ChoiceDeltaToolCall(_Model):
    index: int
    id: str | None = None
    function: ChoiceDeltaToolCallFunction | None = None
    type: Literal["function"] | None = None


class ChoiceDelta(_Model):
    audio: ChoiceDeltaAudio | None = None
    content: str | None = None
    function_call: ChoiceDeltaFunctionCall | None = None
    refusal: str | None = None
    role: Literal["developer", "system", "user", "assistant", "tool"] | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None


class ChunkChoice(_Model):
    delta: ChoiceDelta
    index: int
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(_Model):
    """One server-sent event of a streamed chat completion (``object: "chat.completion.chunk"``)."""

    id: str
    choices: list[ChunkChoice]
    created: int
    model: str
    object: Literal["chat.completion.chunk"]
    moderation: Moderation | None = None
    obfuscation: str | None = None
    service_tier: ServiceTier | None = None
    system_fingerprint: str | None = None
    usage: CompletionUsage | None = None


# --- errors -----------------------------------------------------------------------------------


class ErrorObject(_Model):
    """The ``error`` object of an API error response; every field is read leniently."""

    message: str | None = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


# --- validation entry points --------------------------------------------------------------------

_Loc = tuple[int | str, ...]


def _missing_in_logprobs(logprobs: Any, loc: _Loc, out: list[tuple[_Loc, str]]) -> None:
    if not isinstance(logprobs, dict):
        return
    for key in ("content", "refusal"):
        if key not in logprobs:
            out.append((loc, key))
        tokens = logprobs.get(key)
        for position, token in enumerate(tokens if isinstance(tokens, list) else []):
            if not isinstance(token, dict):
                continue
            if "bytes" not in token:
                out.append(((*loc, key, position), "bytes"))
            tops = token.get("top_logprobs")
            for rank, top in enumerate(tops if isinstance(tops, list) else []):
                if isinstance(top, dict) and "bytes" not in top:
                    out.append(((*loc, key, position, "top_logprobs", rank), "bytes"))


def _missing_nullable(data: Any, *, chunk: bool) -> list[tuple[_Loc, str]]:
    """Keys the contract requires though their value may be null, missing from ``data``.

    The SDK (and so the default mode) lets them be absent; strict mode does not: ``logprobs``
    of a choice, ``content`` and ``refusal`` of a message and of logprobs, ``bytes`` of a token.
    """
    out: list[tuple[_Loc, str]] = []
    choices = data.get("choices") if isinstance(data, dict) else None
    for index, choice in enumerate(choices if isinstance(choices, list) else []):
        if not isinstance(choice, dict):
            continue
        loc: _Loc = ("choices", index)
        if not chunk:
            if "logprobs" not in choice:
                out.append((loc, "logprobs"))
            message = choice.get("message")
            if isinstance(message, dict):
                out.extend(
                    ((*loc, "message"), key) for key in REQUIRED_NULLABLE if key not in message
                )
        _missing_in_logprobs(choice.get("logprobs"), (*loc, "logprobs"), out)
    return out


#: Keys of a message that must be present, null or not, in strict mode.
REQUIRED_NULLABLE = ("content", "refusal")


def _strictly(model: type[_M], data: Any, *, chunk: bool) -> _M:
    missing = _missing_nullable(data, chunk=chunk)
    try:
        validated = model.model_validate(data, strict=True, extra="forbid")
    except ValidationError as exc:
        if not missing:
            raise
        errors = [_line_error(e) for e in exc.errors()]
    else:
        if not missing:
            return validated
        errors = []
    errors = [_missing_error(loc, key, data) for loc, key in missing] + errors
    raise ValidationError.from_exception_data(model.__name__, errors)


def _missing_error(loc: _Loc, key: str, data: Any) -> Any:
    return {
        "type": PydanticCustomError(
            "missing_nullable_key",
            "required field is missing (it may be null, but not absent)",
            {"field": key},
        ),
        "loc": loc,
        "input": data,
    }


def _line_error(error: Any) -> Any:
    line: dict[str, Any] = {"type": error["type"], "loc": error["loc"], "input": error["input"]}
    if error.get("ctx"):
        line["ctx"] = error["ctx"]
    return line


def validate_completion(data: Any, *, strict: bool = False) -> ChatCompletion:
    """Validate a response body as a :class:`ChatCompletion` (raises ``ValidationError``).

    ``data`` is the body's JSON text (``str`` or ``bytes``, validated straight from the text)
    or the body already decoded (``json.loads``).
    """
    if isinstance(data, str | bytes | bytearray):
        if not strict:
            return ChatCompletion.model_validate_json(data)
        import json

        try:
            data = json.loads(data)
        except ValueError as exc:  # as model_validate_json reports text that is not JSON
            raise ValidationError.from_exception_data(
                "ChatCompletion",
                [{"type": "json_invalid", "loc": (), "input": data, "ctx": {"error": str(exc)}}],
            ) from None
    if strict:
        return _strictly(ChatCompletion, data, chunk=False)
    return ChatCompletion.model_validate(data)


def validate_completion_json(text: str | bytes) -> ChatCompletion | None:
    """A completion validated (default mode) straight from JSON text, or ``None`` if it is not
    one: the caller then decodes the text and validates it to say why."""
    try:
        return ChatCompletion.model_validate_json(text)
    except ValidationError:
        return None


def validate_chunk(data: Any, *, strict: bool = False) -> ChatCompletionChunk:
    """Validate one decoded stream event as a :class:`ChatCompletionChunk`."""
    if strict:
        return _strictly(ChatCompletionChunk, data, chunk=True)
    return ChatCompletionChunk.model_validate(data)
