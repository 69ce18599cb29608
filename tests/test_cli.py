"""The ``chatresp`` command: check, show and scrub, run in process through ``main`` (and twice
as the installed console script).

Cassettes are copies of the example suite's (``cassettes/test_weather``) and small hand-written
ones in ``tests/data/cli``; every test works on copies in ``tmp_path`` and runs from there, so
the paths in the output are short and exact.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CORPUS

from pytest_chatresp.cassette import load_cassette, read_document
from pytest_chatresp.checks import CHECKS
from pytest_chatresp.cli import main
from pytest_chatresp.provenance import request_digest

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "cli"
#: Frozen copies of the example suite's cassettes/test_weather (the readable format).
EXAMPLES = DATA / "weather"

GOOD_SUMMARY = (
    "8 files, 8 exchanges, 7 chat completions (1 streamed), 1 error response, "
    "0 unreadable files, 0 invalid completions"
)

#: Every secret planted in tests/data/cli/secrets.yaml (all fake).
SERVICE_TOKEN = "FAKE-service-token-value-42"
SECRETS = (
    "sk-FAKE-abcdefghijklmnopqrstuvwxyz",
    "sk-FAKE-bodykey-abcdefghijklmnop",
    "sk-FAKE-gzipkey-abcdefghijklmnop",
    "FAKE-azure-key-0123456789",
    "FAKE-query-key-123456",
    "FAKE-cookie-abcdef0123456789",
    "FAKE-cookie-second-0123456789",
    "org-FAKE-organization-1234",
    SERVICE_TOKEN,
)
SCRUBBED_LINE = (
    "scrubbed secrets.yaml: 11 values (sk- key in request body, request header api-key, "
    "request header authorization x2, $MY_SERVICE_TOKEN in request header x-service-token, "
    "query parameter key, $MY_SERVICE_TOKEN in response body, "
    "response header openai-organization, response header set-cookie x2, "
    "sk- key in response body)"
)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example cassettes in ``tmp_path/cassettes``, the working directory."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "cassettes"
    shutil.copytree(EXAMPLES, target)
    return target


def copy(name: str, directory: Path, as_name: str | None = None) -> Path:
    target = directory / (as_name or name)
    shutil.copyfile(DATA / name, target)
    return target


def edited(source: Path, target: Path, old: str, new: str) -> Path:
    text = source.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new), encoding="utf-8")
    return target


# --- check --------------------------------------------------------------------------------------


def test_check_good_directory(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    assert run(capsys, "check", "cassettes") == (0, GOOD_SUMMARY + "\n", "")


def test_check_defaults_to_cassettes(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    assert run(capsys, "check") == (0, GOOD_SUMMARY + "\n", "")


def test_check_reports_violations_and_unreadable_files(
    capsys: pytest.CaptureFixture[str], examples: Path
) -> None:
    edited(
        examples / "test_forecast.yaml",
        examples / "test_forecast.yaml",
        "total_tokens: 16\n",
        "total_tokens: 17\n",
    )
    (examples / "broken.yaml").write_text("interactions: [\n", encoding="utf-8")
    status, out, err = run(capsys, "check", "cassettes")
    assert status == 1
    assert err == ""
    assert out.splitlines() == [
        "cassettes/broken.yaml: not valid YAML at line 2, column 1: did not find expected node content",
        "cassettes/test_forecast.yaml, interaction 0: usage.total_tokens: expected prompt_tokens + "
        "completion_tokens = 16, found 17 (1 more: reasoning tokens counted in the total?) "
        "[check usage-sum] (to accept it: chatresp check --allow usage-sum:reasoning, the ini "
        'line chatresp_allow = usage-sum:reasoning, or per test @pytest.mark.chat_cassette(allow=["usage-sum:reasoning"]))',
        "9 files, 8 exchanges, 7 chat completions (1 streamed), 1 error response, "
        "1 unreadable file, 1 invalid completion",
    ]
    # --quiet keeps the totals only.
    status, out, _ = run(capsys, "check", "-q", "cassettes")
    assert status == 1
    assert out.splitlines() == [
        "9 files, 8 exchanges, 7 chat completions (1 streamed), 1 error response, "
        "1 unreadable file, 1 invalid completion"
    ]


def test_check_json(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    edited(
        examples / "test_forecast.yaml",
        examples / "test_forecast.yaml",
        "total_tokens: 16\n",
        "total_tokens: 17\n",
    )
    (examples / "broken.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    status, out, _ = run(capsys, "check", "--json", "cassettes")
    assert status == 1
    document = json.loads(out)
    assert set(document) == {"files", "totals"}
    by_path = {entry["path"]: entry for entry in document["files"]}
    assert len(by_path) == 9
    assert by_path["cassettes/broken.yaml"] == {
        "path": "cassettes/broken.yaml",
        "exchanges": 0,
        "completions": 0,
        "streamed": 0,
        "errors": 0,
        "kinds": {},
        "violations": [],
        "unreadable": "cassettes/broken.yaml: not a vcrpy cassette: expected a mapping, got list",
    }
    assert by_path["cassettes/test_forecast.yaml"] == {
        "path": "cassettes/test_forecast.yaml",
        "exchanges": 1,
        "completions": 1,
        "streamed": 0,
        "errors": 0,
        "kinds": {"chat completion": 1},
        "violations": [
            {
                "index": 0,
                "field": "usage.total_tokens",
                "message": "expected prompt_tokens + completion_tokens = 16, found 17 (1 more: "
                "reasoning tokens counted in the total?) [check usage-sum] (to accept it: "
                "chatresp check --allow usage-sum:reasoning, the ini line "
                "chatresp_allow = usage-sum:reasoning, or per test "
                '@pytest.mark.chat_cassette(allow=["usage-sum:reasoning"]))',
                "check": "usage-sum",
            }
        ],
        "unreadable": None,
    }
    assert by_path["cassettes/test_streamed_forecast.yaml"]["streamed"] == 1
    assert by_path["cassettes/test_rate_limited.yaml"]["errors"] == 1
    assert document["totals"] == {
        "files": 9,
        "exchanges": 8,
        "completions": 7,
        "streamed": 1,
        "errors": 1,
        "kinds": {"chat completion": 6, "chat stream": 1, "error": 1},
        "unreadable": 1,
        "invalid": 1,
        "violations": 1,
        "ok": False,
    }


def test_check_skip_checks(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    edited(
        examples / "test_forecast.yaml",
        examples / "test_forecast.yaml",
        "total_tokens: 16\n",
        "total_tokens: 17\n",
    )
    assert run(capsys, "check", "--skip-checks", "usage-sum,stream", "cassettes") == (
        0,
        GOOD_SUMMARY + "\n",
        "",
    )
    # Repeatable, and names may also be separated by spaces.
    status, _, _ = run(capsys, "check", "--skip-checks", "stream", "--skip-checks", "usage-sum")
    assert status == 0


def test_check_unknown_check_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], examples: Path
) -> None:
    status, out, err = run(capsys, "check", "--skip-checks", "usage-sum,no-such-check")
    assert (status, out) == (2, "")
    assert err == (
        "chatresp check: error: unknown check for --skip-checks: no-such-check; "
        f"the checks are {', '.join(CHECKS)}\n"
    )


def test_check_strict(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    edited(
        examples / "test_forecast.yaml",
        examples / "test_forecast.yaml",
        "        service_tier: default\n",
        "        service_tier: default\n        x_provider: acme\n",
    )
    assert run(capsys, "check")[0] == 0
    status, out, _ = run(capsys, "check", "--strict")
    assert status == 1
    assert out.splitlines() == [
        "cassettes/test_forecast.yaml, interaction 0: x_provider: unknown field (strict mode "
        "allows only the contract's), got 'acme'",
        "8 files, 8 exchanges, 7 chat completions (1 streamed), 1 error response, "
        "0 unreadable files, 1 invalid completion",
    ]


def test_check_nonexistent_path_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], examples: Path
) -> None:
    status, out, err = run(capsys, "check", "cassettes", "nowhere")
    assert (status, out) == (2, "")
    assert err == "chatresp check: error: no such file or directory: nowhere\n"


def test_check_without_cassettes_dir_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "check") == (
        2,
        "",
        "chatresp check: error: no such file or directory: cassettes\n",
    )


def test_check_skips_shape_files_and_other_names(
    capsys: pytest.CaptureFixture[str], examples: Path
) -> None:
    shape = "# A shape file, not a cassette.\nmodel: gpt-4o-mini\n"
    (examples / "test_forecast.shape.yaml").write_text(shape, encoding="utf-8")
    (examples / "notes.txt").write_text("not a cassette", encoding="utf-8")
    hidden = examples / ".cache"
    hidden.mkdir()
    (hidden / "junk.yaml").write_text("- not a cassette\n", encoding="utf-8")
    nested = examples / "nested" / "deeper"
    nested.mkdir(parents=True)
    copy("mixed.yaml", nested, "mixed.yml")
    status, out, _ = run(capsys, "check")
    assert status == 1  # mixed.yml has a usage-sum violation
    assert out.splitlines()[-1] == (
        "9 files, 12 exchanges, 9 chat completions (1 streamed), 2 error responses, "
        "1 embeddings exchange, 0 unreadable files, 1 invalid completion"
    )
    # A shape file named on the command line is skipped too (a shell glob names them).
    assert run(capsys, "check", "cassettes/test_forecast.shape.yaml")[1] == (
        "0 files, 0 exchanges, 0 chat completions (0 streamed), 0 error responses, "
        "0 unreadable files, 0 invalid completions\n"
    )


def test_check_json_file_and_each_file_once(
    capsys: pytest.CaptureFixture[str], examples: Path
) -> None:
    document = yaml.safe_load((examples / "test_forecast.yaml").read_text(encoding="utf-8"))
    (examples / "forecast.json").write_text(json.dumps(document, indent=4), encoding="utf-8")
    status, out, _ = run(capsys, "check", "cassettes/forecast.json", "cassettes", "./cassettes")
    assert status == 0
    assert out.startswith("9 files, 9 exchanges, 8 chat completions")


def test_check_progress_on_a_terminal(
    capsys: pytest.CaptureFixture[str], examples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(14):
        shutil.copyfile(examples / "test_forecast.yaml", examples / f"copy_{number:02}.yaml")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, out, err = run(capsys, "check", "-q")
    assert status == 0
    assert out.startswith("22 files, ")
    assert "\r checking 1/22 …" in err
    assert "\r checking 22/22 …" in err
    assert err.endswith("\r")  # cleared
    # Not on a pipe, and not for 20 files or fewer.
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert run(capsys, "check", "-q")[2] == ""


def test_check_corpus_reads_every_file_and_finds_the_invalid_completions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(capsys, "check", "-q", str(CORPUS))
    # Real recordings hold completions that break the contract: the command says so, exit 1.
    assert (status, err) == (1, "")
    assert out == (
        "146 files, 444 exchanges, 281 chat completions (65 streamed), 37 error responses, "
        "2 responses exchanges, 13 embeddings exchanges, 111 other exchanges, "
        "0 unreadable files, 38 invalid completions\n"
    )


# --- show ---------------------------------------------------------------------------------------


def test_show_plain(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    status, out, err = run(capsys, "show", "cassettes/test_two_choices.yaml")
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        "#0 POST /v1/chat/completions → 200",
        "    model: gpt-4o-mini → gpt-4o-mini-2025-01-01",
        "    tier: default",
        "    finish: stop, stop",
        "    usage: 8 prompt + 14 completion = 22 total",
        "    not streamed",
        "    [0] Echo: Two ways to say sunny",
        "    [1] Echo: Two ways to say sunny (choice 1)",
    ]


def test_show_stream(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    assert run(capsys, "show", "cassettes/test_streamed_forecast.yaml")[1].splitlines() == [
        "#0 POST /v1/chat/completions → 200",
        "    model: gpt-4o-mini → gpt-4o-mini-2025-01-01",
        "    tier: default",
        "    finish: stop",
        "    usage: 8 prompt + 6 completion = 14 total",
        "    streamed (9 chunks)",
        "    [0] Echo: Stream the forecast for Lyon",
    ]


def test_show_tool_call_and_error(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    assert run(capsys, "show", "cassettes/test_tool_call.yaml")[1].splitlines()[-3:] == [
        "    usage: 10 prompt + 2 completion = 12 total",
        "    not streamed",
        '    [0] get_weather({"city":"Paris","unit":"celsius"})',
    ]
    assert run(capsys, "show", "cassettes/test_rate_limited.yaml")[1].splitlines() == [
        "#0 POST /v1/chat/completions → 429",
        "    model: error-429",
        "    error: HTTP 429 (requests): Rate limit reached for error-429 on requests per min "
        "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
    ]


def test_show_mixed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    copy("mixed.yaml", tmp_path)
    status, out, _ = run(capsys, "show", "mixed.yaml")
    assert status == 0  # show describes; check is the command that judges
    assert out.splitlines() == [
        "#0 POST /v1/embeddings → 200",
        "    kind: embeddings",
        "#1 POST /v1/chat/completions → 200",
        "    model: gpt-4o → gpt-4o-2024-08-06",
        "    tier: flex",
        "    finish: length",
        "    usage: 5 prompt + 40 completion = 99 total",
        "    not streamed",
        "    invalid: usage.total_tokens: expected prompt_tokens + completion_tokens = 45, "
        "found 99 (54 more: reasoning tokens counted in the total?) [check usage-sum] (to accept "
        'it: chatresp_allow = usage-sum:reasoning, or per test @pytest.mark.chat_cassette(allow=["usage-sum:reasoning"]))',
        "    [0] This first line is deliberately much longer than one hundred characters, so "
        "that show has to shorte…",
        "#2 POST /v1/chat/completions → 200",
        "    model: gpt-4o-mini → gpt-4o-mini-2024-07-18",
        "    finish: tool_calls",
        "    usage: 12 prompt + 30 completion = 42 total",
        "    not streamed",
        '    [0] get_weather({"city": "Paris"})',
        '    [0] get_weather({"city": "Lyon"})',
        "#3 POST /v1/chat/completions → 500",
        "    model: gpt-4o-mini",
        "    error: HTTP 500 (server_error): The server had an error while processing your "
        "request.",
    ]


def test_show_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    copy("mixed.yaml", tmp_path)
    status, out, _ = run(capsys, "show", "--json", "mixed.yaml")
    assert status == 0
    document = json.loads(out)
    assert document["path"] == "mixed.yaml"
    embeddings, long, tools, error = document["exchanges"]
    assert set(embeddings) == set(long) == set(error)
    assert embeddings["chat"] is False
    assert embeddings["choices"] == []
    assert long["model_requested"] == "gpt-4o"
    assert long["model_served"] == "gpt-4o-2024-08-06"
    assert long["usage"] == {"prompt_tokens": 5, "completion_tokens": 40, "total_tokens": 99}
    assert long["violations"][0]["check"] == "usage-sum"
    assert long["choices"][0]["content"].endswith("A second line that show leaves out.")
    assert tools["finish_reasons"] == ["tool_calls"]
    assert tools["choices"][0]["tool_calls"] == [
        {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
    ]
    assert error["error"]["status"] == 500
    assert error["error"]["type"] == "server_error"


def test_show_failures(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    assert run(capsys, "show", "nowhere.yaml") == (
        2,
        "",
        "chatresp show: error: no such file or directory: nowhere.yaml\n",
    )
    (examples / "broken.yaml").write_text("interactions: [\n", encoding="utf-8")
    assert run(capsys, "show", "cassettes/broken.yaml") == (
        1,
        "",
        "cassettes/broken.yaml: not valid YAML at line 2, column 1: did not find expected node "
        "content\n",
    )
    assert run(capsys, "show", "cassettes")[0] == 2


# --- scrub --------------------------------------------------------------------------------------


@pytest.fixture
def dirty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the cassette with planted (fake) secrets, and the token in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MY_SERVICE_TOKEN", SERVICE_TOKEN)
    return copy("secrets.yaml", tmp_path)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def completions_data(path: Path) -> list[str]:
    return [c.model_dump_json() for c in load_cassette(path).completions]


def test_scrub_removes_every_secret_and_keeps_the_rest(
    capsys: pytest.CaptureFixture[str], dirty: Path
) -> None:
    before_text = dirty.read_text(encoding="utf-8")
    # The gzip body hides its secret: it is there only once decoded.
    assert "sk-FAKE-gzipkey-abcdefghijklmnop" not in before_text
    before = load_cassette(dirty)
    before_completions = completions_data(dirty)

    status, out, err = run(capsys, "scrub", "secrets.yaml")

    assert (status, err) == (0, "")
    assert out == SCRUBBED_LINE + "\n"
    after_text = dirty.read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in after_text
        assert secret not in out
    assert "REDACTED" in after_text
    document = yaml.safe_load(after_text)
    gzipped = document["interactions"][1]["response"]["body"]["string"]
    assert isinstance(gzipped, bytes)
    decoded = gzip.decompress(gzipped).decode()
    assert "sk-FAKE" not in decoded
    assert "Your old key REDACTED is revoked." in decoded
    # Still the same cassette: same exchanges, same completions with the secrets replaced.
    after = load_cassette(dirty)
    assert len(after.exchanges) == len(before.exchanges) == 2
    expected = before_completions
    for secret in SECRETS:
        expected = [text.replace(secret, "REDACTED") for text in expected]
    assert completions_data(dirty) == expected
    assert after.exchanges[0].request.uri == (
        "https://api.example.com/v1/chat/completions?key=REDACTED&api-version=2024-10-21"
    )
    # Only lines that held a secret changed (the gzip body's base64 lines among them).
    old_lines, new_lines = before_text.splitlines(), after_text.splitlines()
    assert len(old_lines) == len(new_lines)
    base64_lines = {
        number
        for number, line in enumerate(old_lines)
        if line.startswith("        ") and re.fullmatch(r"\s+[A-Za-z0-9+/=]+", line)
    }
    changed = [n for n, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert len(changed) == 16  # 10 lines with a secret, 6 lines of base64
    for number in changed:
        assert number in base64_lines or any(s in old_lines[number] for s in SECRETS), old_lines[
            number
        ]
        if number not in base64_lines:
            assert "REDACTED" in new_lines[number]


def test_scrub_check_and_idempotence(capsys: pytest.CaptureFixture[str], dirty: Path) -> None:
    original = digest(dirty)
    status, out, _ = run(capsys, "scrub", "--dry-run", "secrets.yaml")
    assert status == 1
    assert out == SCRUBBED_LINE.replace("scrubbed", "would scrub", 1) + "\n"
    assert digest(dirty) == original

    assert run(capsys, "scrub", "secrets.yaml")[0] == 0
    scrubbed = digest(dirty)
    assert scrubbed != original
    assert run(capsys, "scrub", "--dry-run", "secrets.yaml") == (0, "clean secrets.yaml\n", "")
    assert run(capsys, "scrub", "secrets.yaml") == (0, "clean secrets.yaml\n", "")
    assert digest(dirty) == scrubbed
    assert not [p.name for p in dirty.parent.iterdir() if p.name.startswith(".")]


def test_scrub_clean_examples_untouched(capsys: pytest.CaptureFixture[str], examples: Path) -> None:
    digests = {path.name: digest(path) for path in examples.iterdir()}
    status, out, _ = run(capsys, "scrub", "cassettes")
    assert status == 0
    assert out.splitlines() == [f"clean cassettes/{name}" for name in sorted(digests)]
    assert {path.name: digest(path) for path in examples.iterdir()} == digests


def test_scrub_extra_header_and_query_names(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cassette = edited(
        EXAMPLES / "test_forecast.yaml",
        tmp_path / "custom.yaml",
        "uri: http://127.0.0.1:8765/v1/chat/completions",
        "uri: http://127.0.0.1:8765/v1/chat/completions?session=FAKEtoken&page=2",
    )
    edited(
        cassette,
        cassette,
        "      x-stainless-arch:\n",
        "      X-Custom-Auth:\n      - FAKEauth\n      x-stainless-arch:\n",
    )
    assert run(capsys, "scrub", "--dry-run", "custom.yaml") == (0, "clean custom.yaml\n", "")
    status, out, _ = run(
        capsys, "scrub", "custom.yaml", "--header", "x-custom-auth", "--query", "Session"
    )
    assert status == 0
    assert out == (
        "scrubbed custom.yaml: 2 values (query parameter session, request header x-custom-auth)\n"
    )
    text = cassette.read_text(encoding="utf-8")
    assert "FAKE" not in text
    assert "completions?session=REDACTED&page=2" in text
    assert "      X-Custom-Auth:\n      - REDACTED\n" in text


def test_scrub_readable_cassette_and_its_request_digest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A readable cassette: JSON bodies as YAML structure, and the provenance metadata's digest
    of each request, which follows the scrubbed request."""
    monkeypatch.chdir(tmp_path)
    cassette = edited(
        EXAMPLES / "test_forecast.yaml",
        tmp_path / "readable.yaml",
        "uri: http://127.0.0.1:8765/v1/chat/completions\n",
        "uri: http://127.0.0.1:8765/v1/chat/completions?key=FAKE-query-key-123456\n",
    )
    edited(
        cassette,
        cassette,
        "content: What is the weather in Paris?\n",
        "content: What is the weather in Paris? sk-FAKE-abcdefghijklmnopqrstuvwxyz\n",
    )

    def digests() -> tuple[list[str], list[str]]:
        plain = read_document(cassette)
        raw = yaml.safe_load(cassette.read_text(encoding="utf-8"))
        requests = [i["request"] for i in plain["interactions"]]
        computed = [request_digest(r["method"], r["uri"], r["body"]) for r in requests]
        stored = [e["request"] for e in raw["metadata"]["chatresp"]["exchanges"]]
        return computed, stored

    computed, stored = digests()
    edited(cassette, cassette, f"request: {stored[0]}\n", f"request: {computed[0]}\n")
    before = cassette.read_text(encoding="utf-8").splitlines()

    status, out, _ = run(capsys, "scrub", "readable.yaml")

    assert (status, out) == (
        0,
        "scrubbed readable.yaml: 2 values (query parameter key, sk- key in request body)\n",
    )
    after = cassette.read_text(encoding="utf-8").splitlines()
    assert [(a, b) for a, b in zip(before, after, strict=True) if a != b] == [
        (
            "    uri: http://127.0.0.1:8765/v1/chat/completions?key=FAKE-query-key-123456",
            "    uri: http://127.0.0.1:8765/v1/chat/completions?key=REDACTED",
        ),
        (
            "          content: What is the weather in Paris? sk-FAKE-abcdefghijklmnopqrstuvwxyz",
            "          content: What is the weather in Paris? REDACTED",
        ),
        (f"      request: {computed[0]}", f"      request: {digests()[0][0]}"),
    ]
    new_computed, new_stored = digests()
    assert new_stored == new_computed != computed
    assert load_cassette(cassette).exchanges[0].request.json["messages"][0]["content"] == (
        "What is the weather in Paris? REDACTED"
    )


