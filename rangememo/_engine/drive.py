"""Driving a call: the async path (tasks) and the sync path (threads).

Both follow the same steps: take a view of the key and serve a hit from it;
else plan gaps under the cache's lock (registering them as in-flight so
overlapping callers wait for them), fetch the new gaps concurrently, commit
each as it lands, then answer from the view plus the fetched pieces.

A flight's completion is a ``concurrent.futures.Future``, so callers on any
thread or event loop can wait for it: each waiter relays it to its own loop.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import functools
import logging
import sys
from typing import TYPE_CHECKING, Any

from .._core.entry import Entry, Part, View
from .._core.planner import Gap
from .cache import RangeCache, Request
from .control import stale
from .progress import Progress, progress_bar
from .trace import Trace, clock, log

# asyncio is imported by the async path only: a plain function's call never needs it.
if TYPE_CHECKING:
    import asyncio

__all__ = ["acall", "call"]

_debug = log.isEnabledFor  # bound once: the hit path pays one call for the DEBUG line


class _Flight:
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
        self.batch: list[_Flight] = []  # the flights started together under one lock hold
        self.waiters = 0  # changed under the cache's lock
        self.entry: Entry | None = None  # the entry after commit
        self.parts: list[Part] = []  # what the gap holds, as fetched: every caller answers with it
        self.rows = 0  # rows fetched, for the progress bar and the DEBUG line
        self.timed = False  # time the provider and the store (DEBUG on)?
        self.provider_s = self.store_s = 0.0
        self.before: tuple[tuple[int, int], ...] | None = None  # gap's missing part when planned


def _finish(cache: RangeCache, req: Request, view: View | None, mine: list[_Flight]) -> Any:
    latest = None
    for f in mine:
        if f.entry is not None and (latest is None or latest.version < f.entry.version):
            latest = f.entry
    return cache.assemble(req, view, [p for f in mine for p in f.parts], latest)


#: Rounds of planning one call may take. A flight claims only what its rows
#: prove (see ``_grid``), so a caller whose flights left part of its range
#: unclaimed plans again for it; a second round is rare, a third rarer.
_ROUNDS = 4


def _short(cache: RangeCache, req: Request, view: View | None, mine: list[_Flight]) -> bool:
    """Is part of the call's range neither in ``view`` nor in its flights' parts?"""
    claims = [(p.lo, p.hi) for f in mine for p in f.parts]
    return cache.missing(req, view.ledger if view is not None else None, claims)


def _is_cancel(exc: BaseException) -> bool:
    """Is ``exc`` asyncio's cancellation? (Never, if asyncio was never imported.)"""
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(exc, aio.CancelledError)


def _resolve(done: cf.Future[None], exc: BaseException | None = None) -> None:
    """Settle a flight once (one given up stays cancelled)."""
    with contextlib.suppress(cf.InvalidStateError):
        if exc is None:
            done.set_result(None)
        elif _is_cancel(exc):
            done.cancel()
        else:
            done.set_exception(exc)


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
    mine: list[_Flight] = []
    rounds = 0
    tr = Trace() if _debug(logging.DEBUG) else None  # asked once per call
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
            return _done(cache, req, tr, result, answer)
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
        if rounds >= _ROUNDS or not _short(cache, req, view, mine):
            break
    if cache.readahead.unused:
        cache.used(req)  # rows another call fetched ahead, which this one waited for
    return _done(cache, req, tr, _finish(cache, req, view, mine) if answer else None, answer)


def _done(cache: RangeCache, req: Request, tr: Trace | None, result: Any, answer: bool) -> Any:
    """The call's answer (``None`` for a prefetch), after its DEBUG line."""
    if tr is not None:
        tr.emit(cache.namespace, req, result, answer)
    return result if answer else None


def _advance(bar: Progress, flight: _Flight, done: cf.Future[None]) -> None:
    if not done.cancelled() and done.exception() is None:
        bar.advance(flight.lo, flight.hi, flight.rows)


async def _afly(
    cache: RangeCache,
    req: Request,
    view: View | None,
    progress: bool | None,
    seen: int,
    tr: Trace | None,
) -> list[_Flight] | None:
    """Fetch the gaps and wait for the flights of ``req``; ``None``: read again."""
    import asyncio

    loop = asyncio.get_running_loop()
    planned = cache.plan(req, view, _Flight, seen)
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
    mine: list[_Flight] = [*new, *waits]
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
    cache: RangeCache, req: Request, flight: _Flight, sem: asyncio.Semaphore
) -> asyncio.Task[None]:
    import asyncio

    task = asyncio.get_running_loop().create_task(_afetch(cache, req, flight, sem))
    task.add_done_callback(functools.partial(_ended, cache, req, flight))
    return task


def _ended(cache: RangeCache, req: Request, flight: _Flight, task: asyncio.Task[None]) -> None:
    """A fetch task is over. One cancelled before it ran (its loop ended) never
    settled its flight: give the flight up, so that its waiters plan afresh."""
    _retrieve(task)
    if not flight.done.done():
        flight.done.cancel()
        cache.land(req, flight)


