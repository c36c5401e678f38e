"""Adversarial tests of per-call control and bad input.

``refresh``, ``cached``/``NotCached``, ``offline()``/``disabled()`` (nested, across
threads, tasks, ``asyncio.to_thread`` and generators), the environment variables,
``stale_if_error``, ``coerce_bounds``, ``invalidate`` and ``cache_info``, on plain,
``async def`` and method wrappers, against a MemoryStore and a ParquetStore. Bad
bounds must raise an error naming the value, never call the provider, and leave
everything cached before intact and served without a provider call.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import decimal
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
    InvalidRange,
    MemoryStore,
    NotCached,
    ParquetStore,
    range_cached,
)
from rangememo._engine.control import mode

D = dt.datetime
NY = "America/New_York"
KINDS = ["sync", "async", "method"]


class Bars:
    """Weekday daily bars at midnight of the bounds' zone; counts every call.

    ``rev`` shifts every value (a vendor revising history); ``fail`` makes calls raise;
    ``pad`` returns that many extra days either side (an API rounding to weeks).
    """

    def __init__(self, pad: int = 0) -> None:
        self.calls: list[tuple[Any, Any, Any]] = []
        self.rev = 0.0
        self.fail = False
        self.pad = pad

    def __call__(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        self.calls.append((symbol, start, end))
        if self.fail:
            raise ConnectionError("provider down")
        s, e = pd.Timestamp(start), pd.Timestamp(end)
        if self.pad:
            s, e = s - pd.Timedelta(days=self.pad), e + pd.Timedelta(days=self.pad)
        index = pd.date_range(s, e, freq="1D", name="ts")
        index = index[index.day_of_week < 5]
        day = index.day.to_numpy()
        return pd.DataFrame(
            {
                "close": index.month.to_numpy() * 100.0 + day + self.rev,
                "volume": (day * 10).astype("int32"),
                "sym": pd.Series([symbol] * len(index), dtype=object).to_numpy(),
            },
            index=index,
        )


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path / "cache")


def build(kind: str, provider: Any, store: Any, **options: Any) -> Any:
    options.setdefault("step", "1D")
    options.setdefault("readahead", None)
    deco = range_cached(key="symbol", store=store, namespace=f"adv-{kind}", **options)
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


# -- refresh -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_of_a_partly_cached_range_replaces_exactly_that_range(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 10)))
    await go(get("AAPL", D(2024, 1, 20), D(2024, 1, 31)))
    old = await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 10)))
    bars.calls.clear()
    bars.rev = 1000.0
    fresh = await go(get.refresh("AAPL", D(2024, 1, 8), D(2024, 1, 23)))
    # One call, for exactly the range asked: nothing widened, nothing outside.
    assert bars.calls == [("AAPL", D(2024, 1, 8), D(2024, 1, 23))]
    assert_frame_equal(fresh, bars("AAPL", D(2024, 1, 8), D(2024, 1, 23)))
    bars.calls.clear()
    whole = await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 31)))
    assert bars.calls == []  # the hole between the two pieces is now covered
    assert_frame_equal(whole.loc[: D(2024, 1, 7)], old.loc[: D(2024, 1, 7)])
    assert (whole.loc[D(2024, 1, 8) : D(2024, 1, 23), "close"] > 1000).all()
    assert (whole.loc[D(2024, 1, 24) :, "close"] < 1000).all()


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_drops_rows_a_padding_provider_returns_outside_the_range(kind, store):
    bars = Bars(pad=3)
    get = build(kind, bars, store)
    before = await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 31)))
    bars.rev = 1000.0
    fresh = await go(get.refresh("AAPL", D(2024, 1, 10), D(2024, 1, 12)))
    assert list(fresh.index) == list(pd.date_range("2024-01-10", "2024-01-12", name="ts"))
    bars.calls.clear()
    after = await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 31)))
    assert bars.calls == []
    outside = ~after.index.isin(pd.date_range("2024-01-10", "2024-01-12"))
    assert_frame_equal(after[outside], before[outside])
    assert (after.loc[D(2024, 1, 10) : D(2024, 1, 12), "close"] > 1000).all()


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_under_offline_refuses_and_under_disabled_leaves_the_store(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    before = await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 31)))
    bars.calls.clear()
    bars.rev = 1000.0
    with rangememo.offline(), pytest.raises(NotCached):
        await go(get.refresh("AAPL", D(2024, 1, 5), D(2024, 1, 9)))
    assert bars.calls == []
    with rangememo.disabled():
        direct = await go(get.refresh("AAPL", D(2024, 1, 5), D(2024, 1, 9)))
    assert len(bars.calls) == 1 and (direct["close"] > 1000).all()
    bars.calls.clear()
    assert_frame_equal(await go(get.cached("AAPL", D(2024, 1, 1), D(2024, 1, 31))), before)
    assert bars.calls == []


async def test_refresh_with_bad_bounds_calls_nothing_and_keeps_the_cache(store):
    bars = Bars()
    get = build("sync", bars, store)
    before = get("AAPL", D(2024, 1, 1), D(2024, 1, 31))
    bars.calls.clear()
    with pytest.raises(InvalidRange, match="2024-01-20"):
        get.refresh("AAPL", D(2024, 1, 20), D(2024, 1, 10))
    with pytest.raises(TypeError, match="2024-01-12"):
        get.refresh("AAPL", D(2024, 1, 10), "2024-01-12")
    assert bars.calls == []
    assert_frame_equal(get.cached("AAPL", D(2024, 1, 1), D(2024, 1, 31)), before)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_failed_refresh_of_a_partly_cached_range_keeps_old_rows_and_holes(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    before = await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 10)))
    bars.fail = True
    with pytest.raises(ConnectionError):
        await go(get.refresh("AAPL", D(2024, 1, 5), D(2024, 1, 20)))
    bars.fail = False
    bars.calls.clear()
    assert_frame_equal(await go(get.cached("AAPL", D(2024, 1, 1), D(2024, 1, 10))), before)
    with pytest.raises(NotCached) as info:
        await go(get.cached("AAPL", D(2024, 1, 1), D(2024, 1, 20)))
    assert info.value.missing == [(D(2024, 1, 11), D(2024, 1, 20))]
    assert bars.calls == []


def test_refresh_wins_over_an_older_fetch_still_in_flight(store):
    """A fetch that started before a refresh must not overwrite the refreshed rows.

    Thread A's ordinary call is stuck in the provider with revision 0 when the vendor
    revises its history and thread B refreshes the whole range (revision 1). Whatever
    order the two commit in, the refresh fetched later: the next call must serve what
    the refresh answered.
    """
    gate, stuck = threading.Event(), threading.Event()
    rev = {"n": 0.0}

    def provider(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        n = rev["n"]
        if start == D(2024, 1, 6) and n == 0:
            stuck.set()
            gate.wait(10)
        index = pd.date_range(start, end, freq="1D", name="ts")
        return pd.DataFrame({"close": index.day.to_numpy() + n}, index=index)

    @range_cached(key="symbol", step="1D", store=store, readahead=None, namespace="race")
    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return provider(symbol, start, end)

    get("AAPL", D(2024, 1, 1), D(2024, 1, 5))
    slow = threading.Thread(target=get, args=("AAPL", D(2024, 1, 1), D(2024, 1, 20)))
    slow.start()
    assert stuck.wait(10)
    rev["n"] = 1000.0
    answer: dict[str, pd.DataFrame] = {}

    def refresh() -> None:
        answer["r"] = get.refresh("AAPL", D(2024, 1, 1), D(2024, 1, 20))

    refresher = threading.Thread(target=refresh)
    refresher.start()
    refresher.join(0.5)  # it may finish now (no lock) or wait for the slow fetch
    gate.set()
    slow.join(10)
    refresher.join(10)
    assert (answer["r"]["close"] > 1000).all()
    later = get("AAPL", D(2024, 1, 1), D(2024, 1, 20))
    assert_frame_equal(later, answer["r"])


# -- cached / NotCached --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_cached_on_a_covered_range_with_no_rows_answers_the_empty_frame(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    weekend = await go(get("AAPL", D(2024, 1, 6), D(2024, 1, 7)))  # Sat, Sun: no rows
    assert weekend.empty
    bars.calls.clear()
    cached = await go(get.cached("AAPL", D(2024, 1, 6), D(2024, 1, 7)))
    assert_frame_equal(cached, bars("AAPL", D(2024, 1, 6), D(2024, 1, 7)))
    assert_frame_equal(cached, weekend)
    with rangememo.offline():
        assert_frame_equal(await go(get("AAPL", D(2024, 1, 6), D(2024, 1, 7))), weekend)
    assert len(bars.calls) == 1  # only the reference call above


@pytest.mark.parametrize("kind", KINDS)
async def test_cached_tz_aware_answer_is_exactly_the_uncached_one(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    start, end = pd.Timestamp("2024-03-01", tz=NY), pd.Timestamp("2024-03-20", tz=NY)
    first = await go(get("AAPL", start, end))
    bars.calls.clear()
    inner_s, inner_e = pd.Timestamp("2024-03-05", tz=NY), pd.Timestamp("2024-03-14", tz=NY)
    cached = await go(get.cached("AAPL", inner_s, inner_e))
    again = await go(get("AAPL", inner_s, inner_e))
    assert bars.calls == []
    expected = bars("AAPL", inner_s, inner_e)
    assert_frame_equal(first, bars("AAPL", start, end))
    assert_frame_equal(cached, expected)
    assert_frame_equal(again, expected)
    assert str(cached.index.tz) == NY and cached.index.name == "ts"
    assert cached["volume"].dtype == np.dtype("int32")


@pytest.mark.parametrize("kind", KINDS)
async def test_cached_under_disabled_raises_and_calls_nothing(kind, store):
    bars = Bars()
    get = build(kind, bars, store)
    await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 10)))
    bars.calls.clear()
    with rangememo.disabled(), pytest.raises(NotCached):
        await go(get.cached("AAPL", D(2024, 1, 2), D(2024, 1, 3)))
    assert bars.calls == []


def test_not_cached_missing_keeps_the_caller_s_bound_types(store):
    bars = Bars()
    get = build("sync", bars, store)
    get("NP", np.datetime64("2024-01-01T00:00"), np.datetime64("2024-01-05T00:00"))
    get("TZ", pd.Timestamp("2024-01-01", tz=NY), pd.Timestamp("2024-01-05", tz=NY))
    bars.calls.clear()
    with pytest.raises(NotCached) as info:
        get.cached("NP", np.datetime64("2024-01-03T00:00"), np.datetime64("2024-01-08T00:00"))
    (a, b) = info.value.missing[0]
    assert isinstance(a, np.datetime64) and a == np.datetime64("2024-01-06T00:00")
    assert b == np.datetime64("2024-01-08T00:00")
    with pytest.raises(NotCached) as info:
        get.cached("TZ", pd.Timestamp("2024-01-03", tz=NY), pd.Timestamp("2024-01-08", tz=NY))
    assert info.value.missing == [
        (pd.Timestamp("2024-01-06", tz=NY), pd.Timestamp("2024-01-08", tz=NY))
    ]
    assert bars.calls == []


def test_cache_info_counts_cached_hits_and_never_a_provider_call(store):
    bars = Bars()
    get = build("sync", bars, store)
    get("AAPL", D(2024, 1, 1), D(2024, 1, 10))
    info = get.cache_info()
    get.cached("AAPL", D(2024, 1, 2), D(2024, 1, 3))
    with pytest.raises(NotCached):
        get.cached("AAPL", D(2024, 1, 2), D(2024, 1, 13))
    after = get.cache_info()
    assert after.hits == info.hits + 1
    assert after.provider_calls == info.provider_calls == len(bars.calls) == 1


# -- offline() / disabled(): nesting, threads, tasks, generators ---------------------


def test_nested_modes_innermost_wins_and_each_exit_restores(store):
    bars = Bars()
    get = build("sync", bars, store)
    get("AAPL", D(2024, 1, 1), D(2024, 1, 10))
    bars.calls.clear()
    with rangememo.disabled():
        get("AAPL", D(2024, 1, 2), D(2024, 1, 3))
        assert len(bars.calls) == 1
        with rangememo.offline():
            get("AAPL", D(2024, 1, 2), D(2024, 1, 3))
            with pytest.raises(NotCached):
                get("MSFT", D(2024, 1, 2), D(2024, 1, 3))
            with rangememo.disabled():
                get("MSFT", D(2024, 1, 2), D(2024, 1, 3))
            with pytest.raises(NotCached):
                get("MSFT", D(2024, 1, 2), D(2024, 1, 3))
        get("MSFT", D(2024, 1, 2), D(2024, 1, 3))
    assert len(bars.calls) == 3
    assert get.coverage("MSFT") == []  # disabled never wrote it
    assert mode() == "online"


def test_an_exception_inside_a_block_restores_the_mode(store):
    bars = Bars()
    get = build("sync", bars, store)
    with pytest.raises(KeyError), rangememo.offline():
        raise KeyError("boom")
    with pytest.raises(NotCached), rangememo.disabled(), rangememo.offline():
        get("AAPL", D(2024, 1, 1), D(2024, 1, 2))
    assert mode() == "online"
    get("AAPL", D(2024, 1, 1), D(2024, 1, 2))
    assert len(bars.calls) == 1


def test_offline_in_one_thread_is_invisible_to_threads_running_meanwhile(store):
    bars = Bars()
    get = build("sync", bars, store)
    entered, done = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def offline_thread() -> None:
        with rangememo.offline():
            entered.set()
            done.wait(10)
            try:
                get("X", D(2024, 1, 1), D(2024, 1, 2))
            except NotCached:
                seen["x"] = "not cached"

    def online_thread() -> None:
        entered.wait(10)
        seen["y"] = len(get("Y", D(2024, 1, 1), D(2024, 1, 2)))
        done.set()

    threads = [threading.Thread(target=offline_thread), threading.Thread(target=online_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"x": "not cached", "y": 2}
    assert [c[0] for c in bars.calls] == ["Y"]


async def test_offline_in_a_task_never_leaks_into_a_sibling_task(store):
    bars = Bars()
    get = build("async", bars, store)
    entered, released = asyncio.Event(), asyncio.Event()

    async def offline_task() -> str:
        with rangememo.offline():
            entered.set()
            await released.wait()
            try:
                await get("X", D(2024, 1, 1), D(2024, 1, 2))
            except NotCached:
                return "not cached"
            return "served"

    async def online_task() -> int:
        await entered.wait()
        frame = await get("Y", D(2024, 1, 1), D(2024, 1, 2))
        released.set()
        return len(frame)

    assert await asyncio.gather(offline_task(), online_task()) == ["not cached", 2]
    assert mode() == "online"


async def test_tasks_and_to_thread_started_inside_the_block_inherit_it(store):
    bars = Bars()
    get = build("async", bars, store)
    sget = build("sync", bars, store)
    with rangememo.offline():
        task = asyncio.create_task(get("X", D(2024, 1, 1), D(2024, 1, 2)))
        with pytest.raises(NotCached):
            await task
        with pytest.raises(NotCached):
            await asyncio.to_thread(sget, "X", D(2024, 1, 1), D(2024, 1, 2))
    # A task created outside, awaited inside the block, keeps its own (online) mode.
    outside = asyncio.create_task(get("X", D(2024, 1, 1), D(2024, 1, 2)))
    with rangememo.offline():
        assert len(await outside) == 2
    assert len(bars.calls) == 1


def test_a_generator_spanning_the_block_restores_the_mode_when_exhausted(store):
    bars = Bars()
    get = build("sync", bars, store)
    get("AAPL", D(2024, 1, 1), D(2024, 1, 10))
    bars.calls.clear()

    def backtest() -> Any:
        with rangememo.offline():
            for d in (2, 3, 4):
                yield get("AAPL", D(2024, 1, d), D(2024, 1, d))

    frames = list(backtest())
    assert [len(f) for f in frames] == [1, 1, 1] and bars.calls == []
    assert mode() == "online"
    get("MSFT", D(2024, 1, 1), D(2024, 1, 2))
    assert len(bars.calls) == 1


async def test_an_async_generator_spanning_the_block_restores_the_mode(store):
    bars = Bars()
    get = build("async", bars, store)
    await get("AAPL", D(2024, 1, 1), D(2024, 1, 10))

    async def stream() -> Any:
        with rangememo.offline():
            for d in (2, 3):
                yield await get("AAPL", D(2024, 1, d), D(2024, 1, d))
            with pytest.raises(NotCached):
                await get("MSFT", D(2024, 1, 2), D(2024, 1, 3))

    frames = [f async for f in stream()]
    assert len(frames) == 2 and mode() == "online"
    assert len(await get("MSFT", D(2024, 1, 2), D(2024, 1, 3))) == 2


_USER = contextvars.ContextVar("request_id", default="unset")


def test_the_caller_s_context_reaches_concurrent_gap_fetches(store):
    """Gaps fetched on worker threads see the caller's context variables (tracing ids)."""
    seen: list[str] = []

    @range_cached(key="symbol", step="1D", store=store, readahead=None, namespace="ctx")
    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        seen.append(_USER.get())
        return Bars()(symbol, start, end)

    get("AAPL", D(2024, 1, 5), D(2024, 1, 6))
    get("AAPL", D(2024, 1, 15), D(2024, 1, 16))
    seen.clear()
    token = _USER.set("req-42")
    try:
        get("AAPL", D(2024, 1, 1), D(2024, 1, 20))  # three gaps, on threads
    finally:
        _USER.reset(token)
    assert seen == ["req-42"] * 3


