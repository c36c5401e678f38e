"""The ``polars.DataFrame`` result kind (pure, no I/O).

Imported only once a polars result (or a stored polars key) is seen, so
``import rangememo`` never imports polars (see :func:`results.adapter_for`).
Rows stay polars end to end: slices are ``DataFrame.slice`` (zero-copy views)
and a store that writes Arrow gets ``DataFrame.to_arrow()`` (zero-copy for
every dtype but a few string layouts) and reads back through
``polars.from_arrow``, cast to the piece's own polars schema, so a cached
answer equals the uncached one under ``polars.testing.assert_frame_equal``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from .._errors import InvalidResult, SchemaMismatchError
from .adapter import Adapter, Positions
from .axis import Axis

__all__ = ["PolarsAdapter", "from_arrow", "schema_differs", "template_from_schema", "to_arrow"]

KIND = "polars.DataFrame"
_DAY_NS = 86_400 * 10**9
_NS_PER = {"ns": 1, "us": 1_000, "ms": 1_000_000}


class PolarsAdapter(Adapter):
    kind = KIND
    types = (pl.DataFrame,)

    def positions(self, data: Any, axis: Axis) -> Positions:
        if self.index is None:
            raise InvalidResult("polars.DataFrame results need index= naming the position column")
        if self.index not in data.columns:
            raise InvalidResult(
                f"the result has no position column {self.index!r}; columns: {data.columns}"
            )
        col = data.get_column(self.index)
        where = f"column {self.index!r}"
        if col.null_count():
            raise InvalidResult(f"{where} contains nulls")
        dtype = col.dtype
        if axis.kind == "int":
            if not dtype.is_integer():
                raise InvalidResult(f"{where} must hold integers for int bounds, got dtype {dtype}")
            if dtype == pl.UInt64 and len(col) and col.max() > np.iinfo(np.int64).max:
                raise InvalidResult(f"{where} holds integers beyond the int64 range")
            ints = col.cast(pl.Int64, strict=True).to_numpy()
            return np.asarray(ints, dtype=np.int64)
        if dtype == pl.Date and axis.kind == "date":
            days = col.to_physical().to_numpy()
            return np.asarray(days, dtype=np.int64) * _DAY_NS
        if not isinstance(dtype, pl.Datetime):
            raise InvalidResult(f"{where} must hold datetimes for {axis.kind} bounds, got {dtype}")
        aware = dtype.time_zone is not None
        if aware != axis.aware:
            raise InvalidResult(
                f"{where} is {'tz-aware' if aware else 'tz-naive'} ({dtype}) but the bounds are "
                f"{'tz-aware' if axis.aware else 'tz-naive'}"
            )
        # The physical values are UTC for an aware column, wall time for a naive one,
        # which is what the axis encodes.
        phys = np.asarray(col.to_physical().to_numpy(), dtype=np.int64)
        factor = _NS_PER[dtype.time_unit]
        if factor == 1:
            return phys
        lim = np.iinfo(np.int64).max // factor
        if len(phys) and (phys.max() > lim or phys.min() < -lim):
            raise InvalidResult(f"{where} holds datetimes outside the nanosecond range")
        return phys * factor

    def take(self, data: Any, order: Positions) -> Any:
        return data[pl.Series(order)] if len(order) else data.clear()

    def slice(self, data: Any, i: int, j: int) -> Any:
        return data.slice(i, j - i)

    def concat(self, parts: list[Any]) -> Any:
        first = parts[0].schema
        if all(p.schema == first for p in parts):
            return pl.concat(parts, how="vertical", rechunk=False)
        # Chunks of a widened key (merged past the chunk bound, see rows.py): shared
        # columns have one dtype (conform allows no other), missing ones are nulls;
        # compose then puts the columns in the template's order.
        return pl.concat(parts, how="diagonal", rechunk=False)

    def empty(self, data: Any) -> Any:
        return data.clear()

    def blank(self, data: Any) -> Any:
        return data.clear()  # new, empty columns

    def nbytes(self, data: Any) -> int:
        return int(data.estimated_size())

    def signature(self, data: Any) -> Any:
        return tuple(data.schema.items())

    def joins(self, a: Any, b: Any) -> bool:
        return True

    def same_schema(self, data: Any, template: Any) -> bool:
        return bool(data.schema == template.schema)

    def schema(self, data: Any) -> dict[str, str]:
        return {c: str(t) for c, t in data.schema.items()}

    def conform(self, data: Any, template: Any) -> tuple[Any, Any, bool]:
        """As :meth:`Adapter.conform`, in polars dtypes.

        A shared column must keep its dtype, except a lossless Datetime unit
        change (and, for the position column, a time-zone change: the same
        instants), which is cast back to the stored dtype. Added columns widen
        the template; stored rows show them as nulls.
        """
        old, new = template.schema, data.schema
        if old == new:
            return data, template, False
        casts: list[pl.Series] = []
        conflicts: list[str] = []
        for c in [c for c in old if c in new and old[c] != new[c]]:
            cast = _same_instants(data.get_column(c), old[c], c == self.index)
            if cast is None:
                conflicts.append(f"{c!r}: {old[c]} -> {new[c]}")
            else:
                casts.append(cast)
        if conflicts:
            detail = ", ".join(sorted(conflicts))
            raise SchemaMismatchError(f"provider changed the dtype of cached columns ({detail})")
        if casts:
            data = data.with_columns(casts)
        # Stored chunks differ from this piece (``differs``) unless the casts made
        # it the template's exact schema again.
        differs = data.schema != old
        extra = [c for c in data.columns if c not in old]
        if extra:
            template = pl.concat([template, data.clear().select(extra)], how="horizontal")
        return data, template, differs

    def align(self, data: Any, template: Any) -> Any:
        if data.schema == template.schema:
            return data
        cols = [
            data.get_column(c) if c in data.columns else pl.Series(c, [None] * len(data), t)
            for c, t in template.schema.items()
        ]
        return pl.DataFrame(cols)

    def position_tz(self, data: Any) -> str | None:
        if self.index is None or self.index not in data.columns:
            return None
        dtype = data.schema[self.index]
        return dtype.time_zone if isinstance(dtype, pl.Datetime) else None

    def convert_tz(self, data: Any, tz: str) -> Any:
        assert self.index is not None
        return data.with_columns(pl.col(self.index).dt.convert_time_zone(tz))


def _same_instants(values: pl.Series, dtype: Any, any_tz: bool) -> pl.Series | None:
    """``values`` cast to the Datetime ``dtype`` when lossless, else ``None``."""
    have = values.dtype
    if not isinstance(have, pl.Datetime) or not isinstance(dtype, pl.Datetime):
        return None
    if have.time_zone != dtype.time_zone:
        if not (any_tz and have.time_zone is not None and dtype.time_zone is not None):
            return None
        values = values.dt.convert_time_zone(dtype.time_zone)
    cast = values.dt.cast_time_unit(dtype.time_unit)
    if not cast.dt.cast_time_unit(have.time_unit).equals(values, check_names=True):
        return None
    return cast


# -- Arrow, for stores that write it ---------------------------------------------------


def to_arrow(data: Any) -> pa.Table:
    """The Arrow table of ``data`` (zero-copy where polars allows)."""
    table: pa.Table = data.to_arrow()
    return table


def from_arrow(table: pa.Table, template: Any) -> Any:
    """Rows read back from Arrow, in exactly ``template``'s polars schema."""
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    wanted = template.schema
    if out.schema != wanted:
        # polars keeps its dtypes in the Arrow field metadata, so this is a safety
        # net (a part written by another polars version, say): the template's
        # order and dtypes for the columns the part has (align adds the others).
        have = [c for c in wanted if c in out.columns]
        out = out.select(have).cast({c: wanted[c] for c in have})
    return out


def template_from_schema(schema: pa.Schema) -> Any:
    """The empty polars frame a stored Arrow schema describes."""
    out = pl.from_arrow(schema.empty_table())
    assert isinstance(out, pl.DataFrame)
    return out


def schema_differs(back: Any, template: Any) -> str:
    """What differs between a template and its stored form ('' if nothing)."""
    if back.schema == template.schema:
        return ""
    return f"schema {template.schema} reads back as {back.schema}"
