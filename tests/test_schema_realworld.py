"""Schemas as real providers give them: per-response categories, empty answers of any
shape, routine widening, and timezone objects from other libraries.

Every case runs on a MemoryStore and on a ParquetStore, which is then reopened (a new
ParquetStore on the same directory) to prove the on-disk round trip. The reference is
always the uncached function.
"""

from __future__ import annotations

import datetime as dt
import warnings
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from rangememo import CacheWarning, MemoryStore, ParquetStore, SchemaMismatchError, range_cached
from rangememo.testing.store_contract import assert_same

D = pd.Timestamp
DAY = pd.Timedelta("1D")
EXCHANGES = ["N", "Q", "A", "P", "Z", "B", "C"]


def day(d: int) -> pd.Timestamp:
    return (D(2024, 1, 1) + (d - 1) * DAY).as_unit("us")


class Stores:
    """A store to cache into, and the same store as a later process would open it."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind, self.root = kind, root
        self.store: Any = MemoryStore() if kind == "memory" else ParquetStore(root, durable=False)

    def reopen(self) -> Any:
        if self.kind == "memory":
            return self.store
        return ParquetStore(self.root, durable=False)


@pytest.fixture(params=["memory", "parquet"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    return Stores(request.param, tmp_path)


class Provider:
    """A JSON-style provider: one record per day, dtypes inferred per response."""

    def __init__(self, build: Callable[[list[pd.Timestamp]], pd.DataFrame | None]) -> None:
        self.build = build
        self.calls: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def __call__(self, symbol: str, start: Any, end: Any) -> Any:
        self.calls.append((D(start), D(end)))
        return self.raw(symbol, start, end)

    def raw(self, symbol: str, start: Any, end: Any) -> Any:
        days = list(pd.date_range(D(start), D(end), freq="D", unit="us"))
        return self.build(days)


def records(days: list[pd.Timestamp], **columns: Callable[[int], Any]) -> pd.DataFrame:
    """A frame as ``pd.DataFrame.from_records`` of JSON rows gives it."""
    rows = [
        {"time": t, **{name: fn((t - day(1)) // DAY + 1) for name, fn in columns.items()}}
        for t in days
    ]
    if not rows:
        return pd.DataFrame(columns=["time", *columns]).set_index("time")
    return pd.DataFrame.from_records(rows).set_index("time")


def cache(stores: Stores, provider: Provider, store: Any = None) -> Any:
    # readahead=None: these tests are about how pieces of differing schemas merge, and
    # place each piece exactly where a call's range is; readahead would fetch a later
    # piece's rows (and dtypes) together with an earlier call's.
    return range_cached(
        key="symbol",
        step="1D",
        store=store or stores.store,
        namespace="tests.schema",
        readahead=None,
    )(provider)


def check(stores: Stores, provider: Provider, ranges: list[tuple[int, int]]) -> None:
    """Each range, cached, equals the uncached call: here and after reopening the store."""
    for store in (stores.store, stores.reopen()):
        fn = cache(stores, provider, store)
        made = len(provider.calls)
        for a, b in ranges:
            assert_same(fn("X", day(a), day(b)), provider.raw("X", day(a), day(b)))
        assert len(provider.calls) == made, "a covered range was fetched again"


# -- 4. categorical columns ---------------------------------------------------------------


def _exchange(d: int) -> str:
    # Each stretch of days trades on other venues: categories differ per response.
    return EXCHANGES[(d // 5 + d % 2) % len(EXCHANGES)]


def test_categories_differing_per_gap_are_unioned(stores):
    """Per-response categories: no value lost, the union as the uncached call has it."""

    def build(days: list[pd.Timestamp]) -> pd.DataFrame:
        out = records(days, close=lambda d: 100.0 + d, exchange=_exchange)
        return out.astype({"exchange": "category"})

    provider = Provider(build)
    fn = cache(stores, provider)
    for a, b in [(1, 10), (11, 20), (21, 41)]:
        fn("X", day(a), day(b))
    got = fn("X", day(1), day(41))
    assert got["exchange"].notna().all()
    assert_same(got, provider.raw("X", day(1), day(41)))
    # Ranges made of whole pieces. (A range that cuts a piece answers with that
    # piece's categories: each stored piece keeps its own dtypes.)
    check(stores, provider, [(1, 41), (11, 20), (1, 20), (11, 41), (21, 41)])


def test_categories_in_order_of_appearance_union_in_that_order(stores):
    """Unsorted categories (order of appearance) union in order of appearance."""

    def build(days: list[pd.Timestamp]) -> pd.DataFrame:
        out = records(days, exchange=_exchange)
        values = out["exchange"]
        return out.assign(exchange=pd.Categorical(values, categories=pd.unique(values)))

    provider = Provider(build)
    fn = cache(stores, provider)
    for a, b in [(21, 30), (1, 10), (11, 20)]:
        fn("X", day(a), day(b))
    pieces = [provider.raw("X", day(a), day(b)) for a, b in [(1, 10), (11, 20), (21, 30)]]
    union = pd.api.types.union_categoricals([p["exchange"] for p in pieces])
    expected = pd.concat(pieces).assign(
        exchange=pd.Categorical(np.asarray(union), union.categories)
    )
    assert_same(fn("X", day(1), day(30)), expected)
    assert_same(fn("X", day(1), day(30)), provider.raw("X", day(1), day(30)))
    check(stores, provider, [(1, 30), (11, 20), (1, 20), (11, 30)])


def test_ordered_categories_that_differ_are_a_conflict(stores):
    """Ordered categories cannot be unioned: SchemaMismatchError naming the column."""
    flip = {"on": False}

    def build(days: list[pd.Timestamp]) -> pd.DataFrame:
        cats = ["lo", "hi"] if not flip["on"] else ["lo", "mid", "hi"]
        out = records(days, grade=lambda d: "lo")
        return out.assign(grade=pd.Categorical(out["grade"], categories=cats, ordered=True))

    provider = Provider(build)
    fn = cache(stores, provider)
    fn("X", day(1), day(10))
    flip["on"] = True
    with pytest.raises(SchemaMismatchError, match="grade"):
        fn("X", day(1), day(20))
    flip["on"] = False
    check(stores, provider, [(1, 10), (3, 4)])


# -- 7. empty answers in any shape ----------------------------------------------------------

EMPTIES: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "no-columns": pd.DataFrame,
    "columns-only": lambda: pd.DataFrame(columns=["close", "volume"]),
    "float-dtypes": lambda: pd.DataFrame(
        {"close": pd.Series([], dtype="float64"), "volume": pd.Series([], dtype="float64")},
        index=pd.DatetimeIndex([], name="time"),
    ),
    "object-dtypes": lambda: pd.DataFrame(
        {"close": pd.Series([], dtype=object), "volume": pd.Series([], dtype=object)},
        index=pd.Index([], dtype=object, name="time"),
    ),
}


def _quiet_days(empty: Callable[[], Any]) -> Provider:
    """Rows on days 1-10 and 21-30; days 11-20 answer with ``empty()``."""

    def build(days: list[pd.Timestamp]) -> Any:
        days = [t for t in days if not day(11) <= t <= day(20)]
        if not days:
            return empty()
        return records(days, close=lambda d: 10.0 + d, volume=lambda d: 1000 + d)

    return Provider(build)


@pytest.mark.parametrize("shape", list(EMPTIES))
def test_empty_answer_covers_the_range_and_keeps_the_schema(stores, shape):
    """An empty answer of any shape: covered, schema untouched, answers exact."""
    provider = _quiet_days(EMPTIES[shape])
    fn = cache(stores, provider)
    fn("X", day(1), day(10))
    fn("X", day(11), day(20))
    fn("X", day(21), day(30))
    assert len(provider.calls) == 3
    for store in (stores.store, stores.reopen()):
        again = cache(stores, provider, store)
        assert again.coverage("X") == [(day(1), day(30))]
        # The schema is the one of the rows: an empty range answers with it.
        assert_same(again("X", day(12), day(18)), provider.raw("X", day(1), day(10)).iloc[:0])
        assert_same(again("X", day(5), day(25)), provider.raw("X", day(5), day(25)))
        assert_same(again("X", day(1), day(30)), provider.raw("X", day(1), day(30)))
    assert len(provider.calls) == 3


@pytest.mark.parametrize("shape", ["none", "no-columns", "columns-only"])
def test_empty_first_answer_on_a_fresh_key(stores, shape):
    """A fresh key's first answer is empty: covered, the same empty answer, rows later exact."""
    provider = _quiet_days(EMPTIES[shape])
    fn = cache(stores, provider)
    first = fn("X", day(11), day(20))
    expected = provider.raw("X", day(11), day(20))
    if expected is None:
        assert first is None
    else:
        assert_same(first, expected)
    for store in (stores.store, stores.reopen()):
        again = cache(stores, provider, store)
        got = again("X", day(12), day(19))
        assert got is None if expected is None else got.equals(expected)
    assert len(provider.calls) == 1
    fn = cache(stores, provider, stores.reopen())
    assert_same(fn("X", day(1), day(30)), provider.raw("X", day(1), day(30)))
    assert len(provider.calls) == 3  # days 1-10 and 21-30 only
    check(stores, provider, [(1, 30), (5, 25), (21, 30)])


