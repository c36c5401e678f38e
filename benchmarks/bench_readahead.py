"""Adaptive readahead (``readahead="auto"``, the default) against readahead off.

Run: ``python benchmarks/bench_readahead.py`` (``--quick`` for a short run).
Every workload runs twice, with default options and with ``readahead=None``,
against an instant fake provider (calls and rows are counted, not timed), and
every answer is compared with the uncached function's. Prints one markdown
table with each target and exits 1 if a target is missed; also writes
``benchmarks/results/readahead.json``.

Workloads:

* the seed backtest (each calendar day from 2024-10-01 to 2024-12-01 an engine
  call ``[now, now]`` and a strategy call ``[now - 30 days, now]``, then a chart);
* the same backwards (from 2024-12-01 down to 2024-10-01);
* random windows (1 to 60 days) at random places in 10 years;
* minute bars marching forward over a week (``[t - 1h, t]`` each minute);
* a GOOG-style SMA-crossover strategy over three years of NYSE sessions (engine
  bar and a 200-session lookback each session), whose trades must not change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from rangememo import MemoryStore, range_cached
from rangememo.testing import FakeProvider

RESULTS = Path(__file__).parent / "results"
DAY = dt.timedelta(days=1)
FIRST, LAST = dt.datetime(2024, 10, 1), dt.datetime(2024, 12, 1)
Get = Callable[[str, Any, Any, str], pd.DataFrame]


def cached(provider: FakeProvider, step: str, **options: Any) -> Get:
    """``provider.get_bars_sync`` behind ``@range_cached`` on a fresh MemoryStore."""

    def get_bars(symbol: str, start: Any, end: Any, timeframe: str) -> pd.DataFrame:
        return provider.get_bars_sync(symbol, start, end, timeframe)

    fn: Get = range_cached(key=("symbol", "timeframe"), step=step, store=MemoryStore(), **options)(
        get_bars
    )
    return fn


def measure(workload: Callable[[Get], list[Any]], step: str, **options: Any) -> dict[str, Any]:
    """Run ``workload`` uncached, with default options and with readahead off."""
    reference = FakeProvider()
    want = workload(reference.get_bars_sync)
    out: dict[str, Any] = {
        "requests": reference.call_count,
        "rows_uncached": reference.rows_returned,
    }
    for name, extra in (("auto", {}), ("off", {"readahead": None})):
        provider = FakeProvider()
        fn = cached(provider, step, **options, **extra)
        got = workload(fn)
        info = fn.cache_info()  # type: ignore[attr-defined]
        out[name] = {
            "calls": provider.call_count,
            "rows": provider.rows_returned,
            "days": provider.days_fetched(),
            "rows_ahead": info.rows_ahead,
            "rows_ahead_used": info.rows_ahead_used,
            "identical": _same(want, got),
        }
    return out


def _same(want: list[Any], got: list[Any]) -> bool:
    if len(want) != len(got):
        return False
    for a, b in zip(want, got, strict=True):
        if isinstance(a, pd.DataFrame):
            if not a.equals(b):
                return False
        elif a != b:
            return False
    return True


# -- workloads ------------------------------------------------------------------------


def seed(get: Get) -> list[Any]:
    out, now = [], FIRST
    while now <= LAST:
        out.append(get("AAPL", now, now, "D"))
        out.append(get("AAPL", now - 30 * DAY, now, "D"))
        now += DAY
    out.append(get("AAPL", FIRST, LAST, "D"))
    return out


def seed_backwards(get: Get) -> list[Any]:
    out, now = [], LAST
    while now >= FIRST:
        out.append(get("AAPL", now, now, "D"))
        out.append(get("AAPL", now - 30 * DAY, now, "D"))
        now -= DAY
    out.append(get("AAPL", FIRST - 30 * DAY, LAST, "D"))
    return out


def random_windows(n: int) -> Callable[[Get], list[Any]]:
    def run(get: Get) -> list[Any]:
        rng = random.Random(11)
        start = dt.datetime(2014, 1, 1)
        out = []
        for _ in range(n):
            lo = start + rng.randrange(0, 3650) * DAY
            out.append(get("AAPL", lo, lo + rng.randrange(0, 60) * DAY, "D"))
        return out

    return run


def minute_march(days: int) -> Callable[[Get], list[Any]]:
    def run(get: Get) -> list[Any]:
        t = dt.datetime(2024, 3, 4, 0, 0)  # a Monday
        end = t + days * DAY
        out = []
        while t < end:
            frame = get("BTC", t - dt.timedelta(hours=1), t, "1min")
            out.append(len(frame))  # keep the week's frames small in memory
            t += dt.timedelta(minutes=1)
        return out

    return run


def sessions(years: int) -> list[pd.Timestamp]:
    import exchange_calendars

    cal = exchange_calendars.get_calendar("XNYS")
    return list(cal.sessions_in_range("2021-01-04", f"{2021 + years - 1}-12-31"))


def goog_strategy(days: list[pd.Timestamp]) -> Callable[[Get], list[Any]]:
    """SMA(50) over SMA(200) crossover, long or flat: each session's bar and lookback."""

    def run(get: Get) -> list[Any]:
        trades: list[Any] = []
        long = False
        for i, day in enumerate(days):
            now = day.to_pydatetime()
            bar = get("GOOG", now, now, "D")
            first = days[max(0, i - 199)].to_pydatetime()
            history = get("GOOG", first - 300 * DAY if i < 199 else first, now, "D")
            close = history["close"]
            if len(close) < 200 or bar.empty:
                continue
            fast, slow = close.iloc[-50:].mean(), close.iloc[-200:].mean()
            if fast > slow and not long:
                trades.append(("buy", str(day.date()), round(float(bar["close"].iloc[-1]), 6)))
                long = True
            elif fast < slow and long:
                trades.append(("sell", str(day.date()), round(float(bar["close"].iloc[-1]), 6)))
                long = False
        return trades

    return run


