"""The model test: random request sequences against ``range_cached`` over a FakeProvider.

For several series (symbols by timeframes: day, hour and minute bars, naive, UTC and
New York bounds as Timestamps, datetimes and dates; and integer blocks), every
result must equal the uncached provider's exactly, each request must call the
provider once per maximal gap of a set-of-positions model and nothing else, no
position is ever fetched twice for a key, and a repeated request calls nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from pandas.testing import assert_frame_equal
from strategies import SERIES, STEPS, Request, SeriesSpec, request_sequences

from rangememo import MemoryStore, range_cached
from rangememo.testing import FakeProvider, make_bars, make_blocks

MODEL_SETTINGS = settings(max_examples=60, deadline=None)
SPECS = {(s.name, s.timeframe): s for s in SERIES}


def step_of(timeframe: str, **_: Any) -> Any:
    return STEPS[timeframe]


# -- providers: the uncached functions ----------------------------------------------------


@dataclass
class Providers:
    """The raw (uncached) functions over one FakeProvider, in the caller's convention."""

    fake: FakeProvider
    closed: str

    def _trim(self, frame: pd.DataFrame, end: Any) -> pd.DataFrame:
        # The fake is inclusive; a half-open API leaves out the end position.
        if self.closed == "both":
            return frame
        limit = end if isinstance(end, int) else pd.Timestamp(end)
        return frame[frame.index < limit]

    async def bars(self, symbol: str, start: Any, end: Any, timeframe: str) -> pd.DataFrame:
        return self._trim(await self.fake.get_bars(symbol, start, end, timeframe), end)

    def bars_sync(self, symbol: str, start: Any, end: Any, timeframe: str) -> pd.DataFrame:
        return self._trim(self.fake.get_bars_sync(symbol, start, end, timeframe), end)

    async def blocks(self, chain: str, start: int, end: int) -> pd.DataFrame:
        return self._trim(await self.fake.get_blocks(chain, start, end), end)

    def blocks_sync(self, chain: str, start: int, end: int) -> pd.DataFrame:
        return self._trim(self.fake.get_blocks_sync(chain, start, end), end)


def arguments(req: Request) -> tuple[Any, ...]:
    spec = req.series
    start, end = spec.bound(req.i), spec.bound(req.j)
    if spec.is_blocks:
        return (spec.name, start, end)
    return (spec.name, start, end, spec.timeframe)


@dataclass
class System:
    """Cached functions (sync or async) over a fresh FakeProvider and a fresh MemoryStore."""

    closed: str
    is_async: bool
    fake: FakeProvider = field(default_factory=FakeProvider)
    reference: Providers = field(init=False)
    bars: Any = field(init=False)
    blocks: Any = field(init=False)

    def __post_init__(self) -> None:
        raw = Providers(self.fake, self.closed)
        self.reference = Providers(FakeProvider(), self.closed)
        store = MemoryStore()
        # readahead=None: the model predicts each call exactly (one per maximal gap,
        # nothing else fetched); readahead would fetch beyond what was requested.
        common = dict(store=store, closed=self.closed, readahead=None)
        bars = raw.bars if self.is_async else raw.bars_sync
        blocks = raw.blocks if self.is_async else raw.blocks_sync
        self.bars = range_cached(
            key=("symbol", "timeframe"), step=step_of, namespace="model.bars", **common
        )(bars)
        self.blocks = range_cached(key="chain", step=1, namespace="model.blocks", **common)(blocks)

    def rowful(self, spec: SeriesSpec) -> set[int]:
        """The grid positions of ``spec`` at which the provider has a row."""
        frame = self.expected(Request(series=spec, i=0, j=spec.size - 1))
        return {spec.index_of(v) for v in frame.index}

    def target(self, req: Request) -> Any:
        return self.blocks if req.series.is_blocks else self.bars

    def expected(self, req: Request) -> pd.DataFrame:
        """What the uncached function returns for ``req``."""
        ref = self.reference
        fn = ref.blocks_sync if req.series.is_blocks else ref.bars_sync
        return fn(*arguments(req))