def test_empty_series_and_empty_table_answers(stores):
    """A zero-row Series, or an empty Table of another schema, is 'no rows' too."""

    def series(days: list[pd.Timestamp]) -> pd.Series:
        days = [t for t in days if not day(11) <= t <= day(20)]
        if not days:
            return pd.Series([], dtype=object)
        return records(days, close=lambda d: 1.0 * d)["close"]

    provider = Provider(series)
    fn = cache(stores, provider)
    for a, b in [(1, 10), (11, 20), (21, 30)]:
        fn("X", day(a), day(b))
    check(stores, provider, [(1, 30), (5, 25)])
    for store in (stores.store, stores.reopen()):
        got = cache(stores, provider, store)("X", day(12), day(18))
        assert_same(got, provider.raw("X", day(1), day(10)).iloc[:0])  # the key's schema

    def table(days: list[pd.Timestamp]) -> pa.Table:
        days = [t for t in days if not day(11) <= t <= day(20)]
        if not days:
            return pa.table({"other": pa.array([], pa.string())})
        return pa.Table.from_pandas(records(days, v=lambda d: d).reset_index())

    provider = Provider(table)
    fn = range_cached(
        key="symbol", step="1D", index="time", store=stores.store, namespace="tests.table"
    )(provider)
    for a, b in [(1, 10), (11, 20), (21, 30)]:
        fn("X", day(a), day(b))
    assert len(provider.calls) == 3
    assert_same(fn("X", day(1), day(30)), provider.raw("X", day(1), day(30)))
    assert fn("X", day(12), day(18)).schema.equals(provider.raw("X", day(1), day(2)).schema)


