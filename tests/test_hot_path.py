"""The partial-hit and hit paths build the answer once, and stay exact (issue 8, item 5).

Every answer is compared with the uncached function's; the live-update shape (a key
grown a bar at a time, each call asking the last bars) is the one the fast path serves.
"""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal, assert_series_equal

import rangememo._core.rows
from rangememo import MemoryStore, ParquetStore, range_cached
from rangememo._core.results import adapter_for
from rangememo._core.rows import Rows, normalize
from rangememo._engine.binding import Binder
from rangememo.testing import make_bars

MIN = pd.Timedelta("1min")
T0 = pd.Timestamp("2024-03-01")


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path / "cache")


def cached(fn: Any, store: Any, **options: Any) -> Any:
    """``fn`` cached on ``store`` (closures named by their qualname: a persistent store asks)."""
    options.setdefault("step", "1min")
    return range_cached(key="symbol", store=store, namespace=fn.__qualname__, **options)(fn)


def minute_bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    return make_bars(symbol, start, end, "1min", skip_weekends=False)


def live_updates(get: Any, raw: Any, first: int, last: int, window: int = 30) -> None:
    """Each call asks the last ``window`` bars up to a new one: the answer is the uncached one."""
    for k in range(first, last):
        s, e = T0 + (k - window + 1) * MIN, T0 + k * MIN
        got, want = get("X", s, e), raw("X", s, e)
        if isinstance(want, pa.Table):
            assert got.equals(want), (k, got, want)
        elif isinstance(want, pd.Series):
            assert_series_equal(got, want, check_exact=True)
        else:
            assert_frame_equal(got, want, check_exact=True)


# -- exactness of the live-update path --------------------------------------------


