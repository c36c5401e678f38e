"""The decorator end to end: gap-only fetching, exact results, introspection."""

from __future__ import annotations

import datetime as dt
import logging
import pickle
import types

import pandas as pd
import pyarrow as pa
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

import rangememo
from rangememo import MemoryStore, range_cached
from rangememo.testing import FakeProvider, make_bars

D = dt.datetime


def day(m: int, d: int) -> dt.datetime:
    return D(2024, m, d)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def bars(provider: FakeProvider):
    @range_cached(key=("symbol", "timeframe"), step="1D", store=MemoryStore())
    async def get_bars(symbol: str, start: D, end: D, timeframe: str = "D") -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end, timeframe)

    return get_bars


# -- only gaps are fetched --------------------------------------------------------


async def test_overlapping_requests_fetch_only_the_gap(bars, provider):
    """A second, overlapping request asks the provider for the new days only."""
    await bars("AAPL", day(10, 1), day(10, 10))
    await bars("AAPL", day(10, 5), day(10, 20))
    assert provider.ranges() == [
        (pd.Timestamp(day(10, 1)), pd.Timestamp(day(10, 10))),
        (pd.Timestamp(day(10, 11)), pd.Timestamp(day(10, 20))),
    ]


async def test_adjacent_inclusive_requests_close_up(bars, provider):
    """[Oct 1, Oct 10] and [Oct 11, Oct 20] together cover [Oct 1, Oct 20]."""
    await bars("AAPL", day(10, 1), day(10, 10))
    await bars("AAPL", day(10, 11), day(10, 20))
    await bars("AAPL", day(10, 1), day(10, 20))
    assert provider.call_count == 2
    assert bars.cache_info().hits == 1


async def test_gap_in_the_middle_is_one_call(bars, provider):
    """A request spanning two covered pieces fetches only the hole between them."""
    await bars("AAPL", day(10, 1), day(10, 5))
    await bars("AAPL", day(10, 15), day(10, 20))
    out = await bars("AAPL", day(10, 1), day(10, 20))
    assert provider.ranges()[-1] == (pd.Timestamp(day(10, 6)), pd.Timestamp(day(10, 14)))
    assert_frame_equal(out, make_bars("AAPL", day(10, 1), day(10, 20)))


async def test_empty_range_is_covered(bars, provider):
    """A weekend returns no rows, and is never fetched again."""
    first = await bars("AAPL", day(10, 5), day(10, 6))  # Saturday, Sunday
    again = await bars("AAPL", day(10, 5), day(10, 6))
    assert len(first) == 0
    assert provider.call_count == 1
    assert_frame_equal(again, first)


async def test_keys_are_separate(bars, provider):
    """Another symbol or timeframe is another series."""
    await bars("AAPL", day(10, 1), day(10, 3))
    await bars("MSFT", day(10, 1), day(10, 3))
    await bars("AAPL", day(10, 1), day(10, 3), "1h")
    assert provider.call_count == 3


async def test_default_key_applies_defaults(provider):
    """The default key is every argument but the range, with defaults applied."""

    @range_cached(step="1D", store=MemoryStore())
    async def get_bars(symbol: str, start: D, end: D, timeframe: str = "D") -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end, timeframe)

    await get_bars("AAPL", day(10, 1), day(10, 3))
    await get_bars("AAPL", day(10, 1), day(10, 3), "D")
    await get_bars(symbol="AAPL", timeframe="D", start=day(10, 2), end=day(10, 3))
    assert provider.call_count == 1


async def test_callable_key_and_step(provider):
    """key= and step= may be callables of the bound arguments."""
    steps = {"D": "1D", "1h": "1h"}

    @range_cached(
        key=lambda symbol, timeframe, **_: f"{symbol}:{timeframe}",
        step=lambda timeframe, **_: steps[timeframe],
        store=MemoryStore(),
    )
    async def get_bars(symbol: str, start: D, end: D, timeframe: str = "D") -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end, timeframe)

    await get_bars("AAPL", D(2024, 10, 1, 0), D(2024, 10, 1, 5), "1h")
    await get_bars("AAPL", D(2024, 10, 1, 6), D(2024, 10, 1, 9), "1h")
    out = await get_bars("AAPL", D(2024, 10, 1, 0), D(2024, 10, 1, 9), "1h")
    assert provider.call_count == 2
    assert_frame_equal(out, make_bars("AAPL", D(2024, 10, 1, 0), D(2024, 10, 1, 9), "1h"))


