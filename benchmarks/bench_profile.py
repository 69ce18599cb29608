"""Where the time of the missed targets goes: ``python benchmarks/bench_profile.py [--quick]``.

Four parts (``--only`` takes their names):

- ``breakdown``: the per-exchange cost of ``build_exchange`` split into its parts (headers, the
  SSE sniff, JSON decoding, validation, contract checks, the rest), and the cost of the cyclic
  garbage collector while a whole cassette is built and parsed.
- ``cprofile``: the top functions (own time) of a cold ``load_cassette`` and a warm
  ``CassetteCache.load`` of the 1,000-exchange cassette.
- ``whatif``: ``run.py --quick --only P1,P2,P3`` once as the code is and once per candidate
  optimisation of ``whatif.py`` (the main ones alone, ``--every-candidate`` for all, then all
  together), each in a fresh process, so that each gain is measured against the same
  baseline. Quick runs: only moves larger than about 0.1x are signal.
- ``suite``: the replay suite of P4 (100 tests) with per-phase timings (fixture set-up, test
  call, collection) under our plugin, our plugin with all candidates, and pytest-recording.
  The whole-run time of "all candidates" includes the patches' own set-up (rebuilding the
  models): compare its phases, not its total.

Numbers are medians as in ``run.py``; ``--json PATH`` writes them.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (benchmarks/ is not a package)
import whatif  # noqa: E402

PARTS = ("breakdown", "cprofile", "whatif", "suite")


def _median_us(fn: Callable[[], object], count: int, reps: int) -> float:
    samples = []
    for _ in range(reps):
        gc.collect()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) / count * 1e6


def _get(owner: Any, name: str) -> Any:
    return getattr(owner, name)


# --- breakdown ------------------------------------------------------------------------------------


def breakdown(files: run.Files, reps: int) -> dict[str, Any]:
    from pytest_chatresp import cassette, errors
    from pytest_chatresp.cassette import exchange
    from pytest_chatresp.checks import CHECKS, CheckContext, run_checks
    from pytest_chatresp.models import validate_completion

    path = files.sizes[1000]
    document = cassette.read_document(path)
    whatif.check_equivalence(document)
    interactions = document["interactions"]
    count = len(interactions)
    headers = [(i["request"].get("headers"), i["response"].get("headers")) for i in interactions]
    bodies = [i["response"]["body"]["string"] for i in interactions]
    request_bodies = [i["request"]["body"] for i in interactions]
    documents = [json.loads(b) for b in bodies]
    completions = [validate_completion(d) for d in documents]
    contexts = [CheckContext("bench.yaml", n, json.loads(r)) for n, r in enumerate(request_bodies)]
    read_headers = _get(exchange, "_headers")
    looks_like_sse = _get(exchange, "_looks_like_sse")

    def all_headers() -> None:
        for request, response in headers:
            read_headers(request)
            read_headers(response)

    def build() -> None:
        for index, interaction in enumerate(interactions):
            cassette.build_exchange("bench.yaml", index, interaction)

    parts: dict[str, float] = {
        "_headers (request and response)": _median_us(all_headers, count, reps),
        "looks_like_sse(response body)": _median_us(
            lambda: [looks_like_sse(b) for b in bodies], count, reps
        ),
        "json.loads(response body)": _median_us(
            lambda: [json.loads(b) for b in bodies], count, reps
        ),
        "json.loads(request body)": _median_us(
            lambda: [json.loads(b) for b in request_bodies], count, reps
        ),
        "validate_completion(document)": _median_us(
            lambda: [validate_completion(d) for d in documents], count, reps
        ),
        "run_checks(completion)": _median_us(
            lambda: [run_checks(c, x, ()) for c, x in zip(completions, contexts, strict=True)],
            count,
            reps,
        ),
    }

    def each(check: Callable[[Any, Any], object]) -> Callable[[], object]:
        return lambda: [check(c, x) for c, x in zip(completions, contexts, strict=True)]

    checks = {name: _median_us(each(check), count, reps) for name, check in CHECKS.items()}
    total = _median_us(build, count, reps)
    parts["the rest of build_exchange"] = total - sum(parts.values())
    display = _median_us(lambda: [errors.display_path(path) for _ in range(100)], 100, reps)

    def whole(paused: bool) -> Callable[[], object]:
        def call() -> object:
            if paused:
                gc.disable()
            try:
                return cassette.cassette_from_document(path, document)
            finally:
                gc.enable()

        return call

    def load(paused: bool) -> Callable[[], object]:
        def call() -> object:
            if paused:
                gc.disable()
            try:
                return cassette.load_cassette(path)
            finally:
                gc.enable()

        return call

    gc_costs = {
        "cassette_from_document, gc on (ms)": _median_us(whole(False), 1000, reps),
        "cassette_from_document, gc paused (ms)": _median_us(whole(True), 1000, reps),
        "load_cassette, gc on (ms)": _median_us(load(False), 1000, reps),
        "load_cassette, gc paused (ms)": _median_us(load(True), 1000, reps),
        "read_document, gc on (ms)": _median_us(lambda: cassette.read_document(path), 1000, reps),
    }
    print(f"build_exchange per exchange, {count} parsed interactions (us):")
    for name, value in parts.items():
        print(f"  {name:<36} {value:7.2f}  ({value / total:5.1%})")
    print(f"  {'build_exchange in all':<36} {total:7.2f}")
    print("  contract checks, each: " + ", ".join(f"{k} {v:.2f}" for k, v in checks.items()))
    print(f"display_path(path): {display:.1f} us a call (called twice by every load_cassette)")
    print("the garbage collector, 1000-exchange cassette:")
    for name, value in gc_costs.items():
        print(f"  {name:<40} {value:8.1f}")
    return {
        "per_exchange_us": parts,
        "build_exchange_us": total,
        "checks_us": checks,
        "display_path_us": display,
        "gc_ms": gc_costs,
    }


# --- cProfile -------------------------------------------------------------------------------------


def profile(files: run.Files) -> dict[str, str]:
    from pytest_chatresp.cassette import load_cassette
    from pytest_chatresp.cassette.cache import CassetteCache

    path = files.sizes[1000]
    store = files.root / "profile-store"
    CassetteCache(store).load(path)
    out = {}
    calls: list[tuple[str, Callable[[], object]]] = [
        ("cold load_cassette", lambda: load_cassette(path)),
        ("warm CassetteCache(store).load", lambda: CassetteCache(store).load(path)),
    ]
    for name, call in calls:
        call()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            call()
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(14)
        lines = [line for line in text.getvalue().splitlines() if line.strip()]
        start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
        table = "\n".join(lines[start:])
        print(f"{name}, 3 calls under cProfile, by own time:")
        print(table)
        out[name] = table
    return out


# --- what-if matrix -------------------------------------------------------------------------------


#: The candidates measured alone by default (the others move these targets by less than the
#: noise of a quick run; ``--every-candidate`` measures them all).
_MAIN_CANDIDATES = ("gc", "display", "validator")


def whatif_matrix(quick: bool, root: Path, every: bool) -> dict[str, Any]:
    singles = [n for n in whatif.ALL if n != "format"] if every else list(_MAIN_CANDIDATES)
    configs = ["", *singles, "all"]  # format is replay only: the suite part measures it
    results: dict[str, Any] = {}
    for config in configs:
        out = root / f"whatif-{config or 'none'}.json"
        args = [sys.executable, str(HERE / "run.py"), "--only", "P1,P2,P3", "--json", str(out)]
        if quick:
            args.append("--quick")
        if config:
            args += ["--whatif", config]
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"  {config or 'as is'}: failed\n{proc.stderr[-2000:]}")
            continue
        table = json.loads(out.read_text())["table"]
        results[config or "as is"] = {row["name"]: row["ratio"] for row in table}
    names = list(next(iter(results.values())).keys()) if results else []
    short = {
        "P1 cold load, 1 exchanges": "P1 1",
        "P1 cold load, 100 exchanges": "P1 100",
        "P1 cold load, 1000 exchanges": "P1 1000",
        "P2 warm load speed-up over vcrpy": "P2 x",
        "P3 validation vs model_validate_json": "P3 json",
        "P3 validation vs openai SDK": "P3 SDK",
    }
    header = f"{'candidate':<12}" + "".join(f"{short.get(n, n):>10}" for n in names)
    print(header)
    print("-" * len(header))
    for config, row in results.items():
        print(f"{config:<12}" + "".join(f"{row.get(n, float('nan')):>10.3f}" for n in names))
    return results


# --- the suite, by phase -----------------------------------------------------------------------

_PHASES = """\
import json, os, time, collections
import pytest

