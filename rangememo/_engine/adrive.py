"""Driving a call of an ``async def`` cached function: tasks on the caller's loop.

The steps are the sync path's (see :mod:`.drive`): serve a hit from a view;
else plan gaps under the cache's lock, fetch the new ones as tasks (a shared
store's key lock held in a worker thread), commit each as it lands, answer
from the view plus the fetched pieces. A flight's completion is a
``concurrent.futures.Future``, so a waiter on another thread or event loop
relays it to its own loop.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any

from .._core.entry import Part, View, ticket
from .cache import RangeCache
from .control import stale
from .flights import ROUNDS, Flight, began, debug_on, finish, newest, reply, resolve, short
from .options import Request
from .progress import Progress, progress_bar
from .trace import Trace, clock

# asyncio is imported inside the functions: a plain function's call never needs it
# (``import rangememo`` does not load it).
if TYPE_CHECKING:
    import asyncio

__all__ = ["acall"]


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
    mine: list[Flight] = []
    rounds = 0
    tr = Trace() if debug_on(logging.DEBUG) else None  # asked once per call
    while True:
        seen = cache.landings.stamp()  # before the read: see _cache.RangeCache.plan
        t0 = clock() if tr is not None else 0.0
        entry = await store.aget(ns, req.key)
        if tr is not None:
            tr.store_s += clock() - t0
        view = cache.view(req, entry)
        served, result = cache.hit(req, view)
        if served:
            if tr is None:  # the hot path: one test more than before
                return result if answer else None
            return reply(cache, req, tr, result, answer)
        if req.lo >= req.hi:
            # An empty half-open request on a key without a schema yet: nothing to
            # cover, and only the provider knows what its empty answer looks like.
            return await cache.fn(*args, **kwargs) if answer else None
        try:
            flown = await _afly(cache, req, view, progress, seen, tr)
        except Exception as exc:  # stale_if_error: serve the stored live edge, or re-raise
            served, result = stale(cache, req, view, exc)
            if not served:
                raise
            return result if answer else None
        if flown is None:
            # A flight landed after our read, or one we waited for was given
            # up (its loop ended): read and plan afresh.
            continue
        mine += flown
        rounds += 1
        fresh = newest(cache, req, view, mine)
        if not short(cache, req, fresh, mine):
            view = fresh
            break
        if rounds >= ROUNDS:
            break  # the snapshot the call began from is the answer, as before
    if cache.readahead.unused:
        cache.used(req)  # rows another call fetched ahead, which this one waited for
    return reply(cache, req, tr, finish(cache, req, view, mine) if answer else None, answer)


def _advance(bar: Progress, flight: Flight, done: cf.Future[None]) -> None:
    if not done.cancelled() and done.exception() is None:
        bar.advance(flight.lo, flight.hi, flight.rows)


async def _afly(
    cache: RangeCache,
    req: Request,
    view: View | None,
    progress: bool | None,
    seen: int,
    tr: Trace | None,
) -> list[Flight] | None:
    """Fetch the gaps and wait for the flights of ``req``; ``None``: read again."""
    import asyncio

    loop = asyncio.get_running_loop()
    planned = cache.plan(req, view, Flight, seen)
    if planned is None:
        return None
    new, waits = planned
    shared = cache.store.shared
    for f in new:
        f.timed = tr is not None
        if shared:  # what replan under the lock compares with (see RangeCache.replan)
            f.before = cache.missing_in(view, f.gap)
    sem = asyncio.Semaphore(cache.options.max_concurrency)
    bar = progress_bar(new, req.axis, progress)
    if cache.store.shared and len(new) > 1:
        # One hold of the key's cross-process lock for the whole batch, so its
        # gaps are fetched concurrently (each fetch re-enters the held lock).
        supervisor = loop.create_task(_abatch(cache, req, new, sem))
        supervisor.add_done_callback(functools.partial(_batch_ended, cache, req, new))
        for f in new:
            f.batch = new
    else:
        for f in new:
            f.task = _start(cache, req, f, sem)
    if bar is not None:
        for f in new:
            f.done.add_done_callback(functools.partial(_advance, bar, f))
    mine: list[Flight] = [*new, *waits]
    with cache.lock:
        for f in mine:
            f.waiters += 1
    try:
        settled = await asyncio.gather(*(_wait(f.done) for f in mine))
    finally:
        if bar is not None:
            bar.close()
        with cache.lock:
            for f in mine:
                f.waiters -= 1
            idle = {id(f) for f in mine if f.waiters == 0}
            idle_batch = {id(f) for f in mine if f.batch and all(id(g) in idle for g in f.batch)}
        for f in mine:
            # Nobody waits for it any more: a cancelled fetch commits nothing.
            if id(f) in idle and f.task is not None and not f.task.done():
                _cancel(f.task)
            elif f.task is None and id(f) in idle_batch:
                for g in f.batch:  # still waiting for the lock: the supervisor skips it
                    if g.done.cancel():
                        cache.land(req, g)
    if tr is not None:
        tr.flights(new, waits)
    return mine if all(settled) else None


async def _wait(done: cf.Future[None]) -> bool:
    """Wait on this loop for a flight of any loop: False if it was given up, else its outcome."""
    if not done.done():
        import asyncio

        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def relay(_: cf.Future[None]) -> None:
            with contextlib.suppress(RuntimeError):  # our loop is closed: nobody waits
                loop.call_soon_threadsafe(_wake, waiter)

        done.add_done_callback(relay)
        await waiter  # cancelling us leaves the flight alone
    if done.cancelled():
        return False
    done.result()  # the provider's error, for every caller that needed the gap
    return True


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel a task of whichever loop runs it."""
    import asyncio

    loop = task.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running:
        task.cancel()
    else:
        with contextlib.suppress(RuntimeError):  # its loop is closed: the task is over
            loop.call_soon_threadsafe(task.cancel)


