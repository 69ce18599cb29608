"""Server-sent event parsing and the merge of chat completion chunks into one completion.

The merge follows the contract's reference rules, not the SDK's quirks: choices are grouped
by their ``index``, text fragments are concatenated, tool call fragments are keyed by their
own ``index``, ``usage`` comes from the usage chunk, ``obfuscation`` is dropped.

Nulls are kept as the ``openai`` SDK's stream accumulation keeps them: a value every chunk sent
as ``null`` (a choice's ``finish_reason``, a tool call's ``arguments``) is null in the merged
completion, not missing and not ``''``; a key no chunk sent is missing. Validation then reports
the real cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .document import loads

__all__ = ["SSEEvent", "event_json", "is_chunk", "looks_like_sse", "merge_chunks", "parse_sse"]

_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_CHUNK_OBJECT = "chat.completion.chunk"
# Top-level keys of a chunk that the merge handles itself.
_TOP_HANDLED = frozenset(
    {"id", "created", "model", "object", "choices", "usage", "obfuscation", "moderation"}
)
_DELTA_HANDLED = frozenset({"role", "content", "refusal", "tool_calls", "function_call", "audio"})
_CHOICE_HANDLED = frozenset({"index", "delta", "finish_reason", "logprobs"})


@dataclass
class SSEEvent:
    """One dispatched event: its ``event:`` name (or None) and its joined ``data:`` text."""

    position: int
    event: str | None
    data: str


def event_json(event: SSEEvent) -> Any:
    """An event's data as JSON; ``None`` when it is not JSON (``[DONE]``, text)."""
    try:
        return loads(event.data)
    except ValueError:
        return None


def looks_like_sse(text: str) -> bool:
    """Whether a body reads as a server-sent event stream rather than a JSON document."""
    if text[:1] in ("{", "["):  # a JSON document: no need to split it into lines
        return False
    for line in _LINE_SPLIT.split(text):
        stripped = line.strip()
        if not stripped or stripped.startswith(":"):
            continue
        return stripped.startswith(("data:", "event:", "id:", "retry:"))
    return False


def parse_sse(text: str) -> tuple[list[SSEEvent], bool]:
    """Split an SSE body into events; also say whether the stream ended with ``[DONE]``.

    Follows the SDK's decoder: CR, LF and CRLF line ends; ``:`` comment lines ignored; one
    leading space stripped from a value; several ``data:`` lines joined with a newline; a
    blank line dispatches. Events after ``[DONE]`` are ignored.
    """
    events: list[SSEEvent] = []
    data_lines: list[str] = []
    event_name: str | None = None

    def dispatch() -> bool:
        nonlocal event_name
        if not data_lines:
            event_name = None
            return False
        data = "\n".join(data_lines)
        data_lines.clear()
        if data.startswith("[DONE]"):
            return True
        events.append(SSEEvent(len(events), event_name, data))
        event_name = None
        return False

    for line in _LINE_SPLIT.split(text):
        if not line:
            if dispatch():
                return events, True
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data_lines.append(value)
        elif name == "event":
            event_name = value
    return events, dispatch()


