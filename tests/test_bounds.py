"""``coerce_bounds=True``: ISO-8601 strings as bounds, handed back to the provider as strings."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from rangememo import BoundsTypeError, MemoryStore, NotCached, ParquetStore, range_cached
from rangememo._engine.bounds import coerce_bounds

D = dt.datetime
NY = ZoneInfo("America/New_York")


class Rows:
    """Rows at every ``freq`` point of [start, end] (end inclusive); records what it was asked."""

    def __init__(self, freq: str = "1D", tz: Any = None) -> None:
        self.freq, self.tz, self.calls = freq, tz, []

    def __call__(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        self.calls.append((start, end))
        a, b = pd.Timestamp(start), pd.Timestamp(end)
        if self.tz is not None:
            a = a.tz_localize(self.tz) if a.tz is None else a.tz_convert(self.tz)
            b = b.tz_localize(self.tz) if b.tz is None else b.tz_convert(self.tz)
        index = pd.date_range(a, b, freq=self.freq, name="ts")
        values = index.hour.to_numpy() * 100.0 + index.day.to_numpy()
        return pd.DataFrame({"v": values.astype("float64")}, index=index)


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path)


def build(kind: str, rows: Any, store: Any, **options: Any) -> Any:
    deco = range_cached(key="symbol", store=store, coerce_bounds=True, namespace="b", **options)
    if kind == "async":

        @deco
        async def aget(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            await asyncio.sleep(0)
            return rows(symbol, start, end)

        return aget
    if kind == "method":

        class Client:
            @deco
            def bars(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
                return rows(symbol, start, end)

        return Client().bars

    @deco
    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return rows(symbol, start, end)

    return get


async def go(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


@pytest.mark.parametrize("kind", ["sync", "async", "method"])
async def test_date_strings_reach_the_provider_as_date_strings(kind, store):
    rows = Rows()
    get = build(kind, rows, store, step="1D")
    first = await go(get("SPY", "2024-01-01", "2024-01-10"))
    second = await go(get("SPY", "2024-01-05", "2024-01-20"))
    assert rows.calls == [("2024-01-01", "2024-01-10"), ("2024-01-11", "2024-01-20")]
    assert_frame_equal(first, Rows()("SPY", "2024-01-01", "2024-01-10"))
    assert_frame_equal(second, Rows()("SPY", "2024-01-05", "2024-01-20"))
    # Callers with date objects share the same entries.
    same = await go(get("SPY", dt.date(2024, 1, 3), dt.date(2024, 1, 15)))
    assert len(rows.calls) == 2
    assert_frame_equal(same, Rows()("SPY", "2024-01-03", "2024-01-15"))


async def test_datetime_strings_reach_the_provider_as_iso_text(store):
    rows = Rows("1h")
    get = build("sync", rows, store, step="1h")
    get("SPY", "2024-01-01T09:00", "2024-01-01T12:00")
    get("SPY", "2024-01-01 10:00", "2024-01-01T15:00:00")
    assert rows.calls == [
        ("2024-01-01T09:00:00", "2024-01-01T12:00:00"),
        ("2024-01-01T13:00:00", "2024-01-01T15:00:00"),
    ]
    assert all(isinstance(x, str) for call in rows.calls for x in call)


async def test_a_string_takes_the_aware_bound_s_zone(store):
    """Wall time in New York, not UTC: 09:30 is 14:30Z in winter."""
    rows = Rows("30min", tz=NY)
    get = build("sync", rows, store, step="30min")
    end = D(2024, 1, 5, 11, 0, tzinfo=NY)
    got = get("SPY", "2024-01-05T09:30", end)
    assert got.index[0] == pd.Timestamp("2024-01-05 14:30", tz="UTC")
    assert str(got.index.tz) == "America/New_York"
    assert rows.calls == [("2024-01-05T09:30:00-05:00", "2024-01-05T11:00:00-05:00")]
    # An offset given is converted into the other bound's zone.
    again = get("SPY", "2024-01-05T14:30:00+00:00", end)
    assert len(rows.calls) == 1
    assert_frame_equal(again, got)


async def test_two_aware_strings_and_not_cached_in_string_form(store):
    rows = Rows("1h", tz="UTC")
    get = build("sync", rows, store, step="1h")
    get("SPY", "2024-01-05T09:00Z", "2024-01-05T10:00Z")
    with pytest.raises(NotCached) as info:
        get.cached("SPY", "2024-01-05T09:00Z", "2024-01-05T12:00Z")
    assert info.value.missing == [("2024-01-05T11:00:00+00:00", "2024-01-05T12:00:00+00:00")]
    assert len(rows.calls) == 1


async def test_refresh_and_invalidate_take_strings(store):
    rows = Rows()
    get = build("sync", rows, store, step="1D")
    get("SPY", "2024-01-01", "2024-01-10")
    get.refresh("SPY", "2024-01-03", "2024-01-04")
    assert rows.calls[-1] == ("2024-01-03", "2024-01-04")
    get.invalidate("SPY", start="2024-01-05", end="2024-01-06")
    get("SPY", "2024-01-01", "2024-01-10")
    assert rows.calls[-1] == ("2024-01-05", "2024-01-06")


@pytest.mark.parametrize(
    "bad", ["yesterday", "now", "today", "2024-13-01", "", "Jan 5 2024", "2024-01-05T25:00"]
)
def test_bad_strings_are_named(bad):
    rows = Rows()
    get = build("sync", rows, MemoryStore(), step="1D")
    with pytest.raises(BoundsTypeError, match=repr(bad).replace("[", r"\[")):
        get("SPY", bad, "2024-01-10")
    with pytest.raises(BoundsTypeError, match="end="):
        get("SPY", "2024-01-01", bad)
    assert rows.calls == []


@pytest.mark.parametrize(
    ("start", "end", "needle"),
    [
        ("2024-01-05T09:00Z", "2024-01-05T10:00", "offset"),
        ("2024-01-05T09:00", dt.date(2024, 1, 6), "holds a time"),
        ("2024-01-05", 7, "int"),
        ("2024-01-05T09:00+01:00", D(2024, 1, 5, 12), "naive"),
        ("2024-03-10T02:30", D(2024, 3, 10, 12, tzinfo=NY), "not one instant"),
        ("2024-11-03T01:30", D(2024, 11, 3, 12, tzinfo=NY), "not one instant"),
    ],
)
def test_mixtures_that_cannot_be_one_axis_are_refused(start, end, needle):
    with pytest.raises(BoundsTypeError, match=needle):
        coerce_bounds(start, end)


def test_strings_need_the_option():
    @range_cached(key="symbol", step="1D", store=MemoryStore())
    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        raise AssertionError("never called")

    with pytest.raises(TypeError):
        get("SPY", "2024-01-01", "2024-01-10")


def test_non_string_bounds_pass_untouched():
    a, b = D(2024, 1, 1), pd.Timestamp("2024-01-02", tz="UTC")
    assert coerce_bounds(a, b) == (a, b, False)
    assert coerce_bounds(1, 2) == (1, 2, False)


def test_date_string_against_a_datetime_is_its_midnight():
    s, e, strings = coerce_bounds("2024-01-05", D(2024, 1, 6, 12, tzinfo=NY))
    assert strings and s == D(2024, 1, 5, tzinfo=NY) and s.utcoffset() == dt.timedelta(hours=-5)
    s, e, _ = coerce_bounds("2024-01-05", "2024-01-06T12:00")
    assert (s, e) == (D(2024, 1, 5), D(2024, 1, 6, 12))


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 1, 1)), st.integers(0, 400))
def test_date_strings_round_trip(day, span):
    end = day + dt.timedelta(days=span)
    assert coerce_bounds(day.isoformat(), end.isoformat()) == (day, end, True)


@given(
    st.datetimes(min_value=D(1970, 1, 2), max_value=D(2100, 1, 1)),
    st.integers(-14 * 60, 14 * 60),
)
def test_aware_strings_are_the_same_instant(when, minutes):
    tz = dt.timezone(dt.timedelta(minutes=minutes))
    text = when.replace(tzinfo=tz).isoformat()
    s, _, _ = coerce_bounds(text, D(2100, 1, 2, tzinfo=NY))
    assert s == when.replace(tzinfo=tz) and s.tzinfo is not None
    assert np.isclose(s.timestamp(), when.replace(tzinfo=tz).timestamp())


def test_pytz_zones_take_the_offset_of_the_string_s_own_date():
    """A pytz-zoned other bound carries July's offset; January's string gets January's."""
    pytz = pytest.importorskip("pytz")
    zone = pytz.timezone("America/New_York")
    july = pd.Timestamp("2024-07-05 12:00", tz=zone)
    s, _, _ = coerce_bounds("2024-01-05T09:00", july)
    assert isinstance(s, pd.Timestamp) and s.utcoffset() == dt.timedelta(hours=-5)
    s, _, _ = coerce_bounds("2024-01-05T09:00", zone.localize(D(2024, 7, 5, 12)))
    assert s == pd.Timestamp("2024-01-05 14:00", tz="UTC")
