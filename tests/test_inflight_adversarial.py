"""Adversarial tests of fetches in flight across refresh, invalidate and clear.

A fetch whose provider call began before a replacement of its range (a
``refresh``, an ``invalidate``, a ``clear``) must not commit its older rows over
what replaced them; a fetch that does not overlap the replacement (adjacent
ranges, other keys) must commit, so nothing is fetched twice later. Calls that
begin after a replacement returned must never answer with rows fetched before
it. On a shared store (ParquetStore) a call answers from the newest log.
Every gate is a ``threading.Event``: no test sleeps to order its threads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import BoundsTypeError, MemoryStore, ParquetStore, range_cached

WAIT = 5.0  # the longest any gate is waited for (a deadlock fails, never hangs)


def frame(symbol: str, start: int, end: int, rev: int) -> pd.DataFrame:
    """What the vendor answers for ``[start, end]`` at revision ``rev``."""
    index = pd.Index(range(start, end + 1), name="pos", dtype="int64")
    return pd.DataFrame(
        {
            "v": [float(p * 10 + rev) for p in index],
            "sym": pd.Series([symbol] * len(index), dtype=object).to_numpy(),
        },
        index=index,
    )


class Vendor:
    """An int-axis vendor: ``rev`` is read as a call begins (what it answers with).

    ``hold(symbol, start)`` makes the next matching call signal ``entered`` and
    wait for ``release``, so a test can keep one provider call in flight.
    """

    def __init__(self) -> None:
        self.rev = 0
        self.calls: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()
        self.gates: dict[tuple[str, int | None], tuple[threading.Event, threading.Event]] = {}

    def hold(
        self, symbol: str, start: int | None = None
    ) -> tuple[threading.Event, threading.Event]:
        gate = threading.Event(), threading.Event()
        self.gates[(symbol, start)] = gate
        return gate

    def _enter(self, symbol: str, start: int, end: int) -> tuple[int, threading.Event | None]:
        rev = self.rev
        with self.lock:
            self.calls.append((symbol, start, end))
            gate = self.gates.pop((symbol, start), None) or self.gates.pop((symbol, None), None)
        if gate is None:
            return rev, None
        gate[0].set()
        return rev, gate[1]

    def __call__(self, symbol: str, start: int, end: int) -> pd.DataFrame:
        rev, release = self._enter(symbol, start, end)
        if release is not None:
            assert release.wait(WAIT), "the test never released a held call"
        return frame(symbol, start, end, rev)

    async def acall(self, symbol: str, start: int, end: int) -> pd.DataFrame:
        rev, release = self._enter(symbol, start, end)
        if release is not None:
            assert await asyncio.to_thread(release.wait, WAIT)
        return frame(symbol, start, end, rev)

    def batch(self, symbols: list[str], start: int, end: int) -> pd.DataFrame:
        rev, release = self._enter("+".join(symbols), start, end)
        if release is not None:
            assert release.wait(WAIT)
        return pd.concat([frame(s, start, end, rev) for s in symbols])

    def calls_of(self, symbol: str) -> list[tuple[int, int]]:
        return [(s, e) for sym, s, e in self.calls if sym == symbol]


def sync_fn(vendor: Vendor, store: Any = None, **options: Any) -> Any:
    @range_cached(key="symbol", step=1, store=store or MemoryStore(), **options)
    def bars(symbol: str, start: int, end: int) -> pd.DataFrame:
        return vendor(symbol, start, end)

    return bars


def async_fn(vendor: Vendor, store: Any = None, **options: Any) -> Any:
    @range_cached(key="symbol", step=1, store=store or MemoryStore(), **options)
    async def bars(symbol: str, start: int, end: int) -> pd.DataFrame:
        return await vendor.acall(symbol, start, end)

    return bars


class Run(threading.Thread):
    """A thread running ``fn(*args)``, keeping its result or error."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        super().__init__(daemon=True)
        self.fn, self.args = fn, args
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def value(self) -> Any:
        self.join(WAIT)
        assert not self.is_alive(), "the call never returned"
        if self.error is not None:
            raise self.error
        return self.result


