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

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["concat_frames"]


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
    layout = [(b.dtype, b.mgr_locs.as_array) for b in blocks]
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
            if not np.array_equal(b.mgr_locs.as_array, locs):
                return None
    index = first.index.append([p.index for p in parts[1:]])
    joined = [
        blk.make_block_same_class(np.concatenate([p._mgr.blocks[i].values for p in parts], axis=1))
        for i, blk in enumerate(blocks)
    ]
    new = type(mgr).from_blocks(joined, [columns, index])
    out: pd.DataFrame = pd.DataFrame._from_mgr(new, axes=new.axes)  # type: ignore[attr-defined]
    return out
