"""Scrubbing secrets out of cassette files already on disk, keeping everything else as it was.

The rules are the recording rules (:mod:`pytest_chatresp.hygiene.policy`): the values of secret
request and response headers and of secret query parameters become ``REDACTED``, URL userinfo is
removed, and so is anything shaped like an OpenAI key and the value of any credential
environment variable, wherever it appears and in any written form, bodies decoded by their
``Content-Encoding`` (:mod:`pytest_chatresp.cassette.decoding`). A value found in a secret
header, query parameter or userinfo is also replaced wherever else it appears. The scrubbed
document is then scanned (:mod:`pytest_chatresp.hygiene.scan`): what the scan still finds is
reported.

The file is never re-serialized: each value that changes is rewritten in place, in the text,
and only it (an encoded body is decoded, scrubbed and encoded again). The result is parsed
again and compared value by value with what was intended before anything is written; a file
that cannot be scrubbed safely is reported, not half-written. No message ever holds a secret.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_chatresp.cassette.decoding import UnreadableBody, codings, decode, encode
from pytest_chatresp.errors import CassetteError, display_path, shorten

from .policy import (
    DEFAULT_QUERY_PARAMETERS,
    DEFAULT_REQUEST_HEADERS,
    DEFAULT_RESPONSE_HEADERS,
    OPENAI_KEY,
    REDACTED,
    Secrets,
    encoded_forms,
    scrub_uri,
    secret_values,
)
from .text import (
    Change,
    FieldPath,
    Scalar,
    base64_bytes,
    emitted,
    is_json,
    json_scalars,
    render,
    stored_codings,
    targeted,
    verified,
    yaml_scalars,
)

__all__ = ["ScrubResult", "ScrubRules", "scrub_file", "scrub_text"]


@dataclass(frozen=True)
class ScrubRules:
    """What is secret: header and query parameter names, and literal values (by what they are).

    Build it with :meth:`default`, which adds the recording defaults and the environment.
    """

    request_headers: frozenset[str]
    response_headers: frozenset[str]
    query_parameters: frozenset[str]
    #: ``(value, description)``, e.g. ``("…", "$MY_SERVICE_TOKEN")``; never shown, only described.
    values: tuple[tuple[str, str], ...] = ()

    @classmethod
    def default(
        cls,
        *,
        headers: Iterable[str] = (),
        query_parameters: Iterable[str] = (),
        environment: bool = True,
    ) -> ScrubRules:
        """The recording rules, plus ``headers`` (request and response) and query parameters."""
        extra = {name.strip().lower() for name in headers if name.strip()}
        values = (
            tuple((value, f"${name}") for name, value in sorted(secret_values().items()))
            if environment
            else ()
        )
        return cls(
            request_headers=frozenset({*DEFAULT_REQUEST_HEADERS, *extra}),
            response_headers=frozenset({*DEFAULT_RESPONSE_HEADERS, *extra}),
            query_parameters=frozenset(
                {
                    *DEFAULT_QUERY_PARAMETERS,
                    *(name.strip().lower() for name in query_parameters if name.strip()),
                }
            ),
            values=values,
        )


@dataclass(frozen=True)
class ScrubResult:
    """What scrubbing one file found: one description per value replaced, and the new text."""

    path: Path
    found: tuple[str, ...]
    text: str | None = None
    #: ``(field path, what)`` of the secrets the scan still finds once scrubbed (only with
    #: ``strict=False``; otherwise they raise)
    remaining: tuple[tuple[str, str], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.found)

    @property
    def shown(self) -> str:
        return display_path(self.path)

    def describe(self) -> str:
        """`3 values (request header authorization, …)`: a repeated kind gets its count."""
        counts: dict[str, int] = {}
        for description in self.found:
            counts[description] = counts.get(description, 0) + 1
        kinds = ", ".join(
            f"{description} x{count}" if count > 1 else description
            for description, count in counts.items()
        )
        total = len(self.found)
        return f"{total} value{'' if total == 1 else 's'} ({kinds})"


# --- what changes -------------------------------------------------------------------------------


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(path: FieldPath) -> str:
    """Where a value is, in words: ``request header authorization``, ``response body``."""
    if (
        len(path) >= 3
        and path[0] == "interactions"
        and isinstance(path[1], int)
        and path[2] in ("request", "response")
    ):
        part, rest = str(path[2]), path[3:]
        if not rest:
            return part
        if rest[0] in ("body", "parsed_body", "content"):
            return f"{part} body"
        if rest[0] == "headers" and len(rest) >= 2:
            return f"{part} header {rest[1]}"
        if rest[0] == "uri":
            return "request uri"
        return f"{part} {_dotted(rest)}"
    return _dotted(path) or "the document"


def _secret_header(path: FieldPath, rules: ScrubRules) -> str | None:
    """``request header authorization`` when the path is a secret header's value."""
    if len(path) < 5 or path[0] != "interactions" or path[3] != "headers":
        return None
    names = {"request": rules.request_headers, "response": rules.response_headers}.get(str(path[2]))
    name = str(path[4]).lower()
    if names is None or name not in names:
        return None
    return f"{path[2]} header {name}"


