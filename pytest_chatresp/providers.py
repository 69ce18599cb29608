"""OpenAI-compatible providers: telling them apart, and accepting their known deviations.

Providers send values outside the contract (Groq's ``service_tier: on_demand``, Together's
``finish_reason: eos``, Mistral's ``content`` as a list of parts, …). Those fail validation, with
a message naming the provider where it is recognisable. Users who accept a deviation say so with
allowances, ``FIELD=VALUE`` lines in ini ``chatresp_allow``:

    service_tier=on_demand              one value of one field
    choices[].finish_reason=eos         ``[]`` stands for any index
    choices[].message.content=*         any value
    usage.prompt_tokens=null            JSON null

An allowed deviation is kept as it was sent: the completion is validated with a stand-in at that
place, then the original value is put back.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import show_value

__all__ = [
    "CHECK_BEHAVIOURS",
    "Allowance",
    "CheckAllowance",
    "accept_hint",
    "allowance_for",
    "allowance_works",
    "allowed",
    "normalized_path",
    "parse_allowances",
    "provider_of",
    "validate_allowing",
    "way_out",
]

_INDEX = re.compile(r"\[\d+\]")
_ANY = "*"

# Hosts (suffixes) of OpenAI-compatible providers, most specific first.
_HOSTS: tuple[tuple[str, str], ...] = (
    ("openai.azure.com", "Azure OpenAI"),
    ("services.ai.azure.com", "Azure AI Foundry"),
    ("api.openai.com", "OpenAI"),
    ("api.groq.com", "Groq"),
    ("api.together.xyz", "Together"),
    ("api.together.ai", "Together"),
    ("openrouter.ai", "OpenRouter"),
    ("api.mistral.ai", "Mistral"),
    ("api.deepseek.com", "DeepSeek"),
    ("router.huggingface.co", "Hugging Face"),
    ("api-inference.huggingface.co", "Hugging Face"),
    ("generativelanguage.googleapis.com", "Gemini"),
    ("api.anthropic.com", "Anthropic"),
    ("api.x.ai", "xAI"),
    ("api.fireworks.ai", "Fireworks"),
    ("api.cerebras.ai", "Cerebras"),
    ("api.perplexity.ai", "Perplexity"),
    ("snowflakecomputing.com", "Snowflake"),
    ("api.writer.com", "Writer"),
    ("cloud.databricks.com", "Databricks"),
    ("azuredatabricks.net", "Databricks"),
    ("api.crusoe.ai", "Crusoe"),
    ("crusoecloud.com", "Crusoe"),
    ("ollama.com", "Ollama"),
    ("api.cloudflare.com", "Cloudflare"),
    ("api.ai21.com", "AI21"),
    ("inference.ai.azure.com", "Azure AI"),
)
# Fields only some providers send.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("x_groq", "Groq"),
    ("prompt_token_ids", "vLLM"),
    ("kv_transfer_params", "vLLM"),
    ("prompt_filter_results", "Azure OpenAI"),
)


def provider_of(uri: str | None, body: Any = None) -> str | None:
    """The provider a request went to, from its host, or from fields only it sends."""
    if uri:
        try:
            parts = urlsplit(uri)
            port = parts.port
        except ValueError:  # not a URL: a bad IPv6 address, a port out of range
            parts, port = urlsplit(""), None
        host = (parts.hostname or "").lower()
        for suffix, name in _HOSTS:
            if host == suffix or host.endswith("." + suffix):
                return name
        if port == 11434:
            return "Ollama"
    if isinstance(body, dict):
        for key, name in _FIELDS:
            if key in body:
                return name
        if isinstance(body.get("id"), str) and body["id"].startswith("gen-"):
            return "OpenRouter"
    return None


@dataclass(frozen=True)
class Allowance:
    """``FIELD=VALUE``: this value (or any, with ``*``) is accepted at this field."""

    field: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}={self.value}"

    def matches(self, field: str, value: Any) -> bool:
        if self.field != field:
            return False
        return self.value == _ANY or self.value == _render(value)


#: Behaviours of real providers that a contract check flags, each accepted by one line
#: ``CHECK:BEHAVIOUR`` in ini ``chatresp_allow`` (or the marker's ``allow``).
CHECK_BEHAVIOURS: dict[tuple[str, str], str] = {
    ("usage-sum", "reasoning"): "total_tokens larger than prompt + completion tokens "
    "(reasoning tokens counted in the total only)",
    ("stream", "finish-twice"): "a choice's finish_reason sent in more than one chunk",
    ("stream", "no-done"): "a stream that ends without data: [DONE]",
    ("tool-args", "empty"): "'' as the arguments of a call to a tool without parameters",
    ("created", "milliseconds"): "created in milliseconds rather than seconds",
}


@dataclass(frozen=True)
class CheckAllowance:
    """``CHECK:BEHAVIOUR``: a contract check accepts this provider behaviour."""

    check: str
    behaviour: str

    def __str__(self) -> str:
        return f"{self.check}:{self.behaviour}"

    def matches(self, field: str, value: Any) -> bool:
        return False  # accepts no value of a field: the check itself asks


def allowed(allowances: Iterable[Any], check: str, behaviour: str) -> bool:
    """Whether ``CHECK:BEHAVIOUR`` is among the allowances."""
    return any(
        isinstance(a, CheckAllowance) and a.check == check and a.behaviour == behaviour
        for a in allowances
    )


def accept_hint(
    provider: str | None, line: str, *, skip: bool = False, command: bool = False
) -> str:
    """The hint a failure ends with: the provider, and each way to accept it in the form the
    user types: the ini line, the marker's argument and, for ``chatresp check`` (``command``),
    its option. ``line`` is an allowance (``FIELD=VALUE``, ``CHECK:BEHAVIOUR``), or with
    ``skip`` the name of a check to skip."""
    who = f"{provider}; " if provider not in (None, "OpenAI") else ""
    key, option, argument = (
        ("chatresp_skip_checks", "--skip-checks", "skip_checks")
        if skip
        else ("chatresp_allow", "--allow", "allow")
    )
    marker = f"per test @pytest.mark.chat_cassette({argument}=[{json.dumps(line)}])"
    if command:
        ways = (
            f"chatresp check {option} {shlex.quote(line)}, the ini line {key} = {line}, or {marker}"
        )
    else:
        ways = f"{key} = {line}, or {marker}"
    return f" ({who}to accept it: {ways})"


def way_out(
    provider: str | None, check: str, behaviour: str | None, *, command: bool = False
) -> str:
    """The hint a failed check ends with: the one line that accepts it (a ``CHECK:BEHAVIOUR``
    allowance, or skipping the check where no finer line exists)."""
    if behaviour is not None:
        return accept_hint(provider, f"{check}:{behaviour}", command=command)
    return accept_hint(provider, check, skip=True, command=command)


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return show_value(value, 10_000)  # repr, bounded, even for an int too long to print


def parse_allowances(lines: Iterable[str]) -> tuple[Allowance | CheckAllowance, ...]:
    """Read ``FIELD=VALUE`` and ``CHECK:BEHAVIOUR`` lines; raises ``ValueError`` naming a bad
    one."""
    out: list[Allowance | CheckAllowance] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        field, sep, value = line.partition("=")
        check, colon, behaviour = line.partition(":")
        if not sep and colon:
            if (check.strip(), behaviour.strip()) not in CHECK_BEHAVIOURS:
                known = ", ".join(f"{c}:{b}" for c, b in CHECK_BEHAVIOURS)
                raise ValueError(f"{line!r} is no known check behaviour (known: {known})")
            out.append(CheckAllowance(check.strip(), behaviour.strip()))
            continue
        if not sep or not field.strip():
            raise ValueError(
                f"{line!r} is not FIELD=VALUE (e.g. service_tier=on_demand) "
                "or CHECK:BEHAVIOUR (e.g. stream:no-done)"
            )
        out.append(Allowance(normalized_path(field.strip()), value.strip()))
    return tuple(out)


def normalized_path(field: str) -> str:
    """``choices[3].finish_reason`` → ``choices[].finish_reason``."""
    return _INDEX.sub("[]", field)


def allowance_for(field: str, value: Any) -> str:
    """The allowance line that would accept ``value`` at ``field``."""
    scalar = isinstance(value, str | int | float | bool) or value is None
    return f"{normalized_path(field)}={_render(value) if scalar else _ANY}"


# --- validating with allowances -----------------------------------------------------------------


def _first_literal(ctx: dict[str, Any]) -> str | None:
    match = re.search(r"'([^']*)'", str(ctx.get("expected", "")))
    return match.group(1) if match else None


# A valid value of the expected type, put in place of an allowed one while validating.
_STAND_INS: dict[str, Any] = {
    "string_type": "",
    "int_type": 0,
    "float_type": 0.0,
    "bool_type": False,
    "list_type": [],
    "dict_type": {},
}


def _stand_in(error: Mapping[str, Any]) -> Any:
    if error["type"] == "literal_error":
        return _first_literal(error.get("ctx") or {})
    return copy.copy(_STAND_INS.get(error["type"]))


def _walk(document: Any, loc: tuple[int | str, ...]) -> tuple[Any, int | str] | None:
    """The container and key at ``loc`` in ``document`` (union tags skipped)."""
    current = document
    keys = list(loc)
    for position, key in enumerate(keys):
        last = position == len(keys) - 1
        in_dict = isinstance(current, dict) and key in current
        in_list = isinstance(current, list) and isinstance(key, int) and 0 <= key < len(current)
        if in_dict or in_list:
            if last:
                return current, key
            current = current[key]
        elif not last:
            continue  # a tag pydantic adds after a discriminated union
        else:
            return None
    return None


def _walk_model(model: Any, loc: tuple[int | str, ...]) -> tuple[Any, int | str] | None:
    current = model
    keys = list(loc)
    for position, key in enumerate(keys):
        last = position == len(keys) - 1
        if last:
            return current, key
        if isinstance(key, int) and isinstance(current, list) and key < len(current):
            current = current[key]
        elif isinstance(key, str) and hasattr(current, key):
            current = getattr(current, key)
        # else: a union tag, skipped
    return None


def allowance_works(document: Any, error: Mapping[str, Any], validate: Any) -> bool:
    """Whether allowing ``error``'s value would accept it: with the stand-in that
    :func:`validate_allowing` would put there, no error is left at that place."""
    if error["type"] == "missing":
        return False
    try:
        patched = copy.deepcopy(document)
    except RecursionError:  # nested too deeply to copy: offer no allowance
        return False
    place = _walk(patched, tuple(error["loc"]))
    if place is None:
        return False
    container, key = place
    container[key] = _stand_in(error)
    try:
        validate(patched)
    except Exception as exc:
        errors = exc.errors(include_url=False) if hasattr(exc, "errors") else None
        if errors is None:
            return False
        return all(tuple(e["loc"])[: len(error["loc"])] != tuple(error["loc"]) for e in errors)
    return True


def validate_allowing(
    document: Any,
    errors: Sequence[Mapping[str, Any]],
    allowances: tuple[Allowance, ...],
    validate: Any,
    field_path: Any,
) -> Any:
    """A model of ``document`` when every error is an allowed deviation, else ``None``.

    ``validate`` validates a document, ``field_path`` renders a pydantic location.
    """
    allowed = []
    for error in errors:
        field = normalized_path(field_path(error["loc"]))
        if error["type"] == "missing" or not any(
            a.matches(field, error.get("input")) for a in allowances
        ):
            return None
        allowed.append(error)
    try:
        patched = copy.deepcopy(document)
    except RecursionError:  # nested too deeply to copy: report the errors
        return None
    originals = []
    for error in allowed:
        place = _walk(patched, tuple(error["loc"]))
        if place is None:
            return None
        container, key = place
        originals.append((tuple(error["loc"]), container[key]))
        container[key] = _stand_in(error)
    try:
        model = validate(patched)
    except Exception:
        return None
    for loc, original in originals:
        place = _walk_model(model, loc)
        if place is None:
            continue
        target, key = place
        if isinstance(key, int) and isinstance(target, list):
            target[key] = original
        elif isinstance(key, str) and hasattr(target, "__dict__"):
            target.__dict__[key] = original  # as sent: no validation, by the user's leave
    return model
