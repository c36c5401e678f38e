"""Adversarial review of batched calls and polars results, on MemoryStore and ParquetStore.

Every expected value comes from the deterministic fake provider itself (its rows
depend only on the member and the position, never on the range it is asked for),
put in the caller's member order where a batched call documents that order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rangememo import MemoryStore, ParquetStore, range_cached

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-03-01", tz="UTC")
NO_ROWS = "DELISTED"  # a member the provider has no rows for


@pytest.fixture(params=["memory", "parquet"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def new_store(kind: str, path: Path) -> Any:
    return MemoryStore() if kind == "memory" else ParquetStore(path / "cache")


def same(got: Any, want: Any) -> None:
    pd.testing.assert_frame_equal(got, want, check_freq=False)


def in_order(raw: pd.DataFrame, members: Sequence[Any], level: bool = False) -> pd.DataFrame:
    """The provider's answer with its rows in the caller's member order."""
    labels = raw.index.get_level_values(0) if level else raw["symbol"]
    parts = [raw[np.asarray(labels == m)] for m in members]
    parts = [p for p in parts if len(p)] or [raw.iloc[0:0]]
    return pd.concat(parts)


def long_bars(symbols: Sequence[Any], start: Any, end: Any) -> pd.DataFrame | None:
    """A long daily-bar answer (a ``symbol`` column); ``None`` when no member has rows."""
    days = pd.date_range(start, end, freq="D", name="timestamp")
    frames = [
        pd.DataFrame(
            {
                "symbol": s,
                "close": days.day.to_numpy(dtype="float64") + 10.0 * len(str(s)),
                "volume": (days.day_of_year.to_numpy() * 7).astype("int64"),
            },
            index=days,
        )
        for s in symbols
        if s != NO_ROWS
    ]
    return pd.concat(frames) if frames else None


def level_bars(symbols: Sequence[Any], start: Any, end: Any) -> pd.DataFrame | None:
    """Alpaca's ``(symbol, timestamp)`` shape of :func:`long_bars`."""
    raw = long_bars(symbols, start, end)
    return None if raw is None else raw.set_index("symbol", append=True).swaplevel(0, 1)


class Recorder:
    def __init__(self, shape: Callable[..., Any]) -> None:
        self.shape = shape
        self.calls: list[tuple[tuple[Any, ...], pd.Timestamp, pd.Timestamp]] = []

    def __call__(self, symbols: list[Any], start: Any, end: Any) -> Any:
        self.calls.append((tuple(symbols), pd.Timestamp(start), pd.Timestamp(end)))
        return self.shape(symbols, start, end)


def batched(rec: Recorder, store: Any, **options: Any) -> Any:
    def get_bars(symbols: list[Any], start: Any, end: Any) -> Any:
        return rec(symbols, start, end)

    opts: dict[str, Any] = {
        "batch": "symbols",
        "by": "symbol",
        "step": "1D",
        "settle": False,
        "namespace": "adv.bars",
    }
    opts.update(options)
    return range_cached(store=store, **opts)(get_bars)


# -- batched calls ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [long_bars, level_bars], ids=["column", "level"])
def test_a_provider_answering_none_for_every_member(shape: Any, kind: str, tmp_path: Path) -> None:
    rec = Recorder(shape)
    get = batched(rec, new_store(kind, tmp_path))
    assert get([NO_ROWS], T0, T0 + 4 * DAY) is shape([NO_ROWS], T0, T0 + 4 * DAY)
    assert get([NO_ROWS], T0, T0 + 4 * DAY) is None
    assert len(rec.calls) == 1


def test_a_member_stored_as_none_joined_with_a_member_with_rows() -> None:
    rec = Recorder(long_bars)
    get = batched(rec, MemoryStore())
    assert get([NO_ROWS], T0, T0 + 4 * DAY) is None
    members = [NO_ROWS, "AAPL"]
    same(get(members, T0, T0 + 4 * DAY), long_bars(members, T0, T0 + 4 * DAY))


def test_async_provider_answering_none() -> None:
    calls: list[list[str]] = []

    async def get_bars(symbols: list[str], start: Any, end: Any) -> Any:
        calls.append(symbols)
        await asyncio.sleep(0)
        return long_bars(symbols, start, end)

    get = range_cached(batch="symbols", by="symbol", step="1D", settle=False, store=MemoryStore())(
        get_bars
    )
    assert asyncio.run(get([NO_ROWS], T0, T0 + DAY)) is None
    assert len(calls) == 1


