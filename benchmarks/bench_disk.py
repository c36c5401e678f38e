"""Disk benchmarks of the log-structured ParquetStore (issue 8, items 2-3), ratios in one run.

(a) universe  500 daily symbols, a year of history then many one-day commits: files per key
              (lock files counted, shared ones pro rata) <= 4; bytes / one pandas-written
              Parquet file per symbol <= 1.3
(b) growth    one key grown day by day (390 1-minute bars a day) to ~200k bars: per-append
              cost (provider excluded) end/start <= 1.2 (the grown key's next appends
              alternating with a new key's first ones), p99 <= 3x median; bytes after
              compact() / one pandas file <= 1.3
(c) live      500 symbols, each day adds one bar per symbol: ParquetStore miss overhead
              (provider excluded) / MemoryStore's <= 3; warm hit / MemoryStore's <= 1.5
(d) intervals a key with 10,000 disjoint covered intervals: open in a new process <= 50 ms;
              a one-gap request on it <= 5 ms

Usage: ``python benchmarks/bench_disk.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

# ``readahead=None`` on the cached functions below (but bench_core's seed variant):
# these measure each one-gap commit, a store's layout after many commits, and the
# seed's calls one day at a time, as recorded in docs/benchmarks.md; readahead (the
# default) would turn them into fewer, longer fetches. bench_readahead.py measures it.
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from rangememo import MemoryStore, ParquetStore, range_cached
from rangememo.testing import make_bars, make_blocks

RESULTS = Path(__file__).parent / "results"
TARGETS = {
    "files_per_key": 4.0,
    "universe_bytes": 1.3,
    "growth_end_start": 1.2,
    "growth_p99": 3.0,
    "growth_bytes": 1.3,
    "live_miss": 3.0,
    "live_hit": 1.5,
    "open_ms": 50.0,
    "gap_ms": 5.0,
}
DAY0 = pd.Timestamp("2023-01-02")


def _timed(provider: Callable[..., Any]) -> tuple[Callable[..., Any], list[float]]:
    """The provider, timed: ``spent[0]`` its seconds, ``spent[1]`` its calls."""
    spent: list[float] = [0.0, 0.0]

    def fn(*args: Any) -> Any:
        t = time.perf_counter()
        out = provider(*args)
        spent[0] += time.perf_counter() - t
        spent[1] += 1
        return out

    return fn, spent


def _key_files(root: Path) -> tuple[int, int, list[int]]:
    """(files in key dirs, lock + lease files, bytes per key dir)."""
    per_key, sizes = 0, []
    for kdir in root.glob("*/*"):
        if kdir.is_dir():
            files = [p for p in kdir.rglob("*") if p.is_file()]
            per_key += len(files)
            sizes.append(sum(p.stat().st_size for p in files))
    shared = sum(1 for p in root.glob(".l*/*") if p.is_file())
    return per_key, shared, sizes


def _pandas_bytes(frame: pd.DataFrame, tmp: Path) -> int:
    path = tmp / "one.parquet"
    frame.to_parquet(path)
    return path.stat().st_size


def bench_universe(
    symbols: int = 500, history: int = 250, commits: int = 60, durable: bool = True
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        store = ParquetStore(root, durable=durable)

        @range_cached(
            readahead=None,
            key="symbol",
            step="1D",
            store=store,
            namespace="bench.daily",
            settle=None,
        )
        def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            return make_bars(symbol, start, end, skip_weekends=False)

        names = [f"S{i:04d}" for i in range(symbols)]
        for name in names:
            bars(name, DAY0, DAY0 + pd.Timedelta(days=history - 1))
        for d in range(history, history + commits):
            for name in names:
                bars(name, DAY0, DAY0 + pd.Timedelta(days=d))
        per_key, shared, sizes = _key_files(root)
        last = DAY0 + pd.Timedelta(days=history + commits - 1)
        ref = _pandas_bytes(make_bars(names[0], DAY0, last, skip_weekends=False), Path(tmp))
        return {
            "symbols": symbols,
            "commits": commits + 1,
            "files_per_key": (per_key + shared) / symbols,
            "key_files": per_key / symbols,
            "universe_bytes": statistics.median(sizes) / ref,
        }


def bench_growth(days: int = 513, per_day: int = 390, durable: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        store = ParquetStore(root, durable=durable)
        fetch, spent = _timed(lambda s, a, b: make_bars(s, a, b, "1min", skip_weekends=False))

        def on(where: ParquetStore) -> Callable[[str, Any, Any], pd.DataFrame]:
            @range_cached(
                readahead=None,
                key="symbol",
                step="1min",
                store=where,
                namespace="bench.min",
                settle=None,
            )
            def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
                return fetch(symbol, start, end)

            return bars

        bars = on(store)
        # A second store (same file system, same options) for the new key below,
        # so that the grown key's files and bytes are counted alone.
        fresh = on(ParquetStore(Path(tmp) / "fresh", durable=durable))

        def append(fn: Callable[[str, Any, Any], pd.DataFrame], d: int) -> float:
            a = DAY0 + pd.Timedelta(days=d, hours=9, minutes=30)
            before, t = spent[0], time.perf_counter()
            fn("X", a, a + pd.Timedelta(minutes=per_day - 1))
            return time.perf_counter() - t - (spent[0] - before)

        costs = [append(bars, d) for d in range(days)]
        window = max(days // 10, 5)
        median = statistics.median(costs)
        p99 = sorted(costs)[int(len(costs) * 0.99)]
        drift = statistics.median(costs[-window:]) / statistics.median(costs[:window])
        # End against start in one stretch of time: the grown key's next appends
        # alternate with a new key's first ones. (Its own first appends, minutes
        # earlier, would put the machine's drift into the ratio: 0.8-1.5 in reruns.)
        ends, starts = [], []
        for d in range(window):
            ends.append(append(bars, days + d))
            starts.append(append(fresh, d))
        before = len(list(root.glob("*/*/seg-*.parquet")))
        store.compact()
        _, _, sizes = _key_files(root)
        everything = bars("X", DAY0, DAY0 + pd.Timedelta(days=days + window))
        ref = _pandas_bytes(everything, Path(tmp))
        return {
            "rows": (days + window) * per_day,
            "append_ms_median": median * 1e3,
            "growth_end_start": statistics.median(ends) / statistics.median(starts),
            "growth_end_start_unpaired": drift,
            "growth_p99": p99 / median,
            "growth_bytes": sizes[0] / ref,
            "files_before_compact": before,
        }


def bench_live(symbols: int = 500, days: int = 20, durable: bool = True) -> dict[str, Any]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        parquet = ParquetStore(Path(tmp), durable=durable)
        for label, store in (("memory", MemoryStore()), ("parquet", parquet)):
            fetch, spent = _timed(lambda s, a, b: make_bars(s, a, b, skip_weekends=False))

            @range_cached(
                readahead=None,
                key="symbol",
                step="1D",
                store=store,
                namespace="bench.live",
                settle=None,
            )
            def bars(symbol: str, start: Any, end: Any, fetch: Any = fetch) -> pd.DataFrame:
                return fetch(symbol, start, end)

            names = [f"S{i:04d}" for i in range(symbols)]
            for name in names:
                bars(name, DAY0, DAY0 + pd.Timedelta(days=29))
            misses, hits = [], []
            miss_calls = hit_calls = 0.0
            for d in range(30, 30 + days):
                end = DAY0 + pd.Timedelta(days=d)
                before, calls, t = spent[0], spent[1], time.perf_counter()
                for name in names:
                    bars(name, end - pd.Timedelta(days=29), end)
                misses.append((time.perf_counter() - t - (spent[0] - before)) / symbols)
                miss_calls += spent[1] - calls
                calls, t = spent[1], time.perf_counter()
                for name in names:
                    bars(name, end - pd.Timedelta(days=29), end)
                hits.append((time.perf_counter() - t) / symbols)
                hit_calls += spent[1] - calls
            out[f"{label}_miss_us"] = statistics.median(misses) * 1e6
            out[f"{label}_hit_us"] = statistics.median(hits) * 1e6
            # The mechanics the ratios rest on: one fetch per symbol per new day, none on a hit.
            out[f"{label}_miss_calls"] = miss_calls
            out[f"{label}_hit_calls"] = hit_calls
    out["live_miss"] = out["parquet_miss_us"] / out["memory_miss_us"]
    out["live_hit"] = out["parquet_hit_us"] / out["memory_hit_us"]
    return out


_OPEN = """
import sys, time
t0 = time.perf_counter()
from rangememo import ParquetStore, range_cached
from rangememo.testing import make_blocks
store = ParquetStore(sys.argv[1])
@range_cached(key="chain", step=1, store=store, namespace="bench.intervals", settle=None)
def blocks(chain, start, end):
    return make_blocks(chain, start, end)