def test_scrub_json_cassette(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MY_SERVICE_TOKEN", SERVICE_TOKEN)
    document = yaml.safe_load((DATA / "secrets.yaml").read_text(encoding="utf-8"))
    body = document["interactions"][1]["response"]["body"]
    body["string"] = base64.b64encode(body["string"]).decode()  # JSON has no bytes
    cassette = tmp_path / "secrets.json"
    cassette.write_text(json.dumps(document, indent=4) + "\n", encoding="utf-8")
    status, out, _ = run(capsys, "scrub", "secrets.json")
    assert status == 0
    assert out.startswith("scrubbed secrets.json: 11 values (")
    text = cassette.read_text(encoding="utf-8")
    assert not [secret for secret in SECRETS if secret in text]
    scrubbed = json.loads(text)
    inner = gzip.decompress(
        base64.b64decode(scrubbed["interactions"][1]["response"]["body"]["string"])
    )
    assert b"Your old key REDACTED is revoked." in inner
    assert run(capsys, "scrub", "--dry-run", "secrets.json") == (0, "clean secrets.json\n", "")


def test_scrub_never_shows_a_secret_even_in_a_key(
    capsys: pytest.CaptureFixture[str], dirty: Path
) -> None:
    edited(
        dirty,
        dirty,
        "      x-request-id:\n      - req_0001\n",
        f"      x-{SERVICE_TOKEN}:\n      - req_0001\n",
    )
    status, out, _ = run(capsys, "scrub", "secrets.yaml")
    assert status == 0
    assert SERVICE_TOKEN not in out
    assert "$MY_SERVICE_TOKEN in response header x-REDACTED (a key)" in out
    text = dirty.read_text(encoding="utf-8")
    assert SERVICE_TOKEN not in text
    assert "      x-REDACTED:\n      - req_0001\n" in text


def test_scrub_unreadable_files(capsys: pytest.CaptureFixture[str], dirty: Path) -> None:
    (dirty.parent / "list.yaml").write_text("- not\n- a cassette\n", encoding="utf-8")
    (dirty.parent / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    status, out, err = run(capsys, "scrub", "--dry-run", "list.yaml", "binary.yaml", "secrets.yaml")
    assert status == 1
    assert err == ""
    assert out.splitlines() == [
        "list.yaml: not a vcrpy cassette: expected a mapping, got list",
        "binary.yaml: not UTF-8 text (byte 0 is 0xff)",
        SCRUBBED_LINE.replace("scrubbed", "would scrub", 1),
    ]
    assert run(capsys, "scrub", "nowhere.yaml") == (
        2,
        "",
        "chatresp scrub: error: no such file or directory: nowhere.yaml\n",
    )


# --- the command itself -------------------------------------------------------------------------


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for name in ("check", "show", "scrub"):
        assert re.search(rf"^    {name} +\S", out, re.MULTILINE)
    status, out, _ = run(capsys, "scrub", "--help")
    assert status == 0
    assert "--dry-run" in out
    assert "--check" not in out
    assert "--header NAME" in out
    status, out, _ = run(capsys, "--version")
    assert (status, out) == (0, "chatresp 0.1.0\n")
    status, _, err = run(capsys)
    assert status == 2
    assert "the following arguments are required: COMMAND" in err
    assert run(capsys, "check", "--no-such-option")[0] == 2


def command() -> list[str]:
    script = shutil.which("chatresp") or str(Path(sys.executable).with_name("chatresp"))
    if Path(script).exists():
        return [script]
    return [sys.executable, "-m", "pytest_chatresp.cli"]


def test_console_script(examples: Path, tmp_path: Path) -> None:
    (examples / "broken.yaml").write_text("interactions: [\n", encoding="utf-8")
    result = subprocess.run(
        [*command(), "check", "cassettes"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "cassettes/broken.yaml: not valid YAML at line 2, column 1: did not find expected node content",
        "9 files, 8 exchanges, 7 chat completions (1 streamed), 1 error response, "
        "1 unreadable file, 0 invalid completions",
    ]


def test_module_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_chatresp.cli", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "chatresp 0.1.0\n", "")
