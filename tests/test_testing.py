"""Tests for the fake provider in rangememo.testing."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from rangememo.testing import Call, FakeProvider, make_bars, make_blocks

BAR_COLUMNS = ["open", "high", "low", "close", "volume"]
BAR_DTYPES = ["float64"] * 4 + ["int64"]


def _check_schema(df: pd.DataFrame, index_dtype: str = "datetime64[ns]") -> None:
    assert list(df.columns) == BAR_COLUMNS
    assert [str(t) for t in df.dtypes] == BAR_DTYPES
    assert df.index.name == "time"
    assert str(df.index.dtype) == index_dtype
    assert isinstance(df.index, pd.DatetimeIndex)
    assert df.index.freq is None


@pytest.mark.parametrize("timeframe", ["D", "1D", "1h", "H", "1min", "min", "T", "5min"])
def test_bars_deterministic_across_overlapping_ranges(timeframe: str) -> None:
    """A sub-range of a large fetch equals a direct small fetch, row for row."""
    big = make_bars("AAPL", "2024-01-01", "2024-01-20", timeframe)
    lo, hi = pd.Timestamp("2024-01-05 03:00"), pd.Timestamp("2024-01-09 17:30")
    small = make_bars("AAPL", lo, hi, timeframe)
    assert len(small) > 0
    pdt.assert_frame_equal(big.loc[lo:hi], small)
    halves = pd.concat([make_bars("AAPL", "2024-01-01", lo, timeframe), small])
    pdt.assert_frame_equal(big.loc[:hi], halves.loc[~halves.index.duplicated()])


def test_bars_depend_on_symbol_and_ohlc_consistent() -> None:
    """Different symbols differ; high/low bound open/close; volume positive."""
    a = make_bars("AAPL", "2024-01-01", "2024-03-01", "1h")
    b = make_bars("MSFT", "2024-01-01", "2024-03-01", "1h")
    assert not np.allclose(a["close"].to_numpy(), b["close"].to_numpy())
    for df in (a, b):
        assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
        assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
        assert (df["low"] > 0).all()
        assert (df["volume"] > 0).all()


def test_weekends_are_empty() -> None:
    """Saturday and Sunday produce no rows, for daily and intraday timeframes."""
    assert make_bars("AAPL", "2024-01-06", "2024-01-07 23:59").empty
    assert make_bars("AAPL", "2024-01-06", "2024-01-07 23:59", "1min").empty
    week = make_bars("AAPL", "2024-01-01", "2024-01-14")
    assert set(pd.DatetimeIndex(week.index).day_of_week) == {0, 1, 2, 3, 4}
    assert len(week) == 10
    assert len(make_bars("AAPL", "2024-01-06", "2024-01-07", skip_weekends=False)) == 2


def test_bounds_are_inclusive_and_on_grid() -> None:
    """Both bounds are inclusive and rows lie on the epoch-anchored grid."""
    df = make_bars("AAPL", "2024-01-02 10:00", "2024-01-02 11:00", "5min")
    assert df.index[0] == pd.Timestamp("2024-01-02 10:00")
    assert df.index[-1] == pd.Timestamp("2024-01-02 11:00")
    assert len(df) == 13
    off_grid = make_bars("AAPL", "2024-01-02 09:58", "2024-01-02 10:07", "5min")
    assert list(off_grid.index) == [
        pd.Timestamp("2024-01-02 10:00"),
        pd.Timestamp("2024-01-02 10:05"),
    ]
    single = make_bars("AAPL", "2024-01-02", "2024-01-02")
    assert list(single.index) == [pd.Timestamp("2024-01-02")]
    assert make_bars("AAPL", "2024-01-02 00:01", "2024-01-02 23:59").empty


def test_naive_dtypes() -> None:
    """Naive bounds give a naive datetime64[ns] index and the exact column schema."""
    _check_schema(make_bars("AAPL", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 31)))


def test_utc_bounds() -> None:
    """UTC bounds give a datetime64[ns, UTC] index at UTC midnight."""
    start, end = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-31", tz="UTC")
    df = make_bars("AAPL", start, end)
    _check_schema(df, "datetime64[ns, UTC]")
    assert df.index[0] == start
    naive = make_bars("AAPL", "2024-01-01", "2024-01-31")
    pdt.assert_frame_equal(df.tz_localize(None), naive)


def test_new_york_bounds() -> None:
    """America/New_York bounds give a NY index on the wall-clock grid, across DST."""
    tz = "America/New_York"
    df = make_bars("AAPL", pd.Timestamp("2024-03-08", tz=tz), pd.Timestamp("2024-03-12", tz=tz))
    _check_schema(df, f"datetime64[ns, {tz}]")
    assert all(ts.hour == 0 for ts in df.index)
    hourly = make_bars("AAPL", "2024-03-11", "2024-03-12", "1h", tz=tz)
    _check_schema(hourly, f"datetime64[ns, {tz}]")
    assert len(hourly) == 25
    dst = make_bars("X", "2024-03-10", "2024-03-10 04:00", "1h", tz=tz, skip_weekends=False)
    assert [ts.hour for ts in dst.index] == [0, 1, 3, 4]
    assert dst.index.is_unique
    assert dst.index.is_monotonic_increasing
    utc_end = pd.Timestamp("2024-03-12 04:00", tz="UTC")  # == 2024-03-12 00:00 in NY
    mixed = make_bars("AAPL", pd.Timestamp("2024-03-08", tz=tz), utc_end)
    pdt.assert_frame_equal(mixed, df)


def test_mixed_naive_and_aware_bounds_rejected() -> None:
    """Mixing naive and aware bounds raises TypeError."""
    with pytest.raises(TypeError):
        make_bars("AAPL", "2024-01-01", pd.Timestamp("2024-01-05", tz="UTC"))


def test_date_bounds() -> None:
    """datetime.date bounds mean naive midnight."""
    by_date = make_bars("AAPL", dt.date(2024, 1, 1), dt.date(2024, 1, 5))
    by_ts = make_bars("AAPL", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-05"))
    _check_schema(by_date)
    pdt.assert_frame_equal(by_date, by_ts)
    assert len(by_date) == 5


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_start_after_end_is_empty_with_schema(tz: str | None) -> None:
    """start > end returns an empty frame with the full schema."""
    df = make_bars("AAPL", "2024-01-10", "2024-01-01", "1h", tz=tz)
    assert df.empty
    _check_schema(df, "datetime64[ns]" if tz is None else f"datetime64[ns, {tz}]")


def test_million_minute_bars_fast() -> None:
    """About a million minute bars are generated quickly."""
    make_bars("AAPL", "2024-01-01", "2024-01-02", "1min")  # warm up
    t0 = time.perf_counter()
    df = make_bars("AAPL", "2020-01-01", "2022-09-01", "1min")
    elapsed = time.perf_counter() - t0
    assert len(df) > 1_000_000
    assert elapsed < 2.0  # generous for loaded CI; typically ~0.1s


def test_blocks() -> None:
    """Blocks are inclusive, int64-indexed and deterministic per (chain, block)."""
    big = make_blocks("eth", 100, 200)
    assert list(big.columns) == ["hash", "tx_count"]
    assert big.index.name == "block"
    assert str(big.index.dtype) == "int64"
    assert [str(t) for t in big.dtypes] == ["int64", "int64"]
    assert list(big.index[[0, -1]]) == [100, 200]
    assert len(big) == 101
    pdt.assert_frame_equal(big.loc[150:160], make_blocks("eth", 150, 160))
    assert not (make_blocks("btc", 100, 200)["hash"] == big["hash"]).all()
    empty = make_blocks("eth", 5, 4)
    assert empty.empty
    assert list(empty.columns) == ["hash", "tx_count"]
    assert str(empty.index.dtype) == "int64"
    assert empty.index.name == "block"


async def test_call_recording_and_ranges() -> None:
    """Calls are recorded with name, args, key and normalised bounds; ranges() filters."""
    fake = FakeProvider()
    t0 = time.monotonic()
    df = await fake.get_bars("AAPL", "2024-01-01", "2024-01-10")
    await fake.get_bars("MSFT", "2024-01-02", "2024-01-03", "1h")
    await fake.get_bars("AAPL", dt.date(2024, 2, 1), dt.date(2024, 2, 2))
    await fake.get_blocks("eth", 1, 10)
    assert fake.call_count == 4
    first = fake.calls[0]
    assert isinstance(first, Call)
    assert first.name == "get_bars"
    assert first.args == ("AAPL", "2024-01-01", "2024-01-10", "D")
    assert first.key == ("AAPL", "D")
    assert first.at >= t0
    pdt.assert_frame_equal(df, make_bars("AAPL", "2024-01-01", "2024-01-10"))
    assert fake.ranges("AAPL", "D") == [
        (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-10")),
        (pd.Timestamp("2024-02-01"), pd.Timestamp("2024-02-02")),
    ]
    assert fake.ranges("MSFT", "1h") == [(pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03"))]
    assert fake.ranges("MSFT", "D") == []
    assert fake.ranges("eth") == [(1, 10)]
    assert len(fake.ranges()) == 4
    assert fake.rows_returned == 8 + 25 + 2 + 10
    fake.reset()
    assert fake.call_count == 0
    assert fake.rows_returned == 0
    assert fake.ranges() == []


async def test_days_fetched() -> None:
    """days_fetched sums each bar call's inclusive calendar-day span, without dedup."""
    fake = FakeProvider()
    await fake.get_bars("AAPL", "2024-01-01", "2024-01-10")
    await fake.get_bars("AAPL", "2024-01-05 10:00", "2024-01-06 02:00", "1h")
    fake.get_bars_sync("MSFT", "2024-01-01", "2024-01-10")
    await fake.get_blocks("eth", 1, 1000)
    assert fake.days_fetched() == 10 + 2 + 10


