"""readahead="auto" through the decorator: what it fetches, what it never fetches."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pandas.testing as pdt
import pytest

from rangememo import InvalidOption, MemoryStore, ParquetStore, range_cached
from rangememo.testing import FakeProvider
from rangememo.testing.providers import make_bars

DAY = dt.timedelta(days=1)
D0 = dt.datetime(2024, 1, 1)


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryStore()
    return ParquetStore(tmp_path / "store")


def _daily(provider: FakeProvider, store: Any, **options: Any) -> Any:
    options.setdefault("namespace", "readahead-tests")

    @range_cached(key=("symbol", "timeframe"), step="1D", store=store, **options)
    def get_bars(symbol: str, start: dt.datetime, end: dt.datetime, timeframe: str = "D") -> Any:
        return provider.get_bars_sync(symbol, start, end, timeframe)

    return get_bars


def _expected(start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    return make_bars("X", start, end, "D")


def test_a_forward_march_takes_few_calls_and_answers_exactly(store: Any) -> None:
    provider = FakeProvider()
    fn = _daily(provider, store)
    for i in range(120):
        day = D0 + i * DAY
        pdt.assert_frame_equal(fn("X", day, day), _expected(day, day), check_freq=False)
        lo = day - 10 * DAY
        pdt.assert_frame_equal(fn("X", lo, day), _expected(lo, day), check_freq=False)
    assert provider.call_count <= 8  # 240 requests; without readahead one call a day
    _no_range_asked_twice(provider)


def test_readahead_none_asks_one_day_at_a_time(store: Any) -> None:
    provider = FakeProvider()
    fn = _daily(provider, store, readahead=None)
    for i in range(20):
        fn("X", D0 + i * DAY, D0 + i * DAY)
    assert provider.call_count == 20
    assert fn.cache_info().rows_ahead == 0


def test_a_backward_march_reads_behind(store: Any) -> None:
    provider = FakeProvider()
    fn = _daily(provider, store)
    last = D0 + 200 * DAY
    for i in range(120):
        day = last - i * DAY
        pdt.assert_frame_equal(fn("X", day, day), _expected(day, day), check_freq=False)
    assert provider.call_count <= 8
    _no_range_asked_twice(provider)


def test_never_past_the_live_edge_with_settle_and_a_fake_clock(store: Any) -> None:
    provider = FakeProvider(empty_weekends=False)
    now = dt.datetime(2024, 3, 1, 12, 0)
    fn = _daily(provider, store, settle="3D", clock=lambda: now)
    edge = dt.datetime(2024, 2, 27)  # the last whole bar ends by now - 3 days
    for i in range(40):
        day = dt.datetime(2024, 1, 20) + i * DAY
        if day >= edge:
            break
        fn("X", day, day)
    assert provider.call_count >= 3  # the march was read ahead ...
    for _, end in provider.ranges():
        assert end < edge  # ... and never into bars later than now - settle
    # ... up to the last whole bar, by a call made for an earlier day.
    last = max(provider.calls, key=lambda c: c.end)
    assert last.end == pd.Timestamp("2024-02-26")
    assert last.start < pd.Timestamp("2024-02-26")


def test_never_past_the_calendar_last_session(store: Any) -> None:
    sessions = pd.bdate_range("2023-11-01", "2024-02-29")

    class Calendar:
        def __init__(self) -> None:
            self.sessions = sessions

        def sessions_in_range(self, start: Any, end: Any) -> pd.DatetimeIndex:
            return sessions[(sessions >= start) & (sessions <= end)]

    provider = FakeProvider()
    fn = _daily(provider, store, calendar=Calendar())
    for i in range(50):
        day = dt.datetime(2024, 1, 1) + i * DAY
        fn("X", day, day)
    assert provider.call_count >= 2
    for _, end in provider.ranges():
        assert end <= pd.Timestamp("2024-02-29 23:59:59.999999999")
    # The march was read ahead up to the last session, by a call for an earlier day.
    last = max(provider.calls, key=lambda c: c.end)
    assert last.end.normalize() == pd.Timestamp("2024-02-29")
    assert last.start < pd.Timestamp("2024-02-19")


def test_never_inside_a_covered_range(store: Any) -> None:
    provider = FakeProvider(empty_weekends=False)
    fn = _daily(provider, store)
    covered = (D0 + 30 * DAY, D0 + 40 * DAY)
    fn("X", *covered)
    provider.reset()
    for i in range(60):
        fn("X", D0 + i * DAY, D0 + i * DAY)
    for start, end in provider.ranges():
        assert end < covered[0] or start > covered[1], (start, end)
    _no_range_asked_twice(provider)


def test_never_more_than_max_span_per_call(store: Any) -> None:
    provider = FakeProvider(empty_weekends=False)
    fn = _daily(provider, store, max_span="7D")
    for i in range(90):
        fn("X", D0 + i * DAY, D0 + i * DAY)
    assert provider.call_count < 90
    for start, end in provider.ranges():
        assert end - start < pd.Timedelta("7D")


def test_max_readahead_caps_the_window(store: Any) -> None:
    provider = FakeProvider(empty_weekends=False)
    fn = _daily(provider, store, max_readahead=5)
    for i in range(60):
        fn("X", D0 + i * DAY, D0 + i * DAY)
    for start, end in provider.ranges():
        assert end - start < pd.Timedelta("6D")  # the day asked plus at most 5 ahead
    assert provider.call_count <= 60 // 6 + 3


def test_random_requests_get_no_readahead(store: Any) -> None:
    rng = random.Random(7)
    windows = []
    for _ in range(60):
        lo = D0 + rng.randrange(0, 3650) * DAY
        windows.append((lo, lo + rng.randrange(0, 40) * DAY))
    rows = {}
    for readahead in ("auto", None):
        provider = FakeProvider()
        fn = _daily(provider, MemoryStore(), readahead=readahead)
        for lo, hi in windows:
            pdt.assert_frame_equal(fn("X", lo, hi), _expected(lo, hi), check_freq=False)
        rows[readahead] = provider.rows_returned
    assert rows["auto"] <= rows[None] * 1.05


def test_counters_rows_ahead_and_used(store: Any) -> None:
    provider = FakeProvider(empty_weekends=False)  # one row a day
    fn = _daily(provider, store)
    n = 40
    for i in range(n):
        fn("X", D0 + i * DAY, D0 + i * DAY)
    info = fn.cache_info()
    last = pd.Timestamp(D0 + (n - 1) * DAY)
    beyond = sum(max(0, (end - max(start, last)).days) for start, end in provider.ranges())
    assert info.rows_fetched == provider.rows_returned
    # Rows fetched ahead: all rows but the one day each miss asked for.
    assert info.misses + info.hits == n
    assert info.rows_ahead == info.rows_fetched - info.misses
    # Used: each hit asked for one row fetched ahead; the rest lie past the last
    # day asked.
    assert info.rows_ahead_used == info.hits
    assert info.rows_ahead - info.rows_ahead_used == beyond
    assert info.rows_ahead > 0 and info.rows_ahead_used > 0


def test_counters_count_a_use_once() -> None:
    provider = FakeProvider(empty_weekends=False)
    fn = _daily(provider, MemoryStore())
    for i in range(10):
        fn("X", D0 + i * DAY, D0 + i * DAY)
    used = fn.cache_info().rows_ahead_used
    for _ in range(3):
        fn("X", D0, D0 + 9 * DAY)  # the same rows again: not used again
    assert fn.cache_info().rows_ahead_used == used


def test_int_axis_block_numbers() -> None:
    provider = FakeProvider()

    @range_cached(key="chain", step=1, store=MemoryStore())
    def blocks(chain: str, start: int, end: int) -> pd.DataFrame:
        return provider.get_blocks_sync(chain, start, end)

    for b in range(5000):
        blocks("eth", b, b)
    # Doubling from the first window up to the default cap of 1024 blocks takes
    # about ten calls; then one call per 1024 blocks.
    assert provider.call_count <= 3 + 10 + 5000 // 1024 + 1
    for start, end in provider.ranges():
        assert end - start <= 1024


def test_concurrent_marches_fetch_each_range_once() -> None:
    provider = FakeProvider(latency=0.001, empty_weekends=False)
    fn = _daily(provider, MemoryStore())
    errors: list[BaseException] = []

    def walk() -> None:
        try:
            for i in range(60):
                day = D0 + i * DAY
                pdt.assert_frame_equal(
                    fn("X", day, day), make_bars("X", day, day, "D", skip_weekends=False)
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=walk) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _no_range_asked_twice(provider)


@pytest.mark.parametrize(
    "options",
    [
        {"readahead": None, "max_readahead": "5D"},
        {"readahead": "30D", "max_readahead": "5D"},
        {"max_readahead": 0},
        {"max_readahead": "0D"},
        {"readahead": "sometimes"},
    ],
)
def test_bad_readahead_options_fail_at_decoration(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidOption):
        range_cached(key="symbol", step="1D", store=MemoryStore(), **options)


def _no_range_asked_twice(provider: FakeProvider) -> None:
    spans = sorted(provider.ranges())
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end < start, f"asked twice: {end} >= {start}"
