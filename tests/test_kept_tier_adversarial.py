"""Adversarial sequences against the tier and tail a ParquetStore writer keeps in memory.

A writer keeps the rows of the small tail it last wrote and of the full tier
before it (``KeyState.kept``), and merges from them instead of reading the
files back. With tiers of 8 rows (``SMALL_ROWS`` patched as in
``test_parquet_write_path``), these tests drive that path through two stores on
one directory, compaction by the other store, invalidations and refreshes
inside the kept tier and tail, backfills, schema widening, tz-aware indexes in
every unit (the int64-view index path) and two processes alternating.

The oracle: every provider call stamps its rows with a new generation, so the
right answer for a day is the row of the *last* fetch that returned it. Every
answer, and a fresh store's answer over the same directory, must equal it
exactly. Each test also checks that a kept tier really was merged from memory
(``tier_hits``), so it exercises the path it is about.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import NotCached, ParquetStore, SchemaMismatchError, range_cached
from rangememo._stores.parquet import compaction, keywrite

NAMESPACE = "kept.tier"
#: One daily function per store (the defaults but readahead and the live edge).
DAILY: dict[str, Any] = {
    "key": "symbol",
    "step": "1D",
    "namespace": NAMESPACE,
    "readahead": None,
    "settle": False,
}
DAY0 = pd.Timestamp("2024-01-01")


def _small_tiers(stats: dict[str, int] | None = None) -> None:
    """Tiers of 8 rows; count merges that took a kept tier from memory into ``stats``."""
    compaction.SMALL_ROWS = 8
    keywrite.SMALL_ROWS = 8
    compaction.WRITE_MERGE_ROWS = 16
    if stats is None:
        return
    real = keywrite.merge

    def counted(medium: Any, prefix: str, run: Any, *args: Any, **kwargs: Any) -> Any:
        kept = kwargs.get("kept", ())
        rows = {s.file: s.rows for s in run if s.file is not None}
        if len(kept) == 2 and rows.get(kept[0][0]) == len(kept[0][1]):
            stats["tier_hits"] += 1
        return real(medium, prefix, run, *args, **kwargs)

    keywrite.merge = counted


@pytest.fixture
def tiers(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    stats = {"tier_hits": 0}
    monkeypatch.setattr(compaction, "SMALL_ROWS", compaction.SMALL_ROWS)
    monkeypatch.setattr(keywrite, "SMALL_ROWS", keywrite.SMALL_ROWS)
    monkeypatch.setattr(compaction, "WRITE_MERGE_ROWS", compaction.WRITE_MERGE_ROWS)
    monkeypatch.setattr(keywrite, "merge", keywrite.merge)
    _small_tiers(stats)
    return stats


class Series:
    """A daily provider: each call's rows carry the call's generation; the model
    holds, per day, the generation of the last call that returned it."""

    def __init__(
        self,
        tz: Any = None,
        unit: str = "ns",
        nat: bool = False,
        widen_at: int | None = None,
    ) -> None:
        self.tz, self.unit, self.nat = tz, unit, nat
        self.widen_at = widen_at  # from this generation on, a new column "y"
        self.gen = 0
        self.model: dict[int, int] = {}
        self.calls: list[tuple[int, list[int]]] = []

    def at(self, d: int, hours: float = 0.0) -> pd.Timestamp:
        t = DAY0 + pd.Timedelta(days=d, hours=hours)
        if self.tz is None:
            return t
        return t.tz_localize(self.tz, nonexistent="shift_forward", ambiguous=True)

    def ts(self, d: int) -> dt.datetime:
        return self.at(d).to_pydatetime()

    def day(self, t: Any) -> int:
        t = pd.Timestamp(t)
        if t.tzinfo is not None:
            t = t.tz_convert(self.tz).tz_localize(None)
        return (t.normalize() - DAY0).days

    def frame(self, days: list[int], g: int) -> pd.DataFrame:
        idx = pd.DatetimeIndex([self.at(d) for d in days], name="t").as_unit(self.unit)
        when = pd.DatetimeIndex([self.at(d, g % 24 + 0.5) for d in days]).as_unit(self.unit)
        if self.nat:
            when = when.where(np.array([(d + g) % 3 != 0 for d in days], dtype=bool))
        df = pd.DataFrame(
            {
                "x": np.array([d * 1000.0 + g for d in days]),
                "v": np.full(len(days), g, dtype="int64"),
                "w": when,
            },
            index=idx,
        )
        if self.widen_at is not None and g >= self.widen_at:
            df["y"] = np.array([d + g / 8 for d in days])
        return df

    def __call__(self, start: Any, end: Any) -> pd.DataFrame:
        self.gen += 1
        g = self.gen
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        days = [d for d in range(self.day(start) - 1, self.day(end) + 2) if lo <= self.at(d) <= hi]
        for d in days:
            self.model[d] = g
        self.calls.append((g, days))
        return self.frame(days, g)

    def expect(self, a: int, b: int) -> pd.DataFrame:
        """What the last fetches of days ``a..b`` returned, as one frame."""
        return pd.concat([self.frame([d], self.model[d]) for d in range(a, b + 1)])


def cached(series: Series, store: ParquetStore) -> Any:
    @range_cached(store=store, **DAILY)
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return series(start, end)

    return bars


def _check(series: Series, got: pd.DataFrame, a: int, b: int, what: Any = None) -> None:
    assert_frame_equal(got, series.expect(a, b), check_exact=True, check_freq=False, obj=str(what))


def _reopened(series: Series, root: Path, a: int, b: int) -> None:
    """A new store on the directory answers days ``a..b`` as the model says, unfetched."""
    before = series.gen
    fresh = cached(series, ParquetStore(root, durable=False))
    _check(series, fresh.cached("A", series.ts(a), series.ts(b)), a, b, "reopened")
    assert series.gen == before


UNITS = [
    (None, "ns", False),
    ("UTC", "s", True),
    ("Asia/Kolkata", "ms", False),
    ("America/New_York", "us", True),
]


@pytest.mark.parametrize(("tz", "unit", "nat"), UNITS)
def test_two_stores_alternating_appends_and_compacting(tmp_path, tiers, tz, unit, nat):
    """Two stores on one directory take turns appending day by day (in runs of a
    few days each, so each keeps tiers the other then merges or leaves), the
    second compacts now and then: a kept tier is stale, merged away, or another
    writer's tail sits on it."""
    series = Series(tz, unit, nat)
    stores = [ParquetStore(tmp_path, durable=False) for _ in range(2)]
    fns = [cached(series, s) for s in stores]
    fns[0]("A", series.ts(0), series.ts(1))
    # Store 1 merges store 0's tail into store 0's kept tier (days 13-15); at
    # day 33 it appends onto store 0's tail while store 0 keeps the tier before
    # it, which store 0 (caught up in place) merges from memory at day 36.
    turn = [0] * 11 + [1] * 3 + [0] * 17 + [1] * 1 + [0] * 8 + [1] * 2 + [0] * 10
    for d, k in enumerate(turn, start=2):
        got = fns[k]("A", series.ts(d - 2), series.ts(d))
        _check(series, got, d - 2, d, (d, k))
        if d in (20, 45):
            stores[1].compact()
    end = len(turn) + 1
    _check(series, fns[1]("A", series.ts(0), series.ts(end)), 0, end)
    _check(series, fns[0]("A", series.ts(0), series.ts(end)), 0, end)
    assert series.gen == len(turn) + 1  # one fetch per new day, nothing refetched
    assert tiers["tier_hits"] >= 1
    _reopened(series, tmp_path, 0, end)


