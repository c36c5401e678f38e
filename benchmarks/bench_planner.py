"""The seed backtest against peers, and the planner's cost on fragmented ledgers.

Run: ``python benchmarks/bench_planner.py`` (``--quick`` for a short run).
Prints one markdown table; every row is measured in this run, on the seed's
62-day backtest (engine ``[now, now]``, strategy 30-day window, chart) with a
fake provider of 20 ms latency. Also writes ``benchmarks/results/planner.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from async_lru import alru_cache

from rangememo import MemoryStore, range_cached
from rangememo._core.ledger import Ledger
from rangememo._core.planner import plan_gaps
from rangememo.testing import FakeProvider

FIRST, LAST = dt.datetime(2024, 10, 1), dt.datetime(2024, 12, 1)
RESULTS = Path(__file__).parent / "results"
Fetch = Callable[[str, dt.datetime, dt.datetime, str], Awaitable[pd.DataFrame]]


async def backtest(get_bars: Fetch) -> list[pd.DataFrame]:
    """The seed workload; returns every frame so variants can be compared."""
    out, now = [], FIRST
    while now <= LAST:
        out.append(await get_bars("AAPL", now, now, "D"))
        out.append(await get_bars("AAPL", now - dt.timedelta(days=30), now, "D"))
        now += dt.timedelta(days=1)
    out.append(await get_bars("AAPL", FIRST, LAST, "D"))
    return out


def variants(provider: FakeProvider, tmp: str) -> dict[str, tuple[Fetch, Fetch | None]]:
    """name -> (the get_bars to run, an optional warm-up run before timing)."""

    async def raw(
        symbol: str, start: dt.datetime, end: dt.datetime, timeframe: str
    ) -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end, timeframe)

    def ranged(**options: Any) -> Fetch:
        return range_cached(  # type: ignore[return-value]
            key=("symbol", "timeframe"),
            step="1D",
            store=MemoryStore(),
            namespace=f"bench{len(options)}{sorted(options)}",
            **options,
        )(raw)

    prefetched = ranged()

    async def prefetch_first(symbol: str, start: dt.datetime, end: dt.datetime, tf: str) -> Any:
        await prefetched.prefetch("AAPL", FIRST - dt.timedelta(days=30), LAST, "D")  # type: ignore[attr-defined]
        return None

    return {
        "no cache": (raw, None),
        "async-lru (exact arguments)": (alru_cache(maxsize=None)(raw), None),
        "joblib.Memory (exact arguments)": (joblib.Memory(tmp, verbose=0).cache(raw), None),
        'rangememo default (readahead="auto")': (ranged(), None),
        "rangememo readahead=None": (ranged(readahead=None), None),
        'rangememo readahead="30D"': (ranged(readahead="30D"), None),
        # The calendar alone, where readahead is not possible (an API priced per row).
        'rangememo calendar="XNYS", readahead=None': (
            ranged(calendar="XNYS", readahead=None),
            None,
        ),
        "rangememo prefetch, then the backtest": (prefetched, prefetch_first),
    }


def exchange_holidays() -> list[pd.Timestamp]:
    """Weekdays the NYSE was closed in the backtest's span (Labor Day, Thanksgiving)."""
    import exchange_calendars

    start, end = FIRST - dt.timedelta(days=31), LAST
    sessions = exchange_calendars.get_calendar("XNYS").sessions_in_range(start, end)
    return list(pd.bdate_range(start, end).difference(sessions))


async def run_variants(latency: float) -> list[dict[str, Any]]:
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        # The fake exchange is closed when the real one is, so a calendar-aware
        # cache and the provider agree on every answer.
        provider = FakeProvider(latency=latency, holidays=exchange_holidays())
        for name, (fn, warm) in variants(provider, tmp).items():
            provider.reset()
            t0 = time.perf_counter()
            warm_calls = 0
            if warm is not None:
                await warm("AAPL", FIRST, LAST, "D")
                warm_calls = provider.call_count
            frames = await backtest(fn)
            wall = time.perf_counter() - t0
            if reference is None:
                reference = frames
            same = all(a.equals(b) for a, b in zip(reference, frames, strict=True))
            rows.append(
                {
                    "variant": name,
                    "calls": provider.call_count,
                    "calls_in_backtest": provider.call_count - warm_calls,
                    "rows": provider.rows_returned,
                    "wall_s": wall,
                    "identical": same,
                }
            )
    joblib_wall = next(r["wall_s"] for r in rows if r["variant"].startswith("joblib"))
    for r in rows:
        r["ratio_to_joblib"] = r["wall_s"] / joblib_wall
    return rows


def fragmented(k: int) -> Ledger:
    """A ledger of ``k`` disjoint covered pieces ``[10i, 10i + 5)``."""
    return Ledger.from_json({"covered": [[10 * i, 10 * i + 5] for i in range(k)]})


def time_us(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number * 1e6)
    return statistics.median(samples)


