"""Resource bounds of reading a large cassette (issue 7): ``python benchmarks/memory.py``.

Writes a ~50 MB cassette in vcrpy's YAML layout (many exchanges with long answers) to a
temporary directory, then reads it in fresh subprocesses, one measurement each:

- peak memory of ``load_cassette(path)``: the rise of ``ru_maxrss`` over the process's
  high-water mark just before the call (imports done, validators built), and separately the
  ``tracemalloc`` peak and what stays allocated while the ``Cassette`` is alive, each as a
  multiple of the file's size;
- the same for vcrpy's own ``deserialize`` of the file, as the baseline, and for the plugin's
  ``CassetteCache`` (without and with a store, as with and without pytest's cache);
- the plugin's replay path (``plugin_replay``): a ``Recorder`` entering and leaving vcrpy's
  cassette with a ``CassetteCache``'s documents, then the ``chat_completion`` fixture's read;
- how often the file is opened and read, in each: an audit hook counts ``open`` events on the
  file's path, and ``Path.read_bytes``/``read_text`` calls on it are counted too.

``--size-mb`` changes the size; ``--json PATH`` writes the results.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import synth  # noqa: E402  (benchmarks/ is not a package)

#: Bytes of YAML one exchange of ``_WORDS`` words of answer takes, roughly.
_WORDS = 3300
_BYTES_PER_EXCHANGE = 20_900


def _proc_status(key: str) -> int | None:
    """A ``/proc/self/status`` size (``VmRSS``, ``VmHWM``) in bytes; None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark to the current RSS (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _maxrss() -> int:
    """The process's high-water mark of resident memory, in bytes.

    ``VmHWM`` where there is one: ``ru_maxrss`` survives ``fork``+``exec`` on Linux, so a child
    started by a large parent would report the parent's size.
    """
    peak = _proc_status("VmHWM")
    if peak is not None:
        return peak
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage if sys.platform == "darwin" else usage * 1024


class _Reads:
    """Counts opens (audit events) and ``Path`` reads of one file."""

    def __init__(self, path: Path) -> None:
        self.target = os.path.realpath(path)
        self.opens = 0
        self.path_reads = 0

    def install(self) -> None:
        def hook(event: str, args: tuple[Any, ...]) -> None:
            if event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
                try:
                    if os.path.realpath(os.fsdecode(args[0])) == self.target:
                        self.opens += 1
                except (TypeError, ValueError):
                    pass

        sys.addaudithook(hook)
        reads = self
        original_bytes = Path.read_bytes
        original_text = Path.read_text

        def read_bytes(self: Path) -> bytes:
            if os.path.realpath(self) == reads.target:
                reads.path_reads += 1
            return original_bytes(self)

        def read_text(self: Path, *args: Any, **kwargs: Any) -> str:
            if os.path.realpath(self) == reads.target:
                reads.path_reads += 1
            return original_text(self, *args, **kwargs)

        Path.read_bytes = read_bytes  # type: ignore[method-assign]
        Path.read_text = read_text  # type: ignore[method-assign]


# --- the child: one measurement in a fresh process ------------------------------------------------


def _warm(small: Path) -> None:
    """Import what the measured call needs and build the validators, outside the measurement."""
    import vcr.serialize  # noqa: F401
    import yaml  # noqa: F401

    from pytest_chatresp.cassette import load_cassette

    load_cassette(small).completions  # noqa: B018


def _call(mode: str, path: Path, store: Path) -> Any:
    from pytest_chatresp.cassette import load_cassette
    from pytest_chatresp.cassette.cache import CassetteCache

    if mode == "load_cassette":
        cassette = load_cassette(path)
        return cassette, len(cassette.completions)
    if mode == "vcrpy":
        from vcr.serialize import deserialize
        from vcr.serializers import yamlserializer

        result = deserialize(path.read_text(encoding="utf-8"), yamlserializer)
        return result, len(result[0])
    if mode == "cache":
        cassette = CassetteCache(None).load(path)
        return cassette, len(cassette.completions)
    if mode == "cache_store_cold":
        cassette = CassetteCache(store).load(path)
        return cassette, len(cassette.completions)
    if mode == "plugin_replay":
        # What a marked test that also takes chat_completion does, without pytest's cache:
        # the Recorder replays through vcrpy (documents from the session's cache), then the
        # fixture validates the file from the same cache.
        from pytest_chatresp.recording import Recorder, RecordSettings

        cache = CassetteCache(None)
        recorder = Recorder(path, RecordSettings(mode="none"), cache.document)
        recorder.__enter__()
        try:
            completions = cache.load(path).completions
        finally:
            recorder.__exit__(None, None, None)
        return (cache, recorder), len(completions)
    raise ValueError(mode)


def child(mode: str, path: Path, small: Path, store: Path, traced: bool) -> dict[str, Any]:
    _warm(small)
    # A warm store was filled by another process (a previous session): read it like a cold one.
    mode_call = "cache_store_cold" if mode == "cache_store_warm" else mode
    reads = _Reads(path)
    reads.install()
    import gc

    gc.collect()
    # The rise is measured from the current RSS when the peak can be reset, else from the
    # high-water mark so far (an underestimate if the process once was larger).
    before = _proc_status("VmRSS") if _reset_peak() else None
    before = before if before is not None else _maxrss()
    if traced:
        import tracemalloc

        tracemalloc.start()
    start = time.perf_counter()
    result = _call(mode_call, path, store)
    elapsed = time.perf_counter() - start
    out: dict[str, Any] = {
        "mode": mode,
        "seconds": elapsed,
        "items": result[1],
        "opens": reads.opens,
        "path_reads": reads.path_reads,
    }
    if traced:
        import tracemalloc

        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out.update(traced_peak=peak, traced_retained=current)
    else:
        out.update(maxrss_before=before, maxrss_after=_maxrss())
    del result
    return out


# --- the parent -----------------------------------------------------------------------------------


def _run_child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=50.0, help="cassette size (default 50)")
    parser.add_argument("--json", dest="json_path", type=Path, help="write the results as JSON")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind = args.child[0]
        if kind == "generate":
            big, small, count = Path(args.child[1]), Path(args.child[2]), int(args.child[3])
            synth.write_cassette(big, synth.exchanges(count, seed=7, content_words=_WORDS))
            synth.write_cassette(small, synth.exchanges(3, seed=3))
            print(json.dumps({"bytes": big.stat().st_size}))
        elif kind == "fill":
            from pytest_chatresp.cassette.cache import CassetteCache

            CassetteCache(Path(args.child[1])).document(Path(args.child[2]))
            print(json.dumps({"filled": True}))
        else:
            mode, path, small, store, traced = args.child
            print(json.dumps(child(mode, Path(path), Path(small), Path(store), traced == "1")))
        return 0

    root = Path(tempfile.mkdtemp(prefix="chatresp-memory-"))
    # The store's per-user key is made here, not in the user's own cache directory.
    os.environ["XDG_CACHE_HOME"] = str(root / "user-cache")
    started = time.perf_counter()
    try:
        big = root / "big.yaml"
        small = root / "small.yaml"
        count = max(1, round(args.size_mb * 1e6 / _BYTES_PER_EXCHANGE))
        # Written by a child: this process stays small, so nothing it holds inflates a child's.
        size = int(_run_child(["generate", str(big), str(small), str(count)])["bytes"])
        print(
            f"cassette: {count} exchanges, {size / 1e6:.1f} MB "
            f"(written in {time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        results: dict[str, Any] = {"bytes": size, "exchanges": count, "runs": {}}
        modes = (
            "load_cassette",
            "vcrpy",
            "cache",
            "cache_store_cold",
            "cache_store_warm",
            "plugin_replay",
        )
        header = (
            f"{'read with':<18} {'seconds':>8} {'maxrss rise':>12} {'x file':>7} "
            f"{'traced peak':>12} {'x file':>7} {'retained':>9} {'x file':>7} "
            f"{'opens':>6} {'reads':>6}"
        )
        print(header)
        print("-" * len(header))
        for mode in modes:
            store = root / f"store-{mode}"
            measured = []
            try:
                for traced_flag in ("0", "1"):
                    shutil.rmtree(store, ignore_errors=True)
                    if mode == "cache_store_warm":
                        _run_child(["fill", str(store), str(big)])
                    child_args = [mode, str(big), str(small), str(store), traced_flag]
                    measured.append(_run_child(child_args))
            except RuntimeError as exc:  # an API this mode uses moved: say so, measure the rest
                print(f"{mode:<18} failed: {str(exc).splitlines()[0]}")
                results["runs"][mode] = {"error": str(exc)[-2000:]}
                continue
            finally:
                shutil.rmtree(store, ignore_errors=True)
            rss, traced = measured
            rise = rss["maxrss_after"] - rss["maxrss_before"]
            row = {
                "seconds": rss["seconds"],
                "maxrss_rise": rise,
                "maxrss_rise_x": rise / size,
                "traced_peak": traced["traced_peak"],
                "traced_peak_x": traced["traced_peak"] / size,
                "traced_retained": traced["traced_retained"],
                "traced_retained_x": traced["traced_retained"] / size,
                "opens": rss["opens"],
                "path_reads": rss["path_reads"],
                "items": rss["items"],
            }
            results["runs"][mode] = row
            print(
                f"{mode:<18} {row['seconds']:>8.2f} {rise / 1e6:>9.1f} MB "
                f"{row['maxrss_rise_x']:>7.2f}"
                f" {row['traced_peak'] / 1e6:>9.1f} MB {row['traced_peak_x']:>7.2f}"
                f" {row['traced_retained'] / 1e6:>6.1f} MB {row['traced_retained_x']:>7.2f}"
                f" {row['opens']:>6} {row['path_reads']:>6}",
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["seconds"] = time.perf_counter() - started
    print(f"{results['seconds']:.0f} s in all")
    if args.json_path:
        args.json_path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