@pytest.mark.parametrize(("tz", "unit", "nat"), UNITS[:2])
def test_another_store_rewrites_the_kept_tail_and_tier_rows(tmp_path, tiers, tz, unit, nat):
    """While store 0 keeps (tier, tail), store 1 refreshes days of that tail (a new
    tail file with as many rows, newer values) and of the tier (newer rows merged
    into the tail, hiding the tier's): store 0's next merges, from its stale
    memory, must still answer the newer rows."""
    series = Series(tz, unit, nat)
    stores = [ParquetStore(tmp_path, durable=False) for _ in range(2)]
    own, other = (cached(series, s) for s in stores)
    own("A", series.ts(0), series.ts(9))
    for d in range(10, 22):  # [10][8: days 10-17][4: days 18-21], store 0 keeps both
        own("A", series.ts(d), series.ts(d))
    _check(series, other.refresh("A", series.ts(19), series.ts(20)), 19, 20)  # the tail: 4 rows
    _check(series, own("A", series.ts(18), series.ts(22)), 18, 22)
    _check(series, other.refresh("A", series.ts(12), series.ts(13)), 12, 13)  # into the tail
    for d in range(23, 30):  # the tail reaches the tier's size: merged into it
        _check(series, own("A", series.ts(d - 12), series.ts(d)), d - 12, d, d)
        if d == 25:
            _check(series, other.refresh("A", series.ts(d - 1), series.ts(d)), d - 1, d)
    assert tiers["tier_hits"] >= 1
    _check(series, other("A", series.ts(0), series.ts(29)), 0, 29)
    _reopened(series, tmp_path, 0, 29)


