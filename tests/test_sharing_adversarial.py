"""Adversarial tests of one ParquetStore shared by processes (a directory and S3).

Workers are spawned processes (``tests/sharing_workers.py``), subprocesses that
are SIGKILLed, threads, and a Dask ``LocalCluster``. Every provider call is
recorded as a file, so a test counts fetches across processes; every answer is
compared with the provider's own frame.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sharing_workers import (
    bars_function,
    day,
    expected,
    forget_loop,
    forked_writer,
    overlap_writer,
    read_loop,
    recorded,
    revise_loop,
    run_cloudpickled,
    run_with_pickled_store,
    write_loop,
)

from rangememo import NotCached, ParquetStore, range_cached
from rangememo._stores.parquet.maintenance import verify
from rangememo.testing import make_bars

TESTS = Path(__file__).parent
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    (tmp_path / "state" / "calls").mkdir(parents=True)
    return tmp_path / "state"


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "cache")


def fetched_days(state: Path) -> Counter[tuple[str, pd.Timestamp]]:
    seen: Counter[tuple[str, pd.Timestamp]] = Counter()
    for symbol, start, end in recorded(state):
        seen.update((symbol, d) for d in pd.date_range(start, end, freq="D"))
    return seen


def wanted(plans: list[list[tuple[str, int, int]]]) -> set[tuple[str, pd.Timestamp]]:
    return {
        (s, pd.Timestamp(d))
        for plan in plans
        for s, a, b in plan
        for d in pd.date_range(day(a), day(b))
    }


def run_processes(target: Any, argsets: list[tuple[Any, ...]], timeout: float = 90) -> None:
    procs = [SPAWN.Process(target=target, args=args) for args in argsets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0] * len(procs)  # each checked its answers


def strict_reader(root: str, state: Path, **options: Any) -> Any:
    return bars_function(root, str(state), **options)


def assert_served_exactly(fn: Any, ranges: list[tuple[str, int, int]], version: int = 0) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for symbol, a, b in ranges:
            assert_frame_equal(fn(symbol, day(a), day(b)), expected(symbol, a, b, version))


def write_version(state: Path, version: int) -> None:
    (state / "version").write_text(str(version))


# -- overlapping writers ------------------------------------------------------------------

PLANS = [
    [("AAA", 5 * w, 5 * w + 20), ("BBB", 40 - 3 * w, 52 - 3 * w), ("AAA", 0, 45)] for w in range(6)
]


def test_six_processes_writing_overlapping_ranges_of_one_key_fetch_each_day_once(root, state):
    barrier = SPAWN.Barrier(len(PLANS))
    run_processes(overlap_writer, [(root, str(state), plan, 0.1, barrier) for plan in PLANS])
    seen = fetched_days(state)
    assert max(seen.values()) == 1, sorted(k for k, n in seen.items() if n > 1)
    assert set(seen) == wanted(PLANS)
    made = len(recorded(state))
    assert verify(root).problems == []
    assert_served_exactly(strict_reader(root, state), [("AAA", 0, 45), ("BBB", 25, 52)])
    assert len(recorded(state)) == made  # everything was committed


def test_four_processes_on_s3_writing_one_range_and_its_pieces(s3_bucket_url, state):
    plans = [
        [("AAA", 0, 30)],
        [("AAA", 10, 20), ("AAA", 0, 30)],
        [("AAA", 25, 40)],
        [("AAA", 5, 35)],
    ]
    barrier = SPAWN.Barrier(len(plans))
    run_processes(overlap_writer, [(s3_bucket_url, str(state), p, 0.2, barrier) for p in plans])
    seen = fetched_days(state)
    assert max(seen.values()) == 1, sorted(k for k, n in seen.items() if n > 1)
    assert set(seen) == wanted(plans)
    made = len(recorded(state))
    assert verify(s3_bucket_url).problems == []
    assert_served_exactly(strict_reader(s3_bucket_url, state), [("AAA", 0, 40)])
    assert len(recorded(state)) == made


# -- forgetting / refreshing while others read ----------------------------------------------


def test_invalidate_refresh_and_compact_in_one_process_while_two_others_read(root, state):
    strict_reader(root, state)("AAA", day(0), day(89))
    procs = [
        SPAWN.Process(target=read_loop, args=(root, str(state), 2.5, seed)) for seed in (1, 2)
    ] + [SPAWN.Process(target=forget_loop, args=(root, str(state), 2.5, 3))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert verify(root).problems == []
    assert_served_exactly(strict_reader(root, state), [("AAA", 0, 89)])


def _reader_then_refresher(url: str, state: Path, pause: float, **options: Any) -> None:
    """A process holds AAA 0-29 in memory; another refreshes 10-19 with a revision and
    invalidates 25-29: after ``pause`` the first must serve the revision, refetch 25-29."""
    mine = strict_reader(url, state, **options)
    assert_served_exactly(mine, [("AAA", 0, 29)])
    before = len(recorded(state))
    write_version(state, 1)
    with ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
        pool.submit(_refresh_and_invalidate, url, str(state), options).result(60)
    assert len(recorded(state)) == before + 1  # the refresh
    time.sleep(pause)
    got = mine.cached("AAA", day(0), day(24))  # no provider: what the log now says
    want = pd.concat([expected("AAA", 0, 9), expected("AAA", 10, 19, 1), expected("AAA", 20, 24)])
    assert_frame_equal(got, want)
    with pytest.raises(NotCached):
        mine.cached("AAA", day(25), day(29))  # the other process forgot it


def _refresh_and_invalidate(url: str, state: str, options: dict[str, Any]) -> None:
    other = bars_function(url, state, **options)
    other.refresh("AAA", day(10), day(19))
    other.invalidate("AAA", start=day(25), end=day(29))


def test_a_revision_by_another_process_is_served_on_the_next_call(root, state):
    _reader_then_refresher(root, state, 0.0)


def test_a_revision_by_another_process_on_s3_is_served_after_refresh(s3_bucket_url, state):
    _reader_then_refresher(s3_bucket_url, state, 1.2)


# -- killed writers -------------------------------------------------------------------------


def hold_and_kill(url: str, state: Path, lease: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "sharing_workers.py"), "hold", url, str(state), str(lease)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (state / "entered").exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)


def test_a_writer_killed_inside_its_fetch_does_not_block_the_next_process(root, state):
    hold_and_kill(root, state, 30.0)
    started = time.monotonic()
    with ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
        pool.submit(overlap_writer, root, str(state), [("AAA", 0, 14)], 0.0, None).result(60)
    assert time.monotonic() - started < 15
    assert verify(root).problems == []
    assert_served_exactly(strict_reader(root, state), [("AAA", 0, 14)])


def test_a_writer_killed_holding_its_s3_lease_delays_others_only_for_its_lease(
    s3_bucket_url, state
):
    """The dead writer's lease was 2 s; the next process (default 30 s lease of its own)
    must take it over after ~2 s, not after its own lease time."""
    hold_and_kill(s3_bucket_url, state, 2.0)
    killed = time.monotonic()
    fn = strict_reader(s3_bucket_url, state)
    got = fn("AAA", day(0), day(14))
    waited = time.monotonic() - killed
    assert_frame_equal(got, expected("AAA", 0, 14))
    assert waited < 8, waited
    assert verify(s3_bucket_url).problems == []


def test_writers_killed_at_random_moments_leave_a_store_read_exactly(root, state):
    worker = [sys.executable, str(TESTS / "sharing_workers.py"), "churn", root, str(state)]
    for seed, after in enumerate((1.2, 0.6, 0.4)):
        procs = [subprocess.Popen([*worker, str(seed * 10 + i)]) for i in range(2)]
        time.sleep(after)
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait(30)
    assert verify(root).problems == []
    assert_served_exactly(strict_reader(root, state), [("AAA", 0, 70), ("BBB", 0, 70)])


# -- pickling ---------------------------------------------------------------------------------


def test_a_pickled_store_reopens_with_its_options_in_a_worker(root, state):
    store = ParquetStore(root, memory=12345, compact_at=5, durable=False, eager_rows=7, refresh=3.0)
    blob = pickle.dumps(store)
    with ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
        seen = pool.submit(run_with_pickled_store, blob, str(state), "AAA", 0, 19).result(60)
    assert seen == {
        "url": store.url,
        "refresh": 3.0,
        "lease": 30.0,
        "compact_at": 5,
        "memory": 12345,
        "durable": False,
        "eager_rows": 7,
    }
    before = len(recorded(state))
    assert_served_exactly(strict_reader(root, state), [("AAA", 0, 19)])
    assert len(recorded(state)) == before == 1


def test_a_used_store_pickles_small_and_without_its_rows(root, state):
    fn = strict_reader(root, state)
    fn("AAA", day(0), day(2000))
    blob = pickle.dumps(fn.cache.store)
    assert len(blob) < 2000
    assert pickle.loads(blob).url == fn.cache.store.url


def test_a_cloudpickled_closure_shares_its_directory_with_three_workers(root, state):
    calls = str(state)

    @range_cached(key="symbol", step="1D", store=ParquetStore(root), readahead=None)
    def bars(symbol, start, end):  # a closure: shipped by value
        from sharing_workers import record

        record(calls, symbol, start, end)
        time.sleep(0.1)
        return make_bars(symbol, start, end)

    blob = cloudpickle.dumps(bars)
    with ProcessPoolExecutor(3, mp_context=SPAWN) as pool:
        jobs = [pool.submit(run_cloudpickled, blob, "CCC", a, a + 20) for a in (0, 5, 10)]
        for job in jobs:
            job.result(60)
    seen = fetched_days(state)
    assert max(seen.values()) == 1, sorted(k for k, n in seen.items() if n > 1)
    made = len(recorded(state))
    assert_frame_equal(bars("CCC", day(0), day(30)), expected("CCC", 0, 30))
    assert len(recorded(state)) == made  # the parent reads what the workers wrote


# -- two stores on one directory in one process -------------------------------------------


def test_two_stores_on_one_directory_with_different_options_share_one_lock(root, state):
    f1 = bars_function(root, str(state), latency=0.1, memory=0)
    f2 = bars_function(root, str(state), latency=0.1, compact_at=2, durable=False, refresh=60)
    calls = [(f, a) for a in range(0, 40, 5) for f in (f1, f2)]

    def one(call: tuple[Any, int]) -> None:
        f, a = call
        assert_frame_equal(f("AAA", day(a), day(a + 12)), expected("AAA", a, a + 12))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, calls))
    seen = fetched_days(state)
    assert max(seen.values()) == 1, sorted(k for k, n in seen.items() if n > 1)
    assert verify(root).problems == []


def test_two_stores_on_one_directory_see_each_others_writes_forgets_and_clears(root, state):
    f1 = bars_function(root, str(state), memory=0)
    f2 = bars_function(root, str(state), compact_at=2, eager_rows=1, durable=False)
    assert_served_exactly(f1, [("AAA", 0, 9)])
    assert_frame_equal(f2.cached("AAA", day(0), day(9)), expected("AAA", 0, 9))
    f2("AAA", day(0), day(19))
    assert_frame_equal(f1.cached("AAA", day(0), day(19)), expected("AAA", 0, 19))
    f1.invalidate("AAA", start=day(5), end=day(9))
    with pytest.raises(NotCached):
        f2.cached("AAA", day(5), day(9))  # a forget through the other store
    f1.cache_clear()
    with pytest.raises(NotCached):
        f2.cached("AAA", day(0), day(4))
    f2("AAA", day(0), day(9))  # f2 held the key and its namespace before the clear
    assert f1.cache.store.keys(f1.cache.namespace) == [("AAA",)]
    assert verify(root).problems == []
    assert_frame_equal(f1.cached("AAA", day(0), day(9)), expected("AAA", 0, 9))


# -- clear() while another process writes ---------------------------------------------------


def _clear_while_writing(url: str, state: Path, rounds: int, clears: int, pause: float) -> None:
    symbols = ["AAA", "BBB", "CCC"]
    p = SPAWN.Process(target=write_loop, args=(url, str(state), rounds, symbols))
    p.start()
    clearer = strict_reader(url, state)
    deadline = time.monotonic() + 60
    while not recorded(state) and time.monotonic() < deadline:
        time.sleep(0.02)
    for _ in range(clears):
        clearer.cache_clear()
        time.sleep(pause)
    p.join(90)
    assert p.exitcode == 0  # every answer the writer got was exact
    assert verify(url).problems == []
    # What is stored is listed: no key left without its namespace metadata.
    listed = set(clearer.cache.store.keys(clearer.cache.namespace))
    for symbol in symbols:
        if clearer.coverage(symbol):
            assert (symbol,) in listed, (symbol, listed)
    assert_served_exactly(strict_reader(url, state), [(s, 0, rounds - 1) for s in symbols])


def test_clear_in_one_process_while_another_writes(root, state):
    _clear_while_writing(root, state, rounds=60, clears=15, pause=0.05)


def test_clear_on_s3_while_another_process_writes(s3_bucket_url, state):
    _clear_while_writing(s3_bucket_url, state, rounds=12, clears=4, pause=0.3)


# -- the Dask recipe --------------------------------------------------------------------------


def test_the_dask_recipe_with_a_closure_over_an_s3_store(s3_bucket_url, state):
    distributed = pytest.importorskip("distributed")
    calls = str(state)

    @range_cached(key="symbol", step="1D", store=ParquetStore(s3_bucket_url), readahead=None)
    def get_bars(symbol, start, end):
        from sharing_workers import record

        record(calls, symbol, start, end)
        time.sleep(0.05)
        return make_bars(symbol, start, end)

    def backtest(param: tuple[str, int]) -> float:
        symbol, a = param
        bars = get_bars(symbol, day(a), day(a + 15))
        assert bars.equals(make_bars(symbol, day(a), day(a + 15)))
        return float(bars["close"].iloc[-1])

    params = [(s, a) for s in ("AAA", "BBB") for a in range(0, 40, 5)]
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        results = client.gather(client.map(backtest, params))
        pids = set(client.run(os.getpid).values())
    assert results == [backtest_uncached(s, a) for s, a in params]
    seen = fetched_days(state)
    assert max(seen.values()) == 1, sorted(k for k, n in seen.items() if n > 1)
    workers = {json.loads(p.read_text())["pid"] for p in (state / "calls").glob("*.json")}
    assert workers <= pids
    made = len(recorded(state))
    assert_frame_equal(get_bars("BBB", day(0), day(50)), make_bars("BBB", day(0), day(50)))
    assert len(recorded(state)) == made


def backtest_uncached(symbol: str, a: int) -> float:
    return float(make_bars(symbol, day(a), day(a + 15))["close"].iloc[-1])


def test_threads_share_one_lock_with_a_spawned_process(root, state):
    """Threads here and a worker process ask for the same days at once: once in total."""
    barrier = SPAWN.Barrier(2)
    p = SPAWN.Process(
        target=overlap_writer, args=(root, str(state), [("DDD", 0, 30)], 0.3, barrier)
    )
    p.start()
    fn = bars_function(root, str(state), latency=0.3)
    barrier.wait(60)
    threads = [
        threading.Thread(target=lambda a=a: fn("DDD", day(a), day(a + 10))) for a in (0, 10, 20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    p.join(60)
    assert p.exitcode == 0
    seen = fetched_days(state)
    assert max(seen.values()) == 1, sorted(k for k, n in seen.items() if n > 1)


# -- a whole key forgotten elsewhere; revisions seen whole ----------------------------------


def _key_forgotten_elsewhere(url: str, state: Path, **options: Any) -> None:
    """This store holds AAA 0-9; another store forgets the whole key (the vendor revised
    it) and the next call here asks for 0-19: a request with a gap goes to the newest
    log under the key's lock/lease (docs/sharing.md), so 0-19 is fetched, revised."""
    mine, other = strict_reader(url, state, **options), strict_reader(url, state)
    mine("AAA", day(0), day(9))  # held in memory here
    other.invalidate("AAA")  # the whole key, by another store
    write_version(state, 1)
    before = Counter(recorded(state))
    assert_served_exactly(mine, [("AAA", 0, 19)], version=1)
    made = Counter(recorded(state)) - before
    # Each day of 0-19 fetched once, in one call or two (the planned gap 10-19
    # under the lease, then 0-9, which the newest log no longer covers).
    days = Counter(
        d for _, a, b in made.elements() for d in pd.date_range(pd.Timestamp(a), pd.Timestamp(b))
    )
    assert days == Counter(pd.date_range(day(0), day(19))), made
    fresh = strict_reader(url, state)
    assert_served_exactly(fresh, [("AAA", 0, 19)], version=1)
    assert Counter(recorded(state)) == before + made
    assert verify(url).problems == []


