"""pytest-chatresp performance benchmarks: ``python benchmarks/run.py [--quick] [--only P1,P3]``.

``--write-readme`` writes the final table into the README's performance section, between its
``benchmark-table`` markers: the README's figures are the last run's, never typed by hand.

Every number is measured in this run, against a baseline measured in the same run, on
synthetic cassettes written to a temporary directory with vcrpy's own YAML serializer. Times
are medians of several repetitions (``time.perf_counter``); baseline and subject alternate
within each repetition so that drift in the machine's speed hits both. See
``benchmarks/README.md`` for what each number means. Nothing here asserts a timing: targets
are reported as met or not.

Sections (``--only`` takes their names, comma-separated):

- ``P1`` cold load: ``load_cassette`` vs vcrpy's ``deserialize`` of the same file.
- ``P2`` warm load: a fresh ``CassetteCache(store=...)`` whose store already holds the file.
- ``P2u`` the warm load as a user meets it: a second pytest session's fixture set-up of 5
  tests taking ``chat_completions``, from ``--durations``, vs vcrpy's deserialize of the files.
- ``P3`` validation per response: ``validate_completion(json.loads(body))`` vs pydantic
  ``model_validate_json(body)``, and vs the ``openai`` SDK's model on the same ``json.loads``.
- ``P4`` a 500-test replay suite under our plugin vs under pytest-recording alone.
- ``P5`` start-up: import time and ``pytest --co`` on an empty directory, with and without us.
- ``S`` streaming: ``parse_sse`` + ``merge_chunks`` of a 500-chunk stream vs ``json.loads``.
- ``M`` CI shards: merging the 8 shard reports of a 5,000-test suite, in-process and as
  ``chatresp report``, vs ``json.load`` of the 8 files.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import synth  # noqa: E402  (benchmarks/ is not a package)

SECTIONS = ("P1", "P2", "P2U", "P3", "P4", "P5", "S", "M")
PYTHON = sys.executable
TIMES = "\u00d7"
DASH = "\u2013"


# --- timing -------------------------------------------------------------------------------------


@dataclass
class Settings:
    quick: bool
    #: Repetitions for in-process timings, by the size of the work.
    reps_large: int
    reps_small: int
    suite_tests: int
    suite_reps: int
    startup_reps: int
    #: Count the instructions of P4's suites under valgrind too (deterministic, slow).
    instructions: bool = False


def settings(quick: bool) -> Settings:
    if quick:
        return Settings(True, 3, 7, 100, 3, 7)
    return Settings(False, 7, 25, 500, 3, 9)


def _once(fn: Callable[[], object], inner: int = 1) -> float:
    """Seconds per call of ``fn``, called ``inner`` times after a collection."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def compare(
    subject: Callable[[], object],
    baseline: Callable[[], object],
    reps: int,
    *,
    warmup: int = 1,
    inner: int = 1,
) -> tuple[list[float], list[float]]:
    """Alternating repetitions of two callables: (subject seconds, baseline seconds) per call.

    Each repetition times ``inner`` calls in a row, so that short calls are not lost in the
    timer's resolution and the loop's noise.
    """
    for _ in range(warmup):
        subject()
        baseline()
    ours: list[float] = []
    theirs: list[float] = []
    for rep in range(reps):
        # Alternate who goes first, so neither always runs on a warmer cache.
        if rep % 2:
            theirs.append(_once(baseline, inner))
            ours.append(_once(subject, inner))
        else:
            ours.append(_once(subject, inner))
            theirs.append(_once(baseline, inner))
    return ours, theirs


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1e3


