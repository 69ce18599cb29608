"""The readable cassette format: JSON bodies as YAML structure, streams as lists of events.

vcrpy stores a JSON body as one escaped string and a stream as one blob, so a re-recorded
cassette is an unreadable wall in a review. The readable format stays a vcrpy cassette, written
and read through a serializer registered with vcrpy (its reading half is
:func:`pytest_chatresp.cassette.document.read_document`, which writes readable bodies back with
:func:`to_plain`), but stores:

- a JSON request or response body as structure under ``body: {json: …}``;
- a server-sent event stream as ``body: {events: [{data: …}, …, {data: '[DONE]'}]}``;
- a compressed response (gzip, deflate, brotli) decoded and its ``Content-Encoding``
  dropped, as vcrpy's own ``decode_compressed_response`` does;
- other multi-line text as YAML block literals.

A body is stored as structure only when writing the structure back gives the recorded bytes
exactly (the ``format`` key says how), so replay hands the client the same bytes. Anything else
stays a string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .decoding import UnreadableBody, codings, decode

__all__ = [
    "FORMAT_KEY",
    "FORMAT_VALUE",
    "decompressed",
    "header_values",
    "is_readable",
    "normalized",
    "serialize",
    "stored_decoded",
    "to_plain",
]

FORMAT_KEY = "chatresp_format"
FORMAT_VALUE = "readable-1"

_Dump = Callable[[Any], str]
_FORMATS: dict[str, _Dump] = {
    "compact": lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False),
    "compact-ascii": lambda v: json.dumps(v, separators=(",", ":")),
    "spaced": json.dumps,
    "spaced-unicode": lambda v: json.dumps(v, ensure_ascii=False),
    "indent2": lambda v: json.dumps(v, indent=2, ensure_ascii=False),
    "indent2-newline": lambda v: json.dumps(v, indent=2, ensure_ascii=False) + "\n",
}


def _json_formats(text: str) -> tuple[list[str], Any]:
    """The formats that write ``text``'s JSON back exactly (in order of preference), and the
    value; no format for text that is not JSON or that JSON would write differently."""
    if not text.lstrip().startswith(("{", "[")):
        return [], None
    try:
        value = json.loads(text)
    except ValueError:
        return [], None
    return [name for name, dump in _FORMATS.items() if dump(value) == text], value


def _json_format(text: str) -> tuple[str, Any] | None:
    """The first format that writes ``text``'s JSON back exactly, and the value; else ``None``."""
    names, value = _json_formats(text)
    return (names[0], value) if names else None


def _events(text: str) -> tuple[str, list[Any]] | None:
    """A ``data:``-only SSE stream as (format, [value or '[DONE]']), if it rebuilds exactly."""
    if not text.startswith("data: ") or not text.endswith("\n\n"):
        return None
    pieces = text[: -len("\n\n")].split("\n\n")
    datas = []
    for piece in pieces:
        if not piece.startswith("data: ") or "\n" in piece:
            return None
        datas.append(piece[len("data: ") :])
    # One format writes every event back: an ASCII-only chunk fits several, so keep those that
    # fit all the chunks so far.
    possible: list[str] | None = None
    events: list[Any] = []
    for data in datas:
        if data == "[DONE]":
            events.append({"data": data})
            continue
        names, value = _json_formats(data)
        possible = names if possible is None else [n for n in possible if n in names]
        if not possible:
            return None
        events.append({"data": value})
    if not possible:
        return None
    return possible[0], events


def _rebuild_events(body: dict[str, Any]) -> str:
    dump = _dump_for(body)
    out = []
    for event in body["events"]:
        data = event.get("data") if isinstance(event, dict) else event
        out.append("data: " + (data if data == "[DONE]" else dump(data)) + "\n\n")
    return "".join(out)


def _readable_body(text: Any) -> Any:
    if not isinstance(text, str) or not text:
        return None
    found = _json_format(text)
    if found is not None:
        return {"json": found[1], "format": found[0]}
    stream = _events(text)
    if stream is not None:
        return {"events": stream[1], "format": stream[0]}
    return None


