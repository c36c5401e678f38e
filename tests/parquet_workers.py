"""Code run in other processes by the ParquetStore tests (spawned workers, killed writers).

Importable (``multiprocessing`` spawn workers look functions up by module) and
runnable as a script (``python tests/parquet_workers.py CMD ...``) for the
crash tests, which SIGKILL it at a crash point or at a random moment.
Every provider call is recorded as one small JSON file in a directory, so a
test can count calls across processes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from rangememo import ParquetStore, range_cached
from rangememo.testing import make_bars

NAMESPACE = "workers.bars"
DAY0 = dt.datetime(2024, 1, 1)


def day(n: int) -> dt.datetime:
    return DAY0 + dt.timedelta(days=n)


def bars_function(root: str, calls: str | None = None, latency: float = 0.0, **store: Any) -> Any:
    """A cached daily-bars function over ``ParquetStore(root)``, recording its calls."""

    # readahead=None: the tests compare the days fetched with the days asked for.
    @range_cached(
        key="symbol",
        step="1D",
        store=ParquetStore(root, **store),
        namespace=NAMESPACE,
        readahead=None,
    )
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        if calls is not None:
            record = {"pid": os.getpid(), "symbol": symbol, "start": str(start), "end": str(end)}
            path = Path(calls) / f"{os.getpid()}-{uuid.uuid4().hex}.json"
            path.write_text(json.dumps(record))
        if latency:
            time.sleep(latency)
        return make_bars(symbol, start, end)

    return bars


def async_bars_function(root: str, calls: str, latency: float = 0.0) -> Any:
    """:func:`bars_function` as an ``async def`` function."""

    # readahead=None: the tests compare the days fetched with the days asked for.
    @range_cached(
        key="symbol", step="1D", store=ParquetStore(root), namespace=NAMESPACE, readahead=None
    )
    async def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        record = {"pid": os.getpid(), "symbol": symbol, "start": str(start), "end": str(end)}
        (Path(calls) / f"{os.getpid()}-{uuid.uuid4().hex}.json").write_text(json.dumps(record))
        await asyncio.sleep(latency)
        return make_bars(symbol, start, end)

    return bars


def recorded(calls: str | Path) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """Every recorded call: ``(symbol, start, end)``."""
    out = []
    for path in sorted(Path(calls).glob("*.json")):
        data = json.loads(path.read_text())
        out.append((data["symbol"], pd.Timestamp(data["start"]), pd.Timestamp(data["end"])))
    return out


def request_all(root: str, calls: str, requests: list[tuple[str, int, int]], latency: float) -> int:
    """A spawned worker: make each request, check it is exact; how many rows it saw."""
    bars = bars_function(root, calls, latency)
    seen = 0
    for symbol, first, last in requests:
        got = bars(symbol, day(first), day(last))
        pd.testing.assert_frame_equal(got, make_bars(symbol, day(first), day(last)))
        seen += len(got)
    return seen


def gather_all(root: str, calls: str, requests: list[tuple[str, int, int]], latency: float) -> int:
    """A spawned worker: make the requests concurrently (one event loop), check them."""

    async def main() -> int:
        bars = async_bars_function(root, calls, latency)
        got = await asyncio.gather(*(bars(s, day(a), day(b)) for s, a, b in requests))
        for frame, (s, a, b) in zip(got, requests, strict=True):
            pd.testing.assert_frame_equal(frame, make_bars(s, day(a), day(b)))
        return sum(len(f) for f in got)

    return asyncio.run(main())


def hold_then_invalidate(root: str, held: Any, go: Any, first: int, last: int) -> None:
    """A spawned worker: hold AAA's lock until ``go``, then invalidate days and compact.

    Compaction runs with no grace, so the files the other process read from
    are deleted under it.
    """
    bars = bars_function(root, grace=0.0)
    store, namespace = bars.cache.store, bars.cache.namespace
    with store.lock(namespace, ("AAA",)):
        held.set()
        if not go.wait(60):
            raise TimeoutError("never told to go")
        bars.invalidate("AAA", start=day(first), end=day(last))
        store.compact(namespace, ("AAA",))


#: The script's stores take their writer lease's lifetime from here (an ``s3://`` root:
#: a killed writer's lease then expires within a second for the next reader).
LEASE_ENV = "PARQUET_WORKERS_LEASE"


def _cli_options() -> dict[str, Any]:
    lease = os.environ.get(LEASE_ENV)
    return {"lease": float(lease)} if lease else {}


def _write(root: str, spec: str, compact_at: int) -> None:
    """``write ROOT a:b,c:d COMPACT_AT``: request the ranges in order (crash tests)."""
    bars = bars_function(root, compact_at=compact_at, **_cli_options())
    for part in spec.split(","):
        first, last = (int(x) for x in part.split(":"))
        bars("AAA", day(first), day(last))


def _write_parts(root: str, spec: str) -> None:
    """``write-parts ROOT a:b,...``: as ``write``, one segment per range (no tail merge)."""
    import rangememo._stores.parquet.keywrite

    rangememo._stores.parquet.keywrite.plan_tail = lambda segs, *_: len(segs)  # type: ignore[assignment]
    _write(root, spec, 1000)


def _compact(root: str) -> None:
    """``compact ROOT``: merge every key's segments (crash tests)."""
    bars = bars_function(root, **_cli_options())
    bars.cache.store.compact()


def _churn(root: str, seed: int) -> None:
    """``churn ROOT SEED``: random overlapping requests until killed (random-kill loop)."""
    bars = bars_function(root, compact_at=4, grace=0.0)
    rng = random.Random(seed)
    while True:
        first = rng.randrange(0, 120)
        bars(rng.choice(["AAA", "BBB"]), day(first), day(first + rng.randrange(0, 10)))
        if rng.random() < 0.1:
            bars.invalidate("AAA", start=day(first), end=day(first + 3))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "write":
        _write(args[0], args[1], int(args[2]))
    elif command == "write-parts":
        _write_parts(args[0], args[1])
    elif command == "compact":
        _compact(args[0])
    elif command == "churn":
        _churn(args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown command {command!r}")
