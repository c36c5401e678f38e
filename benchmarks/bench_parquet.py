"""ParquetStore benchmarks: the four targets of issue 3, measured side by side in one run.

(a) extend  one-gap (one-row) extensions of a minute-bar key holding 1e4 vs 1e6 rows,
            fsync on: per-extension cost at 1e6 / at 1e4                  target <= 3
            (for scale: rewriting one Parquet file per extension, the same ratio)
(b) window  a new process opens a 1e6-row key and reads a 30-row window: its time /
            ``pyarrow.parquet.read_table(filters=...)`` on one compacted file of the
            same data (same row groups), also in a new process             target <= 1.5
(c) seed    the 62-day seed workload (engine 1-day + strategy 30-day + chart) on a
            ParquetStore: provider calls (<= 63); a rerun in a new process: 0 calls
(d) memory  bytes the memory layer holds for a key read back from disk, measured in a
            new process (tracemalloc + Arrow's pool, after the answer is dropped), /
            ``DataFrame.memory_usage(deep=True)`` of the same rows            target <= 1.5

Usage: ``python benchmarks/bench_parquet.py [--quick] [--json PATH]``. Prints a markdown
table and writes the numbers as JSON (default ``benchmarks/results/parquet.json``).
"""

from __future__ import annotations

# ``readahead=None`` on the cached functions below (but bench_core's seed variant):
# these measure each one-gap commit, a store's layout after many commits, and the
# seed's calls one day at a time, as recorded in docs/benchmarks.md; readahead (the
# default) would turn them into fewer, longer fetches. bench_readahead.py measures it.
import argparse
import asyncio
import datetime as dt
import gc
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq

from rangememo import ParquetStore, range_cached
from rangememo._stores.parquet.segments import ROW_GROUP
from rangememo.testing import FakeProvider, make_bars

RESULTS = Path(__file__).parent / "results"
TARGETS = {"extend": 3.0, "window": 1.5, "seed_calls": 63, "memory": 1.5}
MINUTE = pd.Timedelta("1min")
ORIGIN = pd.Timestamp("2015-01-01")
NS = "bench.minute"


def minute_frame(rows: int) -> pd.DataFrame:
    return make_bars("BENCH", ORIGIN, ORIGIN + (rows - 1) * MINUTE, "1min", skip_weekends=False)


