"""Core benchmarks: the three targets of issue 2, measured side by side in one run.

(a) seed    the 62-day backtest (engine 1-day + strategy 30-day + chart) with 20 ms
            provider latency: rangememo wall / joblib.Memory wall       target <= 0.55
(b) hit     a warm 30-row window out of a 100,000-row minute-bar key:
            rangememo per call / ``df.loc[s:e].copy()`` per call         target <= 1.5
(c) extend  one-row extensions of a key holding 1e4 vs 1e6 rows (MemoryStore):
            per-extension cost at 1e6 / at 1e4                           target <= 2

And the hot-path rows of issue 8 (the warm hit above is held to 1.0 there):
(d) partial a one-gap partial hit (MemoryStore, a 100,000-row key, each call asks
            the last 30 bars, one of them new): overhead beyond the provider /
            ``df.loc[s:e].copy()`` of 30 rows                              target <= 3
(e) import  ``import rangememo`` / ``import pandas, pyarrow``, each timed inside
            a fresh interpreter, median of several                         target <= 1.1

Usage: ``python benchmarks/bench_core.py [--quick] [--json PATH]``. Prints a markdown
table and writes the numbers as JSON (default ``benchmarks/results/core.json``).
Every function takes its sizes as arguments, so tests can run it tiny.
"""

from __future__ import annotations

# ``readahead=None`` on the cached functions below (but bench_core's seed variant):
# these measure each one-gap commit, a store's layout after many commits, and the
# seed's calls one day at a time, as recorded in docs/benchmarks.md; readahead (the
# default) would turn them into fewer, longer fetches. bench_readahead.py measures it.
import argparse
import asyncio
import compileall
import datetime as dt
import gc
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pandas.testing as pdt

import rangememo
from rangememo import MemoryStore, range_cached
from rangememo.testing import FakeProvider, make_bars

RESULTS = Path(__file__).parent / "results"
TARGETS = {"seed": 0.55, "hit": 1.0, "extend": 2.0, "partial": 3.0, "import": 1.1}
MINUTE = pd.Timedelta("1min")
ORIGIN = pd.Timestamp("2015-01-01")

GetBars = Callable[[str, Any, Any, str], Awaitable[pd.DataFrame]]


@contextmanager
def no_gc() -> Iterator[None]:
    """Keep the collector out of timed loops (as ``timeit`` does)."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- (a) the seed workload -----------------------------------------------------------


async def _seed_calls(get_bars: GetBars, days: int) -> list[pd.DataFrame]:
    first = dt.datetime(2024, 10, 1)
    out = []
    for d in range(days):
        now = first + dt.timedelta(days=d)
        out.append(await get_bars("AAPL", now, now, "D"))
        out.append(await get_bars("AAPL", now - dt.timedelta(days=30), now, "D"))
    out.append(await get_bars("AAPL", first, first + dt.timedelta(days=days - 1), "D"))
    return out


async def _joblib_fetch(
    provider: FakeProvider, symbol: str, start: Any, end: Any, timeframe: str
) -> pd.DataFrame:
    return await provider.get_bars(symbol, start, end, timeframe)


def _seed_variant(name: str, latency: float, days: int, tmp: Path) -> dict[str, Any]:
    provider = FakeProvider(latency=latency)
    get_bars: GetBars
    if name == "uncached":
        get_bars = provider.get_bars
    elif name == "joblib":
        memory = joblib.Memory(tmp / "joblib", verbose=0)
        memo = memory.cache(_joblib_fetch, ignore=["provider"])

        async def get_bars(symbol: str, start: Any, end: Any, timeframe: str) -> pd.DataFrame:
            return await memo(provider, symbol, start, end, timeframe)
    else:

        @range_cached(key=("symbol", "timeframe"), step="1D", store=MemoryStore())
        async def get_bars(symbol: str, start: Any, end: Any, timeframe: str) -> pd.DataFrame:
            return await provider.get_bars(symbol, start, end, timeframe)

    t0 = time.perf_counter()
    frames = asyncio.run(_seed_calls(get_bars, days))
    wall = time.perf_counter() - t0
    return {"wall": wall, "calls": provider.call_count, "frames": frames}


def bench_seed(latency: float = 0.02, days: int = 62, repeats: int = 3) -> dict[str, Any]:
    """(a) Wall time of the seed workload: uncached, joblib.Memory (cold), rangememo (cold)."""
    walls: dict[str, list[float]] = {"uncached": [], "joblib": [], "rangememo": []}
    calls: dict[str, int] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="rangememo-bench-") as tmp:
            runs = {name: _seed_variant(name, latency, days, Path(tmp)) for name in walls}
        for name, r in runs.items():
            walls[name].append(r["wall"])
            calls[name] = r["calls"]
        for name in ("joblib", "rangememo"):
            for want, got in zip(runs["uncached"]["frames"], runs[name]["frames"], strict=True):
                pdt.assert_frame_equal(got, want)
    med = {name: statistics.median(w) for name, w in walls.items()}
    return {
        "latency_s": latency,
        "days": days,
        "repeats": repeats,
        "calls": calls,
        "wall_s": med,
        "ratio": med["rangememo"] / med["joblib"],
        "target": TARGETS["seed"],
    }


# -- (b) the warm hit --------------------------------------------------------------


def _minute_frame(rows: int) -> pd.DataFrame:
    end = ORIGIN + (rows - 1) * MINUTE
    return make_bars("BENCH", ORIGIN, end, "1min", skip_weekends=False)


def _slicing_provider(frame: pd.DataFrame) -> Callable[[Any, Any], pd.DataFrame]:
    """A provider that costs next to nothing: a positional slice of a prebuilt frame."""
    index = frame.index

    def fetch(start: Any, end: Any) -> pd.DataFrame:
        i, j = index.searchsorted(start, "left"), index.searchsorted(end, "right")
        return frame.iloc[i:j]

    return fetch


def _timed(fn: Callable[[], object], n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` calls."""
    with no_gc():
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n


