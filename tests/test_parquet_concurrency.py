"""ParquetStore keeps one call's gaps concurrent while excluding other processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import ParquetStore, range_cached
from rangememo._stores.parquet.local.locks import hold
from rangememo.testing import FakeProvider, make_bars

D = dt.datetime


async def test_one_calls_gaps_are_fetched_concurrently(tmp_path):
    """max_span chunks of one key run up to max_concurrency at once under one lock hold."""
    provider = FakeProvider(latency=0.02)

    @range_cached(
        key="symbol",
        step="1D",
        max_span="7D",
        max_concurrency=3,
        store=tmp_path,
        namespace="tests.bars",
    )
    async def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end)

    got = await get_bars("AAPL", D(2024, 10, 1), D(2024, 10, 30))
    assert provider.max_in_flight == 3
    assert provider.call_count == 5
    assert_frame_equal(got, make_bars("AAPL", D(2024, 10, 1), D(2024, 10, 30)))
    reopened = ParquetStore(tmp_path)
    entry = reopened.get(get_bars.cache.namespace, ("AAPL",))
    assert entry is not None
    assert entry.ledger.intervals() == [
        (pd.Timestamp(2024, 10, 1).value, pd.Timestamp(2024, 10, 31).value)
    ]


def test_sync_gaps_are_fetched_concurrently(tmp_path):
    """The sync path holds the key lock once and fetches its gaps in threads."""
    provider = FakeProvider(latency=0.02)

    @range_cached(
        key="symbol",
        step="1D",
        max_span="7D",
        max_concurrency=3,
        store=tmp_path,
        namespace="tests.bars",
    )
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return provider.get_bars_sync(symbol, start, end)

    got = get_bars("AAPL", D(2024, 10, 1), D(2024, 10, 30))
    assert provider.max_in_flight == 3
    assert_frame_equal(got, make_bars("AAPL", D(2024, 10, 1), D(2024, 10, 30)))


async def test_a_batch_waiting_for_the_lock_can_be_abandoned(tmp_path):
    """Cancelled while another holder has the key: nothing is fetched, nothing is left in flight."""
    provider = FakeProvider()
    store = ParquetStore(tmp_path)

    @range_cached(key="symbol", step="1D", max_span="7D", store=store, namespace="tests.bars")
    async def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end)

    lockfile = store._lockfile(get_bars.cache.namespace, ("AAPL",))
    held, release = threading.Event(), threading.Event()

    def other_holder() -> None:
        with hold(lockfile):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=other_holder)
    holder.start()
    try:
        assert await asyncio.to_thread(held.wait, 5)
        call = asyncio.create_task(get_bars("AAPL", D(2024, 10, 1), D(2024, 10, 30)))
        for _ in range(400):  # until its gaps are planned (aget runs in a thread)
            if get_bars.cache.inflight:
                break
            await asyncio.sleep(0.005)
        assert get_bars.cache.inflight  # planned, and waiting for the lock
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
    assert provider.call_count == 0
    assert get_bars.cache.inflight == {}
    got = await get_bars("AAPL", D(2024, 10, 1), D(2024, 10, 10))
    assert_frame_equal(got, make_bars("AAPL", D(2024, 10, 1), D(2024, 10, 10)))


def test_readers_catching_up_while_this_process_commits_see_no_damage(tmp_path):
    """Reader threads catch up with the log while a writer of the same process
    commits: a record the writer just appended must not be applied twice (once by
    a reader's catch-up, once by the writer's own fold), which retired the live
    segment and deleted it under later readers ("damaged", coverage lost)."""
    import warnings

    from rangememo import CacheWarning

    @range_cached(key="symbol", step="1D", store=ParquetStore(tmp_path), readahead=None)
    def get(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return make_bars(symbol, start, end, skip_weekends=False)

    first = dt.datetime(2024, 1, 1)
    get("AAPL", first, first + dt.timedelta(days=5))
    stop, errors = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                got = get.cached("AAPL", first, first + dt.timedelta(days=5))
                want = make_bars("AAPL", first, first + dt.timedelta(days=5), skip_weekends=False)
                assert_frame_equal(got, want, check_freq=False)
            except Exception as exc:
                errors.append(exc)
                return

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheWarning)
        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        for d in range(6, 40):  # each commit merges the small tail: a replace record
            get("AAPL", first, first + dt.timedelta(days=d))
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == []
    assert [str(w.message) for w in caught if issubclass(w.category, CacheWarning)] == []
