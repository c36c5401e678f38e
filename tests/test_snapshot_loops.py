"""Snapshot answers and several event loops (issue "Exact in the real world", items 2 and 6).

A call answers from one consistent view of its key plus the pieces it fetched (or
waited for): an ``invalidate`` or ``cache_clear`` that lands while it runs only
affects later calls. One ``async def`` function may be called from several threads
that each run their own event loop: single flight still holds across the loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import queue
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import MemoryStore, ParquetStore, range_cached
from rangememo._stores.base import Store
from rangememo.testing import make_bars

DAY0 = dt.datetime(2024, 1, 1)


def day(n: int) -> dt.datetime:
    return DAY0 + dt.timedelta(days=n)


def bars(symbol: str, first: int, last: int) -> pd.DataFrame:
    """The uncached answer: one bar a day, weekends included (31 days = 31 rows)."""
    return make_bars(symbol, day(first), day(last), skip_weekends=False)


def days_asked(ranges: list[tuple[dt.datetime, dt.datetime]]) -> Counter[dt.datetime]:
    seen: Counter[dt.datetime] = Counter()
    for a, b in ranges:
        seen.update(pd.date_range(a, b, freq="D").to_pydatetime())
    return seen


@pytest.fixture(params=["memory", "parquet"])
def make_store(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[], Store]:
    """A factory of the store under test (a ParquetStore reopens the same directory)."""
    if request.param == "memory":
        store = MemoryStore()
        return lambda: store
    return lambda: ParquetStore(tmp_path / "store", durable=False)


class Recorder:
    """Provider calls as ``(start, end)``, and a hook run on the n-th call."""

    def __init__(self) -> None:
        self.calls: list[tuple[dt.datetime, dt.datetime]] = []
        self.hooks: dict[int, Callable[[], Any]] = {}
        self.lock = threading.Lock()

    def record(self, start: dt.datetime, end: dt.datetime) -> Callable[[], Any] | None:
        with self.lock:
            self.calls.append((start, end))
            return self.hooks.pop(len(self.calls), None)


def sync_function(store: Store, rec: Recorder, **options: Any) -> Any:
    @range_cached(key="symbol", step="1D", store=store, namespace="snapshot.sync", **options)
    def get(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        hook = rec.record(start, end)
        if hook is not None:
            hook()
        return make_bars(symbol, start, end, skip_weekends=False)

    return get


def async_function(store: Store, rec: Recorder, **options: Any) -> Any:
    @range_cached(key="symbol", step="1D", store=store, namespace="snapshot.async", **options)
    async def get(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        hook = rec.record(start, end)
        if hook is not None:
            result = hook()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(0)  # a fetch lets other tasks run, as real I/O does
        return make_bars(symbol, start, end, skip_weekends=False)

    return get


# -- invalidate / cache_clear while a call is under way ----------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_invalidate_between_gaps_keeps_the_answer_whole(make_store, concurrency):
    """The provider invalidates days the call already had: all 31 rows still come back."""
    rec = Recorder()
    get = sync_function(make_store(), rec, max_concurrency=concurrency)
    get("AAA", day(5), day(9))
    get("AAA", day(15), day(19))
    # Gaps [0, 4], [10, 14], [20, 30]: the second one forgets days 5..7 mid-call.
    rec.hooks[4] = lambda: get.invalidate("AAA", start=day(5), end=day(7))
    got = get("AAA", day(0), day(30))
    assert_frame_equal(got, bars("AAA", 0, 30))
    assert len(rec.calls) == 5
    # ...and it does affect later calls: those days are fetched again, once.
    assert_frame_equal(get("AAA", day(0), day(30)), bars("AAA", 0, 30))
    assert rec.calls[5:] == [(day(5), day(7))]


async def test_invalidate_between_gaps_keeps_the_answer_whole_async(make_store):
    """The async path: the provider awaits an invalidate of days the call already had."""
    rec = Recorder()
    get = async_function(make_store(), rec, max_concurrency=1)
    await get("AAA", day(5), day(9))
    await get("AAA", day(15), day(19))
    rec.hooks[4] = lambda: get.invalidate("AAA", start=day(5), end=day(7))
    got = await get("AAA", day(0), day(30))
    assert_frame_equal(got, bars("AAA", 0, 30))
    assert_frame_equal(await get("AAA", day(0), day(30)), bars("AAA", 0, 30))
    assert rec.calls[5:] == [(day(5), day(7))]


def test_cache_clear_during_a_call_keeps_the_answer_whole(make_store):
    """``cache_clear`` from inside the provider: this answer is whole, the next one refetches."""
    rec = Recorder()
    get = sync_function(make_store(), rec, max_concurrency=1)
    get("AAA", day(10), day(19))
    rec.hooks[2] = get.cache_clear  # the first of the two gaps [0, 9], [20, 30]
    assert_frame_equal(get("AAA", day(0), day(30)), bars("AAA", 0, 30))
    assert_frame_equal(get("AAA", day(0), day(30)), bars("AAA", 0, 30))
    if isinstance(get.cache.store, MemoryStore):
        # The first gap's fetch began before the clear: it commits nothing (its rows
        # may be what the clear was for; decisions.md), so 0..19 is fetched again.
        assert rec.calls[3:] == [(day(0), day(19))]
    else:
        # The key lock orders a ParquetStore's commit and clear (the clear, called
        # from inside the provider, re-enters the lock): only what it dropped.
        assert rec.calls[3:] == [(day(10), day(19))]


async def test_cache_clear_during_an_async_call_keeps_the_answer_whole(make_store):
    """The async path of ``cache_clear`` mid-call."""
    rec = Recorder()
    get = async_function(make_store(), rec, max_concurrency=1)
    await get("AAA", day(10), day(19))
    rec.hooks[3] = get.cache_clear  # the second gap
    assert_frame_equal(await get("AAA", day(0), day(30)), bars("AAA", 0, 30))
    assert_frame_equal(await get("AAA", day(0), day(30)), bars("AAA", 0, 30))


def test_invalidate_of_the_whole_key_mid_call(make_store):
    """Forgetting the whole key (not a part) mid-call: the answer is whole."""
    rec = Recorder()
    get = sync_function(make_store(), rec)
    get("AAA", day(0), day(20))
    rec.hooks[2] = lambda: get.invalidate("AAA")
    assert_frame_equal(get("AAA", day(0), day(30)), bars("AAA", 0, 30))
    # MemoryStore: the gap's fetch began before the invalidate and commits nothing.
    kept = [] if isinstance(get.cache.store, MemoryStore) else [(day(21), day(30))]
    assert get.coverage("AAA") == kept


def test_readers_racing_an_invalidator_always_get_whole_answers(make_store):
    """Threads reading a warm key while another thread invalidates parts of it, bounded in count."""
    rec = Recorder()
    get = sync_function(make_store(), rec)
    get("AAA", day(0), day(40))
    expected = bars("AAA", 0, 40)
    start = threading.Barrier(5)
    bad: list[int] = []

    def read() -> None:
        start.wait()
        for _ in range(150):
            got = get("AAA", day(0), day(40))
            if len(got) != len(expected) or not got.equals(expected):
                bad.append(len(got))

    def invalidate() -> None:
        rng = random.Random(7)
        start.wait()
        for _ in range(150):
            a = rng.randrange(0, 38)
            get.invalidate("AAA", start=day(a), end=day(a + rng.randrange(0, 3)))

    threads = [threading.Thread(target=read) for _ in range(4)]
    threads.append(threading.Thread(target=invalidate))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
    assert_frame_equal(get("AAA", day(0), day(40)), expected)


async def test_async_readers_racing_an_invalidator(make_store):
    """Concurrent async readers (one loop) while a task invalidates parts of the key."""
    rec = Recorder()
    get = async_function(make_store(), rec)
    await get("AAA", day(0), day(40))
    expected = bars("AAA", 0, 40)

    async def read() -> list[int]:
        out = []
        for _ in range(40):
            got = await get("AAA", day(0), day(40))
            if not got.equals(expected):
                out.append(len(got))
            await asyncio.sleep(0)  # a hit never yields: let the invalidator in
        return out

    async def invalidate() -> None:
        rng = random.Random(3)
        for _ in range(60):
            a = rng.randrange(0, 38)
            await get.invalidate("AAA", start=day(a), end=day(a + 2))
            await asyncio.sleep(0)  # let the readers run in between

    *bad, _ = await asyncio.gather(*(read() for _ in range(4)), invalidate())
    assert bad == [[], [], [], []]


# -- several event loops -------------------------------------------------------------------


def run_in_threads(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run each job in its own thread; their results (re-raising the first error)."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # reported in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


class Gate:
    """A provider that reports each call as it starts and holds it until released.

    Held calls wait on their own loop (not in a thread), so a loop that ends
    cancels them without waiting for the gate. Each fetch also reports when it
    asks for the key's lock (a call has planned by then; on a ParquetStore a
    held fetch keeps the next one from starting, so this is all there is to see).
    """

    def __init__(self) -> None:
        self.started: queue.Queue[tuple[dt.datetime, dt.datetime]] = queue.Queue()
        self.locking: queue.Queue[None] = queue.Queue()
        self.calls: list[tuple[dt.datetime, dt.datetime]] = []
        self.fail: set[tuple[dt.datetime, dt.datetime]] = set()  # calls that raise
        self._lock = threading.Lock()
        self._open = False
        self._held: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def function(self, store: Store) -> Any:
        alock = store.alock

        @contextlib.asynccontextmanager
        async def signalling(namespace: str, key: Any) -> AsyncIterator[None]:
            self.locking.put(None)
            async with alock(namespace, key):
                yield

        store.alock = signalling  # type: ignore[method-assign]

        # readahead=None: the test holds and counts each requested range's flight.
        @range_cached(
            key="symbol", step="1D", store=store, namespace="snapshot.loop", readahead=None
        )
        async def get(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
            self.calls.append((start, end))
            self.started.put((start, end))
            await self._wait()
            if (start, end) in self.fail:
                raise LookupError(f"no bars for {start}..{end}")
            return make_bars(symbol, start, end, skip_weekends=False)

        return get

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._open:
                return
            self._held.append((loop, future))
        await future

    def release(self) -> None:
        with self._lock:
            self._open, held, self._held = True, self._held, []
        for loop, future in held:
            with contextlib.suppress(RuntimeError):  # that loop is gone
                loop.call_soon_threadsafe(_settle, future)

    def next_call(self) -> tuple[dt.datetime, dt.datetime]:
        return self.started.get(timeout=30)

    def next_lock(self) -> None:
        self.locking.get(timeout=30)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def test_four_event_loops_share_their_flights(make_store):
    """Four threads, each with ``asyncio.run``, overlapping ranges: one call per gap, exact."""
    gate = Gate()
    get = gate.function(make_store())
    windows = [(0, 9), (5, 14), (10, 19), (15, 24)]
    threads: list[threading.Thread] = []
    results: dict[int, pd.DataFrame] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        a, b = windows[i]
        try:
            results[i] = asyncio.run(get("AAA", day(a), day(b)))
        except BaseException as exc:
            errors.append(exc)

    # Staggered: each thread starts once the previous one has planned (its fetch
    # asks for the key's lock), so every thread after the first waits for a
    # flight that belongs to another loop.
    for i in range(4):
        threads.append(threading.Thread(target=run, args=(i,)))
        threads[-1].start()
        gate.next_lock()
    assert gate.next_call() == (day(0), day(9))
    gate.release()
    for t in threads:
        t.join()
    assert errors == []
    for i, (a, b) in enumerate(windows):
        assert_frame_equal(results[i], bars("AAA", a, b))
    assert max(days_asked(gate.calls).values()) == 1
    assert len(gate.calls) == 4


def test_event_loops_gathering_overlapping_ranges(make_store):
    """Each of four loops gathers overlapping requests: every day fetched once, all exact."""
    rec = Recorder()
    get = async_function(make_store(), rec)
    barrier = threading.Barrier(4)
    windows = [(i * 3, i * 3 + 20) for i in range(8)]

    def job(seed: int) -> Callable[[], list[pd.DataFrame]]:
        order = random.Random(seed).sample(windows, len(windows))

        async def main() -> list[pd.DataFrame]:
            got = await asyncio.gather(*(get("AAA", day(a), day(b)) for a, b in order))
            for frame, (a, b) in zip(got, order, strict=True):
                assert_frame_equal(frame, bars("AAA", a, b))
            return got

        def run() -> list[pd.DataFrame]:
            barrier.wait()
            return asyncio.run(main())

        return run

    run_in_threads([job(s) for s in range(4)])
    assert max(days_asked(rec.calls).values()) == 1


def test_a_flight_whose_loop_ends_is_taken_over_by_a_waiter_on_another_loop(make_store):
    """A's caller is cancelled and its loop ends; B, on another loop, waited for A's fetch."""
    gate = Gate()
    get = gate.function(make_store())
    loop_a: list[asyncio.AbstractEventLoop] = []
    task_a: list[asyncio.Task[Any]] = []
    outcome: dict[str, Any] = {}

    def run_a() -> None:
        async def main() -> None:
            loop_a.append(asyncio.get_running_loop())
            task = asyncio.create_task(get("AAA", day(0), day(9)))
            task_a.append(task)
            await task

        try:
            asyncio.run(main())
        except asyncio.CancelledError:
            outcome["a"] = "cancelled"

    def run_b() -> None:
        outcome["b"] = asyncio.run(get("AAA", day(5), day(14)))

    a = threading.Thread(target=run_a)
    a.start()
    gate.next_lock()
    assert gate.next_call() == (day(0), day(9))  # A's fetch is under way
    b = threading.Thread(target=run_b)
    b.start()
    gate.next_lock()  # B waits for A's part and fetches its own
    loop_a[0].call_soon_threadsafe(task_a[0].cancel)
    a.join()  # asyncio.run cancelled A's fetch on its way out
    assert outcome["a"] == "cancelled"
    gate.release()
    b.join()
    # B fetched itself what A's cancelled fetch never committed.
    assert gate.calls == [(day(0), day(9)), (day(10), day(14)), (day(5), day(9))]
    assert_frame_equal(outcome["b"], bars("AAA", 5, 14))
    assert_frame_equal(asyncio.run(get("AAA", day(5), day(14))), bars("AAA", 5, 14))


def test_a_failed_fetch_fails_its_waiters_on_other_loops(make_store):
    """Loop A's fetch raises: B, waiting for it on another loop, gets that same error."""
    gate = Gate()
    gate.fail = {(day(0), day(9))}
    get = gate.function(make_store())
    outcome: dict[str, BaseException] = {}

    def run(name: str, a: int, b: int) -> None:
        try:
            asyncio.run(get("AAA", day(a), day(b)))
        except LookupError as exc:
            outcome[name] = exc

    first = threading.Thread(target=run, args=("a", 0, 9))
    first.start()
    gate.next_lock()
    second = threading.Thread(target=run, args=("b", 5, 14))  # waits for A's fetch
    second.start()
    gate.next_lock()
    gate.release()
    first.join()
    second.join()
    assert set(outcome) == {"a", "b"}
    assert outcome["a"] is outcome["b"]  # the one exception, shared
    assert not any(a <= day(5) <= b for a, b in _covered(get))


def _covered(get: Any) -> list[tuple[dt.datetime, dt.datetime]]:
    return asyncio.run(get.coverage("AAA"))
