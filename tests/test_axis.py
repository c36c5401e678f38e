"""The position axis: bounds to int64 and back, inclusive to half-open, steps and bound errors."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rangememo import InvalidOption, InvalidRange, RangememoError
from rangememo._core.axis import axis_of
from rangememo._core.steps import parse_step

NY = zoneinfo.ZoneInfo("America/New_York")
EPOCH = pd.Timestamp("1970-01-01")
NS_PER_DAY = 86_400 * 10**9


def names(value, message: str) -> bool:
    """Does an error message name ``value`` (as its repr or its str)?"""
    return repr(value) in message or str(value) in message


def ns_since_epoch(value) -> int:
    """Nanoseconds since the epoch, wall time for naive values, UTC for aware ones."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return (ts.as_unit("ns") - EPOCH) // pd.Timedelta(1, "ns")


naive_datetimes = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))
aware_datetimes = st.datetimes(
    dt.datetime(1900, 1, 1),
    dt.datetime(2200, 1, 1),
    timezones=st.sampled_from([dt.UTC, NY, dt.timezone(dt.timedelta(hours=5, minutes=30))]),
    allow_imaginary=False,  # wall times skipped by a DST jump name no instant
)
dates = st.dates(dt.date(1000, 1, 1), dt.date(2200, 1, 1))
ints = st.integers(-(2**62), 2**62)


# -- encode / decode ------------------------------------------------------------------


@given(naive_datetimes)
def test_naive_datetime_round_trip(value):
    """A naive datetime encodes to wall-time ns since the epoch and decodes to itself."""
    axis = axis_of(value, value, None, "both")
    pos = axis.encode(value)
    assert pos == ns_since_epoch(value)
    back = axis.decode(pos)
    assert back == value
    assert type(back) is dt.datetime
    assert back.tzinfo is None


@given(aware_datetimes)
def test_aware_datetime_round_trip(value):
    """An aware datetime encodes to UTC ns and decodes to the same instant in the caller's zone."""
    axis = axis_of(value, value, None, "both")
    pos = axis.encode(value)
    assert pos == ns_since_epoch(value)
    back = axis.decode(pos)
    assert back.timestamp() == value.timestamp()  # the same instant (fold included)
    assert back.utcoffset() == value.utcoffset()
    assert back.replace(tzinfo=None) == value.replace(tzinfo=None)


@given(naive_datetimes, st.integers(0, 999))
def test_timestamp_round_trip_keeps_nanoseconds(value, nanos):
    """A ``pd.Timestamp`` (nanoseconds included) comes back as an equal ``pd.Timestamp``."""
    ts = pd.Timestamp(value) + pd.Timedelta(nanos, "ns")
    axis = axis_of(ts, ts, None, "both")
    back = axis.decode(axis.encode(ts))
    assert isinstance(back, pd.Timestamp)
    assert back == ts


@given(dates)
def test_date_round_trip(value):
    """A date encodes to the ns of its midnight and decodes to the same date."""
    axis = axis_of(value, value, None, "both")
    pos = axis.encode(value)
    assert pos == (value - dt.date(1970, 1, 1)).days * NS_PER_DAY
    back = axis.decode(pos)
    assert back == value
    assert type(back) is dt.date


@given(ints)
def test_int_round_trip(value):
    """An int is its own position."""
    axis = axis_of(value, value, None, "both")
    assert axis.encode(value) == value
    assert axis.decode(value) == value


def test_numpy_bounds_are_accepted():
    """``np.datetime64`` and numpy integers are datetimes and ints."""
    a, b = np.datetime64("2024-01-01"), np.datetime64("2024-01-03")
    axis = axis_of(a, b, "1D", "both")
    assert axis.request(a, b)[0] == ns_since_epoch("2024-01-01")
    i, j = np.int64(3), np.int32(9)
    assert axis_of(i, j, 1, "both").request(i, j) == (3, 10, 10)