def _is_uri(path: FieldPath) -> bool:
    return len(path) == 4 and path[0] == "interactions" and path[2:] == ("request", "uri")


@dataclass
class _Scrubber:
    """The value-level rules, applied to strings and encoded payloads."""

    redacted: str
    key_pattern: re.Pattern[str]
    #: ``(value, description)``, longest first
    values: list[tuple[str, str]] = field(default_factory=list)

    def text(self, text: str, where: str) -> tuple[str, list[str], list[str]]:
        """``text`` scrubbed, a description per value replaced, and the strings replaced.

        A known value is replaced in each of its written forms (URL-encoded, base64, …).
        """
        found: list[str] = []
        replaced: list[str] = []
        for value, what in self.values:
            for form in encoded_forms(value):
                count = text.count(form)
                if count:
                    text = text.replace(form, self.redacted)
                    found.extend([f"{what} in {where}"] * count)
                    replaced.append(form)

        def key(match: re.Match[str]) -> str:
            found.append(f"sk- key in {where}")
            replaced.append(match.group(0))
            return self.redacted

        text = self.key_pattern.sub(key, text)
        return text, found, replaced

    def clean(self, text: str) -> str:
        """``text`` with every secret replaced: for what is shown, and to compare paths."""
        return self.text(text, "")[0]

    def payload(
        self, raw: bytes, where: str, steps: tuple[str, ...]
    ) -> tuple[bytes, bytes, list[str]] | None:
        """An encoded body scrubbed: ``(new encoded bytes, new decoded bytes, found)``."""
        try:
            data = decode(raw, steps)
        except UnreadableBody:
            return None  # the last scan says the file cannot be shown to be clean
        new_text, found, _ = self.text(data.decode("utf-8", "surrogateescape"), where)
        if not found:
            return None
        new = new_text.encode("utf-8", "surrogateescape")
        try:
            encoded = encode(new, steps) if data != raw else new
        except UnreadableBody:
            return None
        return encoded, new, found


def _body_codings(scalars: list[Scalar]) -> dict[tuple[int, str], tuple[str, ...]]:
    """The ``Content-Encoding`` of each request and response: ``{(index, side): codings}``."""
    found: dict[tuple[int, str], list[str]] = {}
    for scalar in scalars:
        path = scalar.path
        if (
            not scalar.key
            and len(path) >= 5
            and path[0] == "interactions"
            and isinstance(path[1], int)
            and path[3] == "headers"
            and str(path[4]).lower() == "content-encoding"
        ):
            found.setdefault((path[1], str(path[2])), []).append(scalar.value)
    return {where: codings(values) for where, values in found.items()}


def _codings_at(
    path: FieldPath, encodings: dict[tuple[int, str], tuple[str, ...]]
) -> tuple[str, ...]:
    if len(path) >= 4 and path[0] == "interactions" and path[3] in ("body", "content"):
        index = path[1]
        if isinstance(index, int):
            return encodings.get((index, str(path[2])), ())
    return ()


def _plan(scalars: list[Scalar], rules: ScrubRules) -> tuple[list[Change], _Scrubber]:
    changes: dict[int, Change] = {}
    learned = Secrets()
    # First the secret headers, query parameters and userinfo: their values become REDACTED
    # whole, and are then looked for everywhere else.
    for position, scalar in enumerate(scalars):
        if scalar.binary or scalar.key:
            continue
        header = _secret_header(scalar.path, rules)
        if header is not None:
            if scalar.value and scalar.value != REDACTED and not scalar.null:
                learned.learn(scalar.value, f"value of {header}")
                changes[position] = Change(scalar, REDACTED, ((scalar.value, REDACTED),), (header,))
            continue
        if _is_uri(scalar.path):
            uri, parts = scrub_uri(scalar.value, rules.query_parameters)
            if parts:
                for what, value in parts:
                    learned.learn(value, f"value of {what}")
                kinds = tuple(dict.fromkeys(what for what, _ in parts))
                changes[position] = Change(scalar, uri, ((scalar.value, uri),), kinds)
    values = {value: what for value, what in rules.values if value and value != REDACTED}
    for value, what in learned.learned.items():
        values.setdefault(value, what)
    scrubber = _Scrubber(
        REDACTED,
        OPENAI_KEY,
        sorted(values.items(), key=lambda item: (-len(item[0]), item[0])),
    )
    encodings = _body_codings(scalars)
    # Then everything else: literal secrets and key-shaped strings, in text and encoded bodies.
    for position, scalar in enumerate(scalars):
        previous = changes.get(position)
        if previous is not None and (scalar.key or not _is_uri(scalar.path)):
            continue
        change = _scrubbed(scalar, previous, scrubber, _codings_at(scalar.path, encodings))
        if change is not None:
            changes[position] = change
    return [changes[position] for position in sorted(changes)], scrubber


