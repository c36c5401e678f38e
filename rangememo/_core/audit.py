"""Comparing a key's stored rows with a fresh fetch of the same range (pure, no I/O).

Both sides are answers as the caller sees them (a DataFrame, a Series, an
Arrow table or ``None``), so what is compared is exactly what a cached call
would have returned against what the provider returns now.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["AuditReport", "Diff", "diff_answers", "summarize"]


@dataclass(frozen=True, slots=True)
class Diff:
    """How a fresh answer differs from the stored one, row by row."""

    added: int = 0  # rows only the fresh answer has
    removed: int = 0  # rows only the stored answer has
    changed: int = 0  # rows in both whose values differ in some column
    columns: tuple[str, ...] = ()  # columns that differ: values, dtype, or on one side only
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
        if len(old) and len(new) and old[col].dtype != new[col].dtype:
            columns.append(col)  # equal values, another dtype: the uncached answer differs
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


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What an audit of one key found (and, with ``heal=True``, replaced).

    ``ranges`` are the ranges refetched, as ``(start, end)`` in the caller's
    convention; ``revised`` those whose fresh rows differ from the stored
    ones. ``largest_change`` maps each numeric column that changed to its
    largest absolute change. ``everywhere`` is set when every range checked
    that holds rows was revised (a split or dividend adjustment of the whole
    history): the ranges not sampled are then likely revised too, and
    ``advice`` says to refetch the key.
    """

    namespace: str
    key: Hashable
    ranges_covered: int = 0
    ranges: tuple[tuple[Any, Any], ...] = ()
    revised: tuple[tuple[Any, Any], ...] = ()
    rows_checked: int = 0
    rows_added: int = 0
    rows_removed: int = 0
    rows_changed: int = 0
    columns_changed: tuple[str, ...] = ()
    largest_change: dict[str, float] = field(default_factory=dict)
    everywhere: bool = False
    healed: bool = False

    @property
    def ranges_checked(self) -> int:
        return len(self.ranges)

    @property
    def clean(self) -> bool:
        """Nothing checked differs from what is stored."""
        return not self.revised

    @property
    def advice(self) -> str | None:
        if not self.everywhere:
            return None
        return (
            f"every range checked of key {self.key!r} was revised (a split or an adjustment "
            "of the whole history?): refetch the key, e.g. invalidate() it and call again"
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (positions as ISO text), for ``rangememo audit --json``."""

        def text(v: Any) -> Any:
            return v.isoformat() if hasattr(v, "isoformat") else v

        return {
            "namespace": self.namespace,
            "key": repr(self.key),
            "ranges_covered": self.ranges_covered,
            "ranges_checked": self.ranges_checked,
            "ranges": [[text(a), text(b)] for a, b in self.ranges],
            "revised": [[text(a), text(b)] for a, b in self.revised],
            "rows_checked": self.rows_checked,
            "rows_added": self.rows_added,
            "rows_removed": self.rows_removed,
            "rows_changed": self.rows_changed,
            "columns_changed": list(self.columns_changed),
            "largest_change": dict(self.largest_change),
            "everywhere": self.everywhere,
            "advice": self.advice,
            "healed": self.healed,
        }


def summarize(
    namespace: str,
    key: Hashable,
    total: int,
    checked: list[tuple[tuple[Any, Any], Diff]],
    heal: bool,
) -> AuditReport:
    """One report from the diff of each range checked (``total``: ranges covered)."""
    revised = [(shown, d) for shown, d in checked if d.differs]
    columns: list[str] = []
    largest: dict[str, float] = {}
    for _, d in revised:
        columns += [c for c in d.columns if c not in columns]
        for c, v in d.largest.items():
            largest[c] = max(largest.get(c, v), v)
    rows = sum(d.rows for _, d in checked)
    changed = sum(d.changed for _, d in checked)
    # Every range checked that holds rows differs (a range empty on both sides, a
    # weekend, cannot show a split): with two or more, a revision of the whole
    # history; with one, only if it touched most of its rows.
    held = [d for _, d in checked if d.rows or d.added]
    n = len(held)
    everywhere = bool(n) and all(d.differs for d in held) and (n >= 2 or 2 * changed >= rows > 0)
    return AuditReport(
        namespace,
        key,
        total,
        tuple(shown for shown, _ in checked),
        tuple(shown for shown, _ in revised),
        rows,
        sum(d.added for _, d in checked),
        sum(d.removed for _, d in checked),
        changed,
        tuple(columns),
        largest,
        everywhere,
        heal and bool(revised),
    )
