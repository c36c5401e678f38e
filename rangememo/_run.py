"""Driving a call: the async path (tasks) and the sync path (threads).

Both follow the same steps: serve a hit; else plan gaps under the cache's
lock (registering them as in-flight so overlapping callers wait for them),
fetch the new gaps concurrently, commit each as it lands, then assemble the
answer from the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import contextvars
from typing import Any

from ._cache import RangeCache, Request
from ._entry import Entry, Fetched
from ._planner import Gap
from ._progress import progress_bar

__all__ = ["acall", "call"]


class _Flight:
    """One gap being fetched, shared by every caller that needs it."""

    __slots__ = (
        "batch",
        "claims",
        "done",
        "entry",
        "gap",
        "hi",
        "lo",
        "overlays",
        "task",
        "waiters",
    )

    def __init__(self, gap: Gap, done: Any) -> None:
        self.gap, self.lo, self.hi = gap, gap.lo, gap.hi
        self.done = done  # an asyncio.Future or a concurrent.futures.Future
        self.task: asyncio.Task[None] | None = None
        self.batch: list[_Flight] = []  # the flights started together under one lock hold
        self.waiters = 0
        self.entry: Entry | None = None  # the entry after commit
        self.overlays: list[Fetched] = []  # fetched but not stored
        self.claims: list[tuple[int, int]] = []  # what its commits claimed (live edge too)


def _newest(entry: Entry | None, mine: list[_Flight]) -> Entry | None:
    for f in mine:
        if f.entry is not None and (entry is None or entry.version < f.entry.version):
            entry = f.entry  # the store evicted or never had it: use what we committed
    return entry


def _finish(cache: RangeCache, req: Request, entry: Entry | None, mine: list[_Flight]) -> Any:
    overlays = [o for f in mine for o in f.overlays]
    return cache.assemble(req, _newest(entry, mine), overlays)


#: Rounds of planning one call may take. A flight claims only what its rows
#: prove (see ``RangeCache.fit``), so a caller that waited on others' flights
#: plans again for what they left; a second round is rare, a third rarer.
_ROUNDS = 4


def _settled(cache: RangeCache, req: Request, entry: Entry | None, mine: list[_Flight]) -> bool:
    """Is the call's range covered now (or can more rounds not help)?"""
    if any(f.overlays for f in mine):  # not stored: answered from the pieces
        return True
    entry = _newest(entry, mine)
    return entry is not None and not cache.missing(req, entry, [c for f in mine for c in f.claims])


# -- async -------------------------------------------------------------------


async def acall(
    cache: RangeCache,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    answer: bool = True,
    progress: bool | None = False,
) -> Any:
    """Run one call of an ``async def`` cached function."""
    req = cache.request(args, kwargs)
    store, ns = cache.store, cache.namespace
    entry = await store.aget(ns, req.key)
    served, result = cache.hit(req, entry)
    if served:
        return result if answer else None
    if req.lo >= req.hi:
        # An empty half-open request on a key without a schema yet: nothing to
        # cover, and only the provider knows what its empty answer looks like.
        return await cache.fn(*args, **kwargs) if answer else None
    mine: list[_Flight] = []
    for _ in range(_ROUNDS):
        mine += await _around(cache, req, entry, progress)
        entry = await store.aget(ns, req.key)
        if _settled(cache, req, entry, mine):
            break
    if not answer:
        return None
    return _finish(cache, req, entry, mine)


async def _around(
    cache: RangeCache, req: Request, entry: Entry | None, progress: bool | None
) -> list[_Flight]:
    """One round: plan, start the new flights, wait for them and the shared ones."""
    store = cache.store
    loop = asyncio.get_running_loop()
    new, waits = cache.plan(req, entry, lambda g: _Flight(g, loop.create_future()))
    sem = asyncio.Semaphore(cache.options.max_concurrency)
    bar = progress_bar(len(new), progress)
    if store.shared and len(new) > 1:
        # One hold of the key's cross-process lock for the whole batch, so its
        # gaps are fetched concurrently (each fetch re-enters the held lock).
        supervisor = loop.create_task(_abatch(cache, req, new, sem))
        supervisor.add_done_callback(_retrieve)
        for f in new:
            f.batch = new
    else:
        for f in new:
            f.task = loop.create_task(_afetch(cache, req, f, sem))
            f.task.add_done_callback(_retrieve)
    if bar is not None:
        for f in new:
            f.done.add_done_callback(lambda _f: bar.update(1))
    mine: list[_Flight] = [*new, *waits]
    for f in mine:
        f.waiters += 1
    try:
        await asyncio.gather(*(asyncio.shield(f.done) for f in mine))
    finally:
        if bar is not None:
            bar.close()
        for f in mine:
            f.waiters -= 1
        for f in mine:
            # Nobody waits for it any more: a cancelled fetch commits nothing.
            if f.waiters == 0 and f.task is not None and not f.task.done():
                f.task.cancel()
            elif f.task is None and f.batch and all(g.waiters == 0 for g in f.batch):
                for g in f.batch:  # still waiting for the lock: the supervisor skips it
                    if not g.done.done():
                        g.done.cancel()
                        cache.land(req, g)
    return mine


def _retrieve(task: asyncio.Task[None]) -> None:
    # Failures reach callers through the flight's future; this keeps asyncio
    # from logging "exception was never retrieved" for the task itself.
    if not task.cancelled():
        task.exception()


