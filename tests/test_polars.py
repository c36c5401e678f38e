"""polars.DataFrame results (issue 10): the cached answer equals the uncached one
under ``polars.testing.assert_frame_equal`` (dtypes, column order, time zone),
through MemoryStore and ParquetStore, and a reopened ParquetStore answers alike."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pl = pytest.importorskip("polars")
from polars.testing import assert_frame_equal  # noqa: E402

from rangememo import (  # noqa: E402
    InvalidResult,
    MemoryStore,
    ParquetStore,
    ResultTypeError,
    SchemaMismatchError,
    range_cached,
)

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
DAY = dt.timedelta(days=1)
ENUM = pl.Enum(["lo", "mid", "hi"])


@pytest.fixture(params=["memory", "parquet"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def new_store(kind: str, path: Path) -> Any:
    return MemoryStore() if kind == "memory" else ParquetStore(path / "cache")


def days(start: dt.datetime, end: dt.datetime, tz: str | None, closed: str) -> Any:
    """The day stamps a bar API answers for ``[start, end]`` (``closed``)."""
    stamps = pl.datetime_range(start, end, "1d", closed=closed, eager=True, time_zone=tz)
    return stamps.alias("ts")


def bars(ts: Any) -> Any:
    """A frame of many dtypes whose every value follows from its row's stamp.

    The position column is not first, so column order is checked too.
    """
    day = ts.dt.day()
    return pl.DataFrame(
        [
            day.cast(pl.Int32).alias("n"),
            ts,
            (day.cast(pl.Float32) / 4).alias("f32"),
            day.cast(pl.String).alias("s"),
            (day % 3).cast(pl.String).cast(pl.Categorical).alias("cat"),
            (day % 3).replace_strict({0: "lo", 1: "mid", 2: "hi"}, return_dtype=ENUM).alias("e"),
            pl.Series("null_i64", [None if d % 2 else d for d in day], pl.Int64),
            day.map_elements(lambda d: list(range(d % 4)), return_dtype=pl.List(pl.Int16)).alias(
                "lst"
            ),
            (day % 2 == 0).alias("b"),
            ts.dt.date().alias("d"),
        ]
    )


class Provider:
    """Counts calls; answers bars for the asked days (tz ``tz``, end per ``closed``)."""

    def __init__(self, tz: str | None, closed: str = "both") -> None:
        self.tz, self.closed = tz, closed
        self.calls: list[tuple[dt.datetime, dt.datetime]] = []

    def __call__(self, symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        self.calls.append((start, end))
        return bars(days(start, end, self.tz, self.closed))


def cached(provider: Callable[..., Any], store: Any, **options: Any) -> Any:
    options.setdefault("namespace", "tests.polars.bars")
    return range_cached(key="symbol", step="1D", index="ts", store=store, **options)(provider)


@pytest.mark.parametrize("tz", [NY, UTC], ids=["new_york", "utc"])
def test_overlap_fetches_only_the_new_days(kind: str, tz: ZoneInfo, tmp_path: Path) -> None:
    provider = Provider(str(tz))
    get = cached(provider, new_store(kind, tmp_path))
    first = get("X", dt.datetime(2024, 3, 1, tzinfo=tz), dt.datetime(2024, 3, 15, tzinfo=tz))
    second = get("X", dt.datetime(2024, 3, 8, tzinfo=tz), dt.datetime(2024, 3, 22, tzinfo=tz))
    plain = bars(
        days(
            dt.datetime(2024, 3, 8, tzinfo=tz), dt.datetime(2024, 3, 22, tzinfo=tz), str(tz), "both"
        )
    )
    assert_frame_equal(second, plain)
    assert len(first) == 15 and second.columns[:2] == ["n", "ts"]
    assert len(provider.calls) == 2
    assert provider.calls[1][0] == dt.datetime(2024, 3, 16, tzinfo=tz)  # across the DST change
    again = get("X", dt.datetime(2024, 3, 1, tzinfo=tz), dt.datetime(2024, 3, 22, tzinfo=tz))
    assert len(provider.calls) == 2
    assert again.schema["ts"] == pl.Datetime("us", str(tz))
    assert_frame_equal(again, pl.concat([first, second.slice(8)]))


async def test_async_provider(kind: str, tmp_path: Path) -> None:
    calls: list[dt.datetime] = []

    async def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        calls.append(start)
        return bars(days(start, end, "UTC", "both"))

    get = cached(fetch, new_store(kind, tmp_path))
    await get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 10, tzinfo=UTC))
    got = await get("X", dt.datetime(2024, 1, 5, tzinfo=UTC), dt.datetime(2024, 1, 20, tzinfo=UTC))
    plain = await fetch(
        "X", dt.datetime(2024, 1, 5, tzinfo=UTC), dt.datetime(2024, 1, 20, tzinfo=UTC)
    )
    assert_frame_equal(got, plain)
    assert calls[1] == dt.datetime(2024, 1, 11, tzinfo=UTC)


def test_reopened_parquet_store_answers_alike(tmp_path: Path) -> None:
    """A new store object on the same directory reads the rows back in polars dtypes."""
    provider = Provider("America/New_York")
    lo, hi = dt.datetime(2024, 10, 20, tzinfo=NY), dt.datetime(2024, 11, 10, tzinfo=NY)
    first = cached(provider, ParquetStore(tmp_path / "c"))("X", lo, hi)
    again = Provider("America/New_York")
    got = cached(again, ParquetStore(tmp_path / "c"))("X", lo, hi)
    assert again.calls == []
    assert_frame_equal(got, first)
    assert_frame_equal(got, bars(days(lo, hi, "America/New_York", "both")))


def test_reopened_store_in_a_fresh_process(tmp_path: Path) -> None:
    """Another interpreter reads the stored key back: same schema, same values."""
    provider = Provider("UTC")
    lo, hi = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 31, tzinfo=UTC)
    first = cached(provider, ParquetStore(tmp_path / "c"))("X", lo, hi)
    code = (
        "import datetime as dt, sys, polars as pl\n"
        "from rangememo import ParquetStore, range_cached\n"
        "def f(symbol, start, end): raise AssertionError('asked the provider')\n"
        f"get = range_cached(key='symbol', step='1D', index='ts', namespace='tests.polars.bars', "
        f"store=ParquetStore({str(tmp_path / 'c')!r}))(f)\n"
        "u = dt.UTC\n"
        "out = get('X', dt.datetime(2024, 1, 1, tzinfo=u), dt.datetime(2024, 1, 31, tzinfo=u))\n"
        f"out.write_ipc({str(tmp_path / 'out.arrow')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert_frame_equal(pl.read_ipc(tmp_path / "out.arrow"), first)


def test_date_column_and_date_bounds(kind: str, tmp_path: Path) -> None:
    calls: list[dt.date] = []

    def fetch(symbol: str, start: dt.date, end: dt.date) -> Any:
        calls.append(start)
        d = pl.date_range(start, end, "1d", eager=True).alias("day")
        return pl.DataFrame([pl.Series("v", [x.toordinal() for x in d], pl.Float64), d])

    get = range_cached(
        key="symbol", index="day", namespace="tests.polars.days", store=new_store(kind, tmp_path)
    )(fetch)
    get("X", dt.date(2024, 2, 1), dt.date(2024, 2, 10))
    got = get("X", dt.date(2024, 2, 5), dt.date(2024, 2, 29))
    assert_frame_equal(got, fetch("X", dt.date(2024, 2, 5), dt.date(2024, 2, 29)))
    assert calls[1] == dt.date(2024, 2, 11) and got.schema["day"] == pl.Date


def test_int_axis(kind: str, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []

    def fetch(key: str, start: int, end: int) -> Any:
        calls.append((start, end))
        seq = pl.int_range(start, end, eager=True, dtype=pl.UInt32).alias("seq")
        return pl.DataFrame([seq, (seq * 2).cast(pl.Int8).alias("twice")])

    get = range_cached(
        key="key",
        index="seq",
        closed="left",
        namespace="tests.polars.seq",
        store=new_store(kind, tmp_path),
    )(fetch)
    get("k", 0, 40)
    got = get("k", 20, 60)
    assert calls == [(0, 40), (40, 60)]
    assert_frame_equal(got, fetch("k", 20, 60))


def test_holes_are_fetched_and_merged(kind: str, tmp_path: Path) -> None:
    provider = Provider("UTC")
    get = cached(provider, new_store(kind, tmp_path))

    def at(d: int) -> dt.datetime:
        return dt.datetime(2024, 5, d, tzinfo=UTC)

    get("X", at(3), at(6))
    get("X", at(12), at(15))
    got = get("X", at(1), at(20))
    assert sorted(provider.calls[2:]) == [(at(1), at(2)), (at(7), at(11)), (at(16), at(20))]
    assert_frame_equal(got, bars(days(at(1), at(20), "UTC", "both")))


def test_closed_left(kind: str, tmp_path: Path) -> None:
    provider = Provider(None, closed="left")
    get = cached(provider, new_store(kind, tmp_path), closed="left")
    get("X", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 10))
    got = get("X", dt.datetime(2024, 1, 5), dt.datetime(2024, 1, 15))
    assert provider.calls[1] == (dt.datetime(2024, 1, 10), dt.datetime(2024, 1, 15))
    assert_frame_equal(
        got, bars(days(dt.datetime(2024, 1, 5), dt.datetime(2024, 1, 15), None, "left"))
    )
    assert got["ts"].dt.day().to_list() == list(range(5, 15))


def test_duplicate_stamps_at_the_boundary_are_kept_once(kind: str, tmp_path: Path) -> None:
    """Three trades share each stamp; the shared edge day is neither lost nor doubled."""

    def trades(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        ts = days(start, end, "UTC", "both")
        stamps = pl.concat([ts, ts, ts]).sort()
        seq = pl.int_range(0, len(stamps), eager=True) % 3
        return pl.DataFrame([stamps, (stamps.dt.day() * 10 + seq).alias("id")])

    get = cached(trades, new_store(kind, tmp_path))
    get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 5, tzinfo=UTC))
    lo, hi = dt.datetime(2024, 1, 5, tzinfo=UTC), dt.datetime(2024, 1, 9, tzinfo=UTC)
    got = get("X", lo, hi)
    assert_frame_equal(got, trades("X", lo, hi))
    assert got["id"].to_list()[:4] == [50, 51, 52, 60]


def test_empty_answer_keeps_its_schema(kind: str, tmp_path: Path) -> None:
    calls = 0

    def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        nonlocal calls
        calls += 1
        return bars(days(start, end, "UTC", "both")).clear()

    get = cached(fetch, new_store(kind, tmp_path))
    lo, hi = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 9, tzinfo=UTC)
    first = get("X", lo, hi)
    again = get("X", lo, hi)
    assert calls == 1
    assert_frame_equal(first, fetch("X", lo, hi))
    assert_frame_equal(again, fetch("X", lo, hi))


def test_empty_answer_without_columns_then_rows(kind: str, tmp_path: Path) -> None:
    """``pl.DataFrame()`` covers its range; later rows set the key's schema."""

    def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        if end < dt.datetime(2024, 1, 10, tzinfo=UTC):
            return pl.DataFrame()
        return bars(days(max(start, dt.datetime(2024, 1, 10, tzinfo=UTC)), end, "UTC", "both"))

    calls: list[dt.datetime] = []

    def counted(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        calls.append(start)
        return fetch(symbol, start, end)

    get = cached(counted, new_store(kind, tmp_path))
    lo = dt.datetime(2024, 1, 1, tzinfo=UTC)
    empty = get("X", lo, dt.datetime(2024, 1, 5, tzinfo=UTC))
    assert_frame_equal(empty, pl.DataFrame())
    hi = dt.datetime(2024, 1, 20, tzinfo=UTC)
    got = get("X", lo, hi)
    assert calls[1] == dt.datetime(2024, 1, 6, tzinfo=UTC)
    assert_frame_equal(got, fetch("X", lo, hi))


def test_a_changed_dtype_is_a_clear_error(kind: str, tmp_path: Path) -> None:
    """Int32 then Int64 for one column: SchemaMismatchError naming it (no silent upcast)."""
    wide = False

    def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        out = bars(days(start, end, "UTC", "both"))
        return out.with_columns(pl.col("n").cast(pl.Int64)) if wide else out

    get = cached(fetch, new_store(kind, tmp_path))
    get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 9, tzinfo=UTC))
    wide = True
    with pytest.raises(SchemaMismatchError, match=r"'n': Int32 -> Int64"):
        get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 19, tzinfo=UTC))


