"""The parts under ParquetStore: locks, the compaction plan, lazy rows, the key codec."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import tempfile
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from rangememo import MemoryStore, ParquetStore
from rangememo._core.axis import axis_of
from rangememo._core.entry import Fetched
from rangememo._core.results import FrameAdapter
from rangememo._core.rows import normalize
from rangememo._stores.parquet.compaction import SMALL_ROWS, plan, plan_tail
from rangememo._stores.parquet.keyjson import key_from_json, key_to_json
from rangememo._stores.parquet.local.locks import LockTimeout, Mutex, ahold, held, hold
from rangememo._stores.parquet.segments import ROW_GROUP, Segment
from rangememo._stores.parquet.stored_rows import shown, visible
from rangememo.testing import make_blocks

# -- locks --------------------------------------------------------------------------------


def test_mutex_keeps_threads_apart_in_order():
    """Threads waiting for a Mutex get it one at a time, first come first served."""
    mutex, order, inside = Mutex(), [], []
    mutex.acquire()

    def worker(i: int) -> None:
        mutex.acquire()
        inside.append(i)
        assert len(inside) == 1
        order.append(i)
        inside.pop()
        mutex.release()

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=worker, args=(i,)))
        threads[-1].start()
        time.sleep(0.02)
    mutex.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]


async def test_mutex_hands_over_to_coroutines_and_survives_cancellation():
    """A coroutine waits without blocking its loop; a cancelled waiter passes the lock on."""
    mutex = Mutex()
    assert mutex.acquire(timeout=0)
    first = asyncio.ensure_future(mutex.aacquire())
    second = asyncio.ensure_future(mutex.aacquire())
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()
    first.cancel()
    mutex.release()
    await asyncio.wait_for(second, 2)
    assert first.cancelled()
    assert not mutex.acquire(timeout=0.05)
    mutex.release()
    assert mutex.acquire(timeout=0)


def test_hold_is_reentrant_and_times_out_for_others(tmp_path):
    """The holder may take the key again (put inside lock); another thread times out."""
    path = str(tmp_path / "locks" / "k.lock")
    errors: list[BaseException] = []
    with hold(path):
        assert held(path)
        with hold(path):
            assert held(path)

        def other() -> None:
            try:
                with hold(path, timeout=0.1):
                    pass
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join(5)
    assert not held(path)
    assert len(errors) == 1 and isinstance(errors[0], LockTimeout)


async def test_ahold_reaches_put_in_a_worker_thread(tmp_path):
    """Held in a task, the lock counts as held in ``asyncio.to_thread`` (the aput path)."""
    path = str(tmp_path / "k.lock")
    async with ahold(path):
        assert await asyncio.to_thread(held, path)
        assert await asyncio.wait_for(asyncio.to_thread(_reenter, path), 2)
    assert not held(path)


def _reenter(path: str) -> bool:
    with hold(path, timeout=0.5):
        return True


# -- the compaction plan -----------------------------------------------------------------------


def seg(rows: int, schema: str | None = "s") -> Segment:
    return Segment("seg-x" if rows else None, ((0, 1),), rows, 0, 0, 0, schema if rows else None)


def test_plan_merges_small_parts_at_once():
    """A write joins the newest parts while they are small: a daily key stays one file."""
    assert plan_tail([seg(10)], 1, None) == 0
    assert plan_tail([seg(10)] * 5, 1, None) == 0
    assert plan_tail([], 1, None) == 0


def test_plan_leaves_a_big_base_alone():
    """Small parts after a big one merge among themselves; the base is not rewritten."""
    assert plan_tail([seg(1_000_000), seg(1440)], 1440, None) == 1
    assert plan_tail([seg(1_000_000), seg(9000)], 1440, None) == 2  # nothing joins a full tail
    assert plan_tail([seg(20_000), seg(10_000), seg(10_000)], 1, None) == 3
    assert plan_tail([seg(20_000), seg(10_000), seg(10_000)], 10_000, None) == 0  # a counter


def test_a_write_merges_within_its_budget():
    """The write path's budget stops the counter: bigger tiers wait for ``compact()``."""
    tiers = [seg(20_000), seg(10_000), seg(10_000)]
    assert plan_tail(tiers, 10_000, None, budget=30_000) == 1  # 10k + 10k + 10k: no more
    assert plan_tail(tiers, 10_000, None, budget=29_999) == 2
    assert plan_tail(tiers, 10_000, None, budget=None) == 0  # compact's plan: unbounded
    # Under SMALL_ROWS the small run still merges whatever the budget (a daily key: one file).
    assert plan_tail([seg(100)] * 5, 100, None, budget=1) == 0
    assert plan(tiers, full=True) == [(0, 3)]


