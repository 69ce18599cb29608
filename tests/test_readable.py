"""The readable cassette format, provenance metadata, cassette age, and unplayed interactions."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import completion, write_cassette
from openai_server import OpenAIServer

from pytest_chatresp import load_cassette
from pytest_chatresp.cassette import read_document
from pytest_chatresp.cassette.readable import serialize, to_plain, to_readable

INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

CALLS = """
import os
import openai
import pytest

def client():
    return openai.OpenAI(
        base_url=os.environ["CHATRESP_TEST_BASE_URL"],
        api_key=os.environ["CHATRESP_TEST_API_KEY"],
        max_retries=0,
    )

def show(value):
    print("RESULT", value)

@pytest.mark.chat_cassette
def test_plain():
    reply = client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather in Paris?"}]
    )
    show(reply.model_dump_json())

@pytest.mark.chat_cassette
def test_stream():
    stream = client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream the weather"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    show([chunk.model_dump_json() for chunk in stream])

@pytest.mark.chat_cassette
def test_gzip():
    reply = client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Zipped weather"}],
        extra_headers={"x-local-gzip": "1"},
    )
    show(reply.model_dump_json())
"""


def results(result: pytest.RunResult) -> list[str]:
    return [line.split("RESULT ", 1)[1] for line in result.outlines if "RESULT " in line]


@pytest.fixture
def project(pytester: pytest.Pytester, openai_server: OpenAIServer) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(test_user=CALLS)
    return pytester


def cassette(project: pytest.Pytester, name: str) -> Path:
    return project.path / "cassettes" / "test_user" / f"{name}.yaml"


def test_readable_round_trip_through_vcrpy_and_the_sdk(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    recorded = project.runpytest("-s", "--chatresp-record-mode=once")
    recorded.assert_outcomes(passed=3)
    assert openai_server.request_count == 3

    plain = yaml.safe_load(cassette(project, "test_plain").read_text())
    assert plain["chatresp_format"] == "readable-1"
    (interaction,) = plain["interactions"]
    assert interaction["request"]["body"]["json"]["messages"][0]["content"] == "Weather in Paris?"
    assert interaction["response"]["body"]["json"]["object"] == "chat.completion"

    stream = yaml.safe_load(cassette(project, "test_stream").read_text())
    events = stream["interactions"][0]["response"]["body"]["events"]
    assert events[-1] == {"data": "[DONE]"}
    assert events[0]["data"]["object"] == "chat.completion.chunk"
    assert len(events) > 4

    zipped = yaml.safe_load(cassette(project, "test_gzip").read_text())
    response = zipped["interactions"][0]["response"]
    assert "json" in response["body"]
    assert not any(k.lower() == "content-encoding" for k in response["headers"])

    # Replay hands the SDK the same bytes: the same objects, chunk for chunk.
    replayed = project.runpytest("-s")
    replayed.assert_outcomes(passed=3)
    assert openai_server.request_count == 3
    assert results(replayed) == results(recorded)
    assert len(results(replayed)) == 3

    # The plugin's reader reads it like a plain vcrpy cassette.
    loaded = load_cassette(cassette(project, "test_stream"))
    (exchange,) = loaded.exchanges
    assert exchange.streamed
    assert exchange.completion is not None
    assert exchange.completion.choices[0].message.content == "Echo: Stream the weather"


def test_the_text_diffs_line_by_line(project: pytest.Pytester) -> None:
    project.runpytest("--chatresp-record-mode=once", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    text = cassette(project, "test_plain").read_text()
    assert "      content: Weather in Paris?\n" in text
    assert '\\"' not in text  # no escaped JSON string


def test_serializer_choice_and_existing_format_kept(project: pytest.Pytester) -> None:
    project.makeini(INI + "chatresp_serializer = yaml\n")
    project.runpytest("--chatresp-record-mode=once", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    path = cassette(project, "test_plain")
    assert "chatresp_format" not in path.read_text()
    assert "string: '{" in path.read_text()
    # Readable is the default for new cassettes, but an existing one keeps its format...
    project.makeini(INI)
    project.runpytest("--chatresp-record-mode=new_episodes", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    assert "chatresp_format" not in path.read_text()
    # ...unless it is recorded again with all.
    project.runpytest("--chatresp-record-mode=all", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    assert path.read_text().startswith("chatresp_format: readable-1")


def test_a_replay_that_drops_unused_requests_keeps_the_files_format(
    project: pytest.Pytester,
) -> None:
    project.makeini(INI + "chatresp_serializer = yaml\n")
    project.runpytest("--chatresp-record-mode=once", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    path = cassette(project, "test_plain")
    document = yaml.safe_load(path.read_text())
    document["interactions"].append(copy.deepcopy(document["interactions"][0]))
    path.write_text(yaml.safe_dump(document))
    project.makeini(INI)  # new cassettes would be readable; this one stays plain YAML
    project.makeconftest(
        "import pytest\n\n\n@pytest.fixture\ndef chatresp_vcr_config():\n"
        "    return {'drop_unused_requests': True}\n"
    )
    project.runpytest("-k", "plain").assert_outcomes(passed=1, deselected=2)
    text = path.read_text()  # written again (vcrpy saves to drop), in the format it had
    assert "chatresp_format" not in text
    assert "string: '{" in text


def test_json_serializer_writes_json_files(project: pytest.Pytester) -> None:
    project.makeini(INI + "chatresp_serializer = json\n")
    project.runpytest("--chatresp-record-mode=once", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    path = project.path / "cassettes" / "test_user" / "test_plain.json"
    document = json.loads(path.read_text())
    assert len(document["interactions"]) == 1
    project.runpytest("-k", "plain").assert_outcomes(passed=1, deselected=2)


def test_bad_serializer_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchatresp_serializer = toml\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: chatresp_serializer = 'toml' is not valid; use one of: readable, yaml, json."]
    )


def plain_document(body: str, *, gzip_it: bool = False) -> dict[str, Any]:
    raw: Any = gzip.compress(body.encode()) if gzip_it else body
    headers = {"Content-Encoding": ["gzip"]} if gzip_it else {}
    return {
        "version": 1,
        "interactions": [
            {
                "request": {
                    "method": "POST",
                    "uri": "https://api.openai.com/v1/chat/completions",
                    "body": '{"model": "gpt-4o-mini", "messages": []}',
                    "headers": {},
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": headers,
                    "body": {"string": raw},
                },
            }
        ],
    }


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(completion()),
        json.dumps(completion(), indent=2) + "\n",
        json.dumps(completion(), separators=(",", ":")),
        '{"id": 1.50, "x": 1e5}',  # numbers JSON would write differently: kept as text
        '{"a": 1, "a": 2}',  # duplicate keys: kept as text
        'data: {"a": 1}\n\ndata: [DONE]\n\n',
        'data: {"a": 1}\r\n\r\n',  # CRLF: kept as text
        "plain text\nover lines\n",
        "",
    ],
)
def test_serializer_round_trip_is_exact(body: str) -> None:
    document = plain_document(body)
    back = to_plain(yaml.safe_load(serialize(document)))
    assert back["interactions"][0]["response"]["body"]["string"] == body
    assert (
        back["interactions"][0]["request"]["body"] == document["interactions"][0]["request"]["body"]
    )
    text = serialize(document).encode()
    assert read_document("<cassette>", text)["interactions"] == back["interactions"]


def test_gzip_is_stored_decoded() -> None:
    readable = to_readable(plain_document(json.dumps(completion()), gzip_it=True))
    response = readable["interactions"][0]["response"]
    assert response["headers"] == {}
    assert response["body"]["json"]["id"] == "chatcmpl-1"


def test_malformed_readable_body_is_a_cassette_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    document = yaml.safe_load(serialize(plain_document(json.dumps(completion()))))
    document["interactions"][0]["response"]["body"]["format"] = "no-such-format"
    path.write_text(yaml.safe_dump(document))
    from pytest_chatresp import CassetteError

    with pytest.raises(
        CassetteError,
        match=r"bad\.yaml, interaction 0: response\.body: a body in the readable format is "
        r"malformed \(ValueError: unknown format 'no-such-format'",
    ):
        load_cassette(path)


# --- provenance ---------------------------------------------------------------------------------


def test_metadata_records_when_what_and_which_versions(project: pytest.Pytester) -> None:
    project.runpytest("--chatresp-record-mode=once", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    loaded = load_cassette(cassette(project, "test_plain"))
    ours = loaded.metadata["chatresp"]
    assert ours["recorded_at"].endswith("Z")
    assert {"pytest-chatresp", "vcrpy", "openai"} <= set(ours["versions"])
    (entry,) = ours["exchanges"]
    assert entry["requested_model"] == "gpt-4o-mini"
    assert entry["served_model"] == "gpt-4o-mini-2025-01-01"
    assert entry["served_tier"] == "default"
    assert entry["requested_tier"] is None


def age(path: Path, recorded_at: str) -> None:
    text = path.read_text()
    document = yaml.safe_load(text)
    for entry in document["metadata"]["chatresp"]["exchanges"]:
        entry["recorded_at"] = recorded_at
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_max_age_warns_or_fails(project: pytest.Pytester) -> None:
    project.runpytest("--chatresp-record-mode=once", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    age(cassette(project, "test_plain"), "2020-01-01T00:00:00Z")
    result = project.runpytest("-k", "plain", "--chatresp-max-age=30")
    result.assert_outcomes(passed=1, deselected=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*CassetteAgeWarning: cassettes/test_user/test_plain.yaml was recorded * days ago "
            "(2020-01-01), more than --chatresp-max-age=30. Record it again with: "
            "pytest --chatresp-record-mode=all test_user.py::test_plain"
        ]
    )
    result = project.runpytest(
        "-k", "plain", "--chatresp-max-age=30", "-W", "error::pytest_chatresp.CassetteAgeWarning"
    )
    result.assert_outcomes(errors=1, deselected=2)
    project.makeini(INI + "chatresp_max_age = 100000\n")
    project.runpytest("-k", "plain").assert_outcomes(passed=1, deselected=2)


def test_served_model_change_on_re_record_is_reported(
    project: pytest.Pytester, openai_server: OpenAIServer
) -> None:
    project.runpytest("--chatresp-record-mode=once", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    path = cassette(project, "test_plain")
    document = yaml.safe_load(path.read_text())
    document["metadata"]["chatresp"]["exchanges"][0]["served_model"] = "gpt-4o-mini-2024-07-18"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    result = project.runpytest("--chatresp-record-mode=all", "-k", "plain")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines(
        [
            "served model changed on re-recording:",
            "  cassettes/test_user/test_plain.yaml: gpt-4o-mini: served gpt-4o-mini-2024-07-18 "
            "before, gpt-4o-mini-2025-01-01 now (interaction 0)",
        ]
    )


# --- hygiene: interactions no test played --------------------------------------------------------

UNPLAYED = """
import httpx
import pytest

