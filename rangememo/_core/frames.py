"""``pd.concat`` of DataFrames that share one block layout, block by block (pure, no I/O).

Every append and every answer spanning two stored chunks concatenates frames
that came from one provider: the same columns, the same dtypes, laid out in the
same blocks. ``pd.concat`` then spends ~50 µs planning a join of managers that
needs no planning; concatenating each block's values and the index directly
builds the same frame in ~15 µs.

The result must be exactly what ``pd.concat`` gives, so the fast path takes
only what it can prove the same: plain ``DataFrame`` objects, a plain ``Index``
of columns equal (labels, dtype, name) across the parts, blocks pairwise of one
numpy dtype and one placement, no ``attrs`` and no flags set. The index is
joined by ``Index.append``, which is what ``pd.concat`` itself calls. Anything
else (extension dtypes, a ``MultiIndex`` of columns, ...) returns ``None`` and
the caller uses ``pd.concat``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.offsets import Day, Tick

__all__ = ["append_index", "column_dtypes", "concat_frames", "slice_frame"]


def column_dtypes(frame: pd.DataFrame) -> list[Any]:
    """The dtype of each column, in order.

    The block manager answers in ~0.3 µs where ``DataFrame.dtypes`` builds a
    Series (~15 µs); this runs on every commit and every ParquetStore write.
    """
    mgr: Any = getattr(frame, "_mgr", None)
    blocks = getattr(mgr, "blocks", None)
    try:
        if blocks is not None and mgr.shape[0] <= _FEW_COLUMNS:
            # A frame fresh from a provider (or a slice) has no block numbers
            # yet, and ``get_dtypes`` builds them (~7 µs): read the blocks'
            # placements instead (~2 µs for a handful of columns).
            out: list[Any] = [None] * mgr.shape[0]
            for blk in blocks:
                for i in blk.mgr_locs.as_array.tolist():
                    out[i] = blk.dtype
            if all(d is not None for d in out):
                return out
    except (AttributeError, TypeError, IndexError):  # pandas internals moved
        pass
    get = getattr(mgr, "get_dtypes", None)
    return list(get()) if get is not None else list(frame.dtypes)


#: Up to this many columns, :func:`column_dtypes` walks the blocks in Python.
_FEW_COLUMNS = 64


def slice_frame(frame: Any, i: int, j: int) -> pd.DataFrame | None:
    """``frame.iloc[i:j]`` for a plain frame on a ``DatetimeIndex``, or ``None``.

    Every hit and every append slices a stored chunk; ``DataFrame._slice``
    spends most of its ~14 µs slicing the index (the array's own ``__getitem__``
    and freq inference, the index engine's update). A frame whose index has no
    freq (what providers return, and every concatenation leaves) is sliced
    block by block here in ~5 µs: each block by ``slice_block_rows``, which
    keeps its copy-on-write references (so a caller writing to the slice
    copies, never writing through to the cache), the index from the sliced
    array with its references too. Anything else: ``None``, use ``_slice``.
    """
    if type(frame) is not pd.DataFrame or frame.attrs or not frame.flags.allows_duplicate_labels:
        return None
    index: Any = frame.index
    if type(index) is not pd.DatetimeIndex or index.freq is not None:
        return None
    try:
        mgr: Any = frame._mgr
        if type(mgr).__name__ != "BlockManager":
            return None
        rows = slice(i, j)
        blocks = tuple(b.slice_block_rows(rows) for b in mgr.blocks)
        raw: Any = index  # the private attributes below, unknown to the stubs
        arr: Any = raw._data
        make: Any = pd.DatetimeIndex._simple_new  # type: ignore[attr-defined]
        new_index = make(
            type(arr)._simple_new(arr._ndarray[rows], dtype=arr.dtype),
            name=index.name,
            refs=raw._references,
        )
        new = type(mgr)(blocks, [mgr.axes[0], new_index], verify_integrity=False)
    except (AttributeError, TypeError):  # pandas internals moved: the general path
        return None
    out: pd.DataFrame = pd.DataFrame._from_mgr(new, axes=new.axes)  # type: ignore[attr-defined]
    return out


def concat_frames(parts: list[Any]) -> pd.DataFrame | None:
    """``pd.concat(parts)`` built block by block, or ``None``: not provably the same."""
    first = parts[0]
    if type(first) is not pd.DataFrame:
        return None
    try:
        return _concat(first, parts)
    except (AttributeError, TypeError):  # pandas internals moved: the general path
        return None


def _concat(first: pd.DataFrame, parts: list[Any]) -> pd.DataFrame | None:
    columns = first.columns
    if type(columns) is not pd.Index or first.attrs or not first.flags.allows_duplicate_labels:
        return None
    mgr: Any = first._mgr
    blocks = mgr.blocks
    layout = [(b.dtype, b.mgr_locs) for b in blocks]
    if not all(isinstance(b.values, np.ndarray) for b in blocks):
        return None
    for part in parts[1:]:
        if type(part) is not pd.DataFrame or part.attrs:
            return None
        if not part.flags.allows_duplicate_labels:
            return None
        other = part.columns
        if other is not columns and not (
            type(other) is pd.Index
            and other.dtype == columns.dtype
            and other.name == columns.name
            and other.equals(columns)
        ):
            return None
        theirs = part._mgr.blocks
        if len(theirs) != len(blocks):
            return None
        for b, (dtype, locs) in zip(theirs, layout, strict=True):
            if b.dtype != dtype or not isinstance(b.values, np.ndarray):
                return None
            if not _same_locs(b.mgr_locs, locs):
                return None
    index = append_index(first.index, [p.index for p in parts[1:]])
    joined = [
        blk.make_block_same_class(np.concatenate([p._mgr.blocks[i].values for p in parts], axis=1))
        for i, blk in enumerate(blocks)
    ]
    new = type(mgr).from_blocks(joined, [columns, index])
    out: pd.DataFrame = pd.DataFrame._from_mgr(new, axes=new.axes)  # type: ignore[attr-defined]
    return out


def _same_locs(a: Any, b: Any) -> bool:
    """Do two block placements name the same columns? (Slices compare cheaply.)"""
    x, y = a.indexer, b.indexer
    if isinstance(x, slice) and isinstance(y, slice) and x == y:
        return True
    return bool(np.array_equal(a.as_array, b.as_array))


def append_index(first: pd.Index, others: list[pd.Index]) -> pd.Index:
    """``first.append(others)``; a ``DatetimeIndex`` joined directly (~5 µs, not ~25)."""
    if type(first) is pd.DatetimeIndex:
        try:
            out = _append_datetimes(first, others)
        except (AttributeError, TypeError):  # pandas internals moved
            out = None
        if out is not None:
            return out
    return first.append(others)


def _append_datetimes(first: Any, others: list[Any]) -> pd.DatetimeIndex | None:
    # What Index.append does for datetimes, step by step: one name if all agree
    # (a set, as there), values of one dtype concatenated, and the freq kept
    # where the result is evenly spaced (DatetimeTimedeltaMixin._concat).
    dtype = first.dtype
    if not all(type(o) is pd.DatetimeIndex and o.dtype == dtype for o in others):
        return None
    names = {first.name, *(o.name for o in others)}
    name = None if len(names) > 1 else first.name
    data = first._data
    values = np.concatenate([data._ndarray, *(o._data._ndarray for o in others)])
    new: Any = pd.DatetimeIndex._simple_new  # type: ignore[attr-defined]
    out: Any = new(type(data)._simple_new(values, dtype=dtype), name=name)
    freq = first.freq
    if freq is None:
        return out  # type: ignore[no-any-return]
    nonempty = [i for i in (first, *others) if len(i)]
    if not all(i.freq == freq for i in nonempty):
        return out  # type: ignore[no-any-return]
    if not (
        isinstance(freq, Tick) or (getattr(dtype, "tz", None) is None and isinstance(freq, Day))
    ):
        return None  # a calendar offset: Index.append compares Timestamps
    step: int = pd.Timedelta(freq).as_unit(first.unit)._value  # type: ignore[arg-type,attr-defined]
    ends = [i._data._ndarray.view("i8") for i in nonempty]
    if all(a[-1] + step == b[0] for a, b in itertools.pairwise(ends)):
        out._freq = freq
    return out  # type: ignore[no-any-return]