def started(fn: Callable[..., Any], *args: Any) -> Run:
    run = Run(fn, *args)
    run.start()
    return run


def in_flight(
    vendor: Vendor, fn: Callable[..., Any], symbol: str, start: int, end: int, at: int | None = None
) -> tuple[Run, threading.Event]:
    """Start ``fn(symbol, start, end)`` and return once its provider call is held."""
    entered, release = vendor.hold(symbol, at)
    run = started(fn, symbol, start, end)
    assert entered.wait(WAIT), "the provider was never called"
    return run, release


# -- the hot path -------------------------------------------------------------------


def test_a_cached_call_makes_no_provider_call_sync_and_async() -> None:
    vendor = Vendor()
    bars, abars = sync_fn(vendor), async_fn(vendor)
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 0))
    assert_frame_equal(asyncio.run(abars("A", 0, 9)), frame("A", 0, 9, 0))
    before = len(vendor.calls)
    for lo, hi in [(0, 9), (3, 5), (9, 9), (0, 0)]:
        assert_frame_equal(bars("A", lo, hi), frame("A", lo, hi, 0))
        assert_frame_equal(asyncio.run(abars("A", lo, hi)), frame("A", lo, hi, 0))
    assert len(vendor.calls) == before
    info = bars.cache_info()
    assert (info.hits, info.misses, info.provider_calls) == (4, 1, 1)


# -- a fetch overtaken by a replacement --------------------------------------------


def test_refresh_during_a_fetch_wins_and_the_fetch_caller_gets_its_own_rows() -> None:
    vendor = Vendor()
    bars = sync_fn(vendor)
    run, release = in_flight(vendor, bars, "A", 0, 9)
    vendor.rev = 1
    assert_frame_equal(bars.refresh("A", 0, 9), frame("A", 0, 9, 1))
    release.set()
    assert_frame_equal(run.value(), frame("A", 0, 9, 0))  # what its own call fetched
    n = len(vendor.calls)
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 1))
    assert len(vendor.calls) == n  # the refresh's rows are cached: a hit


def test_a_call_begun_after_an_invalidate_never_answers_with_older_rows() -> None:
    """The invalidate returned before the call began: the call must not join a
    fetch begun before the invalidate (its rows are the revision forgotten)."""
    vendor = Vendor()
    bars = sync_fn(vendor)
    run, release = in_flight(vendor, bars, "A", 0, 9)
    vendor.rev = 1  # the vendor revised history; the user forgets the key
    bars.invalidate("A")
    late = started(bars, "A", 0, 9)
    late.join(0.5)  # a call of its own returns now; one joined to the old fetch waits
    release.set()
    assert_frame_equal(run.value(), frame("A", 0, 9, 0))
    assert_frame_equal(late.value(), frame("A", 0, 9, 1))


def test_a_call_begun_after_a_partial_refresh_answers_with_the_refreshed_rows() -> None:
    vendor = Vendor()
    bars = sync_fn(vendor)
    run, release = in_flight(vendor, bars, "A", 0, 9)
    vendor.rev = 1
    assert_frame_equal(bars.refresh("A", 4, 5), frame("A", 4, 5, 1))
    late = started(bars, "A", 0, 9)
    late.join(0.5)
    release.set()
    run.value()
    got = late.value()
    # Rows 4-5 were refreshed before this call began: it must show them as refreshed.
    assert_frame_equal(got.loc[4:5], frame("A", 4, 5, 1))


def test_waiters_of_a_dropped_flight_get_one_consistent_answer_and_one_refetch() -> None:
    vendor = Vendor()
    bars = sync_fn(vendor)
    run, release = in_flight(vendor, bars, "A", 0, 9)
    waiters = [started(bars, "A", lo, hi) for lo, hi in [(0, 9), (2, 7), (5, 9)]]
    for w in waiters:
        w.join(0.2)  # they join the flight in progress (no call of their own)
    assert vendor.calls_of("A") == [(0, 9)]
    vendor.rev = 1
    bars.invalidate("A", start=3, end=4)
    release.set()
    assert_frame_equal(run.value(), frame("A", 0, 9, 0))
    for w, (lo, hi) in zip(waiters, [(0, 9), (2, 7), (5, 9)], strict=True):
        assert_frame_equal(w.value(), frame("A", lo, hi, 0))  # joined before: one revision
    # Nothing of the dropped fetch was committed: one fetch of it again, then hits.
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 1))
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 1))
    assert vendor.calls_of("A") == [(0, 9), (0, 9)]


