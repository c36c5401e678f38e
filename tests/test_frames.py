"""The block-wise concat gives exactly what ``pd.concat`` gives, or declines."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rangememo._core.frames import append_index, column_dtypes, concat_frames, slice_frame
from rangememo._core.widen import concat_pandas

DTYPES = ["float64", "int64", "int32", "bool", "object", "str", "datetime64[ns]", "category"]


def _column(dtype: str, n: int, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    if dtype == "object":
        return pd.Series([f"x{v}" for v in rng.integers(0, 5, n)], dtype=object)
    if dtype == "str":
        return pd.Series([f"s{v}" for v in rng.integers(0, 5, n)], dtype="str")
    if dtype == "category":
        return pd.Series([f"c{v}" for v in rng.integers(0, 3, n)], dtype="category")
    if dtype == "datetime64[ns]":
        return pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 9, n), "D"))
    if dtype == "bool":
        return pd.Series(rng.integers(0, 2, n).astype(bool))
    return pd.Series(rng.integers(0, 100, n)).astype(dtype)


def _index(kind: str, start: int, n: int, name: Any) -> pd.Index:
    if kind == "range":
        return pd.RangeIndex(start, start + n, name=name)
    if kind == "int":
        return pd.Index(np.arange(start, start + n) * 3, name=name)
    tz = "America/New_York" if kind == "aware" else None
    freq = "min" if kind in ("freq", "aware") else None
    idx = pd.date_range("2024-01-01", periods=n, freq="min", tz=tz, name=name)
    idx = pd.DatetimeIndex(idx + pd.Timedelta(minutes=start), freq=freq)
    return idx if kind != "gappy" else pd.DatetimeIndex(idx.asi8 * 2, name=name).as_unit("ns")


@st.composite
def frame_lists(draw: st.DrawFn) -> list[pd.DataFrame]:
    ncols = draw(st.integers(1, 4))
    dtypes = draw(st.lists(st.sampled_from(DTYPES), min_size=ncols, max_size=ncols))
    names = [f"c{i}" for i in range(ncols)]
    kind = draw(st.sampled_from(["range", "int", "freq", "aware", "naive", "gappy"]))
    parts, start = [], 0
    for k in range(draw(st.integers(2, 4))):
        n = draw(st.integers(0, 5))
        frame = pd.DataFrame(
            {
                c: _column(t, n, k * 10 + i).array
                for i, (c, t) in enumerate(zip(names, dtypes, strict=True))
            }
        )
        # Sometimes a gap in the index, a renamed index, other column order or dtype.
        start += draw(st.integers(0, 2))
        frame.index = _index(kind, start, n, draw(st.sampled_from(["time", "time", None])))
        start += n
        twist = draw(st.sampled_from(["none"] * 6 + ["reorder", "recast", "attrs", "colname"]))
        if twist == "reorder" and ncols > 1:
            frame = frame[names[::-1]]
        elif twist == "recast":
            recast = "float32" if dtypes[0] in ("float64", "int64", "int32") else "object"
            frame = frame.astype({names[0]: recast})
        elif twist == "attrs":
            frame.attrs["source"] = "x"
        elif twist == "colname":
            frame.columns = pd.Index(names, name="fields")
        if draw(st.booleans()):  # an unconsolidated layout (one block per column)
            frame = frame.copy()
            frame[names[0]] = frame[names[0]]
        parts.append(frame)
    return parts


@settings(max_examples=300, deadline=None)
@given(frame_lists())
def test_blockwise_concat_equals_pd_concat(parts: list[pd.DataFrame]) -> None:
    expected = pd.concat(parts)
    fast = concat_frames(parts)
    if fast is not None:
        pdt.assert_frame_equal(fast, expected, check_freq=True, check_flags=True)
        assert getattr(fast.index, "freq", None) == getattr(expected.index, "freq", None)
        assert fast.columns.name == expected.columns.name
        assert fast.attrs == expected.attrs
        assert list(fast.dtypes) == list(expected.dtypes)
    if not any(isinstance(t, pd.CategoricalDtype) for p in parts for t in p.dtypes):
        # (categoricals of differing categories are unioned there, on purpose)
        pdt.assert_frame_equal(concat_pandas(parts), expected, check_freq=True)


@settings(max_examples=300, deadline=None)
@given(frame_lists(), st.integers(0, 8), st.integers(0, 8))
def test_block_slice_equals_iloc(parts: list[pd.DataFrame], i: int, j: int) -> None:
    frame = pd.concat(parts) if len(parts) > 1 else parts[0]
    for whole in (frame, parts[0]):
        expected = whole.iloc[i:j]
        fast = slice_frame(whole, i, j)
        if fast is None:
            continue
        pdt.assert_frame_equal(fast, expected, check_freq=True, check_flags=True)
        assert fast.index.name == expected.index.name and fast.columns.name == whole.columns.name
        assert list(fast.dtypes) == list(expected.dtypes)


def test_block_slice_takes_plain_bars_and_declines_the_rest() -> None:
    idx = (
        pd.DatetimeIndex(
            pd.date_range("2024-03-10", periods=50, freq="h", tz="America/New_York").asi8 * 1,
            name="ts",
        )
        .tz_localize("UTC")
        .tz_convert("America/New_York")
    )
    bars = pd.DataFrame(
        {"close": np.arange(50.0), "volume": np.arange(50), "venue": ["x"] * 50}, index=idx
    )
    assert idx.freq is None
    cut = slice_frame(bars, 3, 30)
    assert cut is not None
    pdt.assert_frame_equal(cut, bars.iloc[3:30])
    # Declined: a freq to keep (iloc infers it), attrs, a Series, an integer index.
    assert slice_frame(bars.asfreq("h"), 0, 3) is None
    tagged = bars.copy()
    tagged.attrs["src"] = "x"
    assert slice_frame(tagged, 0, 3) is None
    assert slice_frame(bars["close"], 0, 3) is None
    assert slice_frame(bars.reset_index(drop=True), 0, 3) is None


def test_block_slice_is_copy_on_write_both_ways() -> None:
    # A caller writing to its answer must not write into the cache's chunk,
    # and a chunk written later (it never is, but pandas says so) must not
    # show through an answer handed out before.
    idx = pd.DatetimeIndex(np.arange(10) * 60_000_000_000, name="t").as_unit("ns")
    chunk = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10)}, index=idx)
    answer = slice_frame(chunk, 2, 6)
    assert answer is not None
    answer.iloc[0, 0] = -1.0
    answer.loc[answer.index[1], "b"] = -1
    assert chunk["a"].tolist() == list(np.arange(10.0)) and chunk["b"].tolist() == list(range(10))
    before = slice_frame(chunk, 2, 6)
    assert before is not None
    chunk.iloc[3, 0] = 99.0
    assert before.iloc[1, 0] == 3.0


def test_plain_bars_take_the_fast_path() -> None:
    # Two provider answers of minute bars: separate objects, one layout.
    idx = pd.date_range("2024-01-01", periods=6, freq="min", name="time")
    frame = pd.DataFrame({"open": np.arange(6.0), "volume": np.arange(6)}, index=idx)
    a = frame.iloc[:4].copy()
    b = pd.DataFrame({"open": [4.0, 5.0], "volume": [4, 5]}, index=idx[4:])
    out = concat_frames([a, b])
    assert out is not None
    pdt.assert_frame_equal(out, frame, check_freq=True)
    out.iloc[0, 0] = -1.0  # a copy: the parts are untouched
    assert a.iloc[0, 0] == 0.0


def test_declines_what_it_cannot_prove() -> None:
    a = pd.DataFrame({"x": [1.0]}, index=pd.Index([1], name="t"))
    assert concat_frames([a, a.astype("float32")]) is None
    assert concat_frames([a, a.rename(columns={"x": "y"})]) is None
    tagged = a.copy()
    tagged.attrs["k"] = 1
    assert concat_frames([a, tagged]) is None
    assert concat_frames([a, a["x"]]) is None


INDEX_KINDS = ["freq", "aware", "naive", "gappy", "daily", "bday", "daily-aware"]


def _dates(kind: str, start: int, n: int, name: Any) -> pd.DatetimeIndex:
    if kind in ("daily", "bday", "daily-aware"):
        freq = "B" if kind == "bday" else "D"
        tz = "Europe/London" if kind == "daily-aware" else None
        idx = pd.date_range("2024-03-25", periods=start + n, freq=freq, tz=tz, name=name)
        return idx[start:]
    return pd.DatetimeIndex(_index(kind, start, n, name))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(INDEX_KINDS),
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 4), st.sampled_from(["t", None])),
        min_size=2,
        max_size=4,
    ),
    st.sampled_from(["ns", "us", "s"]),
)
def test_append_index_equals_index_append(
    kind: str, shape: list[tuple[int, int, Any]], unit: str
) -> None:
    parts, start = [], 0
    for skip, n, name in shape:
        start += skip
        parts.append(_dates(kind, start, n, name).as_unit(unit))
        start += n
    expected = parts[0].append(parts[1:])
    out = append_index(parts[0], parts[1:])
    pdt.assert_index_equal(out, expected, exact=True)
    assert out.freq == expected.freq and out.name == expected.name
    assert out.dtype == expected.dtype


def test_block_slice_of_extension_columns_and_odd_labels() -> None:
    # Arrow, nullable, period, interval, sparse, aware, timedelta, categorical and
    # decimal columns, a tuple index name, MultiIndex columns, duplicate labels:
    # every slice equals iloc's, and writing to one leaves the source alone.
    import pyarrow as pa

    idx = pd.DatetimeIndex(np.arange(10) * 86_400_000_000_000, name=("a", "b")).as_unit("ns")
    cols = {
        "arrow": pd.array(range(10), dtype=pd.ArrowDtype(pa.int64())),
        "arrow_s": pd.array([str(i) for i in range(10)], dtype=pd.ArrowDtype(pa.string())),
        "nullable": pd.array(range(10), dtype="Int64"),
        "period": pd.period_range("2020", periods=10, freq="D"),
        "interval": pd.IntervalIndex.from_breaks(range(11)),
        "sparse": pd.arrays.SparseArray([0, 1] * 5),
        "tz": pd.date_range("2020", periods=10, tz="Asia/Tokyo"),
        "td": pd.to_timedelta(range(10), "s"),
        "cat": pd.Categorical(list("abababbbaa")),
        "dec": pd.array([None] * 10, dtype=pd.ArrowDtype(pa.decimal128(5, 2))),
    }
    frame = pd.DataFrame(cols, index=idx)
    frame.columns = pd.MultiIndex.from_tuples([(c, "x") for c in frame.columns])
    for i, j in [(0, 10), (3, 7), (5, 5), (7, 3), (9, 10)]:
        cut = slice_frame(frame, i, j)
        assert cut is not None
        pdt.assert_frame_equal(cut, frame.iloc[i:j], check_freq=True)
    cut = slice_frame(frame, 2, 6)
    assert cut is not None
    cut.iloc[0, 0] = 999
    cut.iloc[0, 2] = 999
    assert frame.iloc[2, 0] == 2 and frame.iloc[2, 2] == 2
    dup = pd.DataFrame(np.arange(20).reshape(10, 2), columns=["a", "a"], index=idx)
    cut = slice_frame(dup, 1, 4)
    assert cut is not None
    pdt.assert_frame_equal(cut, dup.iloc[1:4])


# -- column_dtypes reads block placements (rangememo/_core/frames.py) ----------------


def _frames() -> list[pd.DataFrame]:
    idx = pd.date_range("2024-03-09", periods=4, freq="h", tz="America/New_York")
    mixed = pd.DataFrame(
        {
            "f": [1.0, 2.0, 3.0, 4.0],
            "i": [1, 2, 3, 4],
            "s": pd.array(["a", "b", None, "d"], dtype="string"),
            "c": pd.Categorical(["x", "y", "x", "z"], categories=["z", "y", "x"], ordered=True),
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "t": idx,
            "g": [1.5, 2.5, 3.5, 4.5],  # a second float column: one block, two places
        },
        index=idx,
    )
    unconsolidated = mixed.copy()
    unconsolidated.insert(2, "late", [0.0, 1.0, 2.0, 3.0])  # a block of its own, in the middle
    unconsolidated["i2"] = unconsolidated["i"] * 2
    wide = pd.DataFrame(np.arange(4 * 70).reshape(4, 70), columns=[f"c{i}" for i in range(70)])
    wide["x"] = 0.5
    return [
        mixed,
        mixed.iloc[1:3],
        mixed[["g", "c", "f"]],  # reordered: placements no longer a slice
        unconsolidated,
        wide,
        pd.DataFrame(index=idx),
        pd.DataFrame({"a": []}, dtype="float32"),
    ]


@pytest.mark.parametrize("frame", _frames())
def test_column_dtypes_match_pandas(frame: pd.DataFrame) -> None:
    got = column_dtypes(frame)
    assert [str(d) for d in got] == [str(d) for d in frame.dtypes]
    assert all(a == b for a, b in zip(got, frame.dtypes, strict=True))
