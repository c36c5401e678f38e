"""Several processes, one ``s3://`` store on a real SeaweedFS: one provider call per gap.

Workers are spawned processes (or Dask workers, or subprocesses that are
SIGSTOPped or SIGKILLed); they inherit the AWS_* variables the ``s3_bucket_url``
fixture sets. Every provider call is recorded as a file, so a test can check
that no day was fetched twice across all processes, and every answer is
compared with the uncached provider's frame.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from parquet_workers import LEASE_ENV, NAMESPACE, bars_function, day, recorded
from s3_workers import CALLS_ENV, on_barrier
from test_parquet_crash import CRASHES, check_store, run_worker

from rangememo import CacheWarning, ParquetStore, range_cached
from rangememo._stores.parquet.maintenance import verify
from rangememo._stores.parquet.tidy import collect
from rangememo.testing import make_bars

TESTS = Path(__file__).parent
EXAMPLES = TESTS.parent / "examples"
FAST = {"max_retries": 1, "retry_timeout": 3, "timeout": 2, "connect_timeout": 1}


def fetched_days(calls: str | Path) -> Counter[tuple[str, pd.Timestamp]]:
    seen: Counter[tuple[str, pd.Timestamp]] = Counter()
    for symbol, start, end in recorded(calls):
        seen.update((symbol, d) for d in pd.date_range(start, end, freq="D"))
    return seen


def wanted_days(plans: list[list[tuple[str, int, int]]]) -> set[tuple[str, pd.Timestamp]]:
    return {
        (s, pd.Timestamp(d))
        for plan in plans
        for s, a, b in plan
        for d in pd.date_range(day(a), day(b))
    }


def gaps(days: set[tuple[str, pd.Timestamp]]) -> int:
    """How many runs of consecutive days ``days`` make, per symbol: the fewest calls."""
    runs = 0
    for symbol in {s for s, _ in days}:
        mine = sorted(d for s, d in days if s == symbol)
        runs += 1 + sum(1 for a, b in itertools.pairwise(mine) if b - a > pd.Timedelta(days=1))
    return runs


def reader(url: str, namespace: str, calls: list[Any], **options: Any) -> Any:
    """A fresh function over ``ParquetStore(url)`` in ``namespace``, recording its calls."""

    @range_cached(key="symbol", step="1D", store=ParquetStore(url, **options), namespace=namespace)
    def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
        calls.append((symbol, start, end))
        return make_bars(symbol, start, end)

    return bars


# -- a. spawned processes on a barrier ----------------------------------------------------


def run_on_barrier(url: str, calls: Path, plans: list[list[tuple[str, int, int]]]) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(plans))
    procs = [
        ctx.Process(target=on_barrier, args=(url, str(calls), plan, 0.2, barrier)) for plan in plans
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(plans)  # each checked its answers


def test_eight_processes_on_a_barrier_make_one_call_per_gap(s3_bucket_url, tmp_path):
    """8 processes start together with overlapping windows on two keys: no day is
    fetched twice across them, the union is what was asked, every answer exact."""
    calls = tmp_path / "calls"
    calls.mkdir()
    plans = [
        [("AAA", 3 * w, 3 * w + 12), ("BBB", 30 - 2 * w, 40 - 2 * w), ("AAA", 40 + w, 44 + w)]
        for w in range(8)
    ]
    started = time.monotonic()
    run_on_barrier(s3_bucket_url, calls, plans)
    elapsed = time.monotonic() - started
    seen = fetched_days(calls)
    wanted = wanted_days(plans)
    assert max(seen.values()) == 1, [k for k, n in seen.items() if n > 1]
    assert set(seen) == wanted
    made = recorded(calls)
    print(f"8 processes: {gaps(wanted)} gaps at least, {len(made)} calls, {elapsed:.1f}s")
    assert verify(s3_bucket_url).problems == []
    reader = bars_function(s3_bucket_url, str(calls))
    for symbol, a, b in {r for plan in plans for r in plan}:
        assert_frame_equal(reader(symbol, day(a), day(b)), make_bars(symbol, day(a), day(b)))
    assert len(recorded(calls)) == len(made)


# -- b. Dask workers ----------------------------------------------------------------------


def test_dask_workers_mapping_a_module_function_make_one_call_per_gap(
    s3_bucket_url, tmp_path, monkeypatch
):
    """``tests/s3_workers.get_bars`` (pickled by reference) on a 4-process LocalCluster,
    its default store ``$RANGEMEMO_CACHE_DIR=s3://...`` in every worker."""
    from dask.distributed import Client, LocalCluster
    from s3_workers import get_bars

    calls = tmp_path / "calls"
    calls.mkdir()
    monkeypatch.setenv("RANGEMEMO_CACHE_DIR", s3_bucket_url)  # the workers inherit both
    monkeypatch.setenv(CALLS_ENV, str(calls))
    requests = [(s, a, a + 14) for s in ("AAA", "BBB") for a in range(0, 50, 4)]
    symbols, starts, ends = zip(*[(s, day(a), day(b)) for s, a, b in requests], strict=True)
    with (
        LocalCluster(
            n_workers=4, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        frames = client.gather(client.map(get_bars, symbols, starts, ends))
        workers = set(client.run(os.getpid).values())
    for frame, (s, a, b) in zip(frames, requests, strict=True):
        assert_frame_equal(frame, make_bars(s, day(a), day(b)))
    seen = fetched_days(calls)
    wanted = wanted_days([requests])
    assert max(seen.values()) == 1 and set(seen) == wanted
    made = recorded(calls)
    assert {json.loads(p.read_text())["pid"] for p in calls.glob("*.json")} <= workers
    print(f"dask, module function: {len(requests)} tasks, {len(made)} calls")
    # What the workers committed is in the bucket: a reader there fetches nothing.
    again: list[Any] = []
    fresh = reader(s3_bucket_url, "s3workers.sweep", again)
    assert_frame_equal(fresh("AAA", day(0), day(62)), make_bars("AAA", day(0), day(62)))
    assert again == []
    assert verify(s3_bucket_url).problems == []


def test_dask_sweep_example_defined_in_main_fetches_each_day_once(s3_bucket_url, tmp_path):
    """examples/dask_sweep.py run as a script: its ``get_bars`` lives in ``__main__``, so
    Dask ships it by value and its ``ParquetStore`` travels as the s3 URL."""
    audit = tmp_path / "audit"
    audit.mkdir()
    env = {**os.environ, "SWEEP_AUDIT_DIR": str(audit)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "dask_sweep.py"), s3_bucket_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK:" in done.stdout
    seen = fetched_days(audit)
    # What the sweep asks, per symbol: the first window's warm-up (2 x 50 days) to the
    # end of the last window (150 + 59 days after 2024-01-01).
    first, last = pd.Timestamp("2024-01-01") - pd.Timedelta(days=100), pd.Timestamp("2024-07-28")
    wanted = {(s, d) for s in ("AAPL", "MSFT", "NVDA") for d in pd.date_range(first, last)}
    assert max(seen.values()) == 1 and set(seen) == wanted
    print(f"dask, __main__ function: {len(recorded(audit))} calls; {done.stdout.splitlines()[-2]}")
    assert verify(s3_bucket_url).problems == []
    again: list[Any] = []
    fresh = reader(s3_bucket_url, "examples.dask_sweep", again)
    assert_frame_equal(fresh("NVDA", first, last), make_bars("NVDA", first, last))
    assert again == []


# -- c. a lease holder stopped past its lease --------------------------------------------


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the worker exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_a_lease_holder_stopped_past_its_lease_loses_and_breaks_nothing(
    s3_bucket_url, tmp_path, caplog
):
    """A holds AAA's 1 s lease inside its provider call and is SIGSTOPped; B waits, takes
    the expired lease over, fetches and commits; A is resumed and commits too."""
    calls, flags = tmp_path / "calls", tmp_path / "flags"
    calls.mkdir()
    flags.mkdir()
    worker = [sys.executable, str(TESTS / "s3_workers.py"), "stall", s3_bucket_url]
    a = subprocess.Popen([*worker, str(calls), str(flags), "0", "19"], stderr=subprocess.PIPE)
    try:
        wait_for(flags / "entered", a)
        os.kill(a.pid, signal.SIGSTOP)  # its renewing thread stops too
        b_calls = tmp_path / "b_calls"
        b_calls.mkdir()
        b = bars_function(s3_bucket_url, str(b_calls), lease=1.0)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="rangememo"):
            got = b("AAA", day(10), day(29))
        waited = time.monotonic() - started
        assert_frame_equal(got, make_bars("AAA", day(10), day(29)))
        assert "took over the expired writer lease" in caplog.text
        assert waited > 0.3  # A's lease was live when B asked: B waited for its expiry
        assert recorded(b_calls) == [("AAA", pd.Timestamp(day(10)), pd.Timestamp(day(29)))]
        (flags / "go").touch()
    finally:
        os.kill(a.pid, signal.SIGCONT)
        _, err = a.communicate(timeout=60)
    assert a.returncode == 0, err.decode()
    a_saw = json.loads((flags / "done.json").read_text())
    print(f"B waited {waited:.2f}s for the lease; A's warnings: {a_saw['warnings']}")

    fresh_calls = tmp_path / "fresh"
    fresh_calls.mkdir()
    fresh = bars_function(s3_bucket_url, str(fresh_calls))
    covered = fresh.coverage("AAA")
    assert any(pd.Timestamp(s) <= day(10) and day(29) <= pd.Timestamp(e) for s, e in covered)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_frame_equal(fresh("AAA", day(0), day(29)), make_bars("AAA", day(0), day(29)))
    # B's commit is all there; A's is unless it dropped its piece (then days 0-9 are
    # fetched again, once, and A said so).
    refetched = recorded(fresh_calls)
    if a_saw["warnings"]:
        assert refetched == [("AAA", pd.Timestamp(day(0)), pd.Timestamp(day(9)))]
    else:
        assert refetched == []
        assert any(pd.Timestamp(s) <= day(0) and day(19) <= pd.Timestamp(e) for s, e in covered)
    seen = fetched_days(calls) + fetched_days(b_calls)
    assert max(seen.values()) <= 2  # the overlap 10-19: once by A, once by B
    assert len(recorded(calls)) == 1
    assert verify(s3_bucket_url).problems == []


# -- d. SIGKILL at each crash point --------------------------------------------------------

# Every crash point of tests/test_parquet_crash.py but "create-written", a local
# file's temp-then-rename step that an object store's PUT does not have.
S3_CRASHES = [c for c in CRASHES if c[0] != "create-written"]
QUICK_CRASHES = {0, 1}  # the orphaned upload and the landed record; the rest are slow
CRASH_PARAMS = [
    pytest.param(*c, id=f"{c[0]}-{i}", marks=() if i in QUICK_CRASHES else pytest.mark.slow)
    for i, c in enumerate(S3_CRASHES)
]


def orphans(url: str) -> set[str]:
    """The segment files ``verify`` notes as orphans (uploaded, named by no record)."""
    notes = [note for _, note in verify(url).notes if "orphan" in note]
    return {name for note in notes for name in re.findall(r"seg-\w+\.parquet", note)}


@pytest.mark.parametrize(("point", "before", "killed", "expected"), CRASH_PARAMS)
def test_sigkill_at_a_crash_point_on_s3(
    s3_bucket_url, tmp_path, monkeypatch, point, before, killed, expected
):
    """Killed at a step of the protocol on S3: the next reader is exact and fetches only
    what no record covers; an upload without its record is an orphan gc removes."""
    url, calls = s3_bucket_url, tmp_path / "calls"
    calls.mkdir()
    monkeypatch.setenv(LEASE_ENV, "1.0")  # the killed writer's lease expires soon
    command, *args = before
    assert run_worker(command, url, *args, *(["32"] if command == "write" else [])) == 0
    command, *args = killed
    extra = ["32"] if command == "write" else []
    assert run_worker(command, url, *args, *extra, crash=point) == -signal.SIGKILL
    left = orphans(url)
    if point == "segment-created":  # uploaded, never committed
        assert left, verify(url).notes
    made = check_store(url, calls, 1, 29)  # type: ignore[arg-type]
    if expected is not None:
        assert made == expected
    else:  # killed mid-run: some one-day writes landed, the rest is fetched in one gap
        assert len(made) <= 1
    removed = collect(url, grace=0.0)
    assert all(any(name in r for r in removed) for name in left), (left, removed)
    assert orphans(url) == set()
    assert check_store(url, calls, 1, 29) == []  # type: ignore[arg-type]  # gc took nothing live


# -- e. a commit whose record PUT fails ----------------------------------------------------


def test_a_5xx_on_the_record_put_answers_with_a_warning_and_leaves_an_orphan(
    fault_proxy, s3_bucket_url
):
    """The segment is uploaded, every PUT of the log record answers 503: the caller gets
    the provider's rows and a CacheWarning; the upload (the record may have landed, for
    all the writer knows) is left for verify to note and gc to remove."""
    calls: list[Any] = []
    fn = reader(s3_bucket_url, NAMESPACE, calls, storage_options=FAST)
    fn("AAA", day(0), day(4))  # probe done, log started
    fault_proxy.fail_next(None, method="PUT", path_contains="/log/")
    with pytest.warns(CacheWarning, match="not cached"):
        got = fn("AAA", day(5), day(9))
    assert_frame_equal(got, make_bars("AAA", day(5), day(9)))
    assert any(r.fault == "status" and "/log/" in r.path for r in fault_proxy.seen)
    fault_proxy.clear_faults()
    left = orphans(s3_bucket_url)
    assert len(left) == 1, verify(s3_bucket_url).notes
    assert verify(s3_bucket_url).problems == []
    removed = collect(s3_bucket_url, grace=0.0)
    assert any(next(iter(left)) in r for r in removed)
    assert orphans(s3_bucket_url) == set()
    fresh: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = reader(s3_bucket_url, NAMESPACE, fresh)("AAA", day(0), day(9))
    assert_frame_equal(got, make_bars("AAA", day(0), day(9)))
    assert fresh == [("AAA", day(5), day(9))]  # only what was never committed


def test_a_record_that_landed_but_whose_answer_was_lost_keeps_its_segment(
    fault_proxy, s3_bucket_url
):
    """The record PUT lands, its answer (and every retry's) comes too late: the writer
    cannot know it committed. It must not delete the segment the record names."""
    calls: list[Any] = []
    fn = reader(s3_bucket_url, NAMESPACE, calls, storage_options=FAST)
    fn("AAA", day(0), day(4))
    fault_proxy.delay(4.0, method="PUT", path_contains="/log/", when="after")
    with pytest.warns(CacheWarning):
        got = fn("AAA", day(5), day(9))
    assert_frame_equal(got, make_bars("AAA", day(5), day(9)))
    fault_proxy.clear_faults()
    assert verify(s3_bucket_url).problems == []
    fresh: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "damaged" warning: nothing named is missing
        got = reader(s3_bucket_url, NAMESPACE, fresh)("AAA", day(0), day(9))
    assert_frame_equal(got, make_bars("AAA", day(0), day(9)))
    assert fresh == []  # the record landed: days 5-9 are cached


# -- a closed store at exit ----------------------------------------------------------------

CLOSE_THEN_EXIT = """
import sys
sys.path.insert(0, {tests!r})
from parquet_workers import bars_function, day
bars = bars_function({url!r})
bars("AAA", day(0), day(9))
bars.cache.store.close()
print("closed", flush=True)
sys.stdin.readline()
"""


def test_a_process_exits_without_requests_for_the_stores_it_closed(fault_proxy, s3_bucket_url):
    """close() deleted this process's reader lease: exiting must not send another DELETE
    (with the storage gone, each one waits out its retries: the exit hangs)."""
    script = CLOSE_THEN_EXIT.format(tests=str(TESTS), url=s3_bucket_url)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "closed"
        assert sum(fault_proxy.counts.values()) > 0  # it did talk to the store
        fault_proxy.reset()
        proc.stdin.write("exit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert dict(fault_proxy.counts) == {}
