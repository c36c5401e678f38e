"""Comparing a key's stored rows with a fresh fetch of the same range (pure, no I/O).

Both sides are answers as the caller sees them (a DataFrame, a Series, an
Arrow table or ``None``), so what is compared is exactly what a cached call
would have returned against what the provider returns now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Diff", "diff_answers"]


@dataclass(frozen=True, slots=True)
class Diff:
    """How a fresh answer differs from the stored one, row by row."""

    added: int = 0  # rows only the fresh answer has
    removed: int = 0  # rows only the stored answer has
    changed: int = 0  # rows in both whose values differ in some column
    columns: tuple[str, ...] = ()  # columns that differ (values, or present on one side only)
    largest: dict[str, float] = field(default_factory=dict)  # numeric: max |fresh - stored|
    rows: int = 0  # rows of the stored answer

    @property
    def differs(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.columns)


def _frame(answer: Any, on: str | None) -> pd.DataFrame:
    """The answer as a frame indexed by position (duplicates numbered, so they pair up)."""
    if answer is None:
        return pd.DataFrame()
    if isinstance(answer, pd.Series):
        frame = answer.to_frame(answer.name if answer.name is not None else "value")
    elif isinstance(answer, pd.DataFrame):
        frame = answer
    else:  # a pyarrow Table: compared through pandas, values as they convert
        frame = answer.to_pandas()
    if on is not None and on in frame.columns:
        frame = frame.set_index(on)
    # Several rows at one position (ticks) pair up in order: the n-th with the n-th.
    nth = frame.groupby(level=0, sort=False).cumcount().to_numpy()
    frame = frame.copy(deep=False)
    frame.index = pd.MultiIndex.from_arrays([frame.index, nth])
    return frame


def _differ(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Per row: do the values differ? (Missing on both sides is equal.)"""
    left, right = a.to_numpy(dtype=object), b.to_numpy(dtype=object)
    na_l, na_r = pd.isna(a).to_numpy(), pd.isna(b).to_numpy()
    pairs = zip(left, right, na_l, na_r, strict=True)
    same = np.fromiter(
        (bool(x == y) if not (p or q) else bool(p and q) for x, y, p, q in pairs),
        dtype=bool,
        count=len(left),
    )
    return ~same


def _largest(a: pd.Series, b: pd.Series, rows: np.ndarray) -> float | None:
    if not (pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)):
        return None
    if pd.api.types.is_bool_dtype(a) or pd.api.types.is_bool_dtype(b) or not rows.any():
        return None
    delta = (b[rows].astype("float64") - a[rows].astype("float64")).abs()
    return float(delta.max()) if delta.notna().any() else None


def diff_answers(stored: Any, fresh: Any, on: str | None = None) -> Diff:
    """Rows added, removed and changed from ``stored`` to ``fresh``.

    ``on`` names the position column when positions are not the index
    (``range_cached(index=...)``). Rows are matched by position; values are
    compared column by column, missing values equal to each other.
    """
    old, new = _frame(stored, on), _frame(fresh, on)
    both = old.index.intersection(new.index, sort=False)
    added = len(new.index.difference(old.index))
    removed = len(old.index.difference(new.index))
    columns: list[Any] = []
    if len(old) and len(new):  # a side with no rows has no schema worth comparing
        columns += [c for c in new.columns if c not in old.columns]
        columns += [c for c in old.columns if c not in new.columns]
    changed = np.zeros(len(both), dtype=bool)
    largest: dict[str, float] = {}
    a_rows, b_rows = old.loc[both], new.loc[both]
    for col in (c for c in old.columns if c in new.columns):
        rows = _differ(a_rows[col], b_rows[col]) if len(both) else np.zeros(0, dtype=bool)
        if rows.any():
            columns.append(col)
            changed |= rows
            a, b = a_rows[col].reset_index(drop=True), b_rows[col].reset_index(drop=True)
            big = _largest(a, b, rows)
            if big is not None:
                largest[str(col)] = big
    order = {c: i for i, c in enumerate([*old.columns, *new.columns])}
    names = tuple(str(c) for c in sorted(set(columns), key=lambda c: order[c]))
    return Diff(added, removed, int(changed.sum()), names, largest, len(old))
