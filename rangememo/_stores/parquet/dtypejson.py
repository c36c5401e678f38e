"""Dtypes as JSON, and rows read back given the dtypes they were written with (pure).

Parquet loses a few pandas details on the way (``datetime64[s]`` comes back in
ms, an ``object`` column of strings as ``str``, ``string[python]`` as
``string[pyarrow]``, ``RangeIndex`` column labels as an int64 ``Index``): a
read is conformed to a template's dtypes here. Used by
:mod:`rangememo._stores.parquet.codec`, which re-exports :class:`UnstorableError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..._core.widen import same_dtype
from ..._errors import RangememoError
from .keyjson import key_from_json, key_to_json
from .tzjson import tz_from_json, tz_to_json

__all__ = [
    "UnstorableError",
    "as_dtype",
    "conform_frame",
    "conform_index",
    "dtype_from_json",
    "dtype_to_json",
    "index_levels",
]


class UnstorableError(RangememoError, OSError):
    """A result the Parquet store cannot write back exactly; it is not cached.

    An ``OSError``: the cache treats it like a failed write (a
    :class:`~rangememo.CacheWarning`, the provider's data returned uncached).
    ``repeated``: this key was refused before (warned once; now only logged).
    """

    repeated = False


def dtype_to_json(dtype: Any, where: str) -> Any:
    if isinstance(dtype, pd.StringDtype):
        na = "nan" if dtype.na_value is np.nan else "NA"
        return {"string": dtype.storage, "na": na}
    if isinstance(dtype, pd.CategoricalDtype):
        cats = dtype.categories
        try:
            values = [key_to_json(v) for v in cats.tolist()]
        except TypeError:
            raise UnstorableError(f"{where} has categories that have no JSON form") from None
        kind = dtype_to_json(cats.dtype, f"the categories of {where}")
        return {"category": values, "ordered": bool(dtype.ordered), "dtype": kind}
    text = str(dtype)
    try:
        same = pd.api.types.pandas_dtype(text) == dtype
    except (TypeError, ValueError, NotImplementedError):
        # pandas refuses some names it prints: "decimal128(10, 2)[pyarrow]" raises
        # NotImplementedError (its parameters cannot be given in a string).
        same = False
    if not same and isinstance(dtype, pd.DatetimeTZDtype):
        tz = tz_to_json(dtype.tz)
        if tz is None:
            raise UnstorableError(
                f"{where} has the timezone {dtype.tz!r} ({type(dtype.tz).__qualname__}), "
                "which names no zone and no fixed offset Parquet can restore exactly"
            )
        return {"datetime": dtype.unit, "tz": tz}
    if not same:
        raise UnstorableError(f"{where} has dtype {text}, which Parquet cannot restore exactly")
    return text


def dtype_from_json(data: Any) -> Any:
    if isinstance(data, dict) and "datetime" in data:
        return pd.DatetimeTZDtype(data["datetime"], tz_from_json(data["tz"]))
    if isinstance(data, dict) and "category" in data:
        values = [key_from_json(v) for v in data["category"]]
        cats = pd.Index(values, dtype=dtype_from_json(data["dtype"]))
        return pd.CategoricalDtype(cats, ordered=data["ordered"])
    if isinstance(data, dict):
        na = np.nan if data["na"] == "nan" else pd.NA
        return pd.StringDtype(data["string"], na_value=na)
    return pd.api.types.pandas_dtype(data)


def index_levels(index: pd.Index) -> list[pd.Index]:
    if isinstance(index, pd.MultiIndex):
        return [index.get_level_values(i) for i in range(index.nlevels)]
    return [index]


def as_dtype(values: Any, dtype: Any) -> Any:
    """``values`` (a Series or Index) as ``dtype``; object columns get ``None`` for missing."""
    if same_dtype(values.dtype, dtype):
        return values
    if isinstance(dtype, pd.CategoricalDtype) and isinstance(values.dtype, pd.CategoricalDtype):
        # astype() keeps an unordered categorical whose categories are only reordered.
        cat = values.array.set_categories(dtype.categories, ordered=dtype.ordered)
        if isinstance(values, pd.Index):
            return pd.CategoricalIndex(cat, name=values.name)
        return pd.Series(cat, index=values.index, name=values.name, copy=False)
    out = values.astype(dtype)
    if pd.api.types.is_object_dtype(dtype) and bool(values.isna().any()):
        out = out.where(values.notna(), None)
    return out


def conform_index(index: pd.Index, template: pd.Index) -> pd.Index:
    if index.nlevels != template.nlevels:
        return index
    wanted = [lvl.dtype for lvl in index_levels(template)]
    have = index_levels(index)
    if all(same_dtype(h.dtype, w) for h, w in zip(have, wanted, strict=True)):
        return index
    if isinstance(index, pd.MultiIndex):
        arrays = [as_dtype(h, w) for h, w in zip(have, wanted, strict=True)]
        return pd.MultiIndex.from_arrays(arrays, names=index.names)
    out: pd.Index = pd.Index(as_dtype(index, wanted[0]), name=index.name)
    return out


def conform_frame(df: pd.DataFrame, template: pd.DataFrame) -> pd.DataFrame:
    """Give ``df`` the template's dtypes for the columns (and index) they share."""
    wanted = dict(zip(template.columns, template.dtypes, strict=True))
    fixes = {
        i: wanted[c]
        for i, (c, t) in enumerate(zip(df.columns, df.dtypes, strict=True))
        if c in wanted and not same_dtype(t, wanted[c])
    }
    if fixes:
        df = df.copy(deep=False)
        for i, dtype in fixes.items():
            df.isetitem(i, as_dtype(df.iloc[:, i], dtype))
    index = conform_index(df.index, template.index)
    if index is not df.index:
        df = df.set_axis(index, axis=0)
    labels = template.columns
    if (
        isinstance(labels, pd.RangeIndex)
        and not isinstance(df.columns, pd.RangeIndex)
        and df.columns.equals(labels)
    ):
        df = df.set_axis(labels, axis=1)  # read back as an int64 Index (see template_to_json)
    return df
