"""Several processes, one store directory: one provider call per gap overall.

Workers are started with the ``spawn`` context and make overlapping requests
for the same keys; every provider call is recorded as a file, so the test can
check that no day was ever fetched twice across all processes.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pandas as pd
import pytest
from parquet_workers import bars_function, day, gather_all, recorded, request_all

from rangememo._stores.parquet.maintenance import verify
from rangememo.testing import make_bars


def run_workers(
    root: str,
    calls: str,
    plans: list[list[tuple[str, int, int]]],
    latency: float,
    worker: Any = request_all,
) -> list[int]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(plans), mp_context=ctx) as pool:
        futures = [pool.submit(worker, root, calls, plan, latency) for plan in plans]
        return [f.result(timeout=120) for f in futures]


def fetched_days(calls: str) -> Counter[tuple[str, pd.Timestamp]]:
    seen: Counter[tuple[str, pd.Timestamp]] = Counter()
    for symbol, start, end in recorded(calls):
        seen.update((symbol, d) for d in pd.date_range(start, end, freq="D"))
    return seen


def test_processes_asking_the_same_range_make_one_call(tmp_path):
    """Four processes ask for the same month at once: the provider is called once."""
    root, calls = str(tmp_path / "store"), tmp_path / "calls"
    calls.mkdir()
    run_workers(root, str(calls), [[("AAA", 1, 30)]] * 4, latency=0.3)
    assert len(recorded(calls)) == 1


@pytest.mark.parametrize("workers", [2, 6])
def test_overlapping_requests_fetch_every_day_once(tmp_path, workers):
    """Overlapping windows from several processes: each day asked of the provider once,
    every answer exact, and the store verifies clean."""
    root, calls = str(tmp_path / "store"), tmp_path / "calls"
    calls.mkdir()
    plans = [
        [("AAA", 5 * w, 5 * w + 20), ("BBB", 40 - 4 * w, 60 - 4 * w), ("AAA", 0, 10 + 8 * w)]
        for w in range(workers)
    ]
    run_workers(root, str(calls), plans, latency=0.05)
    seen = fetched_days(str(calls))
    assert max(seen.values()) == 1
    wanted = {(s, d) for plan in plans for s, a, b in plan for d in pd.date_range(day(a), day(b))}
    assert set(seen) == wanted
    assert verify(tmp_path / "store").problems == []
    reader = bars_function(root, str(calls))
    before = len(recorded(calls))
    for symbol, a, b in {r for plan in plans for r in plan}:
        got = reader(symbol, day(a), day(b))
        pd.testing.assert_frame_equal(got, make_bars(symbol, day(a), day(b)))
    assert len(recorded(calls)) == before


def test_async_workers_gathering_overlapping_requests(tmp_path):
    """Three processes, each gathering overlapping requests on one event loop (``alock``
    waits without blocking the loop): every day fetched once overall."""
    root, calls = str(tmp_path / "store"), tmp_path / "calls"
    calls.mkdir()
    plans = [[("AAA", a, a + 12) for a in range(w, 40, 7)] for w in range(3)]
    run_workers(root, str(calls), plans, latency=0.05, worker=gather_all)
    seen = fetched_days(str(calls))
    assert max(seen.values()) == 1
    assert set(seen) == {
        ("AAA", day(d)) for plan in plans for _, a, b in plan for d in range(a, b + 1)
    }


def test_a_reader_sees_what_another_process_wrote(tmp_path):
    """This process caches a key, a spawned process extends it, this process sees it."""
    root, calls = str(tmp_path / "store"), tmp_path / "calls"
    calls.mkdir()
    here = bars_function(root, str(calls))
    here("AAA", day(1), day(10))
    run_workers(root, str(calls), [[("AAA", 5, 20)]], latency=0.0)
    got = here("AAA", day(1), day(20))
    pd.testing.assert_frame_equal(got, make_bars("AAA", day(1), day(20)))
    spans = sorted(((a - day(0)).days, (b - day(0)).days) for _, a, b in recorded(calls))
    assert spans == [(1, 10), (11, 20)]