async def test_latency_applied() -> None:
    """Async calls sleep for the configured latency."""
    fake = FakeProvider(latency=0.01)
    t0 = time.monotonic()
    await fake.get_bars("AAPL", "2024-01-01", "2024-01-02")
    assert time.monotonic() - t0 >= 0.01
    t0 = time.monotonic()
    await fake.get_blocks("eth", 1, 2)
    assert time.monotonic() - t0 >= 0.01


async def test_fail_next_raises_then_recovers() -> None:
    """fail_next makes the next N calls raise (class or instance), then calls succeed."""
    fake = FakeProvider()
    fake.fail_next(TimeoutError, times=2)
    for _ in range(2):
        with pytest.raises(TimeoutError):
            await fake.get_bars("AAPL", "2024-01-01", "2024-01-02")
    assert len(await fake.get_bars("AAPL", "2024-01-01", "2024-01-02")) == 2
    fake.fail_next(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        fake.get_blocks_sync("eth", 1, 2)
    assert len(fake.get_blocks_sync("eth", 1, 2)) == 2
    assert fake.call_count == 5
    assert fake.in_flight == 0
    assert fake.rows_returned == 4


async def test_callable_fail() -> None:
    """The fail= callable sees each Call and may return an exception to raise."""

    def fail(call: Call) -> BaseException | None:
        return ConnectionError(call.key[0]) if call.key[0] == "BAD" else None

    fake = FakeProvider(fail=fail)
    with pytest.raises(ConnectionError, match="BAD"):
        await fake.get_bars("BAD", "2024-01-01", "2024-01-02")
    assert len(await fake.get_bars("GOOD", "2024-01-01", "2024-01-02")) == 2
    always = FakeProvider(fail=RuntimeError)
    with pytest.raises(RuntimeError):
        always.get_bars_sync("AAPL", "2024-01-01", "2024-01-02")
    assert always.call_count == 1


async def test_max_in_flight_with_gather() -> None:
    """Concurrent gathered calls are counted in max_in_flight; in_flight returns to 0."""
    fake = FakeProvider(latency=0.02)
    results = await asyncio.gather(
        *(fake.get_bars(s, "2024-01-01", "2024-01-05") for s in ["A", "B", "C", "D"])
    )
    assert all(len(r) == 5 for r in results)
    assert fake.max_in_flight == 4
    assert fake.in_flight == 0
    await fake.get_bars("A", "2024-01-01", "2024-01-05")
    assert fake.max_in_flight == 4


def test_sync_variants() -> None:
    """Sync variants record their own names, apply latency and return the same data."""
    fake = FakeProvider(latency=0.01)
    t0 = time.monotonic()
    df = fake.get_bars_sync("AAPL", "2024-01-01", "2024-01-31", "1h")
    assert time.monotonic() - t0 >= 0.01
    pdt.assert_frame_equal(df, make_bars("AAPL", "2024-01-01", "2024-01-31", "1h"))
    blocks = fake.get_blocks_sync("eth", 5, 9)
    pdt.assert_frame_equal(blocks, make_blocks("eth", 5, 9))
    assert [c.name for c in fake.calls] == ["get_bars_sync", "get_blocks_sync"]
    assert fake.ranges("AAPL", "1h") == [(pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-31"))]
    assert fake.ranges("eth") == [(5, 9)]


def test_empty_weekends_false() -> None:
    """empty_weekends=False makes the fake return weekend bars too."""
    fake = FakeProvider(empty_weekends=False)
    assert len(fake.get_bars_sync("AAPL", "2024-01-06", "2024-01-07")) == 2


def test_thread_safe_recording() -> None:
    """Calls from several threads are all recorded and counted."""
    fake = FakeProvider(latency=0.005)
    n_threads, per_thread = 8, 25
    barrier = threading.Barrier(n_threads)

    def worker(i: int) -> None:
        barrier.wait()
        for j in range(per_thread):
            fake.get_bars_sync(f"S{i}", "2024-01-01", "2024-01-02")
            fake.get_blocks_sync(f"c{i}", j, j)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.call_count == n_threads * per_thread * 2
    assert fake.rows_returned == n_threads * per_thread * 3
    assert fake.in_flight == 0
    assert 2 <= fake.max_in_flight <= n_threads
    assert all(len(fake.ranges(f"S{i}", "D")) == per_thread for i in range(n_threads))
