"""Planning options: live edge, readahead, lookback, coalesce, max_span, rate limit, calendar."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import InvalidOption, MemoryStore, range_cached
from rangememo.testing import FakeProvider, make_bars

UTC = dt.UTC
D = dt.datetime


class Clock:
    """An injectable clock that tests move by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def cached(provider: FakeProvider, **options: Any):
    options.setdefault("step", "1D")

    options.setdefault("store", MemoryStore())

    @range_cached(key=("symbol", "timeframe"), **options)
    async def get_bars(symbol: str, start: D, end: D, timeframe: str = "D") -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end, timeframe)

    return get_bars


async def seed_backtest(get_bars) -> None:
    """The seed's 62-day backtest: engine [now, now], strategy 30-day window, chart."""
    first, last = D(2024, 10, 1), D(2024, 12, 1)
    now = first
    while now <= last:
        await get_bars("AAPL", now, now)
        await get_bars("AAPL", now - dt.timedelta(days=30), now)
        now += dt.timedelta(days=1)
    await get_bars("AAPL", first, last)


def positions_fetched(provider: FakeProvider) -> Counter[pd.Timestamp]:
    seen: Counter[pd.Timestamp] = Counter()
    for call, (a, b) in zip(provider.calls, provider.ranges(), strict=True):
        freq = "1h" if call.args[-1] == "1h" else "D"
        seen.update(pd.date_range(a, b, freq=freq))
    return seen


# -- the live edge ----------------------------------------------------------------------


async def test_live_edge_bar_is_refetched_after_settle():
    """A bar newer than now - settle is returned but fetched again later; older ones never."""
    clock = Clock(D(2024, 10, 1, 15, 0, tzinfo=UTC))
    provider = FakeProvider()
    get_bars = cached(provider, step="1h", settle="1h", clock=clock)
    a, b = D(2024, 10, 1, 0, tzinfo=UTC), D(2024, 10, 1, 14, tzinfo=UTC)
    got = await get_bars("AAPL", a, b, "1h")
    assert_frame_equal(got, make_bars("AAPL", a, b, "1h"))
    await get_bars("AAPL", a, b, "1h")  # the 14:00 bar is not final yet
    assert provider.ranges()[-1] == (pd.Timestamp(b), pd.Timestamp(b))
    clock.advance(hours=2)
    await get_bars("AAPL", a, b, "1h")  # now it is final: fetched once more, then never
    await get_bars("AAPL", a, b, "1h")
    assert provider.call_count == 3
    assert get_bars.cache_info().provisional_refetches == 2


async def test_last_week_is_never_refetched():
    """With settle, settled history is final on the first fetch."""
    clock = Clock(D(2024, 10, 8, 15, tzinfo=UTC))
    provider = FakeProvider()
    get_bars = cached(provider, settle="1h", clock=clock)
    week = (D(2024, 9, 30, tzinfo=UTC), D(2024, 10, 4, tzinfo=UTC))
    for _ in range(3):
        await get_bars("AAPL", *week)
        clock.advance(days=1)
    assert provider.call_count == 1


async def test_ttl_serves_provisional_data_until_it_expires():
    """With ttl, the live edge is served from cache until it expires, then refetched once."""
    clock = Clock(D(2024, 10, 1, 15, 0, tzinfo=UTC))
    provider = FakeProvider()
    get_bars = cached(provider, step="1h", settle="1h", ttl="5min", clock=clock)
    a, b = D(2024, 10, 1, 10, tzinfo=UTC), D(2024, 10, 1, 14, tzinfo=UTC)
    await get_bars("AAPL", a, b, "1h")
    clock.advance(minutes=3)
    await get_bars("AAPL", a, b, "1h")
    assert provider.call_count == 1
    clock.advance(minutes=3)
    got = await get_bars("AAPL", a, b, "1h")
    assert provider.call_count == 2
    assert provider.ranges()[-1] == (pd.Timestamp(b), pd.Timestamp(b))
    assert_frame_equal(got, make_bars("AAPL", a, b, "1h"))


# -- readahead / lookback ------------------------------------------------------------------


async def test_readahead_seed_workload_makes_few_calls():
    """readahead="30D": the 62-day backtest needs at most 5 provider calls."""
    provider = FakeProvider()
    get_bars = cached(provider, readahead="30D", clock=lambda: D(2026, 1, 1, tzinfo=UTC))
    await seed_backtest(get_bars)
    assert provider.call_count <= 5
    assert max(positions_fetched(provider).values()) == 1


