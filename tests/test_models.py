"""The response models: what a chat completion and a stream chunk must look like.

The default mode judges a body as ``openai.types.chat.ChatCompletion.model_validate`` does, and
most cases below are checked against the SDK as well as against the expected verdict.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import openai.types.chat as sdk
import pytest
from pydantic import ValidationError

import pytest_chatresp
from pytest_chatresp.errors import Violation, violations_from
from pytest_chatresp.models import (
    FINISH_REASONS,
    SERVICE_TIERS,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionResponse,
    validate_chunk,
    validate_completion,
)

Doc = dict[str, Any]


def completion() -> Doc:
    """A minimal completion that also carries the keys strict mode requires."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "Hello", "refusal": None},
            }
        ],
    }


def with_usage() -> Doc:
    doc = completion()
    doc["usage"] = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    return doc


def chunk() -> Doc:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": "He"}, "finish_reason": None}],
    }


def function_call(**changes: Any) -> Doc:
    call: Doc = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    call.update(changes)
    return call


def custom_call(**changes: Any) -> Doc:
    call: Doc = {"id": "call_2", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}}
    call.update(changes)
    return call


def message(doc: Doc) -> Doc:
    result: Doc = doc["choices"][0]["message"]
    return result


def choice(doc: Doc) -> Doc:
    result: Doc = doc["choices"][0]
    return result


def ours_valid(doc: Any) -> bool:
    try:
        validate_completion(copy.deepcopy(doc))
    except ValidationError:
        return False
    return True


def sdk_valid(doc: Any) -> bool:
    try:
        sdk.ChatCompletion.model_validate(copy.deepcopy(doc))
    except ValidationError:
        return False
    return True


def errors_of(doc: Any, *, strict: bool = False, chunk_doc: bool = False) -> list[Violation]:
    validate = validate_chunk if chunk_doc else validate_completion
    with pytest.raises(ValidationError) as info:
        validate(doc, strict=strict)
    return violations_from(info.value, "x.yaml", 0, strict=strict)


def texts(violations: list[Violation]) -> list[str]:
    return [f"{v.field}: {v.message}" for v in violations]


# --- the verdict, checked against the SDK -------------------------------------------------------

Change = Callable[[Doc], None]


def _set(path: str, value: Any) -> Change:
    """A change that sets ``a.b[0].c`` (dots and ``[i]``) to ``value``."""

    def change(doc: Doc) -> None:
        *parents, last = _steps(path)
        target: Any = doc
        for step in parents:
            target = target[step]
        target[last] = value

    return change


def _drop(path: str) -> Change:
    def change(doc: Doc) -> None:
        *parents, last = _steps(path)
        target: Any = doc
        for step in parents:
            target = target[step]
        del target[last]

    return change


def _without(doc: Doc, key: str) -> Doc:
    return {k: v for k, v in doc.items() if k != key}


def _steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    for part in path.replace("[", ".[").split("."):
        if part.startswith("["):
            steps.append(int(part[1:-1]))
        elif part:
            steps.append(part)
    return steps


_MSG = "choices[0].message"
_USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}

