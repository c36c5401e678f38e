"""Running a batched call, sync and async (the steps are in ``batch.Batcher``)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from .._core.members import combine
from .batch import Batcher, Call
from .drive import acall, call

__all__ = ["arun", "run"]


def run(b: Batcher, args: tuple[Any, ...], kwargs: dict[str, Any], answer: bool = True) -> Any:
    """One call of a batched plain function."""
    bound, members = b.bind(args, kwargs)
    if not members:  # no series to cache: only the provider knows its empty answer
        return b.provider(*args, **kwargs) if answer else None
    cache = b.cache
    store, ns = cache.store, cache.namespace
    done: dict[Hashable, Any] = {}
    todo: dict[Hashable, tuple[Any, ...]] = {}
    calls_of: dict[Hashable, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    keys: dict[Hashable, Hashable] = {}
    for m in members:
        margs, mkwargs = b.with_members(bound, m)
        req = cache.request(margs, mkwargs)
        keys[m] = req.key
        served, result, gaps = b.plan(req, store.get(ns, req.key))
        if served:
            done[m] = result
        else:
            todo[m], calls_of[m] = gaps, (margs, mkwargs)
    slots, errors = b.fetch(bound, keys, b.calls(todo)) if todo else ([], [])
    try:
        failed = _failed(errors)
        for m in todo:
            if m not in failed:  # a member fetched: committed, even if others failed
                margs, mkwargs = calls_of[m]
                done[m] = call(cache, margs, mkwargs, answer=answer and not errors)
    finally:
        b.drop(slots)
    if errors:
        raise errors[0][1]
    return combine([done[m] for m in members], members, b.by) if answer else None


async def arun(
    b: Batcher, args: tuple[Any, ...], kwargs: dict[str, Any], answer: bool = True
) -> Any:
    """One call of a batched ``async def`` function."""
    bound, members = b.bind(args, kwargs)
    if not members:
        return await b.provider(*args, **kwargs) if answer else None
    cache = b.cache
    store, ns = cache.store, cache.namespace
    done: dict[Hashable, Any] = {}
    todo: dict[Hashable, tuple[Any, ...]] = {}
    calls_of: dict[Hashable, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    keys: dict[Hashable, Hashable] = {}
    for m in members:
        margs, mkwargs = b.with_members(bound, m)
        req = cache.request(margs, mkwargs)
        keys[m] = req.key
        served, result, gaps = b.plan(req, await store.aget(ns, req.key))
        if served:
            done[m] = result
        else:
            todo[m], calls_of[m] = gaps, (margs, mkwargs)
    slots, errors = await b.afetch(bound, keys, b.calls(todo)) if todo else ([], [])
    try:
        failed = _failed(errors)
        for m in todo:
            if m not in failed:
                margs, mkwargs = calls_of[m]
                done[m] = await acall(cache, margs, mkwargs, answer=answer and not errors)
    finally:
        b.drop(slots)
    if errors:
        raise errors[0][1]
    return combine([done[m] for m in members], members, b.by) if answer else None


def _failed(errors: list[tuple[Call, BaseException]]) -> set[Hashable]:
    return {m for (_, members), _ in errors for m in members}
