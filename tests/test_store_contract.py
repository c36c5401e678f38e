"""The store contract (rangememo.testing.StoreContract) run against every store rangememo ships."""

from __future__ import annotations

import pytest

import rangememo
from rangememo import CacheWarning, MemoryStore
from rangememo.testing.store_contract import (
    NAIVE,
    Backend,
    Calls,
    StoreContract,
    assert_same,
    cached,
    key_of,
    ns,
)

BACKENDS = ["memory", "memory-maxbytes", "memory-dict", "parquet", "s3"]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """Each store, with a way to open it again over the same storage."""
    kind = request.param
    if kind == "memory":
        store = MemoryStore()
        made = Backend(store, reopen=lambda: store)
    elif kind == "memory-maxbytes":
        store = MemoryStore(maxbytes=256 * 2**20)
        made = Backend(store, reopen=lambda: store)
    elif kind == "memory-dict":
        mapping: dict = {}
        made = Backend(MemoryStore(cache=mapping), reopen=lambda: MemoryStore(cache=mapping))
    elif kind == "s3":  # a real SeaweedFS (tests/s3fixtures.py), a fresh prefix per test
        url = request.getfixturevalue("s3_bucket_url")
        made = Backend(rangememo.ParquetStore(url), reopen=lambda: rangememo.ParquetStore(url))
    else:
        parquet_store = getattr(rangememo, "ParquetStore", None)
        if parquet_store is None:
            pytest.skip("rangememo.ParquetStore is not there yet")
        path = tmp_path / "cache"
        made = Backend(parquet_store(path), reopen=lambda: parquet_store(path))
    yield made
    made.close()


class TestEveryStore(StoreContract):
    """The whole contract, once per store."""


# -- MemoryStore's own bounds (not part of the contract) ---------------------------------


def test_memory_store_evicts_least_recently_used_keys():
    """``maxsize=2``: a third key evicts the oldest, which is simply fetched again."""
    calls = Calls()
    fn = cached(NAIVE, MemoryStore(maxsize=2), calls=calls)
    for symbol in ("AAA", "BBB", "CCC", "AAA"):
        bounds = NAIVE.bounds(2, 10)
        assert_same(fn(symbol, *bounds), NAIVE.raw(symbol, *bounds))
    assert [c[0] for c in calls.made] == ["AAA", "BBB", "CCC", "AAA"]


def test_memory_store_byte_budget_evicts_and_stays_exact():
    """``maxbytes``: keys beyond the budget are evicted, results stay exact."""
    calls = Calls()
    one_key = MemoryStore()
    cached(NAIVE, one_key)("AAA", *NAIVE.bounds(2, 31))
    budget = int(2.5 * one_key.get(ns(), key_of("AAA")).nbytes)
    fn = cached(NAIVE, MemoryStore(maxbytes=budget), calls=calls)
    for symbol in ("AAA", "BBB", "CCC", "DDD", "AAA"):
        bounds = NAIVE.bounds(2, 31)
        assert_same(fn(symbol, *bounds), NAIVE.raw(symbol, *bounds))
    assert [c[0] for c in calls.made] == ["AAA", "BBB", "CCC", "DDD", "AAA"]


def test_memory_store_key_larger_than_the_budget_is_served_not_raised():
    """A single key bigger than ``maxbytes`` is returned exactly, just not kept."""
    calls = Calls()
    fn = cached(NAIVE, MemoryStore(maxbytes=1_000), calls=calls)
    bounds = NAIVE.bounds(2, 31)
    with pytest.warns(CacheWarning, match="exceeds the store's budget"):
        assert_same(fn("AAA", *bounds), NAIVE.raw("AAA", *bounds))
    with pytest.warns(CacheWarning, match="exceeds the store's budget"):
        assert_same(fn("AAA", *bounds), NAIVE.raw("AAA", *bounds))


def test_memory_store_over_a_plain_dict_shares_entries():
    """Two stores over one dict see each other's entries (the mapping is the storage)."""
    mapping: dict = {}
    calls = Calls()
    cached(NAIVE, MemoryStore(cache=mapping))("AAA", *NAIVE.bounds(2, 10))
    fn = cached(NAIVE, MemoryStore(cache=mapping), calls=calls)
    bounds = NAIVE.bounds(2, 10)
    assert_same(fn("AAA", *bounds), NAIVE.raw("AAA", *bounds))
    assert calls.made == []
    assert len(mapping) == 1
