"""Memory that scales with bytes, not keys (issue "Fast at scale on one machine", item 1).

A default ``MemoryStore()`` is bounded by bytes (a fraction of the machine's
memory, capped), so a universe of thousands of small keys is never evicted; a
``ParquetStore`` whose memory layer evicts reloads from disk, never from the
provider; and a store that evicts keys only to be asked for them again warns
once, with the numbers and the option to raise.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import pickle
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import rangememo._stores.budget as budget
from rangememo import CacheWarning, MemoryStore, ParquetStore, range_cached

DAY = pd.Timedelta("1D")
ORIGIN = pd.Timestamp("2020-01-01")


def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    """A deterministic daily frame of one symbol (cheap: numpy, no per-row Python)."""
    index = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D", name="ts")
    seed = sum(map(ord, symbol))
    days = (index - ORIGIN).days.to_numpy()
    close = 100.0 + seed + days * 0.25
    return pd.DataFrame({"close": close, "volume": (days * 7 + seed).astype("int64")}, index=index)


def cached(store: Any, calls: list[str], sync: bool = True) -> Callable[..., Any]:
    if sync:

        @range_cached(key="symbol", step="1D", store=store, settle=None, namespace="budget")
        def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            calls.append(symbol)
            return bars(symbol, start, end)

        return get

    @range_cached(key="symbol", step="1D", store=store, settle=None, namespace="budget")
    async def aget(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append(symbol)
        return bars(symbol, start, end)

    return aget


def same(got: pd.DataFrame, symbol: str, start: Any, end: Any) -> None:
    assert_frame_equal(got, bars(symbol, start, end), check_freq=False)


# The ParquetStore case is slow (a write per key); its memory layer's evictions
# are covered quickly by the tiny-budget tests below.
@pytest.fixture(params=["memory", pytest.param("parquet", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Each store at its defaults."""
    if request.param == "memory":
        made: Any = MemoryStore()
    else:  # durable=False: fsync is not what is under test, and costs seconds here
        made = ParquetStore(tmp_path / "cache", durable=False)
    yield made
    made.close()


# -- the default bound is bytes ------------------------------------------------------


def test_default_store_keeps_a_universe_of_small_keys(store: Any) -> None:
    """1,100 symbols (the old default held 1,024), each asked again after all the others."""
    calls: list[str] = []
    get = cached(store, calls)
    symbols = [f"S{i:04d}" for i in range(1_100)]
    start, end = ORIGIN, ORIGIN + 59 * DAY
    for s in symbols:
        get(s, start, end)
    assert len(calls) == len(symbols)
    for s in symbols + symbols[::-1]:
        same(get(s, start + 10 * DAY, end), s, start + 10 * DAY, end)
    assert len(calls) == len(symbols)


def test_default_budget_is_a_quarter_of_memory_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """min(25% of physical memory, 8 GiB); a fixed 1 GiB where memory cannot be read."""
    monkeypatch.setattr(budget, "physical_memory", lambda: 4 * 2**30)
    assert budget.default_budget() == 2**30
    monkeypatch.setattr(budget, "physical_memory", lambda: 256 * 2**30)
    assert budget.default_budget() == 8 * 2**30
    monkeypatch.setattr(budget, "physical_memory", lambda: None)
    assert budget.default_budget() == budget.FALLBACK_BUDGET == 2**30


def test_physical_memory_is_read_or_none() -> None:
    """On this machine a positive number of bytes (POSIX), else ``None``."""
    mem = budget.physical_memory()
    assert mem is None or mem > 2**20


