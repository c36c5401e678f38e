"""The live-update write path's shortcuts give exactly what the slow path gives.

* the pandas -> Arrow conversion column by column (``arrowenc``) against
  ``pa.Table.from_pandas``;
* the tail a writer keeps in memory (``compaction.readback``) against the
  file read back;
* a key appended to day by day through ``@range_cached`` on a ParquetStore:
  the answers, a new process's answers, and the segment files, with the tail
  kept and without;
* the flock the local lock files use: holds counted, other processes kept out.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

from rangememo import ParquetStore, range_cached
from rangememo._stores.parquet import compaction, keywrite
from rangememo._stores.parquet import tail as tail_module
from rangememo._stores.parquet.arrowenc import _SCHEMAS, frame_table
from rangememo._stores.parquet.codec import encode
from rangememo._stores.parquet.compaction import write_part
from rangememo._stores.parquet.local.locks import Flock
from rangememo._stores.parquet.local.medium import LocalMedium
from rangememo._stores.parquet.segments import read_segment


def _frame(kind: str, start: int, n: int) -> pd.DataFrame:
    """``n`` daily rows from day ``start`` (the values depend on the day only)."""
    days = pd.date_range("2024-01-01", periods=400, freq="D")[start : start + n]
    i = np.arange(start, start + n)
    df = pd.DataFrame({"x": i * 1.5, "n": i}, index=pd.DatetimeIndex(days, name="time"))
    if kind == "nan":
        df["x"] = np.where(i % 3 == 0, np.nan, i * 0.5)
    elif kind == "nullable":
        df["n"] = pd.array([None if k % 4 == 0 else int(k) for k in i], dtype="Int64")
    elif kind == "tz":
        df.index = df.index.tz_localize("America/New_York")
        df["at"] = df.index.tz_convert("UTC")
    elif kind == "seconds":
        df["s"] = pd.DatetimeIndex(days).astype("datetime64[s]")
    elif kind == "strings":
        df["sym"] = pd.array([f"s{k % 5}" for k in i], dtype="str")
        df["flag"] = i % 2 == 0
    elif kind == "category":
        df["c"] = pd.Categorical([["lo", "hi"][k % 2] for k in i], categories=["lo", "hi", "mid"])
    elif kind == "object":
        df["o"] = pd.Series([("a", k) if k % 2 else None for k in i], index=df.index, dtype=object)
        df["o"] = df["o"].astype(str)
        df["o"] = df["o"].astype(object)
    return df


KINDS = ["plain", "nan", "nullable", "tz", "seconds", "strings", "category", "object"]


@pytest.mark.parametrize("kind", KINDS)
def test_frame_table_is_from_pandas(kind):
    """First call (checked against from_pandas), then the fast path: equal, metadata too."""
    _SCHEMAS.clear()
    for start, n in ((0, 5), (5, 1), (6, 3), (9, 1)):
        df = _frame(kind, start, n)
        want = pa.Table.from_pandas(df, preserve_index=True)
        got = frame_table(df)
        assert got.equals(want, check_metadata=True), kind
        assert got.schema.metadata == want.schema.metadata


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Kolkata"])
def test_datetime_index_fast_path_is_from_pandas(unit, tz):
    """The index by its int64 view: every unit and zone, NaT arriving later, strided views."""
    _SCHEMAS.clear()
    days = pd.date_range("2024-03-09", periods=12, freq="7h", tz=tz).as_unit(unit)
    base = pd.DataFrame({"x": np.arange(12) * 0.5}, index=days.rename("t"))
    with_nat = base.copy()
    with_nat.index = pd.DatetimeIndex([days[0], pd.NaT, *days[2:]], name="t").as_unit(unit)
    for df in (base.iloc[:4], base.iloc[4:5], with_nat.iloc[:3], base.iloc[::3], base.iloc[7:]):
        want = pa.Table.from_pandas(df, preserve_index=True)
        got = frame_table(df)
        assert got.equals(want, check_metadata=True), (unit, tz, df.index)
        assert got.column(got.num_columns - 1).null_count == df.index.isna().sum()


def test_small_segments_take_the_fast_codec_and_larger_ones_zstd(tmp_path):
    """Below FAST_ROWS the metadata outweighs the values: snappy; from there on, zstd."""
    medium = LocalMedium(tmp_path, durable=False)
    for n, codec in (
        (1, "SNAPPY"),
        (compaction.FAST_ROWS - 1, "SNAPPY"),
        (compaction.FAST_ROWS, "ZSTD"),
    ):
        df = pd.DataFrame(
            {"x": np.arange(n) * 1.5}, index=pd.date_range("2000-01-01", periods=n, name="t")
        )
        seg = write_part(medium, "k", encode("DataFrame", df, np.arange(n)), ((0, n),), "segment")
        meta = pq.ParquetFile(tmp_path / "k" / seg.file).metadata
        got = {meta.row_group(0).column(c).compression for c in range(meta.num_columns)}
        assert got == {codec}, (n, got)
        back = read_segment(medium, f"k/{seg.file}", seg, 0, 0, whole=True)[3]
        assert back.column("x").to_pylist() == list(np.arange(n) * 1.5)


def test_object_columns_never_take_the_fast_path():
    """Object columns' Arrow types depend on values: no signature is cached for them."""
    _SCHEMAS.clear()
    frame_table(_frame("object", 0, 3))
    assert _SCHEMAS == {}


