"""ParquetStore on S3-compatible object storage, against a real SeaweedFS server.

The server is started by the ``seaweed`` fixture (``tests/s3fixtures.py``); a
fault proxy (``tests/faultproxy.py``) sits in front of it where a test needs
5xx answers, delays, stripped preconditions or request counts.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import time
import warnings
from typing import Any

import obstore
import pandas as pd
import pytest
from click.testing import CliRunner
from faultproxy import FaultProxy
from pandas.testing import assert_frame_equal

import rangememo
from rangememo import CacheWarning, ParquetStore, range_cached
from rangememo._cli import main as cli
from rangememo._stores import default as default_mod
from rangememo._stores.parquet.maintenance import find, verify
from rangememo._stores.parquet.s3.lease import LOCKS
from rangememo._stores.parquet.s3.options import S3Location
from rangememo._stores.parquet.s3.probe import ConditionalWritesUnsupported
from rangememo._stores.parquet.tidy import collect
from rangememo.testing import make_bars

NS = "s3tests.bars"
FAST = {"max_retries": 1, "retry_timeout": 3, "timeout": 2, "connect_timeout": 1}


def day(n: int) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=n)


def bars(store: Any, calls: list[tuple[Any, Any]] | None = None, namespace: str = NS) -> Any:
    made = calls if calls is not None else []

    @range_cached(key=("symbol",), step="1D", store=store, namespace=namespace)
    def get_bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        made.append((start, end))
        return make_bars(symbol, start, end)

    return get_bars


def raw_store(url: str) -> Any:
    """A plain obstore client on ``url``'s prefix: what the test reads behind the store."""
    return S3Location.from_url(url).open()


def everything(url: str) -> list[str]:
    """Every object under the store's prefix (names relative to it)."""
    return sorted(str(m["path"]) for batch in obstore.list(raw_store(url)) for m in batch)


def test_round_trip_is_exact_and_a_new_store_reads_it_without_calls(s3_bucket_url):
    calls: list[Any] = []
    fn = bars(ParquetStore(s3_bucket_url), calls)
    first = fn("AAA", day(0), day(10))
    assert_frame_equal(first, make_bars("AAA", day(0), day(10)))
    part = fn("AAA", day(5), day(20))
    assert_frame_equal(part, make_bars("AAA", day(5), day(20)))
    assert calls == [(day(0), day(10)), (day(11), day(20))]

    again: list[Any] = []
    other = bars(ParquetStore(s3_bucket_url), again)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_frame_equal(other("AAA", day(0), day(20)), make_bars("AAA", day(0), day(20)))
    assert again == []
    assert verify(s3_bucket_url).problems == []


def test_store_string_env_default_and_pickle_all_reach_one_cache(s3_bucket_url, monkeypatch):
    calls: list[Any] = []
    fn = bars(s3_bucket_url, calls)  # store="s3://..." as a string
    fn("AAA", day(0), day(9))
    assert isinstance(fn.cache.store, ParquetStore)
    assert fn.cache.store.url == s3_bucket_url

    # RANGEMEMO_CACHE_DIR=s3://... makes it the default store: no code change.
    monkeypatch.setenv("RANGEMEMO_CACHE_DIR", s3_bucket_url)
    monkeypatch.setattr(default_mod, "_DEFAULT", None)
    default_calls: list[Any] = []
    assert_frame_equal(
        bars(None, default_calls)("AAA", day(0), day(9)), make_bars("AAA", day(0), day(9))
    )
    assert default_calls == []
    assert rangememo.default_store().url == s3_bucket_url  # type: ignore[attr-defined]

    # Pickled by URL and options: a worker reopens the same store.
    store = ParquetStore(s3_bucket_url, storage_options=dict(FAST), refresh=0.5)
    copy = pickle.loads(pickle.dumps(store))
    assert (copy.url, copy.storage_options, copy.refresh) == (s3_bucket_url, FAST, 0.5)
    worker_calls: list[Any] = []
    bars(copy, worker_calls)("AAA", day(0), day(9))
    assert worker_calls == []


def test_a_proxy_that_strips_conditional_headers_is_refused(fault_proxy, s3_bucket_url):
    fault_proxy.strip_preconditions()
    calls: list[Any] = []
    fn = bars(ParquetStore(s3_bucket_url), calls)
    with pytest.raises(ConditionalWritesUnsupported, match="conditional writes"):
        fn("AAA", day(0), day(3))
    fault_proxy.clear_faults()
    assert [n for n in everything(s3_bucket_url) if not n.startswith(".probe")] == []
    # With the headers passed again the same store works.
    assert_frame_equal(fn("AAA", day(0), day(3)), make_bars("AAA", day(0), day(3)))


