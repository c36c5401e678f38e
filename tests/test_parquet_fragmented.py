"""A ParquetStore key of a few thousand disjoint covered intervals, reopened (issue 8).

Such a key is one or a few segments with thousands of claims each: opening
it, answering from it and committing into it go through the claim
arithmetic (``claims.py``), the bulk row load and the masked merges. Every
answer is compared with the uncached function's, and provider calls are
counted: a covered request fetches nothing, a gap request fetches the gap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import portion as P
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangememo import ParquetStore, range_cached
from rangememo._core.results import FrameAdapter
from rangememo._stores.parquet.claims import (
    expand_ranges,
    shown,
    union,
    visible,
    visible_vectorised,
)
from rangememo._stores.parquet.segments import Segment
from rangememo._stores.parquet.stored_rows import SegmentRows

K = 2_000  # intervals [10 i, 10 i + 5): holes [10 i + 5, 10 i + 10)


def provider(key: str, lo: int, hi: int) -> pd.DataFrame:
    pos = np.arange(lo, hi, dtype=np.int64)
    return pd.DataFrame(
        {"v": pos * 2, "f": pos / 7.0, "s": [f"{key}{p}" for p in pos]},
        index=pd.Index(pos, name="pos"),
    )


def counted(store: ParquetStore, calls: list[tuple[int, int]]) -> Callable[..., pd.DataFrame]:
    def fetch(key: str, lo: int, hi: int) -> pd.DataFrame:
        calls.append((lo, hi))
        return provider(key, lo, hi)

    return range_cached(
        key="key", start="lo", end="hi", step=1, closed="left", store=store, namespace="frag"
    )(fetch)


def same(got: pd.DataFrame, key: str, lo: int, hi: int) -> None:
    pd.testing.assert_frame_equal(got, provider(key, lo, hi), check_exact=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fragmented key, built one interval per call (as a user's calls would)."""
    path = tmp_path_factory.mktemp("frag")
    store = ParquetStore(path, durable=False)
    calls: list[tuple[int, int]] = []
    fn = counted(store, calls)
    for i in range(K):
        fn("k", 10 * i, 10 * i + 5)
    assert len(calls) == K
    store.close()
    return path


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst / "store")
    return dst / "store"