def ms(samples: Sequence[float]) -> list[float]:
    return [round(s * 1e3, 3) for s in samples]


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What one row of the table measures, and the bound it must meet."""

    description: str
    bound: float
    #: ``True``: the figure must be at most ``bound``; ``False``: at least.
    at_most: bool = True
    unit: str = "x"

    def text(self) -> str:
        sign = "<=" if self.at_most else ">="
        return f"{sign} {self.bound:g}{self.unit}"

    def markdown(self) -> str:
        sign = "≤" if self.at_most else "≥"
        unit = TIMES if self.unit == "x" else self.unit
        faster = " faster" if not self.at_most and self.unit == "x" else ""
        return f"{sign} {self.bound:g}{unit}{faster}"

    def met(self, value: float) -> bool:
        return value <= self.bound if self.at_most else value >= self.bound


#: Every row of the table, by its key, in the order of the table. A run of every section
#: produces each of them once; the README's generated table has one row each.
TARGETS: dict[str, Target] = {
    "P1-1": Target("cold `load_cassette` of 1 exchange vs vcrpy's deserialize", 1.1),
    "P1-100": Target("the same, 100 exchanges", 1.1),
    "P1-1000": Target("the same, 1,000 exchanges (1.6 MB), validation included", 1.1),
    "P2": Target(
        "a fresh `CassetteCache(store).load` of the 1,000-exchange file (its stored verdict) "
        "vs vcrpy's deserialize",
        30,
        at_most=False,
    ),
    "P2-used": Target(
        "the same with what the `chat_completions` fixture and the report ask (`.completions`, "
        "the report's figures)",
        30,
        at_most=False,
    ),
    "P2u": Target(
        "a second pytest session: set-up of 5 tests taking `chat_completions` from their "
        "own 1,000-exchange cassettes (`--durations`) vs vcrpy's deserialize of the 5 files",
        30,
        at_most=False,
    ),
    "P3-pydantic": Target(
        "a response body judged as the plugin judges it (`validate_completion(body)` and the "
        "contract checks) vs `ChatCompletion.model_validate_json(body)` (types alone)",
        1.5,
    ),
    "P3-sdk": Target(
        "`validate_completion(body)` vs the `openai` SDK's "
        "`ChatCompletion.model_validate_json(body)`",
        1.0,
    ),
    "P4": Target(
        "a replay suite through the SDK vs the same tests under pytest-recording "
        "(ours validates every response)",
        1.0,
    ),
    "P4-fixtures": Target(
        "the same, each test also reading `chat_completion` and `chat_cassette`", 1.0
    ),
    "P4-cache": Target("that suite with pytest's cache (the store filled by a first run)", 1.0),
    "P4-instructions": Target(
        "P4 counted in instructions (valgrind; `--instructions`): what the machine's noise "
        "leaves out",
        1.0,
    ),
    "P4-fixtures-instructions": Target("P4-fixtures counted in instructions", 1.0),
    "P5-startup": Target("start-up added to `pytest --co` on an empty directory", 80, unit=" ms"),
    "P5-imports": Target(
        "`openai` or `vcr` modules imported by the plugin's import", 0, unit=" modules"
    ),
    "S": Target(
        "`parse_sse` + `merge_chunks` of a 500-chunk stream vs `json.loads` of its chunks", 2
    ),
    "M": Target(
        "merging 8 shard reports of a 5,000-test suite in-process (read, `merge_reports`, "
        "write, summary)",
        500,
        unit=" ms",
    ),
    "M-command": Target(
        "the same as the command `chatresp report SHARD.json x8 --json OUT`", 500, unit=" ms"
    ),
}


@dataclass
class Row:
    """One line of the final table."""

    key: str
    value: float
    met: bool
    #: The medians compared, with their spread (min to max).
    detail: str
    #: Noise, and which measure the row was judged on, when that needs saying.
    note: str = ""

    @property
    def target(self) -> Target:
        return TARGETS[self.key]

    def shown(self, markdown: bool = False) -> str:
        unit = self.target.unit
        if unit == "x":
            return f"{self.value:.2f}{TIMES if markdown else 'x'}"
        if unit == " ms":
            return f"{self.value:.0f} ms"
        return f"{self.value:g}{unit}"


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)

    def row(self, key: str, value: float, *, detail: str = "", note: str = "") -> None:
        target = TARGETS[key]
        if any(row.key == key for row in self.rows):
            raise RuntimeError(f"row {key} measured twice")
        self.rows.append(Row(key, value, target.met(value), detail, note))


def spread(samples: Sequence[float], scale: float = 1e3, digits: int = 1) -> str:
    """``median (min-max)`` of ``samples`` times ``scale``: the figure and its noise."""
    values = [s * scale for s in samples]
    med, low, high = statistics.median(values), min(values), max(values)
    return f"{med:.{digits}f} ({low:.{digits}f}{DASH}{high:.{digits}f})"


def noisy(ours: Sequence[float], theirs: Sequence[float]) -> bool:
    """Whether either side's spread exceeds the difference of the medians: the effect measured
    is smaller than the noise of measuring it."""
    effect = abs(statistics.median(ours) - statistics.median(theirs))
    return max(max(ours) - min(ours), max(theirs) - min(theirs)) > effect


def say(text: str = "") -> None:
    print(text, flush=True)


# --- the synthetic cassettes --------------------------------------------------------------------


@dataclass
class Files:
    root: Path
    sizes: dict[int, Path]
    stream: Path


def make_files(root: Path) -> Files:
    sizes = {}
    for count in (1, 100, 1000):
        path = root / "cassettes" / f"exchanges_{count}.yaml"
        synth.write_cassette(path, synth.exchanges(count, seed=count))
        sizes[count] = path
    stream = root / "cassettes" / "stream_500.yaml"
    synth.write_cassette(stream, [synth.stream_exchange(500, seed=5)])
    return Files(root, sizes, stream)


def _vcr_deserialize(path: Path) -> Callable[[], object]:
    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    def run() -> object:
        return deserialize(path.read_text(encoding="utf-8"), yamlserializer)

    return run


# --- P1 cold load -------------------------------------------------------------------------------


def bench_p1(files: Files, cfg: Settings, results: Results) -> None:
    from pytest_chatresp.cassette import load_cassette

    say("P1 cold load: load_cassette(path) vs vcr.serialize.deserialize(file text, yaml)")
    # The models build their validators on first use (defer_build); that happens here, once.
    start = time.perf_counter()
    load_cassette(files.sizes[1])
    first = (time.perf_counter() - start) * 1e3
    say(f"  first load_cassette in this process (builds the validators): {first:.1f} ms")
    section: dict[str, Any] = {"first_call_ms": round(first, 3)}
    for count, path in files.sizes.items():
        reps = cfg.reps_large if count >= 1000 else cfg.reps_small
        inner = {1: 50, 100: 2}.get(count, 1)
        ours, theirs = compare(
            partial(load_cassette, path), _vcr_deserialize(path), reps, inner=inner
        )
        ratio = statistics.median(ours) / statistics.median(theirs)
        size = path.stat().st_size
        say(
            f"  {count:>5} exchanges ({size / 1e6:.3f} MB): ours {spread(ours, digits=2)} ms  "
            f"vcrpy {spread(theirs, digits=2)} ms  ratio {ratio:.2f}x"
        )
        section[str(count)] = {
            "bytes": size,
            "ours_ms": ms(ours),
            "vcrpy_ms": ms(theirs),
            "ratio": ratio,
        }
        digits = 2 if count < 1000 else 0
        results.row(
            f"P1-{count}",
            ratio,
            detail=f"ours {spread(ours, digits=digits)} ms, "
            f"vcrpy {spread(theirs, digits=digits)} ms",
            note="noise exceeds the effect" if noisy(ours, theirs) else "",
        )
    results.sections["P1"] = section


# --- P2 warm load -------------------------------------------------------------------------------


def store_summary(store: Path) -> Any:
    """The store's entries by their real names (``describe_store``); an empty store is an
    error of the benchmark, not a figure."""
    from pytest_chatresp.cassette.store import describe_store

    summary = describe_store(store)
    if not summary.entries:
        raise RuntimeError(f"the store {store} holds no entry after the session that fills it")
    return summary


def bench_p2(files: Files, cfg: Settings, results: Results) -> None:
    from pytest_chatresp.cassette.cache import CassetteCache

    say("P2 warm load: a fresh CassetteCache(store).load(path), the store already filled")
    path = files.sizes[1000]
    store = files.root / "store"
    shutil.rmtree(store, ignore_errors=True)
    CassetteCache(store).load(path)  # the "first session" fills the store
    kept = store_summary(store)

    def fixture() -> object:  # what the chat_completions fixture and the report ask of it
        cassette = CassetteCache(store).load(path)
        return len(cassette.completions), cassette.figures()

    def first_read() -> object:  # and a test reading one completion (the whole stored document)
        cassette = CassetteCache(store).load(path)
        return cassette.completions[0].id

    def everything() -> object:  # and a test reading every exchange
        cassette = CassetteCache(store).load(path)
        return [e.kind for e in cassette.exchanges]

    ours, theirs = compare(
        lambda: CassetteCache(store).load(path), _vcr_deserialize(path), cfg.reps_large
    )
    used, theirs_used = compare(fixture, _vcr_deserialize(path), cfg.reps_large)
    documents = [_once(lambda: CassetteCache(store).document(path)) for _ in range(cfg.reps_large)]
    firsts = [_once(first_read) for _ in range(cfg.reps_large)]
    every = [_once(everything) for _ in range(cfg.reps_large)]
    speedup = statistics.median(theirs) / statistics.median(ours)
    used_speedup = statistics.median(theirs_used) / statistics.median(used)
    say(f"  the store: {kept.amount()}")
    say(
        f"  1000 exchanges: load {spread(ours, digits=2)} ms (the stored verdict)  "
        f"vcrpy {spread(theirs, digits=2)} ms  speed-up {speedup:.2f}x"
    )
    say(
        f"  load + .completions + the report's figures {spread(used, digits=2)} ms  "
        f"vcrpy {spread(theirs_used, digits=2)} ms  speed-up {used_speedup:.2f}x"
    )
    say(
        f"  beside it: the first completion read {spread(firsts, digits=2)} ms, every exchange "
        f"built {spread(every, digits=2)} ms, the stored document alone "
        f"{spread(documents, digits=2)} ms"
    )
    results.sections["P2"] = {
        "store_entries": kept.entries,
        "store_bytes": kept.size,
        "ours_ms": ms(ours),
        "ours_used_ms": ms(used),
        "document_only_ms": ms(documents),
        "first_completion_ms": ms(firsts),
        "every_exchange_ms": ms(every),
        "vcrpy_ms": ms(theirs),
        "vcrpy_used_ms": ms(theirs_used),
        "speedup": speedup,
        "used_speedup": used_speedup,
    }
    results.row("P2", speedup, detail=f"ours {spread(ours)} ms, vcrpy {spread(theirs)} ms")
    results.row(
        "P2-used",
        used_speedup,
        detail=f"ours {spread(used)} ms, vcrpy {spread(theirs_used)} ms",
    )


# --- P3 validation per response -----------------------------------------------------------------


def _interactions(path: Path) -> list[dict[str, Any]]:
    from pytest_chatresp.cassette import read_document

    document = read_document(path)
    interactions: list[dict[str, Any]] = document["interactions"]
    return interactions


def bench_p3(files: Files, cfg: Settings, results: Results) -> None:
    import openai.types.chat

    from pytest_chatresp.cassette import build_exchange
    from pytest_chatresp.checks import CheckContext, run_checks
    from pytest_chatresp.models import (
        ChatCompletion,
        validate_completion,
        validate_completion_json,
    )

    say("P3 validation per response (1000 recorded bodies, per-response medians)")
    interactions = _interactions(files.sizes[1000])
    bodies: list[str] = [i["response"]["body"]["string"] for i in interactions]
    count = len(bodies)
    sdk_model = openai.types.chat.ChatCompletion

    requests = [json.loads(i["request"]["body"]) for i in interactions]
    contexts = [CheckContext("bench.yaml", n, r) for n, r in enumerate(requests)]

    # Like with like: every subject starts from the text of the body. Ours judges a response as
    # the plugin does (types, then the contract checks) against pydantic's types alone; our
    # types alone against the SDK's model.
    def judged() -> None:
        for body, context in zip(bodies, contexts, strict=True):
            run_checks(validate_completion(body), context, frozenset())

    def pydantic_json() -> None:
        for body in bodies:
            ChatCompletion.model_validate_json(body)

    def ours() -> None:
        for body in bodies:
            validate_completion(body)

    def sdk() -> None:
        for body in bodies:
            sdk_model.model_validate_json(body)

    def decoded() -> None:  # for reference: a body decoded first
        for body in bodies:
            validate_completion(json.loads(body))

    def reader() -> None:  # for reference: what the reader calls on a response body
        for body in bodies:
            validate_completion_json(body)

    def loads_only() -> None:
        for body in bodies:
            json.loads(body)

    def exchanges() -> None:
        for index, interaction in enumerate(interactions):
            build_exchange("bench.yaml", index, interaction)

    completions = [validate_completion(b) for b in bodies]

    def checks() -> None:
        for completion, context in zip(completions, contexts, strict=True):
            run_checks(completion, context, frozenset())

    reps = cfg.reps_small
    ours_t, json_t = compare(judged, pydantic_json, reps)
    ours_sdk_t, sdk_t = compare(ours, sdk, reps)
    decoded_t, _ = compare(decoded, pydantic_json, cfg.reps_large)
    loads_t, build_t = compare(loads_only, exchanges, cfg.reps_large)
    checks_t, reader_t = compare(checks, reader, cfg.reps_large, warmup=0)

    scale = 1e6 / count  # microseconds per response

    def us(samples: Sequence[float]) -> str:
        return spread(samples, scale, 2)

    vs_json = statistics.median(ours_t) / statistics.median(json_t)
    vs_sdk = statistics.median(ours_sdk_t) / statistics.median(sdk_t)
    say(f"  validate_completion(body) + run_checks          {us(ours_t)} us")
    say(f"  ChatCompletion.model_validate_json(body)        {us(json_t)} us  ratio {vs_json:.2f}x")
    say(f"  validate_completion(body)                       {us(ours_sdk_t)} us")
    say(f"  openai ChatCompletion.model_validate_json(body) {us(sdk_t)} us  ratio {vs_sdk:.2f}x")
    say(f"  validate_completion(json.loads(body))           {us(decoded_t)} us")
    say(f"  validate_completion_json(body) (the reader)     {us(reader_t)} us")
    say(f"  json.loads(body) alone                          {us(loads_t)} us")
    say(f"  run_checks(completion) alone                    {us(checks_t)} us")
    say(
        f"  build_exchange(parsed interaction)              {us(build_t)} us  "
        f"(all of a cassette's per-exchange work after YAML)"
    )
    results.sections["P3"] = {
        "responses": count,
        "ours_us": [s * scale for s in ours_t],
        "decoded_first_us": [s * scale for s in decoded_t],
        "model_validate_json_us": [s * scale for s in json_t],
        "ours_beside_sdk_us": [s * scale for s in ours_sdk_t],
        "sdk_model_validate_us": [s * scale for s in sdk_t],
        "reader_us": [s * scale for s in reader_t],
        "json_loads_us": [s * scale for s in loads_t],
        "run_checks_us": [s * scale for s in checks_t],
        "build_exchange_us": [s * scale for s in build_t],
        "ratio_vs_model_validate_json": vs_json,
        "ratio_vs_sdk": vs_sdk,
    }
    results.row(
        "P3-pydantic",
        vs_json,
        detail=f"ours {us(ours_t)} µs, pydantic {us(json_t)} µs",
        note="noise exceeds the effect" if noisy(ours_t, json_t) else "",
    )
    results.row(
        "P3-sdk",
        vs_sdk,
        detail=f"ours {us(ours_sdk_t)} µs, SDK {us(sdk_t)} µs",
        note="noise exceeds the effect" if noisy(ours_sdk_t, sdk_t) else "",
    )


# --- P4 the replay suite ------------------------------------------------------------------------

_CONFTEST = """\
import openai
import pytest