def test_a_refresh_begun_earlier_never_overwrites_a_later_refresh() -> None:
    """Two refreshes of one range: the one whose provider call began last wins."""
    vendor = Vendor()
    bars = sync_fn(vendor)
    bars("A", 0, 9)
    entered, release = vendor.hold("A")
    old = started(bars.refresh, "A", 0, 9)
    assert entered.wait(WAIT)
    vendor.rev = 2
    assert_frame_equal(bars.refresh("A", 0, 9), frame("A", 0, 9, 2))
    release.set()
    assert_frame_equal(old.value(), frame("A", 0, 9, 0))
    # The newer revision was stored last by a call begun last: it must be served.
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 2))


def test_a_refresh_begun_before_an_invalidate_commits_nothing() -> None:
    vendor = Vendor()
    bars = sync_fn(vendor)
    bars("A", 0, 9)
    entered, release = vendor.hold("A")
    old = started(bars.refresh, "A", 0, 9)
    assert entered.wait(WAIT)
    vendor.rev = 3
    bars.invalidate("A")
    release.set()
    old.value()
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 3))


@pytest.mark.parametrize("how", ["clear_namespace", "clear_all", "cache_clear"])
def test_a_fetch_begun_before_a_clear_commits_nothing(how: str) -> None:
    vendor = Vendor()
    store = MemoryStore()
    bars = sync_fn(vendor, store)
    run, release = in_flight(vendor, bars, "A", 0, 9)
    vendor.rev = 1
    if how == "clear_namespace":
        store.clear(bars.cache.namespace)
    elif how == "clear_all":
        store.clear()
    else:
        bars.cache_clear()
    release.set()
    assert_frame_equal(run.value(), frame("A", 0, 9, 0))
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 1))


def test_a_fetch_begun_right_after_an_invalidate_or_clear_commits() -> None:
    vendor = Vendor()
    store = MemoryStore()
    bars = sync_fn(vendor, store)
    bars("A", 0, 9)
    bars.invalidate("A")
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 0))
    bars.invalidate("A", start=2, end=3)
    bars("A", 0, 9)
    store.clear()
    bars("A", 0, 9)
    bars.cache_clear()
    bars("A", 0, 9)
    n = len(vendor.calls)
    for _ in range(3):
        assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 0))
    assert len(vendor.calls) == n
    assert vendor.calls_of("A") == [(0, 9), (0, 9), (2, 3), (0, 9), (0, 9)]


# -- replacements that must NOT drop a fetch -----------------------------------------


@pytest.mark.parametrize(("start", "end"), [(10, 19), (10, None), (None, -1), (-5, -1)])
def test_an_invalidate_adjacent_to_a_fetch_in_flight_keeps_it(start: Any, end: Any) -> None:
    vendor = Vendor()
    bars = sync_fn(vendor)
    bars("A", 20, 29)  # something stored beyond, so bounds are checked against a key
    run, release = in_flight(vendor, bars, "A", 0, 9)
    bars.invalidate("A", start=start, end=end)
    release.set()
    assert_frame_equal(run.value(), frame("A", 0, 9, 0))
    n = len(vendor.calls)
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 0))
    assert len(vendor.calls) == n, "a fetch beside the invalidated range was dropped"