@pytest.mark.parametrize("kind", KINDS)
def test_kept_tail_is_the_file_read_back(tmp_path, kind):
    """readback() of a written table equals read_segment() of its file, or declines."""
    medium = LocalMedium(tmp_path, durable=False)
    df = _frame(kind, 0, 7)
    table = encode("DataFrame", df, np.arange(7, dtype=np.int64) * 10)
    seg = write_part(medium, "k", table, ((0, 70),), "segment")
    kept = tail_module.readback(seg.file or "", table)
    _, _, pos, back = read_segment(medium, f"k/{seg.file}", seg, 0, 0, whole=True)
    if kind == "category":  # a dictionary's value type reads back differently: declined
        assert kept is None
        return
    assert kept is not None
    assert kept[0] == seg.file
    assert np.array_equal(kept[1], pos)
    assert kept[2].equals(back, check_metadata=True)
    assert kept[2].schema == back.schema


def _grow(root: Path, kind: str, days: int) -> tuple[list[pd.DataFrame], Any]:
    calls: list[tuple[Any, Any]] = []

    # readahead=None: the test is about one append per day (the default reads ahead).
    @range_cached(
        key="symbol",
        step="1D",
        store=ParquetStore(root, durable=False),
        namespace="wp",
        readahead=None,
    )
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        calls.append((start, end))
        full = _frame(kind, 0, 400)
        return full[(full.index >= start) & (full.index <= end)]

    answers = []
    tz = "America/New_York" if kind == "tz" else None
    first = pd.Timestamp("2024-01-01", tz=tz).to_pydatetime()
    for d in range(10, 10 + days):
        answers.append(bars("A", first + dt.timedelta(days=d - 9), first + dt.timedelta(days=d)))
    return answers, (bars, calls)


def _segment_tables(root: Path) -> list[pa.Table]:
    return [pq.read_table(p) for p in sorted(root.glob("*/*/seg-*.parquet"))]


