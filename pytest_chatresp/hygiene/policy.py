"""The one secret policy: what is secret, how it is replaced, and how a message hides it.

Recording, ``chatresp scrub``, ``chatresp audit`` and every message use these definitions:

- the names of secret request and response headers and query parameters;
- URL userinfo (``https://user:key@host``), which is removed from a recorded URI;
- the values of environment variables named ``*_KEY``, ``*_APIKEY``, ``*_TOKEN``, ``*_SECRET``
  or ``*_PASSWORD`` (:data:`MIN_SECRET_LENGTH` characters or more);
- the values taken from a scrubbed header, query parameter or userinfo, which are then replaced
  wherever else they appear (a 401 body that repeats the bearer token);
- key-shaped strings (``sk-…``) and ``Basic`` credentials.

:func:`redact_text` hides all of them in any text meant for people.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus, unquote, unquote_plus

__all__ = [
    "BASIC_CREDENTIAL",
    "DEFAULT_QUERY_PARAMETERS",
    "DEFAULT_REQUEST_HEADERS",
    "DEFAULT_RESPONSE_HEADERS",
    "KEY_PATTERNS",
    "MIN_SECRET_LENGTH",
    "OPENAI_KEY",
    "REDACTED",
    "SECRET_ENV_SUFFIXES",
    "Secrets",
    "basic_credentials",
    "credentials_in",
    "encoded_forms",
    "redact_text",
    "scrub_uri",
    "scrubbed_match",
    "secret_values",
]

REDACTED = "REDACTED"

DEFAULT_REQUEST_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "openai-organization",
    "openai-project",
    "cookie",
)
DEFAULT_RESPONSE_HEADERS: tuple[str, ...] = ("set-cookie", "openai-organization", "openai-project")
DEFAULT_QUERY_PARAMETERS: tuple[str, ...] = (
    "key",
    "api_key",
    "apikey",
    "api-key",
    "access_token",
    "token",
    "sig",
)

SECRET_ENV_SUFFIXES = ("_KEY", "_APIKEY", "_TOKEN", "_SECRET", "_PASSWORD")
#: Shorter environment values are too likely to be ordinary words ("Echo", "true").
MIN_SECRET_LENGTH = 8
#: A value taken from a secret header is looked for elsewhere only when it is this long and
#: mixes letters and digits, so that an organisation name such as ``acme`` is not replaced in
#: every body.
MIN_LEARNED_LENGTH = 10

OPENAI_KEY = re.compile(r"sk-[A-Za-z0-9_-]{20,}")
BASIC_CREDENTIAL = re.compile(r"(?i)\bbasic\s+([A-Za-z0-9+/_-]{4,}={0,2})")
#: Patterns of secrets whose value is not known: ``(pattern, description)``.
KEY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (OPENAI_KEY, "a string shaped like an OpenAI API key (sk-…)"),
)
_AUTH_SCHEME = re.compile(r"(?i)(?:bearer|basic|token|bot|key)\s+(\S+)")
_MESSAGE_CREDENTIAL = re.compile(r"(?i)\b(?:bearer|basic)\s+([^\s'\"]+)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]*@")
_QUERY_PAIR = re.compile(r"([?&;])([^=&#\s]+)=([^&#\s]*)")


def secret_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables that look like credentials: ``{name: value}``."""
    environ = os.environ if environ is None else environ
    found = {}
    for name in environ:  # a value is read only for a name that may hold a credential
        if name.upper().endswith(SECRET_ENV_SUFFIXES):
            value = environ[name]
            if len(value) >= MIN_SECRET_LENGTH and value != REDACTED:
                found[name] = value
    return found


def basic_credentials(token: str) -> tuple[str, str] | None:
    """``(user, password)`` of a ``Basic`` credential's base64 token, if it is one."""
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        text = raw.decode("utf-8")
    except (ValueError, binascii.Error):
        return None
    user, colon, password = text.partition(":")
    if not colon or not text.isprintable():
        return None
    return user, password


def _credential_shaped(value: str) -> bool:
    return (
        len(value) >= MIN_LEARNED_LENGTH
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and value != REDACTED
    )


def credentials_in(value: str) -> list[str]:
    """What to look for elsewhere once a secret header's or parameter's value is scrubbed.

    The value itself, the credential of ``Bearer …``, and the password of ``Basic …``; each
    only when shaped like a credential (see :data:`MIN_LEARNED_LENGTH`).
    """
    out = [value]
    match = _AUTH_SCHEME.fullmatch(value.strip())
    if match:
        out.append(match.group(1))
        pair = basic_credentials(match.group(1))
        if pair is not None:
            out.append(pair[1])
    return [v for v in dict.fromkeys(out) if _credential_shaped(v)]


