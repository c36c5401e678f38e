"""The merge: normalising fetched pieces and keeping a key's rows in consolidated chunks.

Every check compares against a naive model: all rows in a list, newest piece
replacing its range, then one stable sort by position.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal, assert_series_equal
from strategies import DOMAIN, intervals

import rangememo._core.rows
from rangememo._core.axis import axis_of
from rangememo._core.results import adapter_for
from rangememo._core.rows import MAX_CHUNKS, Rows, normalize

KINDS = ["frame", "frame-column", "series", "table", "frame-tz"]
DAY_NS = 86_400 * 10**9
INT_AXIS = axis_of(0, 1, None, "left")
TZ_AXIS = axis_of(pd.Timestamp(0, tz="UTC"), pd.Timestamp(1, tz="UTC"), None, "left")

Row = tuple[int, float]  # (position, value): values identify the piece and row


def build(kind: str, rows: list[Row]):
    """A provider result of ``kind`` holding ``rows`` in the given order."""
    pos = np.array([p for p, _ in rows], dtype=np.int64)
    val = np.array([v for _, v in rows], dtype=np.float64)
    label = pd.array([f"r{v:g}" for v in val], dtype="str")
    if kind == "frame":
        return pd.DataFrame(
            {"val": val, "n": val.astype(np.int64), "label": label},
            index=pd.Index(pos, name="pos"),
        )
    if kind == "frame-column":
        return pd.DataFrame({"val": val, "pos": pos, "label": label})
    if kind == "series":
        return pd.Series(val, index=pd.Index(pos, name="pos"), name="val")
    if kind == "table":
        return pa.table(
            {
                "pos": pa.array(pos),
                "val": pa.array(val),
                "label": pa.array(list(label), pa.string()),
            }
        )
    # positions are days; the index is New York time in seconds resolution
    index = pd.DatetimeIndex((pos * DAY_NS).view("M8[ns]"), name="time").tz_localize("UTC")
    return pd.DataFrame({"val": val}, index=index.tz_convert("America/New_York").as_unit("s"))


def setup(kind: str, first_rows: list[Row]):
    """The adapter and axis for ``kind`` (as the cache picks them for a first result)."""
    index = {"frame-column": "pos", "table": "pos"}.get(kind)
    adapter = adapter_for(build(kind, first_rows), index)
    axis = TZ_AXIS if kind == "frame-tz" else INT_AXIS
    return adapter, axis


def scale(kind: str, p: int) -> int:
    """Axis units of grid position ``p``."""
    return p * DAY_NS if kind == "frame-tz" else p


def piece(kind, adapter, axis, rows: list[Row], lo: int, hi: int):
    data = build(kind, rows)
    return normalize(adapter, adapter.positions(data, axis), data, scale(kind, lo), scale(kind, hi))


def read(kind, adapter, rows: Rows, template, lo: int, hi: int):
    """What a cache hands out for ``[lo, hi)``: the window's pieces joined and finished."""
    parts = rows.window(scale(kind, lo), scale(kind, hi))
    if not parts:
        joined = adapter.empty(template)
    else:
        joined = parts[0] if len(parts) == 1 else adapter.concat(parts)
    return adapter.finish(joined, template)


def assert_same(kind: str, got, expected) -> None:
    """Exact equality: values, order, dtypes, names, timezone."""
    if kind == "series":
        assert_series_equal(got, expected)
    elif kind == "table":
        assert got.schema.equals(expected.schema, check_metadata=False)
        assert got.to_pydict() == expected.to_pydict()
    else:
        assert_frame_equal(got, expected)


def model_replace(model: list[Row], rows: list[Row], lo: int, hi: int) -> list[Row]:
    """The naive merge: drop ``[lo, hi)``, add the piece's rows there, stable sort."""
    kept = [r for r in model if not lo <= r[0] < hi]
    new = [r for r in rows if lo <= r[0] < hi]
    return sorted(kept + new, key=lambda r: r[0])