# -- 8. routine schema widening ----------------------------------------------------------------


def _volume(d: int) -> int | None:
    return None if d in (14, 27) else 1000 + d


def test_int_column_with_a_nan_in_a_later_gap_widens(stores):
    """int64, then float64 with a NaN: merged as pd.concat gives; each piece its own dtype."""
    provider = Provider(lambda days: records(days, close=lambda d: 1.5 * d, volume=_volume))
    fn = cache(stores, provider)
    pieces = [(1, 10), (11, 20), (21, 25), (26, 30)]
    for a, b in pieces:
        fn("X", day(a), day(b))
    assert fn("X", day(1), day(10))["volume"].dtype == np.int64  # as uncached
    expected = pd.concat([provider.raw("X", day(a), day(b)) for a, b in pieces])
    assert_same(fn("X", day(1), day(30)), expected)
    assert_same(fn("X", day(1), day(30)), provider.raw("X", day(1), day(30)))
    # Ranges of pieces that had no NaN stay int64, exactly as the uncached call.
    check(stores, provider, [(1, 30), (1, 10), (21, 25), (3, 18), (22, 30), (1, 25)])


def test_all_null_column_in_one_gap_merges(stores):
    """A column all-null (object) in one gap: merged as pd.concat of the pieces gives."""

    def note(d: int) -> str | None:
        return None if 11 <= d <= 20 else f"n{d}"

    def size(d: int) -> float | None:
        return None if 11 <= d <= 20 else d / 4

    provider = Provider(lambda days: records(days, note=note, size=size, v=lambda d: d))
    fn = cache(stores, provider)
    pieces = [(1, 10), (11, 20), (21, 30)]
    for a, b in pieces:
        fn("X", day(a), day(b))
    for a, b in [(1, 30), (5, 15), (15, 25)]:
        parts = [
            provider.raw("X", day(max(a, p)), day(min(b, q)))
            for p, q in pieces
            if p <= b and a <= q
        ]
        assert_same(fn("X", day(a), day(b)), pd.concat(parts))
    check(stores, provider, [(11, 20), (1, 10), (21, 30), (12, 14)])


