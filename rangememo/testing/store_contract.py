"""The contract every store must honour, as one reusable test class.

Run it against a store of your own::

    from rangememo.testing import Backend, StoreContract

    @pytest.fixture
    def backend(tmp_path):
        path = tmp_path / "cache"
        return Backend(MyStore(path), reopen=lambda: MyStore(path))

    class TestMyStore(StoreContract):
        pass

The stores are driven the honest way: through real ``@range_cached`` functions
over deterministic providers, so every ``Fetched`` a store sees is built by the
cache itself. Expected results always come from the uncached provider.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from rangememo import Entry, Fetched, MemoryStore, SchemaMismatchError, Store, range_cached
from rangememo.testing.providers import make_bars, make_blocks

NAMESPACE = "contract.series"
OTHER_NAMESPACE = "contract.other"


@dataclass
class Backend:
    """A store under test, and how to open a second instance over the same storage."""

    store: Store
    reopen: Callable[[], Store]
    opened: list[Store] = field(default_factory=list)

    def fresh(self) -> Store:
        """Another instance over the same storage (the same instance for in-process stores)."""
        store = self.reopen()
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in [self.store, *self.opened]:
            store.close()


# -- the series every store must round-trip exactly -------------------------------------

Raw = Callable[[str, Any, Any], Any]


def _rich(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    """Bars with every dtype a provider plausibly returns, indexed in microseconds."""
    bars = make_bars(symbol, start, end)
    up = (bars["close"] > bars["open"]).to_numpy()
    volume = bars["volume"].to_numpy()
    when = pd.DatetimeIndex(bars.index)
    return pd.DataFrame(
        {
            "close": bars["close"],
            "volume": bars["volume"],
            "up": up,
            "tag": pd.array([f"{symbol}-{t:%m%d}" for t in bars.index], dtype="str"),
            "maybe": pd.array(np.where(volume % 3 == 0, None, volume), dtype="Int64"),  # type: ignore[call-overload]
            "closed_at": (when + pd.Timedelta(hours=16)).tz_localize("UTC").as_unit("us"),
        },
        index=when.as_unit("us"),
    )


def _categorical(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    """Bars with categorical columns: unobserved categories and order must survive."""
    bars = make_bars(symbol, start, end)
    up = (bars["close"] > bars["open"]).to_numpy()
    return pd.DataFrame(
        {
            "close": bars["close"],
            "side": pd.Categorical(np.where(up, "up", "down"), categories=["down", "up", "flat"]),
            "grade": pd.Categorical(
                np.where(up, "b", "a"), categories=["b", "a", "c"], ordered=True
            ),
        },
        index=bars.index,
    )


def _table(symbol: str, start: Any, end: Any) -> pa.Table:
    return pa.Table.from_pandas(make_bars(symbol, start, end).reset_index(), preserve_index=False)


@dataclass(frozen=True)
class Source:
    """A provider, how it is cached, and the day/block numbers it is asked for."""

    name: str
    raw: Raw
    to_bound: Callable[[int], Any]
    options: dict[str, Any]
    # (symbol, first, last): inclusive. AAA's requests overlap and leave a hole;
    # BBB's first request holds no rows (a weekend) and is covered all the same.
    requests: tuple[tuple[str, int, int], ...] = (
        ("AAA", 2, 10),
        ("AAA", 8, 20),
        ("AAA", 25, 31),
        ("BBB", 6, 7),
        ("BBB", 6, 12),
    )

    def bounds(self, first: int, last: int) -> tuple[Any, Any]:
        return self.to_bound(first), self.to_bound(last)


def _day(tz: str | None) -> Callable[[int], pd.Timestamp]:
    def to_bound(d: int) -> pd.Timestamp:
        return pd.Timestamp(2024, 1, d, tz=tz)

    return to_bound


def _bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    return make_bars(symbol, start, end)


SOURCES: tuple[Source, ...] = (
    Source("naive-frame", _bars, _day(None), {"step": "1D"}),
    Source("utc-frame", _bars, _day("UTC"), {"step": "1D"}),
    Source("new-york-frame", _bars, _day("America/New_York"), {"step": "1D"}),
    Source("date-bounds", _bars, lambda d: dt.date(2024, 1, d), {}),
    Source(
        "int-axis",
        make_blocks,
        lambda b: 1000 + b,
        {"step": 1},
    ),
    Source(
        "series",
        lambda s, a, b: make_bars(s, a, b)["close"],
        _day("UTC"),
        {"step": "1D"},
    ),
    Source("arrow-table", _table, _day(None), {"step": "1D", "index": "time"}),
    Source(
        "position-column",
        lambda s, a, b: make_bars(s, a, b).reset_index(),
        _day("America/New_York"),
        {"step": "1D", "index": "time"},
    ),
    Source("rich-dtypes", _rich, _day(None), {"step": "1D"}),
    Source("categorical", _categorical, _day(None), {"step": "1D"}),
)
SOURCE_IDS = [s.name for s in SOURCES]
NAIVE = SOURCES[0]


def assert_same(got: Any, expected: Any) -> None:
    """Exact equality: rows, order, columns, dtypes, index name and timezone."""
    assert type(got) is type(expected)
    if isinstance(expected, pd.DataFrame):
        assert_frame_equal(got, expected, check_exact=True)
    elif isinstance(expected, pd.Series):
        assert_series_equal(got, expected, check_exact=True)
    else:
        assert got.schema.equals(expected.schema, check_metadata=False)
        assert got.equals(expected)


# -- driving a store through the decorator -------------------------------------------------


@dataclass
class Calls:
    """The provider calls a cached function made, as ``(symbol, start, end)``."""

    made: list[tuple[str, Any, Any]] = field(default_factory=list)


def cached(
    source: Source,
    store: Store,
    *,
    namespace: str = NAMESPACE,
    raw: Raw | None = None,
    calls: Calls | None = None,
    is_async: bool = False,
) -> Any:
    """``source``'s provider under ``@range_cached(store=store)``; calls recorded in ``calls``."""
    provider = raw or source.raw
    log = calls if calls is not None else Calls()
    options = dict(key="symbol", store=store, namespace=namespace, **source.options)

    if is_async:

        async def fetch_async(symbol: str, start: Any, end: Any) -> Any:
            log.made.append((symbol, start, end))
            await asyncio.sleep(0)
            return provider(symbol, start, end)

        return range_cached(**options)(fetch_async)

    def fetch(symbol: str, start: Any, end: Any) -> Any:
        log.made.append((symbol, start, end))
        return provider(symbol, start, end)

    return range_cached(**options)(fetch)


