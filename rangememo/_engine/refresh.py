"""``.refresh``: fetch a call's whole range again and replace what is stored there.

Every piece is fetched before anything is written, under the key's lock, so
a provider failure leaves the old rows in place and covered. The pieces are
then joined into one commit, so a reader sees the old rows or the new ones,
never half of each.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .._core.entry import Entry, Fetched, Part, ticket
from .._core.planner import Gap, plan_gaps
from .._core.rows import Chunk
from .cache import RangeCache
from .flights import began, detach
from .options import Request

__all__ = [
    "afetch_whole",
    "arefresh_call",
    "fetch_whole",
    "joined",
    "refresh_call",
    "whole_gaps",
]


def whole_gaps(cache: RangeCache, req: Request) -> list[Gap]:
    # The whole range, split as max_span/calendar would split any fetch, never extended.
    return list(plan_gaps(req.lo, req.hi, None, (), 0.0, cache.policy(req, False)).gaps)


def fetch_whole(cache: RangeCache, req: Request, entry: Entry | None) -> list[Fetched]:
    """Every piece of ``req``'s whole range, fetched (nothing written)."""
    fetched = []
    for gap in whole_gaps(cache, req):
        pending = cache.skip(req, gap, entry)
        if pending is None:
            call_args, call_kwargs = cache.gap_call(req, gap)
            if cache.limit is not None:
                cache.limit.acquire()
            started = cache.options.clock()
            begun = ticket()  # a later refresh or invalidate wins over this one
            try:
                result = cache.fn(*call_args, **call_kwargs)
            except BaseException:
                cache.stats.count(errors=1)
                raise
            pending = cache.digest(req, gap, result, entry, started)
            pending.begun = began(begun)
        fetched.append(pending)
    return fetched


async def afetch_whole(cache: RangeCache, req: Request, entry: Entry | None) -> list[Fetched]:
    """:func:`fetch_whole` for an ``async def`` function."""
    fetched = []
    for gap in whole_gaps(cache, req):
        pending = cache.skip(req, gap, entry)
        if pending is None:
            call_args, call_kwargs = cache.gap_call(req, gap)
            if cache.limit is not None:
                await cache.limit.aacquire()
            started = cache.options.clock()
            begun = ticket()  # a later refresh or invalidate wins over this one
            try:
                result = await cache.fn(*call_args, **call_kwargs)
            except BaseException:
                cache.stats.count(errors=1)
                raise
            pending = cache.digest(req, gap, result, entry, started)
            pending.begun = began(begun)
        fetched.append(pending)
    return fetched


def joined(pieces: list[Fetched]) -> list[Fetched]:
    """``pieces`` as one commit, when they can be one (else as they are).

    They can when they are contiguous and share one result kind and schema;
    a schema that changes between pieces is left to the store, piece by
    piece, which widens it as any fetch would.
    """
    if len(pieces) < 2:
        return pieces
    pieces = sorted(pieces, key=lambda f: f.lo)
    first = pieces[0]
    adapter = first.adapter
    for before, after in itertools.pairwise(pieces):
        if before.hi != after.lo or type(after.adapter) is not type(adapter):
            return pieces
    full = [f for f in pieces if len(f.chunk)]
    template = full[0].template if full else first.template
    if not full:
        chunk = first.chunk
    elif template is None:
        return pieces
    else:
        datas = [full[0].chunk.data]
        for f in full[1:]:
            # As the store would take it: recast to the first piece's datetime
            # units (pandas picks them per call); another schema stays apart.
            data, widened, differs = adapter.conform(f.chunk.data, template)
            if differs or widened is not template:
                return pieces
            datas.append(data)
        positions = np.concatenate([f.chunk.positions for f in full])
        data = datas[0] if len(datas) == 1 else adapter.concat(datas)
        chunk = Chunk(positions, data, sum(f.chunk.nbytes for f in full))
    # The live edge starts in the first piece not wholly final: the cut is one
    # instant, so every later piece lies past it (a later clock only makes
    # this end earlier, which refetches sooner, never serves stale rows).
    final_hi = next((f.final_hi for f in pieces if f.final_hi < f.hi), pieces[-1].hi)
    expiries = [f.expires for f in pieces if f.expires is not None]
    one = Fetched(
        first.lo, pieces[-1].hi, chunk, template, adapter, first.axis, final_hi,
        min(f.fetched_at for f in pieces), min(expiries) if expiries else None, first.tz,
    )  # fmt: skip
    begun = [f.begun for f in pieces]
    one.begun = None if None in begun else min(b for b in begun if b is not None)
    return [one]


def _answer(
    cache: RangeCache,
    req: Request,
    fetched: list[Fetched],
    commits: list[Fetched],
    latest: Entry | None,
    stored: bool,
) -> Any:
    """The answer as the commit left the rows (what the next hit serves), read under the lock.

    Pieces keep the datetime unit each provider call chose; the store recasts
    them to the key's, so reading the entry back answers as every later call
    will. If a write failed, the fetched pieces are laid out instead.
    """
    with cache.lock:
        cache.landings.note(req.key)  # planners that read before us read again
    detach(cache, req.key, req.lo, req.hi)  # a call after this one waits for no older fetch
    # Overtaken by a later refresh or an invalidate while it fetched, the store
    # kept nothing of it: its caller gets the rows it fetched, as any fetch's does.
    if stored and latest is not None and not any(f.dropped for f in commits):
        view = latest.view(req.lo, req.hi)
        if view.rows is not None:
            return view.read(req.lo, req.rows_hi, req.tz)
    parts = [Part.fetched(f.lo, f.hi, f) for f in fetched]
    return cache.assemble(req, None, parts, latest)


def _start(cache: RangeCache, req: Request, entry: Entry | None) -> None:
    if entry is not None:
        cache.check_axis(req, entry)


def refresh_call(cache: RangeCache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Fetch the call's whole range, then replace what is stored there (one commit)."""
    req = cache.request(args, kwargs)
    if req.lo >= req.hi:
        return cache.fn(*args, **kwargs)
    store, ns = cache.store, cache.namespace
    with store.lock(ns, req.key):
        entry = store.get(ns, req.key)
        _start(cache, req, entry)
        fetched = fetch_whole(cache, req, entry)
        latest, stored, commits = entry, True, joined(fetched)
        for f in commits:
            f.replaces = True  # over any fetch still in flight (MemoryStore)
            try:
                latest = store.put(ns, req.key, f)
            except OSError as exc:
                stored = False
                cache.commit_failed(exc, req)
        return _answer(cache, req, fetched, commits, latest, stored)


async def arefresh_call(cache: RangeCache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """:func:`refresh_call` for an ``async def`` function."""
    req = cache.request(args, kwargs)
    if req.lo >= req.hi:
        return await cache.fn(*args, **kwargs)
    store, ns = cache.store, cache.namespace
    async with store.alock(ns, req.key):
        entry = await store.aget(ns, req.key)
        _start(cache, req, entry)
        fetched = await afetch_whole(cache, req, entry)
        latest, stored, commits = entry, True, joined(fetched)
        for f in commits:
            f.replaces = True  # over any fetch still in flight (MemoryStore)
            try:
                latest = await store.aput(ns, req.key, f)
            except OSError as exc:
                stored = False
                cache.commit_failed(exc, req)
        return _answer(cache, req, fetched, commits, latest, stored)