def test_enum_with_other_categories_is_an_error(kind: str, tmp_path: Path) -> None:
    other = False

    def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        out = bars(days(start, end, "UTC", "both"))
        if other:
            out = out.with_columns(
                pl.col("e").cast(pl.String).cast(pl.Enum(["lo", "mid", "hi", "x"]))
            )
        return out

    get = cached(fetch, new_store(kind, tmp_path))
    get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 9, tzinfo=UTC))
    other = True
    with pytest.raises(SchemaMismatchError, match="'e'"):
        get("X", dt.datetime(2024, 1, 5, tzinfo=UTC), dt.datetime(2024, 1, 19, tzinfo=UTC))


def test_a_time_unit_change_is_cast_back(kind: str, tmp_path: Path) -> None:
    """The position column at ns after us: the same instants, kept at the stored unit."""
    unit = "us"

    def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        out = bars(days(start, end, "UTC", "both"))
        return out.with_columns(pl.col("ts").dt.cast_time_unit(unit))

    get = cached(fetch, new_store(kind, tmp_path))
    get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 9, tzinfo=UTC))
    unit = "ns"
    got = get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 19, tzinfo=UTC))
    unit = "us"
    plain = fetch("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 19, tzinfo=UTC))
    assert_frame_equal(got, plain)


def test_added_column_shows_nulls_on_stored_rows(kind: str, tmp_path: Path) -> None:
    extra = False

    def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        out = bars(days(start, end, "UTC", "both"))
        return out.with_columns(pl.lit(1.5).alias("new")) if extra else out

    get = cached(fetch, new_store(kind, tmp_path))
    get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 9, tzinfo=UTC))
    extra = True
    got = get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 19, tzinfo=UTC))
    assert got.columns[-1] == "new" and got.schema["new"] == pl.Float64
    assert got["new"].to_list() == [None] * 9 + [1.5] * 10