# -- environment variables ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "online"),
        ("false", "online"),
        ("", "online"),
        (" ", "online"),
        ("OFF", "online"),
        (" 1 ", "offline"),
        ("TRUE", "offline"),
        ("Yes", "offline"),
        ("on\n", "offline"),
    ],
)
def test_env_offline_values(value, expected, store, monkeypatch):
    bars = Bars()
    get = build("sync", bars, store)
    monkeypatch.setenv("RANGEMEMO_OFFLINE", value)
    if expected == "offline":
        with pytest.raises(NotCached):
            get("AAPL", D(2024, 1, 1), D(2024, 1, 2))
        assert bars.calls == []
    else:
        assert len(get("AAPL", D(2024, 1, 1), D(2024, 1, 2))) == 2
        assert len(bars.calls) == 1


@pytest.mark.parametrize("value", ["0", "false", "", " no "])
def test_env_disable_off_values_keep_the_cache(value, store, monkeypatch):
    bars = Bars()
    get = build("sync", bars, store)
    monkeypatch.setenv("RANGEMEMO_DISABLE", value)
    get("AAPL", D(2024, 1, 1), D(2024, 1, 2))
    get("AAPL", D(2024, 1, 1), D(2024, 1, 2))
    assert len(bars.calls) == 1


@pytest.mark.parametrize("value", ["2", "y", "enabled", "-1"])
def test_a_bad_env_value_is_named_and_a_block_overrides_it(value, store, monkeypatch):
    bars = Bars()
    get = build("sync", bars, store)
    get("AAPL", D(2024, 1, 1), D(2024, 1, 2))
    monkeypatch.setenv("RANGEMEMO_DISABLE", value)
    with pytest.raises(InvalidOption, match=repr(value).replace("-", r"\-")):
        get("AAPL", D(2024, 1, 1), D(2024, 1, 2))
    with rangememo.offline():
        assert len(get("AAPL", D(2024, 1, 1), D(2024, 1, 2))) == 2
    assert len(bars.calls) == 1