@pytest.mark.parametrize("where", ["tier", "tail", "both"])
def test_invalidate_inside_the_kept_tier_and_tail_then_append(tmp_path, tiers, where):
    """A range forgotten inside the kept tier (or its tail) between appends: the
    tombstone's claim must hide the kept rows when the tail merges into the tier
    from memory, and the refetched rows (newer) must win over them."""
    series = Series("UTC", "us", True)
    store = ParquetStore(tmp_path, durable=False)
    bars = cached(series, store)
    bars("A", series.ts(0), series.ts(9))  # a tier of its own (10 rows)
    for d in range(10, 22):  # the tail grows to 8 (a tier), then a new tail
        bars("A", series.ts(d), series.ts(d))
    # Segments now: [10 rows][8 rows: days 10-17][4 rows: days 18-21], the 8 kept.
    lo, hi = {"tier": (12, 14), "tail": (19, 20), "both": (16, 19)}[where]
    forgotten = series.gen
    bars.invalidate("A", start=series.ts(lo), end=series.ts(hi))
    with pytest.raises(NotCached):
        bars.cached("A", series.ts(lo), series.ts(hi))
    for d in range(22, 34):
        got = bars("A", series.ts(d - 3), series.ts(d))
        _check(series, got, d - 3, d, d)
        if d == 26:  # refetch the forgotten days mid-way, as a backfill
            _check(series, bars("A", series.ts(lo), series.ts(hi)), lo, hi)
    assert all(series.model[d] > forgotten for d in range(lo, hi + 1))  # refetched, newer
    _check(series, bars("A", series.ts(0), series.ts(33)), 0, 33)
    assert tiers["tier_hits"] >= 1
    _reopened(series, tmp_path, 0, 33)


def test_forgotten_days_left_uncovered_stay_out_of_merged_tiers(tmp_path, tiers):
    """Forget days in the kept tier and never refetch them: the merges from memory
    must not bring their rows back (a fresh store finds them uncovered, and the
    covered rest answers exactly)."""
    series = Series("Asia/Kolkata", "ns")
    bars = cached(series, ParquetStore(tmp_path, durable=False))
    bars("A", series.ts(0), series.ts(9))
    for d in range(10, 20):
        bars("A", series.ts(d), series.ts(d))
    bars.invalidate("A", start=series.ts(11), end=series.ts(13))
    for d in range(20, 40):
        bars("A", series.ts(d), series.ts(d))
    assert tiers["tier_hits"] >= 1
    fresh = cached(series, ParquetStore(tmp_path, durable=False))
    cover = fresh.coverage("A")
    assert [(series.day(a), series.day(b)) for a, b in cover] == [(0, 10), (14, 39)]
    _check(series, fresh.cached("A", series.ts(0), series.ts(10)), 0, 10)
    _check(series, fresh.cached("A", series.ts(14), series.ts(39)), 14, 39)
    before = series.gen
    got = fresh("A", series.ts(0), series.ts(39))
    assert series.gen == before + 1  # only the forgotten days
    _check(series, got, 0, 39)