async def test_readahead_never_passes_the_live_edge():
    """Reading ahead stops at the last whole step before now - settle."""
    clock = Clock(D(2024, 10, 10, 12, tzinfo=UTC))
    provider = FakeProvider()
    get_bars = cached(provider, readahead="30D", clock=clock)
    await get_bars("AAPL", D(2024, 10, 1), D(2024, 10, 5))
    assert provider.ranges() == [(pd.Timestamp(2024, 10, 1), pd.Timestamp(2024, 10, 9))]


async def test_lookback_fetches_before_the_start():
    """lookback extends a gap that touches the request's start backwards."""
    provider = FakeProvider()
    get_bars = cached(provider, lookback="10D")
    got = await get_bars("AAPL", D(2024, 10, 20), D(2024, 10, 25))
    await get_bars("AAPL", D(2024, 10, 12), D(2024, 10, 22))
    assert provider.ranges() == [(pd.Timestamp(2024, 10, 10), pd.Timestamp(2024, 10, 25))]
    assert_frame_equal(got, make_bars("AAPL", D(2024, 10, 20), D(2024, 10, 25)))


# -- coalesce / max_span -----------------------------------------------------------------------


async def test_coalesce_merges_nearby_gaps():
    """Gaps closer than coalesce= become one call across the covered days between."""
    provider = FakeProvider()
    get_bars = cached(provider, coalesce="3D")
    await get_bars("AAPL", D(2024, 10, 5), D(2024, 10, 5))
    await get_bars("AAPL", D(2024, 10, 7), D(2024, 10, 7))
    got = await get_bars("AAPL", D(2024, 10, 1), D(2024, 10, 10))
    assert provider.ranges()[-1] == (pd.Timestamp(2024, 10, 1), pd.Timestamp(2024, 10, 10))
    assert provider.call_count == 3
    assert_frame_equal(got, make_bars("AAPL", D(2024, 10, 1), D(2024, 10, 10)))


async def test_without_coalesce_gaps_are_separate():
    """The same requests without coalesce make one call per gap."""
    provider = FakeProvider()
    get_bars = cached(provider)
    await get_bars("AAPL", D(2024, 10, 5), D(2024, 10, 5))
    await get_bars("AAPL", D(2024, 10, 7), D(2024, 10, 7))
    await get_bars("AAPL", D(2024, 10, 1), D(2024, 10, 10))
    assert provider.call_count == 5


async def test_max_span_chunks_cover_the_gap_exactly_once():
    """max_span splits a long gap into chunks fetched concurrently, each day once."""
    provider = FakeProvider(latency=0.01)
    get_bars = cached(provider, max_span="7D", max_concurrency=3)
    got = await get_bars("AAPL", D(2024, 10, 1), D(2024, 10, 30))
    spans = provider.ranges()
    assert all(b - a <= pd.Timedelta(days=6) for a, b in spans)
    assert sorted(positions_fetched(provider)) == list(
        pd.date_range("2024-10-01", "2024-10-30", freq="D")
    )
    assert max(positions_fetched(provider).values()) == 1
    assert provider.max_in_flight == 3
    assert_frame_equal(got, make_bars("AAPL", D(2024, 10, 1), D(2024, 10, 30)))


async def test_max_span_as_a_row_count_on_an_int_axis():
    """An int max_span counts steps: 100 blocks in calls of at most 10."""
    provider = FakeProvider()

    @range_cached(key="chain", max_span=10, store=MemoryStore())
    async def blocks(chain: str, start: int, end: int) -> pd.DataFrame:
        return await provider.get_blocks(chain, start, end)

    await blocks("eth", 0, 99)
    assert sorted(provider.ranges()) == [(i, i + 9) for i in range(0, 100, 10)]


def test_bad_span_options():
    """A span option that is no span: InvalidOption naming it, at decoration."""
    provider = FakeProvider()
    with pytest.raises(InvalidOption, match="'soon'"):
        cached(provider, readahead="soon")
    with pytest.raises(InvalidOption, match="rate_limit"):
        cached(provider, rate_limit=(0, 1.0))


# -- rate limit ---------------------------------------------------------------------------------


async def test_rate_limit_holds_under_gather_of_100_calls():
    """No window of `seconds` ever sees more than `calls` provider calls start."""
    provider = FakeProvider()
    calls, seconds = 20, 0.1
    get_bars = cached(provider, rate_limit=(calls, seconds))
    await asyncio.gather(*(get_bars(f"S{i}", D(2024, 10, 1), D(2024, 10, 3)) for i in range(100)))
    starts = sorted(c.at for c in provider.calls)
    assert len(starts) == 100
    # The provider stamps its start a moment after the grant; on a loaded
    # machine the OS may preempt between the two for a few ms, so allow 10 %
    # (a broken limiter packs starts microseconds apart, far below this).
    for i in range(len(starts) - calls):
        assert starts[i + calls] - starts[i] >= seconds * 0.9


