"""The contract beyond types: checks a well-typed completion can still fail.

Each check has a name users can switch off (ini ``chatresp_skip_checks``). A failed check is a
:class:`~pytest_chatresp.errors.Violation` like a type error, its message ending with the
check's name. Where a failure is a known behaviour of real providers
(:data:`~pytest_chatresp.providers.CHECK_BEHAVIOURS`), the message names the provider when it is
recognisable, and the one ``CHECK:BEHAVIOUR`` line that accepts it; the check then lets that
behaviour pass and still checks the rest.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import Violation, shorten, show_value
from .providers import allowed, provider_of, way_out

if TYPE_CHECKING:
    from .models import ChatCompletion

__all__ = [
    "CHECKS",
    "CheckContext",
    "Rules",
    "may_need_schemas",
    "prepare",
    "run_checks",
    "schema_errors",
]

_EPOCH_2015 = 1420070400
_DAY = 86400
_MILLISECONDS = 10**11


@dataclass(frozen=True)
class Rules:
    """How a completion is judged: strict validation, and contract checks to skip."""

    strict: bool = False
    skip_checks: frozenset[str] = frozenset()
    #: Deviations the user accepts (``chatresp_allow``), as ``providers.Allowance``.
    allow: tuple[Any, ...] = ()
    #: Failures say how to accept them with ``chatresp check``'s options too (``--allow``).
    for_command: bool = False


@dataclass(frozen=True)
class CheckContext:
    """What a check may look at besides the completion."""

    path: str
    index: int
    request: Any
    chunks: list[dict[str, Any]] | None = None
    stream_done: bool = True
    #: The request's URI, to name the provider in a message.
    uri: str | None = None
    #: The user's allowances (``Rules.allow``); ``CHECK:BEHAVIOUR`` ones concern the checks.
    allow: tuple[Any, ...] = ()
    #: ``Rules.for_command``: hints name ``chatresp check``'s options too.
    for_command: bool = False

    def allows(self, check: str, behaviour: str) -> bool:
        return allowed(self.allow, check, behaviour)


#: What a check found: (field, message), or (field, message, the provider behaviour it is).
_Found = list[tuple[str, str] | tuple[str, str, str]]
_Check = Callable[["ChatCompletion", CheckContext], _Found]


def _n(value: Any) -> str:
    """A number (or list) in a message: as ``str`` shows it, shortened past 80 characters.

    Shortened like every other value: a 4,000-digit ``created`` is a line, not a page.
    """
    return show_value(value, 80)


def _loads(text: str) -> tuple[Any, str | None]:
    """``json.loads``, or why it failed: bad JSON, nesting too deep, a number too long."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, exc.msg
    except RecursionError:
        return None, "nested too deeply to read"
    except ValueError:  # an integer longer than sys.get_int_max_str_digits()
        return None, "a number too long to read"