def model_window(model: list[Row], lo: int, hi: int) -> list[Row]:
    return [r for r in model if lo <= r[0] < hi]


# -- normalize ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_normalize_sorts_stably(kind):
    """Rows come out by position; rows sharing a position keep the provider's order."""
    rows = [(3, 0.0), (1, 1.0), (3, 2.0), (2, 3.0), (1, 4.0)]
    adapter, axis = setup(kind, rows)
    chunk = piece(kind, adapter, axis, rows, 0, 10)
    expected = [(1, 1.0), (1, 4.0), (2, 3.0), (3, 0.0), (3, 2.0)]
    assert list(chunk.positions) == [scale(kind, p) for p, _ in expected]
    template = adapter.empty(build(kind, rows))
    rows_ = Rows(adapter)
    rows_.replace(scale(kind, 0), scale(kind, 10), chunk)
    assert_same(kind, read(kind, adapter, rows_, template, 0, 10), build(kind, expected))


@pytest.mark.parametrize("kind", KINDS)
def test_normalize_restricts_to_the_half_open_range(kind):
    """Rows before ``lo`` or at/after ``hi`` are dropped."""
    rows = [(p, float(p)) for p in range(10)]
    adapter, axis = setup(kind, rows)
    chunk = piece(kind, adapter, axis, rows, 3, 7)
    assert list(chunk.positions) == [scale(kind, p) for p in (3, 4, 5, 6)]
    assert len(chunk) == 4


@pytest.mark.parametrize("kind", KINDS)
def test_normalize_of_nothing_in_range_is_empty(kind):
    """A piece with no row inside its range normalises to an empty chunk."""
    rows = [(1, 1.0), (9, 9.0)]
    adapter, axis = setup(kind, rows)
    assert len(piece(kind, adapter, axis, rows, 3, 7)) == 0


@given(
    st.sampled_from(KINDS),
    st.lists(st.integers(-3, DOMAIN + 3), max_size=30),
    intervals(),
)
def test_normalize_matches_a_sort_and_filter(kind, positions, span):
    """normalize == stable sort by position, then keep ``lo <= p < hi``."""
    rows = [(p, float(i)) for i, p in enumerate(positions)]
    adapter, axis = setup(kind, rows or [(0, 0.0)])
    chunk = piece(kind, adapter, axis, rows, *span)
    expected = model_replace([], rows, *span)
    assert list(chunk.positions) == [scale(kind, p) for p, _ in expected]
    stored = Rows(adapter)
    stored.replace(scale(kind, span[0]), scale(kind, span[1]), chunk)
    template = adapter.empty(build(kind, rows))
    assert_same(kind, read(kind, adapter, stored, template, -5, DOMAIN + 5), build(kind, expected))


# -- replacing and reading ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_newest_piece_wins(kind):
    """A later fetch of a range replaces every stored row in it, even where it has fewer rows."""
    old = [(p, 100.0 + p) for p in range(10)]
    new = [(4, 204.0), (6, 206.0)]
    adapter, axis = setup(kind, old)
    stored = Rows(adapter)
    stored.replace(scale(kind, 0), scale(kind, 10), piece(kind, adapter, axis, old, 0, 10))
    stored.replace(scale(kind, 3), scale(kind, 8), piece(kind, adapter, axis, new, 3, 8))
    expected = model_replace(model_replace([], old, 0, 10), new, 3, 8)
    template = adapter.empty(build(kind, old))
    assert_same(kind, read(kind, adapter, stored, template, 0, 10), build(kind, expected))
    assert len(stored) == len(expected)