def test_an_adjacent_daily_invalidate_keeps_a_fetch_in_flight() -> None:
    calls: list[tuple[Any, Any]] = []
    entered, release = threading.Event(), threading.Event()

    @range_cached(key="symbol", step="1D", store=MemoryStore(), settle=False, readahead=None)
    def daily(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        calls.append((start, end))
        if len(calls) == 1:
            entered.set()
            assert release.wait(WAIT)
        idx = pd.date_range(start, end, freq="1D", name="ts")
        return pd.DataFrame({"v": range(len(idx))}, index=idx)

    jan = dt.datetime(2024, 1, 1)
    run = started(daily, "A", jan, jan + dt.timedelta(days=9))
    assert entered.wait(WAIT)
    daily.invalidate("A", start=jan + dt.timedelta(days=10), end=jan + dt.timedelta(days=20))
    daily.invalidate("A", end=jan - dt.timedelta(days=1))
    release.set()
    run.value()
    daily("A", jan, jan + dt.timedelta(days=9))
    assert len(calls) == 1


def test_refreshes_and_invalidates_of_other_keys_keep_a_fetch_in_flight() -> None:
    vendor = Vendor()
    bars = sync_fn(vendor)
    run, release = in_flight(vendor, bars, "A", 0, 9)
    for i in range(30):
        bars.refresh(f"K{i}", 0, 9)
        bars.invalidate(f"K{i}", start=0, end=4)
    release.set()
    run.value()
    n = len(vendor.calls)
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 0))
    assert len(vendor.calls) == n


def test_several_gaps_in_flight_only_the_overlapped_one_is_dropped() -> None:
    vendor = Vendor()
    bars = sync_fn(vendor, max_concurrency=4)
    for lo in (0, 20, 40):
        bars("A", lo, lo + 9)
    gates = [vendor.hold("A", lo) for lo in (10, 30, 50)]
    run = started(bars, "A", 0, 59)
    for entered, _ in gates:
        assert entered.wait(WAIT)  # all three gaps in flight at once
    vendor.rev = 1
    bars.invalidate("A", start=33, end=34)
    for _, release in gates:
        release.set()
    assert_frame_equal(run.value(), frame("A", 0, 59, 0))
    before = list(vendor.calls_of("A"))
    got = bars("A", 0, 59)
    assert vendor.calls_of("A")[len(before) :] == [(30, 39)]  # only the dropped gap
    expected = frame("A", 0, 59, 0)
    expected.loc[30:39, "v"] = frame("A", 30, 39, 1)["v"]
    assert_frame_equal(got, expected)
    n = len(vendor.calls)
    bars("A", 0, 59)
    assert len(vendor.calls) == n


def test_prefetch_overtaken_by_an_invalidate_is_fetched_again_once() -> None:
    vendor = Vendor()
    bars = sync_fn(vendor)
    entered, release = vendor.hold("A")
    pre = started(bars.prefetch, "A", 0, 9)
    assert entered.wait(WAIT)
    vendor.rev = 1
    bars.invalidate("A", start=0, end=0)
    release.set()
    assert pre.value() is None
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 1))
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 1))
    assert vendor.calls_of("A") == [(0, 9), (0, 9)]


# -- bounded marks ---------------------------------------------------------------------


def test_invalidates_of_thousands_of_other_keys_never_let_a_stale_fetch_commit() -> None:
    """A universe-wide invalidation loop (one call per symbol) while a fetch is in
    flight: the in-flight key's own invalidate must still drop that fetch."""
    vendor = Vendor()
    bars = sync_fn(vendor)
    run, release = in_flight(vendor, bars, "A", 0, 9)
    vendor.rev = 1
    bars.invalidate("A")
    for i in range(4200):
        bars.invalidate(f"S{i}")
    release.set()
    run.value()
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 1))


def test_many_invalidates_of_other_ranges_of_the_key_never_let_a_stale_fetch_commit() -> None:
    vendor = Vendor()
    bars = sync_fn(vendor)
    run, release = in_flight(vendor, bars, "A", 0, 9)
    vendor.rev = 1
    bars.invalidate("A", start=0, end=9)
    for day in range(100, 120):  # a day-by-day clean-up elsewhere in the series
        bars.invalidate("A", start=day, end=day)
    release.set()
    run.value()
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 1))


# -- batches -----------------------------------------------------------------------------


def test_a_batch_fetch_begun_before_a_member_invalidate_commits_nothing_for_it() -> None:
    vendor = Vendor()

    @range_cached(batch="symbols", by="sym", step=1, store=MemoryStore())
    def bars(symbols: list[str], start: int, end: int) -> pd.DataFrame:
        return vendor.batch(symbols, start, end)

    entered, release = vendor.hold("A+B")
    run = started(bars, ["A", "B"], 0, 9)
    assert entered.wait(WAIT)
    vendor.rev = 1
    bars.invalidate("A")
    release.set()
    run.value()
    got = bars(["A"], 0, 9)
    assert_frame_equal(got.reset_index(drop=True), frame("A", 0, 9, 1).reset_index(drop=True))