@pytest.fixture(scope="session")
def client():
    return openai.OpenAI(base_url={base_url!r}, api_key="not-needed-for-replay", max_retries=0)
"""

_OURS_TEST = """
@pytest.mark.chat_cassette
def test_case_{index}(client, chat_cassette, chat_completion):
    reply = client.chat.completions.create(model="gpt-4o-mini", messages={messages!r})
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == chat_completion.choices[0].message.content
    assert chat_cassette.completions[-1].id == reply.id
"""

_SAME_TEST = """
@pytest.mark.{marker}
def test_case_{index}(client):
    reply = client.chat.completions.create(model="gpt-4o-mini", messages={messages!r})
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content
    assert reply.id.startswith("chatcmpl-")
"""

_PER_MODULE = 50


def make_suite(root: Path, tests: int, flavour: str) -> Path:
    """A replay suite: one cassette per test, in ``cassettes/<module>/<test>.yaml``.

    ``flavour``: ``recording`` (pytest-recording's marker), ``chatresp-same`` (the same tests
    with our marker) or ``chatresp`` (ours, each test also reading our fixtures). The layout
    is both ours (below the rootdir) and pytest-recording's (beside the test module), since
    the modules sit at the rootdir.
    """
    suite = root / f"suite_{flavour}"
    shutil.rmtree(suite, ignore_errors=True)
    suite.mkdir(parents=True)
    (suite / "pytest.ini").write_text(_ini())
    (suite / "conftest.py").write_text(_CONFTEST.format(base_url=synth.SUITE_BASE_URL))
    template = {
        "chatresp": _OURS_TEST,
        "chatresp-same": _SAME_TEST.replace("{marker}", "chat_cassette"),
        "recording": _SAME_TEST.replace("{marker}", "vcr"),
    }[flavour]
    for start in range(0, tests, _PER_MODULE):
        module = f"test_mod{start // _PER_MODULE:02d}"
        parts = ["import pytest\n"]
        for index in range(start, min(start + _PER_MODULE, tests)):
            messages = synth.chat_request_body(index)["messages"]
            parts.append(template.format(index=index, messages=messages))
            pairs = synth.exchanges(
                1, seed=index, base_url=synth.SUITE_BASE_URL, first_index=index, tool_every=0
            )
            synth.write_cassette(suite / "cassettes" / module / f"test_case_{index}.yaml", pairs)
        (suite / f"{module}.py").write_text("".join(parts))
    return suite


#: Candidate optimisations applied for this run (``--whatif``, see whatif.py); none normally.
WHATIF: list[str] = []


#: Where the pytest subprocesses keep bytecode (set by main): see _env.
PYCACHE: list[Path] = []


def _env() -> dict[str, str]:
    """The environment of a pytest subprocess.

    Bytecode is written, to a directory of this run (``PYTHONPYCACHEPREFIX``), even when this
    shell sets ``PYTHONDONTWRITEBYTECODE``: otherwise every run compiles again, and rewrites
    the asserts of every plugin module, a second or more that no developer's second run pays.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OPENAI_"))}
    env.pop("CHATRESP_WHATIF", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if PYCACHE:
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE[0])
    return env