@functools.lru_cache(maxsize=256)
def encoded_forms(value: str) -> tuple[str, ...]:
    """How ``value`` may be written inside other text: as is, URL-encoded, JSON-escaped, its
    UTF-8 bytes in hex (lower and upper case), and its base64 and base64url forms at each of
    the three byte alignments (so that it is found inside a longer encoded string too)."""
    import json

    forms = [value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]]
    raw = value.encode("utf-8")
    if len(raw) >= MIN_SECRET_LENGTH:
        forms.extend([raw.hex(), raw.hex().upper()])
        for offset in range(3):
            encoded = base64.b64encode(b"\x00" * offset + raw).decode("ascii")
            start = -(-8 * offset // 6)
            end = 8 * (offset + len(raw)) // 6
            core = encoded[start:end]
            forms.extend([core, core.replace("+", "-").replace("/", "_")])
    return tuple(form for form in dict.fromkeys(forms) if form)


@dataclass
class Secrets:
    """The secret values known while one cassette is written or scrubbed.

    ``environment`` holds the environment's values (:func:`secret_values`); :meth:`learn` adds
    to ``learned`` what a scrubbed header, query parameter or userinfo held. Each maps a value
    to what it is (``$NAME``, ``value of request header authorization``); the value itself is
    never shown.
    """

    environment: dict[str, str] = field(default_factory=dict)
    learned: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Secrets:
        found = secret_values(environ)
        return cls({value: f"${name}" for name, value in sorted(found.items())})

    def learn(self, value: str, what: str) -> None:
        """Remember the credentials in a scrubbed value (see :func:`credentials_in`)."""
        for credential in credentials_in(value):
            self.learned.setdefault(credential, what)

    def longest_first(self) -> list[tuple[str, str]]:
        """Every known value and what it is, the longest first."""
        both = {**self.learned, **self.environment}
        return sorted(both.items(), key=lambda item: (-len(item[0]), item[0]))

    def replace(self, text: str, *, learned_only: bool = False) -> str:
        """``text`` with every known value (or only the learned ones), in each of its written
        forms, replaced by REDACTED."""
        values = self.learned if learned_only else dict(self.longest_first())
        for value in sorted(values, key=lambda v: (-len(v), v)):
            for form in encoded_forms(value):
                if form in text:
                    text = text.replace(form, REDACTED)
        return text


def scrub_uri(uri: str, names: Iterable[str]) -> tuple[str, list[tuple[str, str]]]:
    """``uri`` without its userinfo and with secret query parameters' values ``REDACTED``,
    the rest of its text untouched; and ``[(what, value)]`` of each part removed, the value
    decoded (``("query parameter token", "…")``, ``("URL userinfo", "…")``).

    Query parameter names are compared without case.
    """
    found: list[tuple[str, str]] = []
    scheme = _SCHEME.match(uri)
    if scheme is not None:
        start = scheme.end()
        end = min((i for i in (uri.find(c, start) for c in "/?#") if i >= 0), default=len(uri))
        userinfo, at, _ = uri[start:end].rpartition("@")
        if at:
            user, _, password = userinfo.partition(":")
            found.extend(("URL userinfo", unquote(part)) for part in (password, user) if part)
            uri = uri[:start] + uri[start + len(userinfo) + 1 :]
    head, mark, rest = uri.partition("?")
    if not mark:
        return uri, found
    query, hash_mark, fragment = rest.partition("#")
    lowered = {name.lower() for name in names}
    pairs = []
    replaced = False
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        key = unquote_plus(name).lower()
        if equals and key in lowered and value and unquote_plus(value) != REDACTED:
            found.append((f"query parameter {key}", unquote_plus(value)))
            pairs.append(f"{name}={REDACTED}")
            replaced = True
        else:
            pairs.append(pair)
    if not replaced:
        return uri, found
    return f"{head}?{'&'.join(pairs)}{hash_mark}{fragment}", found


def redact_text(text: str, secrets: Secrets | None = None) -> str:
    """``text`` fit for a message: URL userinfo, secret query parameters, ``Bearer`` and
    ``Basic`` credentials, key-shaped strings and known secret values replaced by REDACTED.

    ``secrets`` defaults to the environment's values.
    """
    known = secrets if secrets is not None else Secrets.from_environment()
    text = known.replace(text)
    # The case-blind patterns are slow over a long text: run only where their text can be.
    lowered = text.casefold()
    if "://" in text and "@" in text:
        text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    secret_names = set(DEFAULT_QUERY_PARAMETERS)

    def query(match: re.Match[str]) -> str:
        if unquote(match.group(2)).lower() in secret_names:
            return f"{match.group(1)}{match.group(2)}={REDACTED}"
        return match.group(0)

    text = _QUERY_PAIR.sub(query, text)
    # "bas", not "basic": the pattern's case-blind "i" also matches U+0130 and U+0131 (the
    # Turkish capital and dotless i), which casefold to other letters.
    if "bearer" in lowered or "bas" in lowered:
        text = _MESSAGE_CREDENTIAL.sub(
            lambda m: m.group(0)[: m.start(1) - m.start(0)] + REDACTED, text
        )
    for pattern, _ in KEY_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


@functools.lru_cache(maxsize=512)
def _scrubbed_pattern(recorded: str) -> re.Pattern[str]:
    pieces = (re.escape(piece) for piece in recorded.split(REDACTED))
    return re.compile(r"\S+?".join(pieces), re.DOTALL)


def scrubbed_match(recorded: str, live: str) -> bool:
    """Whether a live string is the recorded one before scrubbing: each ``REDACTED`` in the
    recording stands for the secret it replaced (any run of non-space characters), so that a
    request holding a secret still matches its recording, with the key or without it."""
    if recorded == live:
        return True
    if REDACTED not in recorded:
        return False
    return _scrubbed_pattern(recorded).fullmatch(live) is not None