store.get(blocks.cache.namespace, ("warm-up",))  # imports and hashing, not the key
t = time.perf_counter()
cov = store.get(blocks.cache.namespace, ("c",))
opened = time.perf_counter() - t
n = int(sys.argv[2])
t = time.perf_counter()
blocks("c", 10 * n + 1, 10 * n + 5)  # a one-gap request (a new interval)
gap = time.perf_counter() - t
print(opened * 1e3, gap * 1e3)
"""


def bench_intervals(intervals: int = 10_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = ParquetStore(Path(tmp), durable=False)

        @range_cached(
            readahead=None,
            key="chain",
            step=1,
            store=store,
            namespace="bench.intervals",
            settle=None,
        )
        def blocks(chain: str, start: int, end: int) -> pd.DataFrame:
            return make_blocks(chain, start, end)

        t = time.perf_counter()
        for i in range(intervals):
            blocks("c", 10 * i, 10 * i + 4)
        build = time.perf_counter() - t
        store.close()
        runs = []
        for _ in range(3):
            done = subprocess.run(
                [sys.executable, "-c", _OPEN, tmp, str(intervals)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append([float(x) for x in done.stdout.split()])
        return {
            "intervals": intervals,
            "build_s": build,
            "open_ms": statistics.median(r[0] for r in runs),
            "gap_ms": statistics.median(r[1] for r in runs),
        }


def run_all(quick: bool) -> dict[str, Any]:
    """Every benchmark; the fsync-bound ones also with ``durable=False`` (protocol CPU cost)."""
    if quick:
        return {
            "universe": bench_universe(symbols=20, history=60, commits=10, durable=False),
            "growth": bench_growth(days=40, per_day=390, durable=False),
            "live": bench_live(symbols=20, days=5, durable=False),
            "intervals": bench_intervals(intervals=300),
        }
    return {
        # Files and bytes do not depend on fsync: the 30,000 commits run without it.
        "universe": bench_universe(durable=False),
        "growth": bench_growth(),
        "growth (durable=False)": bench_growth(durable=False),
        "live": bench_live(days=5),
        "live (durable=False)": bench_live(days=10, durable=False),
        "intervals (2,000)": bench_intervals(intervals=2000),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = ["| benchmark | measure | value | target |", "|---|---|---|---|"]
    for title, group in results.items():
        for name, value in group.items():
            target = TARGETS.get(name)
            mark = "" if target is None else (" ok" if value <= target else " MISSED")
            shown = "" if target is None else f"{target}{mark}"
            lines.append(f"| {title} | {name} | {value:.3g} | {shown} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS / "disk.json")
    args = parser.parse_args(argv)
    results = run_all(args.quick)
    sys.stdout.write(markdown(results) + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