def _whatif_env() -> dict[str, str]:
    """The environment of a pytest run of our plugin: with the what-if patches, if any."""
    env = _env()
    if WHATIF:
        env["CHATRESP_WHATIF"] = ",".join(WHATIF)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


def _whatif_args() -> list[str]:
    return ["-p", "whatif"] if WHATIF else []


def _ini() -> str:
    """A pytest.ini that pins the rootdir (and quiets pytest-asyncio when it is installed)."""
    import importlib.util

    if importlib.util.find_spec("pytest_asyncio") is not None:
        return "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    return "[pytest]\n"


@dataclass
class Run:
    wall: float
    cpu: float
    stdout: str


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pytest(
    cwd: Path, args: Sequence[str], *, expect: int = 0, env: dict[str, str] | None = None
) -> Run:
    """``python -m pytest ARGS`` in ``cwd``: wall time, the child's CPU time, its output."""
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(
        [PYTHON, "-m", "pytest", *args],
        cwd=cwd,
        env=env if env is not None else _env(),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if proc.returncode != expect:
        raise RuntimeError(
            f"pytest {' '.join(args)} in {cwd} exited {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return Run(elapsed, cpu, proc.stdout)


def _summary(stdout: str) -> str:
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _cpu_ms(runs: Sequence[Run]) -> float:
    return statistics.median(r.cpu for r in runs) * 1e3


def _wall(runs: Sequence[Run]) -> list[float]:
    return [r.wall for r in runs]


def _cpu(runs: Sequence[Run]) -> list[float]:
    return [r.cpu for r in runs]


def bench_p4(files: Files, cfg: Settings, results: Results) -> None:
    tests = cfg.suite_tests
    say(f"P4 a {tests}-test replay suite through the openai SDK, each run in a subprocess")
    same_dir = make_suite(files.root, tests, "chatresp-same")
    ours_dir = make_suite(files.root, tests, "chatresp")
    theirs_dir = make_suite(files.root, tests, "recording")
    ours_args = ["-q", "-p", "no:cacheprovider", "-p", "no:recording", *_whatif_args()]
    theirs_args = ["-q", "-p", "no:cacheprovider", "-p", "no:chatresp"]
    cached_args = ["-q", "-p", "no:recording", *_whatif_args()]
    ours_env = _whatif_env()
    configs: dict[str, tuple[Path, list[str], dict[str, str]]] = {
        "ours, the same tests": (same_dir, ours_args, ours_env),
        "ours, reading the fixtures": (ours_dir, ours_args, ours_env),
        "pytest-recording": (theirs_dir, theirs_args, _env()),
    }
    # One unmeasured run each: writes the modules' bytecode, warms the OS file cache.
    for name, (cwd, args, env) in configs.items():
        say(f"  {name} (warm-up): {_summary(run_pytest(cwd, args, env=env).stdout)}")
    runs: dict[str, list[Run]] = {name: [] for name in configs}

    def measure(reps: int) -> None:
        for rep in range(reps):
            order = list(configs.items())
            for name, (cwd, args, env) in order if rep % 2 == 0 else reversed(order):
                runs[name].append(run_pytest(cwd, args, env=env))

    same, ours, theirs = runs.values()
    measure(cfg.suite_reps)
    if noisy(_wall(same), _wall(theirs)) or noisy(_wall(ours), _wall(theirs)):
        say("  the walls' spread exceeds the effect: as many repetitions again")
        measure(cfg.suite_reps)
    # Our plugin with pytest's cache: the first run fills the store, later runs read it.
    shutil.rmtree(ours_dir / ".pytest_cache", ignore_errors=True)
    filling = run_pytest(ours_dir, cached_args, env=ours_env)
    cached = [run_pytest(ours_dir, cached_args, env=ours_env) for _ in range(len(ours))]
    theirs_ms = median_ms(_wall(theirs))
    for name, subject in (*runs.items(), ("ours with the cache", cached)):
        say(
            f"  {name + ',':<28} wall {spread(_wall(subject), digits=0)} ms, "
            f"cpu {spread(_cpu(subject), digits=0)} ms; ratio "
            f"{median_ms(_wall(subject)) / theirs_ms:.3f}x wall, "
            f"{_cpu_ms(subject) / _cpu_ms(theirs):.3f}x cpu"
        )
    say(f"  filling the store: {filling.wall * 1e3:.0f} ms")
    results.sections["P4"] = {
        "tests": tests,
        "ours_same_ms": ms(_wall(same)),
        "ours_same_cpu_ms": ms(_cpu(same)),
        "ours_ms": ms(_wall(ours)),
        "ours_cpu_ms": ms(_cpu(ours)),
        "pytest_recording_ms": ms(_wall(theirs)),
        "pytest_recording_cpu_ms": ms(_cpu(theirs)),
        "ours_cache_fill_ms": round(filling.wall * 1e3, 3),
        "ours_cached_ms": ms(_wall(cached)),
        "ours_cached_cpu_ms": ms(_cpu(cached)),
        "ratio": median_ms(_wall(same)) / theirs_ms,
        "cpu_ratio": _cpu_ms(same) / _cpu_ms(theirs),
        "fixtures_ratio": median_ms(_wall(ours)) / theirs_ms,
        "fixtures_cpu_ratio": _cpu_ms(ours) / _cpu_ms(theirs),
        "cached_ratio": median_ms(_wall(cached)) / theirs_ms,
        "cached_cpu_ratio": _cpu_ms(cached) / _cpu_ms(theirs),
    }
    for key, subject in (("P4", same), ("P4-fixtures", ours), ("P4-cache", cached)):
        value, detail, note = judged(subject, theirs)
        results.row(key, value, detail=f"{tests} tests; {detail}", note=note)
    if cfg.instructions:
        counted = instructions(configs)
        results.sections["P4"]["instructions"] = counted
        base = counted["pytest-recording"]
        for key, name in (
            ("P4-instructions", "ours, the same tests"),
            ("P4-fixtures-instructions", "ours, reading the fixtures"),
        ):
            detail = f"{tests} tests; ours {counted[name]:,}, theirs {base:,} instructions"
            results.row(key, counted[name] / base, detail=detail, note="one run each")


def instructions(configs: dict[str, tuple[Path, list[str], dict[str, str]]]) -> dict[str, int]:
    """The instructions each pytest run executes, counted by valgrind (callgrind): the same
    figure on every run, whatever else the machine does. All at once, one process a run."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind on PATH")
    pattern = re.compile(r"I\s+refs:\s+([\d,]+)")
    procs = {
        name: subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                PYTHON,
                "-m",
                "pytest",
                *args,
            ],
            cwd=cwd,
            env={**env, "PYTHONHASHSEED": "0"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (cwd, args, env) in configs.items()
    }
    counted = {}
    for name, proc in procs.items():
        _, err = proc.communicate()
        found = pattern.search(err)
        if proc.returncode != 0 or found is None:
            raise RuntimeError(f"valgrind on {name} exited {proc.returncode}:\n{err[-2000:]}")
        counted[name] = int(found.group(1).replace(",", ""))
        say(f"  {name + ',':<28} {counted[name]:,} instructions")
    return counted


def judged(ours: Sequence[Run], theirs: Sequence[Run]) -> tuple[float, str, str]:
    """The ratio of two sets of runs on their wall time or, where the walls' spread exceeds
    the effect, on the children's CPU time (less disturbed by other work on the machine)."""
    wall = statistics.median(_wall(ours)) / statistics.median(_wall(theirs))
    cpu = statistics.median(_cpu(ours)) / statistics.median(_cpu(theirs))
    detail = (
        f"wall ours {spread(_wall(ours), 1, 2)} s, theirs {spread(_wall(theirs), 1, 2)} s "
        f"({wall:.2f}{TIMES}); CPU ours {spread(_cpu(ours), 1, 2)} s, theirs "
        f"{spread(_cpu(theirs), 1, 2)} s ({cpu:.2f}{TIMES})"
    )
    if not noisy(_wall(ours), _wall(theirs)):
        return wall, detail, "judged on wall time"
    note = "the walls' spread exceeds the effect: judged on CPU time"
    if noisy(_cpu(ours), _cpu(theirs)):
        note += ", whose spread exceeds the effect too"
    return cpu, detail, note


# --- P5 start-up --------------------------------------------------------------------------------

_IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def importtime(statement: str) -> list[tuple[str, int, int, int]]:
    """``-X importtime`` lines: (module, self us, cumulative us, depth)."""
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", statement],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    out = []
    for line in proc.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            depth = (len(match.group(3)) - 1) // 2
            out.append((match.group(4), int(match.group(1)), int(match.group(2)), depth))
    return out


_NEW_MODULES = """\
import sys, json
import pytest
before = set(sys.modules)
import pytest_chatresp.plugin
print(json.dumps(sorted(set(sys.modules) - before)))
"""

_SESSION_MODULES = """\
import json, sys
def pytest_sessionfinish(session):
    names = sorted({m.split(".")[0] for m in sys.modules})
    with open("modules.json", "w") as handle:
        json.dump(names, handle)
"""


def bench_p5(files: Files, cfg: Settings, results: Results) -> None:
    say("P5 start-up")
    statement = "import pytest; import pytest_chatresp.plugin"
    ours_self: list[int] = []
    ours_cumulative: list[int] = []
    pytest_cumulative: list[int] = []
    per_module: dict[str, list[int]] = {}
    importtime(statement)  # unmeasured: writes the bytecode
    for _ in range(cfg.startup_reps):
        lines = importtime(statement)
        mine = [line for line in lines if line[0].split(".")[0] == "pytest_chatresp"]
        ours_self.append(sum(line[1] for line in mine))
        # Ours at the top of the statement: the package and the plugin (pytest came before).
        ours_cumulative.append(sum(line[2] for line in mine if line[3] == 0))
        pytest_cumulative.append(sum(line[2] for line in lines if line[0] == "pytest"))
        for name, own, _, _ in mine:
            per_module.setdefault(name, []).append(own)
    new = json.loads(
        subprocess.run(
            [PYTHON, "-c", _NEW_MODULES], env=_env(), capture_output=True, text=True, check=True
        ).stdout
    )
    heavy = sorted({m.split(".")[0] for m in new} - {"pytest_chatresp"})
    forbidden = [m for m in new if m.split(".")[0] in ("openai", "vcr")]
    say(
        f"  -X importtime '{statement}': our modules self {statistics.median(ours_self) / 1e3:.2f} "
        f"ms, cumulative {statistics.median(ours_cumulative) / 1e3:.2f} ms "
        f"(pytest itself {statistics.median(pytest_cumulative) / 1e3:.1f} ms)"
    )
    for name, owns in sorted(per_module.items()):
        say(f"    {name:<32} self {statistics.median(owns) / 1e3:6.2f} ms")
    say(
        f"  modules the plugin import adds beyond pytest's: {heavy or 'none'} "
        f"({len(new)} modules in all)"
    )
    say(f"  openai or vcr imported by the plugin import: {forbidden or 'no'}")

    empty = files.root / "empty"
    shutil.rmtree(empty, ignore_errors=True)
    empty.mkdir()
    (empty / "pytest.ini").write_text(_ini())
    with_args = ["--co", "-q"]
    without_args = ["--co", "-q", "-p", "no:chatresp"]
    run_pytest(empty, with_args, expect=5)
    run_pytest(empty, without_args, expect=5)
    with_runs: list[Run] = []
    without_runs: list[Run] = []

    def measure(reps: int) -> None:
        for rep in range(reps):
            pair = [(with_args, with_runs), (without_args, without_runs)]
            for args, into in pair if rep % 2 == 0 else reversed(pair):
                into.append(run_pytest(empty, args, expect=5))

    measure(cfg.startup_reps)
    if noisy(_wall(with_runs), _wall(without_runs)):  # more repetitions, once
        say("  the walls' spread exceeds the difference: as many repetitions again")
        measure(cfg.startup_reps)
    with_t, without_t = _wall(with_runs), _wall(without_runs)
    added = median_ms(with_t) - median_ms(without_t)
    added_cpu = _cpu_ms(with_runs) - _cpu_ms(without_runs)
    say(
        f"  pytest --co -q on an empty dir: with us {spread(with_t)} ms, "
        f"-p no:chatresp {spread(without_t)} ms, added {added:.1f} ms wall; cpu with us "
        f"{spread(_cpu(with_runs))} ms, without {spread(_cpu(without_runs))} ms, "
        f"added {added_cpu:.1f} ms"
    )
    # What a session that uses no cassette imports (pytest-recording off: it imports vcr).
    probe = files.root / "probe"
    shutil.rmtree(probe, ignore_errors=True)
    probe.mkdir()
    (probe / "pytest.ini").write_text(_ini())
    (probe / "conftest.py").write_text(_SESSION_MODULES)
    (probe / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    run_pytest(probe, ["-q", "-p", "no:recording", "-p", "no:cacheprovider"])
    session = json.loads((probe / "modules.json").read_text())
    in_session = [m for m in ("openai", "vcr", "yaml", "pydantic") if m in session]
    say(
        f"  a session with one plain test (-p no:recording) imported: {in_session or 'none'} "
        f"of openai, vcr, yaml, pydantic"
    )

    results.sections["P5"] = {
        "ours_self_us": ours_self,
        "ours_cumulative_us": ours_cumulative,
        "pytest_cumulative_us": pytest_cumulative,
        "per_module_self_us": {k: statistics.median(v) for k, v in per_module.items()},
        "modules_added_by_plugin_import": new,
        "openai_or_vcr_at_import": forbidden,
        "collect_with_ms": ms(with_t),
        "collect_without_ms": ms(without_t),
        "added_ms": added,
        "added_cpu_ms": added_cpu,
        "plain_session_imports": in_session,
    }
    detail = (
        f"wall with us {spread(with_t, digits=0)} ms, without {spread(without_t, digits=0)} ms "
        f"({added:+.0f}); CPU with {spread(_cpu(with_runs), digits=0)} ms, without "
        f"{spread(_cpu(without_runs), digits=0)} ms ({added_cpu:+.0f})"
    )
    if noisy(with_t, without_t):
        results.row(
            "P5-startup",
            added_cpu,
            detail=detail,
            note="the walls' spread exceeds the difference: judged on CPU time",
        )
    else:
        results.row("P5-startup", added, detail=detail, note="judged on wall time")
    results.row(
        "P5-imports",
        float(len(forbidden)),
        detail="none" if not forbidden else ", ".join(forbidden),
    )


# --- streaming ----------------------------------------------------------------------------------


def bench_stream(files: Files, cfg: Settings, results: Results) -> None:
    from pytest_chatresp.cassette import build_exchange
    from pytest_chatresp.cassette.stream import merge_chunks, parse_sse

    say("S streaming: parse_sse + merge_chunks of a 500-chunk stream vs json.loads of its chunks")
    interaction = _interactions(files.stream)[0]
    text: str = interaction["response"]["body"]["string"]
    events, done = parse_sse(text)
    documents = [json.loads(e.data) for e in events]
    datas = [e.data for e in events]

    def ours() -> None:
        parse_sse(text)
        merge_chunks(documents)

    def loads() -> None:
        for data in datas:
            json.loads(data)

    def parse_only() -> None:
        parse_sse(text)

    def merge_only() -> None:
        merge_chunks(documents)

    def exchange() -> None:
        build_exchange("bench.yaml", 0, interaction)

    reps = cfg.reps_small
    ours_t, loads_t = compare(ours, loads, reps)
    parse_t, merge_t = compare(parse_only, merge_only, reps)
    exchange_t, _ = compare(exchange, loads, max(3, reps // 3))
    ratio = statistics.median(ours_t) / statistics.median(loads_t)
    say(f"  {len(events)} events, [DONE] {done}, {len(text) / 1e3:.0f} kB")
    say(
        f"  parse_sse + merge_chunks {median_ms(ours_t):.3f} ms (parse {median_ms(parse_t):.3f}, "
        f"merge {median_ms(merge_t):.3f})  json.loads of the chunks {median_ms(loads_t):.3f} ms  "
        f"ratio {ratio:.2f}x"
    )
    say(
        f"  whole build_exchange of the stream (decode, validate 500 chunks, merge, checks): "
        f"{median_ms(exchange_t):.2f} ms = "
        f"{statistics.median(exchange_t) / statistics.median(loads_t):.1f}x json.loads"
    )
    results.sections["S"] = {
        "events": len(events),
        "ours_ms": ms(ours_t),
        "parse_sse_ms": ms(parse_t),
        "merge_chunks_ms": ms(merge_t),
        "json_loads_ms": ms(loads_t),
        "build_exchange_ms": ms(exchange_t),
        "ratio": ratio,
    }
    results.row(
        "S",
        ratio,
        detail=f"ours {spread(ours_t, digits=2)} ms, json.loads {spread(loads_t, digits=2)} ms",
        note="noise exceeds the effect" if noisy(ours_t, loads_t) else "",
    )


# --- P2u the warm load as a user meets it ------------------------------------------------------

_USER_TEST = """\
def test_load(chat_completions):
    assert len(chat_completions) == {count}
"""

_USER_CONFTEST = """\
import json


def pytest_runtest_logreport(report):
    # The figure --durations prints, unrounded (it shows hundredths of a second).
    if report.when == "setup":
        with open("setup-durations.jsonl", "a") as handle:
            handle.write(json.dumps([report.nodeid, report.duration]) + "\\n")
"""

_USER_MODULES = 5
_DURATION = re.compile(r"^\s*([0-9.]+)s (setup|call|teardown)\s+(\S+)\s*$")


def setup_seconds(suite: Path, stdout: str, nodeids: Sequence[str]) -> float:
    """The 5 tests' set-up seconds of the session that printed ``stdout``.

    Parsed from ``--durations=0 --durations-min=0``, every test needed; each figure is then
    taken unrounded from what the suite's conftest kept of the same reports, and checked
    against the printed one (which has only hundredths of a second).
    """
    printed: dict[str, float] = {}
    for line in stdout.splitlines():
        match = _DURATION.match(line)
        if match and match.group(2) == "setup":
            printed[match.group(3)] = float(match.group(1))
    missing = [n for n in nodeids if n not in printed]
    if missing:
        raise RuntimeError(f"no set-up time for {missing} in:\n{stdout[-3000:]}")
    kept = suite / "setup-durations.jsonl"
    exact = dict(json.loads(line) for line in kept.read_text().splitlines())
    kept.unlink()
    for nodeid in nodeids:
        if abs(exact[nodeid] - printed[nodeid]) > 0.006:
            raise RuntimeError(f"{nodeid}: --durations says {printed[nodeid]} s, {exact[nodeid]}")
    return sum(exact[n] for n in nodeids)


def bench_p2u(files: Files, cfg: Settings, results: Results) -> None:
    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    count = 1000
    say(
        f"P2u warm load through pytest: {_USER_MODULES} tests taking chat_completions, each from "
        f"its own {count:,}-exchange cassette; set-up times from --durations"
    )
    suite = files.root / "suite_user"
    shutil.rmtree(suite, ignore_errors=True)
    suite.mkdir(parents=True)
    (suite / "pytest.ini").write_text(_ini())
    (suite / "conftest.py").write_text(_USER_CONFTEST)
    cassettes: list[Path] = []
    nodeids: list[str] = []
    for number in range(_USER_MODULES):
        module = f"test_user{number}"
        (suite / f"{module}.py").write_text(_USER_TEST.format(count=count))
        path = suite / "cassettes" / module / "test_load.yaml"
        synth.write_cassette(path, synth.exchanges(count, seed=2000 + number))
        cassettes.append(path)
        nodeids.append(f"{module}.py::test_load")
    # pytest's cache on (the store in .pytest_cache/d/chatresp), the store's per-user key under
    # this run's XDG_CACHE_HOME (set by main); pytest-recording off, as it would be in a suite
    # using only this plugin, and the test order fixed.
    args = ["-q", "-p", "no:recording", "-p", "no:randomly", "--durations=0", "--durations-min=0"]
    cold = run_pytest(suite, args)
    cold_setup = setup_seconds(suite, cold.stdout, nodeids)
    kept = store_summary(suite / ".pytest_cache" / "d" / "chatresp")
    texts = [path.read_text(encoding="utf-8") for path in cassettes]

    def vcrpy() -> float:
        gc.collect()
        start = time.perf_counter()
        for path in cassettes:
            deserialize(path.read_text(encoding="utf-8"), yamlserializer)
        return time.perf_counter() - start

    vcrpy()  # unmeasured, as the first session was
    ours: list[float] = []
    theirs: list[float] = []
    walls: list[float] = []
    for rep in range(cfg.reps_large):
        if rep % 2:
            theirs.append(vcrpy())
        warm = run_pytest(suite, args)
        ours.append(setup_seconds(suite, warm.stdout, nodeids))
        walls.append(warm.wall)
        if not rep % 2:
            theirs.append(vcrpy())
    speedup = statistics.median(theirs) / statistics.median(ours)
    say(f"  {sum(len(t) for t in texts):,} bytes of cassettes; the store: {kept.amount()}")
    say(f"  first session (fills the store): set-up {cold_setup * 1e3:.0f} ms of {cold.wall:.2f} s")
    say(
        f"  second session: set-up of the {_USER_MODULES} tests {spread(ours)} ms "
        f"(session wall {spread(walls, 1, 2)} s)"
    )
    say(f"  vcrpy's deserialize of the {_USER_MODULES} files {spread(theirs)} ms")
    say(f"  speed-up {speedup:.1f}x")
    results.sections["P2u"] = {
        "cold_setup_ms": round(cold_setup * 1e3, 3),
        "cold_wall_ms": round(cold.wall * 1e3, 3),
        "store_entries": kept.entries,
        "store_bytes": kept.size,
        "warm_setup_ms": ms(ours),
        "warm_wall_ms": ms(walls),
        "vcrpy_ms": ms(theirs),
        "speedup": speedup,
    }
    results.row(
        "P2u",
        speedup,
        detail=f"set-up {spread(ours)} ms, vcrpy {spread(theirs)} ms; the first session's "
        f"set-up {cold_setup * 1e3:.0f} ms",
    )


# --- M merging CI shards ------------------------------------------------------------------------

_SHARDS = 8
_SUITE_TESTS = 5000
_TEMPLATES = 40
_PER_MODULE_SHARDED = 25


def make_shards(root: Path) -> tuple[list[Path], int]:
    """The JSON reports of a 5,000-test suite run as 8 CI shards: built with the plugin's own
    ``RunReport`` from real exchanges and written by its own writer.

    Every test replays its own cassette, one to three exchanges (one in ten a tool call), as
    the plugin counts them (``add_exchanges``, ``note_played``). Tests go to shards round
    robin, as a splitter by count does. One cassette in 50 is shared by two tests in two
    shards, each playing part of it; one in 100 keeps an interaction no test plays. The cassette
    identities are those of the files the exchanges were read from, as ``identify`` writes
    them. Returns the reports and the number of interactions no shard played.
    """
    from pytest_chatresp.cassette import load_cassette
    from pytest_chatresp.report import RunReport, cassette_identity

    directory = root / "shards"
    shutil.rmtree(directory, ignore_errors=True)
    templates = []
    for number in range(_TEMPLATES):
        path = directory / "templates" / f"t{number}.yaml"
        synth.write_cassette(path, synth.exchanges(1 + number % 3, seed=number, first_index=number))
        templates.append((load_cassette(path).exchanges, cassette_identity(path)))
    shards = [RunReport() for _ in range(_SHARDS)]
    unplayed = 0
    for index in range(_SUITE_TESTS):
        module = f"tests/test_area{index // _PER_MODULE_SHARDED:03d}.py"
        owner = index - 1 if index % 50 == 1 else index  # shares the cassette of the test before
        cassette = (
            f"tests/cassettes/test_area{owner // _PER_MODULE_SHARDED:03d}/test_case_{owner}.yaml"
        )
        exchanges, identity = templates[owner % _TEMPLATES]
        total = len(exchanges)
        if index % 50 == 0:
            played = list(range(total))[:1]
        elif index % 50 == 1:
            played = list(range(total))[1:]
        elif index % 100 == 2 and total > 1:
            played = list(range(total - 1))
            unplayed += 1
        else:
            played = list(range(total))
        report = shards[index % _SHARDS]
        nodeid = f"{module}::test_case_{index}"
        report.add_exchanges(nodeid, "replayed", [exchanges[i] for i in played], cassette)
        report.note_played(cassette, total, played)
        report.cassettes[cassette] = identity
    paths = []
    for number, report in enumerate(shards):
        path = directory / f"shard-{number + 1}.json"
        report.write_json(path)
        paths.append(path)
    return paths, unplayed


def _chatresp_command() -> list[str]:
    script = Path(PYTHON).with_name("chatresp")
    return [str(script)] if script.exists() else [PYTHON, "-m", "pytest_chatresp.cli"]


_LOAD_JSON = "import json, sys\nfor name in sys.argv[1:]:\n    json.load(open(name))\n"


def bench_merge(files: Files, cfg: Settings, results: Results) -> None:
    say(f"M merging the JSON reports of {_SHARDS} CI shards of a {_SUITE_TESTS:,}-test suite")
    # The objects the earlier sections left are not the merge's: out of the collector's way, as
    # in the command's own process.
    gc.collect()
    gc.freeze()
    try:
        _bench_merge(files, cfg, results)
    finally:
        gc.unfreeze()


def _bench_merge(files: Files, cfg: Settings, results: Results) -> None:
    import io
    from contextlib import redirect_stdout

    from pytest_chatresp.cli import main as chatresp
    from pytest_chatresp.shards import merge_reports, read_report

    paths, unplayed = make_shards(files.root)
    size = sum(p.stat().st_size for p in paths)
    out = files.root / "shards" / "merged.json"

    def ours() -> object:  # what chatresp report does, in this process
        documents = [read_report(path) for path in paths]
        report = merge_reports(documents, [path.name for path in paths])
        report.write_json(out)
        return report.lines()

    def theirs() -> object:
        documents = []
        for path in paths:
            with path.open(encoding="utf-8") as handle:
                documents.append(json.load(handle))
        return documents

    merged = merge_reports([read_report(p) for p in paths], [p.name for p in paths])
    tests = len(merged.tests)
    found = sum(len(v) for v in merged.unplayed().values())
    if tests != _SUITE_TESTS or found != unplayed:
        raise RuntimeError(f"the merge holds {tests} tests and {found} unplayed interactions")
    with redirect_stdout(io.StringIO()) as printed:  # the command itself, once, in-process
        status = chatresp(["report", *map(str, paths), "--json", str(out)])
    if (
        status != 0
        or json.loads(out.read_text())["tests"].keys() != merged.to_dict()["tests"].keys()
    ):
        raise RuntimeError(f"chatresp report exited {status}:\n{printed.getvalue()[-2000:]}")

    ours_t, theirs_t = compare(ours, theirs, cfg.reps_small)
    command = [*_chatresp_command(), "report", *map(str, paths), "--json", str(out)]
    loading = [PYTHON, "-c", _LOAD_JSON, *map(str, paths)]
    command_t: list[float] = []
    loading_t: list[float] = []
    for rep in range(cfg.reps_large + 2):
        pair = [(command, command_t), (loading, loading_t)]
        for argv, into in pair if rep % 2 == 0 else reversed(pair):
            start = time.perf_counter()
            subprocess.run(argv, env=_env(), capture_output=True, check=True)
            if rep:  # the first pair is a warm-up (bytecode, file cache)
                into.append(time.perf_counter() - start)
    say(
        f"  {len(paths)} reports, {size / 1e6:.1f} MB, {tests:,} tests, {len(merged.played):,} "
        f"cassettes, {found} unplayed interaction(s)"
    )
    say(
        f"  read + merge_reports + write_json + summary {spread(ours_t)} ms; "
        f"json.load of the {len(paths)} files {spread(theirs_t)} ms "
        f"({statistics.median(ours_t) / statistics.median(theirs_t):.1f}x)"
    )
    say(
        f"  chatresp report x{len(paths)} --json OUT {spread(command_t)} ms; python -c json.load "
        f"x{len(paths)} {spread(loading_t)} ms (each a new process)"
    )
    results.sections["M"] = {
        "reports": len(paths),
        "bytes": size,
        "tests": tests,
        "in_process_ms": ms(ours_t),
        "json_load_ms": ms(theirs_t),
        "command_ms": ms(command_t),
        "python_json_load_ms": ms(loading_t),
    }
    results.row(
        "M",
        median_ms(ours_t),
        detail=f"{spread(ours_t)} ms; json.load of the {len(paths)} files {spread(theirs_t)} ms",
    )
    results.row(
        "M-command",
        median_ms(command_t),
        detail=f"{spread(command_t)} ms; `python -c` json.load of the files {spread(loading_t)} ms",
    )


# --- main ---------------------------------------------------------------------------------------

BENCHES: dict[str, Callable[[Files, Settings, Results], None]] = {
    "P1": bench_p1,
    "P2": bench_p2,
    "P3": bench_p3,
    "P4": bench_p4,
    "P5": bench_p5,
    "S": bench_stream,
    "P2U": bench_p2u,
    "M": bench_merge,
}


def ordered(results: Results) -> list[Row]:
    """The rows in the order of :data:`TARGETS`."""
    order = list(TARGETS)
    return sorted(results.rows, key=lambda row: order.index(row.key))


def tally(rows: Sequence[Row]) -> str:
    """``9 of 16 targets met; missed: P1-1, P4`` computed from the rows."""
    missed = [row.key for row in rows if not row.met]
    text = f"{len(rows) - len(missed)} of {len(rows)} targets met"
    return text + (f"; missed: {', '.join(missed)}" if missed else "")


def table(results: Results) -> str:
    lines = [f"{'row':<12} {'target':>12} {'measured':>10}  {'met':<4} medians (min{DASH}max)"]
    lines.append("-" * len(lines[0]) + "-" * 40)
    for row in ordered(results):
        lines.append(
            f"{row.key:<12} {row.target.text():>12} {row.shown():>10}  "
            f"{'yes' if row.met else 'NO':<4} {row.detail}" + (f" [{row.note}]" if row.note else "")
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Machine:
    """Where and how a run was made, for the README's line above the table."""

    cores: int | None
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    python: str
    platform: str
    quick: bool
    seconds: float

    def line(self) -> str:
        before = " / ".join(f"{n:.1f}" for n in self.load_before)
        after = " / ".join(f"{n:.1f}" for n in self.load_after)
        command = "python benchmarks/run.py" + (" --quick" if self.quick else "")
        return (
            f"`{command} --write-readme` on {self.cores} cores ({self.platform}), Python "
            f"{self.python}; load average (1 / 5 / 15 min) {before} at the start, {after} at the "
            f"end; {self.seconds:.0f} s in all."
        )


README = HERE.parent / "README.md"
BEGIN = "<!-- benchmark-table:begin -->"
END = "<!-- benchmark-table:end -->"


def readme_block(results: Results, machine: Machine) -> str:
    """The README's performance table: every row, its target, the figure, met or not, the
    medians compared with their spread and any note on noise; the count of targets met."""
    rows = ordered(results)
    lines = [
        BEGIN,
        "<!-- written by benchmarks/run.py --write-readme: edit the benchmark, not this block -->",
        "",
        machine.line(),
        "",
        f"| measure | target | measured | met | medians (min{DASH}max) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        note = f"; {row.note}" if row.note else ""
        lines.append(
            f"| **{row.key}** {row.target.description} | {row.target.markdown()} | "
            f"{row.shown(markdown=True)} | {'yes' if row.met else '**no**'} | {row.detail}{note} |"
        )
    lines += ["", f"**{tally(rows)}.**", "", END]
    return "\n".join(lines)


def write_readme(block: str, readme: Path = README) -> None:
    """Put ``block`` between the README's markers (each must be there once, in order)."""
    text = readme.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"{readme}: expected one {BEGIN} and, after it, one {END}")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    readme.write_text(head + block + tail, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 100-test suite")
    parser.add_argument(
        "--only", default="", help="comma-separated sections: " + ",".join(SECTIONS)
    )
    parser.add_argument("--json", dest="json_path", type=Path, help="write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="P4 also counted in instructions under valgrind (a few minutes more)",
    )
    parser.add_argument(
        "--write-readme",
        action="store_true",
        help="write the table into README.md between its benchmark-table markers (every "
        "section, no --whatif; implies --instructions)",
    )
    parser.add_argument(
        "--whatif",
        default="",
        help="apply candidate optimisations from whatif.py first (comma-separated names, or "
        "'all'): to measure a change before making it",
    )
    args = parser.parse_args(argv)
    chosen = [s.strip().upper() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in chosen if s not in BENCHES]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    if args.write_readme and (args.whatif or sorted(chosen) != sorted(SECTIONS)):
        parser.error("--write-readme needs every section and no --whatif: it shows the code as is")
    cfg = settings(args.quick)
    # The README's table holds every row, the instruction counts too.
    cfg.instructions = args.instructions or args.write_readme
    if args.whatif:
        import whatif

        names = list(whatif.ALL) if args.whatif == "all" else args.whatif.split(",")
        WHATIF[:] = whatif.apply(names)
        say(f"what-if run: patched in this process and in our suite runs: {', '.join(WHATIF)}")
    root = Path(tempfile.mkdtemp(prefix="chatresp-bench-"))
    # The store's per-user key is made here, not in the user's own cache directory.
    os.environ["XDG_CACHE_HOME"] = str(root / "user-cache")
    PYCACHE[:] = [root / "pycache"]
    started = time.perf_counter()
    load_before = os.getloadavg()
    results = Results()
    try:
        files = make_files(root)
        say(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
            f"{' / '.join(f'{n:.1f}' for n in load_before)}, "
            f"{'quick' if cfg.quick else 'full'} run, files in {root}"
        )
        for count, path in files.sizes.items():
            say(
                f"  {path.name}: {count} exchanges, {path.stat().st_size:,} bytes, "
                f"sha256 {synth.digest(path)}"
            )
        say(f"  {files.stream.name}: {files.stream.stat().st_size:,} bytes")
        for name in chosen:
            say()
            BENCHES[name](files, cfg, results)
    finally:
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.perf_counter() - started
    machine = Machine(
        os.cpu_count(),
        load_before,
        os.getloadavg(),
        sys.version.split()[0],
        f"{platform.system().lower()} {platform.machine()}",
        cfg.quick,
        elapsed,
    )
    say()
    say(table(results))
    say(f"\n{tally(ordered(results))}; {elapsed:.0f} s in all")
    if args.json_path:
        payload = {
            "python": sys.version,
            "machine": asdict(machine),
            "quick": cfg.quick,
            "whatif": WHATIF,
            "seconds": elapsed,
            "table": [asdict(r) | {"target": r.target.text()} for r in ordered(results)],
            "sections": results.sections,
        }
        args.json_path.write_text(json.dumps(payload, indent=2) + "\n")
        say(f"wrote {args.json_path}")
    if args.write_readme:
        missing = [key for key in TARGETS if key not in {row.key for row in results.rows}]
        if missing:
            raise SystemExit(f"not writing the README: no figure for {missing}")
        write_readme(readme_block(results, machine))
        say(f"wrote the table into {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