# (id, change applied to a valid completion, expected verdict)
VERDICTS: list[tuple[str, Change | None, bool]] = [
    ("minimal", None, True),
    ("no-choices-entries", _set("choices", []), True),
    *[(f"missing-{key}", _drop(key), False) for key in ("id", "choices", "created", "model")],
    ("missing-object", _drop("object"), False),
    *[
        (f"missing-choice-{key}", _drop(f"choices[0].{key}"), False)
        for key in ("finish_reason", "index", "message")
    ],
    ("missing-message-role", _drop(f"{_MSG}.role"), False),
    *[
        (f"missing-usage-{key}", _drop(f"usage.{key}"), False)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    ],
    ("usage-details-null", _set("usage.prompt_tokens_details", None), True),
    ("usage-extra-cost", _set("usage.cost", 0.0001), True),
    ("usage-count-float", _set("usage.total_tokens", 5.5), False),
    ("object-chunk", _set("object", "chat.completion.chunk"), False),
    ("object-text-completion", _set("object", "text_completion"), False),
    ("object-empty", _set("object", ""), False),
    *[(f"service_tier-{tier}", _set("service_tier", tier), True) for tier in SERVICE_TIERS],
    ("service_tier-null", _set("service_tier", None), True),
    ("service_tier-on_demand", _set("service_tier", "on_demand"), False),
    ("service_tier-standard", _set("service_tier", "standard"), False),
    ("service_tier-empty", _set("service_tier", ""), False),
    *[(f"finish-{r}", _set("choices[0].finish_reason", r), True) for r in FINISH_REASONS],
    ("finish-eos", _set("choices[0].finish_reason", "eos"), False),
    ("finish-empty", _set("choices[0].finish_reason", ""), False),
    ("finish-null", _set("choices[0].finish_reason", None), False),
    ("role-user", _set(f"{_MSG}.role", "user"), False),
    ("content-parts-list", _set(f"{_MSG}.content", [{"type": "text", "text": "x"}]), False),
    ("content-null", _set(f"{_MSG}.content", None), True),
    ("logprobs-absent-lax", _drop("choices[0].logprobs"), True),
    ("content-absent-lax", _drop(f"{_MSG}.content"), True),
    ("refusal-absent-lax", _drop(f"{_MSG}.refusal"), True),
    ("extra-top-level", _set("x_groq", {"id": "req_1"}), True),
    ("extra-message", _set(f"{_MSG}.reasoning_content", "Because."), True),
    ("extra-choice", _set("choices[0].content_filter_results", {}), True),
    ("system_fingerprint-null", _set("system_fingerprint", None), True),
    ("metadata", _set("metadata", {"k": "v"}), True),
    ("metadata-int-value", _set("metadata", {"k": 1}), False),
    ("tool-call-function", _set(f"{_MSG}.tool_calls", [function_call()]), True),
    ("tool-call-custom", _set(f"{_MSG}.tool_calls", [custom_call()]), True),
    ("tool-calls-null", _set(f"{_MSG}.tool_calls", None), True),
    ("tool-call-mcp", _set(f"{_MSG}.tool_calls", [function_call(type="mcp")]), False),
    ("tool-call-no-type", _set(f"{_MSG}.tool_calls", [_without(function_call(), "type")]), False),
    ("tool-call-no-id", _set(f"{_MSG}.tool_calls", [_without(function_call(), "id")]), False),
    (
        "tool-call-no-name",
        _set(f"{_MSG}.tool_calls", [function_call(function={"arguments": "{}"})]),
        False,
    ),
    ("custom-no-input", _set(f"{_MSG}.tool_calls", [custom_call(custom={"name": "s"})]), False),
    ("legacy-function-call", _set(f"{_MSG}.function_call", {"name": "f", "arguments": "{}"}), True),
    ("created-numeric-string", _set("created", "1700000000"), True),
    ("created-integral-float", _set("created", 1700000000.0), True),
    ("created-fraction", _set("created", 1.5), False),
    ("created-abc", _set("created", "abc"), False),
    ("created-null", _set("created", None), False),
    ("id-int", _set("id", 5), False),
    ("choices-object", _set("choices", {"0": {}}), False),
    ("index-string", _set("choices[0].index", "0"), True),
]


@pytest.mark.parametrize(
    ("change", "expected"), [(c, e) for _, c, e in VERDICTS], ids=[i for i, _, _ in VERDICTS]
)
def test_verdict_matches_expectation_and_sdk(change: Change | None, expected: bool) -> None:
    doc = with_usage()
    if change is not None:
        change(doc)
    assert ours_valid(doc) is expected
    assert sdk_valid(doc) is expected


@pytest.mark.parametrize("doc", [None, [], "chat.completion", 5])
def test_not_a_mapping_is_rejected_like_the_sdk(doc: Any) -> None:
    assert ours_valid(doc) is False
    assert sdk_valid(doc) is False


# --- the model as an object ---------------------------------------------------------------------


def test_minimal_completion_is_read_into_typed_fields() -> None:
    parsed = validate_completion(with_usage())
    assert isinstance(parsed, ChatCompletion)
    assert parsed.id == "chatcmpl-1"
    assert parsed.object == "chat.completion"
    assert parsed.created == 1700000000
    assert parsed.choices[0].message.role == "assistant"
    assert parsed.choices[0].message.content == "Hello"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None
    assert parsed.usage.total_tokens == 5
    assert parsed.service_tier is None
    assert parsed.source is None


def test_response_name_is_an_alias() -> None:
    assert ChatCompletionResponse is ChatCompletion
    assert pytest_chatresp.ChatCompletionResponse is ChatCompletion
    assert pytest_chatresp.ChatCompletionChunk is ChatCompletionChunk


def test_validation_does_not_change_the_input() -> None:
    doc = with_usage()
    doc["x_extra"] = {"nested": [1, 2]}
    before = copy.deepcopy(doc)
    validate_completion(doc)
    assert doc == before


