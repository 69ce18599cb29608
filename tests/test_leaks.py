"""The leak matrix: a credential sent or answered in every way we know, recorded through the
real openai SDK against the local server, can never be read back from a file written.

Each case records one call with the plugin; then every file under the project is read in every
way a reader could (raw bytes, YAML and JSON, ``!!binary``, gzip, zlib, raw deflate, brotli,
URL-decoding, base64 and base64url, stream events joined) and none may show the credential.
Either the plugin scrubbed it, or the last scan refused the cassette and nothing was written.
Then ``chatresp audit`` and ``chatresp scrub --dry-run`` must report files that hold such leaks.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote_plus

import brotli
import httpx  # noqa: F401  (imported before any pytester run, see test_recording.py)
import openai  # noqa: F401
import pytest
import requests  # noqa: F401
import yaml
from openai_server import OpenAIServer

from pytest_chatresp.cli import main

#: Fake credentials, each saying so; none is a real key.
OPENAI_KEY = "sk-proj-FAKE0leak0matrix0key0000000000000"
GOOGLE_KEY = "FAKE-goog-api-key-0123456789abcdef"
QUERY_TOKEN = "FAKE-query-token-0123456789abcdef"
USERINFO_PASSWORD = "FAKE-userinfo-pass-0123456789"
PROXY_PASSWORD = "FAKE-proxy-pass-0123456789abc"
SERVER_TOKEN = "FAKE-server-only-token-0123456789"

INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

PRELUDE = """\
import base64
import contextlib
import os

import openai
import pytest

URL = os.environ["CHATRESP_TEST_BASE_URL"]
TOOLS = [{"type": "function", "function": {"name": "remember", "parameters": {
    "type": "object", "properties": {"key": {"type": "string"}}}}}]


def call(client, leak, encoding, stream, tools=False):
    headers = {"x-local-leak": leak, **SOURCE_HEADERS}
    if encoding:
        headers["x-local-encoding"] = encoding
    options = {"tools": TOOLS} if tools else {}
    # An NDJSON answer is not what the SDK parses: it raises, the body is recorded all the same.
    expected = (openai.AuthenticationError, ValueError) if leak == "ndjson" else ()
    with contextlib.suppress(openai.AuthenticationError, *expected):
        answer = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hello"}],
            stream=stream,
            extra_headers=headers,
            **options,
        )
        if stream:
            list(answer)
"""


class Source(NamedTuple):
    """Where the credential is sent: how the user's client is made, and what it sends."""

    name: str
    client: str
    #: what the server repeats (``x-local-leak-from``)
    leak_from: str
    secrets: tuple[str, ...]
    #: whether the plugin knows the value before it is answered (scrubbed, then replaced)
    learned: bool = True


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


SOURCES = [
    Source(
        "openai_key", "openai.OpenAI(base_url=URL, max_retries=0)", "authorization", (OPENAI_KEY,)
    ),
    Source(
        "server_token",
        "openai.OpenAI(base_url=URL, max_retries=0)",
        "env:LOCAL_SERVICE_TOKEN",
        (SERVER_TOKEN,),
        learned=False,
    ),
    Source(
        "x_goog_api_key",
        f"openai.OpenAI(base_url=URL, max_retries=0, default_headers={{'x-goog-api-key': {GOOGLE_KEY!r}}})",
        "x-goog-api-key",
        (GOOGLE_KEY,),
    ),
    *(
        Source(
            f"query_{name}",
            f"openai.OpenAI(base_url=URL, max_retries=0, default_query={{{name!r}: {QUERY_TOKEN!r}}})",
            f"query:{name}",
            (QUERY_TOKEN,),
        )
        for name in ("access_token", "token", "apikey")
    ),
    Source(
        "userinfo",
        "openai.OpenAI(base_url=URL.replace('http://', "
        f"'http://leakuser:{USERINFO_PASSWORD}@'), max_retries=0)",
        "authorization",
        (USERINFO_PASSWORD, _basic("leakuser", USERINFO_PASSWORD)),
    ),
    Source(
        "proxy_basic",
        "openai.OpenAI(base_url=URL, max_retries=0, default_headers="
        f"{{'Proxy-Authorization': 'Basic {_basic('proxyuser', PROXY_PASSWORD)}'}})",
        "proxy-authorization",
        (PROXY_PASSWORD, _basic("proxyuser", PROXY_PASSWORD)),
    ),
]

