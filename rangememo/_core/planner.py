"""The gap planner: request + ledger + in-flight fetches -> what to do (pure).

Interval-level single flight: a part of the request that another caller is
already fetching is *waited for*, not fetched again; only what is neither
covered nor in flight becomes a new gap. A :class:`Policy` then shapes the
gaps: read ahead/behind, coalesce near neighbours, skip or trim to trading
sessions, split to a maximum span. All in int64 axis units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import portion as P

from .ledger import Ledger, Pair, pairs, span

__all__ = ["Flight", "Gap", "Plan", "Policy", "plan_gaps", "split_span"]


class Flight(Protocol):
    """Anything with the ``[lo, hi)`` it is fetching."""

    lo: int
    hi: int


F = TypeVar("F", bound=Flight)

#: ``sessions(lo, hi)``: the session spans overlapping ``[lo, hi)``, in order;
#: ``None`` when the calendar cannot tell (then the gap is fetched as is).
Sessions = Callable[[int, int], list[Pair] | None]


@dataclass(frozen=True, slots=True)
class Gap:
    """A range to cover, ``[lo, hi)``, and the part to ask the provider for.

    ``call_lo == call_hi`` means no call is needed (no session in the range):
    the range is covered as confirmed empty.
    """

    lo: int
    hi: int
    call_lo: int
    call_hi: int
    quiet: bool = False  # nothing lies in ``[call_hi, hi)`` (no session): claim it unasked

    @property
    def needs_call(self) -> bool:
        return self.call_lo < self.call_hi


@dataclass(frozen=True, slots=True)
class Policy:
    """Planning options in axis units (``None``: off)."""

    step: int = 1
    max_span: int | None = None
    coalesce: int | None = None
    readahead: int | None = None
    lookback: int | None = None
    edge: int | None = None  # the live edge, a grid point: never read ahead past it
    sessions: Sessions | None = None


@dataclass(slots=True)
class Plan(Generic[F]):
    """The outcome of planning one request."""

    gaps: list[Gap] = field(default_factory=list)  # to fetch now, in order
    waits: list[F] = field(default_factory=list)  # in-flight fetches to share

    @property
    def hit(self) -> bool:
        return not self.gaps and not self.waits


_NO_POLICY = Policy()


def plan_gaps(
    lo: int,
    hi: int,
    ledger: Ledger | None,
    inflight: Sequence[F] = (),
    now: float = 0.0,
    policy: Policy = _NO_POLICY,
) -> Plan[F]:
    """Plan ``[lo, hi)``: the gaps to fetch and the flights to wait for.

    Every position of the request ends up in exactly one of: covered, a
    waited flight, a new gap. Gaps never overlap coverage or flights.
    """
    if lo >= hi:
        return Plan()
    missing = ledger.missing(lo, hi, now) if ledger is not None else [(lo, hi)]
    if not missing:
        return Plan()
    waits: list[F] = []
    busy = P.empty()
    todo = missing
    if inflight:
        left = P.Interval(*(span(a, b) for a, b in missing))
        for flight in inflight:
            part = span(flight.lo, flight.hi)
            busy = busy | part
            if left.overlaps(part):
                waits.append(flight)
                left = left - part
        todo = pairs(left)
    if todo and (policy.readahead or policy.lookback):
        todo = _extend(todo, lo, hi, _Free(ledger, now, busy), policy)
    if policy.coalesce and len(todo) > 1:
        todo = _coalesce(todo, busy, policy.coalesce)
    gaps = [g for a, b in todo for g in _shape(a, b, policy)]
    return Plan(gaps=gaps, waits=waits)


class _Free:
    """Free space (neither covered nor in flight) near a request, looked up by window."""

    def __init__(self, ledger: Ledger | None, now: float, busy: P.Interval) -> None:
        self.ledger, self.now, self.busy = ledger, now, busy

    def within(self, lo: int, hi: int) -> list[Pair]:
        """The free runs of ``[lo, hi)``: O(log K) plus what lies in the window."""
        free = self.ledger.missing(lo, hi, self.now) if self.ledger is not None else [(lo, hi)]
        if self.busy.empty or not free:
            return free
        return pairs(P.Interval(*(span(a, b) for a, b in free)) - self.busy)


def _extend(todo: list[Pair], lo: int, hi: int, free: _Free, policy: Policy) -> list[Pair]:
    """Read ahead past the request's end / behind its start, into free space."""
    out = list(todo)
    if policy.readahead and out[-1][1] == hi:
        limit = hi + policy.readahead
        if policy.edge is not None:  # a grid point: bars before it are complete
            limit = min(limit, policy.edge)
        if limit > hi:
            ahead = free.within(hi, limit)
            if ahead and ahead[0][0] == hi:
                out[-1] = (out[-1][0], ahead[0][1])
    if policy.lookback and out[0][0] == lo:
        behind = free.within(lo - policy.lookback, lo)
        if behind and behind[-1][1] == lo:
            out[0] = (behind[-1][0], out[0][1])
    return out


def _coalesce(todo: list[Pair], busy: P.Interval, within: int) -> list[Pair]:
    """Merge gaps closer than ``within`` when only covered data lies between."""
    out = [todo[0]]
    for a, b in todo[1:]:
        pa, pb = out[-1]
        if a - pb < within and not busy.overlaps(span(pb, a)):
            out[-1] = (pa, b)
        else:
            out.append((a, b))
    return out


def _shape(lo: int, hi: int, policy: Policy) -> list[Gap]:
    """Trim a gap to its sessions, then split it into calls of at most max_span."""
    call_lo, call_hi = lo, hi
    if policy.sessions is not None:
        sessions = policy.sessions(lo, hi)
        if sessions is not None and not sessions:
            return [Gap(lo, hi, lo, lo)]
        if sessions:
            call_lo, call_hi = max(lo, sessions[0][0]), min(hi, sessions[-1][1])
    if policy.max_span is None or call_hi - call_lo <= policy.max_span:
        return [Gap(lo, hi, call_lo, call_hi)]
    pieces = split_span(call_lo, call_hi, policy.max_span)
    gaps = [Gap(a, b, a, b) for a, b in pieces]
    # The trimmed ends are covered by the first and last calls.
    gaps[0] = Gap(lo, gaps[0].hi, gaps[0].call_lo, gaps[0].call_hi)
    gaps[-1] = Gap(gaps[-1].lo, hi, gaps[-1].call_lo, gaps[-1].call_hi)
    return gaps


def split_span(lo: int, hi: int, max_span: int) -> list[Pair]:
    """``[lo, hi)`` cut into consecutive pieces of at most ``max_span``."""
    return [(a, min(a + max_span, hi)) for a in range(lo, hi, max_span)]