def test_a_minute_key_grown_day_by_day_rewrites_at_most_the_budget(tmp_path: Any) -> None:
    """Each commit's merge holds at most WRITE_MERGE_ROWS rows; compact() then makes one file."""
    from rangememo import ParquetStore, range_cached
    from rangememo._stores.parquet import compaction
    from rangememo.testing import make_bars

    store = ParquetStore(tmp_path / "s", durable=False)
    sizes: list[int] = []
    real = compaction.write_part

    def spy(medium, prefix, table, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(table.num_rows)
        return real(medium, prefix, table, *args, **kwargs)

    @range_cached(readahead=None, key="s", step="1min", store=store, settle=None)
    def bars(s: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        return make_bars(s, start, end, "1min", skip_weekends=False)

    day0 = pd.Timestamp("2024-01-01 09:30")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compaction, "write_part", spy)
        for d in range(70):  # 70 x 1,440 rows: past the budget four times over
            a = day0 + pd.Timedelta(days=d)
            bars("X", a, a + pd.Timedelta(minutes=1439))
    assert sizes and max(sizes) <= compaction.WRITE_MERGE_ROWS
    assert len(sizes) >= 4  # the small run merged, then the budget's tiers
    last = day0 + pd.Timedelta(days=69, minutes=1439)
    want = make_bars("X", day0, last, "1min", skip_weekends=False)
    assert_frame_equal(bars("X", day0, last), want)
    files = list((tmp_path / "s").glob("*/*/seg-*.parquet"))
    assert len(files) > 3  # tiers past the budget are left for compact()
    store.compact()
    assert len(list((tmp_path / "s").glob("*/*/seg-*.parquet"))) == 1
    assert_frame_equal(bars("X", day0, last), want)
    assert bars.cache_info().provider_calls == 70


def test_plan_stops_at_a_schema_change_but_takes_tombstones():
    segments = [seg(10, "a")] * 3 + [seg(0)] + [seg(10, "b")] * 2
    assert plan_tail(segments, 10, "b") == 4
    assert plan_tail([*segments, seg(0)], 10, "b") == 4  # a trailing tombstone joins
    assert plan(segments, full=True) == [(0, 4), (4, 6)]


@pytest.mark.parametrize("rows", [1, 390, ROW_GROUP // 40])
def test_plan_rewrites_each_row_a_logarithmic_number_of_times(rows):
    """Appending 2,000 parts: few files at any time, and each row rewritten a bounded
    number of times (the small tail plus O(log n) tiers)."""
    sizes: list[int] = []
    rewritten = most = 0
    for _ in range(2000):
        i = plan_tail([seg(n) for n in sizes], rows, None)
        rewritten += sum(sizes[i:]) + rows
        sizes[i:] = [sum(sizes[i:]) + rows]
        most = max(most, len(sizes))
    total = 2000 * rows
    assert most <= 2 + math.log2(max(total // SMALL_ROWS, 1)) * 1.5
    tail = SMALL_ROWS / (2 * rows)  # a row is rewritten with the small tail this often
    assert rewritten <= (min(tail, 2000) + 2 * math.log2(2000)) * total


def test_visible_newest_wins_and_shown_ranges():
    """Later claims hide earlier rows; ``shown`` is a part's claims minus later ones."""
    old = Segment("seg-a", ((0, 100),), 50, 0, 98)
    new = Segment("seg-b", ((40, 60),), 5, 41, 59)
    gone = Segment(None, ((90, 200),))
    assert [(a, b, s.file) for a, b, s in visible([old, new, gone])] == [
        (0, 40, "seg-a"),
        (41, 60, "seg-b"),
        (60, 90, "seg-a"),
    ]
    assert shown([old, new, gone], "seg-a") == [(0, 40), (60, 90)]


# -- lazy rows behave like in-memory rows ------------------------------------------------------


def piece(rev: int, a: int, b: int, sparse: bool) -> Fetched:
    """A commit of blocks ``[a, b)`` (every other one when sparse), tagged ``rev``."""
    frame = make_blocks("c", a, b - 1).assign(rev=rev)
    if sparse:
        frame = frame.iloc[::2]
    adapter = FrameAdapter(None)
    axis = axis_of(a, max(a, b - 1), 1, "both")
    chunk = normalize(adapter, adapter.positions(frame, axis), frame, a, b)
    return Fetched(a, b, chunk, adapter.empty(frame), adapter, axis.signature, b)


step = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 300), st.integers(1, 120), st.booleans()),
    st.tuples(st.just("forget"), st.integers(0, 300), st.integers(1, 60), st.booleans()),
    st.tuples(st.just("reopen"), st.just(0), st.just(0), st.booleans()),
    st.tuples(st.just("compact"), st.just(0), st.just(0), st.booleans()),
)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(step, min_size=1, max_size=12),
    windows=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 150)), min_size=1, max_size=4),
)
def test_stored_key_reads_like_the_memory_store(steps, windows):
    """Any sequence of commits, forgets, reopens and compactions: every window reads the
    same as MemoryStore's, and the coverage is the same."""
    root = tempfile.mkdtemp(prefix="rangememo-prop-")
    memory = MemoryStore()
    stored = ParquetStore(root, durable=False, compact_at=3, grace=0.0, eager_rows=0)
    for rev, (op, a, n, flag) in enumerate(steps):
        if op == "put":
            memory.put("ns", "k", piece(rev, a, a + n, flag))
            stored.put("ns", "k", piece(rev, a, a + n, flag))
        elif op == "forget":
            memory.forget("ns", "k", a, a + n)
            stored.forget("ns", "k", a, a + n)
        elif op == "reopen":
            stored = ParquetStore(root, durable=False, compact_at=3, grace=0.0, eager_rows=0)
        else:
            stored.compact(full=flag)
    want, got = memory.get("ns", "k"), stored.get("ns", "k")
    if want is None or want.adapter is None:
        assert got is None or not got.ledger.intervals()
        return
    assert got is not None
    assert got.ledger.intervals() == want.ledger.intervals()
    for lo, n in windows:
        assert_frame_equal(got.read(lo, lo + n), want.read(lo, lo + n))