def header_values(headers: Any, name: str) -> list[str]:
    """Every value of the header ``name`` (lower case; any case in ``headers``) of a stored
    request or response, as text."""
    if not isinstance(headers, Mapping):
        return []
    return [
        str(item)
        for key, value in headers.items()
        if str(key).lower() == name
        for item in (value if isinstance(value, list | tuple) else [value])
    ]


def stored_decoded(headers: dict[str, Any], text: str) -> None:
    """Make a stored response's ``headers`` fit its body, now stored decoded as ``text``: its
    ``Content-Encoding`` dropped, its ``Content-Length`` the length of the text."""
    for key in [k for k in headers if str(k).lower() == "content-encoding"]:
        del headers[key]
    for key in [k for k in headers if str(k).lower() == "content-length"]:
        headers[key] = [str(len(text.encode("utf-8")))]


def decompressed(response: Any) -> Any:
    """A copy of a vcrpy response dict with a compressed body stored decoded (the header
    dropped)."""
    if not isinstance(response, dict):
        return response
    copy = {**response, "headers": dict(response.get("headers") or {})}
    copy["body"] = dict(response.get("body") or {})
    _decompressed(copy)
    return copy


def _decompressed(response: dict[str, Any]) -> None:
    body = response.get("body")
    headers = response.get("headers")
    if not isinstance(body, dict) or not isinstance(headers, dict):
        return
    raw = body.get("string")
    steps = codings(header_values(headers, "content-encoding"))
    if not isinstance(raw, bytes) or not (steps or raw.startswith(b"\x1f\x8b")):
        return
    try:
        text = decode(raw, steps).decode("utf-8")
    except (UnreadableBody, UnicodeDecodeError):
        return  # kept as it was recorded; the reader says what is wrong with it
    body["string"] = text
    stored_decoded(headers, text)


def to_readable(document: dict[str, Any]) -> dict[str, Any]:
    """A plain vcrpy cassette document in the readable layout (a new document)."""
    interactions = []
    for interaction in document.get("interactions", []):
        request = dict(interaction["request"])
        response = dict(interaction["response"])
        response["headers"] = dict(response.get("headers") or {})
        response["body"] = dict(response.get("body") or {})
        _decompressed(response)
        readable = _readable_body(request.get("body"))
        if readable is not None:
            request["body"] = readable
        readable = _readable_body(response["body"].get("string"))
        if readable is not None:
            response["body"] = readable
        interactions.append({"request": request, "response": response})
    out: dict[str, Any] = {FORMAT_KEY: FORMAT_VALUE, "interactions": interactions}
    for key, value in document.items():
        if key not in ("interactions", FORMAT_KEY):
            out[key] = value
    return out


def is_readable(document: Any) -> bool:
    return isinstance(document, dict) and document.get(FORMAT_KEY) == FORMAT_VALUE