def test_5xx_past_the_retries_answers_uncached_with_a_warning(fault_proxy, s3_bucket_url):
    store = ParquetStore(s3_bucket_url, storage_options=FAST)
    calls: list[Any] = []
    fn = bars(store, calls)
    fn("AAA", day(0), day(4))  # a first commit: probe done, log started
    before = everything(s3_bucket_url)
    fault_proxy.fail_next(None, status=503, method="PUT")
    started = time.monotonic()
    with pytest.warns(CacheWarning, match="not cached"):
        got = fn("AAA", day(5), day(9))
    assert time.monotonic() - started < 30  # bounded: retries, then give up
    assert_frame_equal(got, make_bars("AAA", day(5), day(9)))
    fault_proxy.clear_faults()
    assert everything(s3_bucket_url) == before  # the log unchanged, nothing half-written
    fresh: list[Any] = []
    assert_frame_equal(
        bars(ParquetStore(s3_bucket_url), fresh)("AAA", day(0), day(9)),
        make_bars("AAA", day(0), day(9)),
    )
    assert fresh == [(day(5), day(9))]


def test_a_storage_timeout_on_read_answers_from_the_provider(fault_proxy, s3_bucket_url):
    bars(ParquetStore(s3_bucket_url), [])("AAA", day(0), day(4))
    fault_proxy.delay(5.0, method="GET")
    fault_proxy.delay(5.0, method="HEAD")
    calls: list[Any] = []
    fn = bars(ParquetStore(s3_bucket_url, storage_options=FAST), calls)
    with pytest.warns(CacheWarning):
        got = fn("AAA", day(0), day(4))
    assert_frame_equal(got, make_bars("AAA", day(0), day(4)))
    assert calls  # the provider answered while the store did not


