"""The gap planner: request + ledger + in-flight fetches -> what to do (pure).

Interval-level single flight: a part of the request that another caller is
already fetching is *waited for*, not fetched again; only what is neither
covered nor in flight becomes a new gap. A :class:`Policy` then shapes the
gaps: read ahead/behind, coalesce near neighbours, skip or trim to trading
sessions, split to a maximum span. All in int64 axis units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from .ahead import Trail, grant, march, moved
from .ledger import Ledger, Pair, pairs, span
from .struct import Struct

if TYPE_CHECKING:
    import portion as P  # imported on first plan, not with rangememo (see ledger.py)

__all__ = ["Flight", "Gap", "Plan", "Policy", "plan_gaps", "split_span"]


class Flight(Protocol):
    """Anything with the ``[lo, hi)`` it is fetching."""

    lo: int
    hi: int


F = TypeVar("F", bound=Flight)

#: ``sessions(lo, hi)``: the session spans overlapping ``[lo, hi)``, in order;
#: ``None`` when the calendar cannot tell (then the gap is fetched as is).
Sessions = Callable[[int, int], list[Pair] | None]


class Gap(Struct):
    """A range to cover, ``[lo, hi)``, and the part to ask the provider for.

    ``call_lo == call_hi`` means no call is needed (no session in the range):
    the range is covered as confirmed empty.
    """

    __slots__ = ("lo", "hi", "call_lo", "call_hi", "quiet")
    lo: int
    hi: int
    call_lo: int
    call_hi: int
    quiet: bool  # nothing lies in ``[call_hi, hi)`` (no session): claim it unasked

    def __init__(self, lo: int, hi: int, call_lo: int, call_hi: int, quiet: bool = False) -> None:
        self.lo, self.hi, self.call_lo, self.call_hi, self.quiet = lo, hi, call_lo, call_hi, quiet

    @property
    def needs_call(self) -> bool:
        return self.call_lo < self.call_hi


class Policy(Struct):
    """Planning options in axis units (``None``: off)."""

    __slots__ = (
        "step", "max_span", "coalesce", "readahead", "lookback", "edge", "sessions",
        "auto", "last", "first", "floor", "ceil",
    )  # fmt: skip
    step: int
    max_span: int | None
    coalesce: int | None
    readahead: int | None
    lookback: int | None
    edge: int | None  # the live edge, a grid point: never read ahead past it
    sessions: Sessions | None
    auto: int | None  # adaptive readahead's cap (``None``: off; see _core/ahead.py)
    last: int | None  # the end of the calendar's last session: never read past it
    first: int | None  # the start of its first session: never read behind it
    floor: Callable[[int], int] | None  # the grid point at or before a position
    ceil: Callable[[int], int] | None  # the grid point at or after a position

    def __init__(
        self,
        step: int = 1,
        max_span: int | None = None,
        coalesce: int | None = None,
        readahead: int | None = None,
        lookback: int | None = None,
        edge: int | None = None,
        sessions: Sessions | None = None,
        auto: int | None = None,
        last: int | None = None,
        first: int | None = None,
        floor: Callable[[int], int] | None = None,
        ceil: Callable[[int], int] | None = None,
    ) -> None:
        self.step, self.max_span, self.coalesce = step, max_span, coalesce
        self.readahead, self.lookback, self.edge = readahead, lookback, edge
        self.sessions, self.auto, self.last, self.first = sessions, auto, last, first
        self.floor, self.ceil = floor, ceil


class Plan(Struct, Generic[F]):
    """The outcome of planning one request."""

    __slots__ = ("gaps", "waits", "trail")
    gaps: list[Gap]  # to fetch now, in order
    waits: list[F]  # in-flight fetches to share
    trail: Trail | None  # the key's marches after this plan (adaptive readahead)

    def __init__(
        self,
        gaps: list[Gap] | None = None,
        waits: list[F] | None = None,
        trail: Trail | None = None,
    ) -> None:
        self.gaps = [] if gaps is None else gaps
        self.waits = [] if waits is None else waits
        self.trail = trail

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as its dataclass was

    @property
    def hit(self) -> bool:
        return not self.gaps and not self.waits


_NO_POLICY = Policy()
# Positions are int64: windows are clipped to it, never wrapped.
_MIN, _MAX = -(2**63), 2**63 - 1


def plan_gaps(
    lo: int,
    hi: int,
    ledger: Ledger | None,
    inflight: Sequence[F] = (),
    now: float = 0.0,
    policy: Policy = _NO_POLICY,
    trail: Trail | None = None,
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
    import portion as P

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
    new_trail = None
    if todo and policy.auto is not None:
        todo, new_trail = _auto(todo, lo, hi, _Free(ledger, now, busy), policy, trail or Trail())
    elif todo and (policy.readahead or policy.lookback):
        todo = _extend(todo, lo, hi, _Free(ledger, now, busy), policy)
    if policy.coalesce and len(todo) > 1:
        todo = _coalesce(todo, busy, policy.coalesce)
    gaps = [g for a, b in todo for g in _shape(a, b, policy)]
    return Plan(gaps=gaps, waits=waits, trail=new_trail)


class _Free:
    """Free space (neither covered nor in flight) near a request, looked up by window."""

    def __init__(self, ledger: Ledger | None, now: float, busy: P.Interval) -> None:
        self.ledger, self.now, self.busy = ledger, now, busy

    def within(self, lo: int, hi: int) -> list[Pair]:
        """The free runs of ``[lo, hi)``: O(log K) plus what lies in the window."""
        free = self.ledger.missing(lo, hi, self.now) if self.ledger is not None else [(lo, hi)]
        if self.busy.empty or not free:
            return free
        import portion as P

        return pairs(P.Interval(*(span(a, b) for a, b in free)) - self.busy)


def _extend(todo: list[Pair], lo: int, hi: int, free: _Free, policy: Policy) -> list[Pair]:
    """Read ahead past the request's end / behind its start, into free space."""
    out = list(todo)
    if policy.readahead and out[-1][1] == hi:
        out[-1] = (out[-1][0], _ahead(hi, policy.readahead, free, policy))
    if policy.lookback and out[0][0] == lo:
        out[0] = (_behind(lo, policy.lookback, free, policy), out[0][1])
    return out