def test_lax_mode_coerces_numeric_string_to_int() -> None:
    doc = completion()
    doc["created"] = "1700000000"
    assert validate_completion(doc).created == 1700000000


def test_extra_fields_are_kept_at_every_level() -> None:
    doc = with_usage()
    doc["x_groq"] = {"id": "req_1"}
    message(doc)["reasoning_content"] = "Because."
    choice(doc)["stop_reason"] = None
    doc["usage"]["queue_time"] = 0.01
    parsed = validate_completion(doc)
    assert parsed.model_extra == {"x_groq": {"id": "req_1"}}
    assert parsed.choices[0].message.model_extra == {"reasoning_content": "Because."}
    assert parsed.choices[0].message.reasoning_content == "Because."  # type: ignore[attr-defined]
    assert parsed.choices[0].model_extra == {"stop_reason": None}
    assert parsed.usage is not None
    assert parsed.usage.model_extra == {"queue_time": 0.01}
    # The SDK keeps them the same way.
    theirs = sdk.ChatCompletion.model_validate(doc)
    assert theirs.model_extra == parsed.model_extra
    assert theirs.choices[0].message.model_extra == parsed.choices[0].message.model_extra


def test_tool_call_union_picks_the_variant_by_type() -> None:
    doc = completion()
    message(doc)["tool_calls"] = [function_call(), custom_call()]
    calls = validate_completion(doc).choices[0].message.tool_calls
    assert calls is not None
    assert [type(c).__name__ for c in calls] == [
        "ChatCompletionMessageFunctionToolCall",
        "ChatCompletionMessageCustomToolCall",
    ]
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert calls[1].custom.input == "SELECT 1"  # type: ignore[union-attr]


@pytest.mark.parametrize("tier", ["on_demand", "standard", "provisioned", ""])
def test_service_tier_outside_the_enum_is_rejected(tier: str) -> None:
    doc = completion()
    doc["service_tier"] = tier
    with pytest.raises(ValidationError, match="service_tier"):
        validate_completion(doc)


@pytest.mark.parametrize("tier", [None, "auto", "default", "flex", "scale", "priority", "fast"])
def test_service_tier_values_of_the_contract(tier: str | None) -> None:
    doc = completion()
    doc["service_tier"] = tier
    assert validate_completion(doc).service_tier == tier


def test_finish_reason_enum_is_closed() -> None:
    assert set(FINISH_REASONS) == {
        "stop",
        "length",
        "tool_calls",
        "content_filter",
        "function_call",
    }
    doc = completion()
    choice(doc)["finish_reason"] = "eos"
    with pytest.raises(ValidationError, match=r"choices\.0\.finish_reason"):
        validate_completion(doc)


# --- strict mode ----------------------------------------------------------------------------------


def test_strict_mode_accepts_the_minimal_complete_document() -> None:
    parsed = validate_completion(completion(), strict=True)
    assert parsed.choices[0].logprobs is None
    assert parsed.choices[0].message.refusal is None


def test_strict_mode_rejects_a_coerced_string() -> None:
    doc = completion()
    doc["created"] = "1700000000"
    assert texts(errors_of(doc, strict=True)) == [
        "created: expected an integer, got string '1700000000' (strict mode does not coerce)"
    ]


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("top", "x_groq"),
        ("message", "choices[0].message.reasoning_content"),
        ("choice", "choices[0].content_filter_results"),
    ],
)
def test_strict_mode_rejects_unknown_fields(where: str, field: str) -> None:
    doc = completion()
    target = {"top": doc, "message": message(doc), "choice": choice(doc)}[where]
    target[field.rsplit(".", 1)[-1]] = "x"
    violations = errors_of(doc, strict=True)
    assert [v.field for v in violations] == [field]
    assert "unknown field" in violations[0].message


@pytest.mark.parametrize(
    ("drop", "field"),
    [
        ("choices[0].logprobs", "choices[0].logprobs"),
        (f"{_MSG}.content", "choices[0].message.content"),
        (f"{_MSG}.refusal", "choices[0].message.refusal"),
    ],
)
def test_strict_mode_requires_nullable_keys(drop: str, field: str) -> None:
    doc = completion()
    _drop(drop)(doc)
    assert validate_completion(doc).id == "chatcmpl-1"  # the default mode lets it pass
    violations = errors_of(doc, strict=True)
    assert [v.field for v in violations] == [field]
    assert "null is allowed" in violations[0].message
    with pytest.raises(ValidationError, match="required field is missing"):
        validate_completion(doc, strict=True)


