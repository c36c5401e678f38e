"""Adversarial tests of batched functions (``batch=``, ``by=``): nasty but realistic inputs.

The oracle is always the uncached provider: a batched call over ``members`` and
``[start, end]`` must answer the provider's own rows for those members,
restricted to the request, put in the caller's member order (a boolean mask
per member, written here, not the code under test's split) and by time; and
no member's range may be asked for twice.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rangememo import CacheWarning, MemoryStore, ParquetStore, range_cached

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-03-01", tz="UTC")


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path / "cache")


def value(member: Any, ts: pd.Timestamp) -> float:
    """A deterministic price per (member, time)."""
    return float(ts.value // 10**9 % 100_003) + 0.5 * (abs(hash(str(member))) % 1000)


class Provider:
    """A long-format daily-bar API: rows stamped at ``hour`` in ``tz``, a ``symbol`` column.

    ``call`` is what an uncached function answers; ``calls`` records every
    request, so the tests can check no member's range is asked twice.
    """

    def __init__(self, hour: int = 0, tz: str = "UTC", level: bool = False) -> None:
        self.hour, self.tz, self.level = hour, tz, level
        self.calls: list[tuple[tuple[Any, ...], pd.Timestamp, pd.Timestamp, tuple[Any, ...]]] = []
        self.lock = threading.Lock()

    def stamps(self, start: Any, end: Any) -> pd.DatetimeIndex:
        lo, hi = pd.Timestamp(start).tz_convert(self.tz), pd.Timestamp(end).tz_convert(self.tz)
        days = pd.date_range(lo.normalize() - DAY, hi.normalize() + DAY, freq="D")
        stamps = days + pd.Timedelta(hours=self.hour)
        return pd.DatetimeIndex(stamps[(stamps >= lo) & (stamps <= hi)], name="timestamp")

    def frame(self, members: Sequence[Any], start: Any, end: Any) -> pd.DataFrame:
        stamps = self.stamps(start, end)
        rows = [(m, t, value(m, t)) for m in members for t in stamps]
        out = pd.DataFrame(
            {
                "symbol": pd.Series([r[0] for r in rows], dtype=object),
                "close": pd.Series([r[2] for r in rows], dtype="float64"),
            },
        )
        out.index = pd.DatetimeIndex([r[1] for r in rows], name="timestamp").as_unit("ns")
        if not rows:
            out.index = pd.DatetimeIndex([], tz=stamps.tz, name="timestamp").as_unit("ns")
        if self.level:
            out = out.set_index("symbol", append=True).swaplevel(0, 1)
        return out

    def __call__(self, symbols: list[Any], start: Any, end: Any, *extra: Any) -> pd.DataFrame:
        assert isinstance(symbols, list), symbols
        with self.lock:
            self.calls.append((tuple(symbols), pd.Timestamp(start), pd.Timestamp(end), extra))
        return self.frame(symbols, start, end)

    def asked(self, member: Any) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        return sorted((s, e) for ms, s, e, _ in self.calls if member in ms)


def oracle(raw: Any, members: Sequence[Any], start: Any, end: Any, level: bool = False) -> Any:
    """The uncached answer restricted to ``[start, end]``, in the caller's member order."""
    times = raw.index.get_level_values(-1) if level else raw.index
    raw = raw[np.asarray((times >= start) & (times <= end))]
    labels = raw.index.get_level_values(0) if level else raw["symbol"]
    parts = [raw[np.asarray(labels == m)] for m in members]
    parts = [p for p in parts if len(p)] or [raw.iloc[0:0]]
    return pd.concat(parts)


def same(got: Any, want: Any) -> None:
    if isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want, check_freq=False)
    else:
        pd.testing.assert_frame_equal(got, want, check_freq=False)


def no_overlaps(asked: list[tuple[pd.Timestamp, pd.Timestamp]], member: Any) -> None:
    """No range asked twice for one member (inclusive daily bounds)."""
    for (_, e1), (s2, _) in itertools.pairwise(asked):
        assert s2 > e1, f"{member!r}: asked twice for {asked}"


def alone(
    make: Callable[[], Provider], windows: list[tuple[list[Any], Any, Any]], **options: Any
) -> Provider:
    """The calls an unbatched cached function makes, member by member, for ``windows``.

    What a batched function may ask for a member is what that member's own
    cached call asks (docs/batch.md: gaps planned "exactly as their own call
    would plan them"); with bars off the step's grid that may touch a bound
    twice, which is the single-key machinery's rule, not the batch's.
    """
    prov = make()

    def one(symbol: Any, start: Any, end: Any) -> Any:
        return prov([symbol], start, end)

    opts: dict[str, Any] = {"step": "1D", "settle": False}
    opts.update(options)
    cached = range_cached(store=MemoryStore(), **opts)(one)
    for members, lo, hi in windows:
        for m in members:
            cached(m, lo, hi)
    return prov


def batched(provider: Callable[..., Any], store: Any = None, **options: Any) -> Any:
    def get_bars(symbols: list[Any], start: Any, end: Any) -> Any:
        return provider(symbols, start, end)

    opts: dict[str, Any] = {
        "batch": "symbols",
        "by": "symbol",
        "step": "1D",
        "settle": False,
        "namespace": "bars",
    }
    opts.update(options)
    return range_cached(store=store if store is not None else MemoryStore(), **opts)(get_bars)


# -- odd hours and time zones -----------------------------------------------------------


