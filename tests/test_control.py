"""Per-call control: ``.refresh``, ``.cached``, ``offline()``, ``disabled()``, ``stale_if_error``.

Every feature runs for a plain function, an ``async def`` one and a method,
against a MemoryStore and a ParquetStore.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import threading
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import rangememo
from rangememo import (
    CacheWarning,
    InvalidOption,
    MemoryStore,
    NotCached,
    ParquetStore,
    range_cached,
)

D = dt.datetime
UTC = dt.UTC


def day(m: int, d: int) -> D:
    return D(2024, m, d)


class Bars:
    """Daily bars; ``bump`` revises every value, ``fail_after`` makes the n+1-th call fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.bump = 0.0
        self.fail_after: int | None = None

    def __call__(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise ConnectionError("provider down")
        self.calls.append((start, end))
        index = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="1D", name="ts")
        close = index.month.to_numpy() * 100.0 + index.day.to_numpy() + self.bump
        return pd.DataFrame({"close": close, "sym": symbol}, index=index)


class Clock:
    def __init__(self, now: D) -> None:
        self.now = now

    def __call__(self) -> D:
        return self.now


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path)


def build(kind: str, provider: Any, store: Any, **options: Any) -> Any:
    """``provider`` behind the cache as a plain function, an async one, or a bound method."""
    options.setdefault("step", "1D")
    deco = range_cached(key="symbol", store=store, namespace="control", **options)
    if kind == "sync":

        @deco
        def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            return provider(symbol, start, end)

        return get
    if kind == "async":

        @deco
        async def aget(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            await asyncio.sleep(0)
            return provider(symbol, start, end)

        return aget

    class Client:
        @deco
        def bars(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
            return provider(symbol, start, end)

    return Client().bars


async def go(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


KINDS = ["sync", "async", "method"]


# -- refresh -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_replaces_revised_values(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    old = await go(get("AAPL", day(1, 1), day(1, 20)))
    bars.bump = 100.0  # the provider revises its history
    assert_frame_equal(
        await go(get("AAPL", day(1, 5), day(1, 10))), old.loc[day(1, 5) : day(1, 10)]
    )
    assert len(bars.calls) == 1
    new = await go(get.refresh("AAPL", day(1, 5), day(1, 10)))
    assert bars.calls[1:] == [(day(1, 5), day(1, 10))]
    expected = Bars()
    expected.bump = 100.0
    assert_frame_equal(new, expected("AAPL", day(1, 5), day(1, 10)))
    # What is stored now: revised in the refreshed range, as before around it; no more calls.
    after = await go(get("AAPL", day(1, 1), day(1, 20)))
    assert len(bars.calls) == 2
    assert_frame_equal(after.loc[day(1, 5) : day(1, 10)], new)
    assert_frame_equal(after.loc[: day(1, 4)], old.loc[: day(1, 4)])
    assert_frame_equal(after.loc[day(1, 11) :], old.loc[day(1, 11) :])


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_of_an_uncached_range_fetches_and_stores_it(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    got = await go(get.refresh("MSFT", day(2, 1), day(2, 3)))
    assert_frame_equal(got, Bars()("MSFT", day(2, 1), day(2, 3)))
    assert_frame_equal(await go(get.cached("MSFT", day(2, 1), day(2, 3))), got)
    assert len(bars.calls) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_is_atomic_when_the_provider_fails(kind, store):
    """Split by max_span into three calls, the third failing: nothing stored changes."""
    bars = Bars()
    get = build(kind, bars, store, max_span="4D")
    old = await go(get("AAPL", day(3, 1), day(3, 12)))
    before = len(bars.calls)
    bars.bump = 50.0
    bars.fail_after = before + 2
    with pytest.raises(ConnectionError):
        await go(get.refresh("AAPL", day(3, 1), day(3, 12)))
    assert len(bars.calls) == before + 2  # two pieces fetched, neither written
    bars.fail_after = len(bars.calls)  # any further call fails the test
    assert_frame_equal(await go(get.cached("AAPL", day(3, 1), day(3, 12))), old)
    assert_frame_equal(await go(get("AAPL", day(3, 1), day(3, 12))), old)


# -- cached ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_cached_answers_like_the_call_and_never_calls(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    full = await go(get("AAPL", day(1, 1), day(1, 31)))
    bars.fail_after = 0
    got = await go(get.cached("AAPL", day(1, 10), day(1, 12)))
    assert_frame_equal(got, full.loc[day(1, 10) : day(1, 12)])
    assert len(bars.calls) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_cached_lists_the_missing_ranges_with_inclusive_ends(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    await go(get("AAPL", day(1, 1), day(1, 10)))
    await go(get("AAPL", day(1, 20), day(1, 25)))
    bars.fail_after = 0
    with pytest.raises(NotCached) as info:
        await go(get.cached("AAPL", day(1, 5), day(1, 28)))
    err = info.value
    assert isinstance(err, LookupError) and isinstance(err, rangememo.RangememoError)
    assert err.key == ("AAPL",)  # the key as the engine names it in every message
    assert err.missing == [(day(1, 11), day(1, 19)), (day(1, 26), day(1, 28))]
    assert "2024-01-11" in str(err) and "2024-01-26" in str(err)
    with pytest.raises(NotCached) as info:  # a key never seen: all of it
        await go(get.cached("IBM", day(1, 5), day(1, 6)))
    assert info.value.missing == [(day(1, 5), day(1, 6))]
    assert len(bars.calls) == 2


async def test_cached_half_open_lists_exclusive_ends(store):
    bars = Bars()
    get = build("sync", bars, store, closed="left")
    get("AAPL", day(1, 1), day(1, 10))
    with pytest.raises(NotCached) as info:
        get.cached("AAPL", day(1, 5), day(1, 15))
    assert info.value.missing == [(day(1, 10), day(1, 15))]


# -- offline() and disabled() ----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_offline_answers_from_the_cache_only(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    full = await go(get("AAPL", day(1, 1), day(1, 10)))
    with rangememo.offline():
        assert_frame_equal(await go(get("AAPL", day(1, 1), day(1, 10))), full)
        with pytest.raises(NotCached) as info:
            await go(get("AAPL", day(1, 1), day(1, 12)))
        assert info.value.missing == [(day(1, 11), day(1, 12))]
        with pytest.raises(NotCached):
            await go(get.prefetch("AAPL", day(1, 1), day(1, 12)))
        with pytest.raises(NotCached):  # refresh needs the provider
            await go(get.refresh("AAPL", day(1, 1), day(1, 10)))
    assert len(bars.calls) == 1
    await go(get("AAPL", day(1, 1), day(1, 12)))  # online again once the context is left
    assert len(bars.calls) == 2


class NoStore(MemoryStore):
    """A store that fails the test on any use once ``armed`` (after decoration)."""

    armed = False

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("__") or not object.__getattribute__(self, "armed"):
            return object.__getattribute__(self, name)
        raise AssertionError(f"store touched: {name}")


def unstored(kind: str, provider: Any) -> Any:
    store = NoStore()
    get = build(kind, provider, store)
    store.armed = True
    return get


@pytest.mark.parametrize("kind", KINDS)
async def test_disabled_calls_through_and_touches_no_store(kind):
    bars = Bars()
    get = unstored(kind, bars)
    with rangememo.disabled():
        a = await go(get("AAPL", day(1, 1), day(1, 10)))
        b = await go(get("AAPL", day(1, 1), day(1, 10)))
        c = await go(get.refresh("AAPL", day(1, 1), day(1, 3)))
        await go(get.prefetch("AAPL", day(1, 1), day(1, 10)))
        with pytest.raises(NotCached):
            await go(get.cached("AAPL", day(1, 1), day(1, 10)))
    assert_frame_equal(a, Bars()("AAPL", day(1, 1), day(1, 10)))
    assert_frame_equal(a, b)
    assert_frame_equal(c, Bars()("AAPL", day(1, 1), day(1, 3)))
    assert bars.calls == [(day(1, 1), day(1, 10))] * 2 + [(day(1, 1), day(1, 3))]


async def test_disabled_leaves_a_real_store_empty(store):
    bars = Bars()
    get = build("sync", bars, store)
    with rangememo.disabled():
        get("AAPL", day(1, 1), day(1, 10))
        get("AAPL", day(1, 1), day(1, 10))
    assert len(bars.calls) == 2
    assert get.coverage("AAPL") == []


def test_offline_in_one_thread_does_not_reach_another(store):
    bars = Bars()
    get = build("sync", bars, store)
    entered, done = threading.Event(), threading.Event()
    seen: list[Any] = []

    def offline_worker() -> None:
        with rangememo.offline():
            entered.set()
            done.wait(10)
            try:
                get("AAPL", day(5, 1), day(5, 3))
            except NotCached as exc:
                seen.append(exc)

    worker = threading.Thread(target=offline_worker)
    worker.start()
    assert entered.wait(10)
    get("AAPL", day(1, 1), day(1, 3))  # this thread is online
    done.set()
    worker.join(10)
    assert len(bars.calls) == 1 and len(seen) == 1


async def test_offline_in_one_task_does_not_reach_another(store):
    bars = Bars()
    get = build("async", bars, store)
    entered, release = asyncio.Event(), asyncio.Event()

    async def offline_task() -> str:
        with rangememo.offline():
            entered.set()
            await release.wait()
            try:
                await get("AAPL", day(5, 1), day(5, 3))
            except NotCached:
                return "refused"
            return "served"

    async def online_task() -> pd.DataFrame:
        await entered.wait()
        return await get("AAPL", day(1, 1), day(1, 3))

    off = asyncio.create_task(offline_task())
    on = asyncio.create_task(online_task())
    await on
    release.set()
    assert await off == "refused"
    assert len(bars.calls) == 1
    # A task created inside the context inherits it.
    with rangememo.offline():
        inner = asyncio.create_task(get("AAPL", day(6, 1), day(6, 2)))
    with pytest.raises(NotCached):
        await inner


@pytest.mark.parametrize("kind", KINDS)
async def test_env_offline(kind, store, monkeypatch):
    bars = Bars()
    get = build(kind, bars, store)
    await go(get("AAPL", day(1, 1), day(1, 3)))
    monkeypatch.setenv("RANGEMEMO_OFFLINE", "1")
    await go(get("AAPL", day(1, 1), day(1, 3)))
    with pytest.raises(NotCached):
        await go(get("AAPL", day(1, 1), day(1, 4)))
    with rangememo.disabled():  # an entered context wins over the environment
        await go(get("AAPL", day(1, 1), day(1, 4)))
    assert len(bars.calls) == 2
    monkeypatch.setenv("RANGEMEMO_OFFLINE", "0")
    await go(get("AAPL", day(1, 1), day(1, 4)))
    assert len(bars.calls) == 3


@pytest.mark.parametrize("kind", KINDS)
async def test_env_disable(kind, monkeypatch):
    bars = Bars()
    get = unstored(kind, bars)
    monkeypatch.setenv("RANGEMEMO_DISABLE", "true")
    for _ in range(2):
        await go(get("AAPL", day(1, 1), day(1, 3)))
    assert len(bars.calls) == 2


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"RANGEMEMO_OFFLINE": "maybe"}, "'maybe'"),
        ({"RANGEMEMO_DISABLE": "2"}, "'2'"),
        ({"RANGEMEMO_OFFLINE": "1", "RANGEMEMO_DISABLE": "1"}, "both"),
    ],
)
def test_bad_env_values_are_named(env, needle, monkeypatch):
    get = build("sync", Bars(), MemoryStore())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidOption, match=needle):
        get("AAPL", day(1, 1), day(1, 3))