def test_aware_bounds_in_any_zone_name_one_instant():
    """The same instant in New York and in UTC encodes to the same position."""
    ny = pd.Timestamp("2024-01-02 09:30", tz="America/New_York")
    utc = ny.tz_convert("UTC")
    assert axis_of(ny, ny, None, "both").encode(ny) == axis_of(utc, utc, None, "both").encode(utc)
    naive_wall = pd.Timestamp("2024-01-02 09:30")
    assert axis_of(ny, ny, None, "both").encode(ny) != axis_of(
        naive_wall, naive_wall, None, "both"
    ).encode(naive_wall)


def test_naive_and_aware_axes_differ():
    """One key must not mix naive and aware bounds: their signatures differ."""
    naive = pd.Timestamp("2024-01-02")
    aware = naive.tz_localize("UTC")
    assert axis_of(naive, naive, None, "both").signature != (
        axis_of(aware, aware, None, "both").signature
    )


# -- inclusive -> half-open -----------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "step", "span"),
    [
        (pd.Timestamp("2024-10-01"), pd.Timestamp("2024-10-10"), "1D", pd.Timedelta(days=1)),
        (dt.datetime(2024, 1, 2, 9), dt.datetime(2024, 1, 2, 16), "1h", pd.Timedelta(hours=1)),
        (
            pd.Timestamp("2024-01-02 09:30", tz="UTC"),
            pd.Timestamp("2024-01-02 09:40", tz="UTC"),
            dt.timedelta(minutes=5),
            pd.Timedelta(minutes=5),
        ),
        (dt.date(2024, 10, 1), dt.date(2024, 10, 10), None, pd.Timedelta(days=1)),
        (dt.date(2024, 10, 3), dt.date(2024, 10, 10), "7D", pd.Timedelta(days=7)),
    ],
)
def test_inclusive_request_covers_through_one_step_past_the_end(start, end, step, span):
    """On-grid ``[a, b]`` covers ``[a, b + step)``; its rows lie in ``[a, b]``."""
    axis = axis_of(start, end, step, "both")
    lo, hi, rows_hi = axis.request(start, end)
    assert lo == ns_since_epoch(start)
    assert hi == ns_since_epoch(end) + span // pd.Timedelta(1, "ns")
    assert rows_hi == ns_since_epoch(end) + 1
    assert axis.bounds(lo, hi) == (start, end)


@given(st.integers(-(10**9), 10**9), st.integers(0, 1000), st.integers(1, 100))
def test_inclusive_int_request(first, count, step):
    """On-grid ``[a, b]`` of ints with step ``s`` covers ``[a, b + s)``; bounds() inverts it."""
    start, end = first * step, (first + count) * step
    axis = axis_of(start, end, step, "both")
    lo, hi, rows_hi = axis.request(start, end)
    assert (lo, hi, rows_hi) == (start, end + step, end + 1)
    assert axis.bounds(lo, hi) == (start, end)


@given(ints, st.integers(0, 10**6), st.integers(1, 100))
def test_half_open_int_request(start, length, step):
    """With ``closed="left"`` the request already is ``[a, b)``."""
    end = start + length
    axis = axis_of(start, end, step, "left")
    assert axis.request(start, end) == (start, end, end)
    assert axis.bounds(start, end) == (start, end)


@pytest.mark.parametrize(
    ("start", "end", "step", "span"),
    [
        (dt.date(2024, 10, 1), dt.date(2024, 10, 8), "7D", pd.Timedelta(days=7)),
        (3, 23, 10, 10),
        (
            pd.Timestamp("2024-01-02 09:15", tz="Asia/Kolkata"),
            pd.Timestamp("2024-01-02 10:15", tz="Asia/Kolkata"),
            "1h",
            pd.Timedelta(hours=1),
        ),
    ],
    ids=["weekly-on-tuesdays", "blocks-3-13-23", "hourly-at-15-past"],
)
def test_inclusive_request_on_a_grid_not_anchored_at_the_epoch(start, end, step, span):
    """The caller's own grid decides: ``[a, b]`` covers ``[a, b + step)`` and hands back ``b``."""
    axis = axis_of(start, end, step, "both")
    lo, hi, _ = axis.request(start, end)
    width = span if isinstance(span, int) else span // pd.Timedelta(1, "ns")
    assert hi == axis.encode(end) + width
    assert axis.bounds(lo, hi) == (start, end)