def test_env_disable_then_a_block_offline_answers_from_the_cache(store, monkeypatch):
    bars = Bars()
    get = build("sync", bars, store)
    get("AAPL", D(2024, 1, 1), D(2024, 1, 10))
    monkeypatch.setenv("RANGEMEMO_DISABLE", "1")
    get("AAPL", D(2024, 1, 1), D(2024, 1, 2))
    assert len(bars.calls) == 2
    with rangememo.offline():
        get("AAPL", D(2024, 1, 1), D(2024, 1, 2))
    assert len(bars.calls) == 2
    monkeypatch.setenv("RANGEMEMO_OFFLINE", "1")
    with pytest.raises(InvalidOption, match="both"):
        get("AAPL", D(2024, 1, 1), D(2024, 1, 2))


# -- stale_if_error ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_stale_if_error_serves_exactly_the_stored_live_edge(kind, store):
    now = {"t": D(2024, 1, 10, 12)}
    bars = Bars()
    get = build(kind, bars, store, stale_if_error=True, clock=lambda: now["t"])
    first = await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 10)))  # Jan 10 is forming
    bars.fail = True
    with pytest.warns(CacheWarning, match="ConnectionError"):
        stale = await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 10)))
    assert_frame_equal(stale, first)
    # A range reaching past what was ever fetched still raises.
    with pytest.raises(ConnectionError):
        await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 12)))
    bars.fail = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_frame_equal(await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 10))), first)


