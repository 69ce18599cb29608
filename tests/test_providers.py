"""OpenAI-compatible providers: recognising them, judging their responses as the ``openai`` SDK
does, and the ``chatresp_allow`` lines that accept their documented deviations.

The cassettes in ``tests/data/providers/`` follow each provider's public documentation and real
recordings of the corpus; ``tests/data/providers/README.md`` names the source of each.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from pathlib import Path
from typing import Any

import openai.types.chat as sdk
import pytest
import yaml
from conftest import DATA
from helpers import completion, glob, write_cassette
from pydantic import BaseModel, ValidationError

from pytest_chatresp import Cassette, CassetteError
from pytest_chatresp.cassette import Exchange, load_cassette
from pytest_chatresp.checks import Rules
from pytest_chatresp.errors import display_path
from pytest_chatresp.providers import parse_allowances, provider_of

PROVIDERS = DATA / "providers"

#: Every fixture and the provider that answered it.
FIXTURES: dict[str, str] = {
    "azure_openai.yaml": "Azure OpenAI",
    "groq.yaml": "Groq",
    "groq_stream.yaml": "Groq",
    "together.yaml": "Together",
    "openrouter.yaml": "OpenRouter",
    "openrouter_stream.yaml": "OpenRouter",
    "mistral.yaml": "Mistral",
    "deepseek.yaml": "DeepSeek",
    "vllm.yaml": "vLLM",
    "ollama.yaml": "Ollama",
}

#: The ``chatresp_allow`` lines each provider's fixtures need: with them every exchange is valid
#: (except the ones in UNALLOWABLE), without any one of them some exchange is not.
ALLOWANCES: dict[str, list[str]] = {
    # prompt_filter_results and content_filter_results are extra fields, kept as sent. The
    # content-filtered choice (azure_openai.yaml, interaction 1) has no `message` at all: a
    # required field that is missing cannot be allowed, see UNALLOWABLE.
    "Azure OpenAI": [],
    # Groq's default tier; a stream also sends it, in the usage chunk (stream_options).
    "Groq": ["service_tier=on_demand"],
    # The legacy response shape: `eos` instead of `stop` (and `prompt: []`, an extra field).
    "Together": ["choices[].finish_reason=eos"],
    # A tier passed through from the upstream provider (Google); `provider`, `usage.cost`,
    # `native_finish_reason` are extra fields.
    "OpenRouter": ["service_tier=provisioned"],
    # Magistral's content as a list of parts (thinking, then text). The tool call without `type`
    # (mistral.yaml, interaction 1) cannot be allowed: a required field is missing.
    "Mistral": ["choices[].message.content=*"],
    # A documented finish reason outside OpenAI's set; reasoning_content and
    # usage.prompt_cache_hit_tokens are extra fields.
    "DeepSeek": ["choices[].finish_reason=insufficient_system_resource"],
    # Nothing outside the contract: prompt_token_ids, stop_reason, kv_transfer_params are extras.
    "vLLM": [],
    # Nothing outside the contract (system_fingerprint "fp_ollama" is an ordinary string).
    "Ollama": [],
}

#: Deviations no allowance accepts, (fixture, interaction) -> the failure, with allowances or not.
UNALLOWABLE: dict[tuple[str, int], str] = {
    ("azure_openai.yaml", 1): "choices[0].message: required field is missing",
    ("mistral.yaml", 1): "choices[0].message.tool_calls[0]: required field 'type' is missing",
}

_TIERS = "'auto', 'default', 'flex', 'scale', 'priority' or 'fast'"
_FINISH_REASONS = "'stop', 'length', 'tool_calls', 'content_filter' or 'function_call'"

#: Every exchange that fails in the default mode, and the exact failure. Every other is valid.
DEVIATIONS: dict[tuple[str, int], str] = {
    **UNALLOWABLE,
    ("groq.yaml", 0): (
        f"service_tier: expected {_TIERS}, got 'on_demand' "
        "(Groq; to accept it: chatresp_allow = service_tier=on_demand, or per test "
        '@pytest.mark.chat_cassette(allow=["service_tier=on_demand"]))'
    ),
    ("groq_stream.yaml", 0): (
        f"chunk[5].service_tier: expected {_TIERS}, got 'on_demand' "
        "(Groq; to accept it: chatresp_allow = service_tier=on_demand, or per test "
        '@pytest.mark.chat_cassette(allow=["service_tier=on_demand"]))'
    ),
    ("together.yaml", 0): (
        f"choices[0].finish_reason: expected {_FINISH_REASONS}, got 'eos' "
        "(Together; to accept it: chatresp_allow = choices[].finish_reason=eos, or per test "
        '@pytest.mark.chat_cassette(allow=["choices[].finish_reason=eos"]))'
    ),
    ("openrouter.yaml", 0): (
        f"service_tier: expected {_TIERS}, got 'provisioned' "
        "(OpenRouter; to accept it: chatresp_allow = service_tier=provisioned, or per test "
        '@pytest.mark.chat_cassette(allow=["service_tier=provisioned"]))'
    ),
    ("mistral.yaml", 0): (
        "choices[0].message.content: expected a string, got array "
        "[{'type': 'thinking', 'thinking': [{'type': 'text', 'text':… "
        "(Mistral; to accept it: chatresp_allow = choices[].message.content=*, or per test "
        '@pytest.mark.chat_cassette(allow=["choices[].message.content=*"]))'
    ),
    ("deepseek.yaml", 1): (
        f"choices[0].finish_reason: expected {_FINISH_REASONS}, got 'insufficient_system_resource' "
        "(DeepSeek; to accept it: chatresp_allow = "
        "choices[].finish_reason=insufficient_system_resource, or per test "
        '@pytest.mark.chat_cassette(allow=["choices[].finish_reason=insufficient_system_resource"]))'
    ),
}


def _fixture_params() -> list[Any]:
    return [pytest.param(name, id=name) for name in FIXTURES]


@functools.cache
def load(name: str, allow: tuple[str, ...] = (), strict: bool = False) -> Cassette:
    return load_cassette(
        PROVIDERS / name, rules=Rules(strict=strict, allow=parse_allowances(allow))
    )


def exchanges() -> list[tuple[str, int]]:
    return [(name, exchange.index) for name in FIXTURES for exchange in load(name)]


def document(exchange: Exchange) -> Any:
    """The completion document: the JSON body, or the merged stream."""
    return exchange.merged if exchange.streamed else exchange.json


def failures(exchange: Exchange) -> list[str]:
    return [f"{v.field}: {v.message}" if v.field else v.message for v in exchange.violations]


def _sdk_accepts(model: type[BaseModel], data: Any) -> bool:
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


def sdk_verdict(exchange: Exchange) -> bool:
    """The openai SDK's verdict: the body as ``ChatCompletion``; for a stream every chunk as
    ``ChatCompletionChunk`` and the merged document as ``ChatCompletion``."""
    if not exchange.streamed:
        return _sdk_accepts(sdk.ChatCompletion, exchange.json)
    chunks = [json.loads(event.data) for event in exchange.events]
    return all(_sdk_accepts(sdk.ChatCompletionChunk, c) for c in chunks) and _sdk_accepts(
        sdk.ChatCompletion, exchange.merged
    )


_SUGGESTION = re.compile(r"\(([^;()]+); to accept it: chatresp_allow = (.+?), or per test @")


def suggestions(cassette: Cassette) -> list[str]:
    """The allowance lines the failure messages suggest, in order, once each."""
    found: list[str] = []
    for violation in cassette.violations:
        match = _SUGGESTION.search(violation.message)
        if match and match.group(2) not in found:
            found.append(match.group(2))
    return found


# --- the fixtures themselves ------------------------------------------------------------------


def test_every_fixture_is_listed_and_documented() -> None:
    on_disk = sorted(p.name for p in PROVIDERS.glob("*.yaml"))
    assert on_disk == sorted(FIXTURES)
    assert set(ALLOWANCES) == set(FIXTURES.values())
    readme = (PROVIDERS / "README.md").read_text(encoding="utf-8")
    for name in FIXTURES:
        assert f"`{name}`" in readme, f"{name} has no source in tests/data/providers/README.md"


@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_hold_no_secrets(name: str) -> None:
    text = (PROVIDERS / name).read_text(encoding="utf-8")
    assert not re.search(r"sk-[A-Za-z0-9_-]{20,}", text)
    for exchange in load(name):
        for header in ("authorization", "api-key", "x-api-key", "cookie"):
            assert exchange.request.headers.get(header, ["REDACTED"]) == ["REDACTED"]


# --- recognising the provider -----------------------------------------------------------------


@pytest.mark.parametrize("key", exchanges(), ids=lambda key: f"{key[0]}#{key[1]}")
def test_provider_of_recognises_the_fixture(key: tuple[str, int]) -> None:
    name, index = key
    exchange = load(name).exchanges[index]
    assert provider_of(exchange.request.uri, document(exchange)) == FIXTURES[name]


def test_vllm_is_recognised_by_its_fields_alone() -> None:
    exchange = load("vllm.yaml").exchanges[0]
    assert exchange.request.uri == "http://localhost:8000/v1/chat/completions"
    assert provider_of(exchange.request.uri) is None  # localhost:8000 says nothing
    assert provider_of(exchange.request.uri, exchange.json) == "vLLM"
    assert provider_of(None, {"kv_transfer_params": None}) == "vLLM"


def test_ollama_is_recognised_by_its_port() -> None:
    assert provider_of("http://localhost:11434/v1/chat/completions") == "Ollama"
    assert provider_of("http://127.0.0.1:11434/v1/chat/completions") == "Ollama"


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("azure_openai.yaml", "Azure OpenAI"),  # prompt_filter_results
        ("groq.yaml", "Groq"),  # x_groq
        ("openrouter.yaml", "OpenRouter"),  # id gen-…
        ("openrouter_stream.yaml", "OpenRouter"),
        ("vllm.yaml", "vLLM"),  # prompt_token_ids
    ],
)
def test_provider_of_recognises_some_bodies_without_the_url(name: str, provider: str) -> None:
    assert provider_of(None, document(load(name).exchanges[0])) == provider


# --- default mode: the SDK's verdict ----------------------------------------------------------


@pytest.mark.parametrize("key", exchanges(), ids=lambda key: f"{key[0]}#{key[1]}")
def test_default_verdict_is_the_sdks(key: tuple[str, int]) -> None:
    name, index = key
    exchange = load(name).exchanges[index]
    assert exchange.is_completion
    expected = key not in DEVIATIONS
    assert sdk_verdict(exchange) is expected, "the SDK's verdict"
    assert (not exchange.violations) is expected, failures(exchange)
    assert not [v for v in exchange.violations if v.check], "contract checks pass"


@pytest.mark.parametrize(
    "key",
    [pytest.param(key, id=f"{key[0]}#{key[1]}") for key in DEVIATIONS],
)
def test_deviation_message_names_field_value_and_provider(key: tuple[str, int]) -> None:
    name, index = key
    cassette = load(name)
    exchange = cassette.exchanges[index]
    assert exchange.violations
    path = exchange.violations[0].path
    assert path == display_path(PROVIDERS / name) or path.endswith(f"providers/{name}")
    expected = f"{path}, interaction {index}: {DEVIATIONS[key]}"
    assert [str(v) for v in exchange.violations] == [expected]
    with pytest.raises(CassetteError) as raised:
        _ = cassette.completions
    assert expected in str(raised.value).splitlines()


#: Provider fields the SDK does not know, kept as sent: (fixture, interaction, path, value).
#: Paths are dotted, list positions as numbers; one step of each is read from ``model_extra``.
EXTRAS: list[tuple[str, int, str, Any]] = [
    (
        "azure_openai.yaml",
        0,
        "prompt_filter_results.0.content_filter_results.jailbreak",
        {"detected": False, "filtered": False},
    ),
    (
        "azure_openai.yaml",
        0,
        "choices.0.content_filter_results.protected_material_text",
        {"detected": False, "filtered": False},
    ),
    ("groq.yaml", 0, "x_groq", {"id": "req_01k0e7s3fmf2s9w6q4y8n1b5tv", "seed": 1846969516}),
    ("groq.yaml", 0, "usage.queue_time", 0.052068693),
    ("groq.yaml", 0, "usage.total_time", 0.050494588),
    ("groq.yaml", 0, "usage_breakdown", None),
    ("groq_stream.yaml", 0, "x_groq.id", "req_01k0e7t0c2e8vq3m5d7h9j1k4r"),
    ("groq_stream.yaml", 0, "usage.queue_time", 0.017442521),
    ("together.yaml", 0, "prompt", []),
    ("openrouter.yaml", 0, "provider", "Google"),
    ("openrouter.yaml", 0, "usage.cost", 4.01e-05),
    ("openrouter.yaml", 0, "usage.is_byok", False),
    ("openrouter.yaml", 0, "choices.0.native_finish_reason", "STOP"),
    ("openrouter_stream.yaml", 0, "provider", "OpenAI"),
    ("openrouter_stream.yaml", 0, "usage.cost", 1.12e-05),
    ("openrouter_stream.yaml", 0, "choices.0.native_finish_reason", "completed"),
    (
        "deepseek.yaml",
        0,
        "choices.0.message.reasoning_content",
        "Compare the tenths: 9.8 has 8 tenths, 9.11 has 1 tenth. So 9.8 is larger.",
    ),
    ("deepseek.yaml", 0, "usage.prompt_cache_hit_tokens", 0),
    ("deepseek.yaml", 0, "usage.prompt_cache_miss_tokens", 18),
    ("vllm.yaml", 0, "prompt_token_ids", None),
    ("vllm.yaml", 0, "kv_transfer_params", None),
    ("vllm.yaml", 0, "choices.0.stop_reason", None),
    ("ollama.yaml", 1, "choices.0.message.tool_calls.0.index", 0),
]


def reach_extra(model: BaseModel, path: str) -> Any:
    """Walk ``path`` (dotted, list positions as numbers); some step must be an extra field."""
    current: Any = model
    extra = False
    for step in path.split("."):
        if isinstance(current, list):
            current = current[int(step)]
        elif isinstance(current, BaseModel) and step in type(current).model_fields:
            current = getattr(current, step)
        elif isinstance(current, BaseModel):
            assert current.model_extra is not None, path
            assert step in current.model_extra, path
            current, extra = current.model_extra[step], True
        else:
            current = current[step]
    assert extra, f"{path} is a field of the contract, not an extra"
    return current


@pytest.mark.parametrize(
    ("name", "index", "path", "value"),
    [
        pytest.param(
            *extra,
            id=f"{extra[0]}#{extra[1]}:{extra[2]}",
        )
        for extra in EXTRAS
    ],
)
def test_extra_provider_fields_are_kept(name: str, index: int, path: str, value: Any) -> None:
    exchange = load(name, tuple(ALLOWANCES[FIXTURES[name]])).exchanges[index]
    model = exchange.completion
    assert model is not None
    assert reach_extra(model, path) == value
    if sdk_verdict(exchange):
        assert reach_extra(sdk.ChatCompletion.model_validate(document(exchange)), path) == value


def test_extras_of_an_invalid_exchange_are_kept_in_the_document() -> None:
    # The tool call without `type` fails, and no allowance accepts it; its fields are intact.
    exchange = load("mistral.yaml").exchanges[1]
    assert exchange.json["choices"][0]["message"]["tool_calls"][0] == {
        "id": "ob2P8VRFH",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        "index": 0,
    }


# --- allowances -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _fixture_params())
def test_suggested_allowances_load_the_fixture(name: str) -> None:
    suggested = suggestions(load(name))
    assert set(suggested) <= set(ALLOWANCES[FIXTURES[name]])
    cassette = load(name, tuple(suggested))
    for exchange in cassette:
        if (name, exchange.index) in UNALLOWABLE:
            assert failures(exchange) == [UNALLOWABLE[(name, exchange.index)]]
        else:
            assert failures(exchange) == []


@pytest.mark.parametrize("name", _fixture_params())
def test_allowances_are_sufficient(name: str) -> None:
    cassette = load(name, tuple(ALLOWANCES[FIXTURES[name]]))
    for exchange in cassette:
        expected = UNALLOWABLE.get((name, exchange.index))
        assert failures(exchange) == ([expected] if expected else [])
    if not any(key[0] == name for key in UNALLOWABLE):
        assert len(cassette.completions) == len(cassette.exchanges)


@pytest.mark.parametrize("provider", [p for p, lines in ALLOWANCES.items() if lines])
def test_allowances_are_minimal(provider: str) -> None:
    lines = ALLOWANCES[provider]
    names = [name for name, owner in FIXTURES.items() if owner == provider]
    for dropped in lines:
        kept = tuple(line for line in lines if line != dropped)
        found = [
            message
            for name in names
            for exchange in load(name, kept)
            if (name, exchange.index) not in UNALLOWABLE
            for message in failures(exchange)
        ]
        assert found, f"{provider} still loads without {dropped!r}"
        hint = f'chatresp_allow = {dropped}, or per test @pytest.mark.chat_cassette(allow=["{dropped}"]))'
        assert any(message.endswith(hint) for message in found)


def test_allowances_accept_only_their_value() -> None:
    # Each provider's lines accept none of the other providers' deviations.
    for name, provider in FIXTURES.items():
        others = tuple(
            line for owner, lines in ALLOWANCES.items() if owner != provider for line in lines
        )
        before = [failures(e) for e in load(name)]
        assert [failures(e) for e in load(name, others)] == before, name


@pytest.mark.parametrize(
    ("name", "index", "attribute", "original"),
    [
        ("groq.yaml", 0, "service_tier", "on_demand"),
        ("openrouter.yaml", 0, "service_tier", "provisioned"),
        ("together.yaml", 0, "choices.0.finish_reason", "eos"),
        ("deepseek.yaml", 1, "choices.0.finish_reason", "insufficient_system_resource"),
        (
            "mistral.yaml",
            0,
            "choices.0.message.content",
            [
                {
                    "type": "thinking",
                    "thinking": [
                        {
                            "type": "text",
                            "text": "Spell it out: s-t-r-a-w-b-e-r-r-y. The r's are at positions "
                            "3, 8 and 9, so there are three.",
                        }
                    ],
                },
                {"type": "text", "text": 'There are **3** r\'s in "strawberry".'},
            ],
        ),
    ],
)
def test_allowed_values_are_kept_as_sent(
    name: str, index: int, attribute: str, original: Any
) -> None:
    allow = tuple(suggestions(load(name)))
    completion_ = load(name, allow).exchanges[index].completion
    value: Any = completion_
    for step in attribute.split("."):
        value = value[int(step)] if isinstance(value, list) else getattr(value, step)
    assert value == original


def test_groq_completion_keeps_on_demand() -> None:
    cassette = load("groq.yaml", ("service_tier=on_demand",))
    (groq,) = cassette.completions
    assert groq.service_tier == "on_demand"
    assert groq.model_extra["x_groq"]["id"] == "req_01k0e7s3fmf2s9w6q4y8n1b5tv"
    assert groq.usage is not None
    assert groq.usage.total_tokens == 67


def test_groq_stream_loads_with_the_same_allowance() -> None:
    cassette = load("groq_stream.yaml", ("service_tier=on_demand",))
    (groq,) = cassette.completions
    assert groq.service_tier == "on_demand"
    assert groq.choices[0].message.content == "Hello! How can I help?"


def test_openrouter_stream_with_processing_comments_is_merged() -> None:
    exchange = load("openrouter_stream.yaml").exchanges[0]
    assert exchange.streamed
    assert exchange.stream_done
    assert len(exchange.chunks) == 5  # the ": OPENROUTER PROCESSING" lines are comments
    openrouter = exchange.completion
    assert openrouter is not None
    assert openrouter.id.startswith("gen-")
    assert openrouter.choices[0].message.content == "Paris."
    assert openrouter.choices[0].finish_reason == "stop"
    assert openrouter.usage is not None
    assert openrouter.usage.total_tokens == 19


# --- strict mode ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "failure"),
    [
        pytest.param(
            completion(created="1715361795"),
            "created: expected an integer, got string '1715361795' (strict mode does not coerce)",
            id="created-as-string",
        ),
        pytest.param(
            completion(usage={"prompt_tokens": 12.0, "completion_tokens": 5, "total_tokens": 17}),
            "usage.prompt_tokens: expected an integer, got number 12.0 "
            "(strict mode does not coerce)",
            id="float-token-count",
        ),
    ],
)
def test_strict_mode_rejects_what_lax_parsing_coerces(
    tmp_path: Path, body: dict[str, Any], failure: str
) -> None:
    path = write_cassette(tmp_path / "coerced.yaml", body)
    theirs = sdk.ChatCompletion.model_validate(body)  # the SDK coerces, and so do we by default
    (ours,) = load_cassette(path).completions
    assert ours.created == theirs.created
    assert ours.usage is not None
    assert theirs.usage is not None
    assert ours.usage.prompt_tokens == theirs.usage.prompt_tokens
    assert type(ours.created) is type(ours.usage.prompt_tokens) is int
    assert failures(load_cassette(path, strict=True).exchanges[0]) == [failure]


def _writer_cassette(tmp_path: Path) -> Path:
    body = completion(
        id="57e4f58f-f7b1-41d8-be17-a6279c073aad",
        model="palmyra-x4",
        created="1715361795",
        service_tier=None,
        system_fingerprint="v1",
    )
    path = write_cassette(tmp_path / "writer.yaml", body)
    document_ = json.loads(path.read_text())
    document_["interactions"][0]["request"]["uri"] = "https://api.writer.com/v1/chat"
    path.write_text(json.dumps(document_))
    return path


def test_writer_created_as_string_loads_by_default_but_not_strictly(tmp_path: Path) -> None:
    path = _writer_cassette(tmp_path)
    (writer,) = load_cassette(path).completions
    assert writer.created == 1715361795
    failure = failures(load_cassette(path, strict=True).exchanges[0])
    assert failure[0].startswith(
        "created: expected an integer, got string '1715361795' (strict mode does not coerce)"
    )


def test_suggested_allowances_work_in_strict_mode(tmp_path: Path) -> None:
    # Every "to accept it" a strict failure suggests must accept the value when added.
    path = _writer_cassette(tmp_path)
    for violation in load_cassette(path, strict=True).violations:
        match = _SUGGESTION.search(violation.message)
        if match is None:
            continue
        rules = Rules(strict=True, allow=parse_allowances([match.group(2)]))
        left = [v.field for v in load_cassette(path, rules=rules).violations]
        assert violation.field not in left, f"{match.group(2)} does not accept {violation}"


def test_allowed_content_parts_with_json_mode_do_not_crash(tmp_path: Path) -> None:
    document_ = yaml.safe_load((PROVIDERS / "mistral.yaml").read_text(encoding="utf-8"))
    interaction = document_["interactions"][0]
    request = json.loads(interaction["request"]["body"])
    request["response_format"] = {"type": "json_object"}
    interaction["request"]["body"] = json.dumps(request)
    document_["interactions"] = [interaction]
    path = tmp_path / "mistral_json.yaml"
    path.write_text(json.dumps(document_))
    cassette = load_cassette(path, rules=Rules(allow=parse_allowances(ALLOWANCES["Mistral"])))
    assert isinstance(cassette.violations, list)


# --- through pytest -----------------------------------------------------------------------------

USER_TEST = """
def test_answer(chat_completion):
    assert chat_completion.{attribute} == {original!r}