@pytest.mark.parametrize("span", [(12, 21), (17, 18), (5, 23)])
def test_refresh_across_the_kept_tier_and_tail(tmp_path, tiers, span):
    """refresh() of a range over the kept tier and the tail (and the older tier):
    its newer rows must win in the merges that follow from memory."""
    series = Series("America/New_York", "s", True)
    bars = cached(series, ParquetStore(tmp_path, durable=False))
    bars("A", series.ts(0), series.ts(9))
    for d in range(10, 22):
        bars("A", series.ts(d), series.ts(d))
    a, b = span
    _check(series, bars.refresh("A", series.ts(a), series.ts(b)), a, b)
    for d in range(22, 40):
        _check(series, bars("A", series.ts(d - 1), series.ts(d)), d - 1, d, d)
        if d == 30:
            _check(series, bars.refresh("A", series.ts(a), series.ts(b)), a, b)
    _check(series, bars("A", series.ts(0), series.ts(39)), 0, 39)
    _reopened(series, tmp_path, 0, 39)


def test_backfills_interleave_with_the_kept_tier(tmp_path, tiers):
    """Older days fetched after tiers exist (before the first day, and into a hole
    of the kept tier): the merged files order rows by position."""
    series = Series("UTC", "ms")
    bars = cached(series, ParquetStore(tmp_path, durable=False))
    bars("A", series.ts(20), series.ts(29))
    for d in range(30, 38):
        bars("A", series.ts(d), series.ts(d))
    bars.invalidate("A", start=series.ts(31), end=series.ts(32))
    for d in range(38, 52):
        bars("A", series.ts(d), series.ts(d))
        if d % 4 == 0:
            back = 20 - (d - 36)
            _check(series, bars("A", series.ts(back), series.ts(back + 1)), back, back + 1)
        if d == 41:
            _check(series, bars("A", series.ts(30), series.ts(33)), 30, 33)
    first = min(series.model)
    _check(series, bars("A", series.ts(first), series.ts(51)), first, 51)
    assert tiers["tier_hits"] >= 1
    _reopened(series, tmp_path, first, 51)


def test_a_column_added_midway_keeps_each_piece_and_merges_like_concat(tmp_path, tiers):
    """The provider adds a column while a tier is kept: pieces of either schema
    never merge into one file, and answers are pd.concat of the pieces
    (documented: "a new column" merges losslessly)."""
    series = Series("UTC", "us", widen_at=18)
    bars = cached(series, ParquetStore(tmp_path, durable=False))
    bars("A", series.ts(0), series.ts(9))
    for d in range(10, 45):
        got = bars("A", series.ts(d - 1), series.ts(d))
        _check(series, got, d - 1, d, d)
    assert tiers["tier_hits"] >= 1
    _check(series, bars("A", series.ts(0), series.ts(44)), 0, 44)
    _reopened(series, tmp_path, 0, 44)