def _scrubbed(
    scalar: Scalar, previous: Change | None, scrubber: _Scrubber, header: tuple[str, ...]
) -> Change | None:
    """The change the literal and key-shaped secrets of one scalar call for, if any."""
    # What is shown never holds a secret, even one in a mapping key on the way.
    where = shorten(scrubber.clean(_where(scalar.path) + (" (a key)" if scalar.key else "")), 80)
    redacted = scrubber.redacted
    if previous is not None:
        text, found, _ = scrubber.text(previous.value, where)
        if not found:
            return None
        return Change(scalar, text, ((scalar.value, text),), (*previous.found, *found))
    if scalar.binary:
        raw = base64_bytes(scalar.value, loose=False)
        steps = stored_codings(raw, header) if raw is not None else ()
        result = scrubber.payload(raw, where, steps) if raw is not None else None
        if result is not None:
            encoded, decoded, found = result
            new = base64.b64encode(encoded).decode("ascii")
            return Change(scalar, new, (), tuple(found), decoded, steps)
        # Base64 that does not decode may still hold a secret in its text: scrub that below.
    text, found, replaced = scrubber.text(scalar.value, where)
    if found:
        pairs = tuple((old, redacted) for old in dict.fromkeys(replaced))
        return Change(scalar, text, pairs, tuple(found))
    if scalar.binary:
        return None
    raw = base64_bytes(scalar.value, loose=True)
    result = scrubber.payload(raw, where, stored_codings(raw, ())) if raw is not None else None
    if result is None:
        return None
    encoded, _, found = result
    new = base64.b64encode(encoded).decode("ascii")
    return Change(scalar, new, ((scalar.value, new),), tuple(found))


def scrub_text(
    text: str, rules: ScrubRules, *, shown: str = "<text>", as_json: bool | None = None
) -> tuple[str, list[str]]:
    """``text`` (a cassette file's text) scrubbed, and a description per value replaced.

    Raises :class:`CassetteError` when the text cannot be read, or cannot be rewritten so that
    only the secrets change.
    """
    new, found, _ = _scrub_text(text, rules, shown, as_json)
    return new, found


def _scrub_text(
    text: str, rules: ScrubRules, shown: str, as_json: bool | None
) -> tuple[str, list[str], Secrets]:
    """:func:`scrub_text`, and every secret value known afterwards (to scan the result)."""
    if as_json is None:
        as_json = is_json(text)

    def scalars(source: str) -> list[Scalar]:
        return json_scalars(source, shown) if as_json else yaml_scalars(source, shown)

    before = scalars(text)
    changes, scrubber = _plan(before, rules)
    known = Secrets(dict(scrubber.values))
    if not changes:
        return text, [], known
    found = [description for change in changes for description in change.found]
    for rewrite in (targeted, emitted):
        new = render(text, changes, rewrite)
        if verified(new, scalars, before, changes, scrubber.clean):
            return new, found, known
    raise CassetteError.single(
        shown, "cannot scrub: the secrets could not be rewritten without changing anything else"
    )


def _digest_updates(before: Any, after: Any) -> dict[str, str]:
    """``{old digest: new digest}`` of the requests scrubbing changed (their URI or body).

    The plugin's provenance metadata identifies each request by a digest of its method, URI
    and body (``metadata.chatresp.exchanges[].request``); a scrubbed request gets its new one.
    """
    from pytest_chatresp.provenance import request_digest

    def digest(request: Any) -> str | None:
        if not isinstance(request, dict):
            return None
        method, uri, body = request.get("method"), request.get("uri"), request.get("body")
        return request_digest(str(method or ""), str(uri or ""), body)

    old = before.get("interactions") if isinstance(before, dict) else None
    new = after.get("interactions") if isinstance(after, dict) else None
    if not isinstance(old, list) or not isinstance(new, list):
        return {}
    updates: dict[str, str] = {}
    for old_interaction, new_interaction in zip(old, new, strict=False):
        if not isinstance(old_interaction, dict) or not isinstance(new_interaction, dict):
            continue
        was, now = digest(old_interaction.get("request")), digest(new_interaction.get("request"))
        if was is not None and now is not None and was != now:
            updates[was] = now
    return updates


