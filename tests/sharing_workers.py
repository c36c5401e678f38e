"""Code run in other processes by tests/test_sharing_adversarial.py.

Importable (spawned workers look functions up by module) and runnable as a
script (``python tests/sharing_workers.py hold ROOT STATE``) for the tests that
SIGKILL a writer. Every provider call is one small JSON file in ``STATE/calls``;
the provider's answer is ``make_bars`` shifted by the integer in
``STATE/version`` (0 when absent), so a test can tell a refetch after a revision
from stale rows.
"""

from __future__ import annotations

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

NAMESPACE = "sharing.bars"
DAY0 = dt.datetime(2024, 1, 1)


def day(n: int) -> dt.datetime:
    return DAY0 + dt.timedelta(days=n)


def version_of(state: str | Path) -> int:
    path = Path(state) / "version"
    return int(path.read_text()) if path.exists() else 0


def expected(symbol: str, first: int, last: int, version: int = 0) -> pd.DataFrame:
    frame = make_bars(symbol, day(first), day(last))
    if version:
        frame["close"] = frame["close"] + 1000.0 * version
    return frame


def record(state: str | Path, symbol: str, start: Any, end: Any) -> None:
    calls = Path(state) / "calls"
    entry = {"pid": os.getpid(), "symbol": symbol, "start": str(start), "end": str(end)}
    (calls / f"{os.getpid()}-{uuid.uuid4().hex}.json").write_text(json.dumps(entry))


def recorded(state: str | Path) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    out = []
    for path in sorted((Path(state) / "calls").glob("*.json")):
        data = json.loads(path.read_text())
        out.append((data["symbol"], pd.Timestamp(data["start"]), pd.Timestamp(data["end"])))
    return out


def bars_function(
    root: str, state: str, latency: float = 0.0, hold: bool = False, **store: Any
) -> Any:
    """A cached daily-bars function over ``ParquetStore(root, **store)``.

    ``hold``: the provider touches ``STATE/entered`` and then sleeps for good
    (a test kills the process there, holding the key's lock or lease).
    """

    @range_cached(
        key="symbol",
        step="1D",
        store=ParquetStore(root, **store),
        namespace=NAMESPACE,
        readahead=None,
    )
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        record(state, symbol, start, end)
        version = version_of(state)
        if hold:
            (Path(state) / "entered").touch()
            time.sleep(3600)
        if latency:
            time.sleep(latency)
        frame = make_bars(symbol, start, end)
        if version:
            frame["close"] = frame["close"] + 1000.0 * version
        return frame

    return bars


def _options(options: dict[str, Any] | None) -> dict[str, Any]:
    return dict(options or {})


def overlap_writer(
    root: str,
    state: str,
    plan: list[tuple[str, int, int]],
    latency: float,
    barrier: Any,
    options: dict[str, Any] | None = None,
) -> None:
    """Wait for the others, then make each request; each answer must be exact."""
    bars = bars_function(root, state, latency, **_options(options))
    if barrier is not None:
        barrier.wait(timeout=120)
    for symbol, first, last in plan:
        got = bars(symbol, day(first), day(last))
        pd.testing.assert_frame_equal(got, expected(symbol, first, last))


def read_loop(
    root: str, state: str, seconds: float, seed: int, options: dict[str, Any] | None = None
) -> None:
    """Random reads of AAA (days 0-89) for ``seconds``; each answer must be exact."""
    bars = bars_function(root, state, **_options(options))
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        first = rng.randrange(0, 80)
        last = first + rng.randrange(0, 10)
        got = bars("AAA", day(first), day(last))
        pd.testing.assert_frame_equal(got, expected("AAA", first, last))


def forget_loop(
    root: str, state: str, seconds: float, seed: int, options: dict[str, Any] | None = None
) -> None:
    """Invalidate, refresh and compact random ranges of AAA for ``seconds``."""
    bars = bars_function(root, state, **_options(options))
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        first = rng.randrange(0, 80)
        last = first + rng.randrange(0, 10)
        what = rng.random()
        if what < 0.45:
            bars.invalidate("AAA", start=day(first), end=day(last))
        elif what < 0.9:
            got = bars.refresh("AAA", day(first), day(last))
            pd.testing.assert_frame_equal(got, expected("AAA", first, last))
        else:
            bars.cache.store.compact()


def write_loop(
    root: str, state: str, rounds: int, symbols: list[str], options: dict[str, Any] | None = None
) -> None:
    """Append day by day to each symbol; each answer must be exact (clear() races it)."""
    bars = bars_function(root, state, **_options(options))
    for n in range(rounds):
        for symbol in symbols:
            got = bars(symbol, day(0), day(n))
            pd.testing.assert_frame_equal(got, expected(symbol, 0, n))


def run_cloudpickled(blob: bytes, symbol: str, first: int, last: int) -> None:
    """Unpickle a cached function shipped by value and check one call is exact."""
    import cloudpickle

    fn = cloudpickle.loads(blob)
    got = fn(symbol, day(first), day(last))
    pd.testing.assert_frame_equal(got, expected(symbol, first, last))


def run_with_pickled_store(blob: bytes, state: str, symbol: str, first: int, last: int) -> dict:
    """Open a pickled ParquetStore here, write through it; its options as seen here."""
    import pickle

    store = pickle.loads(blob)

    @range_cached(key="symbol", step="1D", store=store, namespace=NAMESPACE, readahead=None)
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        record(state, symbol, start, end)
        return make_bars(symbol, start, end)

    got = bars(symbol, day(first), day(last))
    pd.testing.assert_frame_equal(got, expected(symbol, first, last))
    return {
        "url": store.url,
        "refresh": store.refresh,
        "lease": store.lease,
        "compact_at": store.compact_at,
        "memory": store.memory,
        "durable": store.durable,
        "eager_rows": store.eager_rows,
    }


def _hold(root: str, state: str, lease: str) -> None:
    """``hold ROOT STATE LEASE``: fetch AAA days 0-9 and hang in the provider."""
    options = {"lease": float(lease)} if not root.startswith("/") else {}
    bars = bars_function(root, state, hold=True, **options)
    bars("AAA", day(0), day(9))


def _churn(root: str, state: str, seed: str) -> None:
    """``churn ROOT STATE SEED``: random overlapping writes on two keys until killed."""
    bars = bars_function(root, state, compact_at=3)
    rng = random.Random(int(seed))
    while True:
        first = rng.randrange(0, 60)
        symbol = rng.choice(["AAA", "BBB"])
        bars(symbol, day(first), day(first + rng.randrange(0, 8)))
        if rng.random() < 0.2:
            bars.invalidate(symbol, start=day(first), end=day(first + 2))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "hold":
        _hold(*args)
    elif command == "churn":
        _churn(*args)
    else:
        raise SystemExit(f"unknown command {command!r}")


def revise_loop(root: str, state: str, seconds: float) -> None:
    """Refresh AAA 0-59 again and again, each time under a new revision (version file)."""
    bars = bars_function(root, state)
    deadline = time.monotonic() + seconds
    version = 1
    while time.monotonic() < deadline:
        (Path(state) / "version").write_text(str(version))
        got = bars.refresh("AAA", day(0), day(59))
        pd.testing.assert_frame_equal(got, expected("AAA", 0, 59, version))
        version += 1


def forked_writer(bars: Any, plan: list[tuple[str, int, int]], barrier: Any) -> None:
    """A forked child using its parent's cached function (and store) as inherited."""
    barrier.wait(timeout=60)
    for symbol, first, last in plan:
        pd.testing.assert_frame_equal(
            bars(symbol, day(first), day(last)), expected(symbol, first, last)
        )
