"""Single flight, cancellation, threads, sync wrappers, methods, notebooks."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import datetime as dt
import threading
from collections import Counter

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import MemoryStore, range_cached
from rangememo.testing import FakeProvider, make_bars

D = dt.datetime
START = D(2024, 9, 1)


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def fetched_days(provider: FakeProvider) -> Counter[pd.Timestamp]:
    """How often each calendar day was asked of the provider."""
    seen: Counter[pd.Timestamp] = Counter()
    for a, b in provider.ranges():
        seen.update(pd.date_range(a, b, freq="D"))
    return seen


async def test_gather_of_40_overlapping_requests_fetches_each_day_once():
    """40 concurrent overlapping windows: every day is asked of the provider once."""
    provider = FakeProvider(latency=0.01)

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end)

    windows = [(START + days(i), START + days(i + 30)) for i in range(40)]
    results = await asyncio.gather(*(get_bars("AAPL", a, b) for a, b in windows))
    assert max(fetched_days(provider).values()) == 1
    for (a, b), got in zip(windows, results, strict=True):
        assert_frame_equal(got, make_bars("AAPL", a, b))


async def test_max_concurrency_bounds_gap_fetches():
    """One call with many gaps has at most max_concurrency fetches in flight."""
    provider = FakeProvider(latency=0.01)

    @range_cached(key="symbol", step="1D", max_concurrency=2, store=MemoryStore())
    async def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end)

    for i in range(0, 40, 4):
        await get_bars("AAPL", START + days(i), START + days(i))
    provider.max_in_flight = 0
    await get_bars("AAPL", START, START + days(40))
    assert provider.max_in_flight == 2
    assert provider.call_count == 10 + 10


async def test_cancelled_caller_does_not_cancel_a_shared_fetch():
    """If one waiter is cancelled, the fetch another waits on goes on and commits."""
    gate = asyncio.Event()
    calls = []

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def slow(symbol: str, start: D, end: D) -> pd.DataFrame:
        calls.append((start, end))
        await gate.wait()
        return make_bars(symbol, start, end)

    first = asyncio.create_task(slow("AAPL", START, START + days(5)))
    await asyncio.sleep(0)
    second = asyncio.create_task(slow("AAPL", START, START + days(5)))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    got = await second
    assert first.cancelled()
    assert len(calls) == 1
    assert_frame_equal(got, make_bars("AAPL", START, START + days(5)))
    assert await slow.coverage("AAPL") == [(pd.Timestamp(START), pd.Timestamp(START + days(5)))]


async def test_fetch_nobody_waits_for_is_cancelled_and_commits_nothing():
    """Cancelling the only caller cancels its fetch; nothing is recorded."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def slow(symbol: str, start: D, end: D) -> pd.DataFrame:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return make_bars(symbol, start, end)

    task = asyncio.create_task(slow("AAPL", START, START + days(5)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(cancelled.wait(), 1)
    assert await slow.coverage("AAPL") == []


async def test_waiters_see_the_providers_error():
    """Callers sharing a failed fetch all get the provider's exception."""
    provider = FakeProvider(latency=0.01)

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end)

    provider.fail_next(TimeoutError("upstream"))
    results = await asyncio.gather(
        get_bars("AAPL", START, START + days(3)),
        get_bars("AAPL", START, START + days(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, TimeoutError) for r in results)
    assert provider.call_count == 1
    assert await get_bars.coverage("AAPL") == []


# -- sync --------------------------------------------------------------------------


def test_sync_wrapper_fetches_only_gaps():
    """A plain function is cached the same way, without an event loop."""
    provider = FakeProvider()

    @range_cached(key=("symbol", "timeframe"), step="1D", store=MemoryStore())
    def get_bars(symbol: str, start: D, end: D, timeframe: str = "D") -> pd.DataFrame:
        return provider.get_bars_sync(symbol, start, end, timeframe)

    get_bars("AAPL", START, START + days(10))
    got = get_bars("AAPL", START + days(5), START + days(20))
    assert provider.ranges() == [
        (pd.Timestamp(START), pd.Timestamp(START + days(10))),
        (pd.Timestamp(START + days(11)), pd.Timestamp(START + days(20))),
    ]
    assert_frame_equal(got, make_bars("AAPL", START + days(5), START + days(20)))
    assert get_bars.coverage("AAPL", "D") == [(pd.Timestamp(START), pd.Timestamp(START + days(20)))]
    get_bars.prefetch("AAPL", START, START + days(30))
    get_bars.invalidate("AAPL", "D")
    assert get_bars.coverage("AAPL", "D") == []


def test_threads_share_fetches():
    """Threads calling a sync wrapper at once: each day fetched once."""
    provider = FakeProvider(latency=0.02)

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return provider.get_bars_sync(symbol, start, end)

    barrier = threading.Barrier(8)

    def work(i: int) -> pd.DataFrame:
        barrier.wait()
        return get_bars("AAPL", START + days(i), START + days(i + 20))

    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert max(fetched_days(provider).values()) == 1
    for i, got in enumerate(results):
        assert_frame_equal(got, make_bars("AAPL", START + days(i), START + days(i + 20)))


def test_sync_gaps_fetched_concurrently():
    """A sync call with several gaps fetches them in threads, up to max_concurrency."""
    provider = FakeProvider(latency=0.02)

    @range_cached(key="symbol", step="1D", max_concurrency=3, store=MemoryStore())
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return provider.get_bars_sync(symbol, start, end)

    for i in range(0, 30, 5):
        get_bars("AAPL", START + days(i), START + days(i))
    provider.max_in_flight = 0
    got = get_bars("AAPL", START, START + days(30))
    assert provider.max_in_flight == 3
    assert_frame_equal(got, make_bars("AAPL", START, START + days(30)))


def test_sync_provider_error_propagates():
    """A sync provider's exception propagates unchanged; the gap stays open."""
    provider = FakeProvider()

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return provider.get_bars_sync(symbol, start, end)

    provider.fail_next(KeyError("nope"))
    with pytest.raises(KeyError):
        get_bars("AAPL", START, START + days(3))
    assert get_bars.coverage("AAPL") == []
    assert len(get_bars("AAPL", START, START + days(3))) > 0


async def test_sync_wrapper_inside_a_running_loop():
    """Notebook style: a sync cached function called from inside a running loop."""
    provider = FakeProvider()

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return provider.get_bars_sync(symbol, start, end)

    asyncio.get_running_loop()  # we are inside one
    got = get_bars("AAPL", START, START + days(3))
    assert_frame_equal(got, make_bars("AAPL", START, START + days(3)))


# -- methods --------------------------------------------------------------------------


class Client:
    """A provider class whose own get_bars is cached; self is not part of the key."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider

    @range_cached(key=("symbol", "timeframe"), step="1D", store=MemoryStore())
    async def get_bars(self, symbol: str, start: D, end: D, timeframe: str = "D") -> pd.DataFrame:
        return await self.provider.get_bars(symbol, start, end, timeframe)

    @range_cached(step="1D", store=MemoryStore())
    def get_bars_sync(self, symbol: str, start: D, end: D) -> pd.DataFrame:
        return self.provider.get_bars_sync(symbol, start, end)


async def test_methods_are_cached_across_instances():
    """Two instances share the cache; the key excludes self."""
    provider = FakeProvider()
    a, b = Client(provider), Client(provider)
    await a.get_bars("AAPL", START, START + days(10))
    got = await b.get_bars("AAPL", START + days(2), START + days(8))
    a.get_bars_sync("AAPL", START, START + days(3))
    b.get_bars_sync("AAPL", START, START + days(3))
    assert provider.call_count == 2
    assert_frame_equal(got, make_bars("AAPL", START + days(2), START + days(8)))
    assert await Client.get_bars.coverage("AAPL", "D") == [
        (pd.Timestamp(START), pd.Timestamp(START + days(10)))
    ]