def test_bad_position_columns(tmp_path: Path) -> None:
    def naive(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        return bars(days(start.replace(tzinfo=None), end.replace(tzinfo=None), None, "both"))

    get = cached(naive, MemoryStore())
    with pytest.raises(InvalidResult, match="tz-naive"):
        get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 9, tzinfo=UTC))

    def nulls(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        return pl.DataFrame({"ts": [start, None]})

    with pytest.raises(InvalidResult, match="nulls"):
        cached(nulls, MemoryStore())(
            "X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 9, tzinfo=UTC)
        )
    no_index = range_cached(key="symbol", step="1D", store=MemoryStore())(naive)
    with pytest.raises(InvalidResult, match="index="):
        no_index("X", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 9))


def test_import_rangememo_does_not_import_polars(tmp_path: Path) -> None:
    code = (
        "import sys, json, datetime as dt, pandas as pd\n"
        "from rangememo import MemoryStore, ParquetStore, range_cached\n"
        "def f(k, start, end):\n"
        "    return pd.DataFrame({'v': [1.0]}, index=pd.DatetimeIndex([start], name='ts'))\n"
        f"for s in (MemoryStore(), ParquetStore({str(tmp_path / 'c')!r})):\n"
        "    get = range_cached(key='k', step='1D', store=s)(f)\n"
        "    get('a', dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 3))\n"
        "print(json.dumps('polars' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=6),
    st.sampled_from(["memory", "parquet"]),
)
def test_random_calls_equal_uncached_and_never_refetch(
    calls: list[tuple[int, int]], kind: str
) -> None:
    """Any sequence of int ranges: each answer equals the provider's; no position asked twice."""
    asked: list[int] = []

    def fetch(key: str, start: int, end: int) -> Any:
        asked.extend(range(start, end))
        seq = pl.int_range(start, end, eager=True, dtype=pl.Int64).alias("seq")
        # Two rows per position, so a boundary row lost or doubled shows.
        seq = pl.concat([seq, seq]).sort()
        return pl.DataFrame([(seq % 7).cast(pl.String).alias("tag"), seq])

    with tempfile.TemporaryDirectory() as tmp:
        store = new_store(kind, Path(tmp))
        get = range_cached(
            key="key", index="seq", closed="left", store=store, namespace="tests.polars.model"
        )(fetch)
        _check_calls(get, fetch, calls, asked)