def test_strict_mode_requires_bytes_key_of_token_logprobs() -> None:
    doc = completion()
    token = {"token": "He", "logprob": -0.1, "top_logprobs": []}
    choice(doc)["logprobs"] = {"content": [token], "refusal": None}
    assert validate_completion(doc).choices[0].logprobs is not None
    violations = errors_of(doc, strict=True)
    assert texts(violations) == [
        "choices[0].logprobs.content[0].bytes: "
        "required field is missing (null is allowed, absent is not)"
    ]
    token["bytes"] = None
    assert validate_completion(doc, strict=True).choices[0].logprobs is not None


def test_strict_mode_still_allows_declared_optional_fields() -> None:
    doc = with_usage()
    doc["service_tier"] = "flex"
    doc["system_fingerprint"] = None
    message(doc)["tool_calls"] = [function_call()]
    assert validate_completion(doc, strict=True).service_tier == "flex"


# --- readable messages ----------------------------------------------------------------------------


def test_message_names_field_path_and_both_values() -> None:
    doc = completion()
    message(doc)["role"] = "user"
    violations = errors_of(doc)
    assert violations == [
        Violation("x.yaml", 0, "choices[0].message.role", "expected 'assistant', got 'user'")
    ]
    assert str(violations[0]) == (
        "x.yaml, interaction 0: choices[0].message.role: expected 'assistant', got 'user'"
    )


def test_tool_call_union_tag_is_not_in_the_path() -> None:
    doc = completion()
    message(doc)["tool_calls"] = [function_call(), function_call(function={"arguments": "{}"})]
    assert texts(errors_of(doc)) == [
        "choices[0].message.tool_calls[1].function.name: required field is missing"
    ]


def test_custom_tool_call_tag_is_not_in_the_path() -> None:
    doc = completion()
    message(doc)["tool_calls"] = [custom_call(custom={"name": "sql"})]
    assert texts(errors_of(doc)) == [
        "choices[0].message.tool_calls[0].custom.input: required field is missing"
    ]


def test_unknown_tool_call_type_is_named() -> None:
    doc = completion()
    message(doc)["tool_calls"] = [function_call(type="mcp")]
    (violation,) = errors_of(doc)
    assert violation.field == "choices[0].message.tool_calls[0]"
    assert "'function'" in violation.message
    assert "'custom'" in violation.message
    assert violation.message.endswith("got 'mcp'")


def test_missing_tool_call_type_is_named() -> None:
    doc = completion()
    message(doc)["tool_calls"] = [_without(function_call(), "type")]
    assert texts(errors_of(doc)) == [
        "choices[0].message.tool_calls[0]: required field 'type' is missing"
    ]


def test_moderation_union_tag_is_not_in_the_path() -> None:
    doc = completion()
    doc["moderation"] = {
        "input": {"type": "moderation_results", "model": "omni"},
        "output": {"type": "error", "code": "c", "message": "m"},
    }
    assert texts(errors_of(doc)) == ["moderation.input.results: required field is missing"]


def test_every_missing_field_is_reported() -> None:
    assert texts(errors_of({"object": "chat.completion"})) == [
        "id: required field is missing",
        "choices: required field is missing",
        "created: required field is missing",
        "model: required field is missing",
    ]


def test_wrong_type_names_json_types() -> None:
    doc = completion()
    doc["created"] = "abc"
    doc["usage"] = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": [3]}
    assert texts(errors_of(doc)) == [
        "created: expected an integer, got string 'abc'",
        "usage.total_tokens: expected an integer, got array [3]",
    ]


def test_enum_message_lists_the_allowed_values() -> None:
    doc = completion()
    doc["service_tier"] = "on_demand"
    (violation,) = errors_of(doc)
    assert violation.field == "service_tier"
    for tier in SERVICE_TIERS:
        assert repr(tier) in violation.message
    assert violation.message.endswith("got 'on_demand'")


def test_long_values_are_shortened() -> None:
    doc = completion()
    message(doc)["content"] = ["x" * 500]
    (violation,) = errors_of(doc)
    assert violation.field == "choices[0].message.content"
    assert len(violation.message) < 120
    assert violation.message.endswith("…")


def test_prefix_and_suffix_are_applied() -> None:
    doc = chunk()
    doc["choices"][0]["finish_reason"] = "eos"
    with pytest.raises(ValidationError) as info:
        validate_chunk(doc)
    (violation,) = violations_from(info.value, "s.yaml", 3, prefix="chunk[2]", suffix=" (!)")
    assert violation.index == 3
    assert violation.field == "chunk[2].choices[0].finish_reason"
    assert violation.message.endswith("got 'eos' (!)")