def _retrieve(task: asyncio.Task[None]) -> None:
    # Failures reach callers through the flight's future; this keeps asyncio
    # from logging "exception was never retrieved" for the task itself.
    if not task.cancelled():
        task.exception()


def _start(
    cache: RangeCache, req: Request, flight: Flight, sem: asyncio.Semaphore
) -> asyncio.Task[None]:
    import asyncio

    task = asyncio.get_running_loop().create_task(_afetch(cache, req, flight, sem))
    task.add_done_callback(functools.partial(_ended, cache, req, flight))
    return task


def _ended(cache: RangeCache, req: Request, flight: Flight, task: asyncio.Task[None]) -> None:
    """A fetch task is over. One cancelled before it ran (its loop ended) never
    settled its flight: give the flight up, so that its waiters plan afresh."""
    _retrieve(task)
    if not flight.done.done():
        flight.done.cancel()
        cache.land(req, flight)


def _batch_ended(
    cache: RangeCache, req: Request, flights: list[Flight], task: asyncio.Task[None]
) -> None:
    """The supervisor is over; if it never ran (its loop ended), give up its flights."""
    _retrieve(task)
    for f in flights:
        if f.task is None and f.done.cancel():
            cache.land(req, f)


async def _abatch(
    cache: RangeCache, req: Request, flights: list[Flight], sem: asyncio.Semaphore
) -> None:
    """Hold the key's lock while a batch of flights fetches concurrently."""
    store, ns = cache.store, cache.namespace
    try:
        async with store.alock(ns, req.key):
            for f in flights:
                if f.done.done():  # given up (and landed) while we waited for the lock
                    continue
                f.task = _start(cache, req, f, sem)
            started = [f.task for f in flights if f.task is not None]
            await _gather(started)
    except BaseException as exc:
        for f in flights:
            if f.task is None and not f.done.done():  # never started: release its waiters
                resolve(f.done, exc)
                cache.land(req, f)
        raise


async def _gather(tasks: list[asyncio.Task[None]]) -> None:
    import asyncio

    await asyncio.gather(*tasks, return_exceptions=True)


async def _afetch(cache: RangeCache, req: Request, flight: Flight, sem: asyncio.Semaphore) -> None:
    store, ns = cache.store, cache.namespace
    try:
        async with sem, store.alock(ns, req.key):
            t0 = clock() if flight.timed else 0.0
            entry = await store.aget(ns, req.key)
            if flight.timed:
                flight.store_s += clock() - t0
            gaps = [flight.gap]
            if store.shared:
                gaps, flight.parts[:0] = cache.replan(req, entry, flight.gap, flight.before)
            for gap in gaps:
                fetched = cache.skip(req, gap, entry)
                if fetched is None:
                    args, kwargs = cache.gap_call(req, gap)
                    if cache.limit is not None:
                        await cache.limit.aacquire()
                    t0 = clock() if flight.timed else 0.0
                    started = cache.options.clock()  # what is final: as of the call's start
                    begun = ticket()  # older than any refresh or invalidate after this
                    try:
                        result = await cache.fn(*args, **kwargs)
                    except BaseException:
                        cache.stats.count(errors=1)
                        raise
                    if flight.timed:
                        flight.provider_s += clock() - t0
                    fetched = cache.digest(req, gap, result, entry, started)
                    fetched.begun = began(begun)
                flight.rows += len(fetched.chunk)
                t0 = clock() if flight.timed else 0.0
                try:
                    flight.entry = entry = await store.aput(ns, req.key, fetched)
                except OSError as exc:
                    cache.commit_failed(exc, req)
                if flight.timed:
                    flight.store_s += clock() - t0
                flight.parts.append(Part.fetched(fetched.lo, fetched.hi, fetched))
    except BaseException as exc:
        resolve(flight.done, exc)
        raise
    else:
        resolve(flight.done)
    finally:
        cache.land(req, flight)