def _check_calls(get: Any, fetch: Any, calls: list[tuple[int, int]], asked: list[int]) -> None:
    for a, b in calls:
        lo, hi = min(a, b), max(a, b) + 1
        got = get("k", lo, hi)
        before = len(asked)
        plain = fetch("k", lo, hi)
        del asked[before:]
        assert_frame_equal(got, plain)
    assert len(asked) == len(set(asked))


def test_answer_follows_the_bounds_time_zone(kind: str, tmp_path: Path) -> None:
    """A provider answering in its bounds' zone: rows cached from a UTC call show in New York."""
    calls: list[dt.datetime] = []

    def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        calls.append(start)
        return bars(days(start, end, str(start.tzinfo), "both"))

    get = cached(fetch, new_store(kind, tmp_path))
    get("X", dt.datetime(2024, 3, 1, 5, tzinfo=UTC), dt.datetime(2024, 3, 10, 5, tzinfo=UTC))
    lo, hi = dt.datetime(2024, 3, 1, tzinfo=NY), dt.datetime(2024, 3, 20, tzinfo=NY)
    got = get("X", lo, hi)
    assert min(calls[1:]) >= dt.datetime(2024, 3, 10, tzinfo=NY)  # the cached days not asked
    n = len(calls)
    assert_frame_equal(got, fetch("X", lo, hi))
    del calls[n:]
    if kind == "parquet":
        again = cached(fetch, ParquetStore(tmp_path / "cache"))("X", lo, hi)
        assert_frame_equal(again, got)
        assert len(calls) == n


