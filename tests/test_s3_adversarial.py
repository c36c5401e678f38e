"""Adversarial scenarios for ParquetStore on S3: lost answers, odd keys, races.

Against a real SeaweedFS (``tests/s3fixtures.py``) with the fault proxy in front
where a test needs it. The bar for each: a cached call returns exactly what the
uncached call returns, a range already stored is never fetched again (unless a
fault forced it, with a CacheWarning), and nothing stored is lost or damaged.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any

import obstore
import pandas as pd
import pytest
from faultproxy import FaultProxy
from pandas.testing import assert_frame_equal

from rangememo import CacheWarning, ParquetStore, range_cached
from rangememo._stores.parquet.maintenance import verify
from rangememo._stores.parquet.s3.options import S3Location
from rangememo.testing import make_bars

NS = "s3adv.bars"
FAST = {"max_retries": 1, "retry_timeout": 3, "timeout": 2, "connect_timeout": 1}


def day(n: int) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=n)


def bars(store: Any, calls: list[Any] | None = None, pause: float = 0.0) -> Any:
    made = calls if calls is not None else []

    @range_cached(key=("symbol",), step="1D", store=store, namespace=NS)
    def get_bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        made.append((symbol, start, end))
        if pause:
            time.sleep(pause)
        return make_bars(symbol, start, end)

    return get_bars


def everything(url: str) -> list[str]:
    raw = S3Location.from_url(url).open()
    return sorted(str(m["path"]) for batch in obstore.list(raw) for m in batch)


def fresh_read(url: str, symbol: str, lo: int, hi: int) -> list[Any]:
    """Read back through a new store; return the provider calls it needed."""
    calls: list[Any] = []
    got = bars(ParquetStore(url), calls)(symbol, day(lo), day(hi))
    assert_frame_equal(got, make_bars(symbol, day(lo), day(hi)))
    return calls


def quietly(fn: Any, *args: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


# -- answers lost after the write landed ------------------------------------------


@pytest.mark.parametrize("part", ["/log/", "seg-", "checkpoint"])
def test_a_lost_answer_to_a_write_that_landed_loses_nothing(
    fault_proxy: FaultProxy, s3_bucket_url: str, part: str
) -> None:
    store = ParquetStore(s3_bucket_url, storage_options=FAST)
    calls: list[Any] = []
    fn = bars(store, calls)
    fn("AAA", day(0), day(4))
    fault_proxy.drop_next(3, when="after", method="PUT", path_contains=part)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        got = fn("AAA", day(5), day(9))
    assert_frame_equal(got, make_bars("AAA", day(5), day(9)))
    fault_proxy.clear_faults()
    # What the first commit stored is never lost; the second may or may not be.
    again = fresh_read(s3_bucket_url, "AAA", 0, 9)
    assert ("AAA", day(0), day(4)) not in again
    assert verify(s3_bucket_url).problems == []
    assert fresh_read(s3_bucket_url, "AAA", 0, 9) == []


@pytest.mark.parametrize("method", ["PUT", "HEAD", "DELETE", "GET"])
def test_a_lost_answer_on_the_lease_neither_hangs_nor_refetches(
    fault_proxy: FaultProxy, s3_bucket_url: str, method: str
) -> None:
    store = ParquetStore(s3_bucket_url, storage_options=FAST)
    calls: list[Any] = []
    fn = bars(store, calls)
    fn("AAA", day(0), day(4))
    fault_proxy.drop_next(1, when="after", method=method, path_contains=".locks/")
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        got = fn("AAA", day(5), day(9))
    assert_frame_equal(got, make_bars("AAA", day(5), day(9)))
    fault_proxy.clear_faults()
    # The next writer (a new store: no memory of the lease) must not wait 30 s
    # for a lease whose release was lost, nor refetch what was committed.
    other: list[Any] = []
    assert_frame_equal(
        bars(ParquetStore(s3_bucket_url), other)("AAA", day(0), day(14)),
        make_bars("AAA", day(0), day(14)),
    )
    assert time.monotonic() - started < 15
    assert ("AAA", day(0), day(4)) not in other
    assert calls.count(("AAA", day(5), day(9))) == 1


@pytest.mark.parametrize("part", ["/log/", "seg-", ".locks/"])
def test_503s_then_recovery_return_the_right_data(
    fault_proxy: FaultProxy, s3_bucket_url: str, part: str
) -> None:
    store = ParquetStore(s3_bucket_url, storage_options=FAST)
    calls: list[Any] = []
    fn = bars(store, calls)
    fn("AAA", day(0), day(4))
    fault_proxy.fail_next(1, status=503, path_contains=part)  # one retry covers it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_frame_equal(fn("AAA", day(0), day(9)), make_bars("AAA", day(0), day(9)))
    fault_proxy.clear_faults()
    assert calls == [("AAA", day(0), day(4)), ("AAA", day(5), day(9))]
    assert fresh_read(s3_bucket_url, "AAA", 0, 9) == []


def test_segment_reads_failing_answer_from_the_provider_with_a_warning(
    fault_proxy: FaultProxy, s3_bucket_url: str
) -> None:
    bars(ParquetStore(s3_bucket_url), [])("AAA", day(0), day(9))
    fault_proxy.fail_next(None, status=503, method="GET", path_contains="seg-")
    calls: list[Any] = []
    with pytest.warns(CacheWarning):
        got = bars(ParquetStore(s3_bucket_url, storage_options=FAST), calls)("AAA", day(0), day(9))
    assert_frame_equal(got, make_bars("AAA", day(0), day(9)))
    fault_proxy.clear_faults()
    assert fresh_read(s3_bucket_url, "AAA", 0, 9) == []  # nothing quarantined for a 503


# -- odd input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "symbol",
    ["../x", "../../escape", "a/b/../c", "日本語-ü", "x" * 600, "sp ace%2F?#&", ".locks"],
)
def test_odd_keys_round_trip_and_stay_under_the_prefix(s3_bucket_url: str, symbol: str) -> None:
    calls: list[Any] = []
    fn = bars(ParquetStore(s3_bucket_url), calls)
    assert_frame_equal(fn(symbol, day(0), day(3)), make_bars(symbol, day(0), day(3)))
    assert fresh_read(s3_bucket_url, symbol, 0, 3) == []
    prefix = s3_bucket_url.split("/", 3)[3]
    whole = S3Location.from_url(s3_bucket_url.rsplit("/", 1)[0]).open()
    names = [str(m["path"]) for batch in obstore.list(whole) for m in batch]
    mine = [n for n in names if prefix in n]
    assert mine and all(n.startswith(prefix + "/") for n in mine)
    assert verify(s3_bucket_url).problems == []


def test_empty_and_none_answers_are_cached_once(s3_bucket_url: str) -> None:
    calls: list[Any] = []
    store = ParquetStore(s3_bucket_url)

    @range_cached(key=("symbol",), step="1D", store=store, namespace=NS)
    def get(symbol: str, start: Any, end: Any) -> Any:
        calls.append((symbol, start, end))
        if symbol == "NONE":
            return None
        return make_bars(symbol, start, end).iloc[0:0]

    first = get("EMPTY", day(0), day(3))
    expect = make_bars("EMPTY", day(0), day(3)).iloc[0:0]
    assert_frame_equal(first, expect, check_index_type=False)
    assert_frame_equal(get("EMPTY", day(0), day(3)), first)
    assert len(calls) == 1
    # None is "no rows" by design (cache.digest): the range is covered, not asked again,
    # and a fresh store gives the same answer as the store that fetched it.
    none_first = get("NONE", day(0), day(3))
    none_again = get("NONE", day(0), day(3))
    assert len(calls) == 2
    assert type(none_again) is type(none_first)
    if none_first is not None:
        assert len(none_first) == 0 and len(none_again) == 0


def test_bad_endpoint_answers_from_the_provider_in_bounded_time(s3_bucket_url: str) -> None:
    opts = dict(FAST, endpoint="http://127.0.0.1:9")  # nothing listens on port 9
    calls: list[Any] = []
    fn = bars(ParquetStore(s3_bucket_url, storage_options=opts), calls)
    started = time.monotonic()
    with pytest.warns(CacheWarning):
        got = fn("AAA", day(0), day(3))
    assert_frame_equal(got, make_bars("AAA", day(0), day(3)))
    assert calls == [("AAA", day(0), day(3))]
    assert time.monotonic() - started < 20


# -- races between stores ----------------------------------------------------------


def _race(url: str, seconds: float, bounded: bool) -> dict[str, list[BaseException]]:
    """Reader, writer and an invalidator on three stores of one key, for ``seconds``.

    ``bounded``: the invalidator forgets day ranges (``invalidate(start=, end=)``);
    otherwise whole keys (``invalidate("AAA")``) and ``cache_clear()``.
    """
    reader = bars(ParquetStore(url, refresh=0.0), [])
    writer = bars(ParquetStore(url, refresh=0.5), [])
    killer = bars(ParquetStore(url), [])
    errors: dict[str, list[BaseException]] = {"reader": [], "writer": [], "killer": []}
    stop = time.monotonic() + seconds

    def loop(role: str, fn: Any, spans: list[tuple[int, int]]) -> None:
        try:
            i = 0
            while time.monotonic() < stop:
                lo, hi = spans[i % len(spans)]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", CacheWarning)
                    got = fn("AAA", day(lo), day(hi))
                assert_frame_equal(got, make_bars("AAA", day(lo), day(hi)))
                i += 1
        except BaseException as e:
            errors[role].append(e)

    def kill() -> None:
        try:
            n = 0
            while time.monotonic() < stop:
                if bounded:
                    killer.invalidate("AAA", start=day(n % 10), end=day(n % 10 + 3))
                elif n % 2:
                    killer.cache_clear()
                else:
                    killer.invalidate("AAA")
                n += 1
                time.sleep(0.1)
        except BaseException as e:
            errors["killer"].append(e)

    threads = [
        threading.Thread(target=loop, args=("reader", reader, [(0, 9), (3, 15)])),
        threading.Thread(target=loop, args=("writer", writer, [(5, 19), (0, 4)])),
        threading.Thread(target=kill),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def test_clear_racing_readers_and_writers_never_serves_wrong_data(s3_bucket_url: str) -> None:
    errors = _race(s3_bucket_url, 3.0, bounded=False)
    assert errors == {"reader": [], "writer": [], "killer": []}
    fresh_read(s3_bucket_url, "AAA", 0, 19)
    assert verify(s3_bucket_url).problems == []
    assert fresh_read(s3_bucket_url, "AAA", 0, 19) == []


def test_bounded_invalidate_racing_writers_serves_right_data(s3_bucket_url: str) -> None:
    errors = _race(s3_bucket_url, 3.0, bounded=True)
    assert errors["reader"] == [] and errors["writer"] == []
    fresh_read(s3_bucket_url, "AAA", 0, 19)
    assert verify(s3_bucket_url).problems == []
    assert fresh_read(s3_bucket_url, "AAA", 0, 19) == []


def test_bounded_invalidate_racing_writers_does_not_raise(s3_bucket_url: str) -> None:
    errors = _race(s3_bucket_url, 3.0, bounded=True)
    assert errors["killer"] == []


def test_reads_while_writes_merge_and_another_store_compacts(s3_bucket_url: str) -> None:
    """Every write merges small segments and deletes what it replaced: a reader that
    holds no rows in memory must still read a consistent key, never refetch."""
    fn = bars(ParquetStore(s3_bucket_url), [])
    for d in range(0, 20, 2):
        fn("AAA", day(d), day(d + 1))
    compactor = ParquetStore(s3_bucket_url)
    errors: list[BaseException] = []
    reader_calls: list[Any] = []
    reader = bars(ParquetStore(s3_bucket_url, refresh=0.0, memory=0), reader_calls)
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                for lo in (0, 10):
                    got = quietly(reader, "AAA", day(lo), day(lo + 1))
                    assert_frame_equal(got, make_bars("AAA", day(lo), day(lo + 1)))
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=read)
    t.start()
    for d in range(20, 40, 2):
        fn("AAA", day(d), day(d + 1))
        compactor.compact(full=True)
    done.set()
    t.join(30)
    assert not errors, errors[0]
    assert reader_calls == []
    assert fresh_read(s3_bucket_url, "AAA", 0, 39) == []  # days 0..39, all written
    assert verify(s3_bucket_url).problems == []


def test_a_short_lease_is_renewed_through_a_slow_fetch(s3_bucket_url: str) -> None:
    """lease=0.2, provider takes 1.2 s: the other store waits, it does not refetch."""
    a_calls: list[Any] = []
    b_calls: list[Any] = []
    a = bars(ParquetStore(s3_bucket_url, lease=0.2), a_calls, pause=1.2)
    b = bars(ParquetStore(s3_bucket_url, lease=0.2), b_calls, pause=1.2)
    a("AAA", day(0), day(0))  # key exists, probe done
    b("AAA", day(0), day(0))
    results: dict[str, Any] = {}

    def run(name: str, fn: Any) -> None:
        results[name] = quietly(fn, "AAA", day(1), day(9))

    ta = threading.Thread(target=run, args=("a", a))
    ta.start()
    time.sleep(0.3)  # a holds the lease and is fetching
    tb = threading.Thread(target=run, args=("b", b))
    tb.start()
    ta.join(20)
    tb.join(20)
    for name in "ab":
        assert_frame_equal(results[name], make_bars("AAA", day(1), day(9)))
    fetched = [c for c in a_calls + b_calls if c[1] >= day(1)]
    assert fetched == [("AAA", day(1), day(9))]


def test_stores_with_different_refresh_agree(s3_bucket_url: str) -> None:
    lazy_calls: list[Any] = []
    eager_calls: list[Any] = []
    lazy = bars(ParquetStore(s3_bucket_url, refresh=3600), lazy_calls)
    eager = bars(ParquetStore(s3_bucket_url, refresh=0), eager_calls)
    lazy("AAA", day(0), day(9))
    assert_frame_equal(eager("AAA", day(0), day(9)), make_bars("AAA", day(0), day(9)))
    eager.invalidate("AAA", start=day(3), end=day(5))
    # The lazy store may serve its memory within refresh, but what it serves is
    # the provider's answer; the eager one refetches only the invalidated days.
    assert_frame_equal(lazy("AAA", day(0), day(9)), make_bars("AAA", day(0), day(9)))
    assert_frame_equal(eager("AAA", day(0), day(9)), make_bars("AAA", day(0), day(9)))
    assert eager_calls == [("AAA", day(3), day(5))]
    assert fresh_read(s3_bucket_url, "AAA", 0, 9) == []


@pytest.mark.parametrize("part", ["/log/", ".locks/", "checkpoint"])
def test_an_answer_slower_than_the_timeout_after_the_write_landed(
    fault_proxy: FaultProxy, s3_bucket_url: str, part: str
) -> None:
    """The write lands, its answer comes after the client gave up (timeout=2 s): the
    retry meets its own object; nothing lost, no refetch, no hang."""
    store = ParquetStore(s3_bucket_url, storage_options=FAST, lease=6.0)
    calls: list[Any] = []
    fn = bars(store, calls)
    fn("AAA", day(0), day(4))
    fault_proxy.delay(3.0, 1, when="after", method="PUT", path_contains=part)
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        got = fn("AAA", day(5), day(9))
    assert_frame_equal(got, make_bars("AAA", day(5), day(9)))
    assert time.monotonic() - started < 15
    fault_proxy.clear_faults()
    started = time.monotonic()
    again = fresh_read(s3_bucket_url, "AAA", 0, 14)
    assert time.monotonic() - started < 3  # the next writer is not held up by a lost lease
    assert again == [("AAA", day(10), day(14))]
    assert verify(s3_bucket_url).problems == []
    assert fresh_read(s3_bucket_url, "AAA", 0, 14) == []


def test_a_lease_storm_past_the_retries_answers_uncached_then_recovers(
    fault_proxy: FaultProxy, s3_bucket_url: str
) -> None:
    store = ParquetStore(s3_bucket_url, storage_options=FAST)
    calls: list[Any] = []
    fn = bars(store, calls)
    fn("AAA", day(0), day(4))
    fault_proxy.fail_next(None, status=503, path_contains=".locks/")
    started = time.monotonic()
    with warnings.catch_warnings():  # a warning or not: the data must be right
        warnings.simplefilter("ignore", CacheWarning)
        got = fn("AAA", day(5), day(9))
    assert_frame_equal(got, make_bars("AAA", day(5), day(9)))
    assert time.monotonic() - started < 15
    fault_proxy.clear_faults()
    assert_frame_equal(fn("AAA", day(0), day(9)), make_bars("AAA", day(0), day(9)))
    assert fresh_read(s3_bucket_url, "AAA", 0, 9) == []
    assert verify(s3_bucket_url).problems == []
