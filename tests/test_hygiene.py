"""The secret policy, the scan and the body decoder, directly; and the replay message."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from pathlib import Path

import brotli
import pytest
import yaml
from helpers import completion, write_cassette
from openai_server import OpenAIServer

from pytest_chatresp.cassette import decoding, load_cassette
from pytest_chatresp.cassette.decoding import UnreadableBody, codings, decode, encode
from pytest_chatresp.hygiene.policy import (
    REDACTED,
    Secrets,
    credentials_in,
    redact_text,
    scrub_uri,
    secret_values,
)
from pytest_chatresp.hygiene.scan import find_secrets

BODY = json.dumps(completion()).encode()


def _raw_deflate(data: bytes) -> bytes:
    engine = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return engine.compress(data) + engine.flush()


# --- the decoder --------------------------------------------------------------------------------


def test_codings_are_read_from_the_header() -> None:
    assert codings(None) == ()
    assert codings("gzip, br") == ("gzip", "br")
    assert codings(["X-Gzip", "identity", " Deflate "]) == ("gzip", "deflate")


@pytest.mark.parametrize(
    ("header", "encoded"),
    [
        ("gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", _raw_deflate(BODY)),
        ("br", brotli.compress(BODY)),
        ("gzip, br", brotli.compress(gzip.compress(BODY))),
        ("", gzip.compress(BODY)),  # gzip's magic bytes without a header
        ("gzip", BODY),  # a body stored decoded under a stale header
    ],
    ids=["gzip", "deflate", "raw-deflate", "brotli", "gzip-then-brotli", "magic", "stale"],
)
def test_decode(header: str, encoded: bytes) -> None:
    assert decode(encoded, header) == BODY


def test_encode_is_undone_by_decode() -> None:
    for header in ("gzip", "deflate", "br", "gzip, br"):
        assert decode(encode(BODY, header), header) == BODY


def test_an_unknown_coding_is_refused() -> None:
    with pytest.raises(
        UnreadableBody, match=r"^the body is encoded as 'zstd', which cannot be read$"
    ):
        decode(b"(\xb5/\xfd", "zstd")


def test_corrupt_bodies_are_refused() -> None:
    with pytest.raises(UnreadableBody, match="the body is compressed but corrupt"):
        decode(gzip.compress(BODY)[:20], "gzip")
    with pytest.raises(UnreadableBody, match="the body is compressed but corrupt"):
        decode(b"\xff" * 20, "br")


def test_a_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoding, "MAX_DECODED_BYTES", 1024 * 1024)
    bomb = b"\x00" * (2 * 1024 * 1024)
    for header, encoded in (("gzip", gzip.compress(bomb)), ("deflate", zlib.compress(bomb))):
        with pytest.raises(UnreadableBody, match="the body decodes to more than 1 MB"):
            decode(encoded, header)
    with pytest.raises(UnreadableBody, match="the body decodes to more than 1 MB"):
        decode(brotli.compress(bomb), "br")


def test_the_reader_names_an_encoding_it_cannot_read(tmp_path: Path) -> None:
    path = write_cassette(tmp_path / "zstd.yaml", completion())
    document = json.loads(path.read_text())
    response = document["interactions"][0]["response"]
    response["headers"]["Content-Encoding"] = ["zstd"]
    response["body"]["string"] = b"(\xb5/\xfd"  # stored as !!binary, as vcrpy stores bytes
    path.write_text(yaml.safe_dump(document))
    exchange = load_cassette(path).exchanges[0]
    assert [v.message for v in exchange.violations] == [
        "the body is encoded as 'zstd', which cannot be read"
    ]


# --- the policy ---------------------------------------------------------------------------------


def test_secret_values_of_the_environment() -> None:
    environ = {
        "OPENAI_API_KEY": "sk-proj-FAKE-0123456789",
        "GROQ_APIKEY": "FAKE-groq-0123",
        "GH_TOKEN": "FAKE-gh-0123",
        "APP_SECRET": "FAKE-app-0123",
        "DB_PASSWORD": "FAKE-db-0123",
        "SHORT_TOKEN": "Echo",
        "PLACEHOLDER_KEY": REDACTED,
        "KEYBOARD": "FAKE-not-a-secret-name",
    }
    assert sorted(secret_values(environ)) == [
        "APP_SECRET",
        "DB_PASSWORD",
        "GH_TOKEN",
        "GROQ_APIKEY",
        "OPENAI_API_KEY",
    ]


def test_credentials_in_a_scrubbed_value() -> None:
    basic = base64.b64encode(b"someone:FAKE-password-0123456789").decode()
    assert credentials_in(f"Basic {basic}") == [
        f"Basic {basic}",
        basic,
        "FAKE-password-0123456789",
    ]
    assert credentials_in("Bearer FAKE-bearer-0123456789") == [
        "Bearer FAKE-bearer-0123456789",
        "FAKE-bearer-0123456789",
    ]
    assert credentials_in("acme") == []  # an organisation name is not looked for elsewhere


def test_scrub_uri_keeps_the_rest_of_the_text() -> None:
    uri = "https://me:FAKE%2Fpass@api.example.com/v1/x?A=1&Access_Token=FAKE%2Btok&b=%20#f"
    assert scrub_uri(uri, ["access_token"]) == (
        "https://api.example.com/v1/x?A=1&Access_Token=REDACTED&b=%20#f",
        [
            ("URL userinfo", "FAKE/pass"),
            ("URL userinfo", "me"),
            ("query parameter access_token", "FAKE+tok"),
        ],
    )
    assert scrub_uri("https://h/x?key=REDACTED", ["key"]) == ("https://h/x?key=REDACTED", [])


def test_redact_text_hides_every_kind_of_secret() -> None:
    secrets = Secrets({"FAKE-env-value-0123": "$MY_TOKEN"})
    text = (
        "POST https://user:FAKEpass@h.example/v1?access_token=FAKEtok&sig=FAKEsig&page=2 "
        "Authorization: Bearer FAKE-bearer-0123 Basic dXNlcjpGQUtFcGFzcw== "
        "key sk-FAKEabcdefghijklmnopqrstuvwxyz env FAKE-env-value-0123 "
        + base64.b64encode(b"FAKE-env-value-0123").decode()
    )
    assert redact_text(text, secrets) == (
        "POST https://REDACTED@h.example/v1?access_token=REDACTED&sig=REDACTED&page=2 "
        # the last base64 characters carry two bits of the value only
        "Authorization: Bearer REDACTED Basic REDACTED key REDACTED env REDACTED REDACTEDw=="
    )


# --- the scan -----------------------------------------------------------------------------------


def test_the_scan_reports_a_body_it_cannot_read() -> None:
    response = {"headers": {"Content-Encoding": ["zstd"]}, "body": {"string": b"(\xb5/\xfd"}}
    assert find_secrets({"responses": [response]}, Secrets()) == [
        (
            "responses[0].body.string",
            "a body the scan cannot read (the body is encoded as 'zstd', which cannot be read)",
        )
    ]


def test_the_scan_finds_what_a_reader_would() -> None:
    key = "FAKE-known-value-0123456789"
    secrets = Secrets({key: "$MY_SERVICE_TOKEN"})
    events = "".join(
        "data: " + json.dumps({"choices": [{"index": 0, "delta": {"reasoning": piece}}]}) + "\n\n"
        for piece in (key[:9], key[9:])
    )
    found = find_secrets(
        {
            "stream": events,
            "nested": json.dumps({"x": base64.urlsafe_b64encode(b"k=" + key.encode()).decode()}),
            "escaped": json.dumps({"x": key.replace("-", "\\u002d")}).replace("\\\\", "\\"),
            "auth": "Basic " + base64.b64encode(b"u:FAKEunknownpassword").decode(),
            "clean": "nothing here",
        },
        secrets,
    )
    assert found == [
        ("stream", "the value of $MY_SERVICE_TOKEN"),
        ("nested", "the value of $MY_SERVICE_TOKEN"),
        ("escaped.x", "the value of $MY_SERVICE_TOKEN"),
        ("auth", "Basic credentials (user:password)"),
    ]


KEY = "sk-proj-FAKE0scan0key0ABCDEFGHIJ0123456789"
KNOWN = Secrets({KEY: "$OPENAI_API_KEY"})
FOUND = ["the value of $OPENAI_API_KEY", "a string shaped like an OpenAI API key (sk-…)"]


def _escaped(value: str) -> str:
    """``value`` as the inside of a JSON string, every character ``\\uXXXX``."""
    return "".join(f"\\u{ord(c):04x}" for c in value)


def _chunk(delta: dict[str, object]) -> str:
    return json.dumps(
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    )


@pytest.mark.parametrize(
    ("delta", "inner", "path"),
    [
        ({"content": "X"}, KEY, "delta.content"),
        ({"refusal": "X"}, KEY, "delta.refusal"),
        ({"reasoning_content": "X"}, KEY, "delta.reasoning_content"),
        (
            {"tool_calls": [{"index": 0, "function": {"arguments": "X"}}]},
            '{"k": "' + KEY + '"}',
            "delta.tool_calls[0].function.arguments",
        ),
    ],
    ids=["content", "refusal", "reasoning_content", "arguments"],
)
def test_the_scan_reads_each_stream_event_as_json(
    delta: dict[str, object], inner: str, path: str
) -> None:
    """A field that one event holds whole, written with JSON escapes (the first event has
    no such field, as many servers send it)."""
    event = _chunk(delta).replace('"X"', f'"{_escaped(inner)}"')
    body = f"data: {_chunk({'role': 'assistant'})}\n\ndata: {event}\n\ndata: [DONE]\n\n"
    assert KEY not in body
    response = {"headers": {"content-type": ["text/event-stream"]}, "body": {"string": body}}
    where = f"responses[0].body.string.choices[0].{path}"
    assert find_secrets({"responses": [response]}, KNOWN) == [(where, kind) for kind in FOUND]


ESCAPED = json.dumps({"choices": [{"message": {"content": "X"}}]}).replace(
    '"X"', f'"{_escaped(KEY)}"'
)


@pytest.mark.parametrize(
    "body",
    [
        "\ufeff" + ESCAPED,
        b"\xef\xbb\xbf" + ESCAPED.encode(),
        ESCAPED.encode("utf-16"),
        ESCAPED.encode("utf-16-le"),
        ESCAPED.encode("utf-16-be"),
        ESCAPED.encode("utf-32"),
        ESCAPED.encode("utf-32-le"),
        '{"object": "prelude"}\n' + ESCAPED + "\n",
        '{"object": "prelude"}\r\n\r\n' + ESCAPED,
        '\x1e{"object": "prelude"}\n\x1e' + ESCAPED + "\n",
        '{"object": "prelude"}' + ESCAPED,
        '["prelude"]\nnot json\n' + ESCAPED,
    ],
    ids=[
        "bom-text",
        "bom-bytes",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "ndjson",
        "ndjson-crlf-blank",
        "json-seq",
        "concatenated",
        "a-line-not-json",
    ],
)
def test_the_scan_parses_what_json_loads_of_bytes_would(body: str | bytes) -> None:
    """A reader's ``json.loads(bytes)`` (httpx's ``.json()``) reads a byte order mark, UTF-16
    and UTF-32; newline-delimited JSON is read a line at a time."""
    found = find_secrets({"responses": [{"body": {"string": body}}]}, KNOWN)
    assert found == [
        ("responses[0].body.string.choices[0].message.content", kind) for kind in FOUND
    ]


def test_a_body_of_json_documents_without_a_secret_is_clean() -> None:
    body = "\ufeff" + json.dumps(completion()) + "\n" + json.dumps({"x": "\\u0061"}) + "\n"
    assert find_secrets({"body": body, "utf16": body.encode("utf-16")}, KNOWN) == []


@pytest.mark.parametrize("upper", [False, True], ids=["lower", "upper"])
def test_the_scan_and_scrub_read_a_known_value_in_hex(upper: bool) -> None:
    token = "FAKE-hex-token-0123456789"
    known = Secrets({token: "$MY_SERVICE_TOKEN"})
    written = token.encode().hex()
    written = written.upper() if upper else written
    text = f"dump 00ff{written}00ff"
    assert find_secrets({"content": text}, known) == [("content", "the value of $MY_SERVICE_TOKEN")]
    assert known.replace(text) == f"dump 00ff{REDACTED}00ff"


# --- the replay message -------------------------------------------------------------------------


def test_the_no_match_message_shows_no_userinfo_or_token(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_user="""
import os

