"""Batched functions: one provider call for many members (``batch=``, ``by=``, ``max_batch=``).

The oracle is the provider itself: a batched call must answer what the
uncached provider answers for the same members and range, with the rows put
in the caller's member order (a boolean mask per member, not the code under
test's split), and never ask for a member's range twice.
"""

from __future__ import annotations

import asyncio
import pickle
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rangememo import CacheWarning, InvalidOption, MemoryStore, ParquetStore, range_cached
from rangememo._errors import ResultTypeError

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-03-01", tz="UTC")


def bars(symbols: Sequence[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """What a long-format daily-bar API answers: a ``symbol`` column, one row per day."""
    days = pd.date_range(start, end, freq="D", name="timestamp")
    frames = [
        pd.DataFrame(
            {
                "symbol": s,
                "close": days.day.to_numpy(dtype="float64") + 100.0 * len(s) + 0.25,
                "volume": (days.day_of_year.to_numpy() * 7 + len(s)).astype("int64"),
            },
            index=days,
        )
        for s in symbols
        if s != "DELISTED"  # a member the provider has no rows for
    ]
    if not frames:
        return pd.DataFrame(
            {
                "symbol": pd.Series(dtype="str"),
                "close": pd.Series(dtype="float64"),
                "volume": pd.Series(dtype="int64"),
            },
            index=pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("us"),
        )
    return pd.concat(frames)


def alpaca(symbols: Sequence[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Alpaca's shape: a ``(symbol, timestamp)`` MultiIndex."""
    return bars(symbols, start, end).set_index("symbol", append=True).swaplevel(0, 1)


def expected(raw: pd.DataFrame, members: Sequence[str], level: bool = False) -> pd.DataFrame:
    """The uncached answer, its rows in the caller's member order."""
    labels = raw.index.get_level_values(0) if level else raw["symbol"]
    parts = [raw[np.asarray(labels == m)] for m in members]
    parts = [p for p in parts if len(p)] or [raw.iloc[0:0]]
    return pd.concat(parts)


def same(got: Any, want: Any) -> None:
    """Equal in values, dtypes, index (names, tz) and order; ``freq`` is not kept by any
    cached answer (the single-key tests compare the same way)."""
    pd.testing.assert_frame_equal(got, want, check_freq=False)


class Recorder:
    """A provider that records each call's members and range."""

    def __init__(self, shape: Callable[..., pd.DataFrame] = bars) -> None:
        self.shape = shape
        self.calls: list[tuple[tuple[str, ...], pd.Timestamp, pd.Timestamp]] = []
        self.fail_for: set[str] = set()

    def __call__(self, symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        assert isinstance(symbols, list), symbols  # the provider gets a list of members
        self.calls.append((tuple(symbols), pd.Timestamp(start), pd.Timestamp(end)))
        if self.fail_for & set(symbols):
            raise ConnectionError(f"503 for {sorted(self.fail_for & set(symbols))}")
        return self.shape(symbols, start, end)


def make(rec: Recorder, store: Any = None, **options: Any) -> Any:
    def get_bars(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        return rec(symbols, start, end)

    opts: dict[str, Any] = {
        "batch": "symbols",
        "by": "symbol",
        "step": "1D",
        "settle": False,
        "namespace": "bars",
    }
    opts.update(options)
    return range_cached(store=store if store is not None else MemoryStore(), **opts)(get_bars)


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path / "cache")


def test_members_missing_the_same_gap_share_one_call(store: Any) -> None:
    rec = Recorder()
    get = make(rec, store)
    a = get(["AAPL", "MSFT"], T0, T0 + 9 * DAY)
    same(a, expected(bars(["AAPL", "MSFT"], T0, T0 + 9 * DAY), ["AAPL", "MSFT"]))
    assert rec.calls == [(("AAPL", "MSFT"), T0, T0 + 9 * DAY)]
    # MSFT and AAPL miss days 10-14; GOOG misses everything: two calls, not three.
    members = ["MSFT", "GOOG", "AAPL"]
    b = get(members, T0 + 5 * DAY, T0 + 14 * DAY)
    same(b, expected(bars(members, T0 + 5 * DAY, T0 + 14 * DAY), members))
    assert sorted(rec.calls[1:]) == sorted(
        [
            (("MSFT", "AAPL"), T0 + 10 * DAY, T0 + 14 * DAY),
            (("GOOG",), T0 + 5 * DAY, T0 + 14 * DAY),
        ]
    )
    assert get.cache_info().provider_calls == 3
    # Everything is covered now: no call at all, the same answer.
    c = get(members, T0 + 5 * DAY, T0 + 14 * DAY)
    same(c, b)
    assert len(rec.calls) == 3


def test_alpaca_multiindex_comes_back_in_its_shape(store: Any) -> None:
    rec = Recorder(alpaca)
    get = make(rec, store)
    get(["AAPL"], T0, T0 + 3 * DAY)
    members = ["TSLA", "AAPL"]
    got = get(members, T0, T0 + 6 * DAY)
    want = expected(alpaca(members, T0, T0 + 6 * DAY), members, level=True)
    same(got, want)
    assert list(got.index.names) == ["symbol", "timestamp"]
    assert got.index.get_level_values("timestamp").tz is not None
    assert len(rec.calls) == 3  # AAPL's tail and TSLA's whole range are different gaps


def test_max_batch_caps_members_per_call() -> None:
    rec = Recorder()
    get = make(rec, max_batch=2)
    members = ["A", "BB", "CCC", "DDDD", "EEEEE"]
    got = get(members, T0, T0 + 2 * DAY)
    same(got, expected(bars(members, T0, T0 + 2 * DAY), members))
    assert [len(c[0]) for c in rec.calls] == [2, 2, 1]
    assert sorted(m for c in rec.calls for m in c[0]) == sorted(members)


def test_a_member_without_rows_is_covered(store: Any) -> None:
    rec = Recorder()
    get = make(rec, store)
    members = ["AAPL", "DELISTED"]
    got = get(members, T0, T0 + 4 * DAY)
    same(got, expected(bars(members, T0, T0 + 4 * DAY), members))
    assert get.coverage(symbols="DELISTED")  # covered, with no rows
    again = get(["DELISTED"], T0, T0 + 4 * DAY)
    assert len(rec.calls) == 1
    assert again.empty and list(again.columns) == ["symbol", "close", "volume"]


def test_an_empty_answer_of_no_shape_covers_everyone() -> None:
    calls: list[list[str]] = []

    @range_cached(batch="symbols", by="symbol", step="1D", settle=False, store=MemoryStore())
    def get(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        calls.append(symbols)
        return pd.DataFrame()  # a provider that says "nothing" without a schema

    first = get(["A", "B"], T0, T0 + DAY)
    second = get(["B", "A"], T0, T0 + DAY)
    assert first.empty and second.empty
    assert calls == [["A", "B"]]


def test_rows_for_members_not_asked_for_warn_and_are_dropped() -> None:
    def lower(symbols: Sequence[str], start: Any, end: Any) -> pd.DataFrame:
        return bars([s.lower() for s in symbols], start, end)  # "aapl" for "AAPL"

    rec = Recorder(lower)
    get = make(rec)
    with pytest.warns(CacheWarning, match="'aapl'"):
        got = get(["AAPL"], T0, T0 + DAY)
    assert got.empty


def test_async_parquet_reopened_answers_without_calls(tmp_path: Any) -> None:
    rec = Recorder()

    async def get_bars(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        await asyncio.sleep(0)
        return rec(symbols, start, end)

    def build() -> Any:
        return range_cached(
            batch="symbols",
            by="symbol",
            step="1D",
            settle=False,
            store=ParquetStore(tmp_path),
            namespace="bars",
        )(get_bars)

    members = ["NVDA", "AMD", "INTC"]

    async def main() -> tuple[pd.DataFrame, pd.DataFrame]:
        first = await build()(members, T0, T0 + 20 * DAY)
        fresh = build()  # another process, as far as state goes
        return first, await fresh(list(reversed(members)), T0 + 3 * DAY, T0 + 17 * DAY)

    first, second = asyncio.run(main())
    same(first, expected(bars(members, T0, T0 + 20 * DAY), members))
    rev = list(reversed(members))
    same(second, expected(bars(rev, T0 + 3 * DAY, T0 + 17 * DAY), rev))
    assert len(rec.calls) == 1


def test_coverage_and_invalidate_work_per_member(store: Any) -> None:
    rec = Recorder()
    get = make(rec, store)
    get(["AAPL", "MSFT"], T0, T0 + 9 * DAY)
    assert get.coverage("AAPL") == get.coverage(symbols="MSFT") != []
    get.invalidate("MSFT", start=T0 + 2 * DAY, end=T0 + 3 * DAY)
    got = get(["AAPL", "MSFT"], T0, T0 + 9 * DAY)
    assert rec.calls[1:] == [(("MSFT",), T0 + 2 * DAY, T0 + 3 * DAY)]
    same(got, expected(bars(["AAPL", "MSFT"], T0, T0 + 9 * DAY), ["AAPL", "MSFT"]))


def test_methods_sync_and_async() -> None:
    rec = Recorder()

    class Client:
        def __init__(self, feed: str) -> None:
            self.feed = feed

        @range_cached(
            batch="symbols",
            by="symbol",
            step="1D",
            settle=False,
            store=MemoryStore(),
            key=("symbols",),
        )
        def bars(self, symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
            return rec(symbols, start, end)

        @range_cached(batch="symbols", by="symbol", step="1D", settle=False, store=MemoryStore())
        async def abars(self, symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
            return rec(symbols, start, end)

    client = Client("iex")
    members = ["X", "YY"]
    want = expected(bars(members, T0, T0 + 3 * DAY), members)
    same(client.bars(members, T0, T0 + 3 * DAY), want)
    same(client.bars(members, T0, T0 + 3 * DAY), want)
    assert len(rec.calls) == 1
    same(asyncio.run(client.abars(members, T0, T0 + 3 * DAY)), want)
    assert len(rec.calls) == 2
    client.bars.prefetch(["ZZZ"], T0, T0 + 3 * DAY)
    assert rec.calls[-1][0] == ("ZZZ",)


def test_a_failed_call_keeps_what_the_others_fetched(store: Any) -> None:
    rec = Recorder()
    get = make(rec, store, max_batch=1)
    rec.fail_for = {"BAD"}
    with pytest.raises(ConnectionError, match="BAD"):
        get(["GOOD", "BAD", "FINE"], T0, T0 + 4 * DAY)
    assert get.cache_info().errors == 1
    rec.fail_for = set()
    before = len(rec.calls)
    members = ["GOOD", "BAD", "FINE"]
    got = get(members, T0, T0 + 4 * DAY)
    assert rec.calls[before:] == [(("BAD",), T0, T0 + 4 * DAY)]  # only what failed
    same(got, expected(bars(members, T0, T0 + 4 * DAY), members))


def test_duplicate_members_count_once_and_an_empty_list_goes_to_the_provider() -> None:
    rec = Recorder()
    get = make(rec)
    got = get(["AAPL", "MSFT", "AAPL"], T0, T0 + DAY)
    same(got, expected(bars(["AAPL", "MSFT"], T0, T0 + DAY), ["AAPL", "MSFT"]))
    assert rec.calls == [(("AAPL", "MSFT"), T0, T0 + DAY)]
    empty = get([], T0, T0 + DAY)
    assert empty.empty and rec.calls[-1][0] == ()


def test_categorical_columns_stay_categorical_across_members() -> None:
    def cats(symbols: Sequence[str], start: Any, end: Any) -> pd.DataFrame:
        df = bars(symbols, start, end)
        df["symbol"] = df["symbol"].astype("category")
        df["venue"] = pd.Categorical([f"V{len(s)}" for s in df["symbol"]])
        return df

    rec = Recorder(cats)
    get = make(rec)
    get(["A"], T0, T0 + 2 * DAY)  # stored with categories ["A"] and ["V1"]
    got = get(["A", "BBB"], T0, T0 + 2 * DAY)
    assert isinstance(got["venue"].dtype, pd.CategoricalDtype)
    assert isinstance(got["symbol"].dtype, pd.CategoricalDtype)
    want = pd.concat([cats(["A"], T0, T0 + 2 * DAY), cats(["BBB"], T0, T0 + 2 * DAY)])
    assert got["venue"].astype(str).tolist() == want["venue"].astype(str).tolist()
    assert got["close"].tolist() == want["close"].tolist()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"batch": "tickers"}, "tickers"),
        ({"batch": "start"}, "start"),
        ({"batch": "symbols", "by": None}, "by="),
        ({"batch": None, "by": "symbol"}, "batch="),
        ({"max_batch": 0}, "max_batch=0"),
        ({"max_batch": True}, "max_batch=True"),
        ({"key": "timeframe"}, "leaves out"),
    ],
)
def test_bad_options_are_refused_at_decoration(options: dict[str, Any], match: str) -> None:
    def get(symbols: list[str], start: Any, end: Any, timeframe: str = "D") -> pd.DataFrame:
        return bars(symbols, start, end)

    opts: dict[str, Any] = {"batch": "symbols", "by": "symbol", "store": MemoryStore()}
    opts.update(options)
    with pytest.raises(InvalidOption, match=match):
        range_cached(**opts)(get)


def test_bad_members_are_refused_naming_them() -> None:
    rec = Recorder()
    get = make(rec)
    with pytest.raises(InvalidOption, match="'AAPL'"):
        get("AAPL", T0, T0 + DAY)
    with pytest.raises(InvalidOption, match=r"\['x'\]"):
        get([["x"]], T0, T0 + DAY)
    assert rec.calls == []


def test_an_answer_without_the_by_column_is_an_error_and_stores_nothing(store: Any) -> None:
    def wide(symbols: Sequence[str], start: Any, end: Any) -> pd.DataFrame:
        return bars(symbols, start, end).drop(columns="symbol")

    rec = Recorder(wide)
    get = make(rec, store)
    with pytest.raises(ResultTypeError, match="'symbol'"):
        get(["AAPL"], T0, T0 + DAY)
    assert get.coverage("AAPL") == []


def test_pickles_by_reference_and_by_value() -> None:
    cloudpickle = pytest.importorskip("cloudpickle")
    rec = Recorder()
    get = make(rec)
    copy = pickle.loads(cloudpickle.dumps(get))
    assert type(copy) is type(get) and copy.batcher is not None
    got = copy(["AAPL"], T0, T0 + DAY)
    same(got, expected(bars(["AAPL"], T0, T0 + DAY), ["AAPL"]))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.lists(
                st.sampled_from(["A", "BB", "CCC", "DELISTED", "EEEE"]), min_size=1, max_size=5
            ),
            st.integers(0, 40),
            st.integers(0, 15),
            st.sampled_from([None, 1, 2]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_sequence_answers_exactly_and_never_fetches_twice(
    requests: list[tuple[list[str], int, int, int | None]],
) -> None:
    rec = Recorder()
    fetched: dict[Hashable, set[pd.Timestamp]] = {}
    store = MemoryStore()
    gets = {mb: make(rec, store, max_batch=mb, namespace="prop") for mb in (None, 1, 2)}
    for members, lo, width, mb in requests:
        start, end = T0 + lo * DAY, T0 + (lo + width) * DAY
        n = len(rec.calls)
        got = gets[mb](members, start, end)
        distinct = list(dict.fromkeys(members))
        same(got, expected(bars(distinct, start, end), distinct))
        for symbols, a, b in rec.calls[n:]:
            assert mb is None or len(symbols) <= mb
            # A member that never had rows is asked again for its boundary
            # day: an empty answer says nothing of where its bars would lie
            # (the single-key rule, docs/decisions.md), so it claims only what
            # it asked.
            for s in (s for s in symbols if s != "DELISTED"):
                days = set(pd.date_range(a, b, freq="D"))
                assert not days & fetched.get(s, set()), (s, a, b)
                fetched.setdefault(s, set()).update(days)


def test_no_warning_on_a_plain_batched_call() -> None:
    rec = Recorder()
    get = make(rec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get(["AAPL", "MSFT"], T0, T0 + 5 * DAY)
        get(["AAPL", "MSFT", "DELISTED"], T0 + 2 * DAY, T0 + 8 * DAY)


def test_readahead_on_a_marching_batch_keeps_members_together() -> None:
    # The seed backtest for three symbols with default planning (readahead
    # "auto"): the march is each member's own, so every member reads ahead
    # alike and every provider call still carries all three.
    rec = Recorder()
    get = make(rec)
    members = ["AAPL", "MSFT", "GOOG"]
    for d in range(62):
        now = T0 + d * DAY
        for lo in (now, now - 30 * DAY):
            same(get(members, lo, now), expected(bars(members, lo, now), members))
    assert len(rec.calls) <= 5, rec.calls
    assert all(sorted(c[0]) == sorted(members) for c in rec.calls), rec.calls
    assert get.cache_info().rows_ahead > 0