def test_a_conflicting_dtype_midway_raises_and_stores_nothing(tmp_path, tiers):
    """A number column that comes back as strings (documented: SchemaMismatchError,
    nothing stored) while a tier is kept: later appends still answer exactly."""
    series = Series(None, "ns")
    flip = {"on": False}

    @range_cached(store=ParquetStore(tmp_path, durable=False), **DAILY)
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        df = series(start, end)
        if flip["on"]:
            df["x"] = df["x"].astype(str)
        return df

    bars("A", series.ts(0), series.ts(9))
    for d in range(10, 22):
        bars("A", series.ts(d), series.ts(d))
    flip["on"] = True
    with pytest.raises(SchemaMismatchError):
        bars("A", series.ts(22), series.ts(22))
    flip["on"] = False
    for d in range(22, 34):
        _check(series, bars("A", series.ts(d - 2), series.ts(d)), d - 2, d, d)
    _check(series, bars("A", series.ts(0), series.ts(33)), 0, 33)
    assert tiers["tier_hits"] >= 1
    _reopened(series, tmp_path, 0, 33)


@pytest.mark.parametrize("seed", range(3))
def test_random_sequences_on_two_stores(tmp_path, tiers, seed):
    """Mostly one-day appends on either of two stores, with overlapping calls,
    refreshes, invalidations, backfills and compactions mixed in."""
    rng = random.Random(seed)
    tz, unit, nat = UNITS[seed % len(UNITS)]
    series = Series(tz, unit, nat)
    stores = [ParquetStore(tmp_path, durable=False) for _ in range(2)]
    fns = [cached(series, s) for s in stores]
    lo, hi = 100, 109
    fns[0]("A", series.ts(lo), series.ts(hi))
    ops = ["append", "overlap", "refresh", "forget", "backfill", "compact", "read"]
    for step in range(70):
        k = rng.choice([0, 0, 0, 1])
        f = fns[k]
        op = rng.choices(ops, [30, 2, 1, 2, 1, 1, 2])[0]
        if op == "compact":
            stores[k].compact()
            continue
        if op == "append":
            a, b = hi + 1 - rng.choice([0, 0, 0, 1]), hi + rng.choice([1, 1, 1, 1, 2])
        elif op == "overlap":
            a, b = hi - rng.randrange(1, 25), hi + rng.randrange(0, 3)
        elif op in ("refresh", "forget"):
            a = hi - rng.randrange(0, 25)
            b = min(hi, a + rng.randrange(0, 8))
        elif op == "backfill":
            a, b = lo - rng.randrange(1, 6), lo + rng.randrange(-1, 3)
        else:
            a = rng.randrange(lo, hi + 1)
            b = rng.randrange(a, hi + 1)
        if op == "forget":
            f.invalidate("A", start=series.ts(a), end=series.ts(b))
            continue
        got = (
            f.refresh("A", series.ts(a), series.ts(b))
            if op == "refresh"
            else f("A", series.ts(a), series.ts(b))
        )
        lo, hi = min(lo, a), max(hi, b)
        _check(series, got, a, b, (seed, step, k, op, a, b))
    _check(series, fns[1]("A", series.ts(lo), series.ts(hi)), lo, hi)
    assert tiers["tier_hits"] >= 1
    _reopened(series, tmp_path, lo, hi)


# -- the caller's own frame -----------------------------------------------------------
# Default SMALL_ROWS (8192) here, no patching: minute bars as a live key gets them.

MINUTE0 = pd.Timestamp("2024-01-02", tz="UTC")
MINUTES = {"key": "symbol", "step": "1min", "readahead": None, "settle": False}


