"""Code run in other processes by tests/test_s3_multiprocess.py (against SeaweedFS).

Importable (spawned workers and Dask workers look functions up by module) and
runnable as a script (``python tests/s3_workers.py stall ...``) for the test
that SIGSTOPs a lease holder. Every provider call is one small JSON file in a
directory (``parquet_workers.recorded`` reads them back), so a test counts
calls across processes. The AWS_* variables reach the workers through the
environment they inherit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from parquet_workers import NAMESPACE, bars_function, day

from rangememo import ParquetStore, range_cached
from rangememo.testing import make_bars

#: Where the module-level ``get_bars`` records its provider calls (set per test).
CALLS_ENV = "S3_WORKERS_CALLS"


def record(calls: str, symbol: str, start: Any, end: Any) -> None:
    entry = {"pid": os.getpid(), "symbol": symbol, "start": str(start), "end": str(end)}
    (Path(calls) / f"{os.getpid()}-{uuid.uuid4().hex}.json").write_text(json.dumps(entry))


# readahead=None: the tests compare the days fetched with the days asked for.
@range_cached(key="symbol", step="1D", namespace="s3workers.sweep", readahead=None)
def get_bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Module level, so Dask pickles it by reference; its store is the default one:
    each worker's ``$RANGEMEMO_CACHE_DIR`` (an ``s3://`` URL in the test)."""
    record(os.environ[CALLS_ENV], symbol, start, end)
    time.sleep(0.05)
    return make_bars(symbol, start, end)


def on_barrier(
    url: str, calls: str, plan: list[tuple[str, int, int]], latency: float, barrier: Any
) -> None:
    """A spawned worker: open the store, wait for the others, request, check exactness."""
    bars = bars_function(url, calls, latency)
    barrier.wait(timeout=120)
    for symbol, first, last in plan:
        got = bars(symbol, day(first), day(last))
        pd.testing.assert_frame_equal(got, make_bars(symbol, day(first), day(last)))


def _stall(url: str, calls: str, flags: str, first: int, last: int) -> None:
    """``stall URL CALLS FLAGS FIRST LAST``: fetch AAA with a provider that says it is
    inside (``FLAGS/entered``) and waits for ``FLAGS/go``: the test SIGSTOPs it there,
    holding the key's lease (1 s). What it saw goes to ``FLAGS/done.json``."""
    entered, go = Path(flags) / "entered", Path(flags) / "go"

    # readahead=None: the tests compare the days fetched with the days asked for.
    @range_cached(
        key="symbol",
        step="1D",
        store=ParquetStore(url, lease=1.0),
        namespace=NAMESPACE,
        readahead=None,
    )
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        record(calls, symbol, start, end)
        entered.touch()
        while not go.exists():
            time.sleep(0.01)
        return make_bars(symbol, start, end)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = bars("AAA", day(first), day(last))
    pd.testing.assert_frame_equal(got, make_bars("AAA", day(first), day(last)))
    done = {"warnings": [str(w.message) for w in caught]}
    (Path(flags) / "done.json").write_text(json.dumps(done))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "stall":
        _stall(args[0], args[1], args[2], int(args[3]), int(args[4]))
    else:
        raise SystemExit(f"unknown command {command!r}")