# -- bad input ---------------------------------------------------------------------


BAD_DATETIME_BOUNDS = [
    pytest.param(D(2024, 1, 20), D(2024, 1, 10), ValueError, "2024-01-20", id="start>end"),
    pytest.param(pd.NaT, D(2024, 1, 10), ValueError, "NaT", id="NaT-start"),
    pytest.param(D(2024, 1, 1), pd.NaT, ValueError, "NaT", id="NaT-end"),
    pytest.param(np.datetime64("NaT"), np.datetime64("2024-01-03"), ValueError, "NaT", id="np-NaT"),
    pytest.param(float("nan"), float("nan"), TypeError, "nan", id="nan"),
    pytest.param(
        D(2024, 1, 1, tzinfo=dt.UTC), D(2024, 1, 3), TypeError, "tzinfo", id="aware+naive"
    ),
    pytest.param("2024-01-01", "2024-01-03", TypeError, "'2024-01-01'", id="strings"),
    pytest.param(True, False, TypeError, "True", id="bools"),
    pytest.param(D(3000, 1, 1), D(3000, 1, 2), ValueError, "3000", id="past-2262"),
    pytest.param(D(1500, 1, 1), D(1500, 1, 2), ValueError, "1500", id="before-1677"),
    pytest.param(
        pd.Timestamp("2024-01-01"), dt.date(2024, 1, 3), TypeError, "2024, 1, 3", id="ts+date"
    ),
    pytest.param(
        pd.Timestamp("2024-01-02", tz=NY),
        pd.Timestamp("2024-01-04", tz=NY),
        TypeError,
        "2024-01-02",
        id="aware-on-a-naive-key",
    ),
    pytest.param(5, 10, (TypeError, ValueError), "start=5, end=10", id="ints-on-a-datetime-key"),
]