async def test_closed_left_end_is_exclusive(provider):
    """closed="left": [a, b) requests; gaps are handed over half-open too."""

    @range_cached(key="symbol", closed="left", store=MemoryStore())
    async def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        frame = await provider.get_bars(symbol, start, end)
        return frame[frame.index < pd.Timestamp(end)]

    a = await get_bars("AAPL", day(10, 1), day(10, 10))
    await get_bars("AAPL", day(10, 10), day(10, 20))
    both = await get_bars("AAPL", day(10, 1), day(10, 20))
    assert provider.ranges()[1] == (pd.Timestamp(day(10, 10)), pd.Timestamp(day(10, 20)))
    assert provider.call_count == 2
    assert a.index.max() < pd.Timestamp(day(10, 10))
    expected = make_bars("AAPL", day(10, 1), day(10, 20))
    assert_frame_equal(both, expected[expected.index < pd.Timestamp(day(10, 20))])


# -- exact results -----------------------------------------------------------------


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
async def test_results_are_exact(provider, tz):
    """Cached answers equal uncached ones: values, dtypes, index name, tz."""

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def get_bars(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end)

    s = [pd.Timestamp(x, tz=tz) for x in ("2024-10-01", "2024-10-12", "2024-10-07", "2024-10-30")]
    for a, b in [(s[0], s[1]), (s[2], s[3]), (s[0], s[3]), (s[2], s[2])]:
        got = await get_bars("AAPL", a, b)
        assert_frame_equal(got, make_bars("AAPL", a, b))


async def test_mutating_a_result_leaves_the_cache_alone(bars):
    """The caller gets its own object."""
    first = await bars("AAPL", day(10, 1), day(10, 10))
    first.iloc[0, 0] = -1.0
    first["extra"] = 1
    first.index.name = "renamed"
    again = await bars("AAPL", day(10, 1), day(10, 10))
    assert_frame_equal(again, make_bars("AAPL", day(10, 1), day(10, 10)))


async def test_rows_outside_the_gap_are_dropped(provider):
    """A provider returning more than asked: extra rows are neither returned nor stored."""

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def sloppy(symbol: str, start: D, end: D) -> pd.DataFrame:
        return await provider.get_bars(symbol, start - dt.timedelta(days=3), end + dt.timedelta(3))

    got = await sloppy("AAPL", day(10, 7), day(10, 11))
    assert_frame_equal(got, make_bars("AAPL", day(10, 7), day(10, 11)))
    cov = await sloppy.coverage("AAPL")
    assert cov == [(pd.Timestamp(day(10, 7)), pd.Timestamp(day(10, 11)))]


async def test_unsorted_results_come_back_sorted(provider):
    """Rows are returned sorted by position whatever order the provider used."""

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def shuffled(symbol: str, start: D, end: D) -> pd.DataFrame:
        frame = await provider.get_bars(symbol, start, end)
        return frame.iloc[::-1]

    got = await shuffled("AAPL", day(10, 1), day(10, 10))
    assert_frame_equal(got, make_bars("AAPL", day(10, 1), day(10, 10)))


async def test_series_results(provider):
    """A Series comes back as the same Series (name, dtype, index)."""

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def closes(symbol: str, start: D, end: D) -> pd.Series:
        return (await provider.get_bars(symbol, start, end))["close"]

    await closes("AAPL", day(10, 1), day(10, 10))
    got = await closes("AAPL", day(10, 3), day(10, 8))
    assert_series_equal(got, make_bars("AAPL", day(10, 3), day(10, 8))["close"])


