"""Adversarial tests of MemoryStore's byte budget, its thrashing warning and the engine.

Every expected value comes from the provider itself (deterministic, by position),
never from the cache's own output.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import tracemalloc
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from rangememo import CacheWarning, MemoryStore, ParquetStore, range_cached

ORIGIN = pd.Timestamp("2020-01-01")
DAY = pd.Timedelta("1D")
CATS = ["lo", "mid", "hi"]


def days(start: Any, end: Any) -> list[pd.Timestamp]:
    return list(pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D"))


def mixed(sym: str, start: Any, end: Any) -> pd.DataFrame:
    """Numbers, object strings, pandas strings and a categorical, on a named index."""
    idx = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D", name="ts")
    d = ((idx.tz_localize(None) if idx.tz else idx) - ORIGIN).days.to_numpy()
    seed = sum(map(ord, sym))
    return pd.DataFrame(
        {
            "i": (d * 3 + seed).astype("int64"),
            "f": d * 0.25 + seed,
            "o": pd.Series([f"{sym}-{x}" * (1 + x % 5) for x in d], dtype=object).to_numpy(),
            "s": pd.array([f"s{x}" for x in d], dtype="str"),
            "c": pd.Categorical([CATS[x % 3] for x in d], categories=CATS),
        },
        index=idx,
    ).set_index(idx.rename("ts"))


def simple(sym: str, start: Any, end: Any) -> pd.DataFrame:
    idx = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D", name="ts")
    d = (idx - ORIGIN).days.to_numpy()
    return pd.DataFrame({"v": d * 10 + len(sym), "w": d * 0.5}, index=idx)


def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert_frame_equal(got, want, check_freq=False)


@pytest.fixture
def always() -> Any:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def thrash_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, CacheWarning) and "too small" in str(w.message)
    ]


# -- exact answers -----------------------------------------------------------------------


WINDOWS = [(10, 20), (15, 30), (5, 12), (0, 40), (38, 45), (21, 21), (44, 60), (0, 60)]


def test_mixed_dtypes_frame_matches_provider_across_windows() -> None:
    calls: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    @range_cached(key="sym", step="1D", store=MemoryStore(), settle=False)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append((pd.Timestamp(start), pd.Timestamp(end)))
        return mixed(sym, start, end)

    for a, b in WINDOWS:
        s, e = ORIGIN + a * DAY, ORIGIN + b * DAY
        same(get("AB", s, e), mixed("AB", s, e))
    fetched = Counter(d for s, e in calls for d in days(s, e))
    assert max(fetched.values()) == 1, "a day was fetched twice"


def test_tz_aware_series_matches_provider() -> None:
    tz = "America/New_York"
    calls: list[Any] = []

    def series(start: Any, end: Any) -> pd.Series:
        idx = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D", name="when")
        d = (idx.tz_localize(None) - ORIGIN).days.to_numpy()
        return pd.Series(d * 1.5, index=idx, name="px")

    @range_cached(key="sym", step="1D", store=MemoryStore(), settle=False)
    def get(sym: str, start: Any, end: Any) -> pd.Series:
        calls.append((start, end))
        return series(start, end)

    base = ORIGIN.tz_localize(tz)
    for a, b in WINDOWS:
        s, e = base + a * DAY, base + b * DAY
        got = get("X", s, e)
        assert_series_equal(got, series(s, e), check_freq=False)
        assert str(got.index.tz) == tz and got.index.name == "when"


def test_pyarrow_table_matches_provider() -> None:
    def table(start: Any, end: Any) -> pa.Table:
        idx = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D")
        d = (idx - ORIGIN).days.to_numpy()
        return pa.table({"ts": pa.array(idx.as_unit("ns")), "v": d, "name": [f"n{x}" for x in d]})

    @range_cached(key="sym", index="ts", step="1D", store=MemoryStore(), settle=False)
    def get(sym: str, start: Any, end: Any) -> pa.Table:
        return table(start, end)

    for a, b in WINDOWS:
        s, e = ORIGIN + a * DAY, ORIGIN + b * DAY
        got = get("T", s, e)
        assert got.equals(table(s, e)), (a, b)


def test_mutating_answers_does_not_reach_the_cache() -> None:
    @range_cached(key="sym", step="1D", store=MemoryStore(), settle=False)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        return simple(sym, start, end)

    s, e = ORIGIN, ORIGIN + 30 * DAY
    for got in (get("M", s, e), get("M", s, e), get("M", s + DAY, e - DAY)):
        got.iloc[:, 0] = -1
        got["w"] *= 100
        got.index.name = "renamed"
    same(get("M", s + 3 * DAY, e - 3 * DAY), simple("M", s + 3 * DAY, e - 3 * DAY))
    same(get("M", s, e), simple("M", s, e))


def test_provider_writing_to_the_frame_it_returned_does_not_reach_the_cache() -> None:
    handed: list[pd.DataFrame] = []

    @range_cached(key="sym", step="1D", store=MemoryStore(), settle=False)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        out = simple(sym, start, end)
        handed.append(out)
        return out

    s, e = ORIGIN, ORIGIN + 30 * DAY
    get("M", s, e)
    for frame in handed:  # the provider updates its own buffer afterwards
        frame.iloc[:, 0] = -7
    same(get("M", s + 3 * DAY, e - 3 * DAY), simple("M", s + 3 * DAY, e - 3 * DAY))


# -- byte accounting -----------------------------------------------------------------------


def _currsize(store: MemoryStore) -> int:
    return int(store._map.currsize)  # type: ignore[attr-defined]


def test_partial_invalidate_releases_its_bytes() -> None:
    calls: list[str] = []
    store = MemoryStore(maxbytes=200_000)

    @range_cached(key="sym", step="1D", store=store, settle=False, readahead=None)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append(sym)
        return simple(sym, start, end)

    get("A", ORIGIN, ORIGIN + 5000 * DAY)  # ~160 kB
    get.invalidate("A", start=ORIGIN + 100 * DAY)  # ~3 kB left
    get("B", ORIGIN, ORIGIN + 3000 * DAY)  # ~96 kB: both fit in 200 kB
    before = len(calls)
    same(get("A", ORIGIN, ORIGIN + 50 * DAY), simple("A", ORIGIN, ORIGIN + 50 * DAY))
    assert len(calls) == before, "A's held range was fetched again although it fitted"


def test_growing_key_keeps_neighbours_that_fit() -> None:
    calls: list[str] = []
    store = MemoryStore(maxbytes=200_000)

    @range_cached(key="sym", step="1D", store=store, settle=False, readahead=None)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append(sym)
        return simple(sym, start, end)

    get("B", ORIGIN, ORIGIN + 2000 * DAY)  # ~64 kB, least recently used
    get("A", ORIGIN, ORIGIN + 2000 * DAY)  # ~64 kB
    get("A", ORIGIN + 2001 * DAY, ORIGIN + 3500 * DAY)  # A grows to ~112 kB: 176 kB total
    assert _currsize(store) <= 200_000
    before = len(calls)
    same(get("B", ORIGIN, ORIGIN + 2000 * DAY), simple("B", ORIGIN, ORIGIN + 2000 * DAY))
    assert len(calls) == before


def test_accounted_bytes_track_object_columns_exactly_on_first_piece() -> None:
    store = MemoryStore(maxsize=None, maxbytes=10**9)

    @range_cached(key="sym", step="1D", store=store, settle=False)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        return mixed(sym, start, end)

    s, e = ORIGIN, ORIGIN + 1999 * DAY
    get("O", s, e)
    want = int(mixed("O", s, e).memory_usage(deep=True).sum())
    entry_bytes = _currsize(store)
    # rows' deep usage + int64 positions + the entry's constant overhead
    assert want + 8 * 2000 <= entry_bytes <= want + 8 * 2000 + 4096


def test_budget_counts_what_a_view_of_a_larger_answer_keeps_alive() -> None:
    n = 100_000  # each answer: a 100,000-minute page, of which 5 minutes were asked
    store = MemoryStore(maxbytes=1_000_000)

    @range_cached(key="sym", step="1min", store=store, settle=False, readahead=None)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        idx = pd.date_range(pd.Timestamp(start).floor("D"), periods=n, freq="1min", name="ts")
        d = np.arange(n, dtype="int64")
        return pd.DataFrame({"v": d, "w": d * 0.5}, index=idx)

    start = ORIGIN + pd.Timedelta(minutes=10)
    tracemalloc.start()
    try:
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        for k in range(4):
            got = get(f"S{k}", start, start + pd.Timedelta(minutes=4))
            assert list(got["v"]) == [10, 11, 12, 13, 14]
        del got
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    # 4 pages of ~2.4 MB each are alive; the store believes it holds a few kB.
    assert held <= 2 * _currsize(store) + 500_000, (held, _currsize(store))


# -- tiny budgets ----------------------------------------------------------------------------


@pytest.mark.parametrize("maxbytes", [1, 300, 5_000])
def test_key_larger_than_budget_is_served_exactly(maxbytes: int, always: Any) -> None:
    store = MemoryStore(maxbytes=maxbytes)

    @range_cached(key="sym", step="1D", store=store, settle=False, readahead=None)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        return mixed(sym, start, end)

    for a, b in [(0, 2), (0, 400), (100, 120), (390, 800), (0, 800)]:
        s, e = ORIGIN + a * DAY, ORIGIN + b * DAY
        same(get("BIG", s, e), mixed("BIG", s, e))
    assert _currsize(store) <= maxbytes
    assert any("exceeds the store's budget" in str(w.message) for w in always)
    assert not thrash_warnings(always)


def test_key_outgrowing_budget_mid_call_answers_every_gap() -> None:
    store = MemoryStore(maxbytes=20_000)

    @range_cached(key="sym", step="1D", store=store, settle=False, readahead=None)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        return simple(sym, start, end)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        get("G", ORIGIN + 100 * DAY, ORIGIN + 110 * DAY)
        get("G", ORIGIN + 300 * DAY, ORIGIN + 310 * DAY)
        s, e = ORIGIN, ORIGIN + 2000 * DAY  # three gaps, the key outgrows the budget
        same(get("G", s, e), simple("G", s, e))
        same(get("G", ORIGIN + 105 * DAY, e), simple("G", ORIGIN + 105 * DAY, e))


# -- the thrashing warning -----------------------------------------------------------------------


def test_thrashing_by_key_bound_warns_exactly_once(always: Any) -> None:
    store = MemoryStore(maxsize=4, maxbytes=None)

    @range_cached(key="sym", step="1D", store=store, settle=False)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        return simple(sym, start, end)

    for _ in range(30):
        for k in range(12):
            get(f"K{k}", ORIGIN, ORIGIN + 5 * DAY)
    texts = thrash_warnings(always)
    assert len(texts) == 1, texts
    assert "maxsize" in texts[0]


def test_thrashing_by_bytes_warns_once_naming_maxbytes(always: Any) -> None:
    store = MemoryStore(maxbytes=30_000)

    @range_cached(key="sym", step="1D", store=store, settle=False)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        return simple(sym, start, end)

    async def cycle() -> None:
        for _ in range(40):
            for k in range(6):
                same(
                    get(f"B{k}", ORIGIN, ORIGIN + 500 * DAY),
                    simple(f"B{k}", ORIGIN, ORIGIN + 500 * DAY),
                )

    asyncio.run(cycle())  # the sync wrapper inside a running loop, as in a notebook
    texts = thrash_warnings(always)
    assert len(texts) == 1, texts
    assert "maxbytes" in texts[0] and "maxsize=None" not in texts[0]


def test_one_pass_scan_never_warns(always: Any) -> None:
    store = MemoryStore(maxsize=8, maxbytes=None)

    @range_cached(key="sym", step="1D", store=store, settle=False)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        return simple(sym, start, end)

    for k in range(600):
        for a in (0, 2, 4):  # hits of the key just fetched
            get(f"P{k}", ORIGIN + a * DAY, ORIGIN + 6 * DAY)
    assert not thrash_warnings(always)


# -- concurrency ---------------------------------------------------------------------------------


def test_async_function_from_many_event_loops_fetches_each_day_once() -> None:
    calls: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    lock = threading.Lock()

    @range_cached(key="sym", step="1D", store=MemoryStore(), settle=False, readahead=None)
    async def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        with lock:
            calls.append((pd.Timestamp(start), pd.Timestamp(end)))
        await asyncio.sleep(0.02)  # widens the overlap; no assertion depends on it
        return mixed(sym, start, end)

    windows = [(0, 40), (10, 50), (20, 60), (0, 60), (5, 15), (45, 70)] * 2
    barrier = threading.Barrier(len(windows))
    results: dict[int, pd.DataFrame] = {}
    errors: list[BaseException] = []

    def worker(i: int, a: int, b: int) -> None:
        try:
            barrier.wait()
            results[i] = asyncio.run(get("L", ORIGIN + a * DAY, ORIGIN + b * DAY))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i, *w)) for i, w in enumerate(windows)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, (a, b) in enumerate(windows):
        same(results[i], mixed("L", ORIGIN + a * DAY, ORIGIN + b * DAY))
    fetched = Counter(d for s, e in calls for d in days(s, e))
    assert max(fetched.values()) == 1, sorted(d for d, n in fetched.items() if n > 1)


def test_invalidate_while_threads_read_stays_exact() -> None:
    @range_cached(key="sym", step="1D", store=MemoryStore(), settle=False)
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        return mixed(sym, start, end)

    readers = 4
    rounds = 40
    go = threading.Barrier(readers + 1)
    errors: list[BaseException] = []
    windows = [(0, 30), (10, 25), (5, 60), (31, 40)]

    def reader(r: int) -> None:
        try:
            go.wait()
            for n in range(rounds):
                a, b = windows[(r + n) % len(windows)]
                s, e = ORIGIN + a * DAY, ORIGIN + b * DAY
                same(get("INV", s, e), mixed("INV", s, e))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(r,)) for r in range(readers)]
    for t in threads:
        t.start()
    go.wait()
    for n in range(rounds):
        if n % 2:
            get.invalidate("INV")
        else:
            get.invalidate("INV", start=ORIGIN + (n % 30) * DAY, end=ORIGIN + (n % 30 + 7) * DAY)
    for t in threads:
        t.join()
    assert not errors, errors[0]
    same(get("INV", ORIGIN, ORIGIN + 60 * DAY), mixed("INV", ORIGIN, ORIGIN + 60 * DAY))


class Client:
    def __init__(self, scale: int) -> None:
        self.scale = scale
        self.calls: list[Any] = []

    @range_cached(key="sym", step="1D", store=MemoryStore(), settle=False, readahead=None)
    async def bars(self, sym: str, start: Any, end: Any) -> pd.DataFrame:
        self.calls.append((pd.Timestamp(start), pd.Timestamp(end)))
        await asyncio.sleep(0.01)
        return simple(sym, start, end)


def test_async_method_shared_across_instances_and_loops() -> None:
    """Documented: ``self`` is never part of the key, so instances share one cache."""
    clients = [Client(1), Client(2), Client(3)]
    barrier = threading.Barrier(len(clients))
    out: dict[int, pd.DataFrame] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            s, e = ORIGIN + 10 * i * DAY, ORIGIN + (10 * i + 30) * DAY
            out[i] = asyncio.run(clients[i].bars("C", s, e))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(len(clients)):
        same(out[i], simple("C", ORIGIN + 10 * i * DAY, ORIGIN + (10 * i + 30) * DAY))
    fetched = Counter(d for c in clients for s, e in c.calls for d in days(s, e))
    assert max(fetched.values()) == 1

    async def check() -> None:
        whole = [(ORIGIN, ORIGIN + 50 * DAY)]
        assert await Client.bars.coverage("C") == await clients[0].bars.coverage("C") == whole
        await Client.bars.invalidate("C")
        assert await clients[2].bars.coverage("C") == []

    asyncio.run(check())


# -- ParquetStore's memory layer -----------------------------------------------------------------


def test_parquet_memory_layer_evictions_never_refetch(tmp_path: Path) -> None:
    calls: list[str] = []
    store = ParquetStore(tmp_path / "c", memory=20_000, durable=False)

    @range_cached(
        key="sym", step="1D", store=store, settle=False, readahead=None, namespace="adv-pq"
    )
    def get(sym: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append(sym)
        return mixed(sym, start, end)

    try:
        syms = [f"Q{k}" for k in range(6)]
        for sym in syms:
            get(sym, ORIGIN, ORIGIN + 300 * DAY)
        assert len(calls) == len(syms)
        for _ in range(3):
            for sym in syms + syms[::-1]:
                s, e = ORIGIN + 20 * DAY, ORIGIN + 280 * DAY
                same(get(sym, s, e), mixed(sym, s, e))
        assert len(calls) == len(syms)
    finally:
        store.close()


# -- a fetch in flight across an invalidate, a clear or a refresh ---------------------


@pytest.mark.parametrize("how", ["invalidate-key", "invalidate-range", "clear", "clear-ns"])
def test_a_fetch_begun_before_an_invalidate_does_not_bring_old_rows_back(how: str) -> None:
    """Thread A is in the provider (revision 0) when the vendor revises its history and
    the caller invalidates: A's late commit must not put revision 0 back in the cache."""
    gate, stuck = threading.Event(), threading.Event()
    rev = {"n": 0.0}
    calls: list[tuple[Any, Any]] = []
    store = MemoryStore()

    def provider(start: Any, end: Any) -> pd.DataFrame:
        n = rev["n"]
        calls.append((start, end))
        if n == 0 and start == pd.Timestamp(2024, 1, 6):
            stuck.set()
            gate.wait(10)
        index = pd.date_range(start, end, freq="1D", name="ts")
        return pd.DataFrame({"close": index.day.to_numpy() + n}, index=index)

    @range_cached(key="symbol", step="1D", store=store, readahead=None, namespace="inflight")
    def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        return provider(start, end)

    jan = (pd.Timestamp(2024, 1, 1), pd.Timestamp(2024, 1, 20))
    get("AAPL", jan[0], pd.Timestamp(2024, 1, 5))
    slow: dict[str, pd.DataFrame] = {}
    worker = threading.Thread(target=lambda: slow.setdefault("a", get("AAPL", *jan)))
    worker.start()
    assert stuck.wait(10)
    rev["n"] = 1000.0
    if how == "invalidate-key":
        get.invalidate("AAPL")
    elif how == "invalidate-range":
        get.invalidate("AAPL", start=pd.Timestamp(2024, 1, 8), end=pd.Timestamp(2024, 1, 9))
    elif how == "clear":
        store.clear()
    else:
        store.clear(get.cache.namespace)
    gate.set()
    worker.join(10)
    assert slow["a"]["close"].iloc[-1] < 1000, "the slow call answers what it fetched"
    later = get("AAPL", *jan)
    if how == "invalidate-range":  # only 8-9 Jan was invalidated: refetched, revised
        assert (later.loc["2024-01-08":"2024-01-09", "close"] > 1000).all()
    else:
        assert (later["close"].loc["2024-01-06":] > 1000).all(), later
    n = len(calls)
    assert_frame_equal(get("AAPL", *jan), later)
    assert len(calls) == n, "what the later call fetched is cached"
