"""Running a batched call, sync and async (the steps are in ``batch.Batcher``).

A batch's provider calls (step 2) fetch outside the single-key flights, so
two concurrent batched calls missing the same member's range would both ask
for it. A call that has anything to fetch therefore holds the locks of its
missing members (``Batcher.hold``) and plans those members again under them:
a call that waited finds what the other fetched and asks only for the rest.
Calls answered from the cache take no lock.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from .._core.members import combine
from .adrive import acall
from .batch import Batcher, Call
from .drive import call

__all__ = ["arun", "run"]

Args = tuple[tuple[Any, ...], dict[str, Any]]


class _Plans:
    """Each member's state in one call: answered, or its gaps and its own call."""

    def __init__(self) -> None:
        self.done: dict[Hashable, Any] = {}
        self.todo: dict[Hashable, tuple[Any, ...]] = {}
        self.calls_of: dict[Hashable, Args] = {}
        self.keys: dict[Hashable, Hashable] = {}
        self.reqs: dict[Hashable, Any] = {}

    def note(self, b: Batcher, m: Hashable, margs: Args, req: Any, entry: Any) -> None:
        self.keys[m], self.reqs[m] = req.key, req
        served, result, gaps = b.plan(req, entry)
        self.todo.pop(m, None)
        if served:
            self.done[m] = result
        else:
            self.todo[m], self.calls_of[m] = gaps, margs


def _requests(b: Batcher, bound: Any, members: list[Hashable]) -> list[tuple[Any, Args, Any]]:
    out = []
    for m in members:
        margs = b.with_members(bound, m)
        out.append((m, margs, b.cache.request(*margs)))
    return out


def run(b: Batcher, args: tuple[Any, ...], kwargs: dict[str, Any], answer: bool = True) -> Any:
    """One call of a batched plain function."""
    bound, members = b.bind(args, kwargs)
    if not members:  # no series to cache: only the provider knows its empty answer
        # Still a list (not the caller's tuple, array or spent iterator).
        margs, mkwargs = b.with_members(bound, [])
        return b._call(margs, mkwargs) if answer else None  # counted, rate-limited
    cache = b.cache
    store, ns = cache.store, cache.namespace
    p = _Plans()
    for m, margs, req in _requests(b, bound, members):
        p.note(b, m, margs, req, store.get(ns, req.key))
    if not p.todo:
        return (
            combine([p.done[m] for m in members], members, b.by, b.level_dtype) if answer else None
        )
    with b.hold([p.keys[m] for m in p.todo]):
        for m in list(p.todo):  # another call may have fetched them while we waited
            p.note(b, m, p.calls_of[m], p.reqs[m], store.get(ns, p.keys[m]))
        todo = p.todo
        slots, errors = b.fetch(bound, p.keys, b.calls(todo)) if todo else ([], [])
        failed = _failed(errors)
        try:
            for m in todo:
                if m in failed:
                    continue
                margs, mkwargs = p.calls_of[m]
                try:  # a member fetched: committed, even if others failed
                    p.done[m] = call(cache, margs, mkwargs, answer=answer and not errors)
                except Exception as exc:
                    # One member's commit failing (a schema conflict) must not
                    # lose the rows fetched for the members after it.
                    errors.append((((None, None), [m]), exc))
        finally:
            b.drop(slots)
    if errors:
        raise errors[0][1]
    return combine([p.done[m] for m in members], members, b.by, b.level_dtype) if answer else None


async def arun(
    b: Batcher, args: tuple[Any, ...], kwargs: dict[str, Any], answer: bool = True
) -> Any:
    """One call of a batched ``async def`` function."""
    bound, members = b.bind(args, kwargs)
    if not members:
        margs, mkwargs = b.with_members(bound, [])
        return await b._acall(margs, mkwargs) if answer else None
    cache = b.cache
    store, ns = cache.store, cache.namespace
    p = _Plans()
    for m, margs, req in _requests(b, bound, members):
        p.note(b, m, margs, req, await store.aget(ns, req.key))
    if not p.todo:
        return (
            combine([p.done[m] for m in members], members, b.by, b.level_dtype) if answer else None
        )
    async with b.ahold([p.keys[m] for m in p.todo]):
        for m in list(p.todo):
            p.note(b, m, p.calls_of[m], p.reqs[m], await store.aget(ns, p.keys[m]))
        todo = p.todo
        slots, errors = await b.afetch(bound, p.keys, b.calls(todo)) if todo else ([], [])
        failed = _failed(errors)
        try:
            for m in todo:
                if m in failed:
                    continue
                margs, mkwargs = p.calls_of[m]
                try:  # a member fetched: committed, even if others failed
                    p.done[m] = await acall(cache, margs, mkwargs, answer=answer and not errors)
                except Exception as exc:
                    # One member's commit failing (a schema conflict) must not
                    # lose the rows fetched for the members after it.
                    errors.append((((None, None), [m]), exc))
        finally:
            b.drop(slots)
    if errors:
        raise errors[0][1]
    return combine([p.done[m] for m in members], members, b.by, b.level_dtype) if answer else None


def _failed(errors: list[tuple[Call, BaseException]]) -> set[Hashable]:
    return {m for (_, members), _ in errors for m in members}