# -- keys as JSON -----------------------------------------------------------------------------

keys = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(),
        st.dates(),
        st.datetimes(timezones=st.sampled_from([None, dt.UTC])),
    ),
    lambda inner: st.tuples(inner, inner) | st.frozensets(st.text() | st.integers(), max_size=3),
    max_leaves=6,
)


@given(keys)
def test_keys_round_trip_through_json(key):
    """A key read back from key.json equals the key written, with the same type."""
    import json

    back = key_from_json(json.loads(json.dumps(key_to_json(key))))
    assert back == key and type(back) is type(key)


def test_unusual_keys_round_trip():
    for key in [
        float("inf"),
        np.int64(3),
        pd.Timestamp("2024-01-01", tz="Europe/Paris"),
        ("a", (1, None)),
    ]:
        assert key_from_json(key_to_json(key)) == key
    with pytest.raises(TypeError):
        key_to_json(object())


def test_unhashable_by_json_keys_are_still_listed_in_process(tmp_path):
    """A key with no JSON form is stored (by its hash) and listed by the process that knows it."""

    class Symbol:
        def __init__(self, name: str) -> None:
            self.name = name

        def __hash__(self) -> int:
            return hash(self.name)

        def __eq__(self, other: Any) -> bool:
            return isinstance(other, Symbol) and other.name == self.name

        def __reduce__(self) -> Any:
            return (Symbol, (self.name,))

    store = ParquetStore(tmp_path, durable=False)
    key = Symbol("x")
    store.put("ns", key, piece(0, 0, 10, False))
    assert store.keys("ns") == [key]
    assert ParquetStore(tmp_path).keys("ns") == []