def test_many_pieces_of_two_schemas_merge_past_the_chunk_bound(kind: str, tmp_path: Path) -> None:
    """60 disjoint one-day pieces, every other one with an extra column: more pieces than
    the chunk bound (48), so pieces of different schemas share chunks; answers stay exact."""

    def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        out = bars(days(start, end, "UTC", "both"))
        odd = out["ts"].dt.ordinal_day() % 2 == 1
        return out.with_columns(pl.when(odd).then(pl.col("n") * 2).alias("extra"))

    def wide(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        out = fetch(symbol, start, end)
        return out if start.timetuple().tm_yday % 2 else out.drop("extra")

    get = cached(wide, new_store(kind, tmp_path))
    first = dt.datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(0, 120, 2):  # one-day pieces with one-day holes between
        get("X", first + i * DAY, first + i * DAY)
    for i in range(1, 120, 2):  # the holes, each its own piece
        get("X", first + i * DAY, first + i * DAY)
    lo, hi = first + 10 * DAY, first + 100 * DAY
    got = get("X", lo, hi)
    # The pieces without "extra" are the days where the full answer has nulls there.
    assert_frame_equal(got, fetch("X", lo, hi))


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
def test_more_dtypes_round_trip(kind: str, unit: str, tmp_path: Path) -> None:
    """Duration, Time, Decimal, Struct, Array, Binary, small ints, a Null column; a ns/ms axis."""

    def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        ts = days(start, end, "Europe/London", "both").dt.cast_time_unit(unit)
        day = ts.dt.day()
        return pl.DataFrame([ts]).with_columns(
            (pl.col("ts") - pl.col("ts").dt.truncate("1mo")).alias("since"),
            pl.col("ts").dt.time().alias("clock"),
            (day.cast(pl.Decimal(12, 3)) / 8).alias("dec"),
            pl.struct(a=day.cast(pl.UInt8), b=day.cast(pl.String)).alias("st"),
            pl.concat_arr(day.cast(pl.Int16), (day * 2).cast(pl.Int16)).alias("arr"),
            day.cast(pl.String).cast(pl.Binary).alias("bin"),
            pl.lit(None).alias("nothing"),
        )

    get = cached(fetch, new_store(kind, tmp_path))
    london = ZoneInfo("Europe/London")
    get("X", dt.datetime(2024, 3, 20, tzinfo=london), dt.datetime(2024, 4, 5, tzinfo=london))
    lo, hi = dt.datetime(2024, 3, 25, tzinfo=london), dt.datetime(2024, 4, 12, tzinfo=london)
    got = get("X", lo, hi)
    assert_frame_equal(got, fetch("X", lo, hi))
    if kind == "parquet":
        again = cached(fetch, ParquetStore(tmp_path / "cache"))("X", lo, hi)
        assert_frame_equal(again, fetch("X", lo, hi))


def test_int_positions_beyond_int64_are_refused() -> None:
    def fetch(key: str, start: int, end: int) -> Any:
        return pl.DataFrame({"seq": pl.Series([start, 2**63 + 5], dtype=pl.UInt64)})

    get = range_cached(key="key", index="seq", closed="left", store=MemoryStore())(fetch)
    with pytest.raises(InvalidResult, match="int64 range"):
        get("k", 0, 10)


def test_a_polars_key_refuses_a_pandas_answer(kind: str, tmp_path: Path) -> None:
    pandas_next = False

    def fetch(symbol: str, start: dt.datetime, end: dt.datetime) -> Any:
        out = bars(days(start, end, "UTC", "both"))
        return out.to_pandas() if pandas_next else out

    get = cached(fetch, new_store(kind, tmp_path))
    get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 9, tzinfo=UTC))
    pandas_next = True
    with pytest.raises(ResultTypeError, match="returned a DataFrame where it returned a polars"):
        get("X", dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 19, tzinfo=UTC))