@pytest.mark.parametrize("kind", KINDS)
def test_replace_with_nothing_forgets_the_range(kind):
    """``replace(lo, hi, None)`` drops the rows in ``[lo, hi)`` and keeps the rest."""
    rows = [(p, float(p)) for p in range(10)]
    adapter, axis = setup(kind, rows)
    stored = Rows(adapter)
    stored.replace(scale(kind, 0), scale(kind, 10), piece(kind, adapter, axis, rows, 0, 10))
    stored.replace(scale(kind, 2), scale(kind, 5), None)
    template = adapter.empty(build(kind, rows))
    expected = model_replace(rows, [], 2, 5)
    assert_same(kind, read(kind, adapter, stored, template, 0, 10), build(kind, expected))


@pytest.mark.parametrize("kind", KINDS)
def test_window_spans_several_chunks(kind, monkeypatch):
    """A window across chunk seams returns every row once, in order."""
    monkeypatch.setattr("rangememo._core.rows.SMALL_BYTES", 0)  # small chunks would merge
    adapter, axis = setup(kind, [(0, 0.0)])
    stored, model = Rows(adapter), []
    # Sizes 16, 1, 4, 1: the geometric rule cannot merge these into one chunk.
    for lo, hi in [(0, 16), (16, 17), (17, 21), (21, 22)]:
        rows = [(p, float(p)) for p in range(lo, hi)]
        stored.replace(scale(kind, lo), scale(kind, hi), piece(kind, adapter, axis, rows, lo, hi))
        model = model_replace(model, rows, lo, hi)
    assert len(stored.chunks) > 1
    template = adapter.empty(build(kind, [(0, 0.0)]))
    for lo, hi in [(0, 22), (10, 18), (15, 17), (16, 17), (5, 5), (20, 40), (-4, 1), (30, 40)]:
        expected = build(kind, model_window(model, lo, hi))
        assert_same(kind, read(kind, adapter, stored, template, lo, hi), expected)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(intervals(), st.lists(st.integers(-2, DOMAIN + 2), max_size=12)),
        min_size=1,
        max_size=8,
    ),
    st.lists(intervals(-2, DOMAIN + 2), min_size=1, max_size=4),
)
def test_rows_equal_a_concat_and_sort_model(kind, fetches, windows):
    """Any sequence of fetches, read through any windows, equals the naive model."""
    for small in (0, rangememo._core.rows.SMALL_BYTES):  # many chunks, and few
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("rangememo._core.rows.SMALL_BYTES", small)
            _rows_equal_the_model(kind, fetches, windows)


def _rows_equal_the_model(kind, fetches, windows):
    adapter, axis = setup(kind, [(0, 0.0)])
    template = adapter.empty(build(kind, [(0, 0.0)]))
    stored, model = Rows(adapter), []
    for n, ((lo, hi), positions) in enumerate(fetches):
        rows = [(p, 1000.0 * n + i) for i, p in enumerate(positions)]
        stored.replace(scale(kind, lo), scale(kind, hi), piece(kind, adapter, axis, rows, lo, hi))
        model = model_replace(model, rows, lo, hi)
    assert len(stored) == len(model)
    firsts = [c.first for c in stored.chunks]
    assert firsts == sorted(firsts)
    assert all(a.last < b.first for a, b in zip(stored.chunks, stored.chunks[1:], strict=False))
    for lo, hi in windows:
        expected = build(kind, model_window(model, lo, hi))
        assert_same(kind, read(kind, adapter, stored, template, lo, hi), expected)


@pytest.mark.parametrize("kind", ["frame", "series", "frame-tz"])
def test_mutating_a_read_leaves_the_rows_alone(kind):
    """What a window hands out can be mutated without changing the stored rows."""
    rows = [(p, float(p)) for p in range(8)]
    adapter, axis = setup(kind, rows)
    stored = Rows(adapter)
    stored.replace(scale(kind, 0), scale(kind, 8), piece(kind, adapter, axis, rows, 0, 8))
    template = adapter.empty(build(kind, rows))
    out = read(kind, adapter, stored, template, 0, 8)
    if kind == "series":
        out.iloc[0] = -1.0
    else:
        out.iloc[0, 0] = -1.0
    out.index.name = "renamed"
    assert_same(kind, read(kind, adapter, stored, template, 0, 8), build(kind, rows))


