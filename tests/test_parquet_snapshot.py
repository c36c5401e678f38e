"""Snapshot answers on a ParquetStore: another process invalidates a key mid-call.

The other process takes the key's lock first; this process's call plans (its
view holds days 0-9), then waits for the lock while the other process forgets
days 0-5 and compacts the key with no grace (deleting the files those rows came
from). The answer still holds every row; later calls fetch the forgotten days.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from collections.abc import Hashable
from contextlib import AbstractContextManager
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from parquet_workers import NAMESPACE, day, hold_then_invalidate

from rangememo import ParquetStore, range_cached
from rangememo._core.entry import Entry
from rangememo._core.ledger import Ledger
from rangememo._core.results import adapter_named
from rangememo._stores.parquet.segments import Segment
from rangememo._stores.parquet.stored_rows import SegmentRows
from rangememo.testing import make_bars


class SignallingStore(ParquetStore):
    """A ParquetStore that reports when a fetch asks for a key's lock."""

    entering: threading.Event

    def lock(self, namespace: str, key: Hashable) -> AbstractContextManager[None]:
        self.entering.set()
        return super().lock(namespace, key)


def cached(store: ParquetStore, calls: list[tuple[dt.datetime, dt.datetime]]) -> Any:
    @range_cached(key="symbol", step="1D", store=store, namespace=NAMESPACE)
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        calls.append((start, end))
        return make_bars(symbol, start, end)

    return bars


@pytest.fixture
def spawn() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


@pytest.mark.parametrize("reopen", [False, True], ids=["warm", "lazy"])
def test_another_process_invalidating_mid_call_leaves_the_answer_whole(tmp_path, spawn, reopen):
    """Days 0-9 cached, a call for 0-30 planned; another process forgets 0-5: 0-30 comes back."""
    root = str(tmp_path / "store")
    calls: list[tuple[dt.datetime, dt.datetime]] = []
    bars = cached(ParquetStore(root), calls)
    bars("AAA", day(0), day(4))
    bars("AAA", day(5), day(9))
    # "lazy": a fresh store (as a new process has) that loads rows only when read.
    store = SignallingStore(root, eager_rows=0 if reopen else 50_000)
    store.entering = threading.Event()
    bars = cached(store, calls)
    if not reopen:
        bars("AAA", day(0), day(9))  # in this store's memory

    held, go = spawn.Event(), spawn.Event()
    other = spawn.Process(target=hold_then_invalidate, args=(root, held, go, 0, 5))
    other.start()
    try:
        assert held.wait(60)
        store.entering.clear()
        answer: dict[str, pd.DataFrame] = {}
        call = threading.Thread(target=lambda: answer.update(got=bars("AAA", day(0), day(30))))
        call.start()
        assert store.entering.wait(60)  # planned; now waiting for the other process
        go.set()
        call.join(60)
        other.join(60)
    finally:
        go.set()
        if other.is_alive():
            other.kill()
    assert other.exitcode == 0
    assert_frame_equal(answer["got"], make_bars("AAA", day(0), day(30)))
    assert calls[-1] == (day(10), day(30))
    # Later calls see the invalidation: the forgotten days are fetched again, once.
    assert_frame_equal(bars("AAA", day(0), day(30)), make_bars("AAA", day(0), day(30)))
    assert calls[-1] == (day(0), day(5))
    assert_frame_equal(bars("AAA", day(0), day(30)), make_bars("AAA", day(0), day(30)))
    assert calls[-1] == (day(0), day(5))


def test_a_view_leaves_rows_still_on_disk_uncovered():
    """Rows that stay on disk while a view is taken are left out of its coverage, not read late."""
    adapter = adapter_named("DataFrame", None)
    seg = Segment("part-1.parquet", ((10, 20),), rows=10, first=10, last=19)
    loads: list[tuple[int, int]] = []

    def never_loads(segment: Segment, lo: int, hi: int) -> Any:
        loads.append((lo, hi))
        raise AssertionError("a view never reads a file itself")

    ledger = Ledger()
    ledger.add(0, 30)
    entry = Entry(ledger=ledger, rows=SegmentRows(adapter, [(10, 20, seg)], never_loads))
    view = entry.view(0, 30)
    assert view.ledger.intervals() == [(0, 10), (20, 30)]
    assert entry.ledger.intervals() == [(0, 30)]  # the entry itself is untouched
    assert loads == []