# --- chunks ---------------------------------------------------------------------------------------

CHUNK_VERDICTS: list[tuple[str, Change | None, bool]] = [
    ("minimal", None, True),
    ("usage-chunk", _set("choices", []), True),
    ("usage-null", _set("usage", None), True),
    ("usage", _set("usage", _USAGE), True),
    ("obfuscation", _set("obfuscation", "abc"), True),
    ("extra-p", _set("p", "abcd"), True),
    *[(f"missing-{k}", _drop(k), False) for k in ("id", "choices", "created", "model", "object")],
    ("object-completion", _set("object", "chat.completion"), False),
    ("object-empty", _set("object", ""), False),
    ("missing-delta", _drop("choices[0].delta"), False),
    ("missing-index", _drop("choices[0].index"), False),
    ("finish-absent", _drop("choices[0].finish_reason"), True),
    ("finish-eos", _set("choices[0].finish_reason", "eos"), False),
    ("delta-role-user", _set("choices[0].delta.role", "user"), True),
    ("delta-role-function", _set("choices[0].delta.role", "function"), False),
    ("delta-empty", _set("choices[0].delta", {}), True),
    ("tool-delta", _set("choices[0].delta.tool_calls", [{"index": 0, "function": {}}]), True),
    ("tool-delta-no-index", _set("choices[0].delta.tool_calls", [{"id": "call_1"}]), False),
    (
        "tool-delta-custom",
        _set("choices[0].delta.tool_calls", [{"index": 0, "type": "custom"}]),
        False,
    ),
    ("created-string", _set("created", "1700000000"), True),
    ("service_tier-on_demand", _set("service_tier", "on_demand"), False),
    ("service_tier-priority", _set("service_tier", "priority"), True),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [(c, e) for _, c, e in CHUNK_VERDICTS],
    ids=[i for i, _, _ in CHUNK_VERDICTS],
)
def test_chunk_verdict_matches_expectation_and_sdk(change: Change | None, expected: bool) -> None:
    doc = chunk()
    if change is not None:
        change(doc)
    try:
        validate_chunk(copy.deepcopy(doc))
        ours = True
    except ValidationError:
        ours = False
    try:
        sdk.ChatCompletionChunk.model_validate(copy.deepcopy(doc))
        theirs = True
    except ValidationError:
        theirs = False
    assert ours is expected
    assert theirs is expected


def test_chunk_strict_mode() -> None:
    assert validate_chunk(chunk(), strict=True).choices[0].delta.content == "He"
    doc = chunk()
    doc["created"] = "1700000000"
    assert validate_chunk(doc).created == 1700000000
    assert texts(errors_of(doc, strict=True, chunk_doc=True)) == [
        "created: expected an integer, got string '1700000000' (strict mode does not coerce)"
    ]
    doc = chunk()
    doc["choices"][0]["delta"]["reasoning_content"] = "hm"
    assert validate_chunk(doc).choices[0].delta.model_extra == {"reasoning_content": "hm"}
    (violation,) = errors_of(doc, strict=True, chunk_doc=True)
    assert violation.field == "choices[0].delta.reasoning_content"
    assert "unknown field" in violation.message


def test_chunk_strict_mode_requires_logprobs_keys_when_logprobs_given() -> None:
    doc = chunk()
    doc["choices"][0]["logprobs"] = {"content": []}
    assert validate_chunk(doc).choices[0].logprobs is not None
    (violation,) = errors_of(doc, strict=True, chunk_doc=True)
    assert violation.field == "choices[0].logprobs.refusal"
    assert "null is allowed" in violation.message


def test_deeply_nested_value_is_described_without_crashing() -> None:
    value: Any = []
    for _ in range(5000):
        value = [value]
    doc = completion()
    doc["choices"] = [value]
    (violation,) = errors_of(doc)
    assert violation.field == "choices[0]"
    assert violation.message == "expected an object, got array <array nested too deeply to show>"


@pytest.mark.parametrize(
    "field",
    [
        "id",
        "choices",
        "created",
        "model",
        "object",
        "choices[0].finish_reason",
        "choices[0].index",
        "choices[0].message",
        "choices[0].message.role",
        "usage.prompt_tokens",
        "usage.completion_tokens",
        "usage.total_tokens",
    ],
)
def test_missing_required_field_is_named(field: str) -> None:
    doc = with_usage()
    _drop(field)(doc)
    assert texts(errors_of(doc)) == [f"{field}: required field is missing"]