def slicing(frame: pd.DataFrame) -> Any:
    """A provider that costs next to nothing: a positional slice of a prebuilt frame."""
    index = frame.index

    def fetch(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        i, j = index.searchsorted(start, "left"), index.searchsorted(end, "right")
        return frame.iloc[i:j]

    return fetch


def child(code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a new interpreter; it prints one JSON object."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- (a) one-gap extensions ------------------------------------------------------------


def _extend(rows: int, extensions: int, root: Path) -> float:
    frame = minute_frame(rows + extensions)
    fn = range_cached(
        readahead=None, key="symbol", step="1min", store=ParquetStore(root), namespace=NS
    )(slicing(frame))
    fn("BENCH", frame.index[0], frame.index[rows - 1])  # one big fetch builds the key
    gc.collect()
    t0 = time.perf_counter()
    for t in frame.index[rows:]:
        fn("BENCH", t, t)
    per = (time.perf_counter() - t0) / extensions
    assert fn.cache_info().provider_calls == 1 + extensions
    pdt.assert_frame_equal(fn("BENCH", frame.index[0], frame.index[-1]), frame)
    return per


def _rewrite(rows: int, extensions: int, root: Path) -> float:
    """The naive store, for scale: read the key's one file, append, write it back."""
    frame = minute_frame(rows + extensions)
    path = root / "whole.parquet"
    pq.write_table(pa.Table.from_pandas(frame.iloc[:rows]), path)
    t0 = time.perf_counter()
    for k in range(rows, rows + extensions):
        old = pq.read_table(path).to_pandas()
        pq.write_table(pa.Table.from_pandas(pd.concat([old, frame.iloc[k : k + 1]])), path)
    return (time.perf_counter() - t0) / extensions


def bench_extend(
    sizes: tuple[int, int] = (10_000, 1_000_000), extensions: int = 300, rewrites: int = 10
) -> dict[str, Any]:
    """(a) Amortised cost of a one-gap extension (segment + ledger, fsync, compaction)."""
    per, naive = {}, {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="rangememo-bench-") as tmp:
            per[n] = _extend(n, extensions, Path(tmp))
            naive[n] = _rewrite(n, rewrites, Path(tmp))
    small, big = sizes
    return {
        "sizes": list(sizes),
        "extensions": extensions,
        "per_extension_ms": {str(n): per[n] * 1e3 for n in sizes},
        "rewrite_ms": {str(n): naive[n] * 1e3 for n in sizes},
        "ratio": per[big] / per[small],
        "rewrite_ratio": naive[big] / naive[small],
        "target": TARGETS["extend"],
    }


# -- (b) a small window in a new process --------------------------------------------------

WINDOW_CHILD = r"""
import json, sys, time
import pandas as pd, pyarrow.parquet as pq
import rangememo
root, mode, s, e = sys.argv[1], sys.argv[2], pd.Timestamp(sys.argv[3]), pd.Timestamp(sys.argv[4])
if mode == "rangememo":
    store = rangememo.ParquetStore(root)
    @rangememo.range_cached(key="symbol", step="1min", store=store, namespace="bench.minute")
    def get(symbol, start, end):
        raise AssertionError("the key is cached: no provider call expected")
    t0 = time.perf_counter()
    out = get("BENCH", s, e)
else:
    t0 = time.perf_counter()
    out = pq.read_table(root, filters=[("time", ">=", s), ("time", "<=", e)]).to_pandas()
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "rows": len(out), "first": str(out.index[0])}))
"""


def bench_window(rows: int = 1_000_000, window: int = 30, processes: int = 9) -> dict[str, Any]:
    """(b) New process, 30-row window of a big key vs a direct filtered read."""
    frame = minute_frame(rows)
    with tempfile.TemporaryDirectory(prefix="rangememo-bench-") as tmp:
        root = Path(tmp) / "store"
        store = ParquetStore(root)
        fn = range_cached(readahead=None, key="symbol", step="1min", store=store, namespace=NS)(
            slicing(frame)
        )
        fn("BENCH", frame.index[0], frame.index[-1])
        store.compact()
        baseline = Path(tmp) / "compacted.parquet"
        pq.write_table(pa.Table.from_pandas(frame), baseline, row_group_size=ROW_GROUP)
        rng = np.random.default_rng(0)
        times: dict[str, list[float]] = {"rangememo": [], "pyarrow": []}
        for k in rng.integers(0, rows - window, size=processes):
            s, e = frame.index[k], frame.index[k + window - 1]
            for mode, where in (("rangememo", root), ("pyarrow", baseline)):
                got = child(WINDOW_CHILD, str(where), mode, str(s), str(e))
                assert got["rows"] == window and pd.Timestamp(got["first"]) == s, got
                times[mode].append(got["seconds"])
    med = {mode: statistics.median(v) for mode, v in times.items()}
    return {
        "rows": rows,
        "window": window,
        "processes": processes,
        "ms": {mode: m * 1e3 for mode, m in med.items()},
        "ratio": med["rangememo"] / med["pyarrow"],
        "target": TARGETS["window"],
    }


# -- (c) the seed workload ----------------------------------------------------------------

SEED_CHILD = r"""
import asyncio, datetime as dt, json, sys
import rangememo
from rangememo.testing import FakeProvider
sys.path.insert(0, sys.argv[2])
from bench_parquet import seed_calls
provider = FakeProvider()
store = rangememo.ParquetStore(sys.argv[1])
@rangememo.range_cached(
    readahead=None, key=("symbol", "timeframe"), step="1D", store=store, namespace="bench.seed")
async def get_bars(symbol, start, end, timeframe="D"):
    return await provider.get_bars(symbol, start, end, timeframe)
frames = asyncio.run(seed_calls(get_bars, int(sys.argv[3])))
print(json.dumps({"calls": provider.call_count, "frames": len(frames)}))
"""


async def seed_calls(get_bars: Any, days: int) -> list[pd.DataFrame]:
    first = dt.datetime(2024, 10, 1)
    out = []
    for d in range(days):
        now = first + dt.timedelta(days=d)
        out.append(await get_bars("AAPL", now, now, "D"))
        out.append(await get_bars("AAPL", now - dt.timedelta(days=30), now, "D"))
    out.append(await get_bars("AAPL", first, first + dt.timedelta(days=days - 1), "D"))
    return out


def bench_seed(days: int = 62, latency: float = 0.0) -> dict[str, Any]:
    """(c) Provider calls of the seed workload on a ParquetStore, then in a new process."""
    provider = FakeProvider(latency=latency)
    with tempfile.TemporaryDirectory(prefix="rangememo-bench-") as tmp:

        @range_cached(
            readahead=None,
            key=("symbol", "timeframe"),
            step="1D",
            store=ParquetStore(tmp),
            namespace="bench.seed",
        )
        async def get_bars(symbol: str, start: Any, end: Any, timeframe: str = "D") -> Any:
            return await provider.get_bars(symbol, start, end, timeframe)

        t0 = time.perf_counter()
        frames = asyncio.run(seed_calls(get_bars, days))
        wall = time.perf_counter() - t0
        uncached = asyncio.run(seed_calls(FakeProvider().get_bars, days))
        for got, want in zip(frames, uncached, strict=True):
            pdt.assert_frame_equal(got, want)
        rerun = child(SEED_CHILD, tmp, str(Path(__file__).parent), str(days))
    return {
        "days": days,
        "calls": provider.call_count,
        "wall_s": wall,
        "rerun_calls": rerun["calls"],
        "target": TARGETS["seed_calls"],
    }


# -- (d) memory layer -----------------------------------------------------------------------

MEMORY_CHILD = r"""
import gc, json, sys, tracemalloc
import pandas as pd, pyarrow as pa
import rangememo
store = rangememo.ParquetStore(sys.argv[1])
@rangememo.range_cached(
    readahead=None, key="symbol", step="1min", store=store, namespace="bench.minute")
def get(symbol, start, end):
    raise AssertionError("the key is cached: no provider call expected")
gc.collect()
arrow = pa.total_allocated_bytes()  # numpy buffers are traced; Arrow's pool is not
tracemalloc.start()
out = get("BENCH", pd.Timestamp(sys.argv[2]), pd.Timestamp(sys.argv[3]))
rows, usage = len(out), int(out.memory_usage(deep=True).sum())
del out
gc.collect()
held = tracemalloc.get_traced_memory()[0] + pa.total_allocated_bytes() - arrow
entry = store.get("bench.minute@v0", ("BENCH",))
print(json.dumps({"rows": rows, "usage": usage, "traced": held, "accounted": entry.nbytes}))
"""


def bench_memory(rows: int = 100_000) -> dict[str, Any]:
    """(d) Bytes held for a key read back whole, vs the frame's own memory_usage."""
    frame = minute_frame(rows)
    usage = int(frame.memory_usage(deep=True).sum())
    with tempfile.TemporaryDirectory(prefix="rangememo-bench-") as tmp:
        store = ParquetStore(tmp)
        fn = range_cached(readahead=None, key="symbol", step="1min", store=store, namespace=NS)(
            slicing(frame)
        )
        fn("BENCH", frame.index[0], frame.index[-1])
        writer = store.get(f"{NS}@v0", ("BENCH",))
        assert writer is not None
        got = child(MEMORY_CHILD, tmp, str(frame.index[0]), str(frame.index[-1]))
    assert got["rows"] == rows
    return {
        "rows": rows,
        "memory_usage": usage,
        "writer_accounted": writer.nbytes,
        "reader_traced": got["traced"],
        "reader_accounted": got["accounted"],
        "ratio": got["traced"] / usage,
        "ratio_accounted": got["accounted"] / usage,
        "target": TARGETS["memory"],
    }


# -- running and reporting -------------------------------------------------------------------

FULL = {
    "extend": {"sizes": (10_000, 1_000_000), "extensions": 300, "rewrites": 10},
    "window": {"rows": 1_000_000, "window": 30, "processes": 9},
    "seed": {"days": 62},
    "memory": {"rows": 100_000},
}
QUICK = {
    "extend": {"sizes": (10_000, 1_000_000), "extensions": 64, "rewrites": 3},
    "window": {"rows": 1_000_000, "window": 30, "processes": 3},
    "seed": {"days": 62},
    "memory": {"rows": 100_000},
}


def run_all(sizes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "extend": bench_extend(**sizes["extend"]),
        "window": bench_window(**sizes["window"]),
        "seed": bench_seed(**sizes["seed"]),
        "memory": bench_memory(**sizes["memory"]),
    }


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def markdown(results: dict[str, Any]) -> str:
    ext, win, seed, mem = (results[k] for k in ("extend", "window", "seed", "memory"))
    small, big = ext["sizes"]
    per, naive = ext["per_extension_ms"], ext["rewrite_ms"]
    lines = [
        "| benchmark | measured | baseline | ratio | target | |",
        "|---|---:|---:|---:|---:|---|",
        f"| (a) one-gap extension, ParquetStore (fsync): {big:,} / {small:,} rows "
        f"| {per[str(big)]:.2f} ms | {per[str(small)]:.2f} ms | {ext['ratio']:.2f} "
        f"| ≤ {ext['target']} | {_verdict(ext['ratio'] <= ext['target'])} |",
        f"| (a') for scale: rewrite the whole file per extension, {big:,} / {small:,} rows "
        f"| {naive[str(big)]:.1f} ms | {naive[str(small)]:.1f} ms | {ext['rewrite_ratio']:.1f} "
        "| | |",
        f"| (b) new process, {win['window']} of {win['rows']:,} rows: rangememo / "
        f"filtered `pq.read_table` | {win['ms']['rangememo']:.1f} ms | "
        f"{win['ms']['pyarrow']:.1f} ms | {win['ratio']:.2f} | ≤ {win['target']} "
        f"| {_verdict(win['ratio'] <= win['target'])} |",
        f"| (c) seed workload, {seed['days']} days: provider calls; rerun in a new process "
        f"| {seed['calls']} calls; rerun {seed['rerun_calls']} | | | ≤ {seed['target']}; 0 "
        f"| {_verdict(seed['calls'] <= seed['target'] and seed['rerun_calls'] == 0)} |",
        f"| (d) memory layer, {mem['rows']:,} rows read back: held / `memory_usage(deep=True)` "
        f"| {mem['reader_traced'] / 2**20:.1f} MiB | {mem['memory_usage'] / 2**20:.1f} MiB "
        f"| {mem['ratio']:.2f} | ≤ {mem['target']} | {_verdict(mem['ratio'] <= mem['target'])} |",
        "",
        f"Seed workload wall (no latency): {seed['wall_s']:.2f} s. Memory the LRU accounts "
        f"for the key: {mem['ratio_accounted']:.2f} x (reader), "
        f"{mem['writer_accounted'] / mem['memory_usage']:.2f} x (writer).",
    ]
    return "\n".join(lines)


def environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "system": platform.system(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer extensions and processes")
    parser.add_argument("--json", type=Path, default=RESULTS / "parquet.json", help="output file")
    args = parser.parse_args(argv)
    results = run_all(QUICK if args.quick else FULL)
    results["quick"] = args.quick
    results["environment"] = environment()
    sys.stdout.write("## ParquetStore benchmarks" + (" (--quick)" if args.quick else "") + "\n\n")
    sys.stdout.write(markdown(results) + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(f"\nwrote {args.json}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