async def test_position_in_a_column(provider):
    """index= names a position column; a default RangeIndex stays 0..n-1."""

    @range_cached(key="symbol", step="1D", index="time", store=MemoryStore())
    async def flat(symbol: str, start: D, end: D) -> pd.DataFrame:
        return (await provider.get_bars(symbol, start, end)).reset_index()

    await flat("AAPL", day(10, 1), day(10, 10))
    await flat("AAPL", day(10, 11), day(10, 20))
    got = await flat("AAPL", day(10, 8), day(10, 14))
    assert_frame_equal(got, make_bars("AAPL", day(10, 8), day(10, 14)).reset_index())


async def test_arrow_tables(provider):
    """A pyarrow.Table with a position column comes back as an equal Table."""

    @range_cached(key="symbol", step="1D", index="time", store=MemoryStore())
    async def table(symbol: str, start: D, end: D) -> pa.Table:
        frame = await provider.get_bars(symbol, start, end)
        return pa.Table.from_pandas(frame.reset_index(), preserve_index=False)

    await table("AAPL", day(10, 1), day(10, 10))
    await table("AAPL", day(10, 11), day(10, 20))
    got = await table("AAPL", day(10, 8), day(10, 14))
    want = pa.Table.from_pandas(
        make_bars("AAPL", day(10, 8), day(10, 14)).reset_index(), preserve_index=False
    )
    assert got.equals(want)