# -- the model ---------------------------------------------------------------------------


def spec_of_call(call: Any) -> SeriesSpec:
    if call.name.startswith("get_blocks"):
        return SPECS[(call.key[0], None)]
    return SPECS[call.key]


def call_positions(call: Any, closed: str) -> range:
    """Grid positions a provider call asked for (inclusive end, or not)."""
    spec = spec_of_call(call)
    a, b = spec.index_of(call.start), spec.index_of(call.end)
    return range(a, b + 1) if closed == "both" else range(a, b)


def requested(req: Request, closed: str) -> set[int]:
    return set(range(req.i, req.j + 1) if closed == "both" else range(req.i, req.j))


def runs(positions: set[int]) -> list[range]:
    """Maximal runs of consecutive positions."""
    out: list[range] = []
    for p in sorted(positions):
        if out and out[-1].stop == p:
            out[-1] = range(out[-1].start, p + 1)
        else:
            out.append(range(p, p + 1))
    return out


class Model:
    """Covered positions per series, and the checks each request must pass."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.covered: dict[SeriesSpec, set[int]] = {}
        self.seen = 0  # provider calls already checked

    def new_calls(self) -> list[Any]:
        calls = self.system.fake.calls[self.seen :]
        self.seen += len(calls)
        return calls

    def check(self, req: Request, result: Any) -> None:
        """One request: exact result, one call per maximal gap, nothing else fetched."""
        system, closed = self.system, self.system.closed
        assert_frame_equal(result, system.expected(req))
        covered = self.covered.setdefault(req.series, set())
        wanted = runs(requested(req, closed) - covered)
        calls = self.new_calls()
        assert all(spec_of_call(c) == req.series for c in calls)
        got = sorted((call_positions(c, closed) for c in calls), key=lambda r: r.start)
        if got != wanted:
            # A key that has shown no row claims no further than it asked (nothing
            # tells where its bars lie), so a later call may ask again for such a
            # position, and take a second round for it: never for one that holds a row.
            asked = set().union(*got)
            need = set().union(set(), *wanted)
            assert need <= asked
            assert not (asked - need) & self.system.rowful(req.series)
            assert len(got) <= 2 * len(wanted)
        covered |= requested(req, closed)
        mutate(result)

    def check_repeat(self, req: Request, result: Any) -> None:
        """The same request again: no provider call, the same exact result."""
        assert self.new_calls() == []
        assert_frame_equal(result, self.system.expected(req))


def mutate(frame: pd.DataFrame) -> None:
    """What a careless caller does to a result; the cache must not notice."""
    if len(frame):
        frame.iloc[0, 0] = -1
    frame.index.name = "mutated"


def assert_fetched_once(system: System) -> None:
    """Per key, the provider calls' ranges are pairwise disjoint."""
    by_key: dict[Any, list[range]] = {}
    for call in system.fake.calls:
        by_key.setdefault(spec_of_call(call), []).append(call_positions(call, system.closed))
    for spec, ranges in by_key.items():
        ranges.sort(key=lambda r: r.start)
        for a, b in itertools.pairwise(ranges):
            # Asked twice only where no row lies (see Model.check).
            twice = set(range(b.start, min(a.stop, b.stop)))
            assert not twice & system.rowful(spec), f"fetched twice: {a} and {b}"


# -- sequential sequences ------------------------------------------------------------------


@pytest.mark.parametrize("closed", ["both", "left"])
@MODEL_SETTINGS
@given(reqs=request_sequences())
def test_sync_sequences_match_the_model(closed, reqs):
    """Sync wrappers: exact results, only maximal gaps fetched, repeats fetch nothing."""
    system = System(closed, is_async=False)
    model = Model(system)
    for req in reqs:
        fn = system.target(req)
        model.check(req, fn(*arguments(req)))
        model.check_repeat(req, fn(*arguments(req)))
    assert_fetched_once(system)


