"""Adaptive readahead: spotting requests that march along one key (pure, no I/O).

Per key the engine keeps a :class:`Trail`: where the last fetch that touched a
request's end stopped (the *front*) and where the last one that touched a
request's start began (the *rear*). A request whose missing tail starts exactly
at the front steps the forward march on; one whose missing head ends exactly at
the rear steps the backward march on. Anything else starts that direction
afresh (its count drops to zero, its window with it). Only after
:data:`THRESHOLD` steps in a row is a window granted; it then grows by
:data:`GROWTH` each further step, capped by the caller's ``max_readahead``.

Random or one-off requests rarely start exactly where the previous fetch of the
key stopped, and never :data:`THRESHOLD` times in a row, so they get nothing.
The first window is the larger of the gap and the covered run behind it (as
Linux's "context readahead" sizes its window from the cached pages behind a
read): a backtest that asked for a 30-day lookback first gets a month ahead.
"""

from __future__ import annotations

from .struct import Struct

__all__ = ["GROWTH", "THRESHOLD", "March", "Trail", "grant", "march"]

#: Steps in a row before any window is granted (one step is a coincidence).
THRESHOLD = 2
#: Each further step multiplies the window by this.
GROWTH = 2


class March(Struct):
    """One direction's march: the edge the next step must start at, its length, its window."""

    __slots__ = ("edge", "steps", "window")
    edge: int
    steps: int  # consecutive steps so far (0: just started here)
    window: int  # the window granted at the last step (0: none)

    def __init__(self, edge: int, steps: int = 0, window: int = 0) -> None:
        self.edge, self.steps, self.window = edge, steps, window


class Trail(Struct):
    """What one key's recent requests did: a forward and a backward march."""

    __slots__ = ("ahead", "behind")
    ahead: March | None
    behind: March | None

    def __init__(self, ahead: March | None = None, behind: March | None = None) -> None:
        self.ahead, self.behind = ahead, behind


def march(state: March | None, start: int, slack: int = 0) -> March:
    """The march once a fetch touching the request's edge starts at ``start``.

    (Forward: ``start`` is where the missing tail begins; backward: where the
    missing head ends.) It steps on when ``start`` is within ``slack`` of the
    edge: a fetch planned to end mid-step claims up to the next grid point (one
    step at most). The edge itself is set by :func:`moved` once the extended
    fetch is known.
    """
    if state is not None and abs(state.edge - start) <= slack:
        return March(start, state.steps + 1, state.window)
    return March(start)  # a new march: no history, no window


def grant(state: March, gap: int, run: int, cap: int) -> int:
    """The window for this step: ``0`` before :data:`THRESHOLD` steps, then growing.

    ``gap`` is the length the request itself misses at this end, ``run`` the
    covered span directly behind it (the march so far, or the data the caller
    showed interest in). Never negative, never above ``cap``.
    """
    if cap <= 0 or state.steps < THRESHOLD:
        return 0
    want = state.window * GROWTH if state.window > 0 else max(gap, run)
    return max(0, min(cap, want))


def moved(state: March, edge: int, window: int) -> March:
    """The march after its fetch: the next step must start at ``edge``."""
    return March(edge, state.steps, window)