@pytest.mark.parametrize(("start", "end", "error", "needle"), BAD_DATETIME_BOUNDS)
@pytest.mark.parametrize("kind", KINDS)
async def test_bad_bounds_are_named_and_leave_the_cache_intact(
    kind, store, start, end, error, needle
):
    bars = Bars()
    get = build(kind, bars, store)
    before = await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 31)))
    bars.calls.clear()
    for method in (get, get.cached, get.refresh):
        with pytest.raises(error) as info:
            await go(method("AAPL", start, end))
        assert needle in str(info.value), str(info.value)
        assert isinstance(info.value, rangememo.RangememoError)
    assert bars.calls == []
    assert_frame_equal(await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 31))), before)
    assert bars.calls == []


def _blocks(chain: str, start: int, end: int) -> pd.DataFrame:
    index = pd.Index(np.arange(start, end + 1, dtype="int64"), name="block")
    return pd.DataFrame({"v": np.arange(start, end + 1, dtype="int64") * 2}, index=index)


BAD_INT_BOUNDS = [
    pytest.param(0, 2**63, ValueError, str(2**63), id="2**63"),
    pytest.param(-(2**63), 5, ValueError, str(-(2**63)), id="-2**63"),
    pytest.param(2**100, 2**101, ValueError, str(2**100), id="2**100"),
    pytest.param(
        np.uint64(2**64 - 1), np.uint64(2**64 - 1), ValueError, "18446744073709551615", id="uint64"
    ),
    pytest.param(30, 20, ValueError, "30", id="start>end"),
    pytest.param(0.0, 5.0, TypeError, "0.0", id="floats"),
    pytest.param(0, float("nan"), TypeError, "nan", id="nan"),
    pytest.param(True, 5, TypeError, "True", id="bool"),
    pytest.param(np.bool_(False), 5, TypeError, "False", id="np-bool"),
    pytest.param(decimal.Decimal(1), decimal.Decimal(3), TypeError, "Decimal", id="decimal"),
    pytest.param("1", "5", TypeError, "'1'", id="strings"),
    pytest.param(D(2024, 1, 1), D(2024, 1, 2), TypeError, "2024, 1, 1", id="datetimes-on-int-key"),
]