def test_rate_limit_on_a_sync_function():
    """The sync path sleeps for its slot the same way."""
    provider = FakeProvider()

    @range_cached(key="symbol", step="1D", rate_limit=(2, 0.05), store=MemoryStore())
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return provider.get_bars_sync(symbol, start, end)

    for i in range(6):
        get_bars(f"S{i}", D(2024, 10, 1), D(2024, 10, 2))
    starts = [c.at for c in provider.calls]
    assert all(starts[i + 2] - starts[i] >= 0.049 for i in range(4))


# -- calendars ---------------------------------------------------------------------


async def test_calendar_weekend_makes_no_call():
    """A gap without a session is covered without a call, with the right empty result."""
    provider = FakeProvider()
    get_bars = cached(provider, calendar="XNYS")
    await get_bars("AAPL", D(2024, 10, 1), D(2024, 10, 4))
    weekend = await get_bars("AAPL", D(2024, 10, 5), D(2024, 10, 6))
    thanksgiving = await get_bars("AAPL", D(2024, 11, 28), D(2024, 11, 28))
    assert provider.call_count == 1
    assert get_bars.cache_info().calendar_skips == 2
    assert_frame_equal(weekend, make_bars("AAPL", D(2024, 10, 5), D(2024, 10, 6)))
    assert_frame_equal(thanksgiving, make_bars("AAPL", D(2024, 11, 28), D(2024, 11, 28))[:0])


async def test_calendar_trims_gaps_to_sessions():
    """A gap is asked for from its first to its last session only."""
    provider = FakeProvider()
    get_bars = cached(provider, calendar="XNYS")
    got = await get_bars("AAPL", D(2024, 10, 5), D(2024, 10, 13))
    assert provider.ranges() == [(pd.Timestamp(2024, 10, 7), pd.Timestamp(2024, 10, 11))]
    assert_frame_equal(got, make_bars("AAPL", D(2024, 10, 5), D(2024, 10, 13)))
    assert await get_bars.coverage("AAPL") == [
        (pd.Timestamp(2024, 10, 5), pd.Timestamp(2024, 10, 13))
    ]


async def test_calendar_seed_workload():
    """calendar="XNYS": the backtest makes no call for a day without a session (<= 44)."""
    provider = FakeProvider(holidays=[D(2024, 9, 2), D(2024, 11, 28)])
    get_bars = cached(provider, calendar="XNYS")
    await seed_backtest(get_bars)
    assert provider.call_count <= 44
    for a, b in [(D(2024, 8, 25), D(2024, 12, 1)), (D(2024, 11, 27), D(2024, 11, 29))]:
        want = make_bars("AAPL", a, b, holidays=provider.holidays)
        assert_frame_equal(await get_bars("AAPL", a, b), want)
    days = {pd.Timestamp(a).day_of_week for a, _ in provider.ranges()}
    assert days.isdisjoint({5, 6})


