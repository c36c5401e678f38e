"""Driving a call of a plain cached function: threads, never an event loop.

Take a view of the key and serve a hit from it; else plan gaps under the
cache's lock (registering them as in-flight so overlapping callers wait for
them), fetch the new gaps concurrently, commit each as it lands, then answer
from the view plus the fetched pieces. :mod:`.adrive` is the async path.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import logging
from typing import Any

from .._core.entry import Part, View, ticket
from .cache import RangeCache
from .control import stale
from .flights import ROUNDS, Flight, began, debug_on, finish, newest, reply, resolve, short
from .options import Request
from .progress import progress_bar
from .trace import Trace, clock

__all__ = ["call"]


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
    mine: list[Flight] = []
    rounds = 0
    tr = Trace() if debug_on(logging.DEBUG) else None  # asked once per call
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
            return reply(cache, req, tr, result, answer)
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
        fresh = newest(cache, req, view, mine)
        if not short(cache, req, fresh, mine):
            view = fresh
            break
        if rounds >= ROUNDS:
            break  # the snapshot the call began from is the answer, as before
    if cache.readahead.unused:
        cache.used(req)  # rows another call fetched ahead, which this one waited for
    return reply(cache, req, tr, finish(cache, req, view, mine) if answer else None, answer)


def _round(
    cache: RangeCache,
    req: Request,
    view: View | None,
    progress: bool | None,
    seen: int,
    tr: Trace | None,
) -> list[Flight] | None:
    """One round: plan, fetch the new gaps (threads), wait for the shared ones."""
    store, ns = cache.store, cache.namespace
    planned = cache.plan(req, view, Flight, seen)
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


def _fail(cache: RangeCache, req: Request, flight: Flight, exc: BaseException) -> None:
    resolve(flight.done, exc)
    cache.land(req, flight)


def _fetch(cache: RangeCache, req: Request, flight: Flight) -> None:
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
                    started = cache.options.clock()  # what is final: as of the call's start
                    begun = ticket()  # older than any refresh or invalidate after this
                    try:
                        result = cache.fn(*args, **kwargs)
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
                    flight.entry = entry = store.put(ns, req.key, fetched)
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
