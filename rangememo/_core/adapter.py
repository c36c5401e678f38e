"""The result-kind interface: what the merge asks of each result type (pure, no I/O).

Kept apart from :mod:`results` (the pandas and pyarrow kinds) so that an optional
kind such as :mod:`polars` can subclass it while ``results`` imports that kind
only on first use, without an import cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._errors import SchemaMismatchError
from .axis import Axis
from .frames import slice_frame
from .widen import common_dtype, same_dtype, signature

__all__ = ["Adapter", "Positions"]

Positions = np.ndarray[Any, np.dtype[np.int64]]


class Adapter:
    """How to handle one result type; subclasses per type."""

    kind = ""
    types: tuple[type, ...] = ()

    def __init__(self, index: str | None) -> None:
        self.index = index
        self._row_bytes: float | None = None

    # -- positions -------------------------------------------------------
    def positions(self, data: Any, axis: Axis) -> Positions:
        raise NotImplementedError

    # -- shape operations ------------------------------------------------
    def take(self, data: Any, order: Positions) -> Any:
        return data.take(order)

    def slice(self, data: Any, i: int, j: int) -> Any:
        out = slice_frame(data, i, j)
        if out is not None:
            return out
        # What ``iloc[i:j]`` ends in, without its indexer checks (~3 µs a hit).
        cut = getattr(data, "_slice", None)
        return cut(slice(i, j)) if cut is not None else data.iloc[i:j]

    def concat(self, parts: list[Any]) -> Any:
        return pd.concat(parts)

    def empty(self, data: Any) -> Any:
        return self.slice(data, 0, 0)

    def blank(self, data: Any) -> Any:
        """An empty result of ``data``'s schema that holds none of its memory.

        For a template kept as long as the key: a zero-row slice is a view, and
        its index (and its columns' blocks) would keep the whole provider answer
        alive, unseen by the byte budget. ``take`` builds new arrays; a
        ``DatetimeIndex`` keeps its ``freq`` (an empty answer shows it).
        """
        out = self.take(data, np.empty(0, dtype=np.intp))
        freq = getattr(getattr(data, "index", None), "freq", None)
        if freq is not None and isinstance(out.index, pd.DatetimeIndex):
            out.index = pd.DatetimeIndex(out.index, freq=freq)
        return out

    def own(self, data: Any, i: int, j: int) -> Any:
        """Rows ``i:j`` of ``data`` in new arrays (a slice is a view that keeps all of them)."""
        return self.take(data, np.arange(i, j, dtype=np.intp))

    def nbytes(self, data: Any) -> int:
        """Estimated in-memory bytes: measured once per adapter, then per row.

        ``memory_usage(deep=True)`` costs ~0.3 ms even for one row, which
        would dominate a one-row extension; a byte budget needs no more than
        an estimate.
        """
        n = len(data)
        if not n:
            return 0
        if self._row_bytes is None or n >= 1024:
            usage = data.memory_usage(deep=True)  # a Series answers with an int
            total = int(usage.sum()) if isinstance(usage, pd.Series) else int(usage)
            self._row_bytes = total / n
            return total
        return int(n * self._row_bytes)

    def finish(self, data: Any, template: Any) -> Any:
        """Last touch before handing a result out (e.g. a fresh RangeIndex)."""
        return data

    # -- schema ----------------------------------------------------------
    def schema(self, data: Any) -> dict[str, str]:
        """Column name -> dtype text, the position first (for comparisons)."""
        raise NotImplementedError

    def conform(self, data: Any, template: Any) -> tuple[Any, Any, bool]:
        """Check ``data`` against the stored ``template``.

        Returns ``(data, template, differs)``, the template widened when the
        provider added columns or a lossless widening merges (see
        :mod:`rangememo._core.widen`); ``differs``: the piece's schema is not the
        template's. A real conflict of a shared column raises
        :class:`SchemaMismatchError` naming the columns.
        """
        if self.same_schema(data, template):
            return data, template, False  # the hot path: a piece like the ones before
        old, new = self.schema(template), self.schema(data)
        changed = [c for c in old.keys() & new.keys() if old[c] != new[c]]
        if changed:
            # pandas 3 parses datetimes at varying units (s, us, ns): a unit
            # change alone is cast back to the stored unit when lossless.
            data = self.recast(data, {c: old[c] for c in changed})
            new = self.schema(data)
            changed = [c for c in changed if old[c] != new[c]]
        if "category" in new.values():  # equal text, maybe other categories
            changed += [
                c
                for c in old.keys() & new.keys()
                if old[c] == new[c] == "category" and not self._same_column(template, data, c)
            ]
        widened: dict[str, Any] = {}
        conflicts: list[str] = []
        for c in changed:
            stored, values = self.column(template, c), self.column(data, c)
            dtype = None if stored is None or values is None else common_dtype(stored.dtype, values)
            if dtype is None:
                conflicts.append(
                    f"{c!r}: {_describe(stored, old[c])} -> {_describe(values, new[c])}"
                )
            elif not same_dtype(dtype, stored.dtype):
                widened[c] = dtype
        if conflicts:
            detail = ", ".join(sorted(conflicts))
            raise SchemaMismatchError(f"provider changed the dtype of cached columns ({detail})")
        if widened:
            template = self.retype(template, widened)
        if old.keys() == new.keys():
            return data, template, bool(changed)
        return data, self.widen(template, data), True

    def joins(self, a: Any, b: Any) -> bool:
        """May ``b`` follow ``a`` in one stored chunk without losing what a slice shows?

        A ``DatetimeIndex`` with a ``freq`` keeps it through ``pd.concat`` only
        where the pieces are contiguous; merged across a hole, every later
        slice of the chunk would show ``freq=None`` where the uncached call
        shows the provider's.
        """
        if self.index is not None:
            return True
        fa, fb = getattr(a.index, "freq", None), getattr(b.index, "freq", None)
        if fa is None and fb is None:
            return True
        return bool(fa == fb and len(a) and len(b) and a.index[-1] + fa == b.index[0])

    def same_schema(self, data: Any, template: Any) -> bool:
        """Are the schemas of ``data`` and ``template`` exactly equal (cheaply)?

        ``False`` only means "look closer": :meth:`conform` then compares in full.
        """
        return False

    def column(self, data: Any, name: str) -> Any:
        """The values of schema entry ``name`` (``None``: not a widenable column)."""
        return None

    def _same_column(self, a: Any, b: Any, name: str) -> bool:
        x, y = self.column(a, name), self.column(b, name)
        return x is None or y is None or same_dtype(x.dtype, y.dtype)

    def retype(self, template: Any, dtypes: dict[str, Any]) -> Any:
        """``template`` with the schema entries ``dtypes`` widened."""
        raise NotImplementedError

    def signature(self, data: Any) -> Any:
        """Equal for pieces that may share one stored chunk (the same exact schema)."""
        return signature(data)

    def recast(self, data: Any, dtypes: dict[str, str]) -> Any:
        """``data`` with datetime units cast to ``dtypes`` where lossless."""
        return data

    def position_tz(self, data: Any) -> str | None:
        """The timezone of the positions, as text (``None``: naive or unknown)."""
        return None

    def convert_tz(self, data: Any, tz: str) -> Any:
        """``data`` with its positions shown in ``tz`` (the same instants)."""
        return data

    def widen(self, template: Any, data: Any) -> Any:
        raise SchemaMismatchError(
            f"{self.kind} results cannot change shape between fetches: "
            f"{list(self.schema(template))} -> {list(self.schema(data))}"
        )

    def align(self, data: Any, template: Any) -> Any:
        """Give stored rows the template's columns (null where missing)."""
        return data


def _describe(values: Any, text: str) -> str:
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.CategoricalDtype):
        return f"{'ordered ' if dtype.ordered else ''}category{list(dtype.categories)}"
    return text