"""


@pytest.mark.parametrize(
    ("name", "line", "attribute", "original", "failure"),
    [
        pytest.param(
            "groq.yaml",
            "service_tier=on_demand",
            "service_tier",
            "on_demand",
            "cassettes/test_provider/test_answer.yaml, interaction 0: "
            + DEVIATIONS[("groq.yaml", 0)],
            id="groq",
        ),
        pytest.param(
            "together.yaml",
            "choices[].finish_reason=eos",
            "choices[0].finish_reason",
            "eos",
            glob(
                "*interaction 0: choices[0].finish_reason: expected * got 'eos' "
                "(Together; to accept it: chatresp_allow = choices[].finish_reason=eos, or per test "
                '@pytest.mark.chat_cassette(allow=["choices[].finish_reason=eos"]))'
            ),
            id="together",
        ),
    ],
)
def test_ini_allowance_through_pytest(
    pytester: pytest.Pytester, name: str, line: str, attribute: str, original: str, failure: str
) -> None:
    target = pytester.mkdir("cassettes") / "test_provider"
    target.mkdir()
    shutil.copy(PROVIDERS / name, target / "test_answer.yaml")
    pytester.makepyfile(test_provider=USER_TEST.format(attribute=attribute, original=original))

    without = pytester.runpytest()
    without.assert_outcomes(errors=1)
    without.stdout.fnmatch_lines([failure])

    pytester.makeini(f"[pytest]\nchatresp_allow =\n    {line}\n")
    allowed = pytester.runpytest()
    allowed.assert_outcomes(passed=1)
    allowed.stdout.fnmatch_lines([f"chatresp: allowed: {glob(line)}"])


def test_malformed_allowance_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nchatresp_allow =\n    choices[].finish_reason=eos\n    service_tier\n"
    )
    pytester.makepyfile(test_it="def test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*chatresp_allow: 'service_tier' is not FIELD=VALUE (e.g. service_tier=on_demand)*"]
    )