#: ``(test name, leak form, content encoding, streamed, with tools)``
CALLS = [
    ("plain", "plain", None, False, False),
    ("base64", "base64", None, False, False),
    ("base64url", "base64url", None, False, False),
    ("urlencoded", "url", None, False, False),
    ("echoed_in_401", "401", None, False, False),
    ("split_content", "split:content", None, True, False),
    ("split_refusal", "split:refusal", None, True, False),
    ("split_reasoning", "split:reasoning_content", None, True, False),
    ("split_arguments", "split:arguments", None, True, True),
    ("gzip", "plain", "gzip", False, False),
    ("deflate", "base64", "deflate", False, False),
    ("raw_deflate", "plain", "raw-deflate", False, False),
    ("brotli", "base64url", "br", False, False),
    ("brotli_401", "401", "br", False, False),
    ("brotli_split", "split:content", "br", True, False),
    ("hex", "hex", None, False, False),
    # Written with JSON escapes, every character \uXXXX: no text holds the value as it is.
    ("escaped", "escaped", None, False, False),
    ("bom", "bom", None, False, False),
    ("utf16", "utf-16", None, False, False),
    ("ndjson", "ndjson", None, False, False),
    ("single_content", "single:content", None, True, False),
    ("single_refusal", "single:refusal", None, True, False),
    ("single_reasoning", "single:reasoning_content", None, True, False),
    ("single_arguments", "single:arguments", None, True, True),
    ("brotli_single_arguments", "single:arguments", "br", True, True),
]

#: Leak forms the recorder cannot replace where they are written: the last scan refuses them.
UNREPLACEABLE = ("split:", "single:", "escaped", "bom", "utf-16", "ndjson")
#: Answers the contract does not read as a chat completion: the test fails on them as well.
NOT_A_COMPLETION = ("ndjson",)
#: Answers that reject the key: recording writes nothing and fails with its own message.
REJECTED = ("401",)


def _refused(source: Source, form: str) -> bool:
    """What the plugin must do: refuse what it cannot replace, scrub the rest."""
    return not source.learned or form.startswith(UNREPLACEABLE)


# --- every way a reader could read a file -------------------------------------------------------

_RUN = re.compile(rb"[A-Za-z0-9+/_-]{8,}={0,2}")


def _decompressions(data: bytes) -> Iterator[bytes]:
    attempts = (
        gzip.decompress,
        zlib.decompress,
        lambda b: zlib.decompress(b, -zlib.MAX_WBITS),
        brotli.decompress,
    )
    for attempt in attempts:
        try:
            yield attempt(data)
        except Exception:
            continue


def _base64s(data: bytes) -> Iterator[bytes]:
    for run in [data.strip(), b"".join(data.split()), *_RUN.findall(data)]:
        body = run.rstrip(b"=")
        for cut in (body, body[:-1]):
            padded = cut + b"=" * (-len(cut) % 4)
            for alphabet in (None, b"-_"):
                try:
                    yield base64.b64decode(padded, altchars=alphabet, validate=True)
                except (ValueError, binascii.Error):
                    continue


