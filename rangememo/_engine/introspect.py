"""Introspection: a key's coverage, and the bounds of ``invalidate``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Hashable
from typing import Any, NamedTuple

from .._core.axis import Axis, axis_of
from .._core.entry import Entry
from .._core.steps import parse_step
from .bounds import coerce_bounds
from .cache import RangeCache

__all__ = ["Coverage", "bound_key", "coverage", "forget_bounds", "key_and_step"]


class Coverage(NamedTuple):
    """One covered piece of a key, as ``coverage(..., detail=True)`` lists it."""

    start: Any
    end: Any
    state: str  # "final", "empty" (fetched, no rows) or "provisional" (live edge)
    fetched: dt.datetime | None
    expires: dt.datetime | None


def _when(ts: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC) if ts else None


def bound_key(
    cache: RangeCache,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    first: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Hashable, Any]:
    """Arguments (as keywords), key and step of a call given without its range.

    ``first``: the ``self``/``cls`` of a bound call, by name (key and step
    callables may read it; the key signature leaves it out).
    """
    binder = cache.binder
    arguments = binder.bind_key(args, kwargs)
    if first:
        arguments = {**first, **arguments}
    step = cache.options.step
    if callable(step):
        step = step(**binder.keywords(arguments))
    return binder.keywords(arguments), binder.key(arguments), step


def key_and_step(
    cache: RangeCache,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    first: dict[str, Any] | None = None,
) -> tuple[Hashable, Any]:
    """Key and step of a call given without its range (introspection)."""
    _, key, step = bound_key(cache, args, kwargs, first)
    return key, step


def coverage(cache: RangeCache, entry: Entry | None, step: Any, detail: bool = False) -> list[Any]:
    """Covered intervals of an entry, in the caller's convention.

    ``detail=True`` lists every piece as a :class:`Coverage` with its
    state (final, empty, provisional) and fetch time.
    """
    if entry is None or entry.axis is None:
        return []
    kind, aware = entry.axis
    axis = Axis(
        kind,
        aware,
        dt.UTC if aware else None,
        parse_step(step, kind),
        cache.options.closed,
        True,
    )
    if not detail:
        return [_shown(axis, a, b) for a, b in entry.ledger.intervals()]
    return [
        Coverage(*_shown(axis, s.lo, s.hi), s.state, _when(s.fetched), _when(s.expires))
        for s in entry.ledger.states()
    ]


def _shown(axis: Axis, lo: int, hi: int) -> tuple[Any, Any]:
    """A covered ``[lo, hi)`` in the caller's convention.

    A piece closed up to a grid point ends at the last bar before it; a claim
    that ended off the grid (rows at another phase) ends where it was asked.
    """
    if axis.closed != "both":
        return axis.bounds(lo, hi)
    on = dataclasses.replace(axis, ref=lo)
    end = on.grid_floor(hi - 1, lo) if on.on_grid(hi) else hi - 1
    return axis.decode(lo), axis.decode(end)


def forget_bounds(
    cache: RangeCache,
    start: Any,
    end: Any,
    step: Any,
    entry: Entry | None = None,
    key: Hashable = None,
) -> tuple[int | None, int | None]:
    """``invalidate`` bounds as ``[lo, hi)`` of coverage (``None``: unbounded).

    Exactly the rows at or before ``end`` (before it, with closed="left") are
    forgotten. Coverage goes on to the next grid point, so a forgotten day
    leaves no sliver behind, but never past the next row ``entry`` holds.
    """
    if start is None and end is None:
        return None, None
    if cache.options.coerce_bounds:  # the strings the calls take, here too
        start, end, _ = coerce_bounds(start, end)
    axis = axis_of(
        start if start is not None else end,
        end if end is not None else start,
        step,
        cache.options.closed,
    )
    if entry is not None:  # aware bounds on a naive key would forget a shifted range
        entry.check_axis(axis.signature, key, (start, end))
    lo = axis.encode(start) if start is not None else None
    if end is None:
        return lo, None
    _, grid_hi, hi = axis.request(start if start is not None else end, end)
    if axis.closed == "both" and grid_hi > hi:
        rows = entry.rows if entry is not None else None
        first = rows.first_in(hi, grid_hi) if rows is not None else None
        hi = grid_hi if first is None else first
    return lo, hi