@pytest.mark.parametrize(("start", "end", "error", "needle"), BAD_INT_BOUNDS)
def test_bad_int_bounds_are_named_and_leave_the_cache_intact(store, start, end, error, needle):
    calls: list[tuple[int, int]] = []

    @range_cached(key="chain", store=store, namespace="blocks")
    def get(chain: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append((start, end))
        return _blocks(chain, start, end)

    before = get("eth", 0, 100)
    for method in (get, get.cached, get.refresh):
        with pytest.raises(error) as info:
            method("eth", start, end)
        assert needle in str(info.value), str(info.value)
    assert calls == [(0, 100)]
    assert_frame_equal(get("eth", 0, 100), before)
    assert_frame_equal(get("eth", np.int32(10), np.int64(20)), _blocks("eth", 10, 20))
    assert calls == [(0, 100)]


@pytest.mark.parametrize(
    ("start", "end", "error", "needle"),
    [
        pytest.param("2024-01-20", "2024-01-10", ValueError, "2024-01-20", id="start>end"),
        pytest.param("2024-13-01", "2024-01-10", TypeError, "'2024-13-01'", id="month-13"),
        pytest.param("yesterday", "2024-01-10", TypeError, "'yesterday'", id="words"),
        pytest.param(
            "2024-01-05T00:00Z", D(2024, 1, 10), TypeError, "'2024-01-05T00:00Z'", id="offset+naive"
        ),
        pytest.param("2024-01-05", 10, TypeError, "'2024-01-05'", id="string+int"),
        pytest.param("2024-01-05", float("nan"), TypeError, "nan", id="string+nan"),
    ],
)
def test_bad_string_bounds_with_coerce_bounds(store, start, end, error, needle):
    bars = Bars()
    get = build("sync", bars, store, coerce_bounds=True)
    before = get("AAPL", "2024-01-01T00:00", "2024-01-31T00:00")
    bars.calls.clear()
    for method in (get, get.cached, get.refresh):
        with pytest.raises(error) as info:
            method("AAPL", start, end)
        assert needle in str(info.value), str(info.value)
    assert bars.calls == []
    assert_frame_equal(get("AAPL", D(2024, 1, 1), D(2024, 1, 31)), before)
    assert bars.calls == []


def test_coerce_bounds_cached_answer_equals_the_date_one(store):
    """Date-only strings make a date axis: ``date`` callers share the entries."""
    bars = Bars()
    get = build("sync", bars, store, coerce_bounds=True)
    by_string = get("AAPL", "2024-01-01", "2024-01-31")
    assert bars.calls == [("AAPL", "2024-01-01", "2024-01-31")]
    assert_frame_equal(by_string, bars("AAPL", "2024-01-01", "2024-01-31"))
    bars.calls.clear()
    by_date = get.cached("AAPL", dt.date(2024, 1, 1), dt.date(2024, 1, 31))
    assert_frame_equal(by_date, by_string)
    with pytest.raises(NotCached) as info:
        get.cached("AAPL", "2024-01-20", "2024-02-02")
    assert info.value.missing == [("2024-02-01", "2024-02-02")]
    assert bars.calls == []


# -- invalidate with bad bounds --------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_invalidate_with_aware_bounds_on_a_naive_key_is_refused(kind, store):
    """A call with aware bounds on a naive key raises; invalidate must too, not forget
    a range shifted by the zone's offset."""
    bars = Bars()
    get = build(kind, bars, store)
    await go(get("AAPL", D(2024, 1, 1), D(2024, 1, 31)))
    covered = await go(get.coverage("AAPL"))
    with pytest.raises(TypeError):
        await go(
            get.invalidate(
                "AAPL",
                start=pd.Timestamp("2024-01-10", tz=NY),
                end=pd.Timestamp("2024-01-12", tz=NY),
            )
        )
    assert await go(get.coverage("AAPL")) == covered


def test_invalidate_with_datetimes_on_an_int_key_is_refused(store):
    """Silently forgetting nothing would leave the user believing the range is gone."""

    @range_cached(key="chain", store=store, namespace="blocks-inv")
    def get(chain: str, start: Any, end: Any) -> pd.DataFrame:
        return _blocks(chain, start, end)

    get("eth", 0, 100)
    with pytest.raises(TypeError):
        get.invalidate("eth", start=D(2024, 1, 1), end=D(2024, 1, 2))
    assert get.coverage("eth") == [(0, 100)]


@pytest.mark.parametrize(
    ("start", "end", "error"),
    [
        (D(2024, 1, 12), D(2024, 1, 10), ValueError),
        (pd.NaT, None, ValueError),
        (True, None, TypeError),
        ("2024-01-10", None, TypeError),
    ],
)
def test_invalidate_with_bad_bounds_forgets_nothing(store, start, end, error):
    bars = Bars()
    get = build("sync", bars, store)
    before = get("AAPL", D(2024, 1, 1), D(2024, 1, 31))
    with pytest.raises(error):
        get.invalidate("AAPL", start=start, end=end)
    bars.calls.clear()
    assert_frame_equal(get.cached("AAPL", D(2024, 1, 1), D(2024, 1, 31)), before)
    assert bars.calls == []
