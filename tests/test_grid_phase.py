"""Rows at any phase of the grid: DST-shifted daily bars, caller units, off-grid invalidation.

Each provider here answers ``start <= t <= end`` over a day grid of its own, as real APIs
do (Alpaca stamps daily bars at New York midnight in UTC, crypto exchanges at UTC
midnight); expected answers always come from calling the provider uncached.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from rangememo import MemoryStore, ParquetStore, range_cached

NY = "America/New_York"
CHANGES = ["2024-03-10", "2024-11-03"]  # the 2024 US DST changes


def day_rows(zone: str | None, offset: pd.Timedelta, out_tz: str | None) -> Callable[..., Any]:
    """Daily bars at ``offset`` past each midnight of ``zone``, shown in ``out_tz``."""
    seen: collections.Counter[pd.Timestamp] = collections.Counter()

    def provider(symbol: str, start: Any, end: Any, record: bool = True) -> pd.DataFrame:
        s, e = pd.Timestamp(start), pd.Timestamp(end)
        lo = s.tz_localize(None) if s.tz is None else s.tz_convert(zone or "UTC").tz_localize(None)
        hi = e.tz_localize(None) if e.tz is None else e.tz_convert(zone or "UTC").tz_localize(None)
        days = pd.date_range(
            lo.normalize() - pd.Timedelta("2D"), hi.normalize() + pd.Timedelta("2D")
        )
        stamps = days + offset
        idx = (
            stamps.tz_localize(zone, ambiguous=True, nonexistent="shift_forward")
            if zone
            else stamps
        )
        if out_tz is not None:
            idx = (
                idx.tz_convert(out_tz)
                if idx.tz is not None
                else idx.tz_localize(out_tz, ambiguous=True, nonexistent="shift_forward")
            )
        elif idx.tz is not None:
            idx = idx.tz_convert("UTC").tz_localize(None)  # naive UTC instants
        keep = idx[(idx >= s) & (idx <= e)]
        if record:
            seen.update(keep)
        return pd.DataFrame(
            {"close": [float(t.value // 10**9 % 9973) for t in keep]},
            index=pd.DatetimeIndex(keep, name="timestamp", freq=None),
        )

    provider.seen = seen  # type: ignore[attr-defined]
    return provider


SHAPES = {
    # (a) Alpaca: New York midnight bars in UTC, UTC bounds
    "alpaca-utc": (NY, pd.Timedelta(0), "UTC", "UTC"),
    # (b) the same instants, naive UTC, naive bounds
    "alpaca-naive": (NY, pd.Timedelta(0), None, None),
    # (c) crypto: UTC midnight candles asked for with New York bounds
    "crypto-ny": ("UTC", pd.Timedelta(0), "UTC", NY),
}


@pytest.fixture(params=["memory", "parquet"])
def store_factory(request, tmp_path):
    if request.param == "memory":
        store = MemoryStore()
        return lambda: store
    return lambda: ParquetStore(tmp_path / "cache")


def bound(day: pd.Timestamp, tz: str | None) -> pd.Timestamp:
    return pd.Timestamp(day.strftime("%Y-%m-%d"), tz=tz)


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_sliding_lookback_across_dst_matches_uncached(shape, change, store_factory):
    """A 5-day lookback sliding over 20 days across a DST change: every answer exact."""
    zone, offset, out_tz, bounds_tz = SHAPES[shape]
    provider = day_rows(zone, offset, out_tz)
    base = pd.Timestamp(change) - pd.Timedelta("10D")
    for i in range(20):
        # A fresh decorator (and, on disk, a fresh store) every few calls: reopening too.
        if i % 7 == 0:
            cached = range_cached(key="symbol", step="1D", store=store_factory(), namespace=shape)(
                provider
            )
        end = bound(base + pd.Timedelta(days=i), bounds_tz)
        start = bound(base + pd.Timedelta(days=i - 5), bounds_tz)
        got = cached("X", start, end)
        assert_frame_equal(got, provider("X", start, end, record=False))
    # Never asked twice for a bar it already had.
    assert max(provider.seen.values()) == 1


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_daily_requests_then_a_window_match_uncached(shape, store_factory):
    """The seed pattern: one day, then a window ending on it, day after day."""
    zone, offset, out_tz, bounds_tz = SHAPES[shape]
    provider = day_rows(zone, offset, out_tz)
    cached = range_cached(key="symbol", step="1D", store=store_factory(), namespace="seed")(
        provider
    )
    base = pd.Timestamp(CHANGES[1]) - pd.Timedelta("6D")
    for i in range(12):
        day = bound(base + pd.Timedelta(days=i), bounds_tz)
        for start in (day, bound(base + pd.Timedelta(days=i - 4), bounds_tz)):
            assert_frame_equal(cached("X", start, day), provider("X", start, day, record=False))
    assert max(provider.seen.values()) == 1


zones = st.sampled_from([None, "UTC", NY, "Europe/London", "Australia/Sydney"])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    row_zone=zones,
    out_zone=zones,
    bounds_zone=zones,
    offset_min=st.sampled_from([0, 0, 60, 240, 300, 570, 1439]),
    requests=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 8), st.integers(0, 23)),
        min_size=1,
        max_size=12,
    ),
)
# UTC-midnight rows asked with London bounds: on the bounds' grid in winter only.
@example(
    row_zone=None,
    out_zone="UTC",
    bounds_zone="Europe/London",
    offset_min=0,
    requests=[(0, 0, 0), (8, 0, 0), (0, 0, 1)],
)
def test_any_phase_any_zone_matches_uncached(row_zone, out_zone, bounds_zone, offset_min, requests):
    """Whatever the rows' phase and zone and the bounds' zone, answers equal the uncached ones."""
    # Naive rows with aware bounds is a different (refused) contract.
    assume((out_zone is None) == (bounds_zone is None))
    # Known limit (docs/decisions.md): rows stamped in a zone with DST of its own but
    # shown in UTC (London midnight asked with UTC bounds, London 05:00 with New York
    # bounds) sit on the bounds' grid in one season only and can lose the first bar
    # after the change.
    hidden = row_zone == "Europe/London" and out_zone != "Europe/London"
    assume(not (hidden and bounds_zone in (None, "UTC") and offset_min < 120))
    assume(not (hidden and bounds_zone == NY and offset_min == 300))
    provider = day_rows(row_zone, pd.Timedelta(minutes=offset_min), out_zone)
    cached = range_cached(key="symbol", step="1D", store=MemoryStore(), namespace="p")(provider)
    base = pd.Timestamp("2024-10-20")
    for first, length, hour in requests:
        start = bound(base + pd.Timedelta(days=first), bounds_zone)
        end = start + pd.Timedelta(days=length, hours=hour if first % 3 == 0 else 0)
        assert_frame_equal(cached("X", start, end), provider("X", start, end, record=False))
    assert max(provider.seen.values(), default=1) == 1


# -- the caller's type and unit -------------------------------------------------------


def date_range_provider(calls: list[tuple[Any, Any]]) -> Callable[..., pd.DataFrame]:
    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append((start, end))
        idx = pd.date_range(start, end, freq="D", name="t")
        return pd.DataFrame({"v": (idx.day * 3).astype("int64")}, index=idx)

    return get


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_gap_bounds_keep_the_callers_unit(unit, store_factory):
    """``pd.date_range(start, end)`` inside the provider gives the same dtype cached or not."""
    calls: list[tuple[Any, Any]] = []
    raw = date_range_provider([])
    cached = range_cached(key="symbol", step="1D", store=store_factory(), namespace=unit)(
        date_range_provider(calls)
    )

    def at(day: int) -> pd.Timestamp:
        return (pd.Timestamp("2024-01-01") + pd.Timedelta(days=day)).as_unit(unit)

    for s, e in [(at(0), at(5)), (at(3), at(9)), (at(12), at(12)), (at(1), at(14))]:
        assert_frame_equal(cached("X", s, e), raw("X", s, e))
    assert calls and all(isinstance(s, pd.Timestamp) and s.unit == unit for c in calls for s in c)


def test_numpy_bounds_are_handed_back_as_numpy(store_factory):
    """``np.datetime64`` bounds reach the provider as ``np.datetime64``."""
    seen: list[tuple[Any, Any]] = []

    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        seen.append((start, end))
        idx = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D", name="t")
        return pd.DataFrame({"v": idx.day.astype("int64")}, index=idx.as_unit("ns"))

    cached = range_cached(key="symbol", step="1D", store=store_factory(), namespace="np")(get)
    cached("X", np.datetime64("2024-01-01"), np.datetime64("2024-01-05"))
    cached("X", np.datetime64("2024-01-03"), np.datetime64("2024-01-08"))
    assert len(seen) == 2
    assert all(isinstance(b, np.datetime64) for call in seen for b in call)
    assert seen[1] == (np.datetime64("2024-01-06"), np.datetime64("2024-01-08"))


def test_datetime_bounds_are_handed_back_as_datetimes(store_factory):
    """``datetime`` in, ``datetime`` out, in the caller's zone."""
    seen: list[tuple[Any, Any]] = []
    tz = dt.timezone(dt.timedelta(hours=-5))

    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        seen.append((start, end))
        idx = pd.date_range(start, end, freq="D", name="t")
        return pd.DataFrame({"v": idx.day.astype("int64")}, index=idx)

    cached = range_cached(key="symbol", step="1D", store=store_factory(), namespace="dt")(get)
    cached("X", dt.datetime(2024, 1, 1, tzinfo=tz), dt.datetime(2024, 1, 4, tzinfo=tz))
    cached("X", dt.datetime(2024, 1, 2, tzinfo=tz), dt.datetime(2024, 1, 6, tzinfo=tz))
    assert seen[1] == (dt.datetime(2024, 1, 5, tzinfo=tz), dt.datetime(2024, 1, 6, tzinfo=tz))
    assert all(type(b) is dt.datetime for call in seen for b in call)


# -- invalidate at an off-grid end ------------------------------------------------------


@pytest.mark.parametrize("phase", ["00:00", "05:00"])
def test_invalidate_forgets_exactly_the_rows_at_or_before_end(phase, store_factory):
    """``invalidate(end=<off-grid>)`` keeps the next day's row and its coverage."""
    provider = day_rows(None, pd.Timedelta(phase + ":00"), None)
    cached = range_cached(key="symbol", step="1D", store=store_factory(), namespace="inv")(provider)
    d1, d10 = pd.Timestamp("2024-10-01"), pd.Timestamp("2024-10-10")
    cached("X", d1, d10)
    cut = pd.Timestamp("2024-10-05 12:00")
    cached.invalidate("X", end=cut)
    provider.seen.clear()
    later = pd.Timestamp("2024-10-06")
    assert_frame_equal(cached("X", later, d10), provider("X", later, d10, record=False))
    assert not provider.seen  # nothing after the cut was forgotten
    assert_frame_equal(cached("X", d1, d10), provider("X", d1, d10, record=False))
    assert sorted(provider.seen) == sorted(provider("X", d1, cut, record=False).index)