async def _atimed(fn: Callable[[], Awaitable[object]], n: int) -> float:
    with no_gc():
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        return (time.perf_counter() - t0) / n


def _as_coroutine(fn: Callable[[], pd.DataFrame]) -> Callable[[], Awaitable[pd.DataFrame]]:
    """The baseline as a coroutine, so both sides pay the same ``await``."""

    async def call() -> pd.DataFrame:
        return fn()

    return call


def bench_hit(
    rows: int = 100_000, window: int = 30, calls: int = 2_000, repeats: int = 7
) -> dict[str, Any]:
    """(b) Per-call time of a warm, fully covered window vs slicing the frame directly."""
    frame = _minute_frame(rows)
    fetch = _slicing_provider(frame)
    rng = np.random.default_rng(0)
    starts = [ORIGIN + int(k) * MINUTE for k in rng.integers(0, rows - window, size=calls)]
    windows = [(s, s + (window - 1) * MINUTE) for s in starts]

    @range_cached(readahead=None, key="symbol", step="1min", store=MemoryStore())
    async def aget(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return fetch(start, end)

    @range_cached(readahead=None, key="symbol", step="1min", store=MemoryStore())
    def sget(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return fetch(start, end)

    def raw_calls() -> Callable[[], pd.DataFrame]:
        it = iter(windows)
        return lambda: frame.loc[slice(*next(it))].copy()

    def cached_calls(fn: Callable[..., Any]) -> Callable[[], Any]:
        it = iter(windows)
        return lambda: fn("BENCH", *next(it))

    async def measure() -> dict[str, list[float]]:
        first, last = frame.index[0], frame.index[-1]
        await aget("BENCH", first, last)  # warm: one fetch covers the key
        s, e = windows[0]
        pdt.assert_frame_equal(await aget("BENCH", s, e), frame.loc[s:e])
        times: dict[str, list[float]] = {"async": [], "raw": []}
        for _ in range(repeats):
            times["async"].append(await _atimed(cached_calls(aget), calls))
            times["raw"].append(await _atimed(_as_coroutine(raw_calls()), calls))
        return times

    times = asyncio.run(measure())
    sget("BENCH", frame.index[0], frame.index[-1])
    sync_times, raw_sync = [], []
    for _ in range(repeats):
        sync_times.append(_timed(cached_calls(sget), calls))
        raw_sync.append(_timed(raw_calls(), calls))
    info = aget.cache_info()
    med = {
        "async_us": statistics.median(times["async"]) * 1e6,
        "raw_async_us": statistics.median(times["raw"]) * 1e6,
        "sync_us": statistics.median(sync_times) * 1e6,
        "raw_sync_us": statistics.median(raw_sync) * 1e6,
    }
    return {
        "rows": rows,
        "window": window,
        "calls": calls,
        "repeats": repeats,
        **med,
        "provider_calls": info.provider_calls + sget.cache_info().provider_calls,
        "ratio": med["async_us"] / med["raw_async_us"],
        "ratio_sync": med["sync_us"] / med["raw_sync_us"],
        "target": TARGETS["hit"],
    }


# -- (c) extending a big key -------------------------------------------------------


def _extend_once(rows: int, extensions: int) -> float:
    """Seconds per one-row extension of a key already holding ``rows`` rows."""
    frame = _minute_frame(rows + extensions)
    fetch = _slicing_provider(frame)

    @range_cached(readahead=None, key="symbol", step="1min", store=MemoryStore())
    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return fetch(start, end)

    get("BENCH", frame.index[0], frame.index[rows - 1])  # one big fetch builds the key
    stamps = list(frame.index[rows:])
    with no_gc():
        t0 = time.perf_counter()
        for t in stamps:
            get("BENCH", t, t)
        per = (time.perf_counter() - t0) / extensions
    info = get.cache_info()
    assert info.provider_calls == 1 + extensions, info
    last = get("BENCH", frame.index[0], frame.index[-1])
    assert len(last) == rows + extensions
    return per


def bench_extend(
    sizes: tuple[int, int] = (10_000, 1_000_000), extensions: int = 2_000, repeats: int = 3
) -> dict[str, Any]:
    """(c) Amortised cost of one-row appends, small key vs big key (sync wrapper)."""
    small, big = sizes
    per: dict[int, list[float]] = {small: [], big: []}
    for _ in range(repeats):
        for n in sizes:
            per[n].append(_extend_once(n, extensions))
    med = {n: statistics.median(v) for n, v in per.items()}
    return {
        "sizes": list(sizes),
        "extensions": extensions,
        "repeats": repeats,
        "per_extension_us": {str(n): med[n] * 1e6 for n in sizes},
        "ratio": med[big] / med[small],
        "target": TARGETS["extend"],
    }


# -- (d) the one-gap partial hit ------------------------------------------------------


def bench_partial(
    rows: int = 100_000, window: int = 30, calls: int = 300, repeats: int = 5
) -> dict[str, Any]:
    """(d) The live-update path: each call asks the last ``window`` bars, one of them new.

    Per call, the time beyond the provider's own (timed inside it) against
    ``frame.loc[s:e].copy()`` of the same window; each repeat appends ``calls``
    new bars, the baseline timed right after, so both see the same machine.
    """
    frame = _minute_frame(rows + calls * repeats)
    index = frame.index
    spent = [0.0]

    def fetch(start: Any, end: Any) -> pd.DataFrame:
        t0 = time.perf_counter()
        i, j = index.searchsorted(start, "left"), index.searchsorted(end, "right")
        out = frame.iloc[i:j]
        spent[0] += time.perf_counter() - t0
        return out

    @range_cached(readahead=None, key="symbol", step="1min", store=MemoryStore())
    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return fetch(start, end)

    get("BENCH", index[0], index[rows - 1])  # one fetch builds the key
    span = (window - 1) * MINUTE
    over, base = [], []
    for r in range(repeats):
        stamps = list(index[rows + r * calls : rows + (r + 1) * calls])
        spent[0] = 0.0
        with no_gc():
            t0 = time.perf_counter()
            for t in stamps:
                get("BENCH", t - span, t)
            total = time.perf_counter() - t0
        over.append((total - spent[0]) / calls)
        base.append(_timed(_slice_copies(frame, [(t - span, t) for t in stamps]), calls))
    last = index[rows + calls * repeats - 1]
    pdt.assert_frame_equal(get("BENCH", last - span, last), frame.loc[last - span : last])
    info = get.cache_info()
    assert info.provider_calls == 1 + calls * repeats, info
    ratios = [o / b for o, b in zip(over, base, strict=True)]
    return {
        "rows": rows,
        "window": window,
        "calls": calls,
        "repeats": repeats,
        "overhead_us": statistics.median(over) * 1e6,
        "slice_copy_us": statistics.median(base) * 1e6,
        "provider_calls": info.provider_calls,
        "ratio": statistics.median(ratios),
        "target": TARGETS["partial"],
    }


def _slice_copies(frame: pd.DataFrame, windows: list[tuple[Any, Any]]) -> Callable[[], object]:
    """One ``frame.loc[s:e].copy()`` per call, through ``windows``."""
    it = iter(windows)
    return lambda: frame.loc[slice(*next(it))].copy()


# -- (e) import time -----------------------------------------------------------------

_IMPORT_TIMER = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def _import_seconds(modules: str) -> float:
    """Seconds ``import modules`` takes in a fresh interpreter (its startup excluded)."""
    code = _IMPORT_TIMER.format(modules)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_import(repeats: int = 9) -> dict[str, Any]:
    """(e) ``import rangememo`` against ``import pandas, pyarrow``, alternating, fresh each time."""
    # Byte-compile rangememo as pip does on install (pandas' and pyarrow's .pyc
    # files came with theirs): with PYTHONDONTWRITEBYTECODE set, an editable
    # checkout would otherwise be compiled from source on every import.
    compileall.compile_dir(Path(rangememo.__file__).parent, quiet=1)
    base, ours = [], []
    _import_seconds("rangememo")  # warm the file cache once
    for _ in range(repeats):
        base.append(_import_seconds("pandas, pyarrow"))
        ours.append(_import_seconds("rangememo"))
    ratios = [o / b for o, b in zip(ours, base, strict=True)]
    return {
        "repeats": repeats,
        "rangememo_ms": statistics.median(ours) * 1e3,
        "pandas_pyarrow_ms": statistics.median(base) * 1e3,
        "ratio": statistics.median(ratios),
        "target": TARGETS["import"],
    }


# -- running and reporting -----------------------------------------------------------

FULL = {
    "seed": {"latency": 0.02, "days": 62, "repeats": 3},
    "hit": {"rows": 100_000, "window": 30, "calls": 2_000, "repeats": 7},
    "extend": {"sizes": (10_000, 1_000_000), "extensions": 2_000, "repeats": 3},
    "partial": {"rows": 100_000, "window": 30, "calls": 300, "repeats": 7},
    "import": {"repeats": 9},
}
QUICK = {
    "seed": {"latency": 0.02, "days": 62, "repeats": 1},
    "hit": {"rows": 100_000, "window": 30, "calls": 300, "repeats": 3},
    "extend": {"sizes": (10_000, 1_000_000), "extensions": 300, "repeats": 1},
    "partial": {"rows": 100_000, "window": 30, "calls": 100, "repeats": 3},
    "import": {"repeats": 5},
}


def run_all(sizes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "seed": bench_seed(**sizes["seed"]),
        "hit": bench_hit(**sizes["hit"]),
        "extend": bench_extend(**sizes["extend"]),
        "partial": bench_partial(**sizes["partial"]),
        "import": bench_import(**sizes["import"]),
    }


def _verdict(ratio: float, target: float) -> str:
    return "ok" if ratio <= target else "MISSED"


def markdown(results: dict[str, Any]) -> str:
    seed, hit, ext = results["seed"], results["hit"], results["extend"]
    part, imp = results["partial"], results["import"]
    w = seed["wall_s"]
    small, big = ext["sizes"]
    per = ext["per_extension_us"]
    rows = [
        (
            f"(a) seed workload, {seed['days']} days, {seed['latency_s'] * 1000:.0f} ms latency: "
            "rangememo / joblib.Memory wall",
            f"{w['rangememo']:.2f} s ({seed['calls']['rangememo']} calls)",
            f"{w['joblib']:.2f} s ({seed['calls']['joblib']} calls)",
            seed["ratio"],
            seed["target"],
        ),
        (
            f"(b) warm hit, {hit['window']} of {hit['rows']:,} rows, async: "
            "rangememo / `df.loc[s:e].copy()`",
            f"{hit['async_us']:.1f} µs",
            f"{hit['raw_async_us']:.1f} µs",
            hit["ratio"],
            hit["target"],
        ),
        (
            "(b') the same through the sync wrapper",
            f"{hit['sync_us']:.1f} µs",
            f"{hit['raw_sync_us']:.1f} µs",
            hit["ratio_sync"],
            hit["target"],
        ),
        (
            f"(c) one-row extension, MemoryStore: {big:,} / {small:,} rows",
            f"{per[str(big)]:.1f} µs",
            f"{per[str(small)]:.1f} µs",
            ext["ratio"],
            ext["target"],
        ),
        (
            f"(d) partial hit one gap, {part['rows']:,}-row key, last {part['window']} bars: "
            f"overhead / {part['window']}-row slice copy",
            f"{part['overhead_us']:.1f} µs",
            f"{part['slice_copy_us']:.1f} µs",
            part["ratio"],
            part["target"],
        ),
        (
            "(e) `import rangememo` / `import pandas, pyarrow` (fresh interpreters)",
            f"{imp['rangememo_ms']:.0f} ms",
            f"{imp['pandas_pyarrow_ms']:.0f} ms",
            imp["ratio"],
            imp["target"],
        ),
    ]
    lines = [
        "| benchmark | measured | baseline | ratio | target | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, got, base, ratio, target in rows:
        lines.append(
            f"| {name} | {got} | {base} | {ratio:.2f} | ≤ {target} | {_verdict(ratio, target)} |"
        )
    lines.append("")
    lines.append(
        f"Uncached seed workload: {w['uncached']:.2f} s ({seed['calls']['uncached']} calls)."
    )
    return "\n".join(lines)


def environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "machine": platform.machine(),
        "system": platform.system(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    parser.add_argument("--json", type=Path, default=RESULTS / "core.json", help="output file")
    args = parser.parse_args(argv)
    results = run_all(QUICK if args.quick else FULL)
    results["quick"] = args.quick
    results["environment"] = environment()
    sys.stdout.write("## Core benchmarks" + (" (--quick)" if args.quick else "") + "\n\n")
    sys.stdout.write(markdown(results) + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(f"\nwrote {args.json}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
