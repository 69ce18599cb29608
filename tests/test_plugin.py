"""The plugin as users meet it: fixtures, the marker, options and failure messages (pytester)."""

from __future__ import annotations

import pytest
from helpers import completion, write_cassette

USER_TEST = """
from pytest_chatresp import assert_choices, assert_usage, assert_tier

def test_forecast(chat_completion):
    assert_choices(chat_completion, count=1, finish_reason="stop")
    assert_usage(chat_completion, max_total_tokens=200)
    assert_tier(chat_completion, "default")
"""


def test_issue_example_passes(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes/test_weather/test_forecast.yaml", completion())
    pytester.makepyfile(test_weather=USER_TEST)
    pytester.runpytest().assert_outcomes(passed=1)


def test_chat_completions_and_cassette_fixtures(pytester: pytest.Pytester) -> None:
    write_cassette(
        pytester.path / "cassettes/test_it/test_many.yaml",
        completion(id="a"),
        completion(id="b"),
    )
    pytester.makepyfile(
        test_it="""
        from pytest_chatresp import Cassette, ChatCompletion

        def test_many(chat_completions, chat_cassette):
            assert [c.id for c in chat_completions] == ["a", "b"]
            assert isinstance(chat_cassette, Cassette)
            assert [e.index for e in chat_cassette.exchanges] == [0, 1]
            assert all(isinstance(c, ChatCompletion) for c in chat_completions)
            assert str(chat_completions[1].source) == "cassettes/test_it/test_many.yaml, interaction 1"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_chat_completion_needs_exactly_one(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes/test_it/test_one.yaml", completion(), completion())
    pytester.makepyfile(test_it="def test_one(chat_completion):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "cassettes/test_it/test_one.yaml holds 2 chat completions; the chat_completion "
            "fixture needs exactly one. Use the chat_completions fixture for all of them."
        ]
    )


def test_invalid_response_fails_before_the_test_body(pytester: pytest.Pytester) -> None:
    bad = completion()
    bad["choices"][0]["message"]["role"] = "user"
    write_cassette(pytester.path / "cassettes/test_it/test_bad.yaml", completion(), bad)
    pytester.makepyfile(
        test_it="def test_bad(chat_completions):\n    raise AssertionError('ran')\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "cassettes/test_it/test_bad.yaml, interaction 1: choices[0].message.role: "
            "expected 'assistant', got 'user'"
        ]
    )
    result.stdout.no_fnmatch_line("*ran*")
    # No traceback through the plugin's code.
    result.stdout.no_fnmatch_line("*pytest_chatresp*")
    result.stdout.no_fnmatch_line("*During handling*")


def test_unreadable_cassette_names_the_file(pytester: pytest.Pytester) -> None:
    path = pytester.path / "cassettes/test_it/test_yaml.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("interactions:\n- request: [unclosed\n")
    before = path.read_bytes()
    pytester.makepyfile(test_it="def test_yaml(chat_cassette):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["cassettes/test_it/test_yaml.yaml: not valid YAML at line *"])
    result.stdout.no_fnmatch_line("*yaml.*Error*")
    assert path.read_bytes() == before


def test_missing_cassette_says_where_and_how_to_record(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_gone(chat_completion):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "No cassette for test_it.py::test_gone: cassettes/test_it/test_gone.yaml does not exist.",
            "Record it: mark the test with @pytest.mark.chat_cassette and run "
            "pytest --chatresp-record-mode=once test_it.py::test_gone",
        ]
    )


def test_marker_names_the_cassette(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes/shared/weather.yaml", completion(id="named"))
    outside = write_cassette(pytester.path / "elsewhere/abs.yaml", completion(id="absolute"))
    pytester.makepyfile(
        test_it=f"""
        import pytest

        @pytest.mark.chat_cassette("shared/weather.yaml")
        def test_relative(chat_completion):
            assert chat_completion.id == "named"

        @pytest.mark.chat_cassette({str(outside)!r})
        def test_absolute(chat_completion):
            assert chat_completion.id == "absolute"

        @pytest.mark.chat_cassette(path="shared/weather.yaml")
        def test_keyword(chat_completion):
            assert chat_completion.id == "named"
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=3)


def test_bad_marker_argument(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_it="""
        import pytest

        @pytest.mark.chat_cassette(42)
        def test_bad(chat_completion):
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_it.py::test_bad: @pytest.mark.chat_cassette(path=42): the cassette "
            "path must be a non-empty string"
        ]
    )


def test_parametrized_and_class_names(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes/test_it/test_p[a-1].yaml", completion(id="a"))
    write_cassette(pytester.path / "cassettes/test_it/test_p[b_c-2].yaml", completion(id="b"))
    write_cassette(pytester.path / "cassettes/test_it/TestGroup.test_m.yaml", completion(id="m"))
    pytester.makepyfile(
        test_it="""
        import pytest

        @pytest.mark.parametrize("key,n", [("a", 1), ("b/c", 2)])
        def test_p(chat_completion, key, n):
            assert chat_completion.id == key[0]

        class TestGroup:
            def test_m(self, chat_completion):
                assert chat_completion.id == "m"
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_json_cassette_is_found_when_there_is_no_yaml(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes/test_it/test_j.json", completion(id="json"))
    pytester.makepyfile(
        test_it="def test_j(chat_completion):\n    assert chat_completion.id == 'json'\n"
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_cassette_dir_from_ini_and_cli(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "from_ini/test_it/test_d.yaml", completion(id="ini"))
    write_cassette(pytester.path / "from_cli/test_it/test_d.yaml", completion(id="cli"))
    pytester.makeini("[pytest]\nchatresp_cassette_dir = from_ini\n")
    pytester.makepyfile(
        test_it="""
        def test_d(chat_completion):
            print("SERVED", chat_completion.id)
        """
    )
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SERVED ini*"])
    result = pytester.runpytest("-s", "--chatresp-cassette-dir=from_cli")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SERVED cli*"])
    result.stdout.fnmatch_lines(["chatresp: cassette dir *from_cli*"])


def test_strict_mode_from_ini_and_cli(pytester: pytest.Pytester) -> None:
    lax = completion(created="1764000000")
    write_cassette(pytester.path / "cassettes/test_it/test_s.yaml", lax)
    pytester.makepyfile(
        test_it="def test_s(chat_completion):\n    assert chat_completion.created == 1764000000\n"
    )
    pytester.runpytest().assert_outcomes(passed=1)
    result = pytester.runpytest("--chatresp-strict")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "cassettes/test_it/test_s.yaml, interaction 0: created: expected an integer, "
            "got string '1764000000' (strict mode does not coerce)",
        ]
    )
    pytester.makeini("[pytest]\nchatresp_strict = true\n")
    pytester.runpytest().assert_outcomes(errors=1)


def test_strict_mode_rejects_unknown_fields_and_requires_nullable_keys(
    pytester: pytest.Pytester,
) -> None:
    body = completion(x_groq={"id": "req_1"})
    del body["choices"][0]["logprobs"]
    write_cassette(pytester.path / "cassettes/test_it/test_s.yaml", body)
    pytester.makepyfile(test_it="def test_s(chat_completion):\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)
    result = pytester.runpytest("--chatresp-strict")
    result.stdout.fnmatch_lines(
        [
            "cassettes/test_it/test_s.yaml, interaction 0: choices[0].logprobs: required field "
            "is missing (null is allowed, absent is not)",
            "cassettes/test_it/test_s.yaml, interaction 0: x_groq: unknown field *",
        ]
    )


def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchatresp_record_mode = sometimes\n")
    pytester.makepyfile(test_it="def test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: chatresp_record_mode = 'sometimes' is not valid; "
            "use one of: none, once, new_episodes, all."
        ]
    )


def test_help_and_markers(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*recorded chat completion responses (pytest-chatresp)*",
            "*--chatresp-cassette-dir=DIR*",
            "*--chatresp-record-mode=MODE*",
            "*--chatresp-strict*",
            "*--chatresp-collect-cassettes*",
            "*--chatresp-update-shapes*",
        ]
    )
    from pytest_chatresp.settings import SETTINGS

    for spec in SETTINGS:  # every setting has its option, and its ini key where it has one
        result.stdout.fnmatch_lines([f"*{spec.option}*"])
        if spec.ini:
            result.stdout.fnmatch_lines([f"*{spec.ini_key} (*"])
    for gone in ("chatresp_match_on", "chatresp_validate", "max-age-fail", "chatresp_check "):
        result.stdout.no_fnmatch_line(f"*{gone}*")
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.chat_cassette(path=None, *, record_mode=None, serializer=None, "
            "match_on=None, allow=None, skip_checks=None, expect_violations=False): *"
        ]
    )


