"""Pydantic models of a chat completion response, its stream chunks and API errors.

The default mode judges a response as the ``openai`` SDK's ``ChatCompletion.model_validate``
does: closed enums, required keys, lax scalar coercion, and unknown fields kept. Strict mode
(``validate_completion(..., strict=True)``) additionally rejects unknown fields and coerced
scalars, and requires the keys the contract marks required-but-nullable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)
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

#: Validation context key that turns on the required-but-nullable check (strict mode).
REQUIRE_NULLABLE_KEYS = "chatresp_require_nullable_keys"


@dataclass(frozen=True)
class Source:
    """Where a completion was read from: the cassette file and the interaction index."""

    path: str
    index: int

    def __str__(self) -> str:
        return f"{self.path}, interaction {self.index}"


class _Model(BaseModel):
    """Base of every response model: unknown fields are kept, as the SDK keeps them."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    #: Keys the contract requires to be present even though their value may be null.
    _required_nullable: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _require_nullable_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if (
            cls._required_nullable
            and isinstance(data, dict)
            and info.context
            and info.context.get(REQUIRE_NULLABLE_KEYS)
        ):
            for key in cls._required_nullable:
                if key not in data:
                    raise PydanticCustomError(
                        "missing_nullable_key",
                        "required field is missing (it may be null, but not absent)",
                        {"field": key},
                    )
        return data


# --- logprobs ---------------------------------------------------------------------------------


class TopLogprob(_Model):
    _required_nullable = ("bytes",)

    token: str
    bytes: list[int] | None = None
    logprob: float


class ChatCompletionTokenLogprob(_Model):
    _required_nullable = ("bytes",)

    token: str
    bytes: list[int] | None = None
    logprob: float
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(_Model):
    _required_nullable = ("content", "refusal")

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
    _required_nullable = ("content", "refusal")

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
    _required_nullable = ("logprobs",)

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

_STRICT_CONTEXT = {REQUIRE_NULLABLE_KEYS: True}


def validate_completion(data: Any, *, strict: bool = False) -> ChatCompletion:
    """Validate a decoded JSON body as a :class:`ChatCompletion` (raises ``ValidationError``)."""
    if strict:
        return ChatCompletion.model_validate(
            data, strict=True, extra="forbid", context=_STRICT_CONTEXT
        )
    return ChatCompletion.model_validate(data)


def validate_chunk(data: Any, *, strict: bool = False) -> ChatCompletionChunk:
    """Validate one decoded stream event as a :class:`ChatCompletionChunk`."""
    if strict:
        return ChatCompletionChunk.model_validate(
            data, strict=True, extra="forbid", context=_STRICT_CONTEXT
        )
    return ChatCompletionChunk.model_validate(data)
