"""What the sync and async drivers share: flights, settling them, the answer.

A flight's completion is a ``concurrent.futures.Future``, so callers on any
thread or event loop can wait for it: each waiter relays it to its own loop.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import sys
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from .._core.entry import Entry, Part, View
from .._core.planner import Gap
from .cache import RangeCache
from .options import Request
from .trace import Trace, log

# asyncio is imported by the async path only: a plain function's call never needs it.
if TYPE_CHECKING:
    import asyncio

__all__ = ["ROUNDS", "Flight", "debug_on", "finish", "is_cancel", "reply", "resolve", "short"]

debug_on = log.isEnabledFor  # bound once: the hit path pays one call for the DEBUG line


class Flight:
    """One gap being fetched, shared by every caller that needs it."""

    __slots__ = (
        "batch",
        "before",
        "done",
        "entry",
        "gap",
        "hi",
        "lo",
        "parts",
        "provider_s",
        "rows",
        "store_s",
        "task",
        "timed",
        "waiters",
    )

    def __init__(self, gap: Gap) -> None:
        self.gap, self.lo, self.hi = gap, gap.lo, gap.hi
        self.done: cf.Future[None] = cf.Future()  # thread-safe: waiters may be on any loop
        self.task: asyncio.Task[None] | None = None
        self.batch: list[Flight] = []  # the flights started together under one lock hold
        self.waiters = 0  # changed under the cache's lock
        self.entry: Entry | None = None  # the entry after commit
        self.parts: list[Part] = []  # what the gap holds, as fetched: every caller answers with it
        self.rows = 0  # rows fetched, for the progress bar and the DEBUG line
        self.timed = False  # time the provider and the store (DEBUG on)?
        self.provider_s = self.store_s = 0.0
        self.before: tuple[tuple[int, int], ...] | None = None  # gap's missing part when planned


def _latest(mine: list[Flight]) -> Entry | None:
    latest = None
    for f in mine:
        if f.entry is not None and (latest is None or latest.version < f.entry.version):
            latest = f.entry
    return latest


def finish(cache: RangeCache, req: Request, view: View | None, mine: list[Flight]) -> Any:
    return cache.assemble(req, view, [p for f in mine for p in f.parts], _latest(mine))


def newest(cache: RangeCache, req: Request, view: View | None, mine: list[Flight]) -> View | None:
    """The view a call on a lagging store answers from once its flights are in.

    Its flights read the key's newest log under the lock. What another process
    changed outside their gaps before the call (a whole-key invalidate, a
    refresh) is in that log but not in a view read within the store's ``refresh``
    window: the rest of the answer comes from the newest log too, never old rows
    beside new. (A store whose every read is checked, MemoryStore or a local
    ParquetStore by default, keeps the call's snapshot: what changes during a
    call only affects later calls.)
    """
    if not cache.store.lags:
        return view
    latest = _latest(mine)
    return view if latest is None else latest.view(req.lo, req.hi)


#: Rounds of planning one call may take. A flight claims only what its rows
#: prove (see ``_grid``), so a caller whose flights left part of its range
#: unclaimed plans again for it; a second round is rare, a third rarer.
ROUNDS = 4


def short(cache: RangeCache, req: Request, view: View | None, mine: list[Flight]) -> bool:
    """Is part of the call's range neither in ``view`` nor in its flights' parts?"""
    claims = [(p.lo, p.hi) for f in mine for p in f.parts]
    return cache.missing(req, view.ledger if view is not None else None, claims)


def is_cancel(exc: BaseException) -> bool:
    """Is ``exc`` asyncio's cancellation? (Never, if asyncio was never imported.)"""
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(exc, aio.CancelledError)


def resolve(done: cf.Future[None], exc: BaseException | None = None) -> None:
    """Settle a flight once (one given up stays cancelled)."""
    with contextlib.suppress(cf.InvalidStateError):
        if exc is None:
            done.set_result(None)
        elif is_cancel(exc):
            done.cancel()
        else:
            done.set_exception(exc)


def reply(cache: RangeCache, req: Request, tr: Trace | None, result: Any, answer: bool) -> Any:
    """The call's answer (``None`` for a prefetch), after its DEBUG line."""
    if tr is not None:
        tr.emit(cache.namespace, req, result, answer)
    return result if answer else None


_ALL: Any = object()


# -- replacements and the fetches they overtake ---------------------------------------

#: The ticket a batched provider call took as it began, for the member piece the
#: engine's ``_fetch`` is handed next (the batch called the provider earlier).
_BEGUN: contextvars.ContextVar[int | None] = contextvars.ContextVar("rangememo_begun", default=None)


def note_begun(begun: int) -> None:
    """Say when the provider call behind the piece about to be handed over began."""
    _BEGUN.set(begun)


def began(begun: int) -> int:
    """The ticket of the piece just fetched: ``begun``, or a batch call's earlier one."""
    earlier = _BEGUN.get()
    if earlier is None:
        return begun
    _BEGUN.set(None)
    return min(begun, earlier)


def detach(
    cache: RangeCache, key: Hashable = _ALL, lo: int | None = None, hi: int | None = None
) -> None:
    """Stop sharing the flights of ``key`` (every key: ``_ALL``) that overlap ``[lo, hi)``.

    Called once a refresh, invalidate or clear is done: a call that starts after it
    must not wait for a fetch begun before it (the store drops that fetch's rows,
    and the call would answer with them). Callers already waiting keep waiting.
    """
    a = lo if lo is not None else -(2**63)
    b = hi if hi is not None else 2**63 - 1
    with cache.lock:
        keys = list(cache.inflight) if key is _ALL else [key]
        for k in keys:
            flights = cache.inflight.get(k)
            if not flights:
                continue
            kept = [f for f in flights if not (f.lo < b and a < f.hi)]
            if len(kept) != len(flights):
                cache.landings.note(k)  # planners that read before us read again
            if kept:
                flights[:] = kept
            else:
                del cache.inflight[k]
