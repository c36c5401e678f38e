"""Scale benchmark: a daily universe of thousands of symbols, backtested inside its cache.

Issue "Fast at scale on one machine", item 1: a 5,000-symbol daily universe, 10
years cached, then a seed-style backtest inside the cached history (each day, a
1-day call and a 30-day lookback for 200 symbols; the sample rotates, so every
symbol comes round again every 25 days). Targets, per store at its defaults:

  provider calls during the backtest                              target 0
  peak RSS above the import baseline / the rows' in-memory size   target <= 2

``MemoryStore(maxsize=1024, maxbytes=None)`` (the old default) runs too, for
reference: it evicts every key before it comes round again.

Each store runs in its own interpreter, so its peak RSS (``ru_maxrss``) is its
own. Usage: ``python benchmarks/bench_scale.py [--quick] [--json PATH]``
(``--quick``: 300 symbols x 2 years). Prints a markdown table and writes JSON
(default ``benchmarks/results/scale.json``).
"""

from __future__ import annotations

# ``readahead=None`` on the cached functions below (but bench_core's seed variant):
# these measure each one-gap commit, a store's layout after many commits, and the
# seed's calls one day at a time, as recorded in docs/benchmarks.md; readahead (the
# default) would turn them into fewer, longer fetches. bench_readahead.py measures it.
import argparse
import concurrent.futures as cf
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandas.testing as pdt

from rangememo import CacheWarning, MemoryStore, ParquetStore, range_cached

RESULTS = Path(__file__).parent / "results"
TARGETS = {"calls": 0, "rss": 2.0}
FIRST = pd.Timestamp("2015-01-02")
LOOKBACK = pd.Timedelta("30D")
FULL = {"symbols": 5_000, "years": 10, "sample": 200, "days": 120}
QUICK = {"symbols": 300, "years": 2, "sample": 30, "days": 40}
#: name -> how the child process makes the store (``tmp``: a fresh directory).
STORES = {
    "MemoryStore()": lambda tmp: MemoryStore(),
    "ParquetStore(tmp, durable=False)": lambda tmp: ParquetStore(tmp / "cache", durable=False),
    "MemoryStore(maxsize=1024) (old default)": lambda tmp: MemoryStore(1024, maxbytes=None),
}


