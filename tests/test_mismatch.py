"""The mismatch comparison, unit by unit: fields, distance, shortening and masking."""

from __future__ import annotations

from pytest_chatresp.recording import DEFAULT_MATCH_ON
from pytest_chatresp.recording.mismatch import (
    ABSENT,
    Difference,
    Parts,
    closest,
    differences,
    masked,
)
from pytest_chatresp.recording.mismatch import _side_by_side as side_by_side

URI = "http://127.0.0.1:8765/v1/chat/completions"


def parts(body: object, uri: str = URI, **headers: str) -> Parts:
    return Parts("POST", uri, headers, body)


def test_every_differing_field_is_a_path_into_the_request() -> None:
    recorded = parts({"model": "a", "messages": [{"role": "user", "content": "x"}], "n": 1})
    now = parts(
        {"model": "b", "messages": [{"role": "user", "content": "y"}, {"role": "user"}]},
        uri="https://localhost/v1/chat/completions?page=2",
    )
    assert differences(recorded, now, DEFAULT_MATCH_ON) == [
        Difference("scheme", "http", "https"),
        Difference("host", "127.0.0.1", "localhost"),
        Difference("port", 8765, 443),
        Difference("query page", ABSENT, "2"),
        Difference("model", "a", "b"),
        Difference("messages[0].content", "x", "y"),
        Difference("messages[1]", ABSENT, {"role": "user"}),
        Difference("n", 1, ABSENT),
    ]


def test_headers_are_compared_only_when_matched_on() -> None:
    recorded, now = parts({}, **{"X-Trace": "1"}), parts({}, **{"x-trace": "2"})
    assert differences(recorded, now, DEFAULT_MATCH_ON) == []
    assert differences(recorded, now, ("headers",)) == [Difference("header x-trace", "1", "2")]


def test_the_closest_is_the_one_with_fewest_differences() -> None:
    now = parts({"model": "a", "messages": ["two"]})
    candidates = [
        (0, parts({"model": "b", "messages": ["one"]}), False),
        (1, parts({"model": "a", "messages": ["one"]}), False),
        (2, parts({"model": "b", "messages": ["two"]}), False),
    ]
    index, found, played = closest(now, candidates, DEFAULT_MATCH_ON)
    assert (index, played) == (1, False)
    assert found == [Difference("messages[0]", "one", "two")]


def test_long_values_are_cut_alike_around_the_first_difference() -> None:
    start = "You are a helpful assistant. " * 5
    recorded, now = side_by_side(
        repr(start + "Answer in English."), repr(start + "Answer in French.")
    )
    assert recorded.startswith("…")
    assert now.startswith("…")
    assert recorded.index("English") == now.index("French")
    assert len(recorded) <= 62
    assert len(now) <= 62
    assert side_by_side("'short'", "'other'") == ("'short'", "'other'")


def test_masked_hides_userinfo_and_secret_query_values() -> None:
    text = "http://me:FAKEpass@host/v1?Access_Token=FAKE1&keep=1&sig=FAKE2&apikey=FAKE3"
    assert masked(text) == (
        "http://REDACTED@host/v1?Access_Token=REDACTED&keep=1&sig=REDACTED&apikey=REDACTED"
    )
    assert masked("key sk-FAKE", lambda t: t.replace("sk-FAKE", "REDACTED")) == "key REDACTED"