def _with_digests(text: str, digests: dict[str, str], shown: str) -> str:
    """The text with the provenance digests of scrubbed requests replaced by their new ones."""
    as_json = is_json(text)

    def scalars(source: str) -> list[Scalar]:
        return json_scalars(source, shown) if as_json else yaml_scalars(source, shown)

    before = scalars(text)
    changes = [
        Change(scalar, digests[scalar.value], ((scalar.value, digests[scalar.value]),), ())
        for scalar in before
        if not scalar.key
        and len(scalar.path) == 5
        and scalar.path[:3] == ("metadata", "chatresp", "exchanges")
        and scalar.path[4] == "request"
        and scalar.value in digests
    ]
    if not changes:
        return text
    for rewrite in (targeted, emitted):
        new = render(text, changes, rewrite)
        if verified(new, scalars, before, changes, str):
            return new
    return text  # a stale digest only costs the provenance of the next recording


def _cleaner(rules: ScrubRules) -> Callable[[str], str]:
    """Replaces the secrets the rules know of (not those learned from a file) in any text."""
    values = sorted({value for value, _ in rules.values}, key=lambda v: (-len(v), v))
    return _Scrubber(REDACTED, OPENAI_KEY, [(value, "") for value in values]).clean


# --- files --------------------------------------------------------------------------------------


def _interaction_count(document: Any, shown: str) -> int:
    from pytest_chatresp.cassette import interactions_of

    return len(interactions_of(document, shown))


def scrub_file(path: str | Path, rules: ScrubRules, *, strict: bool = True) -> ScrubResult:
    """Scrub one cassette file's text; the caller writes :attr:`ScrubResult.text` if it wants.

    Raises :class:`CassetteError` when the file is not a readable cassette, or when the result
    would not read as the same cassette with the secrets gone. The scrubbed document is scanned
    (:func:`~pytest_chatresp.hygiene.scan.find_secrets`): a secret that cannot be replaced
    (a key split across stream events, one inside an encoded string) raises too, or with
    ``strict=False`` is listed in :attr:`ScrubResult.remaining`.
    """
    from pytest_chatresp.cassette import read_cassette_bytes, read_document

    from .scan import find_secrets

    path = Path(path)
    shown = display_path(path)
    data = read_cassette_bytes(path)
    document = read_document(path, data)
    count = _interaction_count(document, shown)
    text = data.decode("utf-8")
    try:
        new, found, known = _scrub_text(text, rules, shown, None)
    except RecursionError:
        raise CassetteError.single(shown, "cannot scrub: nested too deeply") from None
    if not found:
        left = find_secrets(document, known)
        if left and strict:
            raise _remaining(shown, left, rules)
        return ScrubResult(path, (), remaining=_cleaned(left, rules))
    try:
        new_document = read_document(path, new.encode("utf-8", "surrogatepass"))
        same = _interaction_count(new_document, shown) == count
    except CassetteError:
        same = False
    if not same:
        raise CassetteError.single(
            shown, "cannot scrub: the scrubbed file would not read as the same cassette"
        )
    digests = _digest_updates(document, new_document)
    if digests:
        new = _with_digests(new, digests, shown)
    left = find_secrets(new_document, known)
    if left and strict:
        raise _remaining(shown, left, rules)
    return ScrubResult(path, tuple(found), new, _cleaned(left, rules))


def _cleaned(left: list[tuple[str, str]], rules: ScrubRules) -> tuple[tuple[str, str], ...]:
    clean = _cleaner(rules)
    return tuple((shorten(clean(where), 80), kind) for where, kind in left)


def _remaining(shown: str, left: list[tuple[str, str]], rules: ScrubRules) -> CassetteError:
    """The error for a file the scan still finds a secret in, after what can be replaced is."""
    kinds = sorted({f"{kind} in {where}" for where, kind in _cleaned(left, rules)})
    return CassetteError.single(
        shown,
        "cannot scrub: a secret would remain ("
        + "; ".join(kinds)
        + "); remove it by hand and record again",
    )