class ReadableFormatError(ValueError):
    """A body of a readable cassette that cannot be written back: where, and why."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(message)
        self.index, self.field = index, field


def _dump_for(body: dict[str, Any]) -> Callable[[Any], str]:
    name = str(body.get("format", "compact"))
    if name not in _FORMATS:
        raise ValueError(f"unknown format {name!r} (known: {', '.join(_FORMATS)})")
    return _FORMATS[name]


def _plain_body(body: Any) -> Any:
    if isinstance(body, dict) and "json" in body:
        return _dump_for(body)(body["json"])
    if isinstance(body, dict) and "events" in body:
        return _rebuild_events(body)
    return body


def to_plain(document: Any) -> Any:
    """A document in vcrpy's plain layout: readable bodies written back, and the layouts of
    other recorders (:func:`normalized`) turned into vcrpy's own. A document already plain is
    returned as it is.

    Raises :class:`ReadableFormatError` on a malformed readable body; the reader turns it into
    a ``CassetteError``.
    """
    if is_readable(document) and isinstance(document.get("interactions"), list):
        document = _readable_to_plain(document)
    return normalized(document)


def _readable_to_plain(document: dict[str, Any]) -> dict[str, Any]:
    interactions = []
    for index, interaction in enumerate(document["interactions"]):
        if not isinstance(interaction, dict):
            interactions.append(interaction)
            continue
        request = interaction.get("request")
        response = interaction.get("response")
        field = "request.body"
        try:
            if isinstance(request, dict):
                request = {**request, "body": _plain_body(request.get("body"))}
            field = "response.body"
            if isinstance(response, dict):
                body = response.get("body")
                if isinstance(body, dict) and ("json" in body or "events" in body):
                    response = {**response, "body": {"string": _plain_body(body)}}
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            raise ReadableFormatError(index, field, f"{type(exc).__name__}: {exc}") from None
        interactions.append({**interaction, "request": request, "response": response})
    plain = {k: v for k, v in document.items() if k != FORMAT_KEY}
    plain["interactions"] = interactions
    return plain


# --- other recorders' layouts -------------------------------------------------------------------


def _parsed_text(value: Any) -> Any:
    """A ``parsed_body`` as the text it stands for (a stream stays the text it is)."""
    if isinstance(value, str) and value.startswith(("data:", "event:", ":")):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError, RecursionError):
        return None


def _other_layout(part: Any, response: bool) -> bool:
    if not isinstance(part, dict):
        return False
    return "parsed_body" in part or (response and "status_code" in part and "status" not in part)


def _normalized_part(part: dict[str, Any], response: bool) -> dict[str, Any]:
    out = dict(part)
    if "parsed_body" in out:
        text = _parsed_text(out.pop("parsed_body"))
        out["body"] = {"string": text} if response else text
    if response and "status_code" in out and "status" not in out:
        code = out.pop("status_code")
        out["status"] = {"code": code, "message": ""}
        if "content" in out and "body" not in out:
            out["body"] = {"string": out.pop("content")}
        out.pop("http_version", None)
    return out


def normalized(document: Any) -> Any:
    """A cassette of another recorder's layout in vcrpy's plain one, for replay through vcrpy:

    - pydantic-ai's ``parsed_body`` (a JSON body stored as structure) becomes ``body``, the JSON
      text (requests match on JSON as data, so the text's spacing does not matter);
    - vcrpy's older httpx layout (``status_code``, ``content``) becomes ``status`` and
      ``body: {string: …}``, which every client vcrpy patches can replay.

    A document with neither is returned as it is; the others are copied, never changed.
    """
    if not isinstance(document, dict) or not isinstance(document.get("interactions"), list):
        return document
    interactions = document["interactions"]
    if not any(
        isinstance(i, dict)
        and (_other_layout(i.get("request"), False) or _other_layout(i.get("response"), True))
        for i in interactions
    ):
        return document
    converted = []
    for interaction in interactions:
        if not isinstance(interaction, dict):
            converted.append(interaction)
            continue
        copy = dict(interaction)
        for key, response in (("request", False), ("response", True)):
            if _other_layout(copy.get(key), response):
                copy[key] = _normalized_part(copy[key], response)
        converted.append(copy)
    return {**document, "interactions": converted}


# --- the vcrpy serializer -----------------------------------------------------------------------


def _dumper() -> type[Any]:
    import yaml

    base: type[Any] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc]
        def ignore_aliases(self, data: Any) -> bool:
            return True  # no &id001 / *id001: each value written out where it is

    def represent_str(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value.rstrip("\n") else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    return Dumper


def serialize(cassette_dict: dict[str, Any]) -> str:
    """vcrpy serializer: the readable YAML of a cassette."""
    import yaml

    readable = to_readable(cassette_dict)
    return str(
        yaml.dump(
            readable,
            Dumper=_dumper(),
            sort_keys=False,
            allow_unicode=True,
            width=100,
            default_flow_style=False,
        )
    )