def _minute_bars(start: Any, end: Any) -> pd.DataFrame:
    idx = pd.date_range(start, end, freq="1min", name="time")
    i = ((idx - MINUTE0) // pd.Timedelta("1min")).to_numpy()
    return pd.DataFrame({"close": 100 + i * 0.01, "volume": i.astype("int64")}, index=idx)


def _minute(k: int) -> dt.datetime:
    return (MINUTE0 + pd.Timedelta(minutes=k)).to_pydatetime()


def _minute_store(root: Path) -> Any:
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return _minute_bars(start, end)

    return range_cached(store=ParquetStore(root, durable=False), namespace="kept.min", **MINUTES)(
        bars
    )


def test_mutating_an_answer_later_never_reaches_the_kept_tier(tmp_path):
    """docs/usage.md: "Each caller gets its own object, so mutating it never changes
    the cache."

    Found by an adversarial pass (fixed: tail.readback copies): the 8,000 bars one call fetched
    # are written alone (after a 9,000-bar tier) and kept in memory zero-copy:
    # the Arrow table shares its buffers with the frame the caller got back (no
    # other pandas object references them, so copy-on-write lets the caller
    # write in place). The next 500-bar append leaves them alone as the "full
    # tier before the tail", kept for ~16 appends; the caller zeroes "close" in
    # its frame after the 2nd append; when the tail merges into the tier (from
    # memory) the zeroed closes are written to disk. A new store (another
    # process, the next run) answers close == 0.0 for all 8,000 bars; the
    # writing store's own memory still answers right. Sequence (default
    # SMALL_ROWS=8192, no patching): bars(0..8999); chunk = bars(9000..16999);
    # bars(17000..17499); bars(17500..17999); chunk.loc[:, "close"] = 0.0;
    # 15 more 500-bar appends; ParquetStore(same dir).cached(0..25499).
    # Before 01f2555 the 8,000-row tail was not kept (rows < SMALL_ROWS) and the
    # tier was read back from its file: no corruption.
    """
    bars = _minute_store(tmp_path)
    bars("A", _minute(0), _minute(8999))
    chunk = bars("A", _minute(9000), _minute(16999))
    t = 17000
    for j in range(17):
        bars("A", _minute(t), _minute(t + 499))
        t += 500
        if j == 1:
            chunk.loc[:, "close"] = 0.0  # the caller's own copy
    got = _minute_store(tmp_path).cached("A", _minute(0), _minute(t - 1))
    assert not (got["close"] == 0).any(), f"{(got['close'] == 0).sum()} closes zeroed on disk"
    assert_frame_equal(got, _minute_bars(_minute(0), _minute(t - 1)), check_freq=False)


def test_mutating_an_answer_at_once_never_reaches_the_kept_tail(tmp_path):
    """The same with the kept tail (before 01f2555 too): the caller mutates the frame
    of a call whose rows were written alone and kept, before the next append.

    Found with the one above (it predates the kept tier; fixed the same way): bars(0..8999);
    # hour = bars(9000..17099) (8,100 bars, written alone, kept as the tail,
    # sharing the caller's buffers); hour.loc[:, "close"] = 0.0;
    # bars(17100..17149) merges the tail from memory: 8,100 zeroed closes on
    # disk, seen by ParquetStore(same dir).cached(0..17149).
    """
    bars = _minute_store(tmp_path)
    bars("A", _minute(0), _minute(8999))
    hour = bars("A", _minute(9000), _minute(17099))
    hour.loc[:, "close"] = 0.0  # the caller's own copy
    bars("A", _minute(17100), _minute(17149))
    got = _minute_store(tmp_path).cached("A", _minute(0), _minute(17149))
    assert not (got["close"] == 0).any(), f"{(got['close'] == 0).sum()} closes zeroed on disk"
    assert_frame_equal(got, _minute_bars(_minute(0), _minute(17149)), check_freq=False)


def test_mutating_answers_of_fresh_merges_is_safe(tmp_path, tiers):
    """Answers that the store copied (concatenated with cached rows) may be mutated
    at once: nothing reaches the disk (small tiers, every kept merge exercised)."""
    series = Series("UTC", "ms", True)
    bars = cached(series, ParquetStore(tmp_path, durable=False))
    bars("A", series.ts(0), series.ts(9))
    for d in range(10, 40):
        got = bars("A", series.ts(d - 1), series.ts(d))  # one cached day: a new frame
        got.loc[:, "x"] = -1.0
    assert tiers["tier_hits"] >= 1
    _reopened(series, tmp_path, 0, 39)


# -- two processes -------------------------------------------------------------------


#: Whose turn each step is: runs of a few steps each, so that each process keeps a
#: tier and tail over its own run, and finds them stale at its next.
TURNS = [0] * 12 + [1] * 3 + [0] * 9 + [1] * 8 + [0] * 5 + [1] * 11 + [0] * 4 + [1] * 6


def _process_writer(root: str, calls: str, me: int, barrier: Any, out: Any) -> None:
    """Take the steps of ``TURNS`` that are ``me``'s, the other process waiting;
    write each provider call as a record, and check every answer against the
    records of both processes (the last fetch of a day wins)."""
    stats = {"tier_hits": 0}
    _small_tiers(stats)
    try:
        stamp = {"step": 0}
        store = ParquetStore(root, durable=False)

        @range_cached(store=store, **DAILY)
        def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
            days = pd.date_range(start, end, freq="D", name="t", tz="UTC").as_unit("s")
            first = (days[0].tz_localize(None) - DAY0).days if len(days) else 0
            ds = list(range(first, first + len(days)))
            record = {"step": stamp["step"], "days": ds}
            Path(calls, f"{uuid.uuid4().hex}.json").write_text(json.dumps(record))
            return pd.DataFrame({"x": [d * 1000.0 + stamp["step"] for d in ds]}, index=days)

        def ts(d: int) -> dt.datetime:
            return (DAY0 + pd.Timedelta(days=d)).tz_localize("UTC").to_pydatetime()

        def latest() -> dict[int, int]:
            last: dict[int, int] = {}
            for p in Path(calls).glob("*.json"):
                r = json.loads(p.read_text())
                for d in r["days"]:
                    last[d] = max(last.get(d, -1), r["step"])
            return last

        for step, turn in enumerate(TURNS):
            barrier.wait()
            if turn == me:
                stamp["step"] = step
                d = step + 10
                if step % 11 == 7:
                    got = bars.refresh("A", ts(d - 6), ts(d))
                else:
                    got = bars("A", ts(d - 2 - step % 3), ts(d))
                if me == 1 and step % 9 == 1:
                    store.compact()
                last = latest()
                want = [dd * 1000.0 + last[dd] for dd in range(d - len(got) + 1, d + 1)]
                if got["x"].tolist() != want:
                    out.put(f"step {step}: {got['x'].tolist()} != {want}")
            barrier.wait()
        out.put(f"ok {stats['tier_hits']}")
    except BaseException as exc:
        out.put(f"{type(exc).__name__}: {exc}")
        barrier.abort()


def test_two_processes_alternating_appends(tmp_path):
    """Two processes take turns on one key (one also refreshes and compacts): each
    one's kept tier and tail go stale under the other's records."""
    root, calls = tmp_path / "store", tmp_path / "calls"
    calls.mkdir()
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2, timeout=60), ctx.Queue()
    procs = [
        ctx.Process(target=_process_writer, args=(str(root), str(calls), me, barrier, out))
        for me in (0, 1)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    results = sorted(out.get(timeout=5) for _ in procs)
    assert all(r.startswith("ok ") for r in results), results
    assert sum(int(r.split()[1]) for r in results) >= 2, results  # kept tiers merged
    last: dict[int, int] = {}
    for p in calls.glob("*.json"):
        r = json.loads(p.read_text())
        for d in r["days"]:
            last[d] = max(last.get(d, -1), r["step"])

    @range_cached(store=ParquetStore(root, durable=False), **DAILY)
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        raise AssertionError("fetched")

    lo, hi = min(last), max(last)
    got = bars.cached(
        "A",
        (DAY0 + pd.Timedelta(days=lo)).tz_localize("UTC").to_pydatetime(),
        (DAY0 + pd.Timedelta(days=hi)).tz_localize("UTC").to_pydatetime(),
    )
    assert got["x"].tolist() == [d * 1000.0 + last[d] for d in range(lo, hi + 1)]
    assert os.listdir(root)  # the store was really written