# -- stale_if_error ----------------------------------------------------------------------


class LiveBars:
    """Hourly bars up to now; the bar holding now has close = minutes into it."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.calls, self.down = clock, 0, False

    def __call__(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        self.calls += 1
        if self.down:
            raise TimeoutError("provider timed out")
        now = pd.Timestamp(self.clock())
        index = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="1h", name="ts")
        index = index[index <= now]
        forming = now.floor("1h")
        close = [(now - t).total_seconds() / 60 if t == forming else float(t.hour) for t in index]
        return pd.DataFrame({"close": np.array(close, dtype="float64")}, index=index)


@pytest.mark.parametrize("kind", KINDS)
async def test_stale_if_error_serves_the_stored_live_edge(kind, store):
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock)
    get = build(kind, live, store, step="1h", clock=clock, stale_if_error=True)
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 15)
    first = await go(get("SPY", a, b))
    assert first["close"].iloc[-1] == 30.0  # the forming bar
    clock.now = D(2024, 10, 10, 15, 45)
    live.down = True
    with pytest.warns(CacheWarning, match="provisional"):
        stale = await go(get("SPY", a, b))
    assert_frame_equal(stale, first)
    assert live.calls == 2  # it did try
    # A range never fetched still raises, stale_if_error or not.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TimeoutError):
            await go(get("SPY", D(2024, 10, 10, 5), b))
    # Back up: the live edge is fetched afresh.
    live.down = False
    fresh = await go(get("SPY", a, b))
    assert fresh["close"].iloc[-1] == 45.0


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_without_stale_if_error_the_failure_raises(kind, store):
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock)
    get = build(kind, live, store, step="1h", clock=clock)
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 15)
    await go(get("SPY", a, b))
    clock.now = D(2024, 10, 10, 15, 45)
    live.down = True
    with pytest.raises(TimeoutError):
        await go(get("SPY", a, b))


async def test_stale_if_error_with_ttl_serves_expired_rows(store):
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock)
    get = build("sync", live, store, step="1h", clock=clock, stale_if_error=True, ttl="10min")
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 15)
    first = get("SPY", a, b)
    clock.now = D(2024, 10, 10, 15, 35)  # within ttl: a hit, no call
    assert_frame_equal(get("SPY", a, b), first)
    assert live.calls == 1
    clock.now = D(2024, 10, 10, 15, 50)  # expired
    live.down = True
    with pytest.warns(CacheWarning):
        assert_frame_equal(get("SPY", a, b), first)


async def test_stale_if_error_does_not_swallow_refresh_failures(store):
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock)
    get = build("sync", live, store, step="1h", clock=clock, stale_if_error=True)
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 15)
    get("SPY", a, b)
    live.down = True
    with pytest.raises(TimeoutError):
        get.refresh("SPY", a, b)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_bool_options_are_checked(value):
    for name in ("stale_if_error", "coerce_bounds"):
        with pytest.raises(InvalidOption, match=name):
            range_cached(key="symbol", **{name: value})


def test_the_names_are_public():
    assert {"offline", "disabled", "NotCached"} <= set(rangememo.__all__)
    assert issubclass(NotCached, LookupError) and issubclass(NotCached, rangememo.RangememoError)
    assert isinstance(rangememo.offline(), rangememo.offline().__class__)
    assert UTC is dt.UTC


class Revising:
    """Int-indexed rows; ``drop`` leaves rows out (a revision that deletes them)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.drop: set[int] = set()
        self.scale = 1

    def __call__(self, symbol: str, start: int, end: int) -> pd.DataFrame:
        self.calls.append((start, end))
        kept = [i for i in range(start, end) if i not in self.drop]
        index = pd.Index(kept, name="i", dtype="int64")
        return pd.DataFrame({"x": (index.to_numpy() * self.scale).astype("int64")}, index=index)


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_drops_rows_the_provider_no_longer_has(kind, store):
    rows = Revising()
    get = build(kind, rows, store, step=None, closed="left")
    await go(get("K", 0, 10))
    rows.drop, rows.scale = {3, 4}, 7
    got = await go(get.refresh("K", 2, 6))
    assert list(got.index) == [2, 5] and list(got["x"]) == [14, 35]
    whole = await go(get("K", 0, 10))
    assert list(whole.index) == [0, 1, 2, 5, 6, 7, 8, 9]
    assert list(whole["x"]) == [0, 1, 14, 35, 6, 7, 8, 9]
    assert rows.calls == [(0, 10), (2, 6)]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_refresh_to_an_empty_answer_empties_the_range(kind, store):
    rows = Revising()
    get = build(kind, rows, store, step=None, closed="left")
    await go(get("K", 0, 10))
    rows.drop = set(range(100))
    got = await go(get.refresh("K", 0, 5))
    assert got.empty and list(got.columns) == ["x"] and got["x"].dtype == np.dtype("int64")
    whole = await go(get.cached("K", 0, 10))
    assert list(whole.index) == [5, 6, 7, 8, 9]
    assert len(rows.calls) == 2


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_refresh_of_an_empty_range_calls_through(kind, store):
    rows = Revising()
    get = build(kind, rows, store, step=None, closed="left")
    got = await go(get.refresh("K", 5, 5))
    assert got.empty and rows.calls == [(5, 5)]


