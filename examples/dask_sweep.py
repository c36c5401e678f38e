"""A parameter sweep on a Dask cluster over one shared cache: each day fetched once.

A moving-average crossover is evaluated for every symbol, 60-day window and
(fast, slow) pair of a grid: 3 symbols x 6 windows x 3 pairs = 54 tasks on a
4-worker ``LocalCluster``. Each task asks ``get_bars`` for its window plus the
slow average's warm-up, so neighbouring tasks overlap; the cache fetches only
days that no worker fetched before, and a worker that finds another one
fetching the same key waits for it instead of asking the provider twice.

The cache is the first argument (``s3://bucket/prefix``, credentials and
endpoint from the AWS_* variables, or a directory every worker sees), else
``$RANGEMEMO_CACHE_DIR``, else the default store. ``get_bars`` is defined in
``__main__``, so Dask ships it by value; its store travels as its URL and each
worker reopens it there.

The provider stands in for a metered data API: it writes one audit record per
request to ``$SWEEP_AUDIT_DIR`` (a temporary directory by default). At the end
the script checks that no day was requested twice across the workers and that
every answer equals the provider's own; it exits with status 1 if not.

    python examples/dask_sweep.py
    python examples/dask_sweep.py s3://bucket/prefix
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pandas as pd
from dask.distributed import Client, LocalCluster

from rangememo import range_cached
from rangememo.testing import make_bars

CACHE = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RANGEMEMO_CACHE_DIR")
AUDIT_ENV = "SWEEP_AUDIT_DIR"
SYMBOLS = ("AAPL", "MSFT", "NVDA")
FIRST = dt.datetime(2024, 1, 1)
WINDOWS = [FIRST + dt.timedelta(days=30 * i) for i in range(6)]  # 60 days each: overlapping
WINDOW = dt.timedelta(days=59)
PAIRS = [(5, 20), (10, 30), (20, 50)]
LATENCY = 0.05  # seconds per provider request


def vendor_bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The metered API: deterministic daily bars, one audit record per request."""
    audit = Path(os.environ[AUDIT_ENV])
    record = {"pid": os.getpid(), "symbol": symbol, "start": str(start), "end": str(end)}
    (audit / f"{os.getpid()}-{uuid.uuid4().hex}.json").write_text(json.dumps(record))
    time.sleep(LATENCY)
    return make_bars(symbol, start, end)


# readahead=None: the audit checks that the vendor was asked for exactly the days the
# sweep needs, each once (the default would also read ahead of each worker's march).
@range_cached(key="symbol", step="1D", store=CACHE, namespace="examples.dask_sweep", readahead=None)
def get_bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    return vendor_bars(symbol, start, end)


class Result(NamedTuple):
    symbol: str
    start: dt.datetime
    fast: int
    slow: int
    total_return: float
    exact: bool  # the cached frame equals the provider's


def run_strategy(symbol: str, start: dt.datetime, fast: int, slow: int) -> Result:
    """Long while the fast average is above the slow one; the window's total return."""
    warm_up = start - dt.timedelta(days=2 * slow)  # calendar days covering `slow` bars
    bars = get_bars(symbol, warm_up, start + WINDOW)
    exact = bars.equals(make_bars(symbol, warm_up, start + WINDOW))
    close = bars["close"]
    long = (close.rolling(fast).mean() > close.rolling(slow).mean()).shift(1, fill_value=False)
    daily = close.pct_change().fillna(0.0).where(long, 0.0)
    in_window = daily[daily.index >= pd.Timestamp(start)].to_numpy(dtype=float)
    return Result(symbol, start, fast, slow, float((1 + in_window).prod() - 1), exact)


def requested_days(audit: Path) -> Counter[tuple[str, pd.Timestamp]]:
    """How often each (symbol, day) was asked of the provider, over all workers."""
    seen: Counter[tuple[str, pd.Timestamp]] = Counter()
    for path in audit.glob("*.json"):
        rec = json.loads(path.read_text())
        days = pd.date_range(pd.Timestamp(rec["start"]), pd.Timestamp(rec["end"]), freq="D")
        seen.update((str(rec["symbol"]), d) for d in days)
    return seen


def sweep(client: Client) -> list[Result]:
    grid = [(s, w, f, sl) for s in SYMBOLS for w in WINDOWS for f, sl in PAIRS]
    columns = zip(*grid, strict=True)
    futures = client.map(run_strategy, *columns)  # pyright: ignore[reportUnknownMemberType]
    results: list[Result] = client.gather(futures)  # type: ignore[no-untyped-call]
    return results


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sweep-audit-") as tmp:
        audit = Path(os.environ.setdefault(AUDIT_ENV, tmp))  # the workers inherit it
        started = time.perf_counter()
        # distributed's constructors carry no annotations: mypy --strict would refuse them.
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=4, processes=True, threads_per_worker=1, dashboard_address=":0"
        )
        with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
            results = sweep(client)
        wall = time.perf_counter() - started
        seen = requested_days(audit)
        calls = len(list(audit.glob("*.json")))
    frame = pd.DataFrame(results)
    by_pair = frame.pivot_table("total_return", index="symbol", columns=["fast", "slow"])
    print("mean return per window, by (fast, slow):")
    print(by_pair.to_string(float_format="{:+.2%}".format))
    twice = sorted(k for k, n in seen.items() if n > 1)
    print(f"{len(results)} tasks on 4 workers in {wall:.1f} s: {calls} provider calls")
    if twice or not all(r.exact for r in results):
        print(f"FAILED: {len(twice)} days fetched twice, or a frame differed", file=sys.stderr)
        return 1
    print("OK: every day fetched at most once across the workers; every frame exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
