"""Fragmented ledgers end to end: a key with K disjoint covered intervals.

``python benchmarks/bench_fragmented.py [--quick]``

Through ``@range_cached`` (the whole call, not the planner alone), on
MemoryStore and ParquetStore, with an instantaneous provider so only the
cache's own cost is timed:

* a covered request in the middle of the key (a hit);
* a one-gap request (one interval's hole is fetched; a fresh hole each time);
* ParquetStore only: a new process opening the key and answering a covered
  request (the ledger read from disk), minus the same process's cost on a key
  with one interval (interpreter start and imports cancel out).

Targets (issue 8): memory covered <= 50 us, one gap <= 1 ms at K = 10,000;
Parquet one gap <= 5 ms, open <= 50 ms at K = 10,000.
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

import numpy as np
import pandas as pd

from rangememo import MemoryStore, ParquetStore, Store, range_cached

HERE = Path(__file__).parent
NAMESPACE = "bench.fragmented"


def provider(key: str, lo: int, hi: int) -> pd.DataFrame:
    """One row per integer position in ``[lo, hi)``."""
    pos = np.arange(lo, hi, dtype=np.int64)
    return pd.DataFrame({"v": pos * 2}, index=pd.Index(pos, name="pos"))


def cached(store: Store) -> Callable[[str, int, int], pd.DataFrame]:
    fn = range_cached(
        readahead=None,
        key="key",
        start="lo",
        end="hi",
        step=1,
        closed="left",
        store=store,
        namespace=NAMESPACE,
    )(provider)
    return fn


def build(fn: Callable[[str, int, int], pd.DataFrame], key: str, k: int) -> None:
    """``k`` disjoint covered pieces ``[10 i, 10 i + 5)``."""
    for i in range(k):
        fn(key, 10 * i, 10 * i + 5)


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def time_calls(fn: Callable[[], object], number: int) -> float:
    samples = []
    for _ in range(number):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return median_us(samples)


def measure(store: Store, k: int, number: int) -> dict[str, float]:
    fn = cached(store)
    t0 = time.perf_counter()
    build(fn, "frag", k)
    build_s = time.perf_counter() - t0
    mid = 10 * (k // 2)
    covered = time_calls(lambda: fn("frag", mid, mid + 4), number)
    holes = iter(range(k // 4, k // 4 + number))

    def one_gap() -> object:
        i = next(holes)
        return fn("frag", 10 * i, 10 * i + 8)  # [10i+5, 10i+8) is the one gap

    gap = time_calls(one_gap, number)
    return {"k": k, "build_s": build_s, "covered_us": covered, "one_gap_us": gap}


_OPEN = """
import sys, time
t0 = time.perf_counter()
from rangememo import ParquetStore, range_cached
sys.path.insert(0, {here!r})
from bench_fragmented import cached
fn = cached(ParquetStore({path!r}))
t1 = time.perf_counter()
fn({key!r}, {lo}, {lo} + 4)
t2 = time.perf_counter()
print(t2 - t1)
"""


def open_ms(path: str, key: str, lo: int, repeat: int) -> float:
    code = _OPEN.format(here=str(HERE), path=path, key=key, lo=lo)
    samples = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
        samples.append(float(out.split()[-1]))
    return statistics.median(samples) * 1e3


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="K = 1,000, few repeats")
    parser.add_argument("--k", type=int, default=None, help="intervals (smoke tests)")
    parser.add_argument("--no-save", action="store_true", help="do not write results/")
    args = parser.parse_args(argv)
    k = args.k or (1_000 if args.quick else 10_000)
    number = min(k // 4, 50 if args.quick else 300)
    result: dict[str, Any] = {"k": k}
    result["memory"] = measure(MemoryStore(), k, number)
    with tempfile.TemporaryDirectory() as tmp:
        store = ParquetStore(tmp)
        result["parquet"] = measure(store, k, number)
        cached(store)("one", 0, 5)
        store.close()
        repeat = 1 if args.k else 3 if args.quick else 7
        frag = open_ms(tmp, "frag", 10 * (k // 2), repeat)
        one = open_ms(tmp, "one", 0, repeat)
        result["parquet"]["open_ms"] = frag - one
        result["parquet"]["open_one_ms"] = one
    m, p = result["memory"], result["parquet"]
    print(f"Fragmented key: {k:,} disjoint covered intervals, end to end\n")
    print("| store | build (s) | covered request | one-gap request | new-process open |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| MemoryStore | {m['build_s']:.1f} | {m['covered_us']:.1f} us (target 50) | "
        f"{m['one_gap_us'] / 1e3:.2f} ms (target 1) | - |"
    )
    print(
        f"| ParquetStore | {p['build_s']:.1f} | {p['covered_us']:.1f} us | "
        f"{p['one_gap_us'] / 1e3:.2f} ms (target 5) | {p['open_ms']:.1f} ms (target 50) |"
    )
    if not args.no_save:
        out = HERE / "results" / "fragmented.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