# -- async, several loops --------------------------------------------------------------


def test_async_fetch_overtaken_by_a_refresh_on_another_loop() -> None:
    vendor = Vendor()
    bars = async_fn(vendor)
    run, release = in_flight(vendor, lambda *a: asyncio.run(bars(*a)), "A", 0, 9)
    vendor.rev = 1
    refreshed = started(lambda: asyncio.run(bars.refresh("A", 0, 9)))
    assert_frame_equal(refreshed.value(), frame("A", 0, 9, 1))
    release.set()
    assert_frame_equal(run.value(), frame("A", 0, 9, 0))
    n = len(vendor.calls)
    assert_frame_equal(asyncio.run(bars("A", 0, 9)), frame("A", 0, 9, 1))
    assert len(vendor.calls) == n


def test_async_call_begun_after_an_invalidate_on_another_loop_is_fresh() -> None:
    vendor = Vendor()
    bars = async_fn(vendor)
    run, release = in_flight(vendor, lambda *a: asyncio.run(bars(*a)), "A", 0, 9)
    vendor.rev = 1
    asyncio.run(bars.invalidate("A"))
    late = started(lambda: asyncio.run(bars("A", 0, 9)))
    late.join(0.5)
    release.set()
    run.value()
    assert_frame_equal(late.value(), frame("A", 0, 9, 1))


def test_async_adjacent_invalidate_and_other_keys_keep_the_fetch() -> None:
    vendor = Vendor()
    bars = async_fn(vendor)

    async def main() -> list[tuple[int, int]]:
        entered, release = vendor.hold("A")
        task = asyncio.create_task(bars("A", 0, 9))
        assert await asyncio.to_thread(entered.wait, WAIT)
        await bars.invalidate("A", start=10, end=20)
        for i in range(5):
            await bars.refresh(f"K{i}", 0, 9)
        release.set()
        assert_frame_equal(await task, frame("A", 0, 9, 0))
        n = len(vendor.calls)
        assert_frame_equal(await bars("A", 0, 9), frame("A", 0, 9, 0))
        return vendor.calls[n:]

    assert asyncio.run(main()) == []


# -- cache_info -------------------------------------------------------------------------


def test_cache_info_after_a_dropped_fetch_is_sensible() -> None:
    vendor = Vendor()
    bars = sync_fn(vendor)
    run, release = in_flight(vendor, bars, "A", 0, 9)
    bars.invalidate("A")
    release.set()
    run.value()
    bars("A", 0, 9)  # fetched again
    bars("A", 0, 9)  # a hit
    info = bars.cache_info()
    assert (info.hits, info.partial_hits, info.misses) == (1, 0, 2)
    assert (info.provider_calls, info.rows_fetched, info.errors) == (2, 20, 0)


# -- invalidate bounds of another kind -----------------------------------------------


def test_invalidate_bounds_kinds_refused_named_and_nothing_forgotten() -> None:
    vendor = Vendor()
    bars = sync_fn(vendor)
    bars("A", 0, 9)
    # A fixed int step refuses datetimes before the key's kind is looked at:
    # either refusal is a TypeError naming the bounds.
    with pytest.raises(TypeError, match="2024"):
        bars.invalidate("A", start=dt.datetime(2024, 1, 1), end=dt.datetime(2024, 1, 2))
    with pytest.raises(TypeError, match="2024"):
        bars.invalidate("A", start=dt.datetime(2024, 1, 1))
    with pytest.raises(TypeError, match="2024"):
        bars.invalidate("A", end=dt.date(2024, 1, 1))
    n = len(vendor.calls)
    assert_frame_equal(bars("A", 0, 9), frame("A", 0, 9, 0))
    assert len(vendor.calls) == n
    bars.invalidate("A", start=3, end=4)  # the key's own kind still works
    bars("A", 0, 9)
    assert vendor.calls_of("A")[-1] == (3, 4)


