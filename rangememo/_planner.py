"""The gap planner: request + ledger + in-flight fetches -> what to do (pure).

Interval-level single flight: a part of the request that another caller is
already fetching is *waited for*, not fetched again; only what is neither
covered nor in flight becomes a new gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import portion as P

from ._ledger import Ledger, Pair, pairs, span

__all__ = ["Flight", "Plan", "plan_gaps", "split_span"]


class Flight(Protocol):
    """Anything with the ``[lo, hi)`` it is fetching."""

    lo: int
    hi: int


F = TypeVar("F", bound=Flight)


@dataclass(slots=True)
class Plan(Generic[F]):
    """The outcome of planning one request."""

    gaps: list[Pair] = field(default_factory=list)  # to fetch now, in order
    waits: list[F] = field(default_factory=list)  # in-flight fetches to share

    @property
    def hit(self) -> bool:
        return not self.gaps and not self.waits


def plan_gaps(
    lo: int,
    hi: int,
    ledger: Ledger | None,
    inflight: Sequence[F] = (),
    now: float = 0.0,
    max_span: int | None = None,
) -> Plan[F]:
    """Plan ``[lo, hi)``: the gaps to fetch and the flights to wait for.

    Every position of the request ends up in exactly one of: covered, a
    waited flight, a new gap. ``max_span`` splits long gaps into chunks.
    """
    if lo >= hi:
        return Plan()
    missing = ledger.missing(lo, hi, now) if ledger is not None else [(lo, hi)]
    if not missing:
        return Plan()
    if not inflight:
        return Plan(gaps=_split(missing, max_span))
    todo = P.Interval(*(span(a, b) for a, b in missing))
    waits: list[F] = []
    for flight in inflight:
        part = span(flight.lo, flight.hi)
        if todo.overlaps(part):
            waits.append(flight)
            todo = todo - part
    return Plan(gaps=_split(pairs(todo), max_span), waits=waits)


def split_span(lo: int, hi: int, max_span: int) -> list[Pair]:
    """``[lo, hi)`` cut into consecutive pieces of at most ``max_span``."""
    return [(a, min(a + max_span, hi)) for a in range(lo, hi, max_span)]


def _split(gaps: list[Pair], max_span: int | None) -> list[Pair]:
    if max_span is None:
        return gaps
    return [piece for a, b in gaps for piece in split_span(a, b, max_span)]
