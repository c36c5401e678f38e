"""The default live edge: on a stepped time axis the bar still forming is never final."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import MemoryStore, ParquetStore, range_cached

D = dt.datetime
UTC = dt.UTC


class Clock:
    def __init__(self, now: D) -> None:
        self.now = now

    def __call__(self) -> D:
        return self.now


class LiveBars:
    """Hourly (or daily) bars up to now; the bar holding now has close = minutes into it."""

    def __init__(self, clock: Clock, step: str) -> None:
        self.clock, self.step, self.calls = clock, pd.Timedelta(step), 0

    def __call__(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        self.calls += 1
        now = pd.Timestamp(self.clock()).tz_localize(None)
        index = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=self.step, name="ts")
        index = index[index <= now]
        forming = now.floor(self.step)
        close = [(now - t).total_seconds() / 60 if t == forming else float(t.hour) for t in index]
        return pd.DataFrame({"close": np.array(close, dtype="float64")}, index=index)


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path)


def cached(live: LiveBars, store: Any, **options: Any) -> Any:
    options.setdefault("step", live.step)
    return range_cached(key="symbol", store=store, clock=live.clock, namespace="live", **options)(
        live
    )


def test_todays_bar_is_refetched_once_it_has_moved_on(store):
    """The issue's case: at 15:30 the 15:00 bar is forming; the next day it is final."""
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock, "1h")
    get = cached(live, store)
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 15)
    assert_frame_equal(get("AAPL", a, b), live("AAPL", a, b))
    clock.now = D(2024, 10, 11, 10)
    calls = live.calls
    assert_frame_equal(get("AAPL", a, b), live("AAPL", a, b))  # not the 30-minute-old close
    assert live.calls == calls + 2  # one uncached call, one refetch of the edge
    assert get.cache_info().provisional_refetches == 1
    calls = live.calls
    get("AAPL", a, b)
    assert live.calls == calls  # final now: a hit


def test_only_the_forming_bar_is_refetched(store):
    """Bars that ended before now are final: the refetch asks for the last bar alone."""
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock, "1h")
    asked: list[tuple[Any, Any]] = []

    def spy(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        asked.append((start, end))
        return live(symbol, start, end)

    get = range_cached(key="symbol", step="1h", store=store, clock=clock, namespace="spy")(spy)
    get("AAPL", D(2024, 10, 10, 9), D(2024, 10, 10, 15))
    clock.now = D(2024, 10, 10, 15, 45)
    got = get("AAPL", D(2024, 10, 10, 9), D(2024, 10, 10, 15))
    assert asked[-1] == (D(2024, 10, 10, 15), D(2024, 10, 10, 15))
    assert_frame_equal(got, live("AAPL", D(2024, 10, 10, 9), D(2024, 10, 10, 15)))


def test_a_request_into_the_future_is_not_final(store):
    """Bars after now do not exist yet: covering them as empty for good would be wrong."""
    clock = Clock(D(2024, 10, 10, 12, 10))
    live = LiveBars(clock, "1h")
    get = cached(live, store)
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 18)
    get("AAPL", a, b)
    clock.now = D(2024, 10, 11)
    assert_frame_equal(get("AAPL", a, b), live("AAPL", a, b))
    assert len(get("AAPL", a, b)) == 10


def test_daily_bars_on_a_date_axis(store):
    """Date bounds step by days: today's bar is the forming one."""
    clock = Clock(D(2024, 10, 10, 15, tzinfo=UTC))
    live = LiveBars(clock, "1D")

    def by_date(symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return live(symbol, start, end)

    get = range_cached(key="symbol", store=store, clock=clock, namespace="daily")(by_date)
    a, b = dt.date(2024, 10, 1), dt.date(2024, 10, 10)
    get("AAPL", a, b)
    clock.now = D(2024, 10, 11, 9, tzinfo=UTC)
    assert_frame_equal(get("AAPL", a, b), live("AAPL", a, b))


def test_historical_ranges_are_unaffected(store):
    """A range that ended before the forming bar is final at once."""
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock, "1h")
    get = cached(live, store)
    get("AAPL", D(2024, 10, 9, 9), D(2024, 10, 10, 14))
    get("AAPL", D(2024, 10, 9, 9), D(2024, 10, 10, 14))
    assert get.cache_info().provider_calls == 1
    assert [p.state for p in get.coverage("AAPL", detail=True)] == ["final"]


def test_settle_false_keeps_every_bar_final(store):
    """settle=False: the old behaviour, for providers that return finished bars only."""
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock, "1h")
    get = cached(live, store, settle=False)
    get("AAPL", D(2024, 10, 10, 9), D(2024, 10, 10, 15))
    clock.now = D(2024, 10, 11)
    get("AAPL", D(2024, 10, 10, 9), D(2024, 10, 10, 15))
    assert get.cache_info().provider_calls == 1


def test_ttl_serves_the_forming_bar_for_a_while(store):
    """ttl works with the default edge: served from cache until it expires."""
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock, "1h")
    get = cached(live, store, ttl="5min")
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 15)
    get("AAPL", a, b)
    clock.now = D(2024, 10, 10, 15, 33)
    get("AAPL", a, b)
    assert get.cache_info().provider_calls == 1
    clock.now = D(2024, 10, 10, 15, 40)
    assert_frame_equal(get("AAPL", a, b), live("AAPL", a, b))
    assert get.cache_info().provider_calls == 2


def test_int_and_continuous_axes_are_unaffected(store):
    """No step on a time axis, or int bounds: nothing is held back by default."""
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = LiveBars(clock, "1h")
    ticks = range_cached(key="symbol", store=store, clock=clock, namespace="ticks")(live)
    ticks("AAPL", D(2024, 10, 10, 9), D(2024, 10, 10, 15, 30))
    ticks("AAPL", D(2024, 10, 10, 9), D(2024, 10, 10, 15, 30))
    assert ticks.cache_info().provider_calls == 1

    def blocks(chain: str, start: int, end: int) -> pd.DataFrame:
        return pd.DataFrame({"n": np.arange(start, end + 1)}, index=pd.Index(range(start, end + 1)))

    cached_blocks = range_cached(key="chain", store=store, clock=clock, namespace="b")(blocks)
    cached_blocks("eth", 1, 100)
    cached_blocks("eth", 1, 100)
    assert cached_blocks.cache_info().provider_calls == 1
