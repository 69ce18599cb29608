"""pytest-chatresp performance benchmarks: ``python benchmarks/run.py [--quick] [--only P1,P3]``.

Every number is measured in this run, against a baseline measured in the same run, on
synthetic cassettes written to a temporary directory with vcrpy's own YAML serializer. Times
are medians of several repetitions (``time.perf_counter``); baseline and subject alternate
within each repetition so that drift in the machine's speed hits both. See
``benchmarks/README.md`` for what each number means. Nothing here asserts a timing: targets
are reported as met or not.

Sections (``--only`` takes their names, comma-separated):

- ``P1`` cold load: ``load_cassette`` vs vcrpy's ``deserialize`` of the same file.
- ``P2`` warm load: a fresh ``CassetteCache(store=...)`` whose store already holds the file.
- ``P3`` validation per response: ours vs pydantic ``model_validate_json`` and the ``openai`` SDK.
- ``P4`` a 500-test replay suite under our plugin vs under pytest-recording alone.
- ``P5`` start-up: import time and ``pytest --co`` on an empty directory, with and without us.
- ``S`` streaming: ``parse_sse`` + ``merge_chunks`` of a 500-chunk stream vs ``json.loads``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
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

SECTIONS = ("P1", "P2", "P3", "P4", "P5", "S")
PYTHON = sys.executable


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


def settings(quick: bool) -> Settings:
    if quick:
        return Settings(True, 3, 7, 100, 3, 3)
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


@dataclass
class Row:
    """One line of the final table."""

    name: str
    target: str
    ratio: float
    met: bool
    detail: str


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)

    def row(
        self,
        name: str,
        ratio: float,
        *,
        at_most: float | None = None,
        at_least: float | None = None,
        unit: str = "x",
        detail: str = "",
    ) -> None:
        if at_most is not None:
            target, met = f"<= {at_most:g}{unit}", ratio <= at_most
        else:
            assert at_least is not None
            target, met = f">= {at_least:g}{unit}", ratio >= at_least
        self.rows.append(Row(name, target, ratio, met, detail))


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
            f"  {count:>5} exchanges ({size / 1e6:.3f} MB): ours {median_ms(ours):8.2f} ms  "
            f"vcrpy {median_ms(theirs):8.2f} ms  ratio {ratio:.2f}x"
        )
        section[str(count)] = {
            "bytes": size,
            "ours_ms": ms(ours),
            "vcrpy_ms": ms(theirs),
            "ratio": ratio,
        }
        results.row(
            f"P1 cold load, {count} exchanges",
            ratio,
            at_most=1.1,
            detail=f"{median_ms(ours):.1f} vs {median_ms(theirs):.1f} ms",
        )
    results.sections["P1"] = section


# --- P2 warm load -------------------------------------------------------------------------------


def bench_p2(files: Files, cfg: Settings, results: Results) -> None:
    from pytest_chatresp.cassette.cache import CassetteCache

    say("P2 warm load: a fresh CassetteCache(store).load(path), the store already filled")
    path = files.sizes[1000]
    store = files.root / "store"
    shutil.rmtree(store, ignore_errors=True)
    CassetteCache(store).load(path)  # the "first session" fills the store
    kept = sorted(store.glob("*.json"))

    def fixture() -> object:  # what the chat_completions fixture and the report ask of it
        cassette = CassetteCache(store).load(path)
        cassette.completions  # noqa: B018
        return [e.kind for e in cassette.exchanges]

    ours, theirs = compare(
        lambda: CassetteCache(store).load(path), _vcr_deserialize(path), cfg.reps_large
    )
    used, theirs_used = compare(fixture, _vcr_deserialize(path), cfg.reps_large)
    documents = [_once(lambda: CassetteCache(store).document(path)) for _ in range(cfg.reps_large)]
    speedup = statistics.median(theirs) / statistics.median(ours)
    used_speedup = statistics.median(theirs_used) / statistics.median(used)
    say(
        f"  1000 exchanges: load {median_ms(ours):.2f} ms (the stored verdict)  "
        f"vcrpy {median_ms(theirs):.2f} ms  speed-up {speedup:.2f}x"
    )
    say(
        f"  load + .completions + every exchange's kind {median_ms(used):.2f} ms  "
        f"vcrpy {median_ms(theirs_used):.2f} ms  speed-up {used_speedup:.2f}x; "
        f"the stored document alone {median_ms(documents):.2f} ms"
    )
    results.sections["P2"] = {
        "store_files": [p.name for p in kept],
        "store_bytes": sum(p.stat().st_size for p in kept),
        "ours_ms": ms(ours),
        "ours_used_ms": ms(used),
        "document_only_ms": ms(documents),
        "vcrpy_ms": ms(theirs),
        "vcrpy_used_ms": ms(theirs_used),
        "speedup": speedup,
        "used_speedup": used_speedup,
    }
    results.row(
        "P2 warm load speed-up over vcrpy",
        speedup,
        at_least=30,
        detail=f"{median_ms(ours):.1f} vs {median_ms(theirs):.1f} ms",
    )
    results.row(
        "P2 warm load, completions and exchanges used",
        used_speedup,
        at_least=30,
        detail=f"{median_ms(used):.1f} vs {median_ms(theirs_used):.1f} ms",
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

    def ours() -> None:  # what the reader does with a response body
        for body in bodies:
            validate_completion_json(body)

    def ours_from_dict() -> None:  # strict mode, and the path that explains an invalid body
        for body in bodies:
            validate_completion(json.loads(body))

    def pydantic_json() -> None:
        for body in bodies:
            ChatCompletion.model_validate_json(body)

    def sdk() -> None:
        for body in bodies:
            sdk_model.model_validate(json.loads(body))

    def loads_only() -> None:
        for body in bodies:
            json.loads(body)

    def exchanges() -> None:
        for index, interaction in enumerate(interactions):
            build_exchange("bench.yaml", index, interaction)

    completions = [validate_completion(json.loads(b)) for b in bodies]
    requests = [json.loads(i["request"]["body"]) for i in interactions]
    contexts = [CheckContext("bench.yaml", n, r) for n, r in enumerate(requests)]

    def checks() -> None:
        for completion, context in zip(completions, contexts, strict=True):
            run_checks(completion, context, frozenset())

    reps = cfg.reps_large
    ours_t, json_t = compare(ours, pydantic_json, reps)
    _, sdk_t = compare(ours, sdk, reps, warmup=1)
    loads_t, build_t = compare(loads_only, exchanges, reps)
    checks_t, _ = compare(checks, loads_only, reps, warmup=0)
    dict_t, _ = compare(ours_from_dict, loads_only, reps, warmup=0)

    def per(samples: Sequence[float]) -> float:
        return statistics.median(samples) / count * 1e6

    vs_json = per(ours_t) / per(json_t)
    vs_sdk = per(ours_t) / per(sdk_t)
    say(f"  validate_completion_json(body) (the reader) {per(ours_t):7.2f} us")
    say(f"  validate_completion(json.loads(body))       {per(dict_t):7.2f} us  (strict path)")
    say(
        f"  ChatCompletion.model_validate_json(body)    {per(json_t):7.2f} us  ratio {vs_json:.2f}x"
    )
    say(f"  openai ChatCompletion.model_validate(loads) {per(sdk_t):7.2f} us  ratio {vs_sdk:.2f}x")
    say(f"  json.loads(body) alone                      {per(loads_t):7.2f} us")
    say(f"  run_checks(completion) alone                {per(checks_t):7.2f} us")
    say(
        f"  build_exchange(parsed interaction)          {per(build_t):7.2f} us  "
        f"(all of a cassette's per-exchange work after YAML)"
    )
    results.sections["P3"] = {
        "responses": count,
        "ours_us": per(ours_t),
        "ours_from_dict_us": per(dict_t),
        "model_validate_json_us": per(json_t),
        "sdk_model_validate_us": per(sdk_t),
        "json_loads_us": per(loads_t),
        "run_checks_us": per(checks_t),
        "build_exchange_us": per(build_t),
        "ratio_vs_model_validate_json": vs_json,
        "ratio_vs_sdk": vs_sdk,
    }
    results.row(
        "P3 validation vs model_validate_json",
        vs_json,
        at_most=1.5,
        detail=f"{per(ours_t):.1f} vs {per(json_t):.1f} us",
    )
    results.row(
        "P3 validation vs openai SDK",
        vs_sdk,
        at_most=1.0,
        detail=f"{per(ours_t):.1f} vs {per(sdk_t):.1f} us",
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

_THEIRS_TEST = """
@pytest.mark.vcr
def test_case_{index}(client):
    reply = client.chat.completions.create(model="gpt-4o-mini", messages={messages!r})
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content
    assert reply.id.startswith("chatcmpl-")