def test_null_first_then_values_merges(stores):
    """The first gap all-null, later ones with values: merged, nothing raised."""
    provider = Provider(
        lambda days: records(days, v=lambda d: None if d <= 10 else d, w=lambda d: d)
    )
    fn = cache(stores, provider)
    pieces = [(1, 10), (11, 20)]
    for a, b in pieces:
        fn("X", day(a), day(b))
    expected = pd.concat([provider.raw("X", day(a), day(b)) for a, b in pieces])
    assert_same(fn("X", day(1), day(20)), expected)
    check(stores, provider, [(1, 10), (11, 20), (4, 6)])


@pytest.mark.parametrize(
    ("first", "later"),
    [
        (lambda d: d, lambda d: f"s{d}"),  # number, then string
        (lambda d: f"s{d}", lambda d: 1.5 * d),  # string, then number
        (lambda d: d, lambda d: d % 2 == 0),  # int, then bool
        (
            lambda d: D(2024, 1, 1, tz="UTC") + d * DAY,
            lambda d: D(2024, 1, 1, tz="Asia/Tokyo") + d * DAY,
        ),  # a changed timezone
    ],
    ids=["int-to-str", "str-to-float", "int-to-bool", "timezone"],
)
def test_real_conflict_raises_naming_the_column_and_loses_nothing(stores, first, later):
    """String vs number, a changed tz: SchemaMismatchError naming it; old ranges exact."""
    flip = {"on": False}
    provider = Provider(
        lambda days: records(days, x=later if flip["on"] else first, keep=lambda d: d)
    )
    fn = cache(stores, provider)
    fn("X", day(1), day(10))
    fn("X", day(21), day(30))
    flip["on"] = True
    with pytest.raises(SchemaMismatchError, match="'x'"):
        fn("X", day(5), day(25))
    flip["on"] = False
    assert fn.coverage("X") == [(day(1), day(10)), (day(21), day(30))]
    check(stores, provider, [(1, 10), (21, 30), (3, 7)])


# -- 15. timezone objects from other libraries -------------------------------------------------