_T = collections.Counter()
_N = collections.Counter()


def _add(key, start):
    _T[key] += time.perf_counter() - start
    _N[key] += 1


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    start = time.perf_counter()
    yield
    _add("fixture " + fixturedef.argname, start)


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session):
    start = time.perf_counter()
    yield
    _add("collection", start)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    start = time.perf_counter()
    yield
    _add("setup", start)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    start = time.perf_counter()
    yield
    _add("call", start)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    start = time.perf_counter()
    yield
    _add("teardown", start)


def pytest_unconfigure(config):
    with open(os.environ["CHATRESP_PHASES"], "w") as handle:
        json.dump({k: [v * 1e3, _N[k]] for k, v in _T.items()}, handle)
"""


def suite(files: run.Files, tests: int, reps: int) -> dict[str, Any]:
    ours_dir = run.make_suite(files.root, tests, "chatresp")
    theirs_dir = run.make_suite(files.root, tests, "recording")
    for directory in (ours_dir, theirs_dir):
        (directory / "chatresp_phases.py").write_text(_PHASES)
    ours_args = ["-q", "-p", "no:cacheprovider", "-p", "no:recording"]
    theirs_args = ["-q", "-p", "no:cacheprovider", "-p", "no:chatresp"]
    whatif_env = run._env()
    whatif_env["CHATRESP_WHATIF"] = "all"
    whatif_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(HERE), os.environ.get("PYTHONPATH")])
    )
    configs: dict[str, tuple[Path, list[str], dict[str, str]]] = {
        "ours": (ours_dir, ours_args, run._env()),
        "ours + all candidates": (ours_dir, [*ours_args, "-p", "whatif"], whatif_env),
        "pytest-recording": (theirs_dir, theirs_args, run._env()),
    }
    for cwd, args in ((ours_dir, ours_args), (theirs_dir, theirs_args)):
        run.run_pytest(cwd, args, env=run._env())  # warm-up: writes the bytecode
    phases: dict[str, Any] = {}
    for name, (cwd, args, env) in configs.items():
        target = files.root / f"phases-{len(phases)}.json"
        phase_env = {**env, "CHATRESP_PHASES": str(target)}
        run.run_pytest(cwd, [*args, "-p", "chatresp_phases"], env=phase_env)
        phases[name] = json.loads(target.read_text())
    walls: dict[str, list[run.Run]] = {name: [] for name in configs}
    for rep in range(reps):
        order = list(configs.items())
        for name, (cwd, args, env) in order if rep % 2 == 0 else reversed(order):
            walls[name].append(run.run_pytest(cwd, args, env=env))
    print(f"{tests}-test replay suite, per phase (ms, one run with a timing plugin):")
    keys = sorted({k for p in phases.values() for k in p}, key=lambda k: (k.startswith("fix"), k))
    print(f"  {'phase':<34}" + "".join(f"{n:>24}" for n in phases))
    for key in keys:
        cells = "".join(
            f"{phases[n][key][0]:>18.1f} ({phases[n][key][1]:>3})" if key in phases[n] else " " * 24
            for n in phases
        )
        print(f"  {key:<34}{cells}")
    print(f"whole runs, median of {reps} (ms):")
    base = statistics.median(r.wall for r in walls["pytest-recording"])
    for name, runs in walls.items():
        wall = statistics.median(r.wall for r in runs)
        cpu = statistics.median(r.cpu for r in runs)
        print(f"  {name:<24} wall {wall * 1e3:7.0f}  cpu {cpu * 1e3:7.0f}  ratio {wall / base:.3f}")
    return {
        "tests": tests,
        "phases_ms": phases,
        "wall_ms": {n: run.ms([r.wall for r in v]) for n, v in walls.items()},
        "cpu_ms": {n: run.ms([r.cpu for r in v]) for n, v in walls.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, fewer tests")
    parser.add_argument("--only", default="", help="comma-separated parts: " + ",".join(PARTS))
    parser.add_argument("--json", dest="json_path", type=Path, help="write the results as JSON")
    parser.add_argument(
        "--suite-tests", type=int, default=None, help="tests in the suite part (100)"
    )
    parser.add_argument(
        "--every-candidate",
        action="store_true",
        help="in the what-if part, measure every candidate alone (slower)",
    )
    args = parser.parse_args(argv)
    chosen = [p.strip() for p in args.only.split(",") if p.strip()] or list(PARTS)
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    root = Path(tempfile.mkdtemp(prefix="chatresp-profile-"))
    # The store's per-user key is made here, not in the user's own cache directory.
    os.environ["XDG_CACHE_HOME"] = str(root / "user-cache")
    run.PYCACHE[:] = [root / "pycache"]
    started = time.perf_counter()
    results: dict[str, Any] = {}
    try:
        files = run.make_files(root)
        for part in chosen:
            print(f"\n== {part}", flush=True)
            if part == "breakdown":
                results[part] = breakdown(files, 3 if args.quick else 7)
            elif part == "cprofile":
                results[part] = profile(files)
            elif part == "whatif":
                results[part] = whatif_matrix(args.quick, root, args.every_candidate)
            elif part == "suite":
                tests = args.suite_tests or 100
                results[part] = suite(files, tests, 3)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    if args.json_path:
        args.json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"wrote {args.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