import openai
import pytest

@pytest.mark.chat_cassette
def test_a():
    url = os.environ["CHATRESP_TEST_BASE_URL"].replace("http://", "http://me:FAKEuserinfo0123@")
    client = openai.OpenAI(
        base_url=url, api_key="sk-FAKE0000", max_retries=0,
        default_query={"access_token": "FAKEtoken0123", "page": "2"},
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "No recorded chat completion matches this request:",
            "  POST http://127.0.0.1:*/v1/chat/completions?access_token=REDACTED&page=2"
            " (model 'gpt-4o-mini', last message 'hi')",
        ]
    )
    output = result.stdout.str()
    assert "FAKEuserinfo" not in output
    assert "FAKEtoken" not in output
    assert openai_server.request_count == 0


def test_audit_without_brotli_reports_the_body_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_chatresp.cli import main

    path = write_cassette(tmp_path / "br.yaml", completion())
    document = json.loads(path.read_text())
    response = document["interactions"][0]["response"]
    response["headers"]["Content-Encoding"] = ["br"]
    response["body"]["string"] = brotli.compress(json.dumps(completion()).encode())
    path.write_text(yaml.safe_dump(document))
    monkeypatch.setattr(decoding, "_brotli", lambda: None)
    assert main(["audit", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        "br.yaml: interactions[0].response.body.string: a body the scan cannot read (the body is"
        " brotli-compressed; install brotli to read it), which should not be recorded"
        " (remove it by hand)"
    ) in out
    assert main(["scrub", "--dry-run", str(path)]) == 1
    assert "a body the scan cannot read" in capsys.readouterr().out