def test_a_key_forgotten_whole_by_another_store_is_fetched_again_whole(root, state):
    _key_forgotten_elsewhere(root, state)


@pytest.mark.parametrize("refresh", [None, 0.0])
def test_a_key_forgotten_whole_on_s3_is_fetched_again_whole_by_a_writer(
    s3_bucket_url, state, refresh
):
    _key_forgotten_elsewhere(s3_bucket_url, state, refresh=refresh)


def test_a_reader_sees_each_refresh_of_another_process_whole(root, state):
    """Another process refreshes days 0-59 under a new revision again and again: every
    answer here is one revision throughout, never half old and half new rows."""
    fn = strict_reader(root, state)
    fn("AAA", day(0), day(59))
    p = SPAWN.Process(target=revise_loop, args=(root, str(state), 3.0))
    p.start()
    base = expected("AAA", 0, 59)
    seen: set[int] = set()
    while p.is_alive():
        got = fn("AAA", day(0), day(59))
        assert got.index.equals(base.index)
        offsets = set(((got["close"] - base["close"]) / 1000).round().astype(int))
        assert len(offsets) == 1, offsets  # one revision
        seen |= offsets
        version = offsets.pop()
        assert_frame_equal(got, expected("AAA", 0, 59, version))
    p.join(60)
    assert p.exitcode == 0
    assert len(seen) >= 2  # the revisions were seen as they came


def test_forked_children_of_a_process_that_used_the_store_share_it(root, state):
    """A process that already holds a key forks 3 children writing overlapping ranges
    of it at once (fork, not spawn: Linux's default for multiprocessing in 3.11)."""
    fn = bars_function(root, str(state), latency=0.2)
    fn("AAA", day(0), day(9))
    ctx = multiprocessing.get_context("fork")
    plans = [[("AAA", 5, 30)], [("AAA", 15, 40)], [("AAA", 0, 25)]]
    barrier = ctx.Barrier(len(plans))
    procs = [ctx.Process(target=forked_writer, args=(fn, plan, barrier)) for plan in plans]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    seen = fetched_days(state)
    assert max(seen.values()) == 1, sorted(k for k, n in seen.items() if n > 1)
    made = len(recorded(state))
    assert_served_exactly(fn, [("AAA", 0, 40)])
    assert len(recorded(state)) == made
    assert verify(root).problems == []