"""

_PER_MODULE = 50


def make_suite(root: Path, tests: int, flavour: str) -> Path:
    """A replay suite: one cassette per test, in ``cassettes/<module>/<test>.yaml``.

    That is both our default layout (below the rootdir) and pytest-recording's (beside the test
    module), since the modules sit at the rootdir.
    """
    suite = root / f"suite_{flavour}"
    shutil.rmtree(suite, ignore_errors=True)
    suite.mkdir(parents=True)
    (suite / "pytest.ini").write_text(_ini())
    (suite / "conftest.py").write_text(_CONFTEST.format(base_url=synth.SUITE_BASE_URL))
    template = _OURS_TEST if flavour == "chatresp" else _THEIRS_TEST
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


def bench_p4(files: Files, cfg: Settings, results: Results) -> None:
    tests = cfg.suite_tests
    say(f"P4 a {tests}-test replay suite through the openai SDK, each run in a subprocess")
    ours_dir = make_suite(files.root, tests, "chatresp")
    theirs_dir = make_suite(files.root, tests, "recording")
    ours_args = ["-q", "-p", "no:cacheprovider", "-p", "no:recording", *_whatif_args()]
    theirs_args = ["-q", "-p", "no:cacheprovider", "-p", "no:chatresp"]
    cached_args = ["-q", "-p", "no:recording", *_whatif_args()]
    ours_env = _whatif_env()
    # One unmeasured run each: writes the modules' bytecode, warms the OS file cache.
    warm = run_pytest(ours_dir, ours_args, env=ours_env)
    say(f"  ours (warm-up):             {_summary(warm.stdout)}")
    say(f"  pytest-recording (warm-up): {_summary(run_pytest(theirs_dir, theirs_args).stdout)}")
    ours: list[Run] = []
    theirs: list[Run] = []
    for rep in range(cfg.suite_reps):
        pair = [
            (ours_dir, ours_args, ours_env, ours),
            (theirs_dir, theirs_args, _env(), theirs),
        ]
        for cwd, args, env, into in pair if rep % 2 == 0 else reversed(pair):
            into.append(run_pytest(cwd, args, env=env))
    # Our plugin with pytest's cache: the first run fills the store, later runs read it.
    shutil.rmtree(ours_dir / ".pytest_cache", ignore_errors=True)
    filling = run_pytest(ours_dir, cached_args, env=ours_env)
    cached = [run_pytest(ours_dir, cached_args, env=ours_env) for _ in range(cfg.suite_reps)]
    ours_ms, theirs_ms, cached_ms = (median_ms(_wall(x)) for x in (ours, theirs, cached))
    ratio = ours_ms / theirs_ms
    cached_ratio = cached_ms / theirs_ms
    cpu_ratio = _cpu_ms(ours) / _cpu_ms(theirs)
    say(
        f"  ours, -p no:cacheprovider              wall {ours_ms:6.0f} ms  "
        f"cpu {_cpu_ms(ours):6.0f} ms  (walls {ms(_wall(ours))})"
    )
    say(
        f"  pytest-recording, -p no:cacheprovider  wall {theirs_ms:6.0f} ms  "
        f"cpu {_cpu_ms(theirs):6.0f} ms  (walls {ms(_wall(theirs))})"
    )
    say(
        f"  ratio {ratio:.3f}x wall, {cpu_ratio:.3f}x cpu; "
        f"{(ours_ms - theirs_ms) / tests:.2f} ms more per test"
    )
    say(
        f"  ours with the cache: filling the store {filling.wall * 1e3:.0f} ms, then "
        f"{cached_ms:.0f} ms (walls {ms(_wall(cached))}); ratio {cached_ratio:.3f}x"
    )
    results.sections["P4"] = {
        "tests": tests,
        "ours_ms": ms(_wall(ours)),
        "ours_cpu_ms": ms([r.cpu for r in ours]),
        "pytest_recording_ms": ms(_wall(theirs)),
        "pytest_recording_cpu_ms": ms([r.cpu for r in theirs]),
        "ours_cache_fill_ms": round(filling.wall * 1e3, 3),
        "ours_cached_ms": ms(_wall(cached)),
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "cached_ratio": cached_ratio,
    }
    results.row(
        f"P4 suite ({tests} tests) vs pytest-recording",
        ratio,
        at_most=1.0,
        detail=f"{ours_ms:.0f} vs {theirs_ms:.0f} ms wall; cpu ratio {cpu_ratio:.3f}",
    )
    results.row(
        f"P4 suite ({tests} tests), our cache on",
        cached_ratio,
        at_most=1.0,
        detail=f"{cached_ms:.0f} vs {theirs_ms:.0f} ms wall",
    )


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
    for rep in range(cfg.startup_reps):
        pair = [(with_args, with_runs), (without_args, without_runs)]
        for args, into in pair if rep % 2 == 0 else reversed(pair):
            into.append(run_pytest(empty, args, expect=5))
    with_t, without_t = _wall(with_runs), _wall(without_runs)
    added = median_ms(with_t) - median_ms(without_t)
    added_cpu = _cpu_ms(with_runs) - _cpu_ms(without_runs)
    say(
        f"  pytest --co -q on an empty dir: with us {median_ms(with_t):.1f} ms, "
        f"-p no:chatresp {median_ms(without_t):.1f} ms, added {added:.1f} ms wall, "
        f"{added_cpu:.1f} ms cpu"
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
    results.row(
        "P5 pytest --co start-up added",
        added,
        at_most=80,
        unit=" ms",
        detail=f"{median_ms(with_t):.0f} vs {median_ms(without_t):.0f} ms; cpu +{added_cpu:.0f} ms",
    )
    results.row(
        "P5 openai/vcr imported at plugin import",
        float(len(forbidden)),
        at_most=0,
        unit=" modules",
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
        "S stream merge vs json.loads",
        ratio,
        at_most=2,
        detail=f"{median_ms(ours_t):.2f} vs {median_ms(loads_t):.2f} ms",
    )


# --- main ---------------------------------------------------------------------------------------

BENCHES: dict[str, Callable[[Files, Settings, Results], None]] = {
    "P1": bench_p1,
    "P2": bench_p2,
    "P3": bench_p3,
    "P4": bench_p4,
    "P5": bench_p5,
    "S": bench_stream,
}


def table(results: Results) -> str:
    lines = [f"{'measure':<44} {'target':>11} {'measured':>10}  {'met':<4} raw"]
    lines.append("-" * len(lines[0]) + "-" * 20)
    for row in results.rows:
        lines.append(
            f"{row.name:<44} {row.target:>11} {row.ratio:>10.3f}  "
            f"{'yes' if row.met else 'NO':<4} {row.detail}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 100-test suite")
    parser.add_argument(
        "--only", default="", help="comma-separated sections: " + ",".join(SECTIONS)
    )
    parser.add_argument("--json", dest="json_path", type=Path, help="write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
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
    cfg = settings(args.quick)
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
    results = Results()
    try:
        files = make_files(root)
        say(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
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
    say()
    say(table(results))
    elapsed = time.perf_counter() - started
    say(
        f"\n{sum(r.met for r in results.rows)} of {len(results.rows)} targets met; "
        f"{elapsed:.0f} s in all"
    )
    if args.json_path:
        payload = {
            "python": sys.version,
            "cpus": os.cpu_count(),
            "quick": cfg.quick,
            "whatif": WHATIF,
            "seconds": elapsed,
            "table": [asdict(r) for r in results.rows],
            "sections": results.sections,
        }
        args.json_path.write_text(json.dumps(payload, indent=2) + "\n")
        say(f"wrote {args.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