@pytest.mark.parametrize("closed", ["both", "left"])
@MODEL_SETTINGS
@given(reqs=request_sequences())
def test_async_sequences_match_the_model(closed, reqs):
    """Async wrappers: exact results, only maximal gaps fetched, repeats fetch nothing."""
    system = System(closed, is_async=True)
    model = Model(system)

    async def run() -> None:
        for req in reqs:
            fn = system.target(req)
            model.check(req, await fn(*arguments(req)))
            model.check_repeat(req, await fn(*arguments(req)))

    asyncio.run(run())
    assert_fetched_once(system)


# -- concurrent sequences ------------------------------------------------------------------


def check_concurrent(system: System, reqs: list[Request], results: list[Any]) -> None:
    """Concurrent callers: exact results, every position fetched once, requested ones only."""
    for req, result in zip(reqs, results, strict=True):
        assert_frame_equal(result, system.expected(req))
    assert_fetched_once(system)
    fetched: dict[SeriesSpec, set[int]] = {}
    for call in system.fake.calls:
        fetched.setdefault(spec_of_call(call), set()).update(call_positions(call, system.closed))
    wanted: dict[SeriesSpec, set[int]] = {}
    for req in reqs:
        wanted.setdefault(req.series, set()).update(requested(req, system.closed))
    assert fetched == wanted


@pytest.mark.parametrize("closed", ["both", "left"])
@MODEL_SETTINGS
@given(reqs=request_sequences(max_size=12))
def test_gathered_requests_share_fetches(closed, reqs):
    """``asyncio.gather`` of the whole sequence: each position fetched once, results exact."""
    system = System(closed, is_async=True)

    async def run() -> list[Any]:
        return await asyncio.gather(*(system.target(r)(*arguments(r)) for r in reqs))

    check_concurrent(system, reqs, asyncio.run(run()))
    before = system.fake.call_count

    async def again() -> None:
        for req in reqs:
            await system.target(req)(*arguments(req))

    asyncio.run(again())
    assert system.fake.call_count == before


@pytest.mark.parametrize("closed", ["both", "left"])
@settings(max_examples=30, deadline=None)
@given(reqs=request_sequences(max_size=12))
def test_threaded_requests_share_fetches(closed, reqs):
    """Threads calling the sync wrapper at once: each position fetched once, results exact."""
    system = System(closed, is_async=False)
    with cf.ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda r: system.target(r)(*arguments(r)), reqs))
    check_concurrent(system, reqs, results)
    before = system.fake.call_count
    for req in reqs:
        system.target(req)(*arguments(req))
    assert system.fake.call_count == before


# -- gaps the model found --------------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True])
def test_empty_half_open_request_on_a_fresh_key(is_async):
    """``[a, a)`` with ``closed="left"`` returns what the uncached call returns: no rows."""
    system = System("left", is_async=is_async)
    req = Request(SPECS[("eth", None)], 5, 5)
    result = system.blocks(*arguments(req))
    if is_async:
        result = asyncio.run(result)
    assert_frame_equal(result, system.expected(req))


def test_new_york_daily_bars_across_the_dst_change():
    """Day by day through the March DST change, each New York daily bar comes back."""
    fake = FakeProvider(empty_weekends=False)

    @range_cached(key=("symbol", "timeframe"), step="1D", store=MemoryStore())
    def bars(symbol, start, end, timeframe="D"):
        return fake.get_bars_sync(symbol, start, end, timeframe)

    for day in ("2024-03-09", "2024-03-10", "2024-03-11", "2024-03-12"):
        ts = pd.Timestamp(day, tz="America/New_York")
        expected = make_bars("X", ts, ts, skip_weekends=False)
        assert_frame_equal(bars("X", ts, ts), expected)
    for call in fake.calls:
        assert call.start <= call.end