@functools.cache
def filed(namespace: str, symbol: str) -> tuple[str, Hashable]:
    """Where the cache files ``symbol``'s entries: the store namespace and key it uses."""
    capture = Capture()
    cached(NAIVE, capture, namespace=namespace)(symbol, *NAIVE.bounds(2, 2))
    filed_ns, key, _ = capture.pieces[0]
    return filed_ns, key


def ns(namespace: str = NAMESPACE) -> str:
    """The store namespace of functions decorated with ``namespace=namespace``."""
    return filed(namespace, "AAA")[0]


def key_of(symbol: str) -> Hashable:
    """The key a call for ``symbol`` is filed under."""
    return filed(NAMESPACE, symbol)[1]


class Capture(MemoryStore):
    """A memory store that also keeps every ``Fetched`` the cache commits."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[tuple[str, Hashable, Fetched]] = []

    def put(self, namespace: str, key: Hashable, fetched: Fetched) -> Any:
        self.pieces.append((namespace, key, fetched))
        return super().put(namespace, key, fetched)


def pieces_for(
    source: Source, symbol: str, first: int, last: int, raw: Raw | None = None
) -> list[Fetched]:
    """The commits the cache makes for one request on an empty cache."""
    capture = Capture()
    cached(source, capture, raw=raw)(symbol, *source.bounds(first, last))
    return [f for _, _, f in capture.pieces]


def span_of(entry: Any) -> tuple[int, int]:
    """The whole covered range of an entry, in axis units."""
    pieces = entry.ledger.intervals()
    return pieces[0][0], pieces[-1][1]


# -- the contract --------------------------------------------------------------------------


def _got(entry: Entry | None) -> Entry:
    """An entry the test knows is there."""
    assert entry is not None
    return entry


class StoreContract:
    """Tests every store must pass; subclasses provide a ``backend`` fixture."""

    # -- reading what was written ------------------------------------------------------

    def test_unknown_key_is_none(self, backend: Backend) -> None:
        """Nothing cached: ``get`` is None and no key is listed."""
        assert backend.store.get(ns(), key_of("AAA")) is None
        assert backend.store.keys(ns()) == []

    @pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
    def test_results_through_the_store_are_exact(self, backend: Backend, source: Source) -> None:
        """Every cached call returns exactly what the uncached provider returns."""
        fn = cached(source, backend.store)
        for symbol, first, last in source.requests:
            bounds = source.bounds(first, last)
            assert_same(fn(symbol, *bounds), source.raw(symbol, *bounds))

    @pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
    def test_a_fresh_function_is_served_from_the_store(
        self, backend: Backend, source: Source
    ) -> None:
        """A new function over the reopened store answers every request exactly, with no call."""
        warm = cached(source, backend.store)
        for symbol, first, last in source.requests:
            warm(symbol, *source.bounds(first, last))
        calls = Calls()
        fresh = cached(source, backend.fresh(), calls=calls)
        for symbol, first, last in source.requests:
            bounds = source.bounds(first, last)
            assert_same(fresh(symbol, *bounds), source.raw(symbol, *bounds))
        assert calls.made == []

    @pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
    def test_put_then_get_round_trips(self, backend: Backend, source: Source) -> None:
        """``get`` after ``put`` holds the committed coverage and reads back the rows exactly."""
        store = backend.store
        for piece in pieces_for(source, "AAA", 2, 10):
            entry = store.put(ns(), key_of("AAA"), piece)
            assert entry.ledger.covers(piece.lo, piece.hi)
        for piece in pieces_for(source, "AAA", 11, 20):
            store.put(ns(), key_of("AAA"), piece)
        for reader in (store, backend.fresh()):
            entry = _got(reader.get(ns(), key_of("AAA")))
            assert entry is not None
            assert len(entry.ledger.intervals()) == 1
            assert_same(entry.read(*span_of(entry)), source.raw("AAA", *source.bounds(2, 20)))

    @pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
    def test_covered_empty_range_round_trips(self, backend: Backend, source: Source) -> None:
        """A range fetched with no rows stays covered, and reads back empty with its schema."""
        weekend = source.bounds(6, 7)
        expected = source.raw("BBB", *weekend)
        for piece in pieces_for(source, "BBB", 6, 7):
            backend.store.put(ns(), key_of("BBB"), piece)
        calls = Calls()
        fn = cached(source, backend.fresh(), calls=calls)
        assert_same(fn("BBB", *weekend), expected)
        if source.name != "int-axis":  # blocks are never empty
            assert len(expected) == 0
        assert calls.made == []

    def test_partial_coverage_fetches_only_the_hole(self, backend: Backend) -> None:
        """Pieces written separately leave a hole that alone is fetched."""
        store = backend.store
        for first, last in [(2, 10), (15, 20)]:
            for piece in pieces_for(NAIVE, "AAA", first, last):
                store.put(ns(), key_of("AAA"), piece)
        calls = Calls()
        fn = cached(NAIVE, backend.fresh(), calls=calls)
        bounds = NAIVE.bounds(2, 20)
        assert_same(fn("AAA", *bounds), NAIVE.raw("AAA", *bounds))
        assert calls.made == [("AAA", *NAIVE.bounds(11, 14))]

    # -- newest wins ----------------------------------------------------------------------

    def test_newest_put_wins(self, backend: Backend) -> None:
        """A later commit of a range replaces the stored rows there, and only there."""
        store = backend.store

        def revised(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            bars = make_bars(symbol, start, end)
            return bars.assign(close=bars["close"] + 1000.0)

        for piece in pieces_for(NAIVE, "AAA", 2, 12):
            store.put(ns(), key_of("AAA"), piece)
        for piece in pieces_for(NAIVE, "AAA", 8, 20, raw=revised):
            store.put(ns(), key_of("AAA"), piece)
        expected = pd.concat(
            [NAIVE.raw("AAA", *NAIVE.bounds(2, 7)), revised("AAA", *NAIVE.bounds(8, 20))]
        )
        for reader in (store, backend.fresh()):
            entry = _got(reader.get(ns(), key_of("AAA")))
            assert entry.ledger.intervals() == [span_of(entry)]
            assert_same(entry.read(*span_of(entry)), expected)

    # -- forgetting -------------------------------------------------------------------------

    def test_forget_a_range_keeps_the_rest(self, backend: Backend) -> None:
        """``forget(lo, hi)`` drops coverage and rows of that range only; it is refetched."""
        store = backend.store
        warm = cached(NAIVE, store)
        warm("AAA", *NAIVE.bounds(2, 20))
        warm("BBB", *NAIVE.bounds(2, 20))
        start, end = span_of(store.get(ns(), key_of("AAA")))
        day = (end - start) // 19  # days 2 .. 20
        lo, hi = start + 6 * day, start + 11 * day  # days 8 .. 12
        store.forget(ns(), key_of("AAA"), lo, hi)
        entry = _got(store.get(ns(), key_of("AAA")))
        assert not entry.ledger.covers(lo, hi)
        assert len(entry.ledger.intervals()) == 2
        calls = Calls()
        fn = cached(NAIVE, backend.fresh(), calls=calls)
        for symbol in ("AAA", "BBB"):
            bounds = NAIVE.bounds(2, 20)
            assert_same(fn(symbol, *bounds), NAIVE.raw(symbol, *bounds))
        assert calls.made == [("AAA", *NAIVE.bounds(8, 12))]

    def test_invalidate_part_of_a_key_through_the_decorator(self, backend: Backend) -> None:
        """``invalidate(start=, end=)`` reaches the store: only that part is fetched again."""
        calls = Calls()
        fn = cached(NAIVE, backend.store, calls=calls)
        fn("AAA", *NAIVE.bounds(2, 20))
        fn.invalidate("AAA", start=NAIVE.to_bound(9), end=NAIVE.to_bound(11))
        calls.made.clear()
        bounds = NAIVE.bounds(2, 20)
        assert_same(fn("AAA", *bounds), NAIVE.raw("AAA", *bounds))
        assert calls.made == [("AAA", *NAIVE.bounds(9, 11))]

    def test_forget_a_whole_key(self, backend: Backend) -> None:
        """``forget(key)`` drops that key only."""
        store = backend.store
        fn = cached(NAIVE, store)
        fn("AAA", *NAIVE.bounds(2, 10))
        fn("BBB", *NAIVE.bounds(2, 10))
        store.forget(ns(), key_of("AAA"))
        for reader in (store, backend.fresh()):
            gone = reader.get(ns(), key_of("AAA"))
            assert gone is None or gone.ledger.empty
            assert reader.keys(ns()) == [key_of("BBB")]
            assert reader.get(ns(), key_of("BBB")) is not None

    def test_forget_of_an_unknown_key_is_harmless(self, backend: Backend) -> None:
        """Forgetting what was never stored raises nothing and changes nothing."""
        store = backend.store
        cached(NAIVE, store)("AAA", *NAIVE.bounds(2, 10))
        store.forget(ns(), key_of("ZZZ"))
        store.forget(ns(), key_of("ZZZ"), 0, 10)
        store.forget("contract.nowhere", key_of("AAA"))
        assert store.keys(ns()) == [key_of("AAA")]

    def test_clear_a_namespace(self, backend: Backend) -> None:
        """``clear(namespace)`` empties that namespace and leaves the others."""
        store = backend.store
        cached(NAIVE, store)("AAA", *NAIVE.bounds(2, 10))
        cached(NAIVE, store, namespace=OTHER_NAMESPACE)("AAA", *NAIVE.bounds(2, 10))
        store.clear(ns())
        for reader in (store, backend.fresh()):
            assert reader.keys(ns()) == []
            assert reader.get(ns(), key_of("AAA")) is None
            assert reader.keys(ns(OTHER_NAMESPACE)) == [key_of("AAA")]

    def test_clear_everything(self, backend: Backend) -> None:
        """``clear()`` empties every namespace; the store stays usable."""
        store = backend.store
        cached(NAIVE, store)("AAA", *NAIVE.bounds(2, 10))
        cached(NAIVE, store, namespace=OTHER_NAMESPACE)("BBB", *NAIVE.bounds(2, 10))
        store.clear()
        for reader in (store, backend.fresh()):
            assert reader.keys(ns()) == []
            assert reader.keys(ns(OTHER_NAMESPACE)) == []
        bounds = NAIVE.bounds(2, 10)
        assert_same(cached(NAIVE, store)("AAA", *bounds), NAIVE.raw("AAA", *bounds))

    # -- keys and namespaces -----------------------------------------------------------------

    def test_keys_come_back_as_they_were_given(self, backend: Backend) -> None:
        """``keys`` lists exactly the keys written (str, int, None, non-ASCII), equal."""

        def decorate(store: Store) -> Any:
            @range_cached(
                key=("symbol", "venue", "level"), step="1D", store=store, namespace=NAMESPACE
            )
            def fetch(symbol: str, start: Any, end: Any, venue: int = 1, level: Any = None) -> Any:
                return make_bars(symbol, start, end)

            return fetch

        calls = [("AAA", 1, None), ("AAA", 2, None), ("BBB", 1, "L2"), ("with space/é", 1, None)]
        capture = Capture()
        for store in (capture, backend.store):
            fetch = decorate(store)
            for symbol, venue, level in calls:
                fetch(symbol, *NAIVE.bounds(2, 5), venue=venue, level=level)
        wanted = {key for _, key, _ in capture.pieces}
        assert len(wanted) == len(calls)
        for reader in (backend.store, backend.fresh()):
            listed = reader.keys(ns())
            assert sorted(map(repr, listed)) == sorted(map(repr, wanted))
            assert set(listed) == wanted
            for key in wanted:
                assert reader.get(ns(), key) is not None

    def test_namespaces_are_isolated(self, backend: Backend) -> None:
        """The same key under two namespaces holds two independent series."""
        store = backend.store

        def other(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            bars = make_bars(symbol, start, end)
            return bars.assign(close=-bars["close"])

        first_calls, second_calls = Calls(), Calls()
        first = cached(NAIVE, store, calls=first_calls)
        second = cached(NAIVE, store, namespace=OTHER_NAMESPACE, raw=other, calls=second_calls)
        bounds = NAIVE.bounds(2, 12)
        assert_same(first("AAA", *bounds), NAIVE.raw("AAA", *bounds))
        assert_same(second("AAA", *bounds), other("AAA", *bounds))
        assert len(second_calls.made) == 1
        assert_same(first("AAA", *bounds), NAIVE.raw("AAA", *bounds))
        assert len(first_calls.made) == 1
        store.forget(ns(OTHER_NAMESPACE), key_of("AAA"))
        assert store.get(ns(), key_of("AAA")) is not None

    # -- schema changes ------------------------------------------------------------------------

    def test_schema_mismatch_through_the_decorator_leaves_the_entry_untouched(
        self, backend: Backend
    ) -> None:
        """A provider that changes a dtype for good gets SchemaMismatchError; nothing changes."""
        store = backend.store
        fn = cached(NAIVE, store)
        fn("AAA", *NAIVE.bounds(2, 10))
        before = _got(store.get(ns(), key_of("AAA")))
        intervals, rows = before.ledger.intervals(), before.read(*span_of(before))

        def changed(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            bars = make_bars(symbol, start, end)
            return bars.astype({"volume": "str"})  # a real conflict, not a widening

        bad = cached(NAIVE, store, raw=changed)
        with pytest.raises(SchemaMismatchError):
            bad("AAA", *NAIVE.bounds(2, 20))
        for reader in (store, backend.fresh()):
            after = _got(reader.get(ns(), key_of("AAA")))
            assert after.ledger.intervals() == intervals
            assert_same(after.read(*span_of(after)), rows)

    def test_schema_mismatch_on_put_leaves_the_entry_untouched(self, backend: Backend) -> None:
        """``put`` of a piece with a conflicting dtype raises and writes nothing."""
        store = backend.store
        for piece in pieces_for(NAIVE, "AAA", 2, 10):
            store.put(ns(), key_of("AAA"), piece)
        before = _got(store.get(ns(), key_of("AAA")))
        intervals, rows = before.ledger.intervals(), before.read(*span_of(before))

        def str_volume(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            return make_bars(symbol, start, end).astype({"volume": "str"})

        def bool_close(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            return make_bars(symbol, start, end).astype({"close": "bool"})

        for raw in (str_volume, bool_close):
            for piece in pieces_for(NAIVE, "AAA", 8, 20, raw=raw):
                with pytest.raises(SchemaMismatchError):
                    store.put(ns(), key_of("AAA"), piece)
        for reader in (store, backend.fresh()):
            after = _got(reader.get(ns(), key_of("AAA")))
            assert after.ledger.intervals() == intervals
            assert_same(after.read(*span_of(after)), rows)

    # -- async mirrors ---------------------------------------------------------------------------

    async def test_async_mirrors_match_the_sync_methods(self, backend: Backend) -> None:
        """aget/aput/aforget/aclear/akeys do what their sync twins do."""
        store = backend.store
        assert await store.aget(ns(), key_of("AAA")) is None
        for symbol in ("AAA", "BBB"):
            for piece in pieces_for(NAIVE, symbol, 2, 10):
                entry = await store.aput(ns(), key_of(symbol), piece)
                assert entry.ledger.covers(piece.lo, piece.hi)
        for piece in pieces_for(NAIVE, "CCC", 2, 10):
            await store.aput(ns(OTHER_NAMESPACE), key_of("CCC"), piece)
        assert sorted(await store.akeys(ns()), key=repr) == [key_of("AAA"), key_of("BBB")]
        entry = _got(await store.aget(ns(), key_of("AAA")))
        assert_same(entry.read(*span_of(entry)), NAIVE.raw("AAA", *NAIVE.bounds(2, 10)))
        lo, hi = span_of(entry)
        await store.aforget(ns(), key_of("AAA"), lo, lo + (hi - lo) // 3)
        assert _got(await store.aget(ns(), key_of("AAA"))).ledger.intervals() == [
            (lo + (hi - lo) // 3, hi)
        ]
        await store.aforget(ns(), key_of("AAA"))
        assert await store.akeys(ns()) == [key_of("BBB")]
        await store.aclear(ns())
        assert await store.akeys(ns()) == []
        assert await store.akeys(ns(OTHER_NAMESPACE)) == [key_of("CCC")]
        await store.aclear()
        assert await store.akeys(ns(OTHER_NAMESPACE)) == []

    @pytest.mark.parametrize("source", SOURCES, ids=SOURCE_IDS)
    async def test_async_function_through_the_store_is_exact(
        self, backend: Backend, source: Source
    ) -> None:
        """An ``async def`` cached function over the store: exact results, no refetch."""
        calls = Calls()
        fn = cached(source, backend.store, calls=calls, is_async=True)
        for symbol, first, last in source.requests:
            bounds = source.bounds(first, last)
            assert_same(await fn(symbol, *bounds), source.raw(symbol, *bounds))
        made = len(calls.made)
        for symbol, first, last in source.requests:
            await fn(symbol, *source.bounds(first, last))
        assert len(calls.made) == made