def test_refreshed_rows_are_what_a_new_process_reads(tmp_path):
    """The replacement is on disk, not only in the ParquetStore's memory layer."""
    bars = Bars()
    get = build("sync", bars, ParquetStore(tmp_path))
    get("AAPL", day(1, 1), day(1, 10))
    bars.bump = 9.0
    fresh = get.refresh("AAPL", day(1, 1), day(1, 10))
    reopened = build("sync", Bars(), ParquetStore(tmp_path))
    # check_freq: a reopened ParquetStore does not keep the index's freq, refresh or not.
    assert_frame_equal(reopened.cached("AAPL", day(1, 1), day(1, 10)), fresh, check_freq=False)


def test_refresh_while_other_threads_read(store):
    """Readers during a refresh see either the old or the new rows, never a mix or a gap."""
    bars = Bars()
    get = build("sync", bars, store, max_span="3D")
    old = get("AAPL", day(1, 1), day(1, 12))
    bars.bump = 1000.0
    new = Bars()
    new.bump = 1000.0
    want_new = new("AAPL", day(1, 1), day(1, 12))
    stop, errors = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                got = get.cached("AAPL", day(1, 1), day(1, 12))
                want = want_new if got["close"].iloc[0] >= 1000.0 else old
                # check_freq: a ParquetStore read can drop the index's freq (refresh or not).
                assert_frame_equal(got, want, check_freq=False)
            except Exception as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(3):
        get.refresh("AAPL", day(1, 1), day(1, 12))
    stop.set()
    for t in threads:
        t.join(10)
    assert errors == []
    assert_frame_equal(get.cached("AAPL", day(1, 1), day(1, 12)), want_new, check_freq=False)