def test_adjacent_inclusive_requests_meet():
    """``[Oct 1, Oct 10]`` ends exactly where ``[Oct 11, Oct 20]`` starts."""
    a = axis_of(dt.date(2024, 10, 1), dt.date(2024, 10, 10), "1D", "both")
    b = axis_of(dt.date(2024, 10, 11), dt.date(2024, 10, 20), "1D", "both")
    assert (
        a.request(dt.date(2024, 10, 1), dt.date(2024, 10, 10))[1]
        == (b.request(dt.date(2024, 10, 11), dt.date(2024, 10, 20))[0])
    )


def test_gap_bounds_come_back_in_the_callers_convention():
    """A covered ``[lo, hi)`` decodes to inclusive bounds, never one step past the end."""
    axis = axis_of(dt.date(2024, 10, 1), dt.date(2024, 10, 20), "1D", "both")
    lo = axis.encode(dt.date(2024, 10, 11))
    hi = axis.encode(dt.date(2024, 10, 21))
    assert axis.bounds(lo, hi) == (dt.date(2024, 10, 11), dt.date(2024, 10, 20))
    left = axis_of(dt.date(2024, 10, 1), dt.date(2024, 10, 20), "1D", "left")
    assert left.bounds(lo, hi) == (dt.date(2024, 10, 11), dt.date(2024, 10, 21))


def test_aware_gap_bounds_come_back_in_the_callers_zone():
    """Gap bounds of a New York request are New York timestamps."""
    start = pd.Timestamp("2024-01-02", tz="America/New_York")
    end = pd.Timestamp("2024-01-09", tz="America/New_York")
    axis = axis_of(start, end, "1D", "both")
    a, b = axis.bounds(*axis.request(start, end)[:2])
    assert (a, b) == (start, end)
    assert str(a.tz) == str(b.tz) == "America/New_York"


@pytest.mark.parametrize("day", ["2024-03-09", "2024-03-10", "2024-11-02", "2024-11-03"])
def test_daily_step_on_an_aware_axis_is_a_calendar_day(day):
    """Across a DST change, ``[d, d]`` in New York covers up to the next local midnight."""
    start = pd.Timestamp(day, tz="America/New_York")
    following = start + pd.DateOffset(days=1)  # 23 or 25 hours later
    axis = axis_of(start, start, "1D", "both")
    lo, hi, _ = axis.request(start, start)
    assert (lo, hi) == (ns_since_epoch(start), ns_since_epoch(following))
    assert axis.bounds(lo, hi) == (start, start)


def test_continuous_axis_uses_the_resolution():
    """Without a step, ``[a, b]`` covers ``[a, b + 1ns)``."""
    a, b = pd.Timestamp("2024-01-01 10:00"), pd.Timestamp("2024-01-01 10:07:13.5")
    _lo, hi, rows_hi = axis_of(a, b, None, "both").request(a, b)
    assert hi == rows_hi == ns_since_epoch(b) + 1


# -- steps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("1D", pd.Timedelta(days=1)),
        ("D", pd.Timedelta(days=1)),
        ("1min", pd.Timedelta(minutes=1)),
        ("15min", pd.Timedelta(minutes=15)),
        ("1h", pd.Timedelta(hours=1)),
        ("500ms", pd.Timedelta(milliseconds=500)),
        (pd.Timedelta(seconds=30), pd.Timedelta(seconds=30)),
        (dt.timedelta(hours=4), pd.Timedelta(hours=4)),
    ],
)
def test_time_steps(step, expected):
    """Aliases and timedeltas become nanoseconds."""
    assert parse_step(step, "datetime") == expected // pd.Timedelta(1, "ns")


def test_no_step_means_the_axis_resolution():
    """``None``: 1 ns for datetimes, 1 for ints, one day for dates."""
    assert parse_step(None, "datetime") == 1
    assert parse_step(None, "int") == 1
    assert parse_step(None, "date") == NS_PER_DAY


