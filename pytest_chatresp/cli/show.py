"""``chatresp show``: print what one cassette holds, exchange by exchange."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from pytest_chatresp.errors import display_path, shorten

from .output import EXIT_OK, UsageError, out, plural

if TYPE_CHECKING:
    from pytest_chatresp.cassette import Cassette, Exchange

__all__ = ["add_parser"]

_CONTENT_WIDTH = 100
_ARGUMENTS_WIDTH = 80


def add_parser(commands: Any) -> None:
    show = commands.add_parser(
        "show",
        help="print what a cassette holds, exchange by exchange",
        description="Print each exchange of a cassette: request, status, model, tier, finish "
        "reasons, usage, streaming, errors, violations and the start of each choice.",
    )
    show.add_argument("cassette", metavar="CASSETTE", help="a cassette file")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=run)


def _first_line(text: str, width: int = _CONTENT_WIDTH) -> str:
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return shorten(first + (" …" if len(lines) > 1 else ""), width)


def _text_of(content: Any) -> str | None:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text") if isinstance(part, dict) else part
            for part in content
            if isinstance(part, dict | str)
        ]
        joined = " ".join(t for t in texts if isinstance(t, str))
        return joined or None
    return None


def _calls_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's tool calls (and a legacy ``function_call``) as ``{"name", "arguments"}``."""
    out: list[dict[str, Any]] = []
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        body = call.get("function")
        if not isinstance(body, dict):
            body = call.get("custom")
        if not isinstance(body, dict):
            body = {}
        arguments = body.get("arguments", body.get("input"))
        out.append({"name": body.get("name"), "arguments": arguments})
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and legacy.get("name"):
        out.append({"name": legacy.get("name"), "arguments": legacy.get("arguments")})
    return out


def _document(exchange: Exchange) -> dict[str, Any] | None:
    """The completion as the file holds it (merged, for a stream), valid or not."""
    document = exchange.merged if exchange.streamed else exchange.json
    return document if isinstance(document, dict) else None


def _exchange_data(exchange: Exchange) -> dict[str, Any]:
    """What ``show`` prints about an exchange, as data (the same keys for every exchange)."""
    request = exchange.request
    error = exchange.error
    data: dict[str, Any] = {
        "index": exchange.index,
        "method": request.method,
        "path": request.path,
        "status": exchange.status,
        "chat": exchange.is_chat,
        "kind": exchange.kind,
        "model_requested": None,
        "model_served": None,
        "service_tier": None,
        "finish_reasons": [],
        "usage": None,
        "streamed": exchange.streamed,
        "chunks": len(exchange.events) if exchange.streamed else None,
        "error": None,
        "violations": [],
        "choices": [],
    }
    if error is not None:
        data["error"] = {
            "status": error.status,
            "type": error.type,
            "code": error.code,
            "message": error.message,
            "text": str(error),
        }
    if not exchange.is_chat:
        return data
    data["model_requested"] = request.model
    data["violations"] = [
        {"field": v.field, "message": v.message, "check": v.check} for v in exchange.violations
    ]
    if error is not None:
        return data
    document = _document(exchange) or {}
    model, usage, choices = document.get("model"), document.get("usage"), document.get("choices")
    choices = [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []
    data["model_served"] = model if isinstance(model, str) else None
    data["service_tier"] = document.get("service_tier")
    data["finish_reasons"] = [choice.get("finish_reason") for choice in choices]
    if isinstance(usage, dict):
        keys = ("prompt_tokens", "completion_tokens", "total_tokens")
        data["usage"] = {key: usage.get(key) for key in keys}
    data["choices"] = [_choice_data(choice, position) for position, choice in enumerate(choices)]
    return data


def _choice_data(choice: dict[str, Any], position: int) -> dict[str, Any]:
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    index = choice.get("index")
    refusal = message.get("refusal")
    return {
        "index": index if isinstance(index, int) and not isinstance(index, bool) else position,
        "content": _text_of(message.get("content")),
        "refusal": refusal if isinstance(refusal, str) else None,
        "tool_calls": _calls_of(message),
    }


def _show_lines(data: dict[str, Any]) -> list[str]:
    status = "?" if data["status"] is None else data["status"]
    lines = [f"#{data['index']} {data['method']} {data['path'] or '/'} → {status}"]
    indent = "    "
    if not data["chat"]:
        lines.append(f"{indent}kind: {data['kind']}")
        if data["error"] is not None:
            lines.append(f"{indent}error: {data['error']['text']}")
        return lines
    requested, served = data["model_requested"], data["model_served"]
    if requested or served:
        model = f"{requested or '?'} → {served}" if served else str(requested)
        lines.append(f"{indent}model: {model}")
    error = data["error"]
    if error is not None:
        lines.append(f"{indent}error: {error['text']}")
        return lines
    if data["service_tier"] is not None:
        lines.append(f"{indent}tier: {data['service_tier']}")
    if data["finish_reasons"]:
        reasons = ", ".join(str(r) for r in data["finish_reasons"])
        lines.append(f"{indent}finish: {reasons}")
    usage = data["usage"]
    if usage is not None:
        prompt, completion, total = (
            usage["prompt_tokens"],
            usage["completion_tokens"],
            usage["total_tokens"],
        )
        lines.append(f"{indent}usage: {prompt} prompt + {completion} completion = {total} total")
    lines.append(
        f"{indent}streamed ({plural(data['chunks'], 'chunk')})"
        if data["streamed"]
        else f"{indent}not streamed"
    )
    for violation in data["violations"]:
        where = f"{violation['field']}: " if violation["field"] else ""
        lines.append(f"{indent}invalid: {where}{violation['message']}")
    for choice in data["choices"]:
        label = f"{indent}[{choice['index']}]"
        calls = choice["tool_calls"]
        if choice["content"] and choice["content"].strip():
            lines.append(f"{label} {_first_line(choice['content'])}")
        elif choice["refusal"]:
            lines.append(f"{label} refusal: {_first_line(choice['refusal'])}")
        elif not calls:
            lines.append(f"{label} (no content)")
        for call in calls:
            arguments = call["arguments"]
            if not isinstance(arguments, str):
                arguments = "" if arguments is None else json.dumps(arguments)
            text = shorten(" ".join(arguments.split()), _ARGUMENTS_WIDTH)
            lines.append(f"{label} {call['name'] or '?'}({text})")
    return lines


def _load_one(argument: str) -> Cassette:
    from pytest_chatresp.cassette import load_cassette

    if not os.path.lexists(argument):
        raise UsageError(f"no such file or directory: {argument}")
    if os.path.isdir(argument):
        raise UsageError(f"{argument} is a directory; show takes one cassette file")
    return load_cassette(argument)  # refuses a FIFO, a device, a link to nothing, by name


def run(args: argparse.Namespace) -> int:
    cassette = _load_one(args.cassette)
    exchanges = [_exchange_data(exchange) for exchange in cassette.exchanges]
    if args.json:
        document = {"path": display_path(cassette.path), "exchanges": exchanges}
        out(json.dumps(document, indent=2, ensure_ascii=False, default=str))
        return EXIT_OK
    if not exchanges:
        out(f"{display_path(cassette.path)}: no exchanges")
    for data in exchanges:
        for line in _show_lines(data):
            out(line)
    return EXIT_OK
