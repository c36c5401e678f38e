"""Introspection: a key's coverage, and the bounds of ``invalidate``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable
from typing import Any, NamedTuple

from ._axis import Axis, axis_of, parse_step
from ._cache import RangeCache
from ._entry import Entry

__all__ = ["Coverage", "coverage", "forget_bounds", "key_and_step"]


class Coverage(NamedTuple):
    """One covered piece of a key, as ``coverage(..., detail=True)`` lists it."""

    start: Any
    end: Any
    state: str  # "final", "empty" (fetched, no rows) or "provisional" (live edge)
    fetched: dt.datetime | None
    expires: dt.datetime | None


def _when(ts: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC) if ts else None


def key_and_step(
    cache: RangeCache,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    first: dict[str, Any] | None = None,
) -> tuple[Hashable, Any]:
    """Key and step of a call given without its range (introspection).

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
    return binder.key(arguments), step


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
        return [axis.bounds(a, b) for a, b in entry.ledger.intervals()]
    return [
        Coverage(*axis.bounds(s.lo, s.hi), s.state, _when(s.fetched), _when(s.expires))
        for s in entry.ledger.states()
    ]


def forget_bounds(
    cache: RangeCache, start: Any, end: Any, step: Any
) -> tuple[int | None, int | None]:
    """``invalidate`` bounds as ``[lo, hi)`` of coverage (``None``: unbounded)."""
    if start is None and end is None:
        return None, None
    axis = axis_of(
        start if start is not None else end,
        end if end is not None else start,
        step,
        cache.options.closed,
    )
    lo = axis.encode(start) if start is not None else None
    hi = axis.request(end, end)[1] if end is not None else None
    return lo, hi