def _zones() -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [
        ("stdlib-utc", dt.UTC),
        ("stdlib-offset", dt.timezone(dt.timedelta(hours=-5))),
        ("stdlib-named-offset", dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")),
        ("zoneinfo", zoneinfo.ZoneInfo("America/New_York")),
        ("zoneinfo-utc", zoneinfo.ZoneInfo("UTC")),
    ]
    try:
        from pydantic_core import TzInfo

        out += [("pydantic-utc", TzInfo(0)), ("pydantic-offset", TzInfo(-18000))]
    except ImportError:  # pragma: no cover - pydantic is a dev dependency
        pass
    try:
        import pytz

        out += [
            ("pytz", pytz.timezone("America/New_York")),
            ("pytz-utc", pytz.utc),
            ("pytz-fixed", pytz.FixedOffset(-300)),
        ]
    except ImportError:  # pragma: no cover - pytz is a dev dependency
        pass
    from dateutil import tz as dateutil_tz

    out += [
        ("dateutil", dateutil_tz.gettz("America/New_York")),
        ("dateutil-utc", dateutil_tz.tzutc()),
        ("dateutil-offset", dateutil_tz.tzoffset(None, -18000)),
    ]
    return out


ZONES = _zones()


def _bars_in(tz: Any) -> Provider:
    """Daily bars whose index (and a value column) carry the tzinfo object ``tz``."""

    def build(days: list[pd.Timestamp]) -> pd.DataFrame:
        stamps = [t.tz_convert("UTC").to_pydatetime().astimezone(tz) for t in days]
        index = pd.DatetimeIndex(stamps, name="time")
        if not len(days):
            index = pd.DatetimeIndex([], name="time").tz_localize("UTC").tz_convert(tz)
        return pd.DataFrame(
            {"close": [1.5 * t.day for t in days], "closed_at": index + pd.Timedelta(hours=16)},
            index=index,
        )

    return Provider(build)


@pytest.mark.parametrize(("zone", "tz"), ZONES, ids=[z for z, _ in ZONES])
def test_timezone_objects_of_any_library_are_cached_exactly(stores, zone, tz):
    """A tz-aware index in another library's tzinfo: cached, and equal to the uncached call."""
    provider = _bars_in(tz)
    fn = range_cached(key="symbol", step="1D", store=stores.store, namespace="tests.tz")(provider)
    utc = dt.UTC
    ranges = [(1, 10), (11, 20), (5, 15)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        for a, b in ranges:
            start, end = day(a).tz_localize(utc), day(b).tz_localize(utc)
            assert_same(fn("X", start, end), provider.raw("X", start, end))
        assert len(provider.calls) == 2
        cold = range_cached(key="symbol", step="1D", store=stores.reopen(), namespace="tests.tz")
        again = cold(provider)
        for a, b in ranges:
            start, end = day(a).tz_localize(utc), day(b).tz_localize(utc)
            assert_same(again("X", start, end), provider.raw("X", start, end))
    assert len(provider.calls) == 2


def test_unrepresentable_timezone_is_refused_once_per_key(tmp_path):
    """A tzinfo Parquet cannot restore: one CacheWarning per key, answers still right."""

    class Wobbly(dt.tzinfo):
        """No name, no fixed offset: nothing on disk could bring it back."""

        def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
            return dt.timedelta(hours=1 if when is not None and when.month > 6 else 0)

        def dst(self, when: dt.datetime | None) -> dt.timedelta:
            return dt.timedelta(0)

        def tzname(self, when: dt.datetime | None) -> str:
            return "WOB"

    provider = _bars_in(Wobbly())
    fn = range_cached(
        key="symbol", step="1D", store=ParquetStore(tmp_path, durable=False), namespace="t"
    )(provider)
    utc = dt.UTC
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for a, b in [(1, 10), (11, 20), (1, 20), (3, 4)]:
            start, end = day(a).tz_localize(utc), day(b).tz_localize(utc)
            assert_same(fn("X", start, end), provider.raw("X", start, end))
        fn("Y", day(1).tz_localize(utc), day(2).tz_localize(utc))
    refused = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert len(refused) == 2, [str(w.message) for w in refused]  # one per key
    assert "WOB" in str(refused[0].message) or "timezone" in str(refused[0].message)


def test_new_categories_after_reopening_union_with_the_stored_ones(stores):
    """A reopened key fetching a gap with new categories: the union, nothing lost."""

    def build(days: list[pd.Timestamp]) -> pd.DataFrame:
        return records(days, exchange=_exchange).astype({"exchange": "category"})

    provider = Provider(build)
    cache(stores, provider)("X", day(1), day(12))
    fn = cache(stores, provider, stores.reopen())
    fn("X", day(13), day(30))
    got = fn("X", day(1), day(30))
    assert got["exchange"].notna().all()
    assert_same(got, provider.raw("X", day(1), day(30)))
    check(stores, provider, [(1, 30), (1, 12), (13, 30)])


def test_many_pieces_of_alternating_schemas_stay_exact(stores):
    """60 one-day pieces, dtypes flipping (int64, all-null object): values exact throughout."""
    provider = Provider(
        lambda days: records(days, v=lambda d: None if d % 7 == 0 else d, w=lambda d: d / 8)
    )
    fn = cache(stores, provider)
    for d in range(1, 61):
        fn("X", day(d), day(d))
    pieces = [provider.raw("X", day(d), day(d)) for d in range(1, 61)]
    for store in (stores.store, stores.reopen()):
        again = cache(stores, provider, store)
        assert_same(again("X", day(1), day(60)), pd.concat(pieces))
        for d in (1, 7, 30):
            assert_same(again("X", day(d), day(d)), pieces[d - 1])
    assert len(provider.calls) == 60