def daily_bars(sid: int, start: Any, end: Any) -> pd.DataFrame:
    """Business-day bars of symbol number ``sid``: a pure function of (sid, day), numpy only."""
    index = pd.bdate_range(pd.Timestamp(start).normalize(), pd.Timestamp(end), name="ts")
    day = (index.asi8 // 86_400_000_000_000).astype(np.float64)
    close = 50.0 + sid % 97 + 10.0 * np.sin(day / 37.0 + sid)
    spread = 0.5 + 0.25 * np.cos(day / 11.0 + sid)
    return pd.DataFrame(
        {
            "open": close - spread / 2,
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": (1_000 + (day.astype(np.int64) * (sid + 7)) % 100_000).astype(np.int64),
        },
        index=index,
    )


def _rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux: KiB; macOS: bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def run_store(name: str, symbols: int, years: int, sample: int, days: int) -> dict[str, Any]:
    """Prefetch the universe into the store ``name``, then backtest; in this process."""
    with tempfile.TemporaryDirectory(prefix="rangememo-scale-") as tmp:
        store = STORES[name](Path(tmp))
        baseline = _rss_bytes()
        calls = [0]
        rows_bytes = [0]

        @range_cached(
            readahead=None, key="sid", step="1D", store=store, settle=None, namespace="bench-scale"
        )
        def get_bars(sid: int, start: Any, end: Any) -> pd.DataFrame:
            calls[0] += 1
            frame = daily_bars(sid, start, end)
            if prefetching:  # the size of the rows the cache is to hold, measured fresh
                rows_bytes[0] += int(frame.memory_usage(deep=True).sum())
            return frame

        last = FIRST + pd.DateOffset(years=years) - pd.Timedelta("1D")
        prefetching = True
        t0 = time.perf_counter()
        for sid in range(symbols):
            get_bars.prefetch(sid, FIRST, last)
        prefetch_s = time.perf_counter() - t0
        prefetching = False
        after_prefetch = calls[0]

        trading = pd.bdate_range(FIRST, last)[-days:]
        stride = max(symbols // sample, 1)
        checked = 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CacheWarning)
            t0 = time.perf_counter()
            for d, now in enumerate(trading):
                for j in range(sample):
                    sid = (j * stride + d % stride) % symbols
                    today = get_bars(sid, now, now)
                    window = get_bars(sid, now - LOOKBACK, now)
                    if (d * sample + j) % 97 == 0:  # exact, against the uncached function
                        pdt.assert_frame_equal(today, daily_bars(sid, now, now), check_freq=False)
                        want = daily_bars(sid, now - LOOKBACK, now)
                        pdt.assert_frame_equal(window, want, check_freq=False)
                        checked += 1
            backtest_s = time.perf_counter() - t0
        peak = _rss_bytes()
        return {
            "store": name,
            "prefetch_calls": after_prefetch,
            "backtest_calls": calls[0] - after_prefetch,
            "backtest_lookups": 2 * sample * len(trading),
            "checked_exact": checked,
            "rows_bytes": rows_bytes[0],
            "rss_above_baseline": peak - baseline,
            "rss_ratio": (peak - baseline) / max(rows_bytes[0], 1),
            "prefetch_s": prefetch_s,
            "backtest_s": backtest_s,
            "warnings": sorted({str(w.message)[:160] for w in caught}),
        }


def run_child(name: str, sizes: dict[str, int]) -> dict[str, Any]:
    """:func:`run_store` in a fresh interpreter (its own peak RSS)."""
    cmd = [sys.executable, __file__, "--child", name, "--sizes", json.dumps(sizes)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_all(
    sizes: dict[str, int], stores: list[str] | None = None, parallel: int = 2
) -> dict[str, Any]:
    """Every store, ``parallel`` interpreters at a time (RSS is per process; the
    timings are indicative only, the targets are calls and RSS)."""
    names = stores if stores is not None else list(STORES)
    with cf.ThreadPoolExecutor(max(parallel, 1)) as pool:
        runs = list(pool.map(lambda name: run_child(name, sizes), names))
    return {"sizes": sizes, "parallel": parallel, "runs": runs}


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def markdown(results: dict[str, Any]) -> str:
    s = results["sizes"]
    lines = [
        f"{s['symbols']:,} symbols x {s['years']} years of daily bars; backtest of "
        f"{s['days']} days x {s['sample']} symbols (1-day call + 30-day lookback).",
        "",
        "| store | backtest provider calls | target | peak RSS above baseline | rows' size "
        "| ratio | target | prefetch | backtest | |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results["runs"]:
        reference = "old default" in r["store"]
        ok = r["backtest_calls"] == TARGETS["calls"] and r["rss_ratio"] <= TARGETS["rss"]
        lines.append(
            f"| {r['store']} | {r['backtest_calls']:,} | {TARGETS['calls']} "
            f"| {r['rss_above_baseline'] / 2**20:,.0f} MiB | {r['rows_bytes'] / 2**20:,.0f} MiB "
            f"| {r['rss_ratio']:.2f} | ≤ {TARGETS['rss']} | {r['prefetch_s']:.1f} s "
            f"| {r['backtest_s']:.1f} s | {'reference' if reference else _verdict(ok)} |"
        )
    for r in results["runs"]:
        for text in r["warnings"]:
            lines.append(f"\n{r['store']} warned: {text}...")
    return "\n".join(lines)


def environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "system": platform.system(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 symbols x 2 years")
    parser.add_argument("--json", type=Path, default=RESULTS / "scale.json", help="output file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help='JSON sizes, e.g. \'{"symbols": 30, "years": 1, ...}\'')
    args = parser.parse_args(argv)
    if args.child:  # one store, in this interpreter: the answer as one JSON line
        sys.stdout.write(json.dumps(run_store(args.child, **json.loads(args.sizes))) + "\n")
        return 0
    sizes = json.loads(args.sizes) if args.sizes else QUICK if args.quick else FULL
    results = run_all(sizes)
    results["quick"] = args.quick
    results["environment"] = environment()
    sys.stdout.write("## Scale benchmark" + (" (--quick)" if args.quick else "") + "\n\n")
    sys.stdout.write(markdown(results) + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(f"\nwrote {args.json}\n")
    failed = [
        r["store"]
        for r in results["runs"]
        if "old default" not in r["store"] and r["backtest_calls"] != TARGETS["calls"]
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
