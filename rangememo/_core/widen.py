"""Schema widening: which dtype changes between pieces merge, and into what (pure, no I/O).

Each stored piece keeps its own dtypes; an answer is what ``pd.concat`` of the
pieces it spans gives, so a range whose pieces were all int64 answers int64,
exactly as the uncached call. The one exception is a categorical column whose
categories differ between pieces: ``pd.concat`` would turn it into ``str`` or
``object``; here the pieces get the union of their categories first (sorted when
every piece's categories are sorted, as ``astype("category")`` makes them, else in
order of appearance), so no value is lost and the dtype stays categorical.

The key's *template* (the schema of an empty answer) is the widened schema: the
common dtype of every piece seen. Only a real conflict (string vs number, a
changed timezone, ordered categories that differ) refuses a piece.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype, is_object_dtype

# What pd.concat itself uses to find a column's dtype (no public name for it).
from pandas.core.dtypes.cast import find_common_type  # type: ignore[attr-defined]

from .frames import column_dtypes, concat_frames

__all__ = ["common_dtype", "concat_pandas", "same_dtype", "signature", "union_categories"]


def same_dtype(a: Any, b: Any) -> bool:
    """Equal dtypes; categoricals also in the order of their categories."""
    if isinstance(a, pd.CategoricalDtype) and isinstance(b, pd.CategoricalDtype):
        return (
            a.ordered == b.ordered
            and a.categories.dtype == b.categories.dtype
            and a.categories.equals(b.categories)
        )
    return bool(a == b)


def union_categories(dtypes: Sequence[pd.CategoricalDtype]) -> pd.CategoricalDtype | None:
    """The categories of every dtype in one; ``None`` if they cannot be unioned."""
    first = dtypes[0]
    if all(same_dtype(d, first) for d in dtypes[1:]):
        return first
    cats = [d.categories for d in dtypes]
    # Ordered categories have no place for a new one; categories of another kind
    # (ints vs strings) are a conflict, not a widening.
    if any(d.ordered for d in dtypes) or any(c.dtype != cats[0].dtype for c in cats):
        return None
    merged = cats[0].append(list(cats[1:])).unique()
    if all(c.is_monotonic_increasing for c in cats):
        merged = merged.sort_values()
    return pd.CategoricalDtype(merged, ordered=False)


def common_dtype(stored: Any, values: Any) -> Any:
    """The dtype a ``stored`` column takes with a piece's ``values``; ``None``: a conflict."""
    new = values.dtype
    if isinstance(stored, pd.CategoricalDtype) and isinstance(new, pd.CategoricalDtype):
        return union_categories([stored, new])
    if len(values) and bool(values.isna().all()):
        return find_common_type([stored, new])  # an all-null piece holds no conflicting value
    if is_object_dtype(stored):
        return stored  # object already holds anything (pandas 3 keeps strings as ``str``)
    numeric = [is_numeric_dtype(t) and not is_bool_dtype(t) for t in (stored, new)]
    if all(numeric) and not any(isinstance(t, pd.CategoricalDtype) for t in (stored, new)):
        return find_common_type([stored, new])
    return None


def signature(data: Any) -> Any:
    """What two pieces must share to be merged into one stored chunk (exactly)."""
    if isinstance(data, pd.Series):
        return (data.index.dtype, _dtype_key(data.dtype), data.name)
    return (
        tuple(data.columns),
        data.index.dtype,
        tuple(_dtype_key(t) for t in column_dtypes(data)),
    )


def _dtype_key(dtype: Any) -> Any:
    if isinstance(dtype, pd.CategoricalDtype):
        return ("category", tuple(dtype.categories), dtype.ordered, str(dtype.categories.dtype))
    return dtype


def concat_pandas(parts: list[Any]) -> Any:
    """``pd.concat`` of ``parts``, categoricals of differing categories unioned first."""
    first = parts[0]
    if isinstance(first, pd.Series):
        if isinstance(first.dtype, pd.CategoricalDtype):
            union = _union_of([p.dtype for p in parts])
            if union is not None:
                parts = [_recat(p, union) for p in parts]
        return pd.concat(parts)
    fast = concat_frames(parts)  # one block layout: the same frame, without pd.concat's plan
    if fast is not None:
        return fast
    if not _has_categorical(first):
        return pd.concat(parts)
    cats = [i for i, t in enumerate(first.dtypes) if isinstance(t, pd.CategoricalDtype)]
    fixes: dict[int, pd.CategoricalDtype] = {}
    for i in cats:
        union = _union_of([p.dtypes.iloc[i] if p.shape[1] > i else None for p in parts])
        if union is not None:
            fixes[i] = union
    if fixes:
        out = []
        for p in parts:
            p = p.copy(deep=False)
            for i, dtype in fixes.items():
                p.isetitem(i, _recat(p.iloc[:, i], dtype))
            out.append(p)
        parts = out
    return pd.concat(parts)


def _has_categorical(frame: pd.DataFrame) -> bool:
    # The block dtypes answer in ~1 us where DataFrame.dtypes builds a Series
    # (~20 us), and this runs on every multi-piece answer and chunk merge.
    blocks = getattr(getattr(frame, "_mgr", None), "blocks", None)
    dtypes = [b.dtype for b in blocks] if blocks is not None else list(frame.dtypes)
    return any(isinstance(t, pd.CategoricalDtype) for t in dtypes)


def _union_of(dtypes: list[Any]) -> pd.CategoricalDtype | None:
    """The union to give every part, or ``None`` if they agree already (or can't)."""
    if not all(isinstance(d, pd.CategoricalDtype) for d in dtypes):
        return None
    if all(same_dtype(d, dtypes[0]) for d in dtypes[1:]):
        return None
    return union_categories(dtypes)


def _recat(values: pd.Series, dtype: pd.CategoricalDtype) -> pd.Series:
    if same_dtype(values.dtype, dtype):
        return values
    cat = values.array.set_categories(dtype.categories)
    return pd.Series(cat, index=values.index, name=values.name, copy=False)