def test_a_shared_long_answer_with_a_range_index(kind: str, tmp_path: Path) -> None:
    def api(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        raw = long_bars(symbols, start, end)
        assert raw is not None
        return raw.reset_index()

    rec = Recorder(api)
    get = batched(rec, new_store(kind, tmp_path), index="timestamp")
    get(["AAPL", "MSFT"], T0, T0 + 9 * DAY)  # one answer for both members
    lo, hi = T0 + 2 * DAY, T0 + 5 * DAY
    same(get(["MSFT"], lo, hi), api(["MSFT"], lo, hi))
    members = ["MSFT", "AAPL"]
    want = in_order(api(members, lo, hi), members).reset_index(drop=True)
    same(get(members, lo, hi), want)
    assert len(rec.calls) == 1


def test_a_categorical_member_level_keeps_every_member(kind: str, tmp_path: Path) -> None:
    def api(symbols: list[str], start: Any, end: Any) -> pd.DataFrame:
        raw = long_bars(symbols, start, end)
        assert raw is not None
        raw["symbol"] = raw["symbol"].astype(pd.CategoricalDtype(symbols))
        return raw.set_index("symbol", append=True).swaplevel(0, 1)

    rec = Recorder(api)
    get = batched(rec, new_store(kind, tmp_path))
    get(["AAPL"], T0, T0 + 4 * DAY)
    get(["MSFT"], T0, T0 + 4 * DAY)
    got = get(["AAPL"], T0, T0 + 4 * DAY)  # from the cache
    assert got.index.get_level_values(0).tolist() == ["AAPL"] * 5
    same(got, api(["AAPL"], T0, T0 + 4 * DAY))
    assert len(rec.calls) == 2


def test_int_and_str_members_that_print_alike(kind: str, tmp_path: Path) -> None:
    """``1`` and ``"1"`` are two series, also through a reopened ParquetStore."""
    members: list[Any] = [1, "1"]
    lo, hi = T0, T0 + 4 * DAY
    rec = Recorder(long_bars)
    get = batched(rec, new_store(kind, tmp_path))
    same(get(members, lo, hi), in_order(long_bars(members, lo, hi), members))  # type: ignore[arg-type]
    again = get if kind == "memory" else batched(rec, new_store(kind, tmp_path))
    same(again(members, lo, hi), in_order(long_bars(members, lo, hi), members))  # type: ignore[arg-type]
    same(again([1], lo, hi)[["close", "volume"]], long_bars([1], lo, hi)[["close", "volume"]])  # type: ignore[index]
    assert len(rec.calls) == 1


def test_batched_and_single_calls_share_one_series(kind: str, tmp_path: Path) -> None:
    """A per-symbol function with the batched one's namespace reads and extends its
    series (and the other way round), through a store reopened in between."""
    rec = Recorder(long_bars)
    singles: list[tuple[str, pd.Timestamp, pd.Timestamp]] = []

    def one(symbols: str, start: Any, end: Any) -> Any:
        singles.append((symbols, start, end))
        return long_bars([symbols], start, end)

    def single(store: Any) -> Any:
        return range_cached(
            key="symbols", step="1D", settle=False, namespace="adv.bars", store=store
        )(one)

    get = batched(rec, new_store(kind, tmp_path))
    get(["AAPL", "MSFT"], T0, T0 + 9 * DAY)
    store = new_store(kind, tmp_path) if kind == "parquet" else get._store
    s = single(store)
    same(s("AAPL", T0 + 2 * DAY, T0 + 12 * DAY), long_bars(["AAPL"], T0 + 2 * DAY, T0 + 12 * DAY))
    assert [(lo, hi) for _, lo, hi in singles] == [(T0 + 10 * DAY, T0 + 12 * DAY)]
    again = batched(rec, store)
    members = ["MSFT", "AAPL"]
    want = in_order(long_bars(members, T0, T0 + 12 * DAY), members)  # type: ignore[arg-type]
    same(again(members, T0, T0 + 12 * DAY), want)
    assert rec.calls[1:] == [(("MSFT",), T0 + 10 * DAY, T0 + 12 * DAY)]


def test_rows_at_utc_midnight_asked_in_two_zones(kind: str, tmp_path: Path) -> None:
    """The provider answers fixed instants in the bounds' zone; members stored from
    New York bounds and fetched for UTC bounds join exactly, in either zone."""

    def api(symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        raw = long_bars(symbols, start.tz_convert("UTC").ceil("D"), end.tz_convert("UTC"))
        assert raw is not None
        raw = raw[(raw.index >= start) & (raw.index <= end)]
        raw.index = raw.index.tz_convert(start.tz)
        return raw

    rec = Recorder(api)
    get = batched(rec, new_store(kind, tmp_path))
    ny = pd.Timestamp("2024-03-05", tz="America/New_York")
    get(["AAPL"], ny, ny + 8 * DAY)  # across the US DST change
    utc = pd.Timestamp("2024-03-05", tz="UTC")
    for members, lo, hi in [
        (["AAPL", "MSFT"], utc, utc + 5 * DAY),
        (["MSFT", "AAPL"], ny, ny + 5 * DAY),
    ]:
        same(get(members, lo, hi), in_order(api(members, lo, hi), members))
    n = len(rec.calls)
    same(
        get(["MSFT", "AAPL"], ny, ny + 5 * DAY),
        in_order(api(["MSFT", "AAPL"], ny, ny + 5 * DAY), ["MSFT", "AAPL"]),
    )
    assert len(rec.calls) == n


# -- polars -------------------------------------------------------------------------------

UTC = dt.UTC
PDAY = dt.timedelta(days=1)
P0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
HOLES = [6, 7, 13, 14]  # days without rows


def _pl() -> Any:
    return pytest.importorskip("polars")


def pl_frame(start: dt.datetime, end: dt.datetime) -> Any:
    pl = _pl()
    ts = pl.datetime_range(start, end, "1d", eager=True, time_zone="UTC").alias("ts")
    out = pl.DataFrame([ts]).with_columns(pl.col("ts").dt.day().cast(pl.Int32).alias("n"))
    return out.filter(~pl.col("ts").dt.day().is_in(HOLES))


class PolarsRecorder:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.calls: list[tuple[dt.datetime, dt.datetime]] = []

    def __call__(self, symbol: str, start: Any, end: Any) -> Any:
        self.calls.append((start, end))
        return self.fn(symbol, start, end)


def pl_cached(rec: Any, store: Any, **options: Any) -> Any:
    def fetch(symbol: str, start: Any, end: Any) -> Any:
        return rec(symbol, start, end)

    options.setdefault("step", "1D")
    opts = {"key": "symbol", "index": "ts", "settle": False, "namespace": "adv.pl", **options}
    return range_cached(store=store, **opts)(fetch)


EMPTIES: dict[str, Callable[[Any], Any]] = {
    "null_dtypes": lambda f: _pl().DataFrame({"ts": [], "n": []}),
    "other_int_width": lambda f: f.with_columns(f["n"].cast(_pl().Int64)),
    "no_columns": lambda f: _pl().DataFrame(),
    "position_only": lambda f: f.select("ts"),
    "ns_position": lambda f: f.with_columns(f["ts"].dt.cast_time_unit("ns")),
}


@pytest.mark.parametrize("empty", list(EMPTIES))
def test_polars_empty_answers_of_other_schemas(empty: str, kind: str, tmp_path: Path) -> None:
    """Ranges without rows answered by empty frames of other schemas (even before the
    first rows): ranges with rows answer exactly, empty ones with no rows, nothing twice."""

    def fetch(symbol: str, start: Any, end: Any) -> Any:
        out = pl_frame(start, end)
        return out if len(out) else EMPTIES[empty](out)

    rec = PolarsRecorder(fetch)
    get = pl_cached(rec, new_store(kind, tmp_path))
    asks = [(5, 6), (0, 2), (12, 13), (0, 9), (5, 6), (12, 13), (0, 20), (6, 6)]
    for lo, hi in asks:
        got = get("X", P0 + lo * PDAY, P0 + hi * PDAY)
        want = fetch("X", P0 + lo * PDAY, P0 + hi * PDAY)
        if len(want):
            from polars.testing import assert_frame_equal

            assert_frame_equal(got, want)
        else:
            assert got.height == 0
    asked = sorted((a.day, b.day) for a, b in rec.calls)
    days = [d for a, b in asked for d in range(a, b + 1)]
    assert len(days) == len(set(days)) and set(days) == set(range(1, 22))
    if kind == "parquet":
        from polars.testing import assert_frame_equal

        fresh = PolarsRecorder(fetch)
        again = pl_cached(fresh, new_store(kind, tmp_path))
        assert_frame_equal(again("X", P0, P0 + 20 * PDAY), fetch("X", P0, P0 + 20 * PDAY))
        assert fresh.calls == []


def test_polars_value_columns_of_many_kinds(kind: str, tmp_path: Path) -> None:
    """A naive position with a tz-aware value column, ms units, big UInt64,
    nullable struct and string columns, categoricals with new categories per call."""
    pl = _pl()
    from polars.testing import assert_frame_equal

    def fetch(symbol: str, start: Any, end: Any) -> Any:
        ts = pl.datetime_range(start, end, "1d", eager=True).alias("ts")
        n = pl.col("ts").dt.day()
        return pl.DataFrame([ts]).with_columns(
            pl.col("ts").dt.replace_time_zone("Asia/Kolkata").alias("local"),
            pl.col("ts").dt.cast_time_unit("ms").alias("ms"),
            (n.cast(pl.UInt64) + 2**63).alias("u"),
            pl.when(n > 10).then(n.cast(pl.String)).alias("s"),
            pl.when(n % 2 == 0).then(pl.struct(x=n)).alias("st"),
            pl.format("c{}", n).cast(pl.Categorical).alias("cat"),
        )

    rec = PolarsRecorder(fetch)
    path_store = new_store(kind, tmp_path)
    get = pl_cached(rec, path_store)
    n0 = dt.datetime(2024, 1, 1)
    get("X", n0, n0 + 4 * PDAY)
    get("X", n0 + 10 * PDAY, n0 + 14 * PDAY)
    assert_frame_equal(get("X", n0, n0 + 20 * PDAY), fetch("X", n0, n0 + 20 * PDAY))
    assert_frame_equal(
        get("X", n0 + 3 * PDAY, n0 + 11 * PDAY), fetch("X", n0 + 3 * PDAY, n0 + 11 * PDAY)
    )
    assert len(rec.calls) == 4
    if kind == "parquet":
        again = pl_cached(rec, new_store(kind, tmp_path))
        assert_frame_equal(again("X", n0, n0 + 20 * PDAY), fetch("X", n0, n0 + 20 * PDAY))
        assert len(rec.calls) == 4


def test_polars_refresh_invalidate_cached_and_max_span(kind: str, tmp_path: Path) -> None:
    from polars.testing import assert_frame_equal

    rec = PolarsRecorder(lambda s, a, b: pl_frame(a, b))
    get = pl_cached(rec, new_store(kind, tmp_path), max_span="5D")
    get("X", P0 + 3 * PDAY, P0 + 4 * PDAY)
    assert_frame_equal(get("X", P0, P0 + 20 * PDAY), pl_frame(P0, P0 + 20 * PDAY))
    assert all(b - a < 5 * PDAY for a, b in rec.calls)
    assert_frame_equal(
        get.refresh("X", P0 + 2 * PDAY, P0 + 8 * PDAY), pl_frame(P0 + 2 * PDAY, P0 + 8 * PDAY)
    )
    get.invalidate("X", start=P0 + 3 * PDAY, end=P0 + 5 * PDAY)
    n = len(rec.calls)
    assert_frame_equal(get("X", P0, P0 + 20 * PDAY), pl_frame(P0, P0 + 20 * PDAY))
    assert rec.calls[n:] == [(P0 + 3 * PDAY, P0 + 5 * PDAY)]
    assert_frame_equal(
        get.cached("X", P0 + 1 * PDAY, P0 + 18 * PDAY), pl_frame(P0 + PDAY, P0 + 18 * PDAY)
    )
    report = get.audit("X")
    assert report.revised == () and report.rows_checked == len(pl_frame(P0, P0 + 20 * PDAY))


def test_polars_async_overlapping_tasks(kind: str, tmp_path: Path) -> None:
    from polars.testing import assert_frame_equal

    calls: list[tuple[str, Any, Any]] = []

    async def fetch(symbol: str, start: Any, end: Any) -> Any:
        calls.append((symbol, start, end))
        await asyncio.sleep(0)
        return pl_frame(start, end)

    get = range_cached(
        key="symbol",
        step="1D",
        index="ts",
        settle=False,
        store=new_store(kind, tmp_path),
        namespace="adv.pla",
    )(fetch)

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                get("X", P0, P0 + 9 * PDAY),
                get("X", P0 + 5 * PDAY, P0 + 15 * PDAY),
                get("Y", P0, P0 + 3 * PDAY),
            )
        )

    a, b, c = asyncio.run(main())
    assert_frame_equal(a, pl_frame(P0, P0 + 9 * PDAY))
    assert_frame_equal(b, pl_frame(P0 + 5 * PDAY, P0 + 15 * PDAY))
    assert_frame_equal(c, pl_frame(P0, P0 + 3 * PDAY))
    x_days = sorted(d for sym, s, e in calls if sym == "X" for d in range(s.day, e.day + 1))
    assert x_days == list(range(1, 17))
    assert [(s.day, e.day) for sym, s, e in calls if sym == "Y"] == [(1, 4)]
