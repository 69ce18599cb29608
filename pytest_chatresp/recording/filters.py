"""What the recorder scrubs as it records, and the last scan before a cassette is written.

vcrpy hooks apply the one secret policy (:mod:`pytest_chatresp.hygiene.policy`): a secret
header's value is learned, then replaced by ``REDACTED`` wherever it appears in the request and
the response; :func:`leaks` scans what is about to be written, and the file's text read back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pytest_chatresp.cassette import read_document
from pytest_chatresp.cassette.decoding import UnreadableBody, codings, decode
from pytest_chatresp.cassette.readable import header_values, stored_decoded
from pytest_chatresp.errors import CassetteError
from pytest_chatresp.hygiene.policy import REDACTED, Secrets, redact_text

from ._vcrpy import request_as_dict

__all__ = [
    "header_filter",
    "leaks",
    "learned_replaced_in_request",
    "learned_replaced_in_response",
    "scrub_headers",
]


def header_filter(secrets: Secrets, side: str) -> Callable[..., str]:
    """A vcrpy header filter: the value is learned (looked for elsewhere), then REDACTED."""

    def redacted(key: str, value: Any, request: Any = None) -> str:
        for item in value if isinstance(value, list | tuple) else [value]:
            secrets.learn(str(item), f"value of {side} header {str(key).lower()}")
        return REDACTED

    return redacted


def scrub_headers(headers: Any, names: Iterable[str], secrets: Secrets) -> None:
    if not isinstance(headers, dict):
        return
    lowered = {name.lower() for name in names}
    redacted = header_filter(secrets, "response")
    for key in list(headers):
        if str(key).lower() in lowered:
            value = headers[key]
            if isinstance(value, list):
                headers[key] = [redacted(key, item) for item in value]
            else:
                headers[key] = redacted(key, value)


def _replaced_body(body: Any, encoding: Any, secrets: Secrets) -> str | None:
    """A body with the known secrets replaced, decoded; ``None`` when none is in it."""
    if isinstance(body, bytes | bytearray):
        try:
            text = decode(bytes(body), codings(encoding)).decode("utf-8")
        except (UnreadableBody, UnicodeDecodeError):
            return None  # the last scan reports it if it holds a secret
    elif isinstance(body, str):
        text = body
    else:
        return None
    new = secrets.replace(text, learned_only=True)
    return None if new == text else new


def learned_replaced_in_request(request: Any, secrets: Secrets) -> None:
    """A request's URI, headers and body with the values scrubbed so far replaced.

    Done as the request is scrubbed, so that a replayed request is changed the same way and
    still matches its recording.
    """
    if not secrets.learned:
        return

    def replace(text: str) -> str:
        return secrets.replace(text, learned_only=True)

    request.uri = replace(request.uri)
    request.headers = {k: replace(str(v)) for k, v in request.headers.items()}
    encoding = header_values(request.headers, "content-encoding")
    body = _replaced_body(request.body, encoding, secrets)
    if body is not None:
        request.body = body


def learned_replaced_in_response(response: Any, secrets: Secrets) -> Any:
    """A copy of a response with every value scrubbed elsewhere replaced wherever it is (a 401
    body that repeats the bearer token); a body that changes is stored decoded."""
    if not secrets.learned or not isinstance(response, dict):
        return response
    response = dict(response)
    headers = dict(response.get("headers") or {})
    for key, value in headers.items():
        values = value if isinstance(value, list) else [value]
        headers[key] = [secrets.replace(str(v), learned_only=True) for v in values]
    raw = response.get("body")
    string = raw.get("string") if isinstance(raw, dict) else None
    body = _replaced_body(string, header_values(headers, "content-encoding"), secrets)
    if body is not None:
        response["body"] = {**raw, "string": body} if isinstance(raw, dict) else body
        stored_decoded(headers, body)
    response["headers"] = headers
    return response


def leaks(cassette_dict: Any, data: str, secrets: Secrets) -> list[tuple[str, str]]:
    """The last scan: what is about to be written, and the file's text read back."""
    from pytest_chatresp.hygiene.scan import find_secrets  # only when a cassette is written

    leaks = find_secrets(
        {
            "requests": [request_as_dict(r) for r in cassette_dict["requests"]],
            "responses": cassette_dict["responses"],
        },
        secrets,
    )
    kinds = {kind for _, kind in leaks}
    try:
        written: Any = read_document("<cassette>", data.encode("utf-8"))
    except CassetteError:
        written = None
    for where, kind in find_secrets([data, written], secrets):
        if kind not in kinds:
            kinds.add(kind)
            leaks.append((f"the cassette file ({where.partition('.')[2] or 'text'})", kind))
    # A field path is made of the document's keys, and a key may be the secret itself.
    return [(redact_text(where, secrets), kind) for where, kind in leaks]