@pytest.mark.parametrize("eager_rows", [50_000, 0], ids=["eager", "windowed"])
def test_reopened_fragmented_key_answers_exactly(
    built: Path, tmp_path: Path, eager_rows: int
) -> None:
    path = _copy(built, tmp_path)
    store = ParquetStore(path, durable=False, eager_rows=eager_rows)
    calls: list[tuple[int, int]] = []
    fn = counted(store, calls)
    for i in range(K):  # every covered interval, and pieces of it (no fetch)
        same(fn("k", 10 * i, 10 * i + 5), "k", 10 * i, 10 * i + 5)
        if i % 97 == 0:
            same(fn("k", 10 * i + 1, 10 * i + 4), "k", 10 * i + 1, 10 * i + 4)
    assert calls == []
    for i in range(0, K, 13):  # a gap request: the hole only is fetched
        same(fn("k", 10 * i, 10 * i + 8), "k", 10 * i, 10 * i + 8)
        assert calls[-1] == (10 * i + 5, 10 * i + 8)
    assert len(calls) == len(range(0, K, 13))
    calls.clear()
    # One request over many intervals: each hole not filled yet is one fetch.
    lo, hi = 10 * (K // 2), 10 * (K // 2 + 40)
    same(fn("k", lo, hi), "k", lo, hi)
    holes = [(10 * i + 5, 10 * i + 10) for i in range(K // 2, K // 2 + 40)]
    filled = {(10 * i + 5, 10 * i + 8) for i in range(0, K, 13)}
    want = []
    for a, b in holes:
        want.append((a + 3, b) if (a, a + 3) in filled else (a, b))
    assert sorted(calls) == want
    store.close()
    # And all of it again from a fresh store: nothing is fetched.
    again = ParquetStore(path, durable=False, eager_rows=eager_rows)
    calls2: list[tuple[int, int]] = []
    fn2 = counted(again, calls2)
    for i in range(0, K, 7):
        same(fn2("k", 10 * i, 10 * i + 5), "k", 10 * i, 10 * i + 5)
    for i in range(0, K, 13):
        same(fn2("k", 10 * i, 10 * i + 8), "k", 10 * i, 10 * i + 8)
    same(fn2("k", lo, hi), "k", lo, hi)
    assert calls2 == []
    again.close()


def test_writes_around_unloaded_intervals_then_a_wide_read(built: Path, tmp_path: Path) -> None:
    """Holes filled in memory before the intervals around them load (windowed key):
    in-memory chunks then span pending pieces, which load into their middle."""
    path = _copy(built, tmp_path)
    store = ParquetStore(path, durable=False, eager_rows=0)
    calls: list[tuple[int, int]] = []
    fn = counted(store, calls)
    for i in range(100, 160, 2):  # every other hole: chunks merge across the rest
        same(fn("k", 10 * i + 5, 10 * i + 10), "k", 10 * i + 5, 10 * i + 10)
    assert len(calls) == 30
    calls.clear()
    same(fn("k", 1000, 1600), "k", 1000, 1600)  # the other holes only
    # The gaps of one call are fetched by up to 4 threads: in any order.
    assert sorted(calls) == [(10 * i + 5, 10 * i + 10) for i in range(101, 160, 2)]
    calls.clear()
    # A wide read around them: every remaining hole is one fetch.
    same(fn("k", 500, 2500), "k", 500, 2500)
    assert len(calls) == 200 - 60
    store.close()


def test_compacted_fragmented_key_reopens_exactly(built: Path, tmp_path: Path) -> None:
    path = _copy(built, tmp_path)
    store = ParquetStore(path, durable=False)
    calls: list[tuple[int, int]] = []
    fn = counted(store, calls)
    for i in range(K - 30, K):  # a few newer segments over the big one
        same(fn("k", 10 * i + 2, 10 * i + 9), "k", 10 * i + 2, 10 * i + 9)
    assert len(calls) == 30
    store.compact()
    store.close()
    again = ParquetStore(path, durable=False)
    calls.clear()
    fn = counted(again, calls)
    for i in range(0, K, 5):
        same(fn("k", 10 * i, 10 * i + 5), "k", 10 * i, 10 * i + 5)
    for i in range(K - 30, K):
        same(fn("k", 10 * i, 10 * i + 9), "k", 10 * i, 10 * i + 9)
    assert calls == []
    again.close()


# -- the claim arithmetic against portion (what it replaced) -------------------------
claims_st = st.lists(st.tuples(st.integers(0, 60), st.integers(1, 12)), max_size=12).map(
    lambda xs: P.Interval(*(P.closedopen(a, a + n) for a, n in xs))
)


def _pairs(iv: P.Interval) -> tuple[tuple[int, int], ...]:
    return tuple((int(a.lower), int(a.upper)) for a in iv if not a.empty)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(claims_st, st.booleans(), st.integers(0, 70)), max_size=6))
def test_visible_and_shown_match_portion(spec: list[tuple[P.Interval, bool, int]]) -> None:
    segs = []
    for n, (iv, rows, first) in enumerate(spec):
        segs.append(Segment(f"seg-{n}.parquet" if rows else None, _pairs(iv), 5, first, first + 9))
    want, seen = [], P.empty()
    for seg in reversed(segs):
        claim = P.Interval(*(P.closedopen(a, b) for a, b in seg.claims))
        if seg.file is not None:
            part = (claim - seen) & P.closedopen(seg.first, seg.last + 1)
            want += [(a, b, seg.file) for a, b in _pairs(part)]
        seen |= claim
    got = [(a, b, s.file) for a, b, s in visible(segs)]
    assert sorted(got) == sorted(want)
    # The array way (keys of many claims) gives the same pieces, in order.
    assert [(a, b, s.file) for a, b, s in visible_vectorised(segs)] == sorted(want)
    for k, seg in enumerate(segs):
        later = P.empty()
        for s in segs[k + 1 :]:
            later |= P.Interval(*(P.closedopen(a, b) for a, b in s.claims))
        mine = P.Interval(*(P.closedopen(a, b) for a, b in seg.claims))
        if all(s.file != seg.file for s in segs[k + 1 :]):
            assert shown(segs, seg.file) == list(_pairs(mine - later))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(claims_st, st.booleans(), st.integers(0, 70)), max_size=6))
