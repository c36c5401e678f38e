"""Batched calls: one provider call for every member that misses the same range.

A function decorated with ``batch="symbols", by="symbol"`` takes a list of
members; each member is its own series (keyed by the member in place of the
list, plus the other key arguments), stored and planned by the ordinary
single-key machinery of ``cache``. A call runs in three steps:

1. **plan**: read each member's entry; a covered member is answered at once,
   the others have their gaps planned exactly as their own call would plan
   them (the same planner, policy and grid fitting);
2. **fetch**: one provider call per distinct gap, for the members missing it
   (at most ``max_batch`` a call), each answer split by ``by`` into pieces;
3. **commit and answer**: each member with gaps runs its own cached call,
   whose provider is :meth:`Batcher.member`: it hands over the piece fetched
   for exactly that gap. So a member's commit, its live edge, its single
   flight and its answer are those of an unbatched call; a gap nobody fetched
   in step 2 (the state changed between the steps) is fetched for that member
   alone, never served wrong.

The pieces wait in one table keyed by ``(member key, start, end)``, shared by
threads (a sync call's gap fetches run in a pool) and taken once.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._core.entry import ticket
from .._core.grid import fit
from .._core.members import members_of, split
from .._core.planner import plan_gaps
from .._errors import CacheWarning, InvalidOption
from .._warn import warn
from .cache import RangeCache
from .flights import note_begun
from .member_locks import MemberLocks
from .options import Request

if TYPE_CHECKING:
    from .policy import RateLimit

__all__ = ["Batcher"]

log = logging.getLogger("rangememo")

_MISSING: Any = object()
Call = tuple[tuple[Any, Any], list[Hashable]]  # ((start, end), members)


class Batcher:
    """The batching state of one decorated function (its ``cache`` is per member)."""

    def __init__(
        self, cache: RangeCache, batch: str, by: str, max_batch: int | None, is_async: bool
    ) -> None:
        binder = cache.binder
        if batch not in binder.signature.parameters or batch in (binder.start, binder.end):
            raise InvalidOption(
                f"batch={batch!r} is not a parameter of {cache.name}{binder.signature} "
                "(other than the range); pass batch= naming the argument holding the members"
            )
        if binder.key_fn is None and batch not in binder.key_names:
            raise InvalidOption(
                f"key={binder.key_names!r} leaves out batch={batch!r}: every member would share "
                "one series; add it to key="
            )
        if not isinstance(by, str) or not by:
            raise InvalidOption(f"by={by!r}: name the column or index level holding the member")
        if max_batch is not None and (
            isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1
        ):
            raise InvalidOption(f"max_batch={max_batch!r}: pass a positive int, or None")
        self.cache, self.batch, self.by, self.max_batch = cache, batch, by, max_batch
        self.provider = cache.fn
        # The limit applies to real provider calls: a member's cached call that
        # takes a piece fetched for many members must not spend a slot.
        self.limit: RateLimit | None = cache.limit
        cache.limit = None
        self.pieces: dict[tuple[Hashable, Any, Any], Any] = {}
        self.lock = threading.Lock()
        # The dtype of the member level of the last MultiIndex answer: a stored
        # piece drops the level, and the answer rebuilds it from the members.
        self.level_dtype: Any = None
        locks = MemberLocks()  # concurrent batched calls fetch a member's range once
        self.hold, self.ahold = locks.hold, locks.ahold
        cache.fn = self._amember if is_async else self._member

    # -- binding ---------------------------------------------------------------
    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, list[Hashable]]:
        bound = self.cache.binder.bind(args, kwargs)
        return bound, members_of(self.batch, bound.arguments[self.batch])

    def with_members(
        self, bound: Any, members: Any, start: Any = _MISSING, end: Any = _MISSING
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` of the call with ``members`` (and the range) in place."""
        binder = self.cache.binder
        arguments = dict(bound.arguments)
        arguments[self.batch] = members
        if start is not _MISSING:
            arguments[binder.start], arguments[binder.end] = start, end
        new = inspect.BoundArguments(binder.signature, arguments)  # type: ignore[arg-type,unused-ignore]
        return new.args, new.kwargs

    # -- step 1: plan ------------------------------------------------------------
    def plan(self, req: Request, entry: Any) -> tuple[bool, Any, tuple[tuple[Any, Any], ...]]:
        """``(served, answer, gaps)`` of one member: its answer if covered, else its gaps."""
        cache = self.cache
        view = cache.view(req, entry)
        served, result = cache.hit(req, view)
        if served:
            return True, result, ()
        if req.lo >= req.hi:
            return False, None, ()
        ledger = view.ledger if view is not None else None
        now = cache.now() if ledger is not None and ledger.provisional else 0.0
        policy = cache.policy(req)
        with cache.lock:  # a copy: the gaps other calls are fetching are theirs
            flights = list(cache.inflight.get(req.key, ()))
            # Read, not kept: the member's own call (step 3) plans with the same
            # trail, so it finds these very gaps, and steps the march itself.
            trail = cache.readahead.trail(req.key) if policy.auto is not None else None
        gaps = plan_gaps(req.lo, req.hi, ledger, flights, now, policy, trail).gaps
        out = []
        for g in gaps:
            fitted = fit(req.axis, req.rows_hi, g, view, flights)
            if fitted is not None and fitted.needs_call:
                out.append(cache.call_bounds(req, fitted))
        return False, None, tuple(out)

    def calls(self, plans: dict[Hashable, tuple[Any, ...]]) -> list[Call]:
        """One call per distinct gap, for the members missing it, ``max_batch`` at most."""
        by_gap: dict[tuple[Any, Any], list[Hashable]] = {}
        for member, gaps in plans.items():
            for gap in gaps:
                by_gap.setdefault(gap, []).append(member)
        size = self.max_batch
        out: list[Call] = []
        for gap, members in by_gap.items():
            step = size or len(members)
            out.extend((gap, members[i : i + step]) for i in range(0, len(members), step))
        return out

    # -- step 2: fetch -----------------------------------------------------------
    def keep(
        self, keys: dict[Hashable, Hashable], call: Call, result: Any, begun: int
    ) -> list[tuple[Any, ...]]:
        """Split one answer into the table; return the table keys it added."""
        (start, end), members = call
        pieces, strangers = split(result, self.by, members)
        self.note_level(result)
        if strangers:
            warn(
                CacheWarning(
                    f"{self.cache.name} answered rows for members not asked for "
                    f"({strangers[:5]!r}{' ...' if len(strangers) > 5 else ''}) when asked for "
                    f"{members[:5]!r}: they are dropped (a member is matched by equality "
                    f"with its {self.by!r} values)"
                )
            )
        added = []
        with self.lock:
            for member, piece in pieces.items():
                slot = (keys[member], start, end)
                self.pieces[slot] = (piece, begun)  # begun: see flights.note_begun
                added.append(slot)
        return added

    def note_level(self, result: Any) -> None:
        index = getattr(result, "index", None)
        if isinstance(index, pd.MultiIndex) and index.names[0] == self.by:
            self.level_dtype = index.levels[0].dtype

    def drop(self, slots: list[tuple[Any, ...]]) -> None:
        """Forget pieces nobody took (a plan changed between the steps)."""
        with self.lock:
            for slot in slots:
                self.pieces.pop(slot, None)

    def fetch(
        self, bound: Any, keys: dict[Hashable, Hashable], calls: list[Call]
    ) -> tuple[list[Any], list[tuple[Call, BaseException]]]:
        """Run ``calls`` (threads when there are several); ``(slots, errors)``."""

        def one(call: Call) -> list[Any]:
            (start, end), members = call
            args, kwargs = self.with_members(bound, list(members), start, end)
            begun = ticket()
            result = self._call(args, kwargs)
            return self.keep(keys, call, result, begun)

        slots: list[Any] = []
        errors: list[tuple[Call, BaseException]] = []
        workers = min(self.cache.options.max_concurrency, len(calls))
        if workers <= 1:
            outcomes = [_outcome(one, c) for c in calls]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="rangememo-batch") as pool:
                outcomes = list(pool.map(lambda c: _outcome(one, c), calls))
        for call, (added, exc) in zip(calls, outcomes, strict=True):
            slots += added
            if exc is not None:
                errors.append((call, exc))
        return slots, errors

    async def afetch(
        self, bound: Any, keys: dict[Hashable, Hashable], calls: list[Call]
    ) -> tuple[list[Any], list[tuple[Call, BaseException]]]:
        import asyncio

        sem = asyncio.Semaphore(self.cache.options.max_concurrency)

        async def one(call: Call) -> list[Any]:
            (start, end), members = call
            args, kwargs = self.with_members(bound, list(members), start, end)
            async with sem:
                begun = ticket()
                result = await self._acall(args, kwargs)
            return self.keep(keys, call, result, begun)

        done = await asyncio.gather(*(one(c) for c in calls), return_exceptions=True)
        slots: list[Any] = []
        errors: list[tuple[Call, BaseException]] = []
        for call, d in zip(calls, done, strict=True):
            if isinstance(d, BaseException):
                errors.append((call, d))
            else:
                slots += d
        return slots, errors

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.limit is not None:
            self.limit.acquire()
        self.cache.stats.count(calls=1)
        try:
            return self.provider(*args, **kwargs)
        except BaseException:
            self.cache.stats.count(errors=1)
            raise

    async def _acall(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.limit is not None:
            await self.limit.aacquire()
        self.cache.stats.count(calls=1)
        try:
            return await self.provider(*args, **kwargs)
        except BaseException:
            self.cache.stats.count(errors=1)
            raise

    # -- step 3: the member's provider ----------------------------------------------
    def _take(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        binder = self.cache.binder
        bound = binder.bind(args, kwargs)
        a = bound.arguments
        slot = (binder.key(a), a[binder.start], a[binder.end])
        with self.lock:
            kept = self.pieces.pop(slot, _MISSING)
        if kept is _MISSING:
            return bound, kept
        # The engine counted a provider call for this gap; the batch call did.
        self.cache.stats.count(calls=-1)
        piece, begun = kept
        note_begun(begun)  # the engine's ticket is later than the batch call's
        return bound, piece

    def _member(self, *args: Any, **kwargs: Any) -> Any:
        bound, piece = self._take(args, kwargs)
        if piece is not _MISSING:
            return piece
        member = bound.arguments[self.batch]
        log.debug("batch: %r fetched alone (not planned with its batch)", member)
        margs, mkwargs = self.with_members(bound, [member])
        if self.limit is not None:
            self.limit.acquire()
        result = self.provider(*margs, **mkwargs)  # the engine counted this call
        self.note_level(result)
        return split(result, self.by, [member])[0][member]

    async def _amember(self, *args: Any, **kwargs: Any) -> Any:
        bound, piece = self._take(args, kwargs)
        if piece is not _MISSING:
            return piece
        member = bound.arguments[self.batch]
        log.debug("batch: %r fetched alone (not planned with its batch)", member)
        margs, mkwargs = self.with_members(bound, [member])
        if self.limit is not None:
            await self.limit.aacquire()
        result = await self.provider(*margs, **mkwargs)
        self.note_level(result)
        return split(result, self.by, [member])[0][member]


def _outcome(fn: Callable[[Call], list[Any]], call: Call) -> tuple[list[Any], BaseException | None]:
    try:
        return fn(call), None
    except Exception as exc:  # reported after the other calls are kept
        return [], exc