def test_a_damaged_object_is_quarantined_and_its_range_refetched(s3_bucket_url):
    bars(ParquetStore(s3_bucket_url), [])("AAA", day(0), day(9))
    store = raw_store(s3_bucket_url)
    segment = next(n for n in everything(s3_bucket_url) if n.endswith(".parquet"))
    data = bytes(obstore.get(store, segment).bytes())
    obstore.put(store, segment, data[: len(data) // 2])  # truncated in place
    calls: list[Any] = []
    fn = bars(ParquetStore(s3_bucket_url), calls)
    with pytest.warns(CacheWarning, match="damaged"):
        got = fn("AAA", day(0), day(9))
    assert_frame_equal(got, make_bars("AAA", day(0), day(9)))
    assert calls == [(day(0), day(9))]
    names = everything(s3_bucket_url)
    assert segment not in names
    assert any(n.startswith(".quarantine/") for n in names)
    assert verify(s3_bucket_url).problems == []


def test_orphans_are_reported_by_verify_and_removed_by_gc(s3_bucket_url):
    bars(ParquetStore(s3_bucket_url), [])("AAA", day(0), day(9))
    info = find(s3_bucket_url)[0]
    orphan = f"{info.paths.prefix}/seg-{'0' * 32}.parquet"
    obstore.put(raw_store(s3_bucket_url), orphan, b"an upload whose commit never came")
    report = verify(s3_bucket_url)
    assert report.problems == []
    assert any("orphan" in note for _, note in report.notes)
    removed = collect(s3_bucket_url, grace=0.0)
    assert any(orphan in r for r in removed)
    assert orphan not in everything(s3_bucket_url)
    calls: list[Any] = []
    bars(ParquetStore(s3_bucket_url), calls)("AAA", day(0), day(9))
    assert calls == []


def test_the_cli_works_on_an_s3_url(s3_bucket_url):
    bars(ParquetStore(s3_bucket_url), [])("AAA", day(0), day(9))
    bars(ParquetStore(s3_bucket_url), [], namespace="s3tests.other")("BBB", day(0), day(3))
    runner = CliRunner()
    listed = runner.invoke(cli, ["--dir", s3_bucket_url, "ls"])
    assert listed.exit_code == 0, listed.output
    assert "s3tests.bars" in listed.output and "s3tests.other" in listed.output
    shown = runner.invoke(cli, ["--dir", s3_bucket_url, "show", "s3tests.bars", "('AAA',)"])
    assert shown.exit_code == 0, shown.output
    assert s3_bucket_url in shown.output.replace("\n", "")
    assert runner.invoke(cli, ["--dir", s3_bucket_url, "verify"]).exit_code == 0
    assert runner.invoke(cli, ["--dir", s3_bucket_url, "gc"]).exit_code == 0
    assert runner.invoke(cli, ["--dir", s3_bucket_url, "compact"]).exit_code == 0
    cleared = runner.invoke(cli, ["--dir", s3_bucket_url, "clear", "s3tests.other"])
    assert cleared.exit_code == 0, cleared.output
    assert [i.namespace for i in find(s3_bucket_url)] == ["s3tests.bars@v0"]
    assert runner.invoke(cli, ["--dir", s3_bucket_url, "clear", "--yes"]).exit_code == 0
    assert find(s3_bucket_url) == []


def test_every_object_stays_under_the_prefix(seaweed, s3_bucket_url):
    store = ParquetStore(s3_bucket_url)
    fn = bars(store, [])
    for d in range(0, 40, 2):
        fn("AAA", day(d), day(d + 1))
    fn.invalidate("AAA", start=day(3), end=day(5))
    store.compact()
    prefix = s3_bucket_url.split("/", 3)[3]
    whole = raw_store(s3_bucket_url.rsplit("/", 1)[0])
    mine = [str(m["path"]) for batch in obstore.list(whole, prefix=prefix + "/") for m in batch]
    assert mine and all(n.startswith(prefix + "/") for n in mine)
    # Nothing else of this test anywhere in the bucket (a sibling prefix, the root).
    everything_else = [
        str(m["path"])
        for batch in obstore.list(whole)
        for m in batch
        if prefix in str(m["path"]) and not str(m["path"]).startswith(prefix + "/")
    ]
    assert everything_else == []


def test_hits_revalidate_only_after_refresh_but_gaps_see_the_newest_log(
    fault_proxy: FaultProxy, s3_bucket_url: str
) -> None:
    reader_calls: list[Any] = []
    reader = bars(ParquetStore(s3_bucket_url, refresh=3600), reader_calls)
    writer_calls: list[Any] = []
    writer = bars(ParquetStore(s3_bucket_url), writer_calls)
    reader("AAA", day(0), day(9))
    fault_proxy.reset()
    for _ in range(20):
        reader("AAA", day(2), day(5))
    assert sum(fault_proxy.counts.values()) == 0  # served from memory within refresh
    writer("AAA", day(10), day(19))  # another machine extends the key
    got = reader("AAA", day(0), day(19))  # a gap in the reader's view
    assert_frame_equal(got, make_bars("AAA", day(0), day(19)))
    assert reader_calls == [(day(0), day(9))]  # planned against the newest log: no refetch
    assert writer_calls == [(day(10), day(19))]


def test_a_stale_view_never_overwrites_a_newer_commit(s3_bucket_url):
    """Two stores commit to one key from stale views: both commits survive."""
    a_calls: list[Any] = []
    b_calls: list[Any] = []
    a = bars(ParquetStore(s3_bucket_url, refresh=3600), a_calls)
    b = bars(ParquetStore(s3_bucket_url, refresh=3600), b_calls)
    a("AAA", day(0), day(4))
    b("AAA", day(0), day(4))
    a("AAA", day(10), day(14))
    b("AAA", day(20), day(24))
    fresh: list[Any] = []
    got = bars(ParquetStore(s3_bucket_url), fresh)("AAA", day(0), day(24))
    assert_frame_equal(got, make_bars("AAA", day(0), day(24)))
    assert sorted(fresh) == [(day(5), day(9)), (day(15), day(19))]  # two gaps, any order
    assert a_calls == [(day(0), day(4)), (day(10), day(14))]
    assert b_calls == [(day(20), day(24))]  # b read a's first commit instead of fetching


def test_an_expired_lease_is_taken_over_and_a_live_one_is_waited_for(s3_bucket_url):
    store = ParquetStore(s3_bucket_url, lease=1.0)
    fn = bars(store, [])
    fn("AAA", day(0), day(1))
    prefix = find(s3_bucket_url)[0].paths.prefix
    name = f"{LOCKS}/{prefix}.json"
    raw = raw_store(s3_bucket_url)
    # A holder that died: its lease expired a while ago.
    dead = {"owner": "elsewhere-1", "time": 0, "expires": time.time() - 60, "n": "x"}
    obstore.put(raw, name, json.dumps(dead).encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        started = time.monotonic()
        fn("AAA", day(2), day(3))
        assert time.monotonic() - started < 5
    # A holder that is alive for another 1.5 s: the writer waits for it.
    live = {"owner": "elsewhere-2", "time": time.time(), "expires": time.time() + 1.5, "n": "y"}
    obstore.put(raw, name, json.dumps(live).encode())
    started = time.monotonic()
    fn("AAA", day(4), day(5))
    assert time.monotonic() - started >= 1.0
    assert name not in everything(s3_bucket_url)  # released after the commit


def test_local_paths_and_file_urls_keep_working(tmp_path):
    calls: list[Any] = []
    bars(f"file://{tmp_path}/c", calls)("AAA", day(0), day(3))
    again: list[Any] = []
    bars(str(tmp_path / "c"), again)("AAA", day(0), day(3))
    assert len(calls) == 1 and again == []
    assert os.listdir(tmp_path / "c")


def test_async_callers_share_one_fetch_per_gap(s3_bucket_url):
    import asyncio

    calls: list[Any] = []

    @range_cached(key=("symbol",), step="1D", store=ParquetStore(s3_bucket_url), namespace=NS)
    async def get_bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append((start, end))
        await asyncio.sleep(0.05)
        return make_bars(symbol, start, end)

    async def main() -> list[pd.DataFrame]:
        return await asyncio.gather(*(get_bars("AAA", day(0), day(d)) for d in (5, 9, 9, 5)))

    for got, d in zip(asyncio.run(main()), (5, 9, 9, 5), strict=True):
        assert_frame_equal(got, make_bars("AAA", day(0), day(d)))
    fetched = sorted(calls)
    for (_, b), (c, _) in itertools.pairwise(fetched):
        assert b < c  # no day fetched twice
    assert fetched[0][0] == day(0) and fetched[-1][1] == day(9)
