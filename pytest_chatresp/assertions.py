"""Assertion helpers on chat completions.

Each helper raises ``AssertionError`` whose message names where the completion came from
(cassette path and interaction index), the field, what was expected and what was found, and
shows the content or arguments involved, shortened when long.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import field_path, printable, shorten, show_value
from .models import ChatCompletion, Choice

__all__ = [
    "assert_choice",
    "assert_choices",
    "assert_json_content",
    "assert_model",
    "assert_tier",
    "assert_tool_call",
    "assert_usage",
]

_SHOW = 200


def _completion(value: Any) -> ChatCompletion:
    """Accept our model, an ``Exchange``, the ``openai`` SDK's object, or a plain dict."""
    if isinstance(value, ChatCompletion):
        return value
    completion = getattr(value, "completion", None)  # an Exchange
    if isinstance(completion, ChatCompletion):
        return completion
    from .cassette import Exchange

    if isinstance(value, Exchange):  # an error response, or another endpoint's
        where = f"{value.source}: " if value.source is not None else ""
        found = (
            f"an error response ({value.error})"
            if value.error is not None
            else f"a response of HTTP status {value.status} to {value.request.method} "
            f"{value.request.uri}"
        )
        raise AssertionError(printable(f"{where}expected a chat completion, found {found}"))
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, Mapping):
        return ChatCompletion.model_validate(value)
    raise TypeError(
        f"expected a chat completion (from a cassette, the openai SDK or a dict), "
        f"got {type(value).__name__}"
    )


def _where(completion: ChatCompletion) -> str:
    source = completion.source
    return f"{source}: " if source is not None else ""


def _fail(completion: ChatCompletion, field: str, expected: str, found: str, *details: str) -> None:
    __tracebackhide__ = True
    lines = [f"{_where(completion)}{field}: expected {expected}, found {found}"]
    lines.extend(f"  {detail}" for detail in details if detail)
    raise AssertionError(printable("\n".join(lines)))


def _show_content(choice: Choice) -> str:
    message = choice.message
    if message.tool_calls:
        return "tool calls: " + ", ".join(_describe_call(call) for call in message.tool_calls)
    if message.refusal:
        return f"refusal: {shorten(message.refusal, _SHOW)!r}"
    if message.content is None:
        return "content: null"
    return f"content: {shorten(message.content, _SHOW)!r}"


def _describe_call(call: Any) -> str:
    if call.type == "function":
        return f"{call.function.name}({shorten(call.function.arguments, 80)})"
    return f"{call.custom.name}[custom]({shorten(call.custom.input, 80)})"


def _choice(completion: ChatCompletion, index: int) -> Choice:
    __tracebackhide__ = True
    if not 0 <= index < len(completion.choices):
        _fail(
            completion,
            "choices",
            f"a choice at index {index}",
            f"{len(completion.choices)} choice(s)",
        )
    return completion.choices[index]