async def test_custom_calendar_object():
    """Any object with sessions_in_range(start, end) works as a calendar."""

    class EveryOtherDay:
        def sessions_in_range(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
            days = pd.date_range(start, end, freq="D")
            return days[days.day % 2 == 1]

    provider = FakeProvider(empty_weekends=False)
    # readahead=None: the exact calls show the sessions the calendar skips.
    get_bars = cached(provider, calendar=EveryOtherDay(), readahead=None)
    await get_bars("AAPL", D(2024, 10, 1), D(2024, 10, 1))
    await get_bars("AAPL", D(2024, 10, 2), D(2024, 10, 2))
    await get_bars("AAPL", D(2024, 10, 2), D(2024, 10, 4))
    assert provider.ranges() == [
        (pd.Timestamp(2024, 10, 1), pd.Timestamp(2024, 10, 1)),
        (pd.Timestamp(2024, 10, 3), pd.Timestamp(2024, 10, 3)),
    ]


# -- prefetch ---------------------------------------------------------------------


async def test_prefetch_then_the_backtest_makes_no_call():
    """prefetch of the whole range: 1 call, then the backtest makes 0."""
    provider = FakeProvider()
    get_bars = cached(provider)
    await get_bars.prefetch("AAPL", D(2024, 9, 1), D(2024, 12, 1), progress=False)
    assert provider.call_count == 1
    await seed_backtest(get_bars)
    assert provider.call_count == 1


async def test_prefetch_with_progress_and_chunks():
    """A chunked prefetch with a progress bar covers the range."""
    provider = FakeProvider()
    get_bars = cached(provider, max_span="30D")
    await get_bars.prefetch("AAPL", D(2020, 1, 1), D(2024, 12, 31), progress=True)
    assert await get_bars.coverage("AAPL") == [
        (pd.Timestamp(2020, 1, 1), pd.Timestamp(2024, 12, 31))
    ]
    assert provider.call_count == len(pd.date_range("2020-01-01", "2024-12-31", freq="30D"))


async def test_default_seed_workload_makes_at_most_63_calls():
    """No options: the 62-day backtest costs at most 63 calls, each day asked once."""
    provider = FakeProvider()
    get_bars = cached(provider)
    await seed_backtest(get_bars)
    assert provider.call_count <= 63
    assert max(positions_fetched(provider).values()) == 1


async def test_coverage_detail_shows_three_states():
    """coverage(detail=True): final data, confirmed empty and provisional, with fetch times."""
    clock = Clock(D(2024, 10, 7, 15, tzinfo=UTC))
    provider = FakeProvider()
    get_bars = cached(provider, settle="1h", ttl="10min", clock=clock)
    await get_bars("AAPL", D(2024, 10, 3, tzinfo=UTC), D(2024, 10, 4, tzinfo=UTC))
    await get_bars("AAPL", D(2024, 10, 5, tzinfo=UTC), D(2024, 10, 6, tzinfo=UTC))
    await get_bars("AAPL", D(2024, 10, 7, tzinfo=UTC), D(2024, 10, 7, tzinfo=UTC))
    pieces = await get_bars.coverage("AAPL", "D", detail=True)
    assert [(p.start.day, p.end.day, p.state) for p in pieces] == [
        (3, 4, "final"),
        (5, 6, "empty"),
        (7, 7, "provisional"),
    ]
    assert all(p.fetched == clock.now for p in pieces)
    assert pieces[-1].expires == clock.now + dt.timedelta(minutes=10)


async def test_options_combined_on_the_seed_workload(tmp_path):
    """readahead, calendar, max_span, rate_limit and settle on a ParquetStore: exact, once each."""
    from rangememo import ParquetStore

    clock = Clock(D(2024, 12, 1, 15, tzinfo=UTC))  # the backtest's last day is live
    provider = FakeProvider(holidays=[D(2024, 9, 2), D(2024, 11, 28)])
    get_bars = cached(
        provider,
        readahead="20D",
        calendar="XNYS",
        max_span="10D",
        rate_limit=(50, 1.0),
        settle="1h",
        clock=clock,
        store=ParquetStore(tmp_path),
        namespace="tests.options.bars",  # a closure over a provider: a persistent store asks
    )
    await seed_backtest(get_bars)
    assert max(positions_fetched(provider).values()) == 1
    assert get_bars.cache_info().calendar_skips > 0
    assert all(b <= pd.Timestamp(clock.now.replace(tzinfo=None)) for _, b in provider.ranges())
    for a, b in [(D(2024, 9, 1), D(2024, 11, 14)), (D(2024, 10, 3), D(2024, 10, 9))]:
        want = make_bars("AAPL", a, b, holidays=provider.holidays)
        assert_frame_equal(await get_bars("AAPL", a, b), want)


async def test_live_edge_state_survives_reopening(tmp_path):
    """A ParquetStore persists provisional coverage: a new store refetches only the live edge."""
    from rangememo import ParquetStore

    clock = Clock(D(2024, 10, 1, 15, tzinfo=UTC))
    a, b = D(2024, 10, 1, 10, tzinfo=UTC), D(2024, 10, 1, 14, tzinfo=UTC)
    first = FakeProvider()
    await cached(
        first,
        step="1h",
        settle="1h",
        ttl="5min",
        clock=clock,
        store=ParquetStore(tmp_path),
        namespace="tests.options.bars",
    )("AAPL", a, b, "1h")
    second = FakeProvider()
    reopened = cached(
        second,
        step="1h",
        settle="1h",
        ttl="5min",
        clock=clock,
        store=ParquetStore(tmp_path),
        namespace="tests.options.bars",
    )
    await reopened("AAPL", a, b, "1h")
    assert second.call_count == 0  # provisional, not expired yet
    pieces = await reopened.coverage("AAPL", "1h", detail=True)
    assert [p.state for p in pieces] == ["final", "provisional"]
    clock.advance(minutes=10)
    got = await reopened("AAPL", a, b, "1h")
    assert second.ranges() == [(pd.Timestamp(b), pd.Timestamp(b))]
    assert_frame_equal(got, make_bars("AAPL", a, b, "1h"))