def test_physical_memory_survives_a_missing_sysconf(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``os.sysconf`` (Windows) or a name it does not know: ``None``, no error."""

    def refuse(name: str) -> int:
        raise ValueError(f"unrecognized configuration name {name!r}")

    monkeypatch.setattr(budget.os, "sysconf", refuse, raising=False)
    assert budget.physical_memory() is None
    monkeypatch.delattr(budget.os, "sysconf")
    assert budget.physical_memory() is None


def test_default_memory_store_reports_its_bounds() -> None:
    """``MemoryStore()``: no key bound, the default byte budget; both show in ``repr``."""
    store = MemoryStore()
    assert store.maxsize is None and store.maxbytes == budget.default_budget()
    assert f"maxbytes={store.maxbytes}" in repr(store)


def test_maxsize_still_bounds_keys_and_bytes_still_apply() -> None:
    """``maxsize=n`` evicts the (n+1)-th key; the default byte budget stays on top."""
    calls: list[str] = []
    store = MemoryStore(maxsize=2)
    assert store.maxsize == 2 and store.maxbytes == budget.default_budget()
    get = cached(store, calls)
    for s in ("AAA", "BBB", "CCC", "AAA"):
        same(get(s, ORIGIN, ORIGIN + 9 * DAY), s, ORIGIN, ORIGIN + 9 * DAY)
    assert calls == ["AAA", "BBB", "CCC", "AAA"]


def test_maxsize_and_maxbytes_whichever_bound_is_hit_first() -> None:
    """Many keys allowed but bytes for two: the byte budget evicts."""
    probe = MemoryStore()
    cached(probe, [])("AAA", ORIGIN, ORIGIN + 99 * DAY)
    one = _one_key_bytes(probe)
    calls: list[str] = []
    get = cached(MemoryStore(maxsize=100, maxbytes=int(2.5 * one)), calls)
    for s in ("AAA", "BBB", "CCC", "DDD", "AAA"):
        same(get(s, ORIGIN, ORIGIN + 99 * DAY), s, ORIGIN, ORIGIN + 99 * DAY)
    assert calls == ["AAA", "BBB", "CCC", "DDD", "AAA"]


def _one_key_bytes(store: MemoryStore) -> int:
    (slot,) = list(store._map)
    return int(store._map[slot].nbytes)


def test_no_bounds_at_all_keeps_everything() -> None:
    """``maxsize=None, maxbytes=None``: an unbounded store (your choice, your memory)."""
    calls: list[str] = []
    store = MemoryStore(maxsize=None, maxbytes=None)
    assert store.maxsize is None and store.maxbytes is None
    get = cached(store, calls)
    for s in [f"K{i}" for i in range(50)] * 2:
        get(s, ORIGIN, ORIGIN + 9 * DAY)
    assert len(calls) == 50


@pytest.mark.parametrize("bad", [0, -1])
def test_nonpositive_bounds_are_refused(bad: int) -> None:
    """A bound that can hold nothing is a mistake: ``ValueError`` naming the value."""
    with pytest.raises(ValueError, match=f"maxbytes={bad}"):
        MemoryStore(maxbytes=bad)
    with pytest.raises(ValueError, match=f"maxsize={bad}"):
        MemoryStore(maxsize=bad)


def test_a_pickled_default_store_reopens_with_the_default_budget() -> None:
    """A worker gets an empty store bounded as the parent's (bytes, not 1,024 keys)."""
    from rangememo._pickling import _FreshMemoryStore, _portable

    fresh = _portable(MemoryStore())
    assert isinstance(fresh, _FreshMemoryStore)
    again = pickle.loads(pickle.dumps(fresh))
    assert again.maxbytes == "auto"  # the worker's own machine decides
    store = MemoryStore(again.maxsize, maxbytes=again.maxbytes)
    assert store.maxbytes == budget.default_budget() and store.maxsize is None
    assert _portable(MemoryStore(maxsize=7, maxbytes=10**6)) == (7, 10**6)
    assert _portable(MemoryStore(maxsize=None, maxbytes=None)) == (None, None)


# -- byte accounting -----------------------------------------------------------------


def test_entry_bytes_cover_rows_text_and_positions() -> None:
    """An entry's size is at least its rows' deep size plus the positions array."""
    n = 3_000
    index = pd.date_range(ORIGIN, periods=n, freq="D", name="ts")
    text = pd.Series([f"note number {i} " * 4 for i in range(n)], dtype=object)
    frame = pd.DataFrame({"x": np.arange(n, dtype=float), "note": text.to_numpy()}, index=index)

    store = MemoryStore()

    @range_cached(step="1D", store=store, settle=None, namespace="budget")
    def get(start: Any, end: Any) -> pd.DataFrame:
        return frame.loc[start:end]

    # Measured before the call: an index that has been searched holds a hash
    # table besides its values, which a stored slice of it does not.
    deep = int(frame.memory_usage(deep=True).sum())
    get(index[0], index[-1])
    positions = 8 * n
    got = _one_key_bytes(store)
    assert deep + positions <= got <= 1.2 * (deep + positions) + 4096


# -- a persistent store never refetches because its memory layer evicted -------------


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
@pytest.mark.parametrize("memory", [0, 1, 5_000])
def test_parquet_memory_layer_eviction_reloads_from_disk(
    tmp_path: Path, memory: int, sync: bool
) -> None:
    """A memory layer too small for even one key: every call reads disk, none the provider."""
    calls: list[str] = []
    store = ParquetStore(tmp_path / "cache", memory=memory, durable=False)
    get = cached(store, calls, sync=sync)

    def run(*args: Any) -> pd.DataFrame:
        out = get(*args)
        return asyncio.run(out) if not sync else out  # type: ignore[no-any-return]

    symbols = [f"P{i}" for i in range(12)]
    start, end = ORIGIN, ORIGIN + 199 * DAY
    for s in symbols:
        run(s, start, end)
    assert len(calls) == len(symbols)
    for day in range(150, 200, 7):
        for s in symbols:
            now = start + day * DAY
            same(run(s, now, now), s, now, now)
            same(run(s, now - 30 * DAY, now), s, now - 30 * DAY, now)
    assert len(calls) == len(symbols)
    assert store._memory.nbytes <= max(memory, 0)


# -- thrashing warns once ------------------------------------------------------------


def _cycle(get: Callable[..., Any], keys: int, rounds: int) -> None:
    for _ in range(rounds):
        for i in range(keys):
            s = f"T{i:03d}"
            same(get(s, ORIGIN, ORIGIN + 4 * DAY), s, ORIGIN, ORIGIN + 4 * DAY)


def _cache_warnings(record: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in record if issubclass(w.category, CacheWarning)]


def test_thrashing_by_key_count_warns_once_with_numbers() -> None:
    """20 keys cycling through room for 10: one warning naming maxsize and the counts."""
    calls: list[str] = []
    get = cached(MemoryStore(maxsize=10), calls)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _cycle(get, keys=20, rounds=10)
    (w,) = _cache_warnings(record)
    text = str(w.message)
    assert "MemoryStore(maxsize=" in text and "10 keys" in text
    assert "evicted" in text and "again soon after" in text
    assert w.filename == __file__  # pointed at the user's code (here: _cycle's call)
    assert len(calls) == 200  # thrashing, not a wrong answer: every call fetched


def test_thrashing_by_bytes_warns_naming_maxbytes() -> None:
    """Keys cycling through a byte budget for a few: the warning names ``maxbytes``."""
    probe = MemoryStore()
    cached(probe, [])("T000", ORIGIN, ORIGIN + 4 * DAY)
    one = _one_key_bytes(probe)
    get = cached(MemoryStore(maxbytes=5 * one), [])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _cycle(get, keys=20, rounds=10)
    (w,) = _cache_warnings(record)
    assert "MemoryStore(maxbytes=" in str(w.message)
    assert f"{5 * one:,} bytes" in str(w.message)


@pytest.mark.parametrize(
    ("keys", "rounds"),
    [(10, 30), (400, 1)],
    ids=["working-set-fits", "one-pass-scan"],
)
def test_no_warning_without_thrashing(keys: int, rounds: int) -> None:
    """A working set that fits, or a scan that never comes back: evictions, no warning."""
    get = cached(MemoryStore(maxsize=10), [])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _cycle(get, keys=keys, rounds=rounds)
    assert _cache_warnings(record) == []


def test_a_few_re_asks_among_many_hits_do_not_warn() -> None:
    """Under the threshold (10% of lookups): no warning."""
    get = cached(MemoryStore(maxsize=10), [])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for r in range(40):
            _cycle(get, keys=9, rounds=3)  # hits
            # one key outside the working set now and then: evicts one, re-asked later
            s = f"X{r % 2}"
            get(s, ORIGIN, ORIGIN + 4 * DAY)
    assert _cache_warnings(record) == []


def test_thrashing_warns_in_async_wrappers_too() -> None:
    """The same warning from an async wrapper."""
    get = cached(MemoryStore(maxsize=5), [], sync=False)

    async def main() -> None:
        for _ in range(10):
            for i in range(12):
                await get(f"A{i}", dt.date(2024, 1, 1), dt.date(2024, 1, 5))

    with pytest.warns(CacheWarning, match=r"MemoryStore\(maxsize="):
        asyncio.run(main())


def test_parquet_store_memory_layer_defaults_to_the_same_budget(tmp_path: Path) -> None:
    """``ParquetStore(path)``: its memory layer gets the machine budget; a pickle keeps "auto"."""
    store = ParquetStore(tmp_path / "cache")
    assert store.memory == budget.default_budget()
    again = pickle.loads(pickle.dumps(store))
    assert again.memory == budget.default_budget() and again._memory_option == "auto"
    assert pickle.loads(pickle.dumps(ParquetStore(tmp_path / "c2", memory=123))).memory == 123


# -- benchmarks/bench_scale.py runs (tiny sizes) -------------------------------------

TINY_SCALE = {"symbols": 30, "years": 1, "sample": 5, "days": 8}


@pytest.fixture(scope="module")
def bench_scale() -> Any:
    import importlib.util
    import sys

    path = Path(__file__).parent.parent / "benchmarks" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("_benchmarks_bench_scale", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_scale_backtest_makes_no_provider_calls(bench_scale: Any) -> None:
    """In-process, tiny: the history is fetched once per symbol, the backtest never."""
    for name in ("MemoryStore()", "ParquetStore(tmp, durable=False)"):
        out = bench_scale.run_store(name, **TINY_SCALE)
        assert out["prefetch_calls"] == TINY_SCALE["symbols"]
        assert out["backtest_calls"] == 0 and out["checked_exact"] > 0
        assert out["rows_bytes"] > 0


def test_bench_scale_reports_in_child_processes(bench_scale: Any, tmp_path: Path) -> None:
    """The script's own entry point: child interpreters, a table, JSON; exit 0."""
    out = tmp_path / "scale.json"
    sizes = json.dumps(TINY_SCALE)
    assert bench_scale.main(["--json", str(out), "--sizes", sizes]) == 0
    results = json.loads(out.read_text())
    assert results["sizes"] == TINY_SCALE
    assert {r["store"] for r in results["runs"]} == set(bench_scale.STORES)
    assert all(r["backtest_calls"] == 0 for r in results["runs"])
    assert bench_scale.markdown(results).count("\n| ") == 1 + len(
        bench_scale.STORES
    )  # header + rows