@pytest.mark.parametrize(
    ("step", "kind"),
    [
        (5, "datetime"),  # an int step for time bounds
        ("1D", "int"),  # an alias for int bounds
        (pd.Timedelta(days=1), "int"),
        (0, "int"),
        (-3, "int"),
        (True, "int"),
        (2.5, "int"),
        ("1M", "datetime"),  # month end: not a fixed span
        ("1Y", "datetime"),
        ("banana", "datetime"),
        (pd.Timedelta(0), "datetime"),
        (pd.Timedelta(minutes=-5), "datetime"),
        ("12h", "date"),  # a date cannot be finer than a day
        (pd.Timedelta(hours=36), "date"),
        (object(), "datetime"),
    ],
)
def test_bad_steps_raise_invalid_option(step, kind):
    """A step that is not a positive fixed span of the right kind is refused."""
    with pytest.raises(InvalidOption) as info:
        parse_step(step, kind)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, RangememoError)


@pytest.mark.parametrize(
    ("step", "kind"), [("1M", "datetime"), ("banana", "datetime"), (0, "int"), ("1D", "int")]
)
def test_bad_step_message_names_the_step(step, kind):
    """The message quotes what the caller passed."""
    with pytest.raises(InvalidOption) as info:
        parse_step(step, kind)
    assert names(step, str(info.value))


def test_numpy_timedelta_step_is_a_timedelta():
    """``np.timedelta64`` is a span like ``pd.Timedelta``; an int axis refuses it cleanly."""
    assert parse_step(np.timedelta64(2, "m"), "datetime") == 120 * 10**9
    with pytest.raises(InvalidOption):
        parse_step(np.timedelta64(2, "m"), "int")


def test_bad_step_is_refused_when_building_an_axis():
    """``axis_of`` checks the step too (including unhashable ones)."""
    with pytest.raises(InvalidOption):
        axis_of(1, 5, "1D", "both")
    with pytest.raises(InvalidOption):
        axis_of(1, 5, [1], "both")


# -- bound errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (1, pd.Timestamp("2024-01-01")),
        (pd.Timestamp("2024-01-01"), 5),
        (dt.date(2024, 1, 1), dt.datetime(2024, 1, 5)),
        (dt.datetime(2024, 1, 1), dt.date(2024, 1, 5)),
        ("2024-01-01", "2024-01-05"),
        (1.0, 5.0),
        (True, False),
        (None, 5),
        (3, "9"),
    ],
)
def test_bounds_of_different_or_unsupported_types_name_both(start, end):
    """TypeError naming both values."""
    with pytest.raises(TypeError) as info:
        axis_of(start, end, None, "both")
    assert names(start, str(info.value))
    assert names(end, str(info.value))
    assert isinstance(info.value, RangememoError)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-05", tz="UTC")),
        (dt.datetime(2024, 1, 1, tzinfo=NY), dt.datetime(2024, 1, 5)),
    ],
)
def test_naive_mixed_with_aware_names_both(start, end):
    """TypeError naming both values."""
    with pytest.raises(TypeError) as info:
        axis_of(start, end, None, "both")
    assert names(start, str(info.value))
    assert names(end, str(info.value))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (10, 9),
        (pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-01")),
        (dt.date(2024, 1, 5), dt.date(2024, 1, 4)),
        (
            pd.Timestamp("2024-01-05 09:00", tz="America/New_York"),
            pd.Timestamp("2024-01-05 13:00", tz="UTC"),  # 08:00 in New York
        ),
    ],
)
def test_start_after_end_names_both(start, end):
    """``InvalidRange`` (a ``ValueError``) naming both values."""
    with pytest.raises(InvalidRange) as info:
        axis_of(start, end, None, "both")
    assert names(start, str(info.value))
    assert names(end, str(info.value))
    assert isinstance(info.value, ValueError)


def test_start_equal_to_end_is_a_range():
    """``[a, a]`` is one position, not an error."""
    a = pd.Timestamp("2024-01-02")
    lo, hi, _ = axis_of(a, a, "1D", "both").request(a, a)
    assert hi - lo == NS_PER_DAY


def test_nat_bounds_are_refused():
    """NaT is not a bound."""
    with pytest.raises(ValueError):
        axis_of(pd.NaT, pd.Timestamp("2024-01-02"), None, "both")
    with pytest.raises(ValueError):
        axis_of(pd.Timestamp("2024-01-02"), pd.NaT, None, "both")
