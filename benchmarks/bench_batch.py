"""The seed backtest over many symbols at once (issue 10, batch=).

Each of 62 days the backtest asks for every symbol's current bar and a 30-day
lookback, all symbols in one call, then for the whole period (a chart):

* ``batched``: ``range_cached(batch="symbols", by="symbol")``, one call for
  all the symbols;                                  target: at most 63 provider calls
* ``per_symbol``: a per-symbol cached function called once per symbol (the
  calls of a step run concurrently, at most ``concurrency`` at once, as a
  polite client would), the answers joined as the batched call joins them;
* ``uncached``: the provider itself, for the exact answers both must equal.

The provider costs ``latency`` seconds a call whatever the member count (one
HTTP round trip). Reported: provider calls and wall time of each; the ratio
per-symbol / batched wall.

Usage: ``python benchmarks/bench_batch.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pandas.testing as pdt

from rangememo import MemoryStore, range_cached
from rangememo.testing import make_bars

RESULTS = Path(__file__).parent / "results"
FIRST = dt.datetime(2024, 10, 1)
MAX_CALLS = 63


class Provider:
    """A multi-symbol daily-bar API: one round trip per call, a ``symbol`` column."""

    def __init__(self, latency: float, history: dict[str, pd.DataFrame]) -> None:
        self.latency = latency
        self.history = history
        self.calls = 0

    async def get_bars(self, symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        self.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        return pd.concat([self.history[s].loc[start:end] for s in symbols])


def _history(symbols: list[str], days: int) -> dict[str, pd.DataFrame]:
    """Each symbol's bars over the whole workload, built once (a call slices them)."""
    lo, hi = FIRST - dt.timedelta(days=31), FIRST + dt.timedelta(days=days)
    return {s: make_bars(s, lo, hi).assign(symbol=s) for s in symbols}


Step = Callable[[list[str], Any, Any], Awaitable[pd.DataFrame]]


async def _backtest(get: Step, symbols: list[str], days: int) -> list[pd.DataFrame]:
    out = []
    for d in range(days):
        now = FIRST + dt.timedelta(days=d)
        out.append(await get(symbols, now, now))
        out.append(await get(symbols, now - dt.timedelta(days=30), now))
    out.append(await get(symbols, FIRST, FIRST + dt.timedelta(days=days - 1)))
    return out


def _variant(
    name: str, history: dict[str, pd.DataFrame], days: int, latency: float, conc: int
) -> dict[str, Any]:
    provider = Provider(latency, history)
    symbols = list(history)
    get: Step
    if name == "uncached":
        get = provider.get_bars
    elif name == "batched":
        get = range_cached(
            batch="symbols", by="symbol", step="1D", store=MemoryStore(), namespace="b"
        )(provider.get_bars)
    else:

        @range_cached(key="symbol", step="1D", store=MemoryStore(), namespace="s")
        async def one(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            return await provider.get_bars([symbol], start, end)

        sem = asyncio.Semaphore(conc)

        async def polite(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            async with sem:
                return await one(symbol, start, end)

        async def get(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
            parts = await asyncio.gather(*(polite(s, start, end) for s in symbols))
            return pd.concat(parts)

    t0 = time.perf_counter()
    frames = asyncio.run(_backtest(get, symbols, days))
    return {"wall_s": time.perf_counter() - t0, "calls": provider.calls, "frames": frames}


def bench_batch(
    symbols: int = 500, days: int = 62, latency: float = 0.02, concurrency: int = 8
) -> dict[str, Any]:
    history = _history([f"S{i:04d}" for i in range(symbols)], days)
    runs = {
        n: _variant(n, history, days, latency, concurrency)
        for n in ("uncached", "batched", "per_symbol")
    }
    for name in ("batched", "per_symbol"):
        for want, got in zip(runs["uncached"]["frames"], runs[name]["frames"], strict=True):
            # Rows in the caller's member order, then by time; the provider's own
            # frames are in that order already.
            pdt.assert_frame_equal(got, want, check_freq=False)
    return {
        "symbols": symbols,
        "days": days,
        "latency_s": latency,
        "concurrency": concurrency,
        "calls": {n: r["calls"] for n, r in runs.items()},
        "wall_s": {n: r["wall_s"] for n, r in runs.items()},
        "speedup": runs["per_symbol"]["wall_s"] / runs["batched"]["wall_s"],
        "max_calls": MAX_CALLS,
    }


FULL = {"symbols": 500, "days": 62, "latency": 0.005, "concurrency": 8}
QUICK = {"symbols": 100, "days": 62, "latency": 0.005, "concurrency": 8}


def markdown(r: dict[str, Any]) -> str:
    c, w = r["calls"], r["wall_s"]
    ok = "ok" if c["batched"] <= r["max_calls"] else "MISSED"
    return "\n".join(
        [
            f"seed backtest, {r['symbols']} symbols, {r['days']} days, "
            f"{r['latency_s'] * 1000:.0f} ms a call",
            "",
            "| variant | provider calls | wall |",
            "|---|---:|---:|",
            f"| uncached | {c['uncached']} | {w['uncached']:.2f} s |",
            f"| per-symbol cached (x{r['symbols']}, {r['concurrency']} at once) "
            f"| {c['per_symbol']} | {w['per_symbol']:.2f} s |",
            f'| batched (`batch="symbols"`) | {c["batched"]} (<= {r["max_calls"]}: {ok}) '
            f"| {w['batched']:.2f} s |",
            "",
            f"per-symbol / batched wall: {r['speedup']:.1f}x",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS / "batch.json")
    args = parser.parse_args(argv)
    result = bench_batch(**(QUICK if args.quick else FULL))
    result["python"] = platform.python_version()
    sys.stdout.write(markdown(result) + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["calls"]["batched"] <= MAX_CALLS else 1


if __name__ == "__main__":
    sys.exit(main())
