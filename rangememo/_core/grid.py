"""The caller's grid: what a call asks the provider for, and what it may claim (pure).

A call claims what it asked for, ``[call_lo, end]``, and closes up to the next grid
point only where the provider's rows are seen on the caller's grid: then no row can
lie between ``end`` and that point (the contract's ``[a, b] -> [a, b + step)``). Rows
at another phase (daily bars stamped at another zone's midnight, which drifts an hour
against the caller's grid across DST) get exact claims, and a call that meets an exact
claim asks again from that claim's own end (a bound the caller used), so no sliver
between two claims is left unasked. A flight whose rows defy what its planning
expected claims less than it set out to, and its callers plan again for the rest.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Sequence
from typing import Any

from .axis import Axis
from .entry import Entry, View
from .planner import Gap
from .rows import Chunk

__all__ = ["claim", "fit", "phase"]


def phase(axis: Axis, entry: Entry | View | None, *near: int) -> bool | None:
    """Do the key's rows lie on this request's grid near ``near``? ``None``: no row tells.

    A row says so only for positions where the bounds' zone (and the zone the rows
    are shown in) has its offset: a row at a fixed instant (UTC-midnight bars asked
    with London bounds) lies on a local-day grid in one season only.
    """
    if axis.ref is None or not axis.midnight_grid:
        return False
    refs = entry.rows.grid_refs() if entry is not None and entry.rows is not None else ()
    row_tz = _row_tz(entry)
    # The first and the last row: one of them is mostly of the season at hand.
    said = {axis.on_grid(r) for r in refs if _one_offset(axis, row_tz, r, *near)}
    return None if not said else all(said)


def fit(
    axis: Axis,
    rows_hi: int,
    gap: Gap,
    entry: Entry | View | None,
    flights: Sequence[Any] = (),
    inward: bool = True,
) -> Gap | None:
    """``gap`` with its call bounds in the caller's terms, and what it sets out to claim.

    ``axis.ref`` is the request's start, ``rows_hi`` the end of its rows. Where the
    key's rows lie on the grid, a gap's ends are rounded inward to the grid: no row
    lies between. Elsewhere an end off the grid meets an exact
    claim, and the call asks from that claim's own end, unless a stored row sits
    exactly there. ``None``: nothing to ask now (the flights beside it settle it).
    """
    if axis.ref is None or not gap.needs_call:
        return gap
    on = phase(axis, entry, gap.lo, gap.hi - 1) if inward else False
    lo, hi = gap.call_lo, gap.call_hi
    inward_hi = False
    # Rounding inward is a guess the claim checks (a short claim sends the caller
    # round again), so a key with no rows near the gap is taken to be on the grid.
    if lo != axis.ref and not axis.on_grid(lo):
        if on is not False:
            lo = axis.grid_ceil(lo)
        elif _free(entry, lo - 1):
            lo -= 1
    if hi == rows_hi:
        end = hi - 1  # the caller's own end
    else:
        inward_hi = on is not False
        # Inward: the last grid point before ``hi``; else ``hi`` itself, the bound
        # the claim there starts at, unless a stored row sits on it.
        stop = hi if _free(entry, hi) else hi - 1
        end = axis.grid_floor(hi - 1, hi) if inward_hi else stop
    if end < lo:  # no grid point, so no row, in the gap
        if on is True and entry is not None and entry.template is not None:
            return Gap(gap.lo, gap.hi, gap.call_lo, gap.call_lo)
        if _busy(flights, gap.lo - 1) or _busy(flights, gap.hi):
            return None  # the flights beside it close it up, or the next round asks
        return fit(axis, rows_hi, gap, entry, flights, inward=False)
    quiet = gap.call_hi < gap.hi  # trimmed to its sessions: nothing lies past the call
    if hi == rows_hi and not quiet:
        top = hi  # closing up past the caller's end is a bonus, not a promise
    else:
        top = _reach(axis, end, gap.hi if quiet else None, inward_hi)
    return Gap(min(gap.lo, lo), top, lo, end + 1, quiet)


def claim(
    axis: Axis,
    rows_hi: int,
    gap: Gap,
    chunk: Chunk,
    entry: Entry | View | None,
    row_tz: str | None = None,
) -> Gap:
    """What a call of ``gap`` that returned ``chunk`` (positions shown in ``row_tz``) may claim."""
    end = gap.call_hi - 1
    # The claim closes up over the slivers [gap.lo, call_lo) and (end, top): the
    # evidence must hold there, so of the bounds' offset there too (see ``phase``).
    top = _reach(axis, end, gap.hi if gap.quiet else None, True) - 1
    if len(chunk):  # the rows at hand tell their phase
        first, last = chunk.first, chunk.last
        closes = (
            axis.midnight_grid
            and axis.on_grid(first)
            and axis.on_grid(last)
            and _one_offset(axis, row_tz, first, gap.lo, gap.call_lo)
            and _one_offset(axis, row_tz, last, end, top)
        )
    else:  # else rows the key holds do
        # An empty answer on a key without rows says nothing of where its bars
        # lie (a weekend is empty at any phase): it claims what it asked, no more.
        # Dates have no phase.
        on = phase(axis, entry, gap.lo, gap.call_lo, end, top)
        closes = on is True or (on is None and axis.kind == "date")
    hi = _reach(axis, end, gap.hi if gap.quiet else None, closes)
    # A start rounded up to the grid claims the sliver before it only on that evidence.
    lo = gap.lo if closes else gap.call_lo
    return Gap(lo, hi, gap.call_lo, gap.call_hi, gap.quiet)


def _one_offset(axis: Axis, row_tz: str | None, pos: int, *others: int) -> bool:
    """Does a row at ``pos`` vouch for ``others``: has the bounds' zone one offset at all
    of them, and so has the zone the rows are shown in (when one with DST)?

    Rows may sit at a fixed instant (UTC-midnight bars) or at one wall time of the zone
    they are shown in; either way they keep their phase on the bounds' grid only where
    both offsets hold. Rows shown in UTC (or naive) hide a zone they are stamped in:
    London-midnight bars asked with UTC bounds stay the documented limit
    (docs/decisions.md).
    """
    if not axis.local_days:  # offsets count only on a local-day grid (else all 0)
        return True
    zones = (None, row_tz) if row_tz is not None and _named_zone(row_tz) else (None,)
    for tz in zones:
        at = axis.offset(pos, tz)
        if any(axis.offset(p, tz) != at for p in others):
            return False
    return True


@functools.lru_cache(maxsize=64)
def _named_zone(name: str) -> bool:
    """Is ``name`` a zone the tz database knows (not UTC, a fixed offset or a tzfile path)?"""
    if name == "UTC":
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError):
        return False
    return True


def _row_tz(entry: Entry | View | None) -> str | None:
    """The zone the key's rows are shown in (``None``: naive, UTC or unknown)."""
    if entry is None or entry.adapter is None or entry.template is None:
        return None
    return entry.adapter.position_tz(entry.template)


def _busy(flights: Sequence[Any], pos: int) -> bool:
    """Is ``pos`` being fetched by a flight in progress?"""
    return any(f.lo <= pos < f.hi for f in flights)


def _free(entry: Entry | View | None, pos: int) -> bool:
    """Does the key hold no row exactly at ``pos`` (so asking for it again repeats nothing)?"""
    return entry is None or entry.rows is None or entry.rows.first_in(pos, pos + 1) is None


def _reach(axis: Axis, end: int, quiet_hi: int | None, closes: bool) -> int:
    """How far a call ending (inclusive) at ``end`` claims.

    ``quiet_hi``: nothing lies between ``end`` and it (no session), so the claim
    runs on to it unasked, and closes up from there.
    """
    last = end if quiet_hi is None else max(end, quiet_hi - 1)
    return axis.grid_next(last) if closes else last + 1