def test_invalidate_with_timestamps_on_a_datetime_key_is_not_refused() -> None:
    calls: list[Any] = []

    @range_cached(key="symbol", step="1D", store=MemoryStore(), settle=False, readahead=None)
    def daily(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append((start, end))
        idx = pd.date_range(start, end, freq="1D", name="ts")
        return pd.DataFrame({"v": range(len(idx))}, index=idx)

    daily("A", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 10))
    daily.invalidate("A", start=pd.Timestamp("2024-01-03"), end=pd.Timestamp("2024-01-04"))
    daily("A", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 10))
    assert len(calls) == 2
    aware = pd.Timestamp("2024-01-03", tz="UTC")
    with pytest.raises(BoundsTypeError, match="2024-01-03"):
        daily.invalidate("A", start=aware)
    with pytest.raises(BoundsTypeError, match="2024-01-03"):
        daily.invalidate("A", end=aware)
    daily.invalidate("NEVER", start=aware)  # no such key: nothing to refuse
    daily("A", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 10))
    assert len(calls) == 2  # the refused invalidates forgot nothing


# -- ParquetStore: the newest log --------------------------------------------------------


def _parquet_pair(tmp_path: Any) -> tuple[Any, Any, Vendor, Vendor]:
    """Two processes' views of one store: each its own ParquetStore, ``refresh=60``."""
    va, vb = Vendor(), Vendor()

    def make(vendor: Vendor) -> Any:
        store = ParquetStore(tmp_path / "cache", refresh=60)
        return sync_fn(vendor, store, namespace="shared.bars")

    return make(va), make(vb), va, vb


def test_parquet_answer_after_another_process_refreshed_is_the_newest(tmp_path: Any) -> None:
    a, b, va, vb = _parquet_pair(tmp_path)
    assert_frame_equal(a("A", 0, 9), frame("A", 0, 9, 0))
    assert_frame_equal(a("A", 0, 9), frame("A", 0, 9, 0))  # a's view is now recent
    vb.rev = va.rev = 1
    assert_frame_equal(b.refresh("A", 0, 9), frame("A", 0, 9, 1))
    got = a("A", 0, 19)  # a gap: the call reads the newest log under the lock
    assert_frame_equal(got, frame("A", 0, 19, 1))
    assert va.calls_of("A") == [(0, 9), (10, 19)]


def test_parquet_answer_after_another_process_invalidated_refetches_once(tmp_path: Any) -> None:
    a, b, va, _ = _parquet_pair(tmp_path)
    assert_frame_equal(a("A", 0, 9), frame("A", 0, 9, 0))
    a("A", 0, 9)
    va.rev = 1
    b.invalidate("A")
    got = a("A", 0, 19)
    assert_frame_equal(got, frame("A", 0, 19, 1))
    spans = va.calls_of("A")[1:]
    covered = [p for s, e in spans for p in range(s, e + 1)]
    assert sorted(covered) == list(range(20)), f"fetched twice or not at all: {spans}"
    n = len(va.calls)
    assert_frame_equal(a("A", 0, 19), frame("A", 0, 19, 1))
    assert len(va.calls) == n


def test_parquet_threads_in_one_process_fetch_each_range_once(tmp_path: Any) -> None:
    vendor = Vendor()
    bars = sync_fn(vendor, ParquetStore(tmp_path / "cache"), namespace="t.bars", max_concurrency=3)
    bars("A", 10, 19)
    bars("A", 30, 39)
    run, release = in_flight(vendor, bars, "A", 0, 49, at=0)
    others = [started(bars, "A", lo, hi) for lo, hi in [(0, 49), (5, 45), (20, 29)]]
    for o in others:
        o.join(0.2)
    release.set()
    assert_frame_equal(run.value(), frame("A", 0, 49, 0))
    for o, (lo, hi) in zip(others, [(0, 49), (5, 45), (20, 29)], strict=True):
        assert_frame_equal(o.value(), frame("A", lo, hi, 0))
    covered = [p for s, e in vendor.calls_of("A") for p in range(s, e + 1)]
    assert sorted(covered) == list(range(50))