def test_numbers_and_times_are_written_plain_strings_with_a_dictionary(tmp_path):
    import pyarrow.parquet as pq

    from rangememo import range_cached

    def bars(symbol, start, end):
        days = pd.date_range(start, end, freq="D", tz="UTC", name="ts")
        n = len(days)
        return pd.DataFrame(
            {
                "close": np.linspace(100.0, 101.0, n),
                "volume": np.arange(n, dtype=np.int64) * 7,
                "at": days.tz_localize(None),
                "venue": ["XNAS", "XNYS"] * (n // 2) + ["XNAS"] * (n % 2),
                "side": pd.Categorical(["b", "s"] * (n // 2) + ["b"] * (n % 2)),
            },
            index=days,
        )

    store = ParquetStore(tmp_path, durable=False)
    fn = range_cached(key="symbol", step="1D", store=store, readahead=None)(bars)
    start, end = dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    fn("AAPL", start, end)
    store.close()
    files = sorted(tmp_path.rglob("seg-*.parquet"))
    assert files
    meta = pq.ParquetFile(files[0]).metadata
    enc = {
        meta.row_group(0).column(i).path_in_schema: set(meta.row_group(0).column(i).encodings)
        for i in range(meta.num_columns)
    }
    dictionary = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
    for plain in ("close", "volume", "at", "ts"):
        assert not enc[plain] & dictionary, (plain, enc[plain])
    for coded in ("venue", "side"):
        assert enc[coded] & dictionary, (coded, enc[coded])
    again = ParquetStore(tmp_path, durable=False)
    fn = range_cached(key="symbol", step="1D", store=again, readahead=None)(bars)
    # (freq is not kept from disk: docs/decisions.md)
    assert_frame_equal(fn("AAPL", start, end), bars("AAPL", start, end), check_freq=False)
    again.close()


def test_a_segment_keeps_its_json_text_and_a_replaced_one_does_not_inherit_it():
    import dataclasses
    import json

    seg = Segment("seg-a.parquet", ((0, 5), (10, 15)), 10, 0, 14, 100, "d")
    assert json.loads(seg.json_text()) == seg.to_json()
    assert seg.json_text() is seg.json_text()  # built once
    wider = dataclasses.replace(seg, claims=((0, 15),))
    assert json.loads(wider.json_text())["claims"] == [[0, 15]]
    assert wider == Segment("seg-a.parquet", ((0, 15),), 10, 0, 14, 100, "d")


def test_a_checkpoint_reads_back_as_the_state_it_folds():
    import json

    from rangememo._core.ledger import Ledger
    from rangememo._stores.parquet.logformat import LogState, _from_checkpoint

    ledger = Ledger()
    ledger.add(0, 5, 1.5)
    ledger.add(10, 15, 2.25, empty=True)
    segs = [
        Segment("seg-a.parquet", ((0, 5),), 5, 0, 4, 100, "d"),
        Segment(None, ((10, 15),)),
    ]
    segs[0].json_text()  # one cached, one not
    key = {"k": ['a "quoted" ]} key', 3]}
    state = LogState(ledger=ledger, segments=segs, schema={"kind": "DataFrame"}, seq=7)
    state.key, state.retired, state.updated = key, ["seg-old.parquet"], 12.5
    data = state.checkpoint_bytes()
    body = json.loads(data.rstrip(b"\n").rpartition(b"\n")[0])
    assert set(body) == {
        "format",
        "seq",
        "checkpoint",
        "time",
        "key",
        "schema",
        "ledger",
        "retired",
        "segments",
    }
    back = _from_checkpoint(data, "ck", Ledger)
    assert back.segments == segs and back.key == key and back.seq == 7
    assert back.retired == ["seg-old.parquet"] and back.schema == {"kind": "DataFrame"}
    assert back.ledger.to_json() == ledger.to_json()