def test_off_grid_bounds_never_lose_bars():
    """Requests whose bounds fall between bars still return every bar in range."""
    fake = FakeProvider()

    @range_cached(key=("symbol", "timeframe"), step="1min", store=MemoryStore())
    def bars(symbol, start, end, timeframe="1min"):
        return fake.get_bars_sync(symbol, start, end, timeframe)

    windows = [
        ("2024-01-02 10:00:30", "2024-01-02 10:05:30"),
        ("2024-01-02 10:06", "2024-01-02 10:10"),
        ("2024-01-02 10:00", "2024-01-02 10:00"),
    ]
    for start, end in windows:
        a, b = pd.Timestamp(start), pd.Timestamp(end)
        assert_frame_equal(bars("X", a, b), make_bars("X", a, b, "1min"))
    for call in fake.calls:
        assert call.start <= call.end


@pytest.mark.parametrize("last", ["2024-01-05", "2024-01-20"], ids=["hit", "partial-hit"])
def test_one_key_asked_in_two_timezones(last):
    """Bars at fixed instants, indexed in the caller's zone: each zone gets its own index tz."""

    def provider(symbol, start, end):
        utc = make_bars(symbol, start.tz_convert("UTC"), end.tz_convert("UTC"))
        return utc.tz_convert(start.tz)

    cached = range_cached(key="symbol", step="1D", store=MemoryStore())(provider)
    cached("X", pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-12", tz="UTC"))
    zone = "America/New_York"
    ny = (pd.Timestamp("2024-01-02 19:00", tz=zone), pd.Timestamp(last + " 19:00", tz=zone))
    assert_frame_equal(cached("X", *ny), provider("X", *ny))


def _weekly_mondays(symbol, start, end):
    days = make_bars(symbol, start, end, skip_weekends=False)
    return days[days.index.day_of_week == 0]


def _hourly_at_quarter_past(symbol, start, end):
    quarters = make_bars(symbol, start, end, "15min")
    return quarters[quarters.index.minute == 15]


def _blocks_ending_in_3(symbol, start, end):
    blocks = make_blocks(symbol, start, end)
    return blocks[blocks.index % 10 == 3]


def _kolkata(*times: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(f"2024-01-02 {t}", tz="Asia/Kolkata") for t in times]


OFF_EPOCH_GRIDS = {
    "weekly-on-mondays": (
        _weekly_mondays,
        "7D",
        [pd.Timestamp(d) for d in ("2024-10-07", "2024-10-14", "2024-10-28", "2024-11-04")],
    ),
    "hourly-at-15-past-in-kolkata": (
        _hourly_at_quarter_past,
        "1h",
        _kolkata("09:15", "10:15", "11:15", "12:15", "14:15"),
    ),
    "every-10th-block-from-3": (_blocks_ending_in_3, 10, [3, 23, 33, 53, 103]),
}


@pytest.mark.parametrize("grid", sorted(OFF_EPOCH_GRIDS))
def test_grids_not_anchored_at_the_epoch(grid):
    """Requests on the provider's own grid, whatever its phase, return every row."""
    provider, step, points = OFF_EPOCH_GRIDS[grid]
    cached = range_cached(key="symbol", step=step, store=MemoryStore())(provider)
    a, b, c, d, e = (points + points[-1:])[:5]
    for start, end in [(a, a), (c, c), (a, b), (b, d), (a, e)]:
        assert_frame_equal(cached("X", start, end), provider("X", start, end))


def test_model_domains_are_weekday_aware():
    """The model's domains include days and minutes without bars (weekends), and some with."""
    day = SPECS[("AAPL", "D")]
    minute = SPECS[("AAPL", "1min")]
    days = make_bars("AAPL", day.bound(0), day.bound(day.size - 1))
    minutes = make_bars("AAPL", minute.bound(0), minute.bound(minute.size - 1), "1min")
    assert 0 < len(days) < day.size
    assert 0 < len(minutes) < minute.size
    assert isinstance(SPECS[("IBM", "D")].bound(3), dt.date)