# -- report ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    args = parser.parse_args(argv)
    quick = args.quick
    days = sessions(1 if quick else 3)
    results = {
        "seed": measure(seed, "1D"),
        "seed_backwards": measure(seed_backwards, "1D"),
        "random_windows": measure(random_windows(100 if quick else 400), "1D"),
        "minute_march": measure(minute_march(1 if quick else 7), "1min"),
        "goog": measure(goog_strategy(days), "1D"),
    }
    seed_days = (LAST - FIRST).days + 1 + 30  # 92: the lookback of the first day onwards
    checks = [
        ("seed", "calls", results["seed"]["auto"]["calls"], 5),
        ("seed", "calendar days fetched", results["seed"]["auto"]["days"], 2 * seed_days),
        ("seed backwards", "calls", results["seed_backwards"]["auto"]["calls"], 5),
        (
            "random windows",
            "rows / rows with readahead off",
            results["random_windows"]["auto"]["rows"] / results["random_windows"]["off"]["rows"],
            1.05,
        ),
        (
            "minute march",
            "calls / calls with readahead off",
            results["minute_march"]["auto"]["calls"] / results["minute_march"]["off"]["calls"],
            1 / 20,
        ),
        (
            "GOOG strategy",
            "calls / uncached requests",
            results["goog"]["auto"]["calls"] / results["goog"]["requests"],
            1 / 20,
        ),
    ]
    print("Adaptive readahead (default options) against readahead=None, instant provider\n")
    print(
        "| workload | requests | calls (auto) | calls (off) | rows (auto) | rows (off) "
        "| rows ahead / used | identical |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        a, o = r["auto"], r["off"]
        print(
            f"| {name} | {r['requests']} | {a['calls']} | {o['calls']} | {a['rows']} | "
            f"{o['rows']} | {a['rows_ahead']} / {a['rows_ahead_used']} | "
            f"{a['identical'] and o['identical']} |"
        )
    print("\n| target | measured | at most | ok |\n|---|---:|---:|---|")
    failed = [
        n for n, r in results.items() if not (r["auto"]["identical"] and r["off"]["identical"])
    ]
    for workload, what, value, limit in checks:
        ok = value <= limit
        if not ok:
            failed.append(f"{workload} {what}")
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        bound = f"{limit:.3f}" if isinstance(limit, float) else str(limit)
        print(f"| {workload}: {what} | {shown} | {bound} | {'ok' if ok else 'MISSED'} |")
    if not quick:  # a quick run (the test suite's) leaves the recorded numbers alone
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "readahead.json").write_text(json.dumps(results, indent=2))
    if failed:
        sys.stderr.write(f"readahead targets missed: {', '.join(failed)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
