"""Real cassettes recorded by public projects: every file loads, and our verdicts agree with the
``openai`` SDK's own validation.

The corpus is a copy in ``tests/data/corpus`` of real cassettes, byte for byte: its README.md
describes it, MANIFEST.tsv names each file's repository, path, commit and licence, and NOTICE.md
the licences. The tests only read it; a missing or partial copy fails ``test_corpus_is_there``
and the manifest test instead of skipping.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
from typing import Any

import openai.types.chat as sdk
import pytest
from conftest import CORPUS
from pydantic import ValidationError

from pytest_chatresp import Cassette, CassetteError
from pytest_chatresp.cassette import Exchange, load_cassette

MANIFEST = CORPUS / "MANIFEST.tsv"
FILES: list[str] = sorted(
    p.relative_to(CORPUS).as_posix()
    for p in CORPUS.rglob("*")
    if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
)

#: Exchanges where our verdict and the SDK's differ on purpose: (relative path, index) -> reason.
#: None so far: every disagreement found was a bug in the reader and has been fixed.
DELIBERATE: dict[tuple[str, int], str] = {}


@functools.cache
def load(relative: str) -> Cassette:
    return load_cassette(CORPUS / relative)


def manifest() -> list[dict[str, str]]:
    with MANIFEST.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


# --- the SDK's verdict ------------------------------------------------------------------------


def _sdk_accepts(model: Any, document: Any) -> bool:
    try:
        model.model_validate(document)
    except ValidationError:
        return False
    return True


def sdk_verdict(exchange: Exchange) -> bool:
    """Whether the openai SDK (its pydantic models, validating) accepts the response.

    A JSON body must validate as ``ChatCompletion``. For a stream, every event whose ``object``
    is ``chat.completion.chunk`` must validate as ``ChatCompletionChunk`` (events that are not
    JSON make the SDK raise) and the merged document must validate as ``ChatCompletion``. A body
    that is no JSON at all, or empty, the SDK cannot parse either.
    """
    if not exchange.streamed:
        if exchange.json is None:
            return False
        return _sdk_accepts(sdk.ChatCompletion, exchange.json)
    for event in exchange.events:
        try:
            document = json.loads(event.data)
        except ValueError:
            return False
        is_chunk = isinstance(document, dict) and document.get("object") == "chat.completion.chunk"
        if is_chunk and not _sdk_accepts(sdk.ChatCompletionChunk, document):
            return False
    return _sdk_accepts(sdk.ChatCompletion, exchange.merged)


@functools.cache
def disagreements() -> dict[tuple[str, int], str]:
    """Every chat completion exchange of the corpus whose verdict differs from the SDK's."""
    found: dict[tuple[str, int], str] = {}
    for relative in FILES:
        for exchange in load(relative):
            if not exchange.is_chat or exchange.error is not None:
                continue
            ours, theirs = not exchange.type_violations, sdk_verdict(exchange)
            if ours != theirs:
                why = "; ".join(f"{v.field}: {v.message}" for v in exchange.type_violations[:3])
                found[(relative, exchange.index)] = (
                    f"ours={'valid' if ours else 'invalid'} sdk={'valid' if theirs else 'invalid'}"
                    f"{' (' + why + ')' if why else ''}"
                )
    return found


# --- tests --------------------------------------------------------------------------------------


def test_corpus_is_there() -> None:
    assert len(FILES) >= 100, f"expected the corpus's cassettes under {CORPUS}"
    for name in (
        "MANIFEST.tsv",
        "README.md",
        "NOTICE.md",
        "LICENSES/Apache-2.0.txt",
        "LICENSES/MIT.txt",
    ):
        assert (CORPUS / name).is_file(), f"{CORPUS / name} is missing"


def test_every_source_is_named_with_its_licence() -> None:
    notice = (CORPUS / "NOTICE.md").read_text(encoding="utf-8")
    for row in manifest():
        assert row["license"] in ("MIT", "Apache-2.0", "Apache-2.0 OR BSD-3-Clause"), row
        assert (
            f"| [{row['repo']}](https://github.com/{row['repo']}/tree/{row['commit']}) | `{row['commit']}` | {row['license']} |"
            in notice
        ), row["repo"]


@pytest.mark.parametrize("relative", FILES, ids=FILES)
def test_file_loads(relative: str) -> None:
    path = CORPUS / relative
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        cassette = load(relative)
    except CassetteError as exc:  # pragma: no cover - shown as the failure
        pytest.fail(f"{relative} does not load: {exc}")
    assert len(cassette) >= 1
    for exchange in cassette:
        assert exchange.source is not None
        assert exchange.source.index == exchange.index
        if exchange.is_chat and exchange.error is None:
            # Every chat exchange is either an API error or a completion with a verdict.
            assert exchange.is_completion
            if not exchange.violations:
                completion = exchange.completion
                assert completion is not None
                assert completion.source == exchange.source
            else:
                with pytest.raises(CassetteError, match=r", interaction \d+"):
                    _ = exchange.completion
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_verdicts_agree_with_the_sdk() -> None:
    found = disagreements()
    unexplained = {key: why for key, why in found.items() if key not in DELIBERATE}
    assert not unexplained, "our verdict differs from the openai SDK's:\n" + "\n".join(
        f"  {path}, interaction {index}: {why}"
        for (path, index), why in sorted(unexplained.items())
    )


def test_deliberate_disagreements_are_still_real() -> None:
    found = disagreements()
    stale = sorted(key for key in DELIBERATE if key not in found)
    assert not stale, f"DELIBERATE lists exchanges that now agree with the SDK: {stale}"
    unexplained = sorted(key for key, why in DELIBERATE.items() if not why.strip())
    assert not unexplained, f"DELIBERATE lists exchanges without a reason: {unexplained}"


def test_counts_are_in_line_with_the_manifest() -> None:
    rows = manifest()
    assert sorted(row["local_path"] for row in rows) == FILES
    per_file = {row["local_path"]: row for row in rows}
    files = exchanges = chat = completions = streamed = errors = invalid = 0
    streamed_files = 0
    for relative in FILES:
        cassette = load(relative)
        files += 1
        exchanges += len(cassette)
        # The scanner counted interactions per file; that count is not a judgement call.
        assert len(cassette) == int(per_file[relative]["n_interactions"]), relative
        chat += len(cassette.chat_exchanges)
        errors += len(cassette.errors)
        file_streamed = False
        for exchange in cassette:
            if exchange.is_completion:
                completions += 1
                invalid += bool(exchange.type_violations)
                streamed += exchange.streamed
                file_streamed = file_streamed or exchange.streamed
        streamed_files += file_streamed

    expected_chat = sum(int(row["n_chat_completion"]) for row in rows)
    expected_streamed_files = sum(row["streaming"] == "y" for row in rows)
    assert files == len(rows) == 146
    assert exchanges == sum(int(row["n_interactions"]) for row in rows) == 444
    assert abs(chat - expected_chat) <= expected_chat * 0.02, (chat, expected_chat)
    assert abs(streamed_files - expected_streamed_files) <= 2, (
        streamed_files,
        expected_streamed_files,
    )
    # Every chat exchange is a completion or an error; each kind is well represented.
    assert completions + sum(e.is_chat for r in FILES for e in load(r).errors) == chat
    assert completions > 250
    assert streamed > 50
    assert 30 <= errors <= 50
    assert 0 < invalid < completions // 5
