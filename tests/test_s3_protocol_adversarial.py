"""Adversarial tests of the S3 commit protocol: prefixes, other stores' changes, lost answers.

Against the real SeaweedFS of ``tests/s3fixtures.py``. Expected values always
come from the provider itself: a deterministic fake whose values depend on the
day and on a generation counter that a test bumps to mean "the source changed".
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import obstore
import pandas as pd
import pytest
from faultproxy import FaultProxy
from pandas.testing import assert_frame_equal

from rangememo import CacheWarning, ParquetStore, range_cached
from rangememo._stores.parquet.maintenance import verify
from rangememo._stores.parquet.s3.options import S3Location
from rangememo._stores.parquet.s3.probe import ConditionalWritesUnsupported
from rangememo._stores.parquet.tidy import collect

NS = "s3proto.values"
FAST = {"max_retries": 1, "retry_timeout": 3, "timeout": 2, "connect_timeout": 1}


def day(n: int) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=n)


class Source:
    """The uncached provider: one row per day; values depend on symbol, day and ``gen``."""

    def __init__(self) -> None:
        self.gen = 0
        self.calls: list[tuple[str, pd.Timestamp, pd.Timestamp]] = []

    def frame(self, symbol: str, start: Any, end: Any) -> pd.DataFrame:
        idx = pd.date_range(pd.Timestamp(start).ceil("D"), pd.Timestamp(end).floor("D"), freq="D")
        days = ((idx - pd.Timestamp("2024-01-01")) // pd.Timedelta(days=1)).to_numpy()
        seed = sum(map(ord, symbol))
        value = days.astype(np.float64) * 1000.0 + self.gen * 10.0 + seed % 7
        return pd.DataFrame(
            {"v": value, "gen": np.full(len(idx), self.gen, dtype=np.int64)},
            index=pd.DatetimeIndex(idx.to_numpy(), name="time"),  # no freq (decisions.md)
        )

    def cached(self, store: Any, namespace: str = NS, **kw: Any) -> Any:
        @range_cached(key=("symbol",), step="1D", store=store, namespace=namespace, **kw)
        def get(symbol: str, start: Any, end: Any) -> pd.DataFrame:
            self.calls.append((symbol, start, end))
            return self.frame(symbol, start, end)

        return get


def bucket_root(url: str) -> str:
    return "s3://" + url[len("s3://") :].split("/", 1)[0]


def bucket_objects(url: str) -> dict[str, str]:
    """Every object in the whole bucket: name -> ETag."""
    raw = S3Location.from_url(bucket_root(url)).open()
    return {str(m["path"]): str(m["e_tag"]) for batch in obstore.list(raw) for m in batch}


def under(objects: dict[str, str], prefix: str) -> dict[str, str]:
    return {n: e for n, e in objects.items() if n.startswith(prefix + "/")}


def base_prefix(url: str) -> str:
    return url[len("s3://") :].split("/", 1)[1]


def quietly(fn: Any, *args: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


# -- prefixes ----------------------------------------------------------------------


def test_sibling_prefixes_a_and_ab_never_see_or_delete_each_other(s3_bucket_url: str) -> None:
    base = base_prefix(s3_bucket_url)
    url_a, url_ab = f"{s3_bucket_url}/a", f"{s3_bucket_url}/ab"
    src = Source()
    quietly(src.cached(ParquetStore(url_ab)), "AAA", day(0), day(9))
    src.cached(ParquetStore(url_ab), namespace="s3proto.other")("BBB", day(0), day(3))
    ab_before = under(bucket_objects(s3_bucket_url), f"{base}/ab")
    assert ab_before

    store_a = ParquetStore(url_a)
    fa = src.cached(store_a)
    assert_frame_equal(quietly(fa, "AAA", day(0), day(9)), src.frame("AAA", day(0), day(9)))
    assert src.calls[-1] == ("AAA", day(0), day(9))  # a does not see ab's cache
    fa.invalidate("AAA", start=day(2), end=day(3))
    fa("AAA", day(0), day(9))
    store_a.compact()
    collect(url_a, grace=0.0)
    verify(url_a)
    assert under(bucket_objects(s3_bucket_url), f"{base}/ab") == ab_before
    fa.cache_clear()
    store_a.clear()
    everything_now = bucket_objects(s3_bucket_url)
    assert under(everything_now, f"{base}/ab") == ab_before
    assert under(everything_now, f"{base}/a") == {} or all(
        n.startswith(f"{base}/a/.leases/") for n in under(everything_now, f"{base}/a")
    )
    n = len(src.calls)
    got = quietly(src.cached(ParquetStore(url_ab)), "AAA", day(0), day(9))
    assert_frame_equal(got, src.frame("AAA", day(0), day(9)))
    assert len(src.calls) == n


@pytest.mark.parametrize("spelling", ["{}/", "{}//", "{}/x/", "{}/x//"])
def test_a_trailing_slash_names_the_same_store(s3_bucket_url: str, spelling: str) -> None:
    plain = s3_bucket_url + ("/x" if "/x" in spelling else "")
    odd = spelling.format(s3_bucket_url)
    src = Source()
    quietly(src.cached(ParquetStore(plain)), "AAA", day(0), day(5))
    n = len(src.calls)
    got = quietly(src.cached(ParquetStore(odd)), "AAA", day(0), day(5))
    assert_frame_equal(got, src.frame("AAA", day(0), day(5)))
    assert len(src.calls) == n
    base = base_prefix(plain)
    names = [k for k in bucket_objects(s3_bucket_url) if base_prefix(s3_bucket_url) in k]
    assert names and all(k.startswith(base + "/") for k in names)


@pytest.mark.parametrize(
    "odd", ["sp ace", "per%cent", "til~de", "ünï", "star*", "q?mark", "a+b", "br[ack]et", "ha#sh"]
)
def test_odd_characters_in_the_prefix_stay_exactly_under_that_prefix(
    s3_bucket_url: str, odd: str
) -> None:
    url = f"{s3_bucket_url}/{odd}"
    src = Source()
    store = ParquetStore(url)
    fn = src.cached(store)
    assert_frame_equal(quietly(fn, "AAA", day(0), day(5)), src.frame("AAA", day(0), day(5)))
    fn.invalidate("AAA", start=day(1), end=day(1))
    fn("AAA", day(0), day(5))
    store.compact()
    n = len(src.calls)
    assert_frame_equal(
        quietly(src.cached(ParquetStore(url)), "AAA", day(0), day(5)),
        src.frame("AAA", day(0), day(5)),
    )
    assert len(src.calls) == n
    expected = f"{base_prefix(s3_bucket_url)}/{odd}/"
    mine = [k for k in bucket_objects(s3_bucket_url) if base_prefix(s3_bucket_url) in k]
    assert mine and all(k.startswith(expected) for k in mine), mine[:5]


@pytest.mark.parametrize(("one", "two"), [("per%cent", "per%25cent"), ("sp ace", "sp%20ace")])
def test_two_distinct_prefixes_never_share_one_cache(
    s3_bucket_url: str, one: str, two: str
) -> None:
    src = Source()
    quietly(src.cached(ParquetStore(f"{s3_bucket_url}/{one}")), "AAA", day(0), day(5))
    n = len(src.calls)
    got = quietly(src.cached(ParquetStore(f"{s3_bucket_url}/{two}")), "AAA", day(0), day(5))
    assert_frame_equal(got, src.frame("AAA", day(0), day(5)))
    assert len(src.calls) == n + 1  # another prefix: another cache
    names = {k for k in bucket_objects(s3_bucket_url) if base_prefix(s3_bucket_url) in k}
    base = base_prefix(s3_bucket_url)
    assert any(k.startswith(f"{base}/{one}/") for k in names)
    assert any(k.startswith(f"{base}/{two}/") for k in names)


# -- another store changes a key this one holds --------------------------------------


# Found by this file: log._genuine folded a new log's record onto a state whose anchor
# was still there as another file (the key cleared and written again elsewhere).


@pytest.mark.parametrize("rewrites", [1, 3, 12])
def test_a_key_cleared_and_rewritten_elsewhere_is_answered_with_the_new_rows(
    s3_bucket_url: str, rewrites: int
) -> None:
    src = Source()
    a = src.cached(ParquetStore(s3_bucket_url, refresh=0))
    b_store = ParquetStore(s3_bucket_url, refresh=0)
    b = src.cached(b_store)
    for lo in range(0, 12, 4):  # a few records in A's view
        a("AAA", day(lo), day(lo + 3))
    assert_frame_equal(a("AAA", day(0), day(11)), src.frame("AAA", day(0), day(11)))
    b.cache_clear()
    src.gen = 1
    for i in range(rewrites):  # as many records again as A read, fewer, or more
        b("AAA", day(i), day(i))
    b("AAA", day(0), day(11))
    n = len(src.calls)
    got = a("AAA", day(0), day(11))
    assert_frame_equal(got, src.frame("AAA", day(0), day(11)))  # gen 1 everywhere
    assert len(src.calls) == n
    assert verify(s3_bucket_url).problems == []


def test_a_range_invalidated_elsewhere_is_refetched_by_a_reader_that_holds_it(
    s3_bucket_url: str,
) -> None:
    src = Source()
    a = src.cached(ParquetStore(s3_bucket_url, refresh=0))
    b = src.cached(ParquetStore(s3_bucket_url, refresh=0))
    a("AAA", day(0), day(19))
    b("AAA", day(0), day(19))
    b.invalidate("AAA", start=day(5), end=day(9))
    old = src.frame("AAA", day(0), day(19))
    src.gen = 1
    n = len(src.calls)
    got = a("AAA", day(0), day(19))
    assert src.calls[n:] == [("AAA", day(5), day(9))]
    new = src.frame("AAA", day(0), day(19))
    want = pd.concat([old.iloc[:5], new.iloc[5:10], old.iloc[10:]])
    assert_frame_equal(got, want)
    # B, which invalidated, reads A's refetch instead of fetching again.
    assert_frame_equal(b("AAA", day(0), day(19)), want)
    assert len(src.calls) == n + 1


def test_a_whole_key_forgotten_elsewhere_is_refetched(s3_bucket_url: str) -> None:
    src = Source()
    a = src.cached(ParquetStore(s3_bucket_url, refresh=0))
    b = src.cached(ParquetStore(s3_bucket_url, refresh=0))
    a("AAA", day(0), day(9))
    a("BBB", day(0), day(9))
    b.invalidate("AAA")
    src.gen = 2
    got = a("AAA", day(0), day(9))
    assert_frame_equal(got, src.frame("AAA", day(0), day(9)))
    n = len(src.calls)
    assert_frame_equal(a("BBB", day(0), day(9)), Source().frame("BBB", day(0), day(9)))
    assert len(src.calls) == n


@pytest.mark.parametrize("gc_grace", [0.0, 300.0])
def test_compaction_and_gc_elsewhere_under_a_lazily_loaded_key(
    s3_bucket_url: str, gc_grace: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small pieces stay separate segments (as tests/test_parquet_write_path.py does).
    from rangememo._stores.parquet import compaction, keywrite

    monkeypatch.setattr(compaction, "SMALL_ROWS", 2)
    monkeypatch.setattr(keywrite, "SMALL_ROWS", 2)
    monkeypatch.setattr(compaction, "WRITE_MERGE_ROWS", 2)
    src = Source()
    a_store = ParquetStore(s3_bucket_url, refresh=0, eager_rows=1)
    a = src.cached(a_store)
    w = src.cached(ParquetStore(s3_bucket_url, refresh=0), readahead=None)
    for lo in range(57, -1, -3):
        w("AAA", day(lo), day(lo + 2))
    want = src.frame("AAA", day(0), day(59))
    n = len(src.calls)
    assert_frame_equal(a("AAA", day(0), day(2)), want.iloc[0:3])  # A opens it lazily
    b_store = ParquetStore(s3_bucket_url, refresh=0)
    merged = b_store.compact()
    assert merged > 0
    collect(s3_bucket_url, grace=gc_grace)
    for lo, hi in [(10, 20), (0, 59), (33, 34), (57, 59)]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = a("AAA", day(lo), day(hi))
        assert_frame_equal(got, want.iloc[lo : hi + 1])
    assert len(src.calls) == n
    assert verify(s3_bucket_url).problems == []


def test_clearing_one_namespace_leaves_every_object_of_another(s3_bucket_url: str) -> None:
    src = Source()
    store = ParquetStore(s3_bucket_url)
    one = src.cached(store, namespace="s3proto.one")
    # Namespaces whose names are prefixes of each other, or sanitise alike.
    others = [src.cached(store, namespace=n) for n in ("s3proto.one2", "s3proto.one_", "s3proto")]
    for f in others:
        for lo in range(0, 40, 4):
            f("AAA", day(lo), day(lo + 3))
    for lo in range(0, 40, 4):
        one("AAA", day(lo), day(lo + 3))
    base = base_prefix(s3_bucket_url)
    before = under(bucket_objects(s3_bucket_url), base)
    one.cache_clear()
    after = under(bucket_objects(s3_bucket_url), base)
    gone = set(before) - set(after)
    assert gone
    from rangememo._stores.parquet.layout import namespace_dirname

    mine = namespace_dirname("s3proto.one@v0")
    assert all(f"/{mine}/" in n for n in gone), sorted(gone)[:5]
    assert all(after.get(n) == e for n, e in before.items() if f"/{mine}/" not in n)
    n = len(src.calls)
    fresh = ParquetStore(s3_bucket_url)
    for name in ("s3proto.one2", "s3proto.one_", "s3proto"):
        got = quietly(src.cached(fresh, namespace=name), "AAA", day(0), day(39))
        assert_frame_equal(got, src.frame("AAA", day(0), day(39)))
    assert len(src.calls) == n


def test_minimal_fork_after_clear_and_rewrite(s3_bucket_url: str) -> None:
    """Minimal reproduction: A writes records 1-3; B clears and writes records 1-4."""
    src = Source()
    a = src.cached(ParquetStore(s3_bucket_url, refresh=0))
    b = src.cached(ParquetStore(s3_bucket_url, refresh=0))
    for d in (0, 10, 20):
        a("AAA", day(d), day(d))
    b.cache_clear()
    src.gen = 1
    for d in (0, 10, 20, 30):
        b("AAA", day(d), day(d))
    n = len(src.calls)
    assert_frame_equal(a("AAA", day(0), day(0)), src.frame("AAA", day(0), day(0)))
    assert len(src.calls) == n


# -- answers lost after the write landed ----------------------------------------------


@pytest.mark.parametrize("part", ["namespace.json", "code.json", ".probe/", "/log/0000000001"])
def test_a_lost_answer_to_a_first_write_that_landed(
    fault_proxy: FaultProxy, s3_bucket_url: str, part: str
) -> None:
    fault_proxy.drop_next(1, when="after", method="PUT", path_contains=part)
    src = Source()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        got = src.cached(ParquetStore(s3_bucket_url, storage_options=FAST))("AAA", day(0), day(4))
    assert_frame_equal(got, src.frame("AAA", day(0), day(4)))
    fault_proxy.clear_faults()
    assert any(s.fault == "drop" for s in fault_proxy.seen)  # the fault did fire
    names = under(bucket_objects(s3_bucket_url), base_prefix(s3_bucket_url))
    assert not any("/.probe/" in n for n in names)
    n = len(src.calls)
    again = quietly(src.cached(ParquetStore(s3_bucket_url)), "AAA", day(0), day(4))
    assert_frame_equal(again, src.frame("AAA", day(0), day(4)))
    assert len(src.calls) == n
    assert verify(s3_bucket_url).problems == []


def test_the_probe_runs_again_for_the_same_url_on_another_endpoint(
    seaweed: Any, fault_proxy: FaultProxy, s3_bucket_url: str
) -> None:
    direct = {"endpoint": seaweed.env()["AWS_ENDPOINT_URL"]}
    Source().cached(ParquetStore(s3_bucket_url, storage_options=direct))("AAA", day(0), day(3))
    fault_proxy.strip_preconditions()
    via_proxy = {"endpoint": fault_proxy.endpoint}
    with pytest.raises(ConditionalWritesUnsupported):
        Source().cached(ParquetStore(s3_bucket_url, storage_options=via_proxy))(
            "BBB", day(0), day(3)
        )
