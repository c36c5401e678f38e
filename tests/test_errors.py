"""Bad input gets a clear error naming the value; nothing cached is lost."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import (
    InvalidOption,
    InvalidRange,
    InvalidResult,
    MemoryStore,
    RangememoError,
    SchemaMismatchError,
    range_cached,
)
from rangememo.testing import FakeProvider, make_bars

D = dt.datetime
UTC = dt.UTC


def day(d: int) -> dt.datetime:
    return D(2024, 10, d)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def bars(provider):
    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        return await provider.get_bars(symbol, start, end)

    return get_bars


async def _warm(bars) -> pd.DataFrame:
    return await bars("AAPL", day(1), day(10))


async def _intact(bars, provider, before: int) -> None:
    got = await bars("AAPL", day(1), day(10))
    assert_frame_equal(got, make_bars("AAPL", day(1), day(10)))
    assert provider.call_count == before


# -- bounds --------------------------------------------------------------------


async def test_start_after_end(bars, provider):
    """start > end: InvalidRange (a ValueError) naming both; provider not called."""
    await _warm(bars)
    with pytest.raises(InvalidRange, match=r"2024-10-09.*2024-10-02") as info:
        await bars("AAPL", day(9), day(2))
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, RangememoError)
    await _intact(bars, provider, 1)


async def test_naive_mixed_with_aware(bars, provider):
    """Naive with aware bounds: TypeError naming both; provider not called."""
    await _warm(bars)
    with pytest.raises(TypeError, match=r"naive.*aware.*2024, 10, 1.*2024, 10, 5"):
        await bars("AAPL", day(1), D(2024, 10, 5, tzinfo=UTC))
    await _intact(bars, provider, 1)


async def test_bounds_of_different_types(bars, provider):
    """A datetime with an int: TypeError naming both types."""
    with pytest.raises(TypeError, match=r"datetime.*int"):
        await bars("AAPL", day(1), 5)
    with pytest.raises(TypeError, match=r"'2024-10-01'"):
        await bars("AAPL", "2024-10-01", day(5))
    assert provider.call_count == 0


async def test_key_cached_naive_refuses_aware(bars, provider):
    """A key cached with naive bounds refuses aware ones (they mean other instants)."""
    await _warm(bars)
    with pytest.raises(TypeError, match=r"tz-naive"):
        await bars("AAPL", D(2024, 10, 1, tzinfo=UTC), D(2024, 10, 2, tzinfo=UTC))
    await _intact(bars, provider, 1)


def test_bad_options_fail_at_decoration():
    """Unknown start/end names or closed values fail when decorating."""
    with pytest.raises(TypeError, match="'begin'"):

        @range_cached(start="begin", store=MemoryStore())
        def f(start: int, end: int) -> pd.DataFrame: ...

    with pytest.raises(ValueError, match="'middle'"):

        @range_cached(closed="middle", store=MemoryStore())  # type: ignore[arg-type]
        def g(start: int, end: int) -> pd.DataFrame: ...


def test_bad_step(provider):
    """A step that is not a fixed span: InvalidOption naming it, at decoration."""
    with pytest.raises(InvalidOption, match="'1M'"):

        @range_cached(key="symbol", step="1M", store=MemoryStore())
        async def monthly(symbol: str, start: D, end: D) -> pd.DataFrame:
            return await provider.get_bars(symbol, start, end)

    assert provider.call_count == 0


async def test_unhashable_key(provider):
    """An unhashable key value: TypeError naming it."""

    @range_cached(key="symbols", step="1D", store=MemoryStore())
    async def many(symbols: list[str], start: D, end: D) -> pd.DataFrame:
        return await provider.get_bars(symbols[0], start, end)

    with pytest.raises(TypeError, match=r"\['AAPL'\]"):
        await many(["AAPL"], day(1), day(2))


# -- results -------------------------------------------------------------------


async def test_unsupported_result_type():
    """Not a DataFrame/Series/Table: TypeError naming the type; nothing stored."""
    calls = []

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def bad(symbol: str, start: D, end: D) -> list[int]:
        calls.append(1)
        return [1, 2, 3]

    with pytest.raises(TypeError, match=r"builtins\.list"):
        await bad("AAPL", day(1), day(2))
    assert await bad.coverage("AAPL") == []
    with pytest.raises(TypeError):
        await bad("AAPL", day(1), day(2))
    assert len(calls) == 2


async def test_result_without_position_index(provider):
    """A RangeIndex where datetimes are expected: ValueError; nothing stored."""

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def flat(symbol: str, start: D, end: D) -> pd.DataFrame:
        return (await provider.get_bars(symbol, start, end)).reset_index()

    with pytest.raises(InvalidResult, match="datetimes"):
        await flat("AAPL", day(1), day(2))
    assert await flat.coverage("AAPL") == []


async def test_result_missing_position_column(provider):
    """index= names a column the result lacks: ValueError naming it."""

    @range_cached(key="symbol", step="1D", index="ts", store=MemoryStore())
    async def flat(symbol: str, start: D, end: D) -> pd.DataFrame:
        return (await provider.get_bars(symbol, start, end)).reset_index()

    with pytest.raises(InvalidResult, match="'ts'"):
        await flat("AAPL", day(1), day(2))


async def test_result_with_wrong_tz_awareness(provider):
    """Aware bounds but a naive index: ValueError; nothing stored."""

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def naive(symbol: str, start: D, end: D) -> pd.DataFrame:
        return make_bars(symbol, start.replace(tzinfo=None), end.replace(tzinfo=None))

    with pytest.raises(InvalidResult, match=r"tz-naive"):
        await naive("AAPL", D(2024, 10, 1, tzinfo=UTC), D(2024, 10, 2, tzinfo=UTC))


async def test_result_changes_kind(provider):
    """A Series where a DataFrame was returned before: TypeError; cache intact."""
    flip = {"series": False}

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def fickle(symbol: str, start: D, end: D) -> pd.DataFrame:
        frame = await provider.get_bars(symbol, start, end)
        return frame["close"] if flip["series"] else frame

    await fickle("AAPL", day(1), day(10))
    flip["series"] = True
    with pytest.raises(TypeError, match="Series"):
        await fickle("AAPL", day(5), day(15))
    got = await fickle("AAPL", day(1), day(10))
    assert_frame_equal(got, make_bars("AAPL", day(1), day(10)))


async def test_schema_change_is_refused(provider):
    """A conflicting dtype of a cached column: SchemaMismatchError naming it; nothing stored."""
    change = {"on": False}

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def drift(symbol: str, start: D, end: D) -> pd.DataFrame:
        frame = await provider.get_bars(symbol, start, end)
        return frame.astype({"volume": "str"}) if change["on"] else frame

    await drift("AAPL", day(1), day(10))
    change["on"] = True
    with pytest.raises(SchemaMismatchError, match="'volume': int64 -> str"):
        await drift("AAPL", day(5), day(15))
    assert await drift.coverage("AAPL") == [(pd.Timestamp(day(1)), pd.Timestamp(day(10)))]


async def test_new_column_is_merged(provider):
    """A provider adding a column: merged, older rows null in it."""
    extra = {"on": False}

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def grow(symbol: str, start: D, end: D) -> pd.DataFrame:
        frame = await provider.get_bars(symbol, start, end)
        return frame.assign(vwap=frame["close"]) if extra["on"] else frame

    await grow("AAPL", day(1), day(4))
    extra["on"] = True
    got = await grow("AAPL", day(1), day(8))
    assert list(got.columns) == [*make_bars("AAPL", day(1), day(1)).columns, "vwap"]
    assert got.loc[: day(4), "vwap"].isna().all()
    assert got.loc[day(7) :, "vwap"].notna().all()


# -- provider errors -------------------------------------------------------------


async def test_provider_error_propagates_and_keeps_cache(bars, provider):
    """The same exception propagates; the failed gap stays uncovered."""
    await _warm(bars)
    boom = ConnectionError("rate limited")
    provider.fail_next(boom)
    with pytest.raises(ConnectionError) as info:
        await bars("AAPL", day(5), day(20))
    assert info.value is boom
    assert await bars.coverage("AAPL") == [(pd.Timestamp(day(1)), pd.Timestamp(day(10)))]
    got = await bars("AAPL", day(5), day(20))
    assert_frame_equal(got, make_bars("AAPL", day(5), day(20)))
    assert bars.cache_info().errors == 1


async def test_one_failed_gap_keeps_the_others(bars, provider):
    """Of two gaps in one call, the one that succeeded may be kept."""
    await bars("AAPL", day(10), day(12))
    provider.fail_next(RuntimeError("first gap fails"))
    with pytest.raises(RuntimeError):
        await bars("AAPL", day(1), day(20))
    covered = await bars.coverage("AAPL")
    assert (pd.Timestamp(day(10)), pd.Timestamp(day(12))) in covered or covered[0][0] == (
        pd.Timestamp(day(10))
    )
    got = await bars("AAPL", day(1), day(20))
    assert_frame_equal(got, make_bars("AAPL", day(1), day(20)))
    fetched = provider.ranges()
    starts = [pd.Timestamp(a) for a, _ in fetched]
    assert len(starts) == len(set(starts)) + 1  # only the failed gap was asked twice


async def test_nat_bounds(bars, provider):
    """NaT bounds are refused before the provider is called."""
    with pytest.raises((InvalidRange, TypeError)):
        await bars("AAPL", pd.NaT, day(2))
    assert provider.call_count == 0


def test_numpy_datetime_bounds():
    """numpy datetime64 bounds work like Timestamps."""
    calls = []

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    def get(symbol: str, start: np.datetime64, end: np.datetime64) -> pd.DataFrame:
        calls.append((start, end))
        return make_bars(symbol, pd.Timestamp(start), pd.Timestamp(end))

    a = get("AAPL", np.datetime64("2024-10-01"), np.datetime64("2024-10-05"))
    assert_frame_equal(a, make_bars("AAPL", day(1), day(5)))


async def test_a_datetime_unit_change_is_cast_back(provider):
    """A provider switching ns -> s units (pandas 3 parsing) is cast to the stored unit."""
    coarse = {"on": False}

    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def units(symbol: str, start: D, end: D) -> pd.DataFrame:
        frame = await provider.get_bars(symbol, start, end)
        if coarse["on"]:
            frame.index = frame.index.as_unit("s")
        return frame

    await units("AAPL", day(1), day(4))
    coarse["on"] = True
    got = await units("AAPL", day(1), day(10))
    assert_frame_equal(got, make_bars("AAPL", day(1), day(10)))
    assert str(got.index.dtype) == "datetime64[ns]"