async def _abatch(
    cache: RangeCache, req: Request, flights: list[_Flight], sem: asyncio.Semaphore
) -> None:
    """Hold the key's lock while a batch of flights fetches concurrently."""
    store, ns = cache.store, cache.namespace
    try:
        async with store.alock(ns, req.key):
            for f in flights:
                if f.done.done():  # given up (and landed) while we waited for the lock
                    continue
                f.task = asyncio.create_task(_afetch(cache, req, f, sem))
                f.task.add_done_callback(_retrieve)
            started = [f.task for f in flights if f.task is not None]
            await asyncio.gather(*started, return_exceptions=True)
    except BaseException as exc:
        for f in flights:
            if f.task is None and not f.done.done():  # never started: release its waiters
                if isinstance(exc, asyncio.CancelledError):
                    f.done.cancel()
                else:
                    f.done.set_exception(exc)
                cache.land(req, f)
        raise


async def _afetch(cache: RangeCache, req: Request, flight: _Flight, sem: asyncio.Semaphore) -> None:
    store, ns = cache.store, cache.namespace
    try:
        async with sem, store.alock(ns, req.key):
            entry = await store.aget(ns, req.key)
            gaps = cache.replan(req, entry, flight.gap) if store.shared else [flight.gap]
            for gap in gaps:
                fetched = cache.skip(req, gap, entry)
                if fetched is None:
                    args, kwargs = cache.gap_call(req, gap)
                    if cache.limit is not None:
                        await cache.limit.aacquire()
                    try:
                        result = await cache.fn(*args, **kwargs)
                    except BaseException:
                        cache.stats.count(errors=1)
                        raise
                    fetched = cache.digest(req, gap, result, entry)
                try:
                    flight.entry = entry = await store.aput(ns, req.key, fetched)
                    flight.claims.append((fetched.lo, fetched.hi))
                except OSError as exc:
                    cache.commit_failed(exc, req)
                    flight.overlays.append(fetched)
    except BaseException as exc:
        if not flight.done.done():
            if isinstance(exc, asyncio.CancelledError):
                flight.done.cancel()
            else:
                flight.done.set_exception(exc)
        raise
    else:
        flight.done.set_result(None)
    finally:
        cache.land(req, flight)


# -- sync --------------------------------------------------------------------


def call(
    cache: RangeCache,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    answer: bool = True,
    progress: bool | None = False,
) -> Any:
    """Run one call of a plain cached function (never touches an event loop)."""
    req = cache.request(args, kwargs)
    store, ns = cache.store, cache.namespace
    entry = store.get(ns, req.key)
    served, result = cache.hit(req, entry)
    if served:
        return result if answer else None
    if req.lo >= req.hi:  # empty, and no schema yet: as in acall
        return cache.fn(*args, **kwargs) if answer else None
    mine: list[_Flight] = []
    for _ in range(_ROUNDS):
        mine += _round(cache, req, entry, progress)
        entry = store.get(ns, req.key)
        if _settled(cache, req, entry, mine):
            break
    if not answer:
        return None
    return _finish(cache, req, entry, mine)


def _round(
    cache: RangeCache, req: Request, entry: Entry | None, progress: bool | None
) -> list[_Flight]:
    """One round: plan, fetch the new gaps (threads), wait for the shared ones."""
    store, ns = cache.store, cache.namespace
    new, waits = cache.plan(req, entry, lambda g: _Flight(g, cf.Future()))
    bar = progress_bar(len(new), progress)
    workers = min(cache.options.max_concurrency, len(new))
    errors: list[BaseException] = []
    try:
        if workers > 1:
            # A shared store's key lock is held once for the batch; each worker
            # runs in a copy of this context, so its fetch re-enters that hold.
            hold = store.lock(ns, req.key) if store.shared else contextlib.nullcontext()
            with hold, cf.ThreadPoolExecutor(workers, thread_name_prefix="rangememo") as pool:
                done = [
                    pool.submit(contextvars.copy_context().run, _fetch, cache, req, f) for f in new
                ]
                for _ in cf.as_completed(done):
                    if bar is not None:
                        bar.update(1)
            errors = [e for e in (d.exception() for d in done) if e is not None]
        else:
            for f in new:
                if errors:  # stop at the first failure; release the rest
                    _fail(cache, req, f, errors[0])
                    continue
                try:
                    _fetch(cache, req, f)
                except BaseException as exc:
                    errors.append(exc)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if errors:
        raise errors[0]
    for f in waits:
        f.done.result()  # re-raises the provider's error for waiters too
    return [*new, *waits]


def _fail(cache: RangeCache, req: Request, flight: _Flight, exc: BaseException) -> None:
    flight.done.set_exception(exc)
    cache.land(req, flight)


def _fetch(cache: RangeCache, req: Request, flight: _Flight) -> None:
    store, ns = cache.store, cache.namespace
    try:
        with store.lock(ns, req.key):
            entry = store.get(ns, req.key)
            gaps = cache.replan(req, entry, flight.gap) if store.shared else [flight.gap]
            for gap in gaps:
                fetched = cache.skip(req, gap, entry)
                if fetched is None:
                    args, kwargs = cache.gap_call(req, gap)
                    if cache.limit is not None:
                        cache.limit.acquire()
                    try:
                        result = cache.fn(*args, **kwargs)
                    except BaseException:
                        cache.stats.count(errors=1)
                        raise
                    fetched = cache.digest(req, gap, result, entry)
                try:
                    flight.entry = entry = store.put(ns, req.key, fetched)
                    flight.claims.append((fetched.lo, fetched.hi))
                except OSError as exc:
                    cache.commit_failed(exc, req)
                    flight.overlays.append(fetched)
    except BaseException as exc:
        flight.done.set_exception(exc)
        raise
    else:
        flight.done.set_result(None)
    finally:
        cache.land(req, flight)