def _allowed(value: str | Collection[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _render_allowed(allowed: tuple[Any, ...]) -> str:
    if len(allowed) == 1:
        return repr(allowed[0])
    return "one of " + ", ".join(repr(a) for a in allowed)


def assert_choices(
    completion: Any,
    *,
    count: int | None = None,
    finish_reason: str | Collection[str] | None = None,
) -> None:
    """Assert the number of choices, and that every choice finished for an allowed reason."""
    __tracebackhide__ = True
    c = _completion(completion)
    if count is not None and len(c.choices) != count:
        _fail(c, "choices", f"{count} choice(s)", f"{len(c.choices)}")
    if finish_reason is not None:
        allowed = _allowed(finish_reason)
        for choice in c.choices:
            if choice.finish_reason not in allowed:
                _fail(
                    c,
                    f"choices[{choice.index}].finish_reason",
                    _render_allowed(allowed),
                    repr(choice.finish_reason),
                    _show_content(choice),
                )


def assert_choice(
    completion: Any,
    index: int = 0,
    *,
    content: str | None = None,
    contains: str | None = None,
    matches: str | re.Pattern[str] | None = None,
    finish_reason: str | Collection[str] | None = None,
) -> None:
    """Assert on one choice: its exact content, a substring, a regex search, its finish reason."""
    __tracebackhide__ = True
    c = _completion(completion)
    choice = _choice(c, index)
    text = choice.message.content
    field = f"choices[{index}].message.content"
    if content is not None and text != content:
        _fail(c, field, repr(shorten(content, _SHOW)), repr(shorten(text, _SHOW) if text else text))
    if contains is not None and (text is None or contains not in text):
        _fail(c, field, f"text containing {contains!r}", _show_content(choice))
    if matches is not None:
        pattern = re.compile(matches) if isinstance(matches, str) else matches
        if text is None or not pattern.search(text):
            _fail(c, field, f"text matching /{pattern.pattern}/", _show_content(choice))
    if finish_reason is not None:
        allowed = _allowed(finish_reason)
        if choice.finish_reason not in allowed:
            _fail(
                c,
                f"choices[{index}].finish_reason",
                _render_allowed(allowed),
                repr(choice.finish_reason),
                _show_content(choice),
            )


def assert_usage(
    completion: Any,
    *,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    total_tokens: int | None = None,
    max_prompt_tokens: int | None = None,
    max_completion_tokens: int | None = None,
    max_total_tokens: int | None = None,
) -> None:
    """Assert token counts (exact or at most); fails when usage is missing or does not add up."""
    __tracebackhide__ = True
    c = _completion(completion)
    usage = c.usage
    if usage is None:
        _fail(c, "usage", "token usage", "none (the response carries no usage)")
        return
    counts = (
        f"prompt {usage.prompt_tokens}, completion {usage.completion_tokens}, "
        f"total {usage.total_tokens}"
    )
    if usage.total_tokens != usage.prompt_tokens + usage.completion_tokens:
        _fail(
            c,
            "usage.total_tokens",
            f"prompt_tokens + completion_tokens = {usage.prompt_tokens + usage.completion_tokens}",
            str(usage.total_tokens),
        )
    for name, exact, most in (
        ("prompt_tokens", prompt_tokens, max_prompt_tokens),
        ("completion_tokens", completion_tokens, max_completion_tokens),
        ("total_tokens", total_tokens, max_total_tokens),
    ):
        found = getattr(usage, name)
        if exact is not None and found != exact:
            _fail(c, f"usage.{name}", str(exact), str(found), f"usage: {counts}")
        if most is not None and found > most:
            _fail(c, f"usage.{name}", f"at most {most}", str(found), f"usage: {counts}")


def assert_tier(completion: Any, expected: str | Collection[str | None] | None) -> None:
    """Assert ``service_tier``: one tier, ``None``, or a collection of allowed tiers."""
    __tracebackhide__ = True
    c = _completion(completion)
    allowed: tuple[str | None, ...] = (
        (expected,) if expected is None or isinstance(expected, str) else tuple(expected)
    )
    if c.service_tier not in allowed:
        _fail(c, "service_tier", _render_allowed(allowed), repr(c.service_tier))


def assert_model(completion: Any, pattern: str) -> None:
    """Assert the served ``model``: an exact name or a glob such as ``gpt-4o-mini*``."""
    __tracebackhide__ = True
    c = _completion(completion)
    if not fnmatch.fnmatchcase(c.model, pattern):
        kind = "a model matching" if any(ch in pattern for ch in "*?[") else "model"
        _fail(c, "model", f"{kind} {pattern!r}", repr(c.model))


def assert_tool_call(
    completion: Any,
    name: str,
    *,
    arguments: Mapping[str, Any] | None = None,
    choice: int = 0,
) -> dict[str, Any]:
    """Assert a choice called the tool ``name``, with ``arguments`` a subset of its arguments.

    Returns the decoded arguments of the matching call.
    """
    __tracebackhide__ = True
    c = _completion(completion)
    picked = _choice(c, choice)
    field = f"choices[{choice}].message.tool_calls"
    calls = [
        (i, call)
        for i, call in enumerate(picked.message.tool_calls or [])
        if call.type == "function" and call.function.name == name
    ]
    if not calls:
        _fail(c, field, f"a call to {name!r}", _show_content(picked).removeprefix("tool calls: "))
    decoded_calls: list[tuple[int, Any]] = []
    for i, call in calls:
        try:
            decoded_calls.append((i, json.loads(call.function.arguments)))
        except ValueError:
            decoded_calls.append((i, None))
    if arguments is None:
        first = decoded_calls[0][1]
        return first if isinstance(first, dict) else {}
    for _, decoded in decoded_calls:
        if isinstance(decoded, dict) and all(
            key in decoded and decoded[key] == value for key, value in arguments.items()
        ):
            return decoded
    i, decoded = decoded_calls[0]
    raw = calls[0][1].function.arguments
    if not isinstance(decoded, dict):
        _fail(
            c,
            f"{field}[{i}].function.arguments",
            "a JSON object",
            repr(shorten(raw, _SHOW)),
        )
    diffs = [
        f"{key}: expected {value!r}, found "
        + (repr(decoded[key]) if key in decoded else "no such argument")
        for key, value in arguments.items()
        if key not in decoded or decoded[key] != value
    ]
    _fail(
        c,
        f"{field}[{i}].function.arguments",
        f"arguments including {shorten(json.dumps(dict(arguments)), _SHOW)}",
        shorten(raw, _SHOW),
        *diffs,
    )
    return {}


def assert_json_content(completion: Any, schema: Any, *, choice: int = 0) -> Any:
    """Parse a choice's content as JSON and validate it against ``schema``.

    ``schema`` is a pydantic model class (the parsed model instance is returned) or a JSON
    Schema dict (the parsed value is returned). Fails with the path of the first offending
    value.
    """
    __tracebackhide__ = True
    c = _completion(completion)
    picked = _choice(c, choice)
    field = f"choices[{choice}].message.content"
    text = picked.message.content
    if text is None:
        _fail(c, field, "JSON content", "null", _show_content(picked))
        return None
    problem: str | None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = exc.msg
    else:
        problem = None
    if problem is not None:
        _fail(c, field, "JSON content", f"{shorten(text, _SHOW)!r} ({problem})")
        return None
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        error: Any = None
        try:
            return schema.model_validate(value)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
        if error:
            where = field_path(error["loc"])
            _fail(
                c,
                f"{field}.{where}" if where else field,
                f"content matching {schema.__name__}: {error['msg'].lower()}",
                show_value(error.get("input")),
                f"content: {shorten(text, _SHOW)!r}",
            )
    if isinstance(schema, Mapping):
        from .checks import schema_errors

        errors = schema_errors(value, schema)
        if errors:
            where, message = errors[0]
            sep = "" if not where or where.startswith("[") else "."
            _fail(
                c,
                f"{field}{sep}{where}",
                "content matching the schema",
                message,
                f"content: {shorten(text, _SHOW)!r}",
            )
        return value
    raise TypeError(
        f"schema must be a pydantic model class or a JSON Schema dict, got {type(schema).__name__}"
    )