@pytest.mark.parametrize(
    "kind", ["plain", "nan", "nullable", "tz", "seconds", "strings", "category"]
)
def test_appends_with_the_tail_kept_match_reading_it_back(tmp_path, monkeypatch, kind):
    """Day-by-day appends: answers equal the provider's, and equal (with the files'
    rows) those of a store that reads its tail back every time; a new store reads
    the same rows without calling the provider."""
    reads: list[str] = []
    real = compaction.read_segment

    def counted(medium: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(name)
        return real(medium, name, *args, **kwargs)

    monkeypatch.setattr(compaction, "read_segment", counted)
    kept, (_, _) = _grow(tmp_path / "kept", kind, 25)
    kept_reads = len(reads)
    with monkeypatch.context() as m:
        m.setattr(tail_module, "TAIL_BYTES", -1)  # never kept: read back each time
        read, _ = _grow(tmp_path / "read", kind, 25)
    read_reads = len(reads) - kept_reads
    assert read_reads == 24  # every append after the first merges the tail it reads
    if kind != "category":  # (a dictionary may read back in another type: then it reads)
        assert kept_reads == 1  # only the first append reads its tail back
    for a, b in zip(kept, read, strict=True):
        assert_frame_equal(a, b, check_exact=True)
    full = _frame(kind, 0, 400)
    for d, got in enumerate(kept, start=10):
        assert_frame_equal(got, full.iloc[d - 9 : d + 1], check_exact=True, check_freq=False)
    ta, tb = _segment_tables(tmp_path / "kept"), _segment_tables(tmp_path / "read")
    assert len(ta) == len(tb) == 1  # a small daily key is one file
    assert ta[0].equals(tb[0], check_metadata=True)
    again, (_, calls) = _grow(tmp_path / "kept", kind, 25)
    assert calls == []
    for a, b in zip(kept, again, strict=True):  # read from disk: no index freq, as ever
        assert_frame_equal(a, b, check_exact=True, check_freq=False)


@pytest.mark.parametrize("kind", ["plain", "tz", "strings"])
def test_the_full_tier_before_the_tail_is_kept_for_its_merge(tmp_path, monkeypatch, kind):
    """With tiers of 8 rows: a tail that outgrows them becomes a tier, and the next tail
    merges into it ~8 appends later from memory, not read back; rows and files are those
    of a store that reads every part back."""
    monkeypatch.setattr(compaction, "SMALL_ROWS", 8)
    monkeypatch.setattr(keywrite, "SMALL_ROWS", 8)
    monkeypatch.setattr(compaction, "WRITE_MERGE_ROWS", 16)
    reads: list[int] = []  # the rows of each part read
    real = compaction.read_segment

    def counted(medium: Any, name: str, seg: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(seg.rows)
        return real(medium, name, seg, *args, **kwargs)

    monkeypatch.setattr(compaction, "read_segment", counted)
    kept, _ = _grow(tmp_path / "kept", kind, 40)
    kept_reads = len(reads)
    with monkeypatch.context() as m:
        m.setattr(tail_module, "TAIL_BYTES", -1)  # never kept: read back each time
        read, _ = _grow(tmp_path / "read", kind, 40)
    # The first fetch (10 rows) is a tier of its own: no merge ever reads a part.
    assert kept_reads == 0, reads[:kept_reads]
    # Reading back, the tails and (twice, at 16 and 32 appends) the full tier.
    assert reads.count(8) == 2 and set(reads) == set(range(1, 9)), reads
    for a, b in zip(kept, read, strict=True):
        assert_frame_equal(a, b, check_exact=True)
    ta, tb = _segment_tables(tmp_path / "kept"), _segment_tables(tmp_path / "read")
    assert len(ta) == len(tb) > 1  # tiers, not one file
    assert sorted(t.num_rows for t in ta) == sorted(t.num_rows for t in tb)
    again, (_, calls) = _grow(tmp_path / "kept", kind, 40)
    assert calls == []
    for a, b in zip(kept, again, strict=True):
        assert_frame_equal(a, b, check_exact=True, check_freq=False)


def _hold_elsewhere(path: str, held: Any, done: Any) -> None:
    lock = Flock(path)
    lock.acquire()
    held.set()
    done.wait(30)
    lock.release()


def test_flock_counts_holds_and_keeps_other_processes_out(tmp_path):
    path = str(tmp_path / "locks" / "x.lock")
    mine = Flock(path)
    mine.acquire()
    mine.acquire(timeout=0)  # a second hold in this process: counted, not waited for
    mine.release()
    ctx = multiprocessing.get_context("spawn")
    held, done = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_elsewhere, args=(path, held, done))
    proc.start()
    try:
        assert not held.wait(1.0)  # still held once here: the other process waits
        mine.release()
        assert held.wait(30)
        with pytest.raises(filelock.Timeout):
            mine.acquire(timeout=0.05)
        with pytest.raises(filelock.Timeout):
            mine.acquire(blocking=False)
    finally:
        done.set()
        proc.join(30)
    assert proc.exitcode == 0
    mine.acquire(timeout=5)
    mine.release()