@pytest.mark.parametrize("level", [False, True])
def test_daily_bars_stamped_at_5am_utc(store: Any, level: bool) -> None:
    prov = Provider(hour=5, level=level)
    get = batched(prov, store)
    windows = [
        (["AAPL", "MSFT"], T0, T0 + 9 * DAY),
        (["MSFT", "GOOG", "AAPL"], T0 + 5 * DAY, T0 + 14 * DAY),
        (["GOOG"], T0 - 3 * DAY, T0 + 2 * DAY),
        (["AAPL", "GOOG", "MSFT"], T0 - 3 * DAY, T0 + 14 * DAY),
    ]
    for members, lo, hi in windows:
        same(get(members, lo, hi), oracle(prov.frame(members, lo, hi), members, lo, hi, level))
    n = len(prov.calls)
    for members, lo, hi in windows:
        get(members, lo, hi)
    assert len(prov.calls) == n
    ref = alone(lambda: Provider(hour=5), windows)  # planning ignores the shape
    for m in ("AAPL", "MSFT", "GOOG"):
        assert prov.asked(m) == ref.asked(m), m


def test_new_york_midnight_across_dst_with_tz_aware_bounds(store: Any) -> None:
    ny = "America/New_York"
    prov = Provider(hour=0, tz=ny)
    get = batched(prov, store)
    lo = pd.Timestamp("2024-03-05", tz=ny)  # DST starts 2024-03-10 in New York
    windows = [
        (["SPY"], lo, lo + 4 * DAY),
        (["QQQ", "SPY"], lo + 2 * DAY, pd.Timestamp("2024-03-15", tz=ny)),
        (["SPY", "QQQ"], lo, pd.Timestamp("2024-03-20", tz=ny)),
    ]
    for members, a, b in windows:
        got = get(members, a, b)
        same(got, oracle(prov.frame(members, a, b), members, a, b))
        assert str(got.index.tz) == ny
    ref = alone(lambda: Provider(hour=0, tz=ny), windows)
    for m in ("SPY", "QQQ"):
        assert prov.asked(m) == ref.asked(m), m


# -- dtype changes and schema widening ------------------------------------------------------


