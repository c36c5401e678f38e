"""Helpers of tests/test_log_adversarial.py: cached functions, a no-op lock, spawned workers."""

from __future__ import annotations

import contextlib
import datetime as dt
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from rangememo import CacheWarning, ParquetStore, range_cached
from rangememo.testing import make_bars

NAMESPACE = "adv.bars"
#: The store's namespace of NAMESPACE (the code version appended).
NS = f"{NAMESPACE}@v0"
DAY0 = dt.datetime(2024, 1, 1)


def day(n: int) -> dt.datetime:
    return DAY0 + dt.timedelta(days=n)


@contextlib.contextmanager
def no_locks(*args: Any, **kwargs: Any) -> Iterator[None]:
    """Stands in for the key lock: the protocol alone must keep the log right."""
    yield


def unlocked_lock(self: Any, prefix: str, timeout: float | None = None) -> Any:
    """``LocalMedium.lock`` with no lock: what a writer stalled past its lease sees."""
    return no_locks()


def bars_fn(
    root: str | Path,
    calls: list[Any] | None = None,
    namespace: str = NAMESPACE,
    **options: Any,
) -> Any:
    """A cached daily-bars function over a new ``ParquetStore(root)``, noting its calls."""

    @range_cached(
        key="symbol",
        step="1D",
        store=ParquetStore(root, durable=False, **options),
        namespace=namespace,
        settle=None,
        readahead=None,  # the tests count exactly which ranges are fetched
    )
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        if calls is not None:
            calls.append((symbol, pd.Timestamp(start), pd.Timestamp(end)))
        return make_bars(symbol, start, end)

    return bars


def _exact(fn: Any, first: int, last: int, why: list[str] | None = None) -> bool:
    got = fn("AAA", day(first), day(last))
    try:
        pd.testing.assert_frame_equal(got, make_bars("AAA", day(first), day(last)))
    except AssertionError as exc:
        if why is not None:
            want = make_bars("AAA", day(first), day(last))
            lost = sorted(set(want.index) ^ set(got.index))
            why.append(f"days {first}-{last}: {str(exc)[:60]} differ at {lost[:5]}")
        return False
    return True


def read_lazily(root: str, opened: Any, go: Any, out: Any) -> None:
    """A spawned reader: open AAA lazily, signal, wait, read all of it."""
    calls: list[Any] = []
    fn = bars_fn(root, calls, eager_rows=0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ok = _exact(fn, 0, 9)
        opened.set()
        go.wait(60)
        ok = all([_exact(fn, a, b) for a, b in ((0, 39), (50, 69), (80, 84))]) and ok
    out["calls"] = len(calls)
    out["warnings"] = [str(w.message) for w in seen if issubclass(w.category, CacheWarning)]
    out["exact"] = ok


def race_writer(
    root: str, worker: int, barrier: Any, locks: bool = False, forgets: bool = True
) -> None:
    """A spawned writer with the key lock disabled: overlapping writes, forgets, compactions."""
    from rangememo._stores.parquet.local.medium import LocalMedium

    if not locks:
        LocalMedium.lock = unlocked_lock  # type: ignore[method-assign]
    fn = bars_fn(root)
    barrier.wait(60)
    bad: list[str] = []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for k in range(12):
            first = (worker * 7 + k * 13) % 180
            _exact(fn, first, first + 15, bad)
            if forgets and k % 4 == worker % 4:
                fn.invalidate("AAA", start=day(first + 2), end=day(first + 4))
            if k % 5 == 4:
                fn.cache.store.compact()
        for first in range(0, 200, 40):
            _exact(fn, first, first + 39, bad)
    bad += [str(w.message) for w in seen if "damaged" in str(w.message)]
    if bad:
        raise SystemExit(f"worker {worker}: {bad}")
