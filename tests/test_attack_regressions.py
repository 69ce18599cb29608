"""Regressions from the security review of the plugin: each test reproduces one way in.

A secret in a chained exception, a hostile store directory, control characters in collected
item names, a secret echoed in a response or a test id reaching the report or a message, and
numbers too long to print.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import completion, write_cassette
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai_server import OpenAIServer

from pytest_chatresp.cassette import read_document
from pytest_chatresp.errors import CassetteError

FAKE_TOKEN = "FAKE0tokv0123456789"


def test_a_recording_failure_prints_no_secret_from_the_chained_exception(
    pytester: pytest.Pytester,
) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pytester.makepyfile(
        test_m=textwrap.dedent(
            f"""
            import pytest, requests

            @pytest.mark.chat_cassette
            def test_conn():
                requests.get("http://127.0.0.1:{port}/v1/models?token={FAKE_TOKEN}")
            """
        )
    )
    result = pytester.runpytest_subprocess("--chatresp-record-mode=once", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["Recording failed: cannot connect to GET *token=REDACTED*"])
    assert FAKE_TOKEN not in result.stdout.str() + result.stderr.str()


# --- numbers too long to print or to read ---------------------------------------------------------


def test_a_huge_created_is_shortened_in_the_failure(pytester: pytest.Pytester) -> None:
    body = json.dumps(completion()).replace("1764000000", "9" * 4000)
    write_cassette(pytester.path / "cassettes" / "test_n" / "test_n.yaml", body)
    pytester.makepyfile(test_n="def test_n(chat_completion):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "cassettes/test_n/test_n.yaml, interaction 0: created: expected Unix seconds, found 9999*… (milliseconds?)*"
        ]
    )
    assert max(len(line) for line in result.outlines) < 400


def test_a_body_with_a_number_too_long_names_the_field(pytester: pytest.Pytester) -> None:
    body = completion()
    body["usage"] = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    text = json.dumps(body).replace('"prompt_tokens": 1', '"prompt_tokens": ' + "9" * 5000)
    write_cassette(pytester.path / "cassettes" / "test_n" / "test_n.yaml", text)
    pytester.makepyfile(test_n="def test_n(chat_completion):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "cassettes/test_n/test_n.yaml, interaction 0: the response body cannot be read: a number"
            " of 5,000 digits at line 1, column *(field 'prompt_tokens'): more than the 4,300"
            " digits Python reads"
        ]
    )


def test_a_yaml_file_of_json_with_a_number_too_long_is_reported_as_json(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text('{"interactions": [], "version": 1,\n "x": ' + "9" * 5000 + "}")
    with pytest.raises(CassetteError) as raised:
        read_document(path)
    assert str(raised.value) == (
        f"{path}: not valid JSON: a number of 5,000 digits at line 2, column 7 (field 'x'):"
        " more than the 4,300 digits Python reads"
    )


# --- control characters in collected names --------------------------------------------------------


@pytest.mark.skipif(os.name == "nt", reason="control characters in file names")
def test_collected_cassette_names_are_printed_escaped(pytester: pytest.Pytester) -> None:
    cassettes = pytester.path / "cassettes" / "test_c"
    write_cassette(cassettes / "esc\x1b]0;T\x07.yaml", completion(object="chat.completion.bad"))
    write_cassette(cassettes / "evil\u202elmay.yaml", completion())
    result = pytester.runpytest_subprocess(
        "--chatresp-collect-cassettes", "-p", "no:cacheprovider", "-rA"
    )
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    for control in ("\x1b", "\x07", "\u202e"):
        assert control not in output
    result.stdout.fnmatch_lines(
        [
            "cassettes/test_c/esc\\u001b]0;T\\u0007.yaml F*",
            "cassettes/test_c/evil\\u202elmay.yaml .*",
            "*_ cassette cassettes/test_c/esc\\u001b]0;T\\u0007.yaml _*",
            "PASSED cassettes/test_c/evil\\u202elmay.yaml::contract",
            "FAILED cassettes/test_c/esc\\u001b]0;T\\u0007.yaml::contract - *",
        ],
    )


# --- secrets echoed by a response or a test id ----------------------------------------------------

FAKE_KEY = "sk-proj-FAKE0attack0key0ABCDEFGHIJ0123456789xyz"


def test_a_secret_echoed_in_a_response_is_not_printed_nor_reported(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    write_cassette(
        pytester.path / "cassettes" / "test_x" / "test_x.yaml", completion(model=FAKE_KEY)
    )
    body = completion()
    body["choices"][0]["finish_reason"] = FAKE_KEY  # type: ignore[index]
    write_cassette(pytester.path / "cassettes" / "test_x" / "test_y.yaml", body)
    pytester.makepyfile(
        test_x="def test_x(chat_completion):\n    pass\n\ndef test_y(chat_completion):\n    pass\n"
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--chatresp-report-json={report}"
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["models: REDACTED (1)"])
    result.stdout.fnmatch_lines(["*choices[[]0[]].finish_reason: *REDACTED*"])
    assert FAKE_KEY not in result.stdout.str() + result.stderr.str()
    written = report.read_text()
    assert FAKE_KEY not in written
    assert "REDACTED" in written
    json.loads(written)


# --- JSON bodies the SDK reads: a byte order mark, UTF-16 and UTF-32 ------------------------------


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_a_json_body_with_a_byte_order_mark_or_in_utf16_32_is_a_completion(
    tmp_path: Path, encoding: str
) -> None:
    import yaml

    from pytest_chatresp.cassette import load_cassette

    body = json.dumps(completion()).encode(encoding)
    document = json.loads(write_cassette(tmp_path / "c.yaml", "").read_text())
    document["interactions"][0]["response"]["body"]["string"] = body
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(document))
    cassette = load_cassette(path)
    assert cassette.violations == []
    assert cassette.exchanges[0].is_completion


# --- symbolic links to directories, for audit and scrub ------------------------------------------


def _chatresp(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_chatresp.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(os.name == "nt", reason="symbolic links")
def test_a_linked_directory_is_reported_and_nothing_outside_is_rewritten(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    leaky = write_cassette(outside / "sub" / "c.yaml", completion())
    leaky.write_text(
        leaky.read_text().replace(
            '"Content-Type"', f'"Authorization": ["Bearer {FAKE_KEY}"], "Content-Type"', 1
        )
    )
    before = leaky.read_text()
    project = tmp_path / "proj"
    write_cassette(project / "dir" / "own.yaml", completion())
    (project / "dir" / "linkdir").symlink_to(outside / "sub")
    (project / "linkdir").symlink_to(outside / "sub")
    for command in (["audit", "dir"], ["scrub", "--dry-run", "dir"], ["scrub", "dir"]):
        done = _chatresp(project, *command)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "dir/linkdir: a symbolic link to the directory " in done.stderr + done.stdout
    for named in ("linkdir", "linkdir/c.yaml"):
        done = _chatresp(project, "scrub", named)
        assert done.returncode == 1, (named, done.stdout, done.stderr)
        assert "linkdir: a symbolic link to the directory " in done.stderr
    assert leaky.read_text() == before  # its key still there: nothing outside was scrubbed


# --- the fast YAML path against PyYAML's safe loader ----------------------------------------------


def _same(a: object, b: object, seen: set[tuple[int, int]] | None = None) -> bool:
    """Equal values of equal types, dict keys in the same order; cycles compared once."""
    seen = set() if seen is None else seen
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)  # type: ignore[arg-type]
    if isinstance(a, dict | list):
        if (id(a), id(b)) in seen:
            return True
        seen.add((id(a), id(b)))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return [(type(k), k) for k in a] == [(type(k), k) for k in b] and all(
            _same(a[k], b[k], seen) for k in a
        )
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y, seen) for x, y in zip(a, b, strict=True))
    return a == b


def _pyyaml_and_fast(text: str) -> tuple[object, object]:
    import yaml

    from pytest_chatresp.cassette import document

    expected = yaml.load(text, Loader=document._yaml_loader())
    return expected, document._parse_yaml(text.encode("utf-8"), "c.yaml")


@pytest.mark.parametrize(
    "text",
    [
        "&a {1: *a}",  # a cycle through a mapping with a key that is not text
        "&a {x: {1: *a}}",
        "root: &a {x: {1: [*a]}}",
        "&a {k: !!python/object:foo {args: [*a]}}",  # through a Python tag
        "&n0 {? 2002-12-14 : *n0, ? a : a}",  # through a date key
        "&n0 !!set {? = : *n0, ? << : &n1 !foo {? a : &n2 !!set {}}}",
        "&a [1, *a]",  # the cycles the fast path sees itself, and the plain shared nodes
        "&a {x: *a}",
        "a: &a {x: 1}\nb: {<<: *a}\nc: *a\nd: {<<: *a, x: 5}",
        "a: &l [1, 2]\nb: {1: *l}\nc: *l",
    ],
)
def test_a_yaml_cycle_through_any_node_reads_as_pyyaml_reads_it(text: str) -> None:
    expected, found = _pyyaml_and_fast(text)
    assert _same(found, expected), (found, expected)


_YAML_SCALARS = ["a", "1", "'1'", "~", "true", "1.5", "!!str 2", "!!int '3'", "!!binary aGk="]
_YAML_SCALARS += ["2002-12-14", ".nan", "=", "0x1F", "!!python/name:os.path", "!foo x", "''"]
_YAML_KEYS = ["a", "b", "1", "~", "true", "'k'", "<<", "=", "2002-12-14", "!!str 5"]
_YAML_TAGS = ["", "", "", "!!map ", "!!seq ", "!!set ", "!!omap ", "!!python/object:x ", "!foo "]


@st.composite
def _yaml_node(draw: st.DrawFn, depth: int = 0) -> str:
    """Flow YAML with anchors (defined before their children, so cycles too), aliases, tags,
    merge keys and keys of every type."""
    anchors: list[str] = draw(st.shared(st.builds(list), key="anchors"))
    choice = draw(st.integers(0, 5 if depth < 4 else 1))
    if choice == 1 and anchors:
        return "*" + draw(st.sampled_from(anchors))
    if choice <= 1:
        return draw(st.sampled_from(_YAML_SCALARS))
    anchor = ""
    if draw(st.booleans()):
        anchor = f"&n{len(anchors)} "
        anchors.append(f"n{len(anchors)}")
    tag = draw(st.sampled_from(_YAML_TAGS))
    if choice <= 3:
        items = [draw(_yaml_node(depth + 1)) for _ in range(draw(st.integers(0, 3)))]
        return f"{anchor}{tag}[{', '.join(items)}]"
    pairs = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(_YAML_KEYS)) if draw(st.integers(0, 4)) else None
        key = key if key is not None else draw(_yaml_node(depth + 1))
        pairs.append(f"? {key} : {draw(_yaml_node(depth + 1))}")
    return f"{anchor}{tag}{{{', '.join(pairs)}}}"


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_yaml_node())
def test_the_fast_yaml_path_accepts_and_builds_what_pyyaml_does(text: str) -> None:
    import yaml

    from pytest_chatresp.cassette import document

    try:
        expected = yaml.load(text, Loader=document._yaml_loader())
    except yaml.YAMLError:
        with pytest.raises(CassetteError):
            document._parse_yaml(text.encode("utf-8"), "c.yaml")
        return
    found = document._parse_yaml(text.encode("utf-8"), "c.yaml")
    assert _same(found, expected), (found, expected)


# --- redaction: the prefilter of the case-blind credential pattern --------------------------------


@pytest.mark.parametrize(
    "scheme", ["Basic", "BAS\u0130C", "bas\u0131c", "ba\u017fic", "Bearer", "BEARER"]
)
def test_a_credential_after_any_spelling_the_pattern_reads_is_redacted(scheme: str) -> None:
    from pytest_chatresp.hygiene.policy import Secrets, redact_text

    text = f"401: Authorization: {scheme} dXNlcjpGQUtFMHBhc3N3b3JkMTIz was refused"
    assert redact_text(text, Secrets()) == f"401: Authorization: {scheme} REDACTED was refused"


# --- header values joined by the secret scan ------------------------------------------------------

_SPLIT_KEY = "sk-proj-FAKE0split0key0ABCDEFGHIJ0123456789xyz"


def _headers_document(headers: dict[str, list[str]]) -> dict[str, object]:
    return {"interactions": [{"response": {"headers": headers, "body": {"string": "{}"}}}]}


def test_an_id_ending_in_sk_dash_beside_another_header_is_no_key() -> None:
    from pytest_chatresp.hygiene.policy import Secrets
    from pytest_chatresp.hygiene.scan import find_secrets

    headers = {
        "x-worker": ["93d5wcnlylk6task-IAD"],  # "sk-IAD" and any 20 characters after it
        "x-request-id": ["req_0123456789abcdefghijklmn"],
        "content-type": ["application/json"],
    }
    assert find_secrets(_headers_document(headers), Secrets()) == []


@pytest.mark.parametrize("known", [True, False], ids=["key_in_environment", "key_shape_only"])
@pytest.mark.parametrize("encoded", [False, True], ids=["plain", "base64"])
def test_a_key_or_its_base64_split_across_two_headers_is_found(known: bool, encoded: bool) -> None:
    import base64

    from pytest_chatresp.hygiene.policy import Secrets
    from pytest_chatresp.hygiene.scan import find_secrets

    text = base64.b64encode(_SPLIT_KEY.encode()).decode() if encoded else _SPLIT_KEY
    headers = {"x-team-route": [text[:14]], "server": ["cloudflare"], "x-trace-tail": [text[14:]]}
    secrets = Secrets.from_environment({"OPENAI_API_KEY": _SPLIT_KEY}) if known else Secrets()
    found = find_secrets(_headers_document(headers), secrets)
    assert found
    assert {where for where, _ in found} == {"interactions[0].response.headers"}


def test_a_recording_with_a_header_ending_in_sk_dash_beside_an_id_is_written(
    pytester: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    """Two ordinary request headers, joined, read "sk-7run_0123…": no key, the cassette is kept."""
    pytester.makepyfile(
        test_rec=textwrap.dedent(
            """
            import os

            import openai
            import pytest

            @pytest.mark.chat_cassette
            def test_rec():
                client = openai.OpenAI(
                    base_url=os.environ["CHATRESP_TEST_BASE_URL"],
                    api_key="sk-FAKE-test-key-not-real",
                    max_retries=0,
                    default_headers={"X-Worker": "build-task-7",
                                     "X-Run-Id": "run_0123456789abcdefghij"},
                )
                answer = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
                )
                assert answer.choices[0].message.content
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--chatresp-record-mode=once")
    result.assert_outcomes(passed=1)
    assert "would hold a secret" not in result.stdout.str()
    assert (pytester.path / "cassettes" / "test_rec" / "test_rec.yaml").is_file()


