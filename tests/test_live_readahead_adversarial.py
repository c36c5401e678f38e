"""Adversarial tests: the live edge together with readahead, lookback, calendars and stores.

Every expected value comes from the provider itself: a deterministic fake whose bars
depend on their position and, while still forming, on the injected clock. A cached
answer must equal what the uncached provider returns at that moment; a bar fetched
while final must never be asked again; readahead must never reach past the live edge.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import MemoryStore, ParquetStore, range_cached

D = dt.datetime
DAY = pd.Timedelta("1D")


class Clock:
    """An injectable clock; ``tick`` moves it during a provider call (latency)."""

    def __init__(self, now: Any) -> None:
        self.now = pd.Timestamp(now).to_pydatetime()

    def __call__(self) -> D:
        return self.now

    def move(self, by: Any) -> None:
        self.now = (pd.Timestamp(self.now) + pd.Timedelta(by)).to_pydatetime()


class Weekdays:
    """A calendar object: every weekday is a session."""

    def sessions_in_range(self, start: Any, end: Any) -> pd.DatetimeIndex:
        days = pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize())
        return days[days.day_of_week < 5]


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts if ts.tzinfo is not None else ts.tz_localize("UTC")  # naive = UTC


def _bar_end(t: pd.Timestamp, step: pd.Timedelta) -> pd.Timestamp:
    if step >= DAY and t.tzinfo is not None:  # a local day: 23 or 25 hours across DST
        return (t.tz_localize(None) + step).tz_localize(t.tzinfo)
    return t + step


class Live:
    """Bars up to now. A bar ending after ``now - settle`` is forming: its value moves
    with the clock. ``latency`` moves the clock while a call runs."""

    def __init__(
        self, clock: Clock, step: str, settle: Any = 0, weekends: bool = True, latency: Any = 0
    ) -> None:
        self.clock, self.step = clock, pd.Timedelta(step)
        self.settle, self.weekends = pd.Timedelta(settle or 0), weekends
        self.latency = pd.Timedelta(latency)
        self.asked: list[tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]] = []

    def now(self) -> pd.Timestamp:
        return _utc(pd.Timestamp(self.clock()))

    def forming(self, t: pd.Timestamp, now: pd.Timestamp | None = None) -> bool:
        now = self.now() if now is None else now
        return _utc(_bar_end(t, self.step)) > now - self.settle

    def rows(self, start: Any, end: Any) -> pd.DataFrame:
        s, e = pd.Timestamp(start), pd.Timestamp(end)
        if self.step >= DAY:  # daily bars at (local) midnight
            tz = s.tzinfo
            first = s.tz_localize(None).ceil("1D") if tz is not None else s.ceil("1D")
            last = e.tz_localize(None) if tz is not None else e
            index = pd.date_range(first, last, freq=self.step)
            index = index.tz_localize(tz) if tz is not None else index
        else:
            index = pd.date_range(s.ceil(self.step), e, freq=self.step)
        if not self.weekends:
            index = index[index.day_of_week < 5]
        now = self.now()
        keep = [t for t in index if _utc(t) <= now]
        values = []
        for t in keep:
            value = float((t.value // 10**9) % 100_003)
            if self.forming(t, now):
                value += now.value / 1e15  # a forming bar changes whenever the clock does
            values.append(value)
        index = pd.DatetimeIndex(keep, name="ts") if keep else index[:0].rename("ts")
        return pd.DataFrame({"v": np.array(values, dtype="float64")}, index=index)

    def __call__(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        self.asked.append((pd.Timestamp(start), pd.Timestamp(end), self.now()))
        out = self.rows(start, end)
        if self.latency:
            self.clock.move(self.latency)
        return out


def check(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    if expected.empty:  # an empty answer takes the stored schema (documented)
        assert got.empty, got
    else:
        assert_frame_equal(got, expected, check_freq=False, check_exact=True)


def _floor(ts: pd.Timestamp, step: pd.Timedelta) -> pd.Timestamp:
    if step >= DAY:
        if ts.tzinfo is not None:
            return ts.tz_localize(None).normalize().tz_localize(ts.tzinfo)
        return ts.normalize()
    return ts.floor(step)


def _shift(ts: pd.Timestamp, step: pd.Timedelta, k: int) -> pd.Timestamp:
    if step >= DAY and ts.tzinfo is not None:
        return (ts.tz_localize(None) + step * k).tz_localize(ts.tzinfo)
    return ts + step * k


CONFIGS = [
    pytest.param(dict(step="1min", tz=None), id="1min-naive"),
    pytest.param(dict(step="1min", tz="America/New_York", settle="2min"), id="1min-ny-settle"),
    pytest.param(dict(step="1h", tz="Europe/London", lookback=5), id="1h-london-lookback"),
    pytest.param(dict(step="1h", tz=None, readahead=6, settle="1h"), id="1h-naive-fixed"),
    pytest.param(dict(step="1h", tz="UTC", max_span=4), id="1h-utc-max_span"),
    pytest.param(dict(step="1h", tz="America/New_York", coalesce=3), id="1h-ny-coalesce"),
    pytest.param(dict(step="1D", tz="America/New_York", calendar=True), id="1D-ny-calendar"),
    pytest.param(dict(step="1D", tz="Europe/London", settle="1D"), id="1D-london-settle"),
    pytest.param(dict(step="1D", tz=None, calendar=True, parquet=True), id="1D-naive-parquet"),
    pytest.param(dict(step="1h", tz="America/New_York", parquet=True), id="1h-ny-parquet"),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_walk_along_the_live_edge(config: dict[str, Any], seed: int, tmp_path: Any) -> None:
    """A clock moving forward in irregular jumps across both DST changes of March 2024,
    requests ending on, before and after the live edge, partial invalidations, and (for
    ParquetStore) a new store object after every clock step."""
    config = dict(config)
    step_name, tz = config.pop("step"), config.pop("tz")
    settle, parquet = config.pop("settle", None), config.pop("parquet", False)
    calendar = config.pop("calendar", False)
    step = pd.Timedelta(step_name)
    rng = random.Random(seed)
    clock = Clock(pd.Timestamp("2024-03-08 10:17", tz="UTC"))
    live = Live(clock, step_name, settle, weekends=not calendar)
    options: dict[str, Any] = dict(step=step_name, clock=clock, namespace="adv", **config)
    if settle is not None:
        options["settle"] = settle
    if calendar:
        options["calendar"] = Weekdays()
    memory = MemoryStore()

    def decorate() -> Any:
        store = ParquetStore(tmp_path) if parquet else memory
        return range_cached(key="symbol", store=store, **options)(live)

    get = decorate()
    final: dict[pd.Timestamp, pd.Timestamp] = {}  # bars fetched while final, and when
    jumps = [pd.Timedelta(s) for s in ("1s", "17min", "1h", "26h", "2D 7min")] + [step, step * 3]
    for _ in range(45):
        op = rng.random()
        now = pd.Timestamp(clock.now)
        if op < 0.33:
            clock.move(rng.choice(jumps))
            if parquet:
                get = decorate()  # provisional marks must survive on disk
            continue
        local = now.tz_convert(tz) if tz else now.tz_localize(None)
        if op < 0.4:
            a = _floor(_shift(local, step, -rng.randint(2, 30)), step)
            b = _shift(a, step, rng.randint(0, 10))
            get.invalidate("X", start=a.to_pydatetime(), end=b.to_pydatetime())
            final = {p: w for p, w in final.items() if not a <= p <= b}
            continue
        end = _shift(_floor(local, step), step, rng.choice([-3, -1, -1, 0, 0, 0, 1, 2]))
        start = _shift(end, step, -rng.randint(0, 12))
        before = len(live.asked)
        got = get("X", start.to_pydatetime(), end.to_pydatetime())
        check(got, live.rows(start, end))
        cut = now - pd.Timedelta(settle or 0)
        for a, b, _ in live.asked[before:]:
            if _utc(b) > _utc(end):  # read ahead: only complete bars before the edge
                assert _utc(_bar_end(b, step)) <= cut, (a, b, now)
            for p in live.rows(a, b).index:
                if "coalesce" not in config:  # coalesce refetches covered rows (documented)
                    assert p not in final, f"final bar {p} (fetched {final[p]}) asked again"
                if not live.forming(p, now):
                    final[p] = now


@pytest.mark.parametrize("offset", [-2, -1, 0, 1, 3])
@pytest.mark.parametrize("tz", [None, "America/New_York"])
def test_requests_ending_around_the_edge_after_a_march(offset: int, tz: Any) -> None:
    """A forward march earns readahead; requests then end before, on and after the edge.
    No call ever reads ahead into a forming bar, and each answer is the provider's."""
    clock = Clock(pd.Timestamp("2024-03-10 06:42", tz="UTC"))  # New York springs forward
    live = Live(clock, "1min")
    get = range_cached(key="symbol", step="1min", store=MemoryStore(), clock=clock)(live)
    start = pd.Timestamp("2024-03-10 05:00", tz="UTC")
    start = start.tz_convert(tz) if tz else start.tz_localize(None)
    for k in range(8):  # a backtest marching forward 10 minutes at a time, in the past
        a, b = start + pd.Timedelta(minutes=10 * k), start + pd.Timedelta(minutes=10 * k + 9)
        check(get("X", a.to_pydatetime(), b.to_pydatetime()), live.rows(a, b))
    for minutes in (0, 1, 7, 61):
        clock.move(f"{minutes}min 13s")
        now = live.now()
        edge = now.floor("1min")
        end = edge + pd.Timedelta(minutes=offset)
        end = end.tz_convert(tz) if tz else end.tz_localize(None)
        a = end - pd.Timedelta("20min")
        before = len(live.asked)
        check(get("X", a.to_pydatetime(), end.to_pydatetime()), live.rows(a, end))
        for _, b, _ in live.asked[before:]:
            assert _utc(b) <= max(_utc(end), edge - pd.Timedelta("1min")), (b, now)