def _leaves(value: Any) -> Iterator[Any]:
    """Strings and bytes of a parsed document, and the strings of each list's items joined
    path by path (stream events, however stored)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _leaves(item)
    elif isinstance(value, list):
        joined: dict[str, str] = {}
        for item in value:
            for path, text in _paths(item, ""):
                joined[path] = joined.get(path, "") + text
            yield from _leaves(item)
        yield from joined.values()
    elif isinstance(value, str | bytes):
        yield value


def _paths(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, f"{path}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _paths(item, f"{path}[{position}]")
    elif isinstance(value, str):
        yield path, value


_HEX_RUN = re.compile(rb"(?:[0-9a-f]{2}){8,}|(?:[0-9A-F]{2}){8,}")


def _parsed(text: str, data: bytes) -> Iterator[Any]:
    # json.loads of bytes reads a byte order mark, UTF-16 and UTF-32, as httpx's .json() does.
    for parse in (json.loads, yaml.safe_load, lambda _: json.loads(data)):
        try:
            yield parse(text)
        except Exception:
            continue
    events = []
    lines = []  # newline-delimited JSON
    for line in text.splitlines():
        if line.startswith("data:"):
            try:
                events.append(json.loads(line[len("data:") :]))
            except ValueError:
                continue
        else:
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    if events:
        yield events
    if lines:
        yield lines


def readings(data: bytes, depth: int = 5) -> set[bytes]:
    """``data`` read in every way above, recursively."""
    seen: set[bytes] = set()
    todo: list[tuple[bytes, int]] = [(data, 0)]
    while todo:
        item, level = todo.pop()
        if item in seen:
            continue
        seen.add(item)
        if level >= depth:
            continue
        found = [*_decompressions(item), *_base64s(item)]
        found.extend(bytes.fromhex(run.decode()) for run in _HEX_RUN.findall(item))
        text = item.decode("utf-8", "replace")
        found.append(unquote_plus(text).encode())
        for document in _parsed(text, item):
            for leaf in _leaves(document):
                found.append(leaf if isinstance(leaf, bytes) else str(leaf).encode())
        todo.extend((new, level + 1) for new in found if new and new not in seen)
    return seen


def assert_unreadable(root: Path, secrets: tuple[str, ...]) -> None:
    """No file under ``root`` (or ``root`` itself) but the test's own source shows any of
    ``secrets``."""
    for path in [root] if root.is_file() else sorted(root.rglob("*")):
        if not path.is_file() or path.name in ("test_leak.py", "tox.ini"):
            continue
        for reading in readings(path.read_bytes()):
            for secret in secrets:
                assert secret.encode() not in reading, f"{secret[:8]}… readable in {path}"


def _escaped_json(secret: str) -> str:
    """A JSON object whose one string is ``secret`` with every character ``\\uXXXX``."""
    return '{"c": "' + "".join(f"\\u{ord(c):04x}" for c in secret) + '"}'


def test_the_reader_model_reads_each_encoding() -> None:
    """The readings above see a secret in each of the leak forms: the matrix can fail."""
    secret = "FAKE-check-0123456789"
    inner = json.dumps({"content": "token=" + base64.urlsafe_b64encode(secret.encode()).decode()})
    engine = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    forms = [
        brotli.compress(inner.encode()),
        engine.compress(inner.encode()) + engine.flush(),
        yaml.safe_dump({"b": gzip.compress(inner.encode())}).encode(),
        b"data: "
        + json.dumps({"c": secret[:5]}).encode()
        + b"\n\ndata: "
        + json.dumps({"c": secret[5:]}).encode()
        + b"\n\n",
        yaml.safe_dump({"events": [{"d": secret[:4]}, {"d": secret[4:]}]}).encode(),
        b"uri: http://h/?q=" + secret.replace("-", "%2D").encode(),
        json.dumps({"content": "dump " + secret.encode().hex().upper()}).encode(),
        "\ufeff".encode() + _escaped_json(secret).encode(),
        _escaped_json(secret).encode("utf-16"),
        b'{"a": 1}\n' + _escaped_json(secret).encode() + b"\n",
    ]
    for form in forms:
        assert any(secret.encode() in r for r in readings(form)), form[:40]


# --- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_no_credential_can_be_read_back(
    pytester: pytest.Pytester,
    openai_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    source: Source,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("LOCAL_SERVICE_TOKEN", SERVER_TOKEN)
    pytester.makeini(INI)
    tests = [
        PRELUDE,
        f"SOURCE_HEADERS = {{'x-local-leak-from': {source.leak_from!r}}}\n",
    ]
    for name, form, encoding, stream, tools in CALLS:
        tests.append(
            f"""

@pytest.mark.chat_cassette
def test_{name}():
    call({source.client}, {form!r}, {encoding!r}, {stream!r}, {tools!r})