def test_owners_in_small_batches_match_one_pass(spec: list[tuple[P.Interval, bool, int]]) -> None:
    import rangememo._stores.parquet.claims as claims

    segs = [
        Segment(f"seg-{n}.parquet" if rows else None, _pairs(iv), 5, first, first + 9)
        for n, (iv, rows, first) in enumerate(spec)
    ]
    whole = claims.owners(segs)
    saved = claims._BATCH
    try:
        claims._BATCH = 3  # many passes, each marking a few ranges
        batched = claims.owners(segs)
    finally:
        claims._BATCH = saved
    assert np.array_equal(whole[0], batched[0]) and np.array_equal(whole[1], batched[1])


@settings(max_examples=300, deadline=None)
@given(st.lists(claims_st, min_size=1, max_size=5), st.integers(0, 200))
def test_union_matches_portion(lists: list[P.Interval], spread: int) -> None:
    # One list made large (the splice path) by spreading it out.
    big = tuple((a * 1000 + b, a * 1000 + b + 3) for a in range(spread) for b in (0, 10))
    parts = [big, *(_pairs(iv) for iv in lists)]
    want = P.empty()
    for cs in parts:
        for a, b in cs:
            want |= P.closedopen(a, b)
    assert union(*parts) == _pairs(want)


@settings(max_examples=300, deadline=None)
@given(claims_st, st.integers(0, 80), st.integers(0, 20))
def test_unpend_matches_a_pass_over_every_piece(iv: P.Interval, lo: int, n: int) -> None:
    seg = Segment("seg-x.parquet", _pairs(iv), 1, 0, 100)
    rows = SegmentRows(FrameAdapter(None), [(a, b, seg) for a, b in _pairs(iv)], lambda *a: None)  # type: ignore[arg-type, return-value]
    rows._unpend(lo, lo + n)
    left = iv - P.closedopen(lo, lo + n)
    assert [(a, b) for a, b, _ in rows.pending(-1, 10**6)] == list(_pairs(left))
    assert rows.complete == left.empty


# -- a key loaded whole: row masks (the eager open) against pieces --------------------
def _frame(pos: np.ndarray, tag: int, freq: bool = False) -> pd.DataFrame:
    if freq:
        index: pd.Index = pd.date_range("2024-01-01", periods=len(pos), freq="D", name="t")
    else:
        index = pd.Index(pos, name="pos")
    return pd.DataFrame({"v": pos * 10 + tag, "tag": np.full(len(pos), tag)}, index=index)


def _rows_of(spec: list[tuple[P.Interval, int, int]], freq: bool = False):  # type: ignore[no-untyped-def]
    """Segments whose files hold every position of ``[first, first + n)`` (some outside
    their claims: those never show), and a loader counting its reads."""
    segs, files, reads = [], {}, []
    for k, (iv, first, n) in enumerate(spec):
        name = f"seg-{k}.parquet" if n else None
        seg = Segment(name, _pairs(iv), n, first, first + max(n, 1) - 1)
        segs.append(seg)
        if name is not None:
            files[name] = np.arange(first, first + n, dtype=np.int64)

    def load(seg: Segment, lo: int, hi: int):  # type: ignore[no-untyped-def]
        from rangememo._core.rows import Chunk

        reads.append(seg.file)
        pos = files[seg.file]
        data = _frame(pos, int(seg.file[4:-8]), freq)
        return -(2**63), 2**63 - 1, Chunk(pos, data, int(data.memory_usage().sum()))

    return segs, load, reads


def _everything(rows: SegmentRows) -> pd.DataFrame:
    rows.ensure(-(2**63), 2**63 - 1)
    parts = rows.window(-(2**63), 2**63 - 1)
    return pd.concat(parts) if parts else pd.DataFrame()