def _batch_ended(
    cache: RangeCache, req: Request, flights: list[_Flight], task: asyncio.Task[None]
) -> None:
    """The supervisor is over; if it never ran (its loop ended), give up its flights."""
    _retrieve(task)
    for f in flights:
        if f.task is None and f.done.cancel():
            cache.land(req, f)


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
                f.task = _start(cache, req, f, sem)
            started = [f.task for f in flights if f.task is not None]
            await _gather(started)
    except BaseException as exc:
        for f in flights:
            if f.task is None and not f.done.done():  # never started: release its waiters
                _resolve(f.done, exc)
                cache.land(req, f)
        raise


async def _gather(tasks: list[asyncio.Task[None]]) -> None:
    import asyncio

    await asyncio.gather(*tasks, return_exceptions=True)


async def _afetch(cache: RangeCache, req: Request, flight: _Flight, sem: asyncio.Semaphore) -> None:
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
                    try:
                        result = await cache.fn(*args, **kwargs)
                    except BaseException:
                        cache.stats.count(errors=1)
                        raise
                    if flight.timed:
                        flight.provider_s += clock() - t0
                    fetched = cache.digest(req, gap, result, entry)
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
        _resolve(flight.done, exc)
        raise
    else:
        _resolve(flight.done)
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
    mine: list[_Flight] = []
    rounds = 0
    tr = Trace() if _debug(logging.DEBUG) else None  # asked once per call
    while True:
        seen = cache.landings.stamp()  # before the read: see _cache.RangeCache.plan
        t0 = clock() if tr is not None else 0.0
        entry = store.get(ns, req.key)
        if tr is not None:
            tr.store_s += clock() - t0
        view = cache.view(req, entry)
        served, result = cache.hit(req, view)
        if served:
            if tr is None:  # the hot path: one test more than before
                return result if answer else None
            return _done(cache, req, tr, result, answer)
        if req.lo >= req.hi:  # empty, and no schema yet: as in acall
            return cache.fn(*args, **kwargs) if answer else None
        try:
            flown = _round(cache, req, view, progress, seen, tr)
        except Exception as exc:  # stale_if_error: as in acall
            served, result = stale(cache, req, view, exc)
            if not served:
                raise
            return result if answer else None
        if flown is None:
            continue  # a flight landed after our read: read and plan afresh
        mine += flown
        rounds += 1
        if rounds >= _ROUNDS or not _short(cache, req, view, mine):
            break
    if cache.readahead.unused:
        cache.used(req)  # rows another call fetched ahead, which this one waited for
    return _done(cache, req, tr, _finish(cache, req, view, mine) if answer else None, answer)


def _round(
    cache: RangeCache,
    req: Request,
    view: View | None,
    progress: bool | None,
    seen: int,
    tr: Trace | None,
) -> list[_Flight] | None:
    """One round: plan, fetch the new gaps (threads), wait for the shared ones."""
    store, ns = cache.store, cache.namespace
    planned = cache.plan(req, view, _Flight, seen)
    if planned is None:
        return None
    new, waits = planned
    shared = cache.store.shared
    for f in new:
        f.timed = tr is not None
        if shared:  # what replan under the lock compares with (see RangeCache.replan)
            f.before = cache.missing_in(view, f.gap)
    bar = progress_bar(new, req.axis, progress)
    workers = min(cache.options.max_concurrency, len(new))
    errors: list[BaseException] = []
    try:
        if workers > 1:
            # A shared store's key lock is held once for the batch; each worker
            # runs in a copy of this context, so its fetch re-enters that hold.
            hold = store.lock(ns, req.key) if store.shared else contextlib.nullcontext()
            with hold, cf.ThreadPoolExecutor(workers, thread_name_prefix="rangememo") as pool:
                done = {
                    pool.submit(contextvars.copy_context().run, _fetch, cache, req, f): f
                    for f in new
                }
                for d in cf.as_completed(done):
                    if bar is not None and d.exception() is None:
                        bar.advance(done[d].lo, done[d].hi, done[d].rows)
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
                else:
                    if bar is not None:
                        bar.advance(f.lo, f.hi, f.rows)
    finally:
        if bar is not None:
            bar.close()
    if errors:
        raise errors[0]
    for f in waits:
        f.done.result()  # re-raises the provider's error for waiters too
    if tr is not None:
        tr.flights(new, waits)
    return [*new, *waits]


def _fail(cache: RangeCache, req: Request, flight: _Flight, exc: BaseException) -> None:
    _resolve(flight.done, exc)
    cache.land(req, flight)


def _fetch(cache: RangeCache, req: Request, flight: _Flight) -> None:
    store, ns = cache.store, cache.namespace
    try:
        with store.lock(ns, req.key):
            t0 = clock() if flight.timed else 0.0
            entry = store.get(ns, req.key)
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
                        cache.limit.acquire()
                    t0 = clock() if flight.timed else 0.0
                    try:
                        result = cache.fn(*args, **kwargs)
                    except BaseException:
                        cache.stats.count(errors=1)
                        raise
                    if flight.timed:
                        flight.provider_s += clock() - t0
                    fetched = cache.digest(req, gap, result, entry)
                flight.rows += len(fetched.chunk)
                t0 = clock() if flight.timed else 0.0
                try:
                    flight.entry = entry = store.put(ns, req.key, fetched)
                except OSError as exc:
                    cache.commit_failed(exc, req)
                if flight.timed:
                    flight.store_s += clock() - t0
                flight.parts.append(Part.fetched(fetched.lo, fetched.hi, fetched))
    except BaseException as exc:
        _resolve(flight.done, exc)
        raise
    else:
        _resolve(flight.done)
    finally:
        cache.land(req, flight)