# --- contract checks on a completion with a wrong-typed value ------------------------------------


@pytest.mark.parametrize("index", [None, [0], {"a": 1}])
def test_a_wrong_typed_choice_index_is_one_finding_not_two(
    pytester: pytest.Pytester, index: object
) -> None:
    choice = {"index": index, "message": {"role": "assistant", "content": "hi"}}
    choice |= {"logprobs": None, "finish_reason": "stop"}
    write_cassette(pytester.path / "cassettes/test_i/test_i.yaml", completion(choices=[choice]))
    pytester.makepyfile(test_i="def test_i(chat_completion):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["cassettes/test_i/test_i.yaml, interaction 0: choices[[]0].index: *"]
    )
    assert "check choice-index" not in result.stdout.str()


# --- stored verdicts ------------------------------------------------------------------------------


def test_a_verdict_the_clock_gave_is_not_kept_for_a_later_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completion dated three days ahead (a server's clock) is "in the future" today and not
    five days later: a later session finds what a cold one finds, not today's stored finding."""
    import time

    from pytest_chatresp.cassette.cache import CassetteCache

    now = time.time()
    path = write_cassette(tmp_path / "c.yaml", completion(created=int(now) + 3 * 86400))
    today = CassetteCache(tmp_path / "store", key=b"k" * 32).load(path)
    assert [v.check for v in today.violations] == ["created"]
    monkeypatch.setattr("pytest_chatresp.checks.time.time", lambda: now + 5 * 86400)
    later = CassetteCache(tmp_path / "store", key=b"k" * 32).load(path)
    assert CassetteCache(None).load(path).violations == []
    assert later.violations == []
    assert later.completions[0].created == int(now) + 3 * 86400