@pytest.mark.chat_cassette("shared.yaml")
def test_first():
    httpx.post("https://api.openai.com/v1/chat/completions", json={"model": "m", "n": 1})
"""


def test_unplayed_interactions_warn_fail_or_are_ignored(pytester: pytest.Pytester) -> None:
    path = write_cassette(
        pytester.path / "cassettes/shared.yaml",
        completion(id="a"),
        completion(id="b"),
        request={"model": "m", "n": 1},
    )
    document = json.loads(path.read_text())
    document["interactions"][1]["request"]["body"] = json.dumps({"model": "m", "n": 2})
    path.write_text(json.dumps(document))
    pytester.makepyfile(test_u=UNPLAYED)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "interactions no test played (ini chatresp_unplayed = ignore to hide):",
            "  cassettes/shared.yaml: interaction(s) 1 of 2",
        ]
    )
    pytester.makeini("[pytest]\nchatresp_unplayed = fail\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    pytester.makeini("[pytest]\nchatresp_unplayed = ignore\n")
    result = pytester.runpytest()
    assert result.ret == 0
    result.stdout.no_fnmatch_line("*no test played*")


def test_a_readable_cassette_stays_readable_on_new_episodes(project: pytest.Pytester) -> None:
    project.runpytest("--chatresp-record-mode=once", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    path = cassette(project, "test_plain")
    project.makepyfile(test_user=CALLS.replace("Weather in Paris?", "Weather in Rome?"))
    project.runpytest("--chatresp-record-mode=new_episodes", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    text = path.read_text()
    assert text.startswith("chatresp_format: readable-1")
    assert len(yaml.safe_load(text)["interactions"]) == 2


def test_json_serializer_stores_gzip_bodies_decoded(project: pytest.Pytester) -> None:
    project.makeini(INI + "chatresp_serializer = json\n")
    recorded = project.runpytest("-s", "--chatresp-record-mode=once", "-k", "gzip")
    recorded.assert_outcomes(passed=1, deselected=2)
    path = project.path / "cassettes" / "test_user" / "test_gzip.json"
    response = json.loads(path.read_text())["interactions"][0]["response"]
    assert json.loads(response["body"]["string"])["object"] == "chat.completion"
    replayed = project.runpytest("-s", "-k", "gzip")
    replayed.assert_outcomes(passed=1, deselected=2)
    assert results(replayed) == results(recorded)


def test_marker_serializer_json_names_the_file_json(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_user=CALLS.replace(
            "@pytest.mark.chat_cassette\ndef test_plain",
            '@pytest.mark.chat_cassette(serializer="json")\ndef test_plain',
        )
    )
    project.runpytest("--chatresp-record-mode=once", "-k", "plain").assert_outcomes(
        passed=1, deselected=2
    )
    assert (project.path / "cassettes" / "test_user" / "test_plain.json").is_file()
    assert not cassette(project, "test_plain").exists()


def test_a_stream_with_non_ascii_chunks_is_stored_as_events() -> None:
    ascii_first = 'data: {"a": "x"}\n\ndata: {"a": "café ☕"}\n\ndata: [DONE]\n\n'
    for text in (ascii_first, 'data: {"a": "café"}\n\ndata: {"a": "x"}\n\n'):
        readable = to_readable(plain_document(text))
        body = readable["interactions"][0]["response"]["body"]
        assert "events" in body, text
        back = to_plain(yaml.safe_load(serialize(plain_document(text))))
        assert back["interactions"][0]["response"]["body"]["string"] == text


def test_a_test_that_reads_a_named_cassette_plays_all_of_it(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes/shared.yaml", completion(id="a"))
    pytester.makeini("[pytest]\nchatresp_unplayed = fail\n")
    pytester.makepyfile(
        test_r="""
        import pytest

        @pytest.mark.chat_cassette("shared.yaml")
        def test_reads(chat_completion):
            assert chat_completion.id == "a"
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.no_fnmatch_line("*no test played*")


def test_a_readable_cassette_without_interactions_is_a_cassette_error(tmp_path: Path) -> None:
    from pytest_chatresp import CassetteError

    path = tmp_path / "bad.yaml"
    path.write_text("chatresp_format: readable-1\ninteractions: true\n")
    with pytest.raises(
        CassetteError,
        match=r"bad\.yaml: interactions: not a vcrpy cassette: no 'interactions' list",
    ):
        load_cassette(path)