segments_st = st.lists(st.tuples(claims_st, st.integers(0, 60), st.integers(0, 15)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(segments_st)
def test_a_whole_load_by_masks_equals_the_load_by_pieces(
    spec: list[tuple[P.Interval, int, int]],
) -> None:
    segs, load, reads = _rows_of(spec)
    want = _everything(SegmentRows(FrameAdapter(None), visible(segs), load))
    reads.clear()
    lazy = SegmentRows(FrameAdapter(None), [], load, segments=segs)
    pd.testing.assert_frame_equal(_everything(lazy), want)
    assert lazy.complete and lazy.pending_rows == 0
    # A segment whose every claim a later one hides is not read.
    for k, seg in enumerate(segs):
        later = P.empty()
        for s in segs[k + 1 :]:
            later |= P.Interval(*(P.closedopen(a, b) for a, b in s.claims))
        if (
            seg.file is not None
            and (P.Interval(*(P.closedopen(a, b) for a, b in seg.claims)) - later).empty
        ):
            assert seg.file not in reads


@settings(max_examples=100, deadline=None)
@given(segments_st)
def test_a_whole_load_goes_by_pieces_for_an_index_with_a_freq(
    spec: list[tuple[P.Interval, int, int]],
) -> None:
    segs, load, _ = _rows_of(spec, freq=True)
    by_pieces = SegmentRows(FrameAdapter(None), visible(segs), load)
    lazy = SegmentRows(FrameAdapter(None), [], load, segments=segs)
    pd.testing.assert_frame_equal(_everything(lazy), _everything(by_pieces))
    # The same chunks: a freq-carrying piece is not merged across a hole.
    everything = (-(2**63), 2**63 - 1)
    freqs = [(len(p), p.index.freq) for p in lazy.window(*everything)]
    assert freqs == [(len(p), p.index.freq) for p in by_pieces.window(*everything)]


def test_a_damaged_segment_mid_whole_load_keeps_what_was_read() -> None:
    from rangememo._stores.parquet.segments import Damaged

    spec = [(P.closedopen(0, 10), 0, 10), (P.closedopen(20, 30), 20, 10)]
    segs, load, _ = _rows_of(spec)

    def failing(seg: Segment, lo: int, hi: int):  # type: ignore[no-untyped-def]
        if seg.file == "seg-1.parquet":
            raise Damaged("x", "bad", seg)
        return load(seg, lo, hi)

    rows = SegmentRows(FrameAdapter(None), [], failing, segments=segs)
    with pytest.raises(Damaged):
        rows.ensure(-(2**63), 2**63 - 1)
    assert [(a, b) for a, b, _ in rows.pending(-(2**63), 2**63 - 1)] == [(20, 30)]
    shown_rows = pd.concat(rows.window(0, 10))
    pd.testing.assert_frame_equal(shown_rows, _frame(np.arange(10), 0))


def test_a_lazy_key_written_before_its_load_works_out_its_pieces() -> None:
    from rangememo._core.rows import Chunk

    spec = [(P.closedopen(0, 10), 0, 10), (P.closedopen(5, 15), 5, 10)]
    segs, load, _ = _rows_of(spec)
    rows = SegmentRows(FrameAdapter(None), [], load, segments=segs)
    new = _frame(np.arange(12, 14), 9)
    rows.replace(12, 14, Chunk(np.arange(12, 14), new, 100))  # a write: pieces now known
    assert [(a, b) for a, b, _ in rows.pending(-1, 100)] == [(0, 5), (5, 12), (14, 15)]
    got = _everything(rows)
    assert got["tag"].tolist() == [0] * 5 + [1] * 7 + [9] * 2 + [1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(0, 6)), max_size=12))
def test_expand_ranges_lists_every_integer_of_each_range_in_order(
    ranges: list[tuple[int, int]],
) -> None:
    starts = np.array([a for a, _ in ranges], dtype=np.int64)
    lens = np.array([n for _, n in ranges], dtype=np.int64)
    expected = [v for a, n in ranges for v in range(a, a + n)]
    assert expand_ranges(starts, lens).tolist() == expected