def test_compacted_parquet_key_reads_back_alike(tmp_path: Path) -> None:
    """Thirty one-day writes, merged into one part as they land: same answer after reopening."""
    provider = Provider("UTC")
    store = ParquetStore(tmp_path / "c")
    get = cached(provider, store)
    first = dt.datetime(2024, 11, 1, tzinfo=UTC)
    for i in range(30):
        get("X", first + i * DAY, first + i * DAY)
    store.compact()
    assert len(list((tmp_path / "c").rglob("*.parquet"))) == 1  # the merge ran on polars rows
    again = Provider("UTC")
    got = cached(again, ParquetStore(tmp_path / "c"))("X", first, first + 29 * DAY)
    assert again.calls == []
    assert_frame_equal(got, bars(days(first, first + 29 * DAY, "UTC", "both")))


def test_from_arrow_gives_the_template_schema() -> None:
    """A part whose Arrow types lost polars' own (plain int64, strings, no Enum metadata)
    reads back in the template's order and dtypes."""
    import pyarrow as pa

    from rangememo._core.polars import from_arrow

    template = pl.DataFrame(
        schema={"ts": pl.Datetime("ms", "UTC"), "n": pl.Int32, "e": ENUM, "s": pl.String}
    )
    table = pa.table(
        {
            "s": pa.array(["a", "b"], pa.string()),
            "e": pa.array(["hi", "lo"], pa.large_string()),
            "n": pa.array([1, 2], pa.int64()),
            "ts": pa.array([0, 86_400_000], pa.timestamp("ms", tz="UTC")),
        }
    )
    got = from_arrow(table, template)
    assert got.schema == template.schema
    assert got["e"].to_list() == ["hi", "lo"] and got["n"].to_list() == [1, 2]
