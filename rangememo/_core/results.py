"""Result kinds: one small adapter per supported result type (pure, no I/O).

The merge works on ``(positions, data)`` pairs where ``positions`` is a sorted
int64 array and ``data`` the provider's own object (``DataFrame``, ``Series``
or ``pyarrow.Table``). An adapter knows how to find positions in its type and
how to slice, take, concatenate and empty it, so the merge never converts
between types and the caller gets back exactly the type it would have got.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.types import is_datetime64_any_dtype, is_integer_dtype

from .._errors import InvalidResult, ResultTypeError
from .adapter import Adapter, Positions
from .axis import Axis
from .frames import column_dtypes
from .widen import concat_pandas, same_dtype

__all__ = ["Adapter", "adapter_for", "adapter_named", "is_polars"]

_NAT = np.iinfo(np.int64).min  # NaT's int64 value


def _same(a: Any, b: Any) -> bool:
    """One dtype equal to another in every way a schema shows (categories in order)."""
    if a is b:
        return True
    if isinstance(a, pd.CategoricalDtype):
        return same_dtype(a, b)
    return bool(a == b) and str(a) == str(b)


def _check_positions(values: Any, axis: Axis, where: str) -> Positions:
    dtype = values.dtype
    if type(values) is pd.DatetimeIndex and axis.kind != "int" and dtype.kind == "M":
        # The common case, ~3 µs where the general checks take ~12: an index of
        # tz-naive datetimes at ns for naive bounds. (An aware dtype's kind is "M" too.)
        aware = isinstance(dtype, pd.DatetimeTZDtype)
        if aware == axis.aware and values.unit == "ns":
            ints: Positions = values.asi8
            if len(ints) and ints.min() == _NAT:
                raise InvalidResult(f"{where} contains NaT")
            return ints
    if axis.kind == "int":
        if not is_integer_dtype(dtype):
            raise InvalidResult(f"{where} must hold integers for int bounds, got dtype {dtype}")
        return np.asarray(values, dtype=np.int64)
    if not is_datetime64_any_dtype(dtype):
        raise InvalidResult(f"{where} must hold datetimes for {axis.kind} bounds, got {dtype}")
    aware = isinstance(dtype, pd.DatetimeTZDtype)
    if aware != axis.aware:
        raise InvalidResult(
            f"{where} is {'tz-aware' if aware else 'tz-naive'} ({dtype}) but the bounds are "
            f"{'tz-aware' if axis.aware else 'tz-naive'}"
        )
    # An index is used as it is (rebuilding one costs ~8 µs a commit).
    idx = values if isinstance(values, pd.DatetimeIndex) else pd.DatetimeIndex(values)
    if idx.hasnans:
        raise InvalidResult(f"{where} contains NaT")
    return (idx if idx.unit == "ns" else idx.as_unit("ns")).asi8


def _same_instants(values: Any, dtype: str, any_tz: bool = False) -> Any:
    """``values`` at the datetime unit of ``dtype``; ``None`` if lossy or not a unit change.

    ``any_tz``: a timezone change is a conversion too (the same instants), which
    holds for positions, but not for a value column whose tz is its meaning.
    """
    if not is_datetime64_any_dtype(values.dtype):
        return None
    target = pd.api.types.pandas_dtype(dtype)
    if not is_datetime64_any_dtype(target):
        return None
    tz, target_tz = getattr(values.dtype, "tz", None), getattr(target, "tz", None)
    if tz != target_tz and not (any_tz and tz is not None and target_tz is not None):
        return None
    idx = pd.DatetimeIndex(values)
    if tz != target_tz:
        idx = idx.tz_convert(target_tz)
    unit: Any = getattr(target, "unit", None) or np.datetime_data(target)[0]  # type: ignore[arg-type]
    cast = idx.as_unit(unit)
    if not np.array_equal(cast.as_unit(idx.unit).asi8, idx.asi8):
        return None
    return cast


class FrameAdapter(Adapter):
    kind = "DataFrame"
    types = (pd.DataFrame,)

    def __init__(self, index: str | None) -> None:
        super().__init__(index)
        self.range_index = False  # provider hands out a fresh 0..n-1 index

    def positions(self, data: Any, axis: Axis) -> Positions:
        if self.index is None:
            return _check_positions(data.index, axis, "the result's index")
        if self.index not in data.columns:
            raise InvalidResult(
                f"the result has no position column {self.index!r}; columns: {list(data.columns)}"
            )
        idx = data.index
        self.range_index = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1
        return _check_positions(data[self.index], axis, f"column {self.index!r}")

    def finish(self, data: Any, template: Any) -> Any:
        if self.range_index and self.index is not None:
            data = data.reset_index(drop=True)
            data.index.name = template.index.name
        return data

    def same_schema(self, data: Any, template: Any) -> bool:
        if not _same(data.index.dtype, template.index.dtype):
            return False
        if (
            not data.columns.equals(template.columns)
            or data.columns.dtype != template.columns.dtype
        ):
            return False
        new, old = column_dtypes(data), column_dtypes(template)
        return len(new) == len(old) and all(_same(a, b) for a, b in zip(new, old, strict=True))

    def schema(self, data: Any) -> dict[str, str]:
        out = {"<index>": str(data.index.dtype)}
        out.update((str(c), str(t)) for c, t in data.dtypes.items())
        return out

    def concat(self, parts: list[Any]) -> Any:
        return concat_pandas(parts)

    def column(self, data: Any, name: str) -> Any:
        if name == "<index>":
            return None
        hits = [i for i, c in enumerate(data.columns) if str(c) == name]
        return data.iloc[:, hits[0]] if len(hits) == 1 else None

    def retype(self, template: Any, dtypes: dict[str, Any]) -> Any:
        out = template.copy(deep=False)
        for i, c in enumerate(template.columns):
            if str(c) in dtypes:
                out.isetitem(i, template.iloc[:, i].astype(dtypes[str(c)]))
        return out

    def recast(self, data: Any, dtypes: dict[str, str]) -> Any:
        for name, dtype in dtypes.items():
            if name == "<index>":
                cast = _same_instants(data.index, dtype, any_tz=self.index is None)
                if cast is not None:
                    data = data.set_axis(cast.rename(data.index.name), axis=0)
            elif name in data.columns:
                cast = _same_instants(data[name], dtype, any_tz=name == self.index)
                if cast is not None:
                    data = data.assign(**{name: cast.to_numpy() if cast.tz is None else cast})
        return data

    def widen(self, template: Any, data: Any) -> Any:
        extra = [c for c in data.columns if c not in template.columns]
        return pd.concat([template, data.iloc[:0][extra]], axis=1)

    def align(self, data: Any, template: Any) -> Any:
        if data.columns.equals(template.columns):
            return data
        return data.reindex(columns=template.columns)

    def position_tz(self, data: Any) -> str | None:
        values = data.index if self.index is None else data[self.index]
        tz = getattr(values.dtype, "tz", None)
        return None if tz is None else str(tz)

    def convert_tz(self, data: Any, tz: str) -> Any:
        if self.index is None:
            return data.tz_convert(tz)
        return data.assign(**{self.index: data[self.index].dt.tz_convert(tz)})


class SeriesAdapter(Adapter):
    kind = "Series"
    types = (pd.Series,)

    def positions(self, data: Any, axis: Axis) -> Positions:
        if self.index is not None:
            raise InvalidResult(f"index={self.index!r} names a column, but the result is a Series")
        return _check_positions(data.index, axis, "the result's index")

    def same_schema(self, data: Any, template: Any) -> bool:
        return _same(data.index.dtype, template.index.dtype) and _same(data.dtype, template.dtype)

    def schema(self, data: Any) -> dict[str, str]:
        return {"<index>": str(data.index.dtype), "<values>": str(data.dtype)}

    def concat(self, parts: list[Any]) -> Any:
        return concat_pandas(parts)

    def column(self, data: Any, name: str) -> Any:
        return data if name == "<values>" else None

    def retype(self, template: Any, dtypes: dict[str, Any]) -> Any:
        return template.astype(dtypes["<values>"]) if "<values>" in dtypes else template

    def recast(self, data: Any, dtypes: dict[str, str]) -> Any:
        if "<index>" in dtypes:
            cast = _same_instants(data.index, dtypes["<index>"], any_tz=True)
            if cast is not None:
                data = data.set_axis(cast.rename(data.index.name))
        if "<values>" in dtypes:
            cast = _same_instants(data, dtypes["<values>"])
            if cast is not None:
                data = pd.Series(cast, index=data.index, name=data.name)
        return data

    def position_tz(self, data: Any) -> str | None:
        tz = getattr(data.index.dtype, "tz", None)
        return None if tz is None else str(tz)

    def convert_tz(self, data: Any, tz: str) -> Any:
        return data.tz_convert(tz)


class TableAdapter(Adapter):
    kind = "pyarrow.Table"
    types = (pa.Table,)

    def positions(self, data: Any, axis: Axis) -> Positions:
        if self.index is None:
            raise InvalidResult("pyarrow.Table results need index= naming the position column")
        if self.index not in data.column_names:
            raise InvalidResult(
                f"the result has no position column {self.index!r}; columns: {data.column_names}"
            )
        col = data.column(self.index)
        if col.null_count:
            raise InvalidResult(f"column {self.index!r} contains nulls")
        if pa.types.is_date32(col.type) and axis.kind == "date":
            col = col.cast(pa.timestamp("ns"))
        values = pd.Series(col.to_pandas(types_mapper=None), copy=False)
        return _check_positions(values, axis, f"column {self.index!r}")

    def take(self, data: Any, order: Positions) -> Any:
        return data.take(pa.array(order))

    def slice(self, data: Any, i: int, j: int) -> Any:
        return data.slice(i, j - i)

    def concat(self, parts: list[Any]) -> Any:
        return pa.concat_tables(parts, promote_options="default")

    def nbytes(self, data: Any) -> int:
        return int(data.nbytes)

    def signature(self, data: Any) -> Any:
        return data.schema

    def joins(self, a: Any, b: Any) -> bool:
        return True

    def same_schema(self, data: Any, template: Any) -> bool:
        return bool(data.schema.equals(template.schema, check_metadata=False))

    def schema(self, data: Any) -> dict[str, str]:
        return {f.name: str(f.type) for f in data.schema}

    def widen(self, template: Any, data: Any) -> Any:
        fields = list(template.schema) + [
            f for f in data.schema if f.name not in template.schema.names
        ]
        return pa.schema(fields).empty_table()

    def align(self, data: Any, template: Any) -> Any:
        if data.schema.equals(template.schema, check_metadata=False):
            return data
        cols = [
            data.column(f.name) if f.name in data.column_names else pa.nulls(len(data), f.type)
            for f in template.schema
        ]
        return pa.Table.from_arrays(cols, schema=template.schema)


_ADAPTERS: tuple[type[Adapter], ...] = (FrameAdapter, SeriesAdapter, TableAdapter)


_POLARS = "polars.DataFrame"


def is_polars(data: Any) -> bool:
    """Is ``data`` a ``polars.DataFrame``? (Without importing polars: see polars.py.)"""
    cls = type(data)
    return cls.__name__ == "DataFrame" and cls.__module__.partition(".")[0] == "polars"


def _polars_adapter(index: str | None) -> Adapter:
    from .polars import PolarsAdapter  # polars is imported only once it is used

    return PolarsAdapter(index)


def adapter_for(data: Any, index: str | None) -> Adapter:
    """The adapter for a first result; ``TypeError`` naming anything else."""
    for cls in _ADAPTERS:
        if isinstance(data, cls.types):
            return cls(index)
    if is_polars(data):
        return _polars_adapter(index)
    raise ResultTypeError(
        "the wrapped function must return a pandas DataFrame, Series, pyarrow Table "
        "or polars DataFrame, "
        f"got {type(data).__module__}.{type(data).__qualname__}"
    )


def adapter_named(kind: str, index: str | None) -> Adapter:
    """The adapter whose ``kind`` is ``kind`` (a store reopening a key from disk)."""
    for cls in _ADAPTERS:
        if cls.kind == kind:
            return cls(index)
    if kind == _POLARS:
        return _polars_adapter(index)
    known = [c.kind for c in _ADAPTERS] + [_POLARS]
    raise ValueError(f"unknown result kind {kind!r}; known: {known}")