def test_a_forming_bar_that_changes_on_every_call_answers_the_newest() -> None:
    """The provider's forming bar moves on each call, the clock does not: every cached
    answer holds the value of the provider's latest call for that bar."""
    clock = Clock(D(2024, 10, 10, 15, 30))
    seen: dict[pd.Timestamp, float] = {}
    calls = [0]

    def provider(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        calls[0] += 1
        index = pd.date_range(start, end, freq="1h", name="ts")
        index = index[index <= pd.Timestamp(clock())]
        values = [t.hour + (calls[0] / 1000 if t.hour == 15 else 0.0) for t in index]
        frame = pd.DataFrame({"v": values}, index=index)
        seen.update(frame["v"].to_dict())
        return frame

    get = range_cached(key="symbol", step="1h", store=MemoryStore(), clock=clock)(provider)
    for a, b in [(9, 15), (12, 16), (15, 15), (9, 14), (10, 15)]:
        got = get("X", D(2024, 10, 10, a), D(2024, 10, 10, b))
        assert got["v"].to_dict() == {t: seen[t] for t in got.index}
        if b >= 15:
            assert got.loc[pd.Timestamp("2024-10-10 15:00"), "v"] == 15 + calls[0] / 1000


def test_parquet_reopened_keeps_the_forming_bar_provisional(tmp_path: Any) -> None:
    """A new ParquetStore object (and a new wrapper) between clock steps must still
    refetch the bar that was forming, on both sides of New York's DST change."""
    clock = Clock(pd.Timestamp("2024-03-10 06:30", tz="UTC"))
    live = Live(clock, "1h")
    ny = "America/New_York"
    a, b = pd.Timestamp("2024-03-09 20:00", tz=ny), pd.Timestamp("2024-03-10 04:00", tz=ny)
    for jump in ("0s", "20min", "1h", "1h 5min", "30h"):
        clock.move(jump)
        get = range_cached(
            key="symbol", step="1h", store=ParquetStore(tmp_path), clock=clock, namespace="p"
        )(live)
        check(get("X", a.to_pydatetime(), b.to_pydatetime()), live.rows(a, b))
    before = len(live.asked)
    check(get("X", a.to_pydatetime(), b.to_pydatetime()), live.rows(a, b))
    assert len(live.asked) == before  # all final by now: a hit


def test_async_march_with_calendar_never_reads_past_the_edge() -> None:
    """An async function, daily bars, weekends without sessions: a march up to today."""
    clock = Clock(pd.Timestamp("2024-03-20 15:00", tz="UTC"))
    live = Live(clock, "1D", weekends=False)

    async def provider(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        await asyncio.sleep(0)
        return live(symbol, start, end)

    get = range_cached(
        key="symbol", step="1D", store=MemoryStore(), clock=clock, calendar=Weekdays()
    )(provider)

    async def main() -> None:
        day = pd.Timestamp("2024-02-01", tz="America/New_York")
        while day <= pd.Timestamp("2024-03-24", tz="America/New_York"):
            a = (day.tz_localize(None) - pd.Timedelta("5D")).tz_localize(day.tzinfo)
            before = len(live.asked)
            check(await get("X", a.to_pydatetime(), day.to_pydatetime()), live.rows(a, day))
            for _, b, at in live.asked[before:]:
                if b > day:
                    assert _utc(_bar_end(b, DAY)) <= at, (b, at)
            day = (day.tz_localize(None) + DAY).tz_localize(day.tzinfo)
            if day.day_of_week == 0:
                clock.move("3h")

    asyncio.run(main())


# -- real bugs -------------------------------------------------------------------------


def test_clock_one_second_backwards_still_refetches_the_forming_bar() -> None:
    clock = Clock(D(2024, 10, 10, 15, 30))
    live = Live(clock, "1h")
    get = range_cached(key="symbol", step="1h", store=MemoryStore(), clock=clock)(live)
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 15)
    check(get("X", a, b), live.rows(a, b))
    clock.move("-1s")  # NTP steps the clock back
    check(get("X", a, b), live.rows(a, b))


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_slow_fetch_across_a_bar_boundary_keeps_the_bar_provisional(kind: str) -> None:
    clock = Clock(D(2024, 10, 10, 15, 55))
    live = Live(clock, "1h", latency="10min")  # the answer is read at 15:55, lands at 16:05
    a, b = D(2024, 10, 10, 9), D(2024, 10, 10, 15)
    if kind == "sync":
        get = range_cached(key="symbol", step="1h", store=MemoryStore(), clock=clock)(live)
        get("X", a, b)
    else:

        async def provider(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            return live(symbol, start, end)

        get = range_cached(key="symbol", step="1h", store=MemoryStore(), clock=clock)(provider)
        asyncio.run(get("X", a, b))
    live.latency = pd.Timedelta(0)
    clock.move("2h")
    got = get("X", a, b) if kind == "sync" else asyncio.run(get("X", a, b))
    check(got, live.rows(a, b))  # 15:00 is final now, with its final value


@pytest.fixture
def new_york_process_tz(monkeypatch: pytest.MonkeyPatch) -> Any:
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_naive_clock_is_utc_whatever_the_process_zone(new_york_process_tz: Any) -> None:
    clock = Clock(D(2024, 3, 10, 2, 30, 30))  # naive = UTC
    live = Live(clock, "1min")
    get = range_cached(key="symbol", step="1min", store=MemoryStore(), clock=clock)(live)
    a, b = D(2024, 3, 10, 2, 25), D(2024, 3, 10, 2, 30)
    check(get("X", a, b), live.rows(a, b))
    fetched = get.coverage("X", detail=True)[-1].fetched
    clock.move("40min")
    check(get("X", a, b), live.rows(a, b))
    assert fetched == D(2024, 3, 10, 2, 30, 30, tzinfo=dt.UTC)