# -- consolidation --------------------------------------------------------------------


def counting(adapter) -> list[int]:
    """Count the rows the adapter copies (concat and take) from now on."""
    copied = [0]
    concat, take = adapter.concat, adapter.take

    def counted_concat(parts):
        copied[0] += sum(len(p) for p in parts)
        return concat(parts)

    def counted_take(data, order):
        copied[0] += len(order)
        return take(data, order)

    adapter.concat, adapter.take = counted_concat, counted_take
    return copied


def log_bound(n: int) -> float:
    """O(log N) with a small constant: 2·log2(N) + 2 chunks."""
    return 2 * math.log2(max(n, 1)) + 2


def one_row(adapter, p: int):
    data = build("frame", [(p, float(p))])
    return normalize(adapter, adapter.positions(data, INT_AXIS), data, p, p + 1)


def test_one_row_appends_keep_chunks_logarithmic_and_copies_n_log_n(monkeypatch):
    """1,000 appends after the last row: O(log N) chunks, O(N log N) rows copied in all."""
    monkeypatch.setattr("rangememo._core.rows.SMALL_BYTES", 0)  # the geometric rule alone
    adapter, _ = setup("frame", [(0, 0.0)])
    stored = Rows(adapter)
    copied = counting(adapter)
    n = 1000
    for p in range(n):
        stored.replace(p, p + 1, one_row(adapter, p))
        assert len(stored.chunks) <= log_bound(p + 1)
    assert copied[0] <= n * (math.log2(n) + 1)
    template = adapter.empty(build("frame", [(0, 0.0)]))
    expected = build("frame", [(p, float(p)) for p in range(n)])
    assert_frame_equal(read("frame", adapter, stored, template, 0, n), expected)


def test_appends_never_copy_the_large_stored_frame():
    """100 one-row appends to a 10,000-row key copy far fewer than 10,000 rows."""
    big = [(p, float(p)) for p in range(10_000)]
    adapter, axis = setup("frame", big)
    stored = Rows(adapter)
    stored.replace(0, 10_000, piece("frame", adapter, axis, big, 0, 10_000))
    copied = counting(adapter)
    for p in range(10_000, 10_100):
        stored.replace(p, p + 1, one_row(adapter, p))
    assert copied[0] < 10_000
    assert len(stored) == 10_100


@pytest.mark.parametrize("seed", [0, 1])
def test_random_inserts_stay_exact_with_bounded_copying(seed, monkeypatch):
    """1,000 one-row inserts in random order: exact result, O(N log N) rows copied."""
    monkeypatch.setattr("rangememo._core.rows.SMALL_BYTES", 0)  # the geometric rule alone
    order = list(range(1000))
    random.Random(seed).shuffle(order)
    adapter, _ = setup("frame", [(0, 0.0)])
    stored = Rows(adapter)
    copied = counting(adapter)
    for p in order:
        stored.replace(p, p + 1, one_row(adapter, p))
    assert copied[0] <= 4 * len(order) * math.log2(len(order))
    template = adapter.empty(build("frame", [(0, 0.0)]))
    expected = build("frame", [(p, float(p)) for p in range(1000)])
    assert_frame_equal(read("frame", adapter, stored, template, 0, 1000), expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_inserts_keep_chunks_bounded(seed):
    """1,000 one-row inserts in random order never leave more than MAX_CHUNKS chunks."""
    order = list(range(1000))
    random.Random(seed).shuffle(order)
    adapter, _ = setup("frame", [(0, 0.0)])
    stored = Rows(adapter)
    for p in order:
        stored.replace(p, p + 1, one_row(adapter, p))
        assert len(stored.chunks) <= MAX_CHUNKS