def test_int_becomes_float_and_a_column_appears_between_calls(store: Any) -> None:
    cut = T0 + 5 * DAY  # from here on the API answers a float volume with gaps, and vwap

    def api(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        frame = Provider().frame(symbols, start, end)
        late = frame.index >= cut
        if late.any():
            vol = (frame["close"] * 10).to_numpy(copy=True)
            vol[late.nonzero()[0][::3]] = np.nan
            frame["volume"] = vol
            frame["vwap"] = np.where(late, frame["close"] + 0.1, np.nan)
        else:
            frame["volume"] = (frame["close"] * 10).astype("int64")
        return frame

    get = batched(api, store)
    first = get(["A", "B"], T0, T0 + 4 * DAY)
    assert first["volume"].dtype == "int64"
    members = ["B", "A"]
    got = get(members, T0, T0 + 9 * DAY)
    want = oracle(api(members, T0, T0 + 9 * DAY), members, T0, T0 + 9 * DAY)
    same(got, want)


# -- empty answers of every shape -------------------------------------------------------------


EMPTIES: dict[str, Callable[[], Any]] = {
    "no columns": pd.DataFrame,
    "columns, no rows": lambda: Provider().frame([], T0, T0 - DAY),
    "columns without by, no rows": lambda: (
        Provider().frame([], T0, T0 - DAY).drop(columns="symbol")
    ),
    "multiindex, no rows": lambda: Provider(level=True).frame([], T0, T0 - DAY),
}


@pytest.mark.parametrize("kind", list(EMPTIES))
def test_an_empty_answer_then_rows(store: Any, kind: str) -> None:
    """Days with no data at all (a holiday) answer empty; later rows answer exactly."""
    level = kind.startswith("multiindex")
    holiday = (T0, T0 + 2 * DAY)
    prov = Provider(level=level)

    def api(symbols: list[str], start: Any, end: Any) -> Any:
        if pd.Timestamp(end) <= holiday[1]:
            return EMPTIES[kind]()
        return prov(symbols, start, end)

    get = batched(api, store)
    got = get(["X", "Y"], *holiday)
    want = api(["X", "Y"], *holiday)
    assert len(got) == 0
    same(got, want)  # the provider's empty shape: no member level invented, none lost
    members = ["Y", "X"]
    lo, hi = T0, T0 + 6 * DAY
    raw = prov.frame(members, lo, hi)
    raw = raw[np.asarray(raw.index.get_level_values(-1) > holiday[1])]
    same(get(members, lo, hi), oracle(raw, members, lo, hi, level))
    assert all(s > holiday[1] for _, s, _, _ in prov.calls)  # the holiday is never asked again


# -- what providers answer beyond what they were asked -----------------------------------------


def test_rows_outside_the_asked_range_are_dropped(store: Any) -> None:
    prov = Provider()

    def sloppy(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        # The API rounds the range out by two days on each side.
        return prov(symbols, pd.Timestamp(start) - 2 * DAY, pd.Timestamp(end) + 2 * DAY)

    get = batched(sloppy, store)
    for members, lo, hi in [
        (["A"], T0 + 3 * DAY, T0 + 5 * DAY),
        (["B", "A"], T0, T0 + 8 * DAY),
        (["A", "B"], T0 + 4 * DAY, T0 + 4 * DAY),
    ]:
        same(get(members, lo, hi), oracle(prov.frame(members, lo, hi), members, lo, hi))


def test_duplicate_timestamps_per_member_answer_as_the_unbatched_cache(store: Any) -> None:
    """A provider repeating a row: the batched answer is each member's own cached answer."""
    prov = Provider()

    def dup(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        frame = prov(symbols, start, end)
        again = frame[np.asarray(frame.index.day % 4 == 1)].copy()
        again["close"] += 1000.0  # a corrected print of the same bar
        return pd.concat([frame, again]).sort_index(kind="stable")

    get = batched(dup, store)

    @range_cached(step="1D", settle=False, store=MemoryStore())
    def one(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return dup([symbol], start, end)

    members = ["A", "B"]
    got = get(members, T0, T0 + 6 * DAY)
    want = pd.concat([one(m, T0, T0 + 6 * DAY) for m in members])
    same(got, want)


def test_none_and_nan_in_the_by_column_warn_and_are_dropped(store: Any) -> None:
    prov = Provider()

    def holey(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        frame = prov(symbols, start, end)
        frame.iloc[::3, frame.columns.get_loc("symbol")] = None
        return frame

    get = batched(holey, store)
    members = ["A", "B"]
    with pytest.warns(CacheWarning, match="not asked for"):
        got = get(members, T0, T0 + 6 * DAY)
    raw = holey(members, T0, T0 + 6 * DAY)
    same(got, oracle(raw, members, T0, T0 + 6 * DAY))


# -- members that are not strings; member containers ---------------------------------------------


@pytest.mark.parametrize(
    "members", [[7, 3], [(1, "x"), (2, "y")], [np.int64(7), np.int64(3)]], ids=str
)
def test_int_and_tuple_members(store: Any, members: list[Any]) -> None:
    prov = Provider()
    get = batched(prov, store)
    # A column of tuples has no Parquet type: the answer is exact, nothing is
    # stored (a CacheWarning says so), as for an unbatched function.
    unstorable = isinstance(members[0], tuple) and isinstance(store, ParquetStore)
    back = list(reversed(members))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = get(members, T0, T0 + 4 * DAY)
        n = len(prov.calls)
        again = get(back, T0, T0 + 4 * DAY)
    same(got, oracle(prov.frame(members, T0, T0 + 4 * DAY), members, T0, T0 + 4 * DAY))
    same(again, oracle(prov.frame(back, T0, T0 + 4 * DAY), back, T0, T0 + 4 * DAY))
    assert len(prov.calls) == (2 * n if unstorable else n)
    assert any(issubclass(w.category, CacheWarning) for w in caught) == unstorable


@pytest.mark.parametrize(
    "wrap",
    [tuple, pd.Index, np.array, lambda m: (x for x in m), lambda m: pd.Series(m)],
    ids=["tuple", "index", "ndarray", "generator", "series"],
)
def test_member_containers_share_one_series_per_member(store: Any, wrap: Any) -> None:
    prov = Provider()
    get = batched(prov, store)
    get(["A", "B"], T0, T0 + 4 * DAY)
    n = len(prov.calls)
    members = ["B", "A"]
    got = get(wrap(members), T0, T0 + 4 * DAY)
    same(got, oracle(prov.frame(members, T0, T0 + 4 * DAY), members, T0, T0 + 4 * DAY))
    assert len(prov.calls) == n  # np.str_ members are the same series as str ones


def test_numpy_int_members_share_the_series_of_python_ints(store: Any) -> None:
    prov = Provider()
    get = batched(prov, store)
    get([1, 2], T0, T0 + 4 * DAY)
    n = len(prov.calls)
    members = np.array([2, 1])
    got = get(members, T0, T0 + 4 * DAY)
    same(got, oracle(prov.frame([2, 1], T0, T0 + 4 * DAY), [2, 1], T0, T0 + 4 * DAY))
    assert len(prov.calls) == n


@pytest.mark.parametrize("order", [["A", "B"], ["B", "A"]])
def test_categorical_by_column(store: Any, order: list[str]) -> None:
    prov = Provider()

    def cat(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        frame = prov(symbols, start, end)
        frame["symbol"] = pd.Categorical(frame["symbol"], categories=sorted(symbols))
        return frame

    get = batched(cat, store)
    get(["B"], T0, T0 + 3 * DAY)
    got = get(order, T0, T0 + 6 * DAY)
    want = oracle(cat(order, T0, T0 + 6 * DAY), order, T0, T0 + 6 * DAY)
    # The members' rows came from answers with other categories: they are
    # united in the caller's member order (docs/batch.md), which need not be
    # the provider's order (sorted, here).
    assert isinstance(got["symbol"].dtype, pd.CategoricalDtype)
    assert list(got["symbol"].cat.categories) == order
    got["symbol"] = got["symbol"].cat.set_categories(sorted(order))
    same(got, want)


# -- concurrency ---------------------------------------------------------------------------------


class Slow(Provider):
    """A provider that holds each call a moment, so concurrent calls overlap."""

    def __call__(self, symbols: list[Any], start: Any, end: Any, *extra: Any) -> pd.DataFrame:
        out = super().__call__(symbols, start, end, *extra)
        threading.Event().wait(0.02)
        return out


WORK = [
    (["A", "B", "C"], T0, T0 + 9 * DAY),
    (["C", "D"], T0 + 5 * DAY, T0 + 14 * DAY),
    (["B", "D", "A"], T0 + 3 * DAY, T0 + 12 * DAY),
    (["D", "C", "B", "A"], T0, T0 + 14 * DAY),
    (["A"], T0 + 7 * DAY, T0 + 8 * DAY),
    (["E", "A"], T0 + 1 * DAY, T0 + 4 * DAY),
]


def test_threads_overlapping_on_members_never_fetch_a_range_twice(store: Any) -> None:
    prov = Slow()
    get = batched(prov, store)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []
    gate = threading.Barrier(len(WORK))

    def run(i: int) -> None:
        members, lo, hi = WORK[i]
        try:
            gate.wait()
            results[i] = get(members, lo, hi)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(WORK))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, (members, lo, hi) in enumerate(WORK):
        same(results[i], oracle(prov.frame(members, lo, hi), members, lo, hi))
    for m in "ABCDE":
        no_overlaps(prov.asked(m), m)


def test_async_tasks_overlapping_on_members_never_fetch_a_range_twice(store: Any) -> None:
    prov = Provider()

    async def get_bars(symbols: list[Any], start: Any, end: Any) -> pd.DataFrame:
        out = prov(symbols, start, end)
        await asyncio.sleep(0.02)
        return out

    get = range_cached(
        batch="symbols", by="symbol", step="1D", settle=False, namespace="bars", store=store
    )(get_bars)

    async def main() -> list[Any]:
        return await asyncio.gather(*(get(m, lo, hi) for m, lo, hi in WORK))

    got = asyncio.run(main())
    for answer, (members, lo, hi) in zip(got, WORK, strict=True):
        same(answer, oracle(prov.frame(members, lo, hi), members, lo, hi))
    for m in "ABCDE":
        no_overlaps(prov.asked(m), m)


def test_invalidate_while_another_thread_runs_a_batched_call(store: Any) -> None:
    prov = Provider()
    entered, release = threading.Event(), threading.Event()

    def held(symbols: list[Any], start: Any, end: Any) -> pd.DataFrame:
        out = prov(symbols, start, end)
        if "HOLD" in symbols:
            entered.set()
            assert release.wait(5)
        return out

    get = batched(held, store)
    get(["A", "B"], T0, T0 + 9 * DAY)
    box: dict[str, Any] = {}

    def run() -> None:
        box["answer"] = get(["A", "HOLD", "B"], T0, T0 + 9 * DAY)

    t = threading.Thread(target=run)
    t.start()
    assert entered.wait(5)
    get.invalidate("A", start=T0 + 2 * DAY, end=T0 + 4 * DAY)  # mid-call
    release.set()
    t.join()
    members = ["A", "HOLD", "B"]
    same(box["answer"], oracle(prov.frame(members, T0, T0 + 9 * DAY), members, T0, T0 + 9 * DAY))
    n = len(prov.calls)
    same(get(members, T0, T0 + 9 * DAY), box["answer"])
    assert [c[:3] for c in prov.calls[n:]] == [(("A",), T0 + 2 * DAY, T0 + 4 * DAY)]


# -- the live edge -------------------------------------------------------------------------------


class Live:
    """A clock and an API whose newest bar changes until it settles (one day)."""

    def __init__(self) -> None:
        self.now = pd.Timestamp("2024-03-10 15:00", tz="UTC")
        self.calls: list[tuple[tuple[Any, ...], pd.Timestamp, pd.Timestamp]] = []

    def clock(self) -> Any:
        return self.now.to_pydatetime()

    def __call__(self, symbols: list[Any], start: Any, end: Any) -> pd.DataFrame:
        self.calls.append((tuple(symbols), pd.Timestamp(start), pd.Timestamp(end)))
        frame = Provider().frame(symbols, start, min(pd.Timestamp(end), self.now))
        # A bar still forming: its close is the last trade so far.
        forming = frame.index > self.now - DAY
        frame.loc[forming, "close"] += self.now.hour
        return frame


def test_provisional_rows_are_refetched_per_member(store: Any) -> None:
    live = Live()
    get = batched(live, store, settle="1D", ttl="1h", clock=live.clock)
    lo, hi = T0, T0 + 9 * DAY  # up to "today", 2024-03-10
    members = ["A", "B"]
    same(get(members, lo, hi), oracle(live(members, lo, hi), members, lo, hi))
    live.calls.clear()
    live.now += pd.Timedelta(minutes=30)  # within ttl: no call
    get(members, lo, hi)
    assert live.calls == []
    live.now += pd.Timedelta(hours=2)  # the provisional bar expired, for both members
    members = ["B", "C", "A"]
    got = get(members, lo, hi)
    mark = len(live.calls)
    same(got, oracle(live(members, lo, hi), members, lo, hi))
    asked = live.calls[:mark]
    # A and B refetch only their live edge, in one call; C its whole range.
    edges = [c for c in asked if "C" not in c[0]]
    assert len(edges) == 1 and set(edges[0][0]) == {"A", "B"}
    assert edges[0][1] >= lo + 8 * DAY, asked


# -- stores, limits, keys, methods, shapes -------------------------------------------------------


@pytest.mark.parametrize("level", [False, True])
def test_parquet_reopened_answers_without_calls(tmp_path: Any, level: bool) -> None:
    prov = Provider(level=level)
    members = [3, 1, 2]
    batched(prov, ParquetStore(tmp_path / "c"))(members, T0, T0 + 6 * DAY)
    n = len(prov.calls)
    again = batched(prov, ParquetStore(tmp_path / "c"))
    got = again([2, 3], T0 + 1 * DAY, T0 + 5 * DAY)
    assert len(prov.calls) == n
    want = oracle(prov.frame([2, 3], T0, T0 + 6 * DAY), [2, 3], T0 + DAY, T0 + 5 * DAY, level)
    if level:
        # A stored piece has no member level: a process that fetched nothing
        # rebuilds it from the members as pandas infers it (docs/batch.md),
        # here int64 where this provider's level is object.
        assert got.index.levels[0].dtype == "int64"
        want.index = want.index.set_levels(want.index.levels[0].astype("int64"), level=0)
    same(got, want)


def test_rate_limit_and_one_call_at_a_time(store: Any) -> None:
    prov = Slow()
    running = [0, 0]  # now, most

    def counted(symbols: list[Any], start: Any, end: Any) -> pd.DataFrame:
        running[0] += 1
        running[1] = max(running)
        try:
            return prov(symbols, start, end)
        finally:
            running[0] -= 1

    get = batched(counted, store, rate_limit=(100, 1.0), max_concurrency=1, max_batch=2)
    get(["A", "B"], T0, T0 + 3 * DAY)
    members = ["A", "B", "C", "D", "E"]
    got = get(members, T0, T0 + 9 * DAY)
    same(got, oracle(prov.frame(members, T0, T0 + 9 * DAY), members, T0, T0 + 9 * DAY))
    assert running[1] == 1
    assert get.cache_info().provider_calls == len(prov.calls)
    assert all(len(c[0]) <= 2 for c in prov.calls)


def test_extra_key_arguments_keep_timeframes_apart(store: Any) -> None:
    calls: list[tuple[tuple[Any, ...], str]] = []

    def api(symbols: list[str], start: Any, end: Any, timeframe: str = "D") -> pd.DataFrame:
        calls.append((tuple(symbols), timeframe))
        frame = Provider().frame(symbols, start, end)
        frame["close"] += 0.0 if timeframe == "D" else 1000.0
        frame["tf"] = timeframe
        return frame

    get = range_cached(
        batch="symbols", by="symbol", step="1D", settle=False, namespace="tf", store=store
    )(api)
    get(["A", "B"], T0, T0 + 4 * DAY, "D")
    got = get(["B", "A"], T0, T0 + 4 * DAY, timeframe="W")
    same(got, oracle(api(["B", "A"], T0, T0 + 4 * DAY, "W"), ["B", "A"], T0, T0 + 4 * DAY))
    assert calls[:2] == [(("A", "B"), "D"), (("B", "A"), "W")]
    n = len(calls)
    same(
        get(["A"], T0, T0 + 4 * DAY, "D"),
        oracle(api(["A"], T0, T0 + 4 * DAY), ["A"], T0, T0 + 4 * DAY),
    )
    assert len(calls) == n + 1  # only the oracle's own call
    assert get.coverage("A", timeframe="W") and get.coverage("A", "D")


def test_a_method_with_a_multiindex_series(store: Any) -> None:
    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @range_cached(batch="tickers", by="symbol", step="1D", settle=False, store=store)
        def closes(self, tickers: list[str], start: Any, end: Any) -> pd.Series:
            self.calls += 1
            return self.raw(tickers, start, end)

        def raw(self, tickers: list[str], start: Any, end: Any) -> pd.Series:
            return Provider(level=True).frame(tickers, start, end)["close"]

    c = Client()
    c.closes(["X"], T0, T0 + 3 * DAY)
    members = ["Y", "X"]
    got = c.closes(members, T0, T0 + 6 * DAY)
    raw = c.raw(members, T0, T0 + 6 * DAY)
    want = pd.concat([raw[np.asarray(raw.index.get_level_values(0) == m)] for m in members])
    same(got, want)
    assert c.calls == 3  # X then, and now Y's range and X's days 4-6


def test_a_calendar_skips_gaps_without_sessions_for_every_member(store: Any) -> None:
    class Weekdays:
        def sessions_in_range(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
            days = pd.date_range(start.normalize(), end.normalize(), freq="D")
            return days[days.day_of_week < 5]

    prov = Provider()

    def api(symbols: list[Any], start: Any, end: Any) -> pd.DataFrame:
        frame = prov(symbols, start, end)
        return frame[np.asarray(frame.index.day_of_week < 5)]

    # readahead=None: the calls march forward, and reading ahead (the default)
    # would fetch Monday's week; this test is about the weekend without a call.
    get = batched(api, store, calendar=Weekdays(), readahead=None)
    fri, mon = pd.Timestamp("2024-03-08", tz="UTC"), pd.Timestamp("2024-03-11", tz="UTC")
    get(["A", "B"], fri - 4 * DAY, fri)
    n = len(prov.calls)
    got = get(["B", "A"], fri - 4 * DAY, fri + 2 * DAY)  # a weekend: no call
    assert len(prov.calls) == n
    same(got, oracle(api(["B", "A"], fri - 4 * DAY, fri), ["B", "A"], fri - 4 * DAY, fri))
    get(["A", "B"], fri, mon)
    assert [c[1:3] for c in prov.calls[n + 1 :]] == [(mon, mon)]


# -- row orders and index shapes ---------------------------------------------------------------


@pytest.mark.parametrize("order", ["descending", "time-major"])
def test_provider_row_order_gives_member_then_time(store: Any, order: str) -> None:
    """Grouped daily aggregates come time-major (every symbol of a day, then the next)."""
    prov = Provider()

    def api(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        frame = prov(symbols, start, end)
        if order == "descending":
            return frame.iloc[::-1]
        return frame.sort_index(kind="stable")

    get = batched(api, store)
    get(["B"], T0 + 2 * DAY, T0 + 3 * DAY)
    members = ["C", "A", "B"]
    got = get(members, T0, T0 + 5 * DAY)
    want = oracle(prov.frame(members, T0, T0 + 5 * DAY), members, T0, T0 + 5 * DAY)
    same(got, want)


def test_long_frame_with_a_time_column_and_a_range_index(store: Any) -> None:
    """yfinance-style after ``reset_index``: positions in a column, a RangeIndex."""
    prov = Provider()

    def api(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        return prov(symbols, start, end).reset_index()

    get = batched(api, store, index="timestamp")
    get(["A"], T0, T0 + 3 * DAY)
    members = ["B", "A"]
    got = get(members, T0, T0 + 6 * DAY)
    raw = api(members, T0, T0 + 6 * DAY)
    want = pd.concat([raw[np.asarray(raw["symbol"] == m)] for m in members], ignore_index=True)
    same(got, want)


def test_level_shape_outside_rows_strangers_and_a_new_column(store: Any) -> None:
    prov = Provider(level=True)
    cut = T0 + 4 * DAY

    def api(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        frame = prov(symbols, pd.Timestamp(start) - DAY, pd.Timestamp(end) + DAY)
        stranger = frame.rename(index={symbols[0]: "ZZZ"}, level=0).iloc[:2]
        frame = pd.concat([frame, stranger])
        if pd.Timestamp(end) > cut:
            times = frame.index.get_level_values(1)
            frame["vwap"] = np.where(times > cut, frame["close"] - 0.5, np.nan)
        return frame

    get = batched(api, store)
    with pytest.warns(CacheWarning, match="ZZZ"):
        get(["A", "B"], T0, T0 + 3 * DAY)
    members = ["B", "C", "A"]
    with pytest.warns(CacheWarning, match="ZZZ"):
        got = get(members, T0, T0 + 8 * DAY)
    raw = prov.frame(members, T0, T0 + 8 * DAY)
    times = raw.index.get_level_values(1)
    raw["vwap"] = np.where(times > cut, raw["close"] - 0.5, np.nan)
    same(got, oracle(raw, members, T0, T0 + 8 * DAY, level=True))


def test_integer_axis_and_left_closed_ranges(store: Any) -> None:
    def api(symbols: list[str], start: int, end: int) -> pd.DataFrame:
        rows = [(s, i, i * 10 + len(s)) for s in symbols for i in range(start, end)]
        return pd.DataFrame(
            {"symbol": [r[0] for r in rows], "v": np.array([r[2] for r in rows], dtype="int64")},
            index=pd.Index([r[1] for r in rows], dtype="int64", name="seq"),
        )

    calls: list[tuple[tuple[str, ...], int, int]] = []

    def rec(symbols: list[str], start: int, end: int) -> pd.DataFrame:
        calls.append((tuple(symbols), start, end))
        return api(symbols, start, end)

    get = batched(rec, store, step=1, closed="left")
    get(["A", "BB"], 0, 10)
    got = get(["BB", "CCC", "A"], 5, 15)
    raw = api(["BB", "CCC", "A"], 5, 15)
    want = pd.concat([raw[np.asarray(raw["symbol"] == m)] for m in ["BB", "CCC", "A"]])
    same(got, want)
    assert sorted(calls[1:]) == sorted([(("BB", "A"), 10, 15), (("CCC",), 5, 15)])


# -- more concurrency: failures, invalidation mid-fetch, prefetch ------------------------------


def test_a_failing_call_and_a_waiting_call_on_the_same_member(store: Any) -> None:
    prov = Slow()

    def flaky(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        out = prov(symbols, start, end)
        if "BAD" in symbols:
            raise ConnectionError("503")
        return out

    get = batched(flaky, store)
    box: dict[str, Any] = {}

    def bad() -> None:
        try:
            get(["A", "BAD"], T0, T0 + 5 * DAY)
        except ConnectionError as exc:
            box["error"] = exc

    def good() -> None:
        box["answer"] = get(["A"], T0, T0 + 5 * DAY)

    threads = [threading.Thread(target=bad), threading.Thread(target=good)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(box["error"], ConnectionError)
    same(box["answer"], oracle(prov.frame(["A"], T0, T0 + 5 * DAY), ["A"], T0, T0 + 5 * DAY))
    assert get.coverage("A")  # the good call's fetch is kept


def test_invalidate_of_a_member_being_fetched(store: Any) -> None:
    prov = Provider()
    entered, release = threading.Event(), threading.Event()

    def held(symbols: list[Any], start: Any, end: Any) -> pd.DataFrame:
        out = prov(symbols, start, end)
        if pd.Timestamp(end) == T0 + 9 * DAY and not entered.is_set():
            entered.set()
            assert release.wait(5)
        return out

    get = batched(held, store)
    get(["A", "B"], T0, T0 + 4 * DAY)
    box: dict[str, Any] = {}
    members = ["B", "A"]

    def run() -> None:
        box["answer"] = get(members, T0, T0 + 9 * DAY)

    t = threading.Thread(target=run)
    t.start()
    assert entered.wait(5)
    get.invalidate("A", start=T0 + 1 * DAY, end=T0 + 2 * DAY)  # A's older days, mid-fetch
    release.set()
    t.join()
    want = oracle(prov.frame(members, T0, T0 + 9 * DAY), members, T0, T0 + 9 * DAY)
    same(box["answer"], want)
    same(get(members, T0, T0 + 9 * DAY), want)
    n = len(prov.calls)
    same(get(members, T0, T0 + 9 * DAY), want)
    assert len(prov.calls) == n


def test_prefetch_from_threads_then_call(store: Any) -> None:
    prov = Slow()
    get = batched(prov, store)
    threads = [threading.Thread(target=get.prefetch, args=(m, lo, hi)) for m, lo, hi in WORK]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = len(prov.calls)
    members = ["E", "D", "C", "B", "A"]
    got = get(members, T0 + DAY, T0 + 4 * DAY)
    assert len(prov.calls) == n
    same(got, oracle(prov.frame(members, T0 + DAY, T0 + 4 * DAY), members, T0 + DAY, T0 + 4 * DAY))
    for m in "ABCDE":
        no_overlaps(prov.asked(m), m)


def test_async_cancelled_while_waiting_for_a_member_lock() -> None:
    prov = Provider()

    async def main() -> None:
        gate = asyncio.Event()

        async def get_bars(symbols: list[Any], start: Any, end: Any) -> pd.DataFrame:
            out = prov(symbols, start, end)
            await gate.wait()
            return out

        get = range_cached(
            batch="symbols", by="symbol", step="1D", settle=False, store=MemoryStore()
        )(get_bars)
        first = asyncio.create_task(get(["A", "B"], T0, T0 + 3 * DAY))
        await asyncio.sleep(0.01)
        waiting = asyncio.create_task(get(["B"], T0, T0 + 3 * DAY))
        await asyncio.sleep(0.01)
        waiting.cancel()
        gate.set()
        same(
            await first,
            oracle(prov.frame(["A", "B"], T0, T0 + 3 * DAY), ["A", "B"], T0, T0 + 3 * DAY),
        )
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # The locks were let go: another call runs (from the cache).
        got = await asyncio.wait_for(get(["B", "A"], T0, T0 + 3 * DAY), 5)
        want = oracle(prov.frame(["B", "A"], T0, T0 + 3 * DAY), ["B", "A"], T0, T0 + 3 * DAY)
        same(got, want)

    asyncio.run(main())
    assert len(prov.calls) == 1


# -- ownership and bound types -------------------------------------------------------------------


@pytest.mark.parametrize("members", [["A"], ["A", "B"]])
@pytest.mark.parametrize("level", [False, True])
def test_mutating_an_answer_or_the_members_list_changes_nothing(
    store: Any, members: list[str], level: bool
) -> None:
    prov = Provider(level=level)

    def rude(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        out = prov(symbols, start, end)
        symbols.reverse()  # the provider reorders the list it was given
        return out

    get = batched(rude, store)
    want = oracle(prov.frame(members, T0, T0 + 4 * DAY), members, T0, T0 + 4 * DAY, level)
    for _ in range(3):  # fetched, then served (twice), each mutated by the caller
        got = get(list(members), T0, T0 + 4 * DAY)
        same(got, want)
        got["close"] = -1.0
        got.iloc[0, 0] = -2.0
    assert len(prov.calls) == 1


@pytest.mark.parametrize("kind", ["date", "naive"])
def test_date_and_naive_bounds_reach_the_provider_as_an_unbatched_call_gives_them(
    store: Any, kind: str
) -> None:
    import datetime as dt

    seen: list[tuple[Any, Any]] = []
    prov = Provider()

    def api(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        seen.append((start, end))
        out = prov(symbols, pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"))
        out.index = out.index.tz_localize(None)  # naive bounds, naive stamps
        return out

    get = batched(api, store)

    @range_cached(step="1D", settle=False, store=MemoryStore())
    def one(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return api([symbol], start, end)

    wrap = (lambda d: d) if kind == "date" else (lambda d: dt.datetime.combine(d, dt.time()))
    windows = [
        (dt.date(2024, 3, 1), dt.date(2024, 3, 5)),
        (dt.date(2024, 3, 4), dt.date(2024, 3, 9)),
    ]
    for lo, hi in windows:
        got = get(["B", "A"], wrap(lo), wrap(hi))
        n = len(seen)
        want = pd.concat([one(m, wrap(lo), wrap(hi)) for m in ["B", "A"]])
        same(got, want)
        mine = seen[n - 1]
        assert seen[n:] and all(s == mine for s in seen[n:]), (seen, n)
        assert all(type(x) is type(y) for s in seen[n:] for x, y in zip(s, mine, strict=True))


def test_one_members_schema_conflict_keeps_the_others_rows(store: Any) -> None:
    """B has no prices ("n/a"), so an answer holding B has an object ``close``: A, stored
    float64 from an answer of its own, cannot take it (a real conflict); B's rows of
    that same answer are still committed."""
    prov = Provider()

    def api(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        frame = prov(symbols, start, end)
        if "B" in symbols:
            close = frame["close"].astype(object)
            close[np.asarray(frame["symbol"] == "B")] = "n/a"
            frame["close"] = close
        return frame

    get = batched(api, store)
    get(["A"], T0, T0 + 3 * DAY)
    get(["B"], T0, T0 + 3 * DAY)
    with pytest.raises(Exception, match="dtype"):
        get(["A", "B"], T0, T0 + 6 * DAY)
    n = len(prov.calls)
    got = get(["B"], T0, T0 + 6 * DAY)
    assert len(prov.calls) == n  # B's days 4-6 were kept
    same(got, oracle(api(["B"], T0, T0 + 6 * DAY), ["B"], T0, T0 + 6 * DAY))


@pytest.mark.parametrize(
    "empty",
    [[], (), np.array([], dtype=str), pd.Index([], dtype=object), iter(())],
    ids=["list", "tuple", "ndarray", "index", "iterator"],
)
def test_no_members_reach_the_provider_as_an_empty_list(empty: Any) -> None:
    prov = Provider()
    get = batched(prov, MemoryStore())
    same(get(empty, T0, T0 + 3 * DAY), prov.frame([], T0, T0 + 3 * DAY))
    assert prov.calls == [((), T0, T0 + 3 * DAY, ())]  # Provider asserts a list


def test_cache_clear_while_another_thread_fetches(store: Any) -> None:
    prov = Provider()
    entered, release = threading.Event(), threading.Event()

    def held(symbols: list[Any], start: Any, end: Any) -> pd.DataFrame:
        out = prov(symbols, start, end)
        if "HOLD" in symbols:
            entered.set()
            assert release.wait(5)
        return out

    get = batched(held, store)
    get(["A"], T0, T0 + 4 * DAY)
    box: dict[str, Any] = {}
    members = ["A", "HOLD"]

    def run() -> None:
        box["answer"] = get(members, T0, T0 + 6 * DAY)

    t = threading.Thread(target=run)
    t.start()
    assert entered.wait(5)
    get.cache_clear()
    release.set()
    t.join()
    want = oracle(prov.frame(members, T0, T0 + 6 * DAY), members, T0, T0 + 6 * DAY)
    same(box["answer"], want)
    same(get(members, T0, T0 + 6 * DAY), want)


def test_async_one_members_schema_conflict_keeps_the_others_rows() -> None:
    prov = Provider()

    async def api(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        frame = prov(symbols, start, end)
        if "B" in symbols:
            close = frame["close"].astype(object)
            close[np.asarray(frame["symbol"] == "B")] = "n/a"
            frame["close"] = close
        return frame

    get = range_cached(batch="symbols", by="symbol", step="1D", settle=False, store=MemoryStore())(
        api
    )

    async def main() -> None:
        await get(["A"], T0, T0 + 3 * DAY)
        await get(["B"], T0, T0 + 3 * DAY)
        with pytest.raises(Exception, match="dtype"):
            await get(["A", "B"], T0, T0 + 6 * DAY)
        n = len(prov.calls)
        await get(["B"], T0, T0 + 6 * DAY)
        assert len(prov.calls) == n

    asyncio.run(main())


def test_an_empty_member_list_is_a_counted_provider_call() -> None:
    prov = Provider()
    get = batched(prov, MemoryStore())
    get([], T0, T0)
    assert get.cache_info().provider_calls == 1


@pytest.mark.parametrize("max_concurrency", [1, 4])
def test_a_provider_calling_its_own_batched_function_for_other_members(
    max_concurrency: int,
) -> None:
    """An index's bars are its constituents' mean, fetched through the same function."""
    prov = Provider()
    members = [f"S{i}" for i in range(80)]  # many keys: any shared lock would show

    def api(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        parts = [prov([s for s in symbols if s != "INDEX"], start, end)]
        if "INDEX" in symbols:
            parts.append(index_rows(get(members, start, end)))
        return pd.concat(parts)

    def index_rows(constituents: pd.DataFrame) -> pd.DataFrame:
        mean = constituents.groupby(level=0)["close"].mean()
        out = pd.DataFrame({"symbol": pd.Series("INDEX", index=mean.index, dtype=object)})
        out["close"] = mean
        return out

    get = batched(api, MemoryStore(), max_concurrency=max_concurrency)
    got: dict[str, Any] = {}
    # A member of the outer call (not a constituent: the nested call would wait
    # for the outer one, which waits for it; docs/batch.md).
    outer = ["INDEX", "X"]
    t = threading.Thread(target=lambda: got.update(a=get(outer, T0, T0 + 3 * DAY)), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "deadlocked"
    raw = pd.concat(
        [prov.frame(["X"], T0, T0 + 3 * DAY), index_rows(prov.frame(members, T0, T0 + 3 * DAY))]
    )
    same(got["a"], oracle(raw, outer, T0, T0 + 3 * DAY))


def test_live_edges_fetched_at_different_times_expire_per_member(store: Any) -> None:
    live = Live()
    get = batched(live, store, settle="1D", ttl="1h", clock=live.clock)
    lo, hi = T0, T0 + 9 * DAY
    get(["A"], lo, hi)  # A's live bar fetched at 15:00
    live.now += pd.Timedelta(minutes=45)
    get(["B"], lo, hi)  # B's at 15:45
    live.now += pd.Timedelta(minutes=30)  # 16:15: A's expired, B's not
    live.calls.clear()
    members = ["B", "A"]
    got = get(members, lo, hi)
    asked = list(live.calls)
    assert [c[0] for c in asked] == [("A",)], asked
    assert asked[0][1] >= lo + 8 * DAY
    # B is served its provisional bar as fetched at 15:45 (within ttl), A's is fresh.
    b_then = live.now
    live.now = b_then - pd.Timedelta(minutes=30)
    want_b = oracle(live(["B"], lo, hi), ["B"], lo, hi)
    live.now = b_then
    want_a = oracle(live(["A"], lo, hi), ["A"], lo, hi)
    same(got, pd.concat([want_b, want_a]))


_window = st.tuples(
    st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=4),
    st.integers(0, 20),
    st.integers(0, 8),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(windows=st.lists(_window, min_size=1, max_size=6), hour=st.sampled_from([0, 5, 23]))
def test_batched_calls_ask_what_each_members_own_call_asks(
    windows: list[tuple[list[str], int, int]], hour: int
) -> None:
    """Any sequence of batched calls: exact answers, and for every member exactly the
    ranges an unbatched cached function would have asked, call for call."""
    prov = Provider(hour=hour)
    get = batched(prov, MemoryStore())
    spans = [(members, T0 + a * DAY, T0 + (a + n) * DAY) for members, a, n in windows]
    for members, lo, hi in spans:
        distinct = list(dict.fromkeys(members))
        same(get(members, lo, hi), oracle(prov.frame(distinct, lo, hi), distinct, lo, hi))
    ref = alone(
        lambda: Provider(hour=hour), [(list(dict.fromkeys(m)), lo, hi) for m, lo, hi in spans]
    )
    for m in "ABCD":
        assert prov.asked(m) == ref.asked(m), m