def test_live_updates_equal_the_uncached_answer(store: Any) -> None:
    """A key grown bar by bar answers each last-30-bars call exactly as uncached."""
    calls: list[Any] = []

    def provider(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append((start, end))
        return minute_bars(symbol, start, end)

    get = cached(provider, store, readahead=None)  # one fetch per new bar, to count them

    get("X", T0, T0 + 499 * MIN)
    live_updates(get, minute_bars, 500, 560)
    assert len(calls) == 1 + 60  # one fetch per new bar, nothing refetched


def tz_bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    frame = minute_bars(symbol, start.tz_localize(None), end.tz_localize(None))
    frame.index = frame.index.tz_localize("America/New_York").rename("ts")
    frame["side"] = pd.Categorical(np.where(frame["volume"] % 2 == 0, "buy", "sell"))
    frame["note"] = frame["volume"].astype(str)
    return frame


def test_tz_aware_categorical_and_string_columns_stay_exact(store: Any) -> None:
    """tz-aware index, a categorical and a str column: each live answer is the uncached one."""
    get = cached(tz_bars, store)
    ny = "America/New_York"
    get("X", T0.tz_localize(ny), (T0 + 299 * MIN).tz_localize(ny))

    def ask(symbol: str, s: Any, e: Any) -> pd.DataFrame:
        return get(symbol, s.tz_localize(ny), e.tz_localize(ny))

    def uncached(symbol: str, s: Any, e: Any) -> pd.DataFrame:
        return tz_bars(symbol, s.tz_localize(ny), e.tz_localize(ny))

    live_updates(ask, uncached, 300, 330)


def test_series_results_stay_exact(store: Any) -> None:
    """A Series provider grown bar by bar answers exactly as uncached."""

    def closes(symbol: str, start: Any, end: Any) -> pd.Series:
        return minute_bars(symbol, start, end)["close"]

    get = cached(closes, store)
    get("X", T0, T0 + 299 * MIN)
    live_updates(get, closes, 300, 330)


def test_table_results_stay_exact(store: Any) -> None:
    """A pyarrow.Table provider (position in a column) answers exactly as uncached."""

    def table(symbol: str, start: Any, end: Any) -> pa.Table:
        return pa.Table.from_pandas(minute_bars(symbol, start, end).reset_index(names="t"))

    get = cached(table, store, index="t")
    get("X", T0, T0 + 299 * MIN)
    live_updates(get, table, 300, 330)


def test_position_column_with_a_fresh_range_index(store: Any) -> None:
    """A provider answering with a 0..n-1 index and a time column keeps that shape."""

    def rows(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return minute_bars(symbol, start, end).reset_index(names="t")

    get = cached(rows, store, index="t")
    get("X", T0, T0 + 299 * MIN)
    live_updates(get, rows, 300, 330)


def test_two_gaps_in_one_call(store: Any) -> None:
    """A call with two new gaps (commits one after the other) answers exactly."""
    get = cached(minute_bars, store)
    get("X", T0, T0 + 99 * MIN)
    get("X", T0 + 110 * MIN, T0 + 119 * MIN)
    s, e = T0 + 90 * MIN, T0 + 130 * MIN  # gaps [100, 110) and [120, 131)
    assert_frame_equal(get("X", s, e), minute_bars("X", s, e), check_exact=True)


def date_range_rows(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    idx = pd.date_range(start, end, freq="D", name="t")
    return pd.DataFrame({"v": (idx.day * 3).astype("int64")}, index=idx)


def test_freq_survives_appends_across_holes(store: Any) -> None:
    """An index with a ``freq`` keeps it however small pieces with holes were merged."""
    get = cached(date_range_rows, store, step="1D")
    day = pd.Timedelta("1D")
    for a, b in [(0, 5), (12, 12), (3, 9), (20, 21), (1, 14), (0, 22), (13, 30)]:
        s, e = T0 + a * day, T0 + b * day
        assert_frame_equal(get("X", s, e), date_range_rows("X", s, e))


# -- the caller owns its answer ---------------------------------------------------------


def mutate(frame: pd.DataFrame) -> None:
    frame.iloc[:, 0] = -1.0
    frame.index.name = "renamed"
    frame["extra"] = 1
    frame.sort_index(ascending=False, inplace=True)


def test_mutating_a_partial_hit_answer_leaves_the_cache_alone(store: Any) -> None:
    """Mutating what a one-gap partial hit returned never changes a later answer."""
    get = cached(minute_bars, store)
    get("X", T0, T0 + 99 * MIN)
    for k in range(100, 110):
        s, e = T0 + (k - 29) * MIN, T0 + k * MIN
        mutate(get("X", s, e))
        assert_frame_equal(get("X", s, e), minute_bars("X", s, e), check_exact=True)
    assert_frame_equal(get("X", T0, T0 + 109 * MIN), minute_bars("X", T0, T0 + 109 * MIN))


def test_mutating_a_hit_answer_leaves_the_cache_alone(store: Any) -> None:
    """Mutating a warm hit's answer (values, index name, columns) changes nothing stored."""
    get = cached(minute_bars, store)
    get("X", T0, T0 + 999 * MIN)
    s, e = T0 + 500 * MIN, T0 + 529 * MIN
    mutate(get("X", s, e))
    mutate(get("X", T0, T0 + 999 * MIN))  # the whole key: still a new object
    assert_frame_equal(get("X", s, e), minute_bars("X", s, e), check_exact=True)


def test_mutating_the_provider_result_after_the_call_leaves_the_cache_alone() -> None:
    """The provider's own frame changed after it returned (it kept a reference): no effect."""
    kept: list[pd.DataFrame] = []

    @range_cached(key="symbol", step="1min", store=MemoryStore())
    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        out = minute_bars(symbol, start, end)
        kept.append(out)
        return out

    get("X", T0, T0 + 99 * MIN)
    get("X", T0 + 71 * MIN, T0 + 100 * MIN)
    for frame in kept:
        frame.iloc[:, 0] = -1.0
    s, e = T0 + 71 * MIN, T0 + 100 * MIN
    assert_frame_equal(get("X", s, e), minute_bars("X", s, e), check_exact=True)


# -- snapshot answers with the fast path --------------------------------------------------


def test_a_change_between_view_and_commit_is_not_read_into_the_answer() -> None:
    """The key changes while its gap is fetched: the answer is still the view plus the gap.

    Here the provider itself invalidates rows the call's view holds; the answer
    must not come from the rows as the commit left them (they lack those rows).
    """
    invalidate = threading.Event()
    holder: dict[str, Any] = {}

    def provider(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        if invalidate.is_set():
            invalidate.clear()
            holder["get"].invalidate("X", start=T0 + 80 * MIN, end=T0 + 90 * MIN)
        return minute_bars(symbol, start, end)

    get = cached(provider, MemoryStore())
    holder["get"] = get
    get("X", T0, T0 + 99 * MIN)
    invalidate.set()
    s, e = T0 + 71 * MIN, T0 + 100 * MIN
    assert_frame_equal(get("X", s, e), minute_bars("X", s, e), check_exact=True)


# -- the pieces --------------------------------------------------------------------------


def test_small_neighbours_merge_and_copies_per_append_stay_bounded() -> None:
    """Appends keep the newest rows in few chunks, copying at most SMALL_BYTES' worth each."""
    frame = minute_bars("X", T0, T0 + 9_999 * MIN)
    adapter = adapter_for(frame, None)
    from rangememo._core.axis import axis_of

    axis = axis_of(T0, T0, "1min", "both")
    positions = adapter.positions(frame, axis)
    stored = Rows(adapter)
    big = 5_000
    stored.replace(
        int(positions[0]),
        int(positions[big]),
        normalize(
            adapter, positions[:big], frame.iloc[:big], int(positions[0]), int(positions[big])
        ),
    )
    copied = [0]
    concat = adapter.concat

    def counted(parts: list[Any]) -> Any:
        copied[0] += sum(len(p) for p in parts)
        return concat(parts)

    adapter.concat = counted  # type: ignore[method-assign]
    row_bytes = adapter.nbytes(frame.iloc[:1]) + 8
    per_append = rangememo._core.rows.SMALL_BYTES // row_bytes + 2
    for k in range(big, big + 3_000):
        lo, hi = int(positions[k]), int(positions[k]) + 1
        stored.replace(
            lo, hi, normalize(adapter, positions[k : k + 1], frame.iloc[k : k + 1], lo, hi)
        )
        # The last 30 rows lie in at most two chunks.
        assert len(stored.window(int(positions[k - 29]), hi)) <= 2
    assert copied[0] <= 3_000 * per_append
    assert_frame_equal(
        adapter.concat(stored.window(int(positions[0]), int(positions[big + 2_999]) + 1)),
        frame.iloc[: big + 3_000],
    )


def f_plain(symbol: str, start: Any, end: Any, timeframe: str = "D", n: int = 1) -> None: ...


def f_special(
    symbol: str, /, start: Any, end: Any, *rest: Any, tf: str = "D", **kw: Any
) -> None: ...


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("A", 1, 2), {}),
    (("A", 1, 2, "H"), {}),
    (("A", 1, 2, "H", 5), {}),
    (("A",), {"start": 1, "end": 2}),
    ((), {"symbol": "A", "start": 1, "end": 2, "n": 3}),
    (("A", 1), {"end": 2, "timeframe": "W"}),
    (("A", 1, 2), {"start": 3}),  # start twice
    (("A", 1, 2), {"nope": 3}),  # unknown keyword
    (("A", 1), {}),  # end missing
    (("A", 1, 2, "H", 5, 6), {}),  # too many
    (("A", 1, 2, "H"), {"n": 2, "timeframe": "W"}),  # timeframe twice
]


@pytest.mark.parametrize("fn", [f_plain, f_special])
@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_binding_equals_signature_bind(fn: Any, args: Any, kwargs: Any) -> None:
    """The fast binding gives exactly Signature.bind's arguments, or its TypeError."""
    sig = inspect.signature(fn)
    try:
        want = sig.bind(*args, **kwargs)
        want.apply_defaults()
    except TypeError:
        with pytest.raises(TypeError):
            Binder(fn, "symbol", "start", "end").bind(args, kwargs)
        return
    got = Binder(fn, "symbol", "start", "end").bind(args, kwargs)
    assert list(got.arguments.items()) == list(want.arguments.items())
    assert (got.args, got.kwargs) == (want.args, want.kwargs)


@given(
    st.lists(st.integers(), max_size=6),
    st.dictionaries(
        st.sampled_from(["symbol", "start", "end", "timeframe", "n", "x"]), st.integers()
    ),
)
def test_binding_equals_signature_bind_for_any_call(
    args: list[int], kwargs: dict[str, int]
) -> None:
    """Any positional/keyword mix binds as Signature.bind does (or fails as it does)."""
    sig = inspect.signature(f_plain)
    binder = Binder(f_plain, "symbol", "start", "end")
    try:
        want = sig.bind(*args, **kwargs)
        want.apply_defaults()
    except TypeError:
        with pytest.raises(TypeError):
            binder.bind(tuple(args), kwargs)
        return
    assert list(binder.bind(tuple(args), kwargs).arguments.items()) == list(want.arguments.items())