def _usage_sum(completion: ChatCompletion, context: CheckContext) -> _Found:
    usage = completion.usage
    if usage is None:
        return []
    counts = (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        return []  # a count an allowance let through (null, say): nothing to add up
    expected = usage.prompt_tokens + usage.completion_tokens
    if usage.total_tokens == expected:
        return []
    found = (
        f"expected prompt_tokens + completion_tokens = {_n(expected)}, "
        f"found {_n(usage.total_tokens)}"
    )
    if usage.total_tokens > expected:
        # Gemini's OpenAI-compatible API, among others, counts reasoning ("thinking") tokens in
        # the total only.
        if context.allows("usage-sum", "reasoning"):
            return []
        more = (
            f" ({_n(usage.total_tokens - expected)} more: reasoning tokens counted in the total?)"
        )
        return [("usage.total_tokens", found + more, "reasoning")]
    return [("usage.total_tokens", found)]


def _choice_index(completion: ChatCompletion, _: CheckContext) -> _Found:
    indices = [choice.index for choice in completion.choices]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        return []  # an index an allowance let through (null, say): no order to check
    if indices != list(range(len(indices))):
        return [
            ("choices", f"expected indices 0..{len(indices) - 1} in order, found {_n(indices)}")
        ]
    return []


def _choice_count(completion: ChatCompletion, context: CheckContext) -> _Found:
    request = context.request
    n = request.get("n") if isinstance(request, dict) else None
    if isinstance(n, int) and not isinstance(n, bool) and len(completion.choices) != n:
        return [
            (
                "choices",
                f"expected {_n(n)} choice(s) (the request asked for n={_n(n)}), "
                f"found {len(completion.choices)}",
            )
        ]
    return []


def _decoded_arguments(text: str) -> tuple[Any, str | None]:
    value, problem = _loads(text)
    if problem is not None:
        return None, f"expected JSON arguments, found {shorten(text, 60)!r} ({problem})"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, found {show_value(value)}"
    return value, None


def _without_parameters(request: Any, name: str) -> bool:
    """Whether the request declared tool ``name`` without parameters (or declared none)."""
    tools = _declared_tools(request)
    if tools is None or name not in tools:
        return True  # nothing says the tool takes any
    schema = tools[name]
    return not isinstance(schema, dict) or not schema.get("properties")


def _tool_args(completion: ChatCompletion, context: CheckContext) -> _Found:
    found: _Found = []
    for choice in completion.choices:
        calls = choice.message.tool_calls or []
        if choice.finish_reason == "tool_calls" and not calls:
            found.append(
                (
                    f"choices[{choice.index}].message.tool_calls",
                    "expected at least one tool call (finish_reason is 'tool_calls'), found none",
                )
            )
        for position, call in enumerate(calls):
            if call.type != "function" or not isinstance(call.function.arguments, str):
                continue  # not a string: an allowed deviation (chatresp_allow), e.g. null
            field = f"choices[{choice.index}].message.tool_calls[{position}].function.arguments"
            if call.function.arguments == "" and _without_parameters(
                context.request, call.function.name
            ):
                # Providers send '' for a call to a tool without parameters (the SDK's own
                # parse of '' fails: the contract asks for a JSON object, '{}').
                if not context.allows("tool-args", "empty"):
                    found.append(
                        (
                            field,
                            f"expected a JSON object ('{{}}' for no arguments), found '' for "
                            f"{call.function.name!r}, a tool without parameters",
                            "empty",
                        )
                    )
                continue
            _, problem = _decoded_arguments(call.function.arguments)
            if problem:
                found.append((field, problem))
    return found


def schema_errors(value: Any, schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``[(path, message)]`` of a JSON Schema validation, the first offending value first."""
    try:
        text = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        validator = _validator(schema)
    else:
        validator = _validator_of_text(text)
    errors = sorted(validator.iter_errors(value), key=lambda e: (len(e.absolute_path), e.path))
    out = []
    for error in errors:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        out.append((path.lstrip("."), error.message))
    return out


def _validator(schema: Any) -> Any:
    import jsonschema
    from referencing import Registry

    validator_class = jsonschema.validators.validator_for(schema)
    # An explicit registry: a $ref to a URL is unresolvable, never fetched (replay is offline).
    return validator_class(schema, registry=Registry())


@functools.lru_cache(maxsize=256)
def _validator_of_text(text: str) -> Any:
    """One validator a schema (the tools of a suite's requests repeat): made once."""
    return _validator(json.loads(text))


def _schema_problems() -> tuple[type[BaseException], ...]:
    """What jsonschema raises for a schema it cannot use: a schema error, an unresolvable
    ``$ref``, a bad regex or format (a ``re.error``, a ``ValueError``), too deep a nesting."""
    import re

    import jsonschema
    import referencing.exceptions

    return (
        jsonschema.exceptions.SchemaError,
        jsonschema.exceptions.UnknownType,
        jsonschema.exceptions.FormatError,
        referencing.exceptions.Unresolvable,
        referencing.exceptions.NoSuchResource,
        re.error,
        ValueError,
        TypeError,
        AttributeError,
        LookupError,
        RecursionError,
    )


def prepare() -> None:
    """Import what the checks need ahead of a test, so that none imports inside a running
    event loop (an import reads directories: a blocking call)."""
    _schema_problems()


def may_need_schemas(body: object) -> bool:
    """Whether checking the answer to a request with this recorded body may validate against
    a JSON Schema (its ``tools`` or ``response_format``), and so needs :func:`prepare`. Only
    an empty body, or plain JSON text that names neither key and escapes no character,
    certainly does not."""
    if body is None or body in (b"", ""):
        return False
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return True  # compressed, or not text: it may decode to anything
    if not isinstance(body, str) or not body.lstrip().startswith("{"):
        return True
    return "\\" in body or any(key in body for key in ("tools", "response_format"))


def _schema_check(value: Any, schema: Any) -> tuple[list[tuple[str, str]], str | None]:
    """``schema_errors``, or why the schema cannot be used (an unknown type, a bad $ref…).

    Only the errors of an unusable schema are caught: anything else (an error of the machine,
    a blocking call refused by a guard) is no verdict on the response and propagates.
    """
    try:
        return schema_errors(value, schema), None
    except _schema_problems() as exc:
        return [], f"{type(exc).__name__}: {shorten(str(exc).partition(chr(10))[0], 80)}"


def _response_format(request: Any) -> tuple[str | None, Any]:
    if not isinstance(request, dict):
        return None, None
    response_format = request.get("response_format")
    if not isinstance(response_format, dict):
        return None, None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return kind, schema if isinstance(schema, dict) else None
    return (kind if isinstance(kind, str) else None), None


def _json_output(completion: ChatCompletion, context: CheckContext) -> _Found:
    kind, schema = _response_format(context.request)
    if kind not in ("json_object", "json_schema"):
        return []
    found: _Found = []
    for choice in completion.choices:
        content = choice.message.content
        field = f"choices[{choice.index}].message.content"
        if content is None:
            if choice.message.refusal is None and choice.finish_reason == "stop":
                found.append((field, f"expected JSON (response_format {kind}), found null"))
            continue
        if not isinstance(content, str):
            continue  # an allowed deviation (chatresp_allow), e.g. Mistral's list of parts
        value, problem = _loads(content)
        if problem is not None:
            found.append(
                (
                    field,
                    f"expected JSON (response_format {kind}), "
                    f"found {shorten(content, 60)!r} ({problem})",
                )
            )
            continue
        if schema is None:
            continue
        errors, unusable = _schema_check(value, schema)
        if unusable is not None:
            found.append(
                (field, f"cannot check: the request's json_schema is unusable ({unusable})")
            )
        for where, message in errors[:1]:
            found.append(
                (
                    f"{field}{'.' if where and not where.startswith('[') else ''}{where}",
                    f"does not match the request's json_schema: {message}",
                )
            )
    return found


def _declared_tools(request: Any) -> dict[str, Any] | None:
    if not isinstance(request, dict) or not isinstance(request.get("tools"), list):
        return None
    tools: dict[str, Any] = {}
    for tool in request["tools"]:
        if not isinstance(tool, dict):
            continue
        spec = (
            tool.get("function")
            if tool.get("type", "function") == "function"
            else tool.get("custom")
        )
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            tools[spec["name"]] = (
                spec.get("parameters") if tool.get("type", "function") == "function" else None
            )
    return tools


def _tool_schema(completion: ChatCompletion, context: CheckContext) -> _Found:
    tools = _declared_tools(context.request)
    if tools is None:
        return []
    found: _Found = []
    for choice in completion.choices:
        for position, call in enumerate(choice.message.tool_calls or []):
            name = call.function.name if call.type == "function" else call.custom.name
            field = f"choices[{choice.index}].message.tool_calls[{position}]"
            if name not in tools:
                declared = ", ".join(repr(t) for t in tools) or "none"
                found.append(
                    (
                        f"{field}.function.name",
                        f"expected a declared tool ({declared}), found {name!r}",
                    )
                )
                continue
            schema = tools[name]
            if call.type != "function" or not isinstance(schema, dict):
                continue
            if not isinstance(call.function.arguments, str):
                continue  # arguments an allowance let through (null)
            arguments, problem = _decoded_arguments(call.function.arguments)
            if problem:
                continue  # tool-args reports it
            errors, unusable = _schema_check(arguments, schema)
            if unusable is not None:
                found.append(
                    (
                        f"{field}.function.arguments",
                        f"cannot check: the parameters of {name!r} are unusable ({unusable})",
                    )
                )
            for where, message in errors[:1]:
                path = f"{field}.function.arguments" + (
                    f".{where}" if where and not where.startswith("[") else where
                )
                found.append((path, f"does not match the parameters of {name!r}: {message}"))
    return found


def _stream(completion: ChatCompletion, context: CheckContext) -> _Found:
    chunks = context.chunks
    if chunks is None:
        return []
    found: _Found = []
    first = chunks[0] if chunks else {}
    for position, chunk in enumerate(chunks):
        for key in ("id", "model", "created"):
            if key in chunk and key in first and chunk[key] != first[key]:
                found.append(
                    (
                        f"chunk[{position}].{key}",
                        f"expected {show_value(first[key])} as in the first chunk, "
                        f"found {show_value(chunk[key])}",
                    )
                )
                break
    finishes: dict[int, int] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("finish_reason") is not None:
                index = choice.get("index", 0)
                if isinstance(index, int):
                    finishes[index] = finishes.get(index, 0) + 1
    for index, count in sorted(finishes.items()):
        if count > 1 and not context.allows("stream", "finish-twice"):
            found.append(
                (
                    f"choices[{index}].finish_reason",
                    f"expected one finish_reason in the stream, found {count}",
                    "finish-twice",
                )
            )
    # The usage chunk comes after every chunk with choices; what follows it may only be chunks
    # without choices (api.openai.com sends the moderation chunk after it), as the SDK takes.
    usage_positions = [
        position
        for position, chunk in enumerate(chunks)
        if chunk.get("usage") is not None and chunk.get("choices") == []
    ]
    with_choices = [position for position, chunk in enumerate(chunks) if chunk.get("choices")]
    if usage_positions and with_choices and with_choices[-1] > usage_positions[-1]:
        found.append(
            (
                f"chunk[{usage_positions[-1]}]",
                f"expected the usage chunk after every chunk with choices, found chunk "
                f"{with_choices[-1]} with choices after it",
            )
        )
    if not context.stream_done and not context.allows("stream", "no-done"):
        found.append(
            ("stream", "expected the stream to end with data: [DONE], found no [DONE]", "no-done")
        )
    return found


def _created(completion: ChatCompletion, context: CheckContext) -> _Found:
    created = completion.created
    if not isinstance(created, int | float) or isinstance(created, bool):
        return []  # a value an allowance let through
    if created >= _MILLISECONDS:
        if context.allows("created", "milliseconds"):
            return []
        return [
            (
                "created",
                f"expected Unix seconds, found {_n(created)} (milliseconds?)",
                "milliseconds",
            )
        ]
    if created < _EPOCH_2015:
        return [("created", f"expected a time after 2015-01-01, found {_n(created)}")]
    if created > time.time() + _DAY:
        return [("created", f"expected a time not in the future, found {_n(created)}")]
    return []


#: The checks whose finding depends on when they run ("created": not in the future), not on
#: the bytes alone: a verdict holding one of their findings is judged again each session.
CLOCK_CHECKS = frozenset({"created"})

CHECKS: dict[str, _Check] = {
    "usage-sum": _usage_sum,
    "choice-index": _choice_index,
    "choice-count": _choice_count,
    "tool-args": _tool_args,
    "json-output": _json_output,
    "tool-schema": _tool_schema,
    "stream": _stream,
    "created": _created,
}


def _provider(completion: ChatCompletion, context: CheckContext) -> str | None:
    body = {"id": completion.id, **(completion.model_extra or {})}
    return provider_of(context.uri, body)


def run_checks(
    completion: ChatCompletion,
    context: CheckContext,
    skip: Iterable[str] = (),
    *,
    provisional: bool = False,
) -> list[Violation]:
    """Every check not in ``skip``, as violations naming the check.

    A failure that is a known provider behaviour ends with the line that accepts it; another
    failure of a recognised provider (not OpenAI, whose contract it is) with the check to skip.
    A ``provisional`` completion keeps values of the wrong type (so that a type error does
    not hide the other findings): a check those values stop finds nothing.
    """
    skipped = set(skip)
    out: list[Violation] = []
    provider: str | None = None
    for name, check in CHECKS.items():
        if name in skipped:
            continue
        try:
            findings = check(completion, context)
        except (TypeError, ValueError, AttributeError, LookupError, ArithmeticError):
            if not provisional:
                raise
            continue
        for found in findings:
            field, message = found[0], found[1]
            behaviour = found[2] if len(found) > 2 else None
            if not out:
                provider = _provider(completion, context)
            hint = ""
            if behaviour is not None or provider not in (None, "OpenAI"):
                hint = way_out(provider, name, behaviour, command=context.for_command)
            out.append(
                Violation(
                    context.path,
                    context.index,
                    field,
                    f"{message} [check {name}]{hint}",
                    check=name,
                )
            )
    return out