def planner_costs(k: int, number: int) -> dict[str, float]:
    ledger = fragmented(k)
    mid = 10 * (k // 2)
    return {
        "k": k,
        "covered_us": time_us(lambda: plan_gaps(mid, mid + 4, ledger), number),
        "one_gap_us": time_us(lambda: plan_gaps(mid, mid + 8, ledger), number),
    }


def blocks(symbol: str, start: int, end: int) -> pd.DataFrame:
    """A provider of one row per integer block, instant (the library's cost alone)."""
    index = pd.Index(range(start, end + 1), dtype="int64", name="block")
    return pd.DataFrame({"v": range(start, end + 1)}, index=index)


def fragmented_key(k: int) -> Callable[[str, int, int], pd.DataFrame]:
    """A cached ``blocks`` whose key holds ``k`` disjoint pieces ``[10i, 10i + 5)``.

    Built as a user builds one: ``k`` calls, each fetching its piece (rows, stamps
    and coverage all fragmented), through ``@range_cached`` on a ``MemoryStore``.
    """
    fn = range_cached(key="symbol", step=1, store=MemoryStore(), namespace=f"frag{k}")(blocks)
    for i in range(k):
        fn("X", 10 * i, 10 * i + 4)
    return fn


def end_to_end(k: int, covered_calls: int, gap_calls: int, repeat: int = 7) -> dict[str, float]:
    """Medians through the decorator on a key of ``k`` pieces: covered and one-gap requests.

    A covered request asks ``[10m, 10m + 3]`` inside one piece; a one-gap request
    asks ``[10i, 10i + 7]``, whose ``[10i + 5, 10i + 8)`` is fetched (each repeat
    on a fresh piece, so every one has exactly one gap and the key keeps ``k``).
    """
    if k < repeat * gap_calls:
        raise ValueError(f"k={k}: needs a fresh piece per one-gap call, {repeat * gap_calls}")
    t0 = time.perf_counter()
    fn = fragmented_key(k)
    build = time.perf_counter() - t0
    mid = 10 * (k // 2)
    covered = time_us(lambda: fn("X", mid, mid + 3), covered_calls, repeat)
    pieces = iter(range(k))
    one_gap = []
    for _ in range(repeat):
        i = [10 * next(pieces) for _ in range(gap_calls)]
        t0 = time.perf_counter()
        for a in i:
            fn("X", a, a + 7)
        one_gap.append((time.perf_counter() - t0) / gap_calls * 1e6)
    # The provider's own cost for one gap (3 rows), to show the library's part alone.
    provider = time_us(lambda: blocks("X", mid + 5, mid + 7), gap_calls * 10, repeat)
    return {
        "k": k,
        "build_s": build,
        "covered_us": covered,
        "one_gap_us": statistics.median(one_gap),
        "provider_us": provider,
    }


def end_to_end_rows(big: int, small: int, quick: bool) -> dict[str, Any]:
    """The two 10k-interval rows, with the same requests on a ``small`` key as reference."""
    calls = (200, 5) if quick else (2000, 20)
    at_big, at_small = end_to_end(big, *calls), end_to_end(small, *calls)
    return {
        "big": at_big,
        "small": at_small,
        "covered_ratio": at_big["covered_us"] / at_small["covered_us"],
        "one_gap_ratio": at_big["one_gap_us"] / at_small["one_gap_us"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run, 2 ms latency")
    args = parser.parse_args()
    latency = 0.002 if args.quick else 0.02
    rows = asyncio.run(run_variants(latency))
    costs = planner_costs(10_000, 200 if args.quick else 2000)
    e2e = end_to_end_rows(2_000 if args.quick else 10_000, 200, args.quick)
    print(f"Seed backtest, fake provider with {latency * 1000:.0f} ms latency\n")
    print(
        "| variant | provider calls | rows fetched | wall (s) | wall / joblib.Memory | identical |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        calls = (
            r["calls"]
            if r["calls"] == r["calls_in_backtest"]
            else (f"{r['calls']} ({r['calls_in_backtest']} in the backtest)")
        )
        print(
            f"| {r['variant']} | {calls} | {r['rows']} | {r['wall_s']:.2f} | "
            f"{r['ratio_to_joblib']:.2f} | {r['identical']} |"
        )
    print(
        f"\nPlanner with {costs['k']:,} fragmented covered intervals: "
        f"fully covered request {costs['covered_us']:.1f} µs (target ≤ 50), "
        f"one gap {costs['one_gap_us']:.1f} µs (target ≤ 200)"
    )
    big, small = e2e["big"], e2e["small"]
    print(
        f"\nEnd to end (@range_cached, MemoryStore, instant provider), a key of "
        f"{big['k']:,} disjoint covered intervals (built by {big['k']:,} calls in "
        f"{big['build_s']:.1f} s) against one of {small['k']}:\n"
    )
    print("| row | measured (µs, median) | same request, small key (µs) | ratio | target |")
    print("|---|---:|---:|---:|---|")
    print(
        f"| {big['k'] // 1000}k intervals covered request | {big['covered_us']:.1f} | "
        f"{small['covered_us']:.1f} | {e2e['covered_ratio']:.2f} | ≤ 50 µs |"
    )
    print(
        f"| {big['k'] // 1000}k intervals one-gap request | {big['one_gap_us']:.0f} | "
        f"{small['one_gap_us']:.0f} | {e2e['one_gap_ratio']:.2f} | ≤ 1,000 µs |"
    )
    print(
        f"\n(the provider's own time per gap: {big['provider_us']:.0f} µs; "
        "the rest of a one-gap request is fetching, merging and assembling rows, "
        "whatever the number of intervals)"
    )
    RESULTS.mkdir(exist_ok=True)
    out = {"rows": rows, "planner": costs, "end_to_end": e2e}
    (RESULTS / "planner.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