@dataclass
class _ToolCall:
    fields: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    #: Some fragment sent ``arguments`` (perhaps only as null).
    arguments_sent: bool = False
    function_extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Choice:
    index: int
    message: dict[str, Any] = field(default_factory=dict)
    content: list[str] | None = None
    refusal: list[str] | None = None
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    function_call: dict[str, str] | None = None
    audio: dict[str, Any] | None = None
    finish_reason: Any = None
    #: Some chunk sent ``finish_reason`` (perhaps only as null).
    finish_reason_sent: bool = False
    logprobs_seen: bool = False
    logprob_content: list[Any] | None = None
    logprob_refusal: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _append_text(target: list[str] | None, value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [*(target or []), value]
    return target


def _merge_extra(target: dict[str, Any], key: str, value: Any) -> None:
    """Keys the contract does not name: strings are concatenated, anything else replaced."""
    if value is None:
        return
    previous = target.get(key)
    if isinstance(previous, str) and isinstance(value, str):
        target[key] = previous + value
    else:
        target[key] = value


def _merge_tool_calls(choice: _Choice, fragments: Any) -> None:
    if not isinstance(fragments, list):
        return
    for position, fragment in enumerate(fragments):
        if not isinstance(fragment, dict):
            continue
        key = fragment.get("index")
        if not isinstance(key, int):
            key = position
        call = choice.tool_calls.setdefault(key, _ToolCall())
        for name, value in fragment.items():
            if name in ("index", "function") or value is None:
                continue
            call.fields.setdefault(name, value)
        function = fragment.get("function")
        if isinstance(function, dict):
            name_value = function.get("name")
            if isinstance(name_value, str) and call.name is None:
                call.name = name_value
            arguments = function.get("arguments")
            call.arguments_sent = call.arguments_sent or "arguments" in function
            if isinstance(arguments, str):
                call.arguments.append(arguments)
            for name, value in function.items():
                if name not in ("name", "arguments"):
                    _merge_extra(call.function_extra, name, value)


def _keep_latest(target: dict[str, Any], key: str, value: Any) -> None:
    """Top-level and choice-level keys the contract does not name: metadata that chunks repeat
    (OpenRouter's ``provider``, ``native_finish_reason``), so the last non-null value wins."""
    if value is not None:
        target[key] = value


def _merge_delta(choice: _Choice, delta: Any) -> None:
    if not isinstance(delta, dict):
        return
    message = choice.message
    role = delta.get("role")
    if role is not None and "role" not in message:
        message["role"] = role
    choice.content = _append_text(choice.content, delta.get("content"))
    choice.refusal = _append_text(choice.refusal, delta.get("refusal"))
    _merge_tool_calls(choice, delta.get("tool_calls"))
    function_call = delta.get("function_call")
    if isinstance(function_call, dict):
        merged = choice.function_call or {}
        for key in ("name", "arguments"):
            piece = function_call.get(key)
            if isinstance(piece, str):
                merged[key] = merged.get(key, "") + piece
        choice.function_call = merged
    audio = delta.get("audio")
    if isinstance(audio, dict):
        merged_audio = choice.audio or {}
        for key, value in audio.items():
            if key in ("data", "transcript") and isinstance(value, str):
                merged_audio[key] = merged_audio.get(key, "") + value
            elif value is not None:
                merged_audio[key] = value
        choice.audio = merged_audio
    for key, value in delta.items():
        if key not in _DELTA_HANDLED:
            _merge_extra(message, key, value)


def _merge_logprobs(choice: _Choice, logprobs: Any) -> None:
    if not isinstance(logprobs, dict):
        return
    choice.logprobs_seen = True
    content = logprobs.get("content")
    if isinstance(content, list):
        choice.logprob_content = [*(choice.logprob_content or []), *content]
    refusal = logprobs.get("refusal")
    if isinstance(refusal, list):
        choice.logprob_refusal = [*(choice.logprob_refusal or []), *refusal]


def _finish_choice(choice: _Choice) -> dict[str, Any]:
    message = dict(choice.message)
    message["content"] = None if choice.content is None else "".join(choice.content)
    message["refusal"] = None if choice.refusal is None else "".join(choice.refusal)
    if choice.tool_calls:
        calls = []
        for _, call in sorted(choice.tool_calls.items()):
            built = dict(call.fields)
            built.setdefault("type", "function")
            function: dict[str, Any] = dict(call.function_extra)
            if call.name is not None:
                function["name"] = call.name
            if call.arguments:
                function["arguments"] = "".join(call.arguments)
            elif call.arguments_sent:
                function["arguments"] = None  # sent as null only: null, as the SDK keeps it
            built["function"] = function
            calls.append(built)
        message["tool_calls"] = calls
    if choice.function_call is not None:
        message["function_call"] = choice.function_call
    if choice.audio is not None:
        message["audio"] = choice.audio
    logprobs = (
        {"content": choice.logprob_content, "refusal": choice.logprob_refusal}
        if choice.logprobs_seen
        else None
    )
    merged: dict[str, Any] = {
        "index": choice.index,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": choice.finish_reason,
    }
    if choice.finish_reason is None and not choice.finish_reason_sent:
        del merged["finish_reason"]  # no chunk sent one: missing; sent as null: null
    merged.update(choice.extra)
    return merged


def merge_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge decoded chunks (in stream order) into one ``chat.completion`` document.

    Never raises: malformed pieces are skipped, and the result is validated by the caller.
    A choice that never received a ``finish_reason`` has none, so validation reports it.
    """
    top: dict[str, Any] = {}
    choices: dict[int, _Choice] = {}
    usage: Any = None
    usage_from_usage_chunk = False
    moderation: Any = None
    for chunk in chunks:
        for key in ("id", "created", "model"):
            if key not in top and key in chunk:
                top[key] = chunk[key]
        for key, value in chunk.items():
            if key in ("service_tier", "system_fingerprint"):
                if value is not None or key not in top:
                    top[key] = value
            elif key not in _TOP_HANDLED:
                _keep_latest(top, key, value)
        if chunk.get("moderation") is not None:
            moderation = chunk["moderation"]
        chunk_choices = chunk.get("choices")
        chunk_usage = chunk.get("usage")
        if chunk_usage is not None and not usage_from_usage_chunk:
            usage = chunk_usage
            usage_from_usage_chunk = chunk_choices == []
        if not isinstance(chunk_choices, list):
            continue
        for position, raw in enumerate(chunk_choices):
            if not isinstance(raw, dict):
                continue
            index = raw.get("index")
            if not isinstance(index, int):
                index = position
            choice = choices.get(index)
            if choice is None:
                choice = choices[index] = _Choice(index)
            _merge_delta(choice, raw.get("delta"))
            choice.finish_reason_sent = choice.finish_reason_sent or "finish_reason" in raw
            if raw.get("finish_reason") is not None:
                choice.finish_reason = raw["finish_reason"]
            _merge_logprobs(choice, raw.get("logprobs"))
            for key, value in raw.items():
                if key not in _CHOICE_HANDLED:
                    _keep_latest(choice.extra, key, value)
    merged: dict[str, Any] = {
        **top,
        "object": "chat.completion",
        "choices": [_finish_choice(choice) for _, choice in sorted(choices.items())],
    }
    if usage is not None:
        merged["usage"] = usage
    if moderation is not None:
        merged["moderation"] = moderation
    return merged


def is_chunk(document: Any) -> bool:
    """A decoded event that the stream helper keeps: a chunk, or one that forgot its ``object``."""
    return isinstance(document, dict) and document.get("object", _CHUNK_OBJECT) == _CHUNK_OBJECT