async def test_date_bounds(provider):
    """datetime.date bounds step by whole days and are handed back as dates."""
    seen: list[tuple[object, object]] = []

    @range_cached(key="symbol", store=MemoryStore())
    async def get_bars(symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        seen.append((start, end))
        return await provider.get_bars(symbol, start, end)

    await get_bars("AAPL", dt.date(2024, 10, 1), dt.date(2024, 10, 10))
    got = await get_bars("AAPL", dt.date(2024, 10, 5), dt.date(2024, 10, 15))
    assert seen == [
        (dt.date(2024, 10, 1), dt.date(2024, 10, 10)),
        (dt.date(2024, 10, 11), dt.date(2024, 10, 15)),
    ]
    assert_frame_equal(got, make_bars("AAPL", dt.date(2024, 10, 5), dt.date(2024, 10, 15)))


async def test_int_axis(provider):
    """Integer bounds (block numbers) with the default step of 1."""

    @range_cached(key="chain", store=MemoryStore())
    async def blocks(chain: str, start: int, end: int) -> pd.DataFrame:
        return await provider.get_blocks(chain, start, end)

    await blocks("eth", 100, 199)
    await blocks("eth", 150, 260)
    got = await blocks("eth", 120, 250)
    assert provider.ranges() == [(100, 199), (200, 260)]
    assert_frame_equal(got, (await provider.get_blocks("eth", 120, 250)))


# -- introspection ---------------------------------------------------------------


async def test_cache_info_counts(bars):
    """Hits, partial hits, misses, provider calls and rows are counted."""
    await bars("AAPL", day(10, 1), day(10, 10))
    await bars("AAPL", day(10, 5), day(10, 15))
    await bars("AAPL", day(10, 2), day(10, 3))
    info = bars.cache_info()
    rows = len(make_bars("AAPL", day(10, 1), day(10, 15)))
    assert (info.hits, info.partial_hits, info.misses) == (1, 1, 1)
    assert (info.provider_calls, info.rows_fetched) == (2, rows)


async def test_prefetch_then_everything_hits(bars, provider):
    """prefetch covers a range in one call and returns nothing."""
    assert await bars.prefetch("AAPL", day(10, 1), day(11, 30)) is None
    for d in range(1, 31):
        await bars("AAPL", day(10, d), day(10, d))
    assert provider.call_count == 1


async def test_invalidate_part_and_whole(bars, provider):
    """invalidate() forgets a sub-range, or the whole key."""
    await bars("AAPL", day(10, 1), day(10, 20))
    await bars.invalidate("AAPL", start=day(10, 5), end=day(10, 7))
    assert await bars.coverage("AAPL") == [
        (pd.Timestamp(day(10, 1)), pd.Timestamp(day(10, 4))),
        (pd.Timestamp(day(10, 8)), pd.Timestamp(day(10, 20))),
    ]
    got = await bars("AAPL", day(10, 1), day(10, 20))
    assert provider.ranges()[-1] == (pd.Timestamp(day(10, 5)), pd.Timestamp(day(10, 7)))
    assert_frame_equal(got, make_bars("AAPL", day(10, 1), day(10, 20)))
    await bars.invalidate("AAPL")
    assert await bars.coverage("AAPL") == []


async def test_cache_clear(bars, provider):
    """cache_clear() forgets every key and resets the counters."""
    await bars("AAPL", day(10, 1), day(10, 2))
    bars.cache_clear()
    assert bars.cache_info().provider_calls == 0
    await bars("AAPL", day(10, 1), day(10, 2))
    assert provider.call_count == 2


async def test_debug_log_names_each_gap(bars, caplog):
    """Each gap fetched is logged at debug level on the "rangememo" logger."""
    with caplog.at_level(logging.DEBUG, logger="rangememo"):
        await bars("AAPL", day(10, 1), day(10, 3))
    assert any("2024-10-01" in r.getMessage() for r in caplog.records if r.name == "rangememo")


def test_wrapper_keeps_signature_and_wrapped(bars):
    """functools.wraps: name, doc, signature and __wrapped__ survive."""
    import inspect

    assert bars.__name__ == "get_bars"
    assert list(inspect.signature(bars).parameters) == ["symbol", "start", "end", "timeframe"]
    assert inspect.iscoroutinefunction(bars)
    assert callable(bars.__wrapped__)


def test_public_names_are_pinned():
    """__all__ is the public API; nothing else is exported by accident."""
    public = {
        name
        for name, value in vars(rangememo).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public |= set(rangememo._LAZY)  # loaded on first use (see tests/test_import_lazy.py)
    assert sorted(rangememo.__all__) == sorted(public - {"annotations"})
    for name in rangememo.__all__:
        assert getattr(rangememo, name).__module__.startswith("rangememo")


@range_cached(key="symbol", step="1D", store=MemoryStore())
def module_level(symbol: str, start: D, end: D) -> pd.DataFrame:
    """A module-level cached function (pickles by reference)."""
    return make_bars(symbol, start, end)


def test_pickles_by_reference():
    """A decorated module-level function pickles as a reference to itself."""
    assert pickle.loads(pickle.dumps(module_level)) is module_level


async def test_daily_steps_are_calendar_days_across_dst(provider):
    """New York daily bars across the Nov 3 DST change: 63 calls, no hole, exact."""

    # readahead=None: one call per new day, so the count shows the DST change's extra one.
    @range_cached(key="symbol", step="1D", store=MemoryStore(), readahead=None)
    async def get_bars(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        assert start <= end, (start, end)
        return await provider.get_bars(symbol, start, end)

    tz = "America/New_York"
    first, last = pd.Timestamp("2024-10-01", tz=tz), pd.Timestamp("2024-12-01", tz=tz)
    for now in pd.date_range(first, last, freq="D"):
        await get_bars("AAPL", now, now)
        await get_bars("AAPL", now - pd.DateOffset(days=30), now)
    got = await get_bars("AAPL", first, last)
    # 63 one-a-day calls, and one more at the change: an EDT row cannot vouch that an
    # empty EST sliver holds no bar (rows at a fixed 04:00Z would be at 23:00 there).
    assert provider.call_count == 64
    assert_frame_equal(got, make_bars("AAPL", first, last))


async def test_a_sliver_gap_is_never_handed_over_backwards(provider):
    """Off-grid requests on a key with rows claim only up to the next bar; no backwards gaps."""
    seen = []

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        seen.append((start, end))
        return await provider.get_bars(symbol, start, end)

    await get_bars("AAPL", D(2024, 9, 30), D(2024, 9, 30))  # rows: the key's grid is known
    await get_bars("AAPL", D(2024, 10, 1, 16), D(2024, 10, 1, 16))
    got = await get_bars("AAPL", D(2024, 10, 2), D(2024, 10, 2, 12))
    assert all(a <= b for a, b in seen)
    assert_frame_equal(got, make_bars("AAPL", D(2024, 10, 2), D(2024, 10, 2, 12)))