def test_inert_for_tests_that_do_not_use_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("chatresp:*")
    assert not (pytester.path / "cassettes").exists()


def test_assertion_failure_message_in_a_user_test(pytester: pytest.Pytester) -> None:
    write_cassette(
        pytester.path / "cassettes/test_it/test_u.yaml",
        completion(usage={"prompt_tokens": 150, "completion_tokens": 90, "total_tokens": 240}),
    )
    pytester.makepyfile(
        test_it="""
        from pytest_chatresp import assert_usage

        def test_u(chat_completion):
            assert_usage(chat_completion, max_total_tokens=200)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *AssertionError: cassettes/test_it/test_u.yaml, interaction 0: usage.total_tokens: "
            "expected at most 200, found 240",
            "E *usage: prompt 150, completion 90, total 240",
        ]
    )
    result.stdout.no_fnmatch_line("*assertions.py*")


def test_error_responses_are_not_completions(pytester: pytest.Pytester) -> None:
    error = {"error": {"message": "Rate limit", "type": "requests", "param": None, "code": "429"}}
    write_cassette(pytester.path / "cassettes/test_it/test_e.yaml", error, status=429)
    pytester.makepyfile(
        test_it="""
        def test_e(chat_cassette, chat_completions):
            assert chat_completions == []
            (exchange,) = chat_cassette.exchanges
            assert exchange.error.status == 429
            assert exchange.error.message == "Rate limit"
            assert exchange.completion is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_cassette_parsed_once_per_session_and_again_when_changed(
    pytester: pytest.Pytester, counting_parses: list[str]
) -> None:
    parsed = counting_parses
    path = write_cassette(pytester.path / "cassettes/shared.yaml", completion(id="first"))
    pytester.makepyfile(
        test_it="""
        import pytest

        SEEN = []

        @pytest.mark.chat_cassette("shared.yaml")
        @pytest.mark.parametrize("n", range(3))
        def test_same(chat_completion, chat_completions, n):
            SEEN.append(chat_completion)
            assert chat_completions[0] is chat_completion  # the fixtures of a test share it
            assert chat_completion == SEEN[0]  # equal to the other tests' completions,
            assert len({id(c) for c in SEEN}) == len(SEEN)  # but each test's its own
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)
    assert parsed == ["shared.yaml"]
    write_cassette(path, completion(id="second"))
    pytester.makepyfile(
        test_again="""
        import pytest

        @pytest.mark.chat_cassette("shared.yaml")
        def test_changed(chat_completion):
            assert chat_completion.id == "second"
        """
    )
    pytester.runpytest("test_again.py").assert_outcomes(passed=1)


def test_parsed_cassettes_are_kept_in_the_cache_dir_by_content(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from pytest_chatresp.cassette import document, loader

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    path = write_cassette(pytester.path / "cassettes/test_it/test_c.yaml", completion(id="one"))
    pytester.makepyfile(
        test_it="def test_c(chat_completion):\n    print('SERVED', chat_completion.id)\n"
    )
    work: list[str] = []
    for reader, name in ((document, "read_document"), (loader, "cassette_from_document")):
        original = getattr(reader, name)

        def counting(
            *args: object, _name: str = name, _f: object = original, **kw: object
        ) -> object:
            work.append(_name)
            return _f(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(reader, name, counting)

    pytester.runpytest("-s").stdout.fnmatch_lines(["*SERVED one*"])
    assert work == ["read_document", "cassette_from_document"]
    store = pytester.path / ".pytest_cache/d/chatresp"
    kinds = sorted(p.name.split(".")[1] for p in store.iterdir())
    assert kinds == ["document", "verdict"]

    # A second session does not parse the unchanged file; it takes the verdict under the same
    # rules and builds only the completion the fixture reads, from the stored document.
    work.clear()
    pytester.runpytest("-s").stdout.fnmatch_lines(["*SERVED one*"])
    assert work == []

    # A changed file is never served stale: its bytes have another key.
    write_cassette(path, completion(id="two"))
    work.clear()
    pytester.runpytest("-s").stdout.fnmatch_lines(["*SERVED two*"])
    assert work == ["read_document", "cassette_from_document"]
    assert len(list(store.iterdir())) == 4

    # --cache-clear empties the store.
    work.clear()
    pytester.runpytest("-s", "--cache-clear").stdout.fnmatch_lines(["*SERVED two*"])
    assert work == ["read_document", "cassette_from_document"]
    assert len(list(store.iterdir())) == 2  # the file's document and verdict, rewritten


def test_no_cache_dir_without_the_cacheprovider(pytester: pytest.Pytester) -> None:
    write_cassette(pytester.path / "cassettes/test_it/test_c.yaml", completion())
    pytester.makepyfile(test_it="def test_c(chat_completion):\n    pass\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert not (pytester.path / ".pytest_cache").exists()


def test_a_test_that_replays_and_reads_parses_the_file_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_chatresp.cassette.document as reader

    write_cassette(pytester.path / "cassettes/test_it/test_both.yaml", completion(id="once"))
    calls: list[str] = []
    original = reader.read_document

    def counting(path: object, data: bytes | None = None) -> object:
        calls.append(str(path))
        return original(path, data)  # type: ignore[arg-type]

    monkeypatch.setattr(reader, "read_document", counting)
    pytester.makepyfile(
        test_it="""
        import httpx
        import pytest

        @pytest.mark.chat_cassette
        def test_both(chat_completion, chat_cassette):
            reply = httpx.post(
                "https://api.openai.com/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": []},
            )
            assert reply.json()["id"] == chat_completion.id == "once"
            assert chat_cassette.completions[0].id == "once"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    assert len(calls) == 1, calls


def test_reading_fixtures_in_a_test_that_records_say_what_to_use(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_it="""
        import pytest

        @pytest.mark.chat_cassette
        def test_new(chat_completion):
            pass
        """
    )
    result = pytester.runpytest("--chatresp-record-mode=once")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "No cassette for test_it.py::test_new: cassettes/test_it/test_new.yaml does not exist.",
            "The chat_completion and chat_completions fixtures read the recorded file, before the "
            "test runs, so they cannot see what it records now: use chat_cassette.completions in a "
            "test that records.",
        ]
    )
    assert not (pytester.path / "cassettes").exists()


def test_a_marker_naming_a_directory(pytester: pytest.Pytester) -> None:
    (pytester.path / "cassettes" / "shared").mkdir(parents=True)
    pytester.makepyfile(
        test_it="""
        import pytest

        @pytest.mark.chat_cassette("shared")
        def test_dir(chat_cassette):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_it.py::test_dir: @pytest.mark.chat_cassette('shared') names a directory, not a cassette file"
        ]
    )