async def test_refresh_across_the_live_edge_keeps_it_provisional(store):
    """Split by max_span, the refreshed range's forming bar is still refetched later."""
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock)
    get = build("sync", live, store, step="1h", clock=clock, max_span="2h")
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 15)
    get("SPY", a, b)
    calls = live.calls
    got = get.refresh("SPY", a, b)
    assert got["close"].iloc[-1] == 30.0 and len(got) == 7
    assert live.calls - calls == 4  # 9-10, 11-12, 13-14, 15
    clock.now = D(2024, 10, 10, 15, 50)
    again = get("SPY", a, b)
    assert live.calls - calls == 5  # only the forming bar again
    assert again["close"].iloc[-1] == 50.0
    assert_frame_equal(again.iloc[:-1], got.iloc[:-1])


class Widening:
    """Int closes before the 6th of the month, floats from then on (a schema change)."""

    def __init__(self) -> None:
        self.bump = 0

    def __call__(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        index = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="1D", name="ts")
        days = index.day.to_numpy() + self.bump
        if index[0].day >= 6:
            return pd.DataFrame({"close": days.astype("float64") + 0.5}, index=index)
        return pd.DataFrame({"close": days.astype("int64")}, index=index)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_refresh_whose_pieces_differ_in_schema(kind, store):
    rows = Widening()
    get = build(kind, rows, store, max_span="5D")
    before = await go(get("AAPL", day(1, 1), day(1, 10)))
    rows.bump = 100
    got = await go(get.refresh("AAPL", day(1, 1), day(1, 10)))
    assert list(got["close"]) == [101, 102, 103, 104, 105, 106.5, 107.5, 108.5, 109.5, 110.5]
    assert got["close"].dtype == before["close"].dtype
    assert_frame_equal(await go(get.cached("AAPL", day(1, 1), day(1, 10))), got)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_offline_counts_an_expired_live_edge_as_missing(kind, store):
    """The stored forming bar is not final data: offline names it rather than serve it."""
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock)
    get = build(kind, live, store, step="1h", clock=clock)
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 15)
    first = await go(get("SPY", a, b))
    clock.now = D(2024, 10, 11, 9)
    with rangememo.offline():
        with pytest.raises(NotCached) as info:
            await go(get("SPY", a, b))
        assert info.value.missing == [(b, b)]
        settled = await go(get("SPY", a, D(2024, 10, 10, 14)))
    assert_frame_equal(settled, first.iloc[:-1])
    assert live.calls == 1


async def test_offline_and_disabled_nest_innermost_wins(store):
    bars = Bars()
    get = build("sync", bars, store)
    with rangememo.offline():
        with rangememo.disabled():
            get("AAPL", day(1, 1), day(1, 2))
        with pytest.raises(NotCached):
            get("AAPL", day(1, 1), day(1, 2))
    assert len(bars.calls) == 1
    assert rangememo._engine.control.mode() == "online"


async def test_sync_function_offline_inside_a_to_thread_call(store):
    """asyncio.to_thread copies the context: the worker thread is offline too."""
    bars = Bars()
    get = build("sync", bars, store)
    with rangememo.offline(), pytest.raises(NotCached):
        await asyncio.to_thread(get, "AAPL", day(1, 1), day(1, 2))
    assert bars.calls == []