def _ahead(hi: int, window: int, free: _Free, policy: Policy) -> int:
    """Where a gap ending at ``hi`` may end once read ahead by ``window``."""
    # On a grid the window counts whole steps from the end of the request's last step.
    limit = min((policy.ceil(hi) if policy.ceil is not None else hi) + window, _MAX)
    if policy.edge is not None:  # a grid point: bars before it are complete
        limit = min(limit, policy.edge)
    if policy.last is not None:  # past it the calendar cannot tell sessions from closures
        limit = min(limit, policy.last)
    if policy.floor is not None and policy.floor(limit) > hi:
        limit = policy.floor(limit)  # a readable bound, a whole number of steps away
    if limit <= hi:
        return hi
    ahead = free.within(hi, limit)  # never into covered or in-flight ranges
    return ahead[0][1] if ahead and ahead[0][0] == hi else hi


def _behind(lo: int, window: int, free: _Free, policy: Policy) -> int:
    """Where a gap starting at ``lo`` may start once read behind by ``window``."""
    limit = max(lo - window, _MIN)
    if policy.first is not None:
        limit = max(limit, policy.first)
    if policy.ceil is not None and policy.ceil(limit) < lo:
        limit = policy.ceil(limit)
    if limit >= lo:
        return lo
    behind = free.within(limit, lo)
    return behind[-1][0] if behind and behind[-1][1] == lo else lo


def _auto(
    todo: list[Pair], lo: int, hi: int, free: _Free, policy: Policy, trail: Trail
) -> tuple[list[Pair], Trail]:
    """Adaptive readahead: extend by what the key's marches earned; step them on.

    A fixed ``lookback`` still applies behind (it was asked for); ``max_span``
    bounds a window, so readahead adds at most one call of at most ``max_span``.
    """
    assert policy.auto is not None
    cap = policy.auto if policy.max_span is None else min(policy.auto, policy.max_span)
    out = list(todo)
    ahead, behind = trail.ahead, trail.behind
    if out[-1][1] == hi:  # the request misses its tail: a forward step, or a new march
        a = out[-1][0]
        state = march(ahead, a, policy.step)
        window = grant(state, max(hi - a, policy.step), _run_behind(a, cap, free, policy), cap)
        end = _ahead(hi, window, free, policy) if window else hi
        out[-1] = (a, end)
        ahead = moved(state, end, window)
    if policy.lookback and out[0][0] == lo:
        out[0] = (_behind(lo, policy.lookback, free, policy), out[0][1])
    elif out[0][0] == lo:  # the request misses its head: a backward step, or a new march
        b = todo[0][1]  # where the request's own head gap ends (not any read ahead)
        state = march(behind, b, policy.step)
        window = grant(state, max(b - lo, policy.step), _run_ahead(b, cap, free, policy), cap)
        start = _behind(lo, window, free, policy) if window else lo
        out[0] = (start, out[0][1])
        behind = moved(state, start, window)
    return out, Trail(ahead, behind)


def _run_behind(a: int, cap: int, free: _Free, policy: Policy) -> int:
    """The covered run ending at ``a`` (or within a step of it), at most ``cap``."""
    back = free.within(max(a - cap, _MIN), a)
    if back and back[-1][1] == a and a - back[-1][0] <= policy.step:
        a = back[-1][0]  # the rest of a step the request planned to its end (fit claims it)
        back = back[:-1]
    return cap if not back else max(0, a - back[-1][1])


def _run_ahead(b: int, cap: int, free: _Free, policy: Policy) -> int:
    """The covered run starting at ``b`` (or within a step of it), at most ``cap``."""
    on = free.within(b, min(b + cap, _MAX))
    if on and on[0][0] == b and on[0][1] - b <= policy.step:
        b = on[0][1]
        on = on[1:]
    return cap if not on else max(0, on[0][0] - b)


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