"""
        )
    pytester.makepyfile(test_leak="".join(tests))
    result = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-record-mode=once")
    output = result.stdout.str() + result.stderr.str()
    rejected = [name for name, form, *_ in CALLS if form in REJECTED]
    refused = [name for name, form, *_ in CALLS if _refused(source, form) and name not in rejected]
    written = [
        name for name, form, *_ in CALLS if not _refused(source, form) and name not in rejected
    ]
    failed = [name for name, form, *_ in CALLS if form in NOT_A_COMPLETION]
    result.assert_outcomes(
        passed=len(CALLS) - len(failed) - len(rejected),
        failed=len(failed) + len(rejected),
        errors=len(refused),
    )
    for name in rejected:
        result.stdout.fnmatch_lines(["Recording failed: the server rejected the API key (401 *"])
        assert not (pytester.path / "cassettes" / "test_leak" / f"test_{name}.yaml").exists()
    for name in failed:
        result.stdout.fnmatch_lines(
            [f"cassettes/test_leak/test_{name}.yaml, interaction 0: the * not *"]
        )
    cassettes = pytester.path / "cassettes" / "test_leak"
    for name in refused:
        result.stdout.fnmatch_lines(
            [
                f"*_ ERROR at teardown of test_{name} _*",
                f"cassettes/test_leak/test_{name}.yaml: not written, because it would hold a "
                "secret: *",
            ]
        )
        assert not (cassettes / f"test_{name}.yaml").exists()
    for name in written:
        assert (cassettes / f"test_{name}.yaml").is_file(), name
    for secret in source.secrets:
        assert secret not in output
    assert_unreadable(pytester.path, source.secrets)
    assert openai_server.request_count == len(CALLS)


# --- a key split across two headers -------------------------------------------------------------


@pytest.mark.parametrize("known", [True, False], ids=["key_in_environment", "key_shape_only"])
def test_a_key_split_across_two_headers_is_not_written(
    pytester: pytest.Pytester,
    openai_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    known: bool,
) -> None:
    """Neither half is a key, nor does a header's name say so: joined, they are one."""
    if known:
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    first, second = OPENAI_KEY[:14], OPENAI_KEY[14:]
    pytester.makeini(INI)
    pytester.makepyfile(
        test_leak=PRELUDE
        + "SOURCE_HEADERS = {}\n"
        + f"""

@pytest.mark.chat_cassette
def test_split():
    client = openai.OpenAI(base_url=URL, api_key="not-the-key", max_retries=0,
        default_headers={{"X-Team-Route": {first!r}, "Accept-Language": "en",
                         "X-Trace-Tail": {second!r}}})
    call(client, "plain", None, False)
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-record-mode=once")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "cassettes/test_leak/test_split.yaml: not written, because it would hold a secret: *"
            "requests[[]0].headers*",
        ]
    )
    assert not (pytester.path / "cassettes/test_leak/test_split.yaml").exists()
    assert OPENAI_KEY not in result.stdout.str() + result.stderr.str()
    assert_unreadable(pytester.path, (OPENAI_KEY,))


def test_unrelated_header_values_joined_are_no_secret() -> None:
    from pytest_chatresp.hygiene.policy import Secrets
    from pytest_chatresp.hygiene.scan import find_secrets

    headers = {
        "x-request-id": ["req_0123456789abcdef"],
        "openai-processing-ms": ["312"],
        "x-ratelimit-remaining-tokens": ["149999"],
        "content-type": ["application/json"],
        "openai-version": ["2020-10-01"],
    }
    assert find_secrets({"response": {"headers": headers}}, Secrets()) == []


# --- audit and scrub --dry-run on files that hold a leak ---------------------------------------


def _interaction(body: Any, *, headers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {
        "request": {
            "method": "POST",
            "uri": "https://api.example.com/v1/chat/completions",
            "body": '{"model": "gpt-4o-mini", "messages": []}',
            "headers": {"content-type": ["application/json"]},
        },
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": {"content-type": ["application/json"], **(headers or {})},
            "body": {"string": body},
        },
    }


def _completion(content: str) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1764000000,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
    )


def _stream(*pieces: str) -> str:
    chunks = [
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1764000000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
        for piece in pieces
    ]
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def _escaped(value: str) -> str:
    """``value`` as the inside of a JSON string, every character ``\\uXXXX``."""
    return "".join(f"\\u{ord(c):04x}" for c in value)


def _one_event(field: str, value: str) -> str:
    """A stream whose first event has no ``field`` and whose second holds ``value`` in it
    whole, JSON-escaped character by character."""

    def chunk(delta: dict[str, Any]) -> str:
        return json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1764000000,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
        )

    if field == "arguments":
        call = {"index": 0, "id": "call_1", "type": "function"}
        delta: dict[str, Any] = {"tool_calls": [{**call, "function": {"arguments": "X"}}]}
        inner = '{"key": "' + value + '"}'
    else:
        delta, inner = {field: "X"}, f"key={value}"
    event = chunk(delta).replace('"X"', f'"{_escaped(inner)}"')
    return f"data: {chunk({'role': 'assistant'})}\n\ndata: {event}\n\ndata: [DONE]\n\n"


def _escaped_completion(value: str) -> str:
    return _completion("X").replace('"X"', f'"{_escaped(value)}"')


def _raw_deflate(data: bytes) -> bytes:
    engine = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return engine.compress(data) + engine.flush()


def _b64(text: str, url: bool = False) -> str:
    encode = base64.urlsafe_b64encode if url else base64.b64encode
    return encode(text.encode()).decode()


def _with_request(interaction: dict[str, Any], **changes: Any) -> dict[str, Any]:
    interaction["request"].update(changes)
    return interaction


PLANTED = {
    "brotli": _interaction(
        brotli.compress(_completion(f"key {OPENAI_KEY}").encode()),
        headers={"content-encoding": ["br"]},
    ),
    "raw_deflate": _interaction(
        _raw_deflate(_completion(f"key {OPENAI_KEY}").encode()),
        headers={"content-encoding": ["deflate"]},
    ),
    "split_stream": _interaction(_stream("key sk-proj-FAKE0leak", "0matrix0key0000000000000")),
    "base64": _interaction(_completion("token=" + _b64(f"the key is {OPENAI_KEY}"))),
    "base64url": _interaction(_completion("token=" + _b64(f"the key is {OPENAI_KEY}!?", url=True))),
    "basic": _with_request(
        _interaction(_completion("ok")),
        headers={"x-forwarded-auth": [f"Basic {_basic('someone', PROXY_PASSWORD)}"]},
    ),
    "proxy_authorization": _with_request(
        _interaction(_completion("ok")),
        headers={"proxy-authorization": [f"Basic {_basic('someone', PROXY_PASSWORD)}"]},
    ),
    "userinfo": _with_request(
        _interaction(_completion("ok")),
        uri=f"https://leakuser:{USERINFO_PASSWORD}@api.example.com/v1/chat/completions",
    ),
    "x_goog_api_key": _with_request(
        _interaction(_completion(f"echo {GOOGLE_KEY}")),
        headers={"x-goog-api-key": [GOOGLE_KEY]},
    ),
    **{
        f"query_{name}": _with_request(
            _interaction(_completion("ok")),
            uri=f"https://api.example.com/v1/chat/completions?{name}={QUERY_TOKEN}",
        )
        for name in ("access_token", "token", "apikey", "sig", "key", "api_key")
    },
    "server_token": _interaction(_completion(f"token {_b64(SERVER_TOKEN)}")),
    "server_token_hex": _interaction(_completion(f"dump {SERVER_TOKEN.encode().hex()}")),
    "server_token_hex_upper": _interaction(
        _completion(f"dump {SERVER_TOKEN.encode().hex().upper()}")
    ),
    **{
        f"one_event_{field}": _interaction(
            _one_event(field, OPENAI_KEY), headers={"content-type": ["text/event-stream"]}
        )
        for field in ("content", "refusal", "reasoning_content", "arguments")
    },
    "bom_escaped": _interaction("\ufeff" + _escaped_completion(OPENAI_KEY)),
    "utf16_escaped": _interaction(_escaped_completion(OPENAI_KEY).encode("utf-16")),
    "utf32_escaped": _interaction(_escaped_completion(OPENAI_KEY).encode("utf-32")),
    "ndjson_escaped": _interaction(
        '{"object": "prelude"}\n' + _escaped_completion(OPENAI_KEY) + "\n",
        headers={"content-type": ["application/x-ndjson"]},
    ),
    "ndjson_server_token": _interaction(
        '{"object": "prelude"}\n' + _escaped_completion(SERVER_TOKEN) + "\n",
        headers={"content-type": ["application/x-ndjson"]},
    ),
}
#: Planted leaks that scrub reports but cannot replace in place (the value is not where a
#: replacement can reach it: split across events, or written with JSON escapes).
NOT_SCRUBBABLE = (
    "split_stream",
    "basic",
    *(name for name in PLANTED if name.startswith("one_event_")),
    "bom_escaped",
    "utf16_escaped",
    "utf32_escaped",
    "ndjson_escaped",
    "ndjson_server_token",
)


def _planted(tmp_path: Path, name: str) -> Path:
    """A cassette holding one leak, written the way vcrpy writes bytes (``!!binary``)."""
    document = {"interactions": [PLANTED[name]], "version": 1}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", list(PLANTED))
def test_audit_and_scrub_check_report_each_leak(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    monkeypatch.setenv("LOCAL_SERVICE_TOKEN", SERVER_TOKEN)
    path = _planted(tmp_path, name)
    before = path.read_bytes()
    assert main(["audit", str(path)]) == 1
    audit = capsys.readouterr().out
    assert audit.strip().endswith("1 file audited: see above")
    assert main(["scrub", "--dry-run", str(path)]) == 1
    check = capsys.readouterr()
    assert path.read_bytes() == before
    for secret in (OPENAI_KEY, GOOGLE_KEY, QUERY_TOKEN, USERINFO_PASSWORD, PROXY_PASSWORD):
        assert secret not in audit + check.out + check.err
        assert secret[:12] not in audit + check.out + check.err


def test_scrub_then_leaves_nothing_readable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What scrub can replace, it replaces in every form; what it cannot, it reports."""
    monkeypatch.setenv("LOCAL_SERVICE_TOKEN", SERVER_TOKEN)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    # A split or escaped key, and Basic credentials under a header no rule names, are only
    # reported.
    fixable = [n for n in PLANTED if n not in NOT_SCRUBBABLE]
    for name in PLANTED:
        _planted(tmp_path, name)
    status = main(["scrub", *(str(tmp_path / f"{n}.yaml") for n in PLANTED)])
    out = capsys.readouterr().out
    assert status == 1  # the split stream cannot be scrubbed in place
    for name in NOT_SCRUBBABLE:
        assert f"{name}.yaml: cannot scrub: a secret would remain (" in out
    secrets = (OPENAI_KEY, GOOGLE_KEY, QUERY_TOKEN, USERINFO_PASSWORD, PROXY_PASSWORD, SERVER_TOKEN)
    for name in fixable:
        assert_unreadable(tmp_path / f"{name}.yaml", secrets)
    assert main(["audit", *(str(tmp_path / f"{n}.yaml") for n in fixable)]) == 0


def test_a_scrubbed_value_in_the_request_body_is_replaced_and_still_replays(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_leak=f"""
import os

import httpx
import pytest

@pytest.mark.chat_cassette
def test_a():
    body = {{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "my key is {GOOGLE_KEY}"}}]}}
    response = httpx.post(
        os.environ["CHATRESP_TEST_BASE_URL"] + "/chat/completions",
        json=body,
        headers={{"x-goog-api-key": {GOOGLE_KEY!r}}},
    )
    assert response.json()["choices"][0]["message"]["content"].startswith("Echo: my key is ")
"""
    )
    pytester.runpytest("-p", "no:cacheprovider", "--chatresp-record-mode=once").assert_outcomes(
        passed=1
    )
    text = (pytester.path / "cassettes" / "test_leak" / "test_a.yaml").read_text(encoding="utf-8")
    assert "my key is REDACTED" in text
    assert_unreadable(pytester.path, (GOOGLE_KEY,))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert openai_server.request_count == 1
