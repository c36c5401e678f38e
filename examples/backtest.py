"""The motivating workload: a 62-day daily backtest, run three ways.

Each calendar day from 2024-10-01 to 2024-12-01 the engine asks for that day's
bar (``[now, now]``) and the strategy for a 30-day lookback (``[now - 30 days,
now]``); at the end a chart asks for the whole period. The provider is
:class:`rangememo.testing.FakeProvider` with 50 ms of simulated latency.

    uncached        every call goes to the provider           125 calls
    joblib.Memory   caches exact arguments: no call repeats   125 calls
    rangememo       fetches only the days not yet covered,    <= 63 calls
                    and reads ahead of the march (default)    (5 measured)

All three must return identical frames for every call; the script exits with
status 1 if they do not (or if rangememo makes more than 63 calls).

Run it with ``make demo`` (or ``python examples/backtest.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pandas.testing as pdt

import rangememo
from rangememo import MemoryStore, range_cached
from rangememo.testing import FakeProvider

SYMBOL = "AAPL"
TIMEFRAME = "D"
FIRST, LAST = dt.datetime(2024, 10, 1), dt.datetime(2024, 12, 1)
LOOKBACK = dt.timedelta(days=30)
LATENCY = 0.05  # seconds per provider call
MAX_RANGEMEMO_CALLS = 63

GetBars = Callable[[str, dt.datetime, dt.datetime, str], Awaitable[pd.DataFrame]]


async def backtest(get_bars: GetBars) -> list[pd.DataFrame]:
    """The seed's access pattern: engine bar, strategy lookback, then one chart call."""
    results: list[pd.DataFrame] = []
    now = FIRST
    while now <= LAST:
        results.append(await get_bars(SYMBOL, now, now, TIMEFRAME))  # engine
        results.append(await get_bars(SYMBOL, now - LOOKBACK, now, TIMEFRAME))  # strategy
        now += dt.timedelta(days=1)
    results.append(await get_bars(SYMBOL, FIRST, LAST, TIMEFRAME))  # chart
    return results


@dataclass
class Run:
    name: str
    calls: int
    days: int
    rows: int
    wall: float
    results: list[pd.DataFrame]


def run(name: str, make: Callable[[FakeProvider], GetBars]) -> Run:
    provider = FakeProvider(latency=LATENCY)
    get_bars = make(provider)
    t0 = time.perf_counter()
    results = asyncio.run(backtest(get_bars))
    wall = time.perf_counter() - t0
    return Run(
        name,
        provider.call_count,
        provider.days_fetched(),
        provider.rows_returned,
        wall,
        results,
    )


# -- the three ways ----------------------------------------------------------------


def uncached(provider: FakeProvider) -> GetBars:
    return provider.get_bars


async def _fetch_bars(
    provider: FakeProvider, symbol: str, start: dt.datetime, end: dt.datetime, timeframe: str
) -> pd.DataFrame:
    return await provider.get_bars(symbol, start, end, timeframe)


def with_joblib(cachedir: Path) -> Callable[[FakeProvider], GetBars]:
    # joblib >= 1.5 memoizes ``async def`` functions itself (AsyncMemorizedFunc).
    # The provider object is not part of the cache key: ``ignore=["provider"]``.
    # Any: joblib's partial annotations do not know cache() returns an async function.
    memory: Any = joblib.Memory(cachedir, verbose=0)
    cached = memory.cache(_fetch_bars, ignore=["provider"])

    def make(provider: FakeProvider) -> GetBars:
        async def get_bars(
            symbol: str, start: dt.datetime, end: dt.datetime, timeframe: str
        ) -> pd.DataFrame:
            frame: pd.DataFrame = await cached(provider, symbol, start, end, timeframe)
            return frame

        return get_bars

    return make


def with_rangememo(store: Any) -> Callable[[FakeProvider], GetBars]:
    def make(provider: FakeProvider) -> GetBars:
        @range_cached(key=("symbol", "timeframe"), step="1D", store=store, namespace="demo.bars")
        async def get_bars(
            symbol: str, start: dt.datetime, end: dt.datetime, timeframe: str = "D"
        ) -> pd.DataFrame:
            return await provider.get_bars(symbol, start, end, timeframe)

        return get_bars

    return make


def rangememo_store(tmp: Path) -> tuple[str, rangememo.Store]:
    """A ParquetStore in a temporary directory if this build has one, else memory."""
    parquet_store = getattr(rangememo, "ParquetStore", None)
    if parquet_store is not None:
        return "ParquetStore", parquet_store(tmp / "rangememo")
    return "MemoryStore", MemoryStore()


# -- checking and reporting ------------------------------------------------------------


def mismatches(reference: Run, other: Run) -> list[str]:
    """Calls where ``other`` returned a different frame from ``reference``."""
    problems: list[str] = []
    if len(reference.results) != len(other.results):
        return [f"{other.name}: {len(other.results)} results, expected {len(reference.results)}"]
    for i, (want, got) in enumerate(zip(reference.results, other.results, strict=True)):
        try:
            pdt.assert_frame_equal(got, want, check_freq=False)
        except AssertionError as exc:
            first_line = str(exc).strip().splitlines()[0]
            problems.append(f"{other.name}: {describe(i)} differs from uncached: {first_line}")
    if len(problems) > 5:
        problems[5:] = [f"... and {len(problems) - 5} more calls"]
    return problems


def describe(i: int) -> str:
    """Which call of :func:`backtest` result ``i`` came from."""
    days = (LAST - FIRST).days + 1
    if i >= 2 * days:
        return "the chart call"
    day = FIRST + dt.timedelta(days=i // 2)
    return f"the {('engine', 'strategy')[i % 2]} call on {day:%Y-%m-%d}"


def table(runs: list[Run]) -> str:
    base = runs[0].wall
    lines = [
        "| variant | provider calls | calendar days fetched | rows fetched | wall | vs uncached |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.name} | {r.calls} | {r.days:,} | {r.rows:,} | {r.wall:.2f} s "
            f"| {r.wall / base:.2f}x |"
        )
    return "\n".join(lines)


def main() -> int:
    days = (LAST - FIRST).days + 1
    out = sys.stdout
    out.write(
        f"Backtest {SYMBOL} {TIMEFRAME} {FIRST:%Y-%m-%d} .. {LAST:%Y-%m-%d} ({days} days): "
        f"{2 * days + 1} get_bars calls, {LATENCY * 1000:.0f} ms provider latency\n\n"
    )
    with tempfile.TemporaryDirectory(prefix="rangememo-demo-") as tmpdir:
        tmp = Path(tmpdir)
        store_name, store = rangememo_store(tmp)
        runs = [
            run("uncached", uncached),
            run("joblib.Memory", with_joblib(tmp / "joblib")),
            run(f"rangememo ({store_name})", with_rangememo(store)),
        ]
        store.close()  # release files before the directory goes
    out.write(table(runs) + "\n\n")

    problems = mismatches(runs[0], runs[1]) + mismatches(runs[0], runs[2])
    if runs[2].calls > MAX_RANGEMEMO_CALLS:
        problems.append(f"rangememo made {runs[2].calls} calls, expected <= {MAX_RANGEMEMO_CALLS}")
    if problems:
        out.write("FAILED\n" + "\n".join(f"  {p}" for p in problems) + "\n")
        return 1
    out.write(f"OK: all three returned identical frames for all {len(runs[0].results)} calls.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
