"""Per-call control of batched functions: ``.cached``, ``.refresh``, the modes.

``cached`` answers every member from the cache, or raises one ``NotCached``
naming every member with something missing. ``refresh`` refetches the whole
range of every member, one provider call per distinct range for the members
sharing it, and replaces each member's rows with its own single-key refresh
(which takes its piece; a member whose provider call failed keeps its rows).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from .._core.members import combine
from .._errors import InvalidOption, NotCached
from . import control
from .batch import Batcher, Call
from .batch_drive import _failed, _requests
from .refresh import arefresh_call, refresh_call, whole_gaps

__all__ = ["acached", "arefresh", "cached", "refresh", "refused"]


def refused(b: Batcher, what: str) -> NotCached:
    return NotCached(f"{b.cache.name}: {what}; the provider was not called")


def _members(b: Batcher, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, list[Any]]:
    bound, members = b.bind(args, kwargs)
    if not members:
        raise InvalidOption(
            f"{b.cache.name}: an empty member list has no cached answer (only the provider "
            "knows its empty shape), and the provider is not called here"
        )
    return bound, members


def _joined(b: Batcher, errors: list[NotCached]) -> NotCached:
    if len(errors) == 1:
        return errors[0]
    keys = ", ".join(repr(e.key) for e in errors)
    first = errors[0]
    return NotCached(
        f"{len(errors)} members are not cached over the range asked ({keys}); first: {first}",
        first.key,
        first.missing,
    )


def cached(b: Batcher, args: tuple[Any, ...], kwargs: dict[str, Any], answer: bool = True) -> Any:
    bound, members = _members(b, args, kwargs)
    done, errors = [], []
    for m in members:
        try:
            done.append(control.cached_call(b.cache, *b.with_members(bound, m)))
        except NotCached as exc:
            errors.append(exc)
    if errors:
        raise _joined(b, errors)
    return combine(done, members, b.by, b.level_dtype) if answer else None


async def acached(
    b: Batcher, args: tuple[Any, ...], kwargs: dict[str, Any], answer: bool = True
) -> Any:
    bound, members = _members(b, args, kwargs)
    done, errors = [], []
    for m in members:
        try:
            done.append(await control.acached_call(b.cache, *b.with_members(bound, m)))
        except NotCached as exc:
            errors.append(exc)
    if errors:
        raise _joined(b, errors)
    return combine(done, members, b.by, b.level_dtype) if answer else None


def _plan(b: Batcher, bound: Any, members: list[Hashable]) -> tuple[Any, dict[Hashable, Any]]:
    """Each member's whole range, as its own refresh will ask for it."""
    cache = b.cache
    reqs = _requests(b, bound, members)
    todo = {
        m: tuple(cache.call_bounds(req, g) for g in whole_gaps(cache, req) if g.needs_call)
        for m, _, req in reqs
        if req.lo < req.hi
    }
    return reqs, todo


def refresh(b: Batcher, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    bound, members = b.bind(args, kwargs)
    if not members:
        return b._call(*b.with_members(bound, []))
    reqs, todo = _plan(b, bound, members)
    keys = {m: req.key for m, _, req in reqs}
    done: dict[Hashable, Any] = {}
    with b.hold(list(keys.values())):
        slots, errors = b.fetch(bound, keys, b.calls(todo))
        failed = _failed(errors)
        try:
            for m, margs, _ in reqs:
                if m not in failed:
                    try:
                        done[m] = refresh_call(b.cache, *margs)
                    except Exception as exc:  # the others are still replaced
                        errors.append((_alone(m), exc))
        finally:
            b.drop(slots)
    if errors:
        raise errors[0][1]
    return combine([done[m] for m in members], members, b.by, b.level_dtype)


async def arefresh(b: Batcher, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    bound, members = b.bind(args, kwargs)
    if not members:
        return await b._acall(*b.with_members(bound, []))
    reqs, todo = _plan(b, bound, members)
    keys = {m: req.key for m, _, req in reqs}
    done: dict[Hashable, Any] = {}
    async with b.ahold(list(keys.values())):
        slots, errors = await b.afetch(bound, keys, b.calls(todo))
        failed = _failed(errors)
        try:
            for m, margs, _ in reqs:
                if m not in failed:
                    try:
                        done[m] = await arefresh_call(b.cache, *margs)
                    except Exception as exc:
                        errors.append((_alone(m), exc))
        finally:
            b.drop(slots)
    if errors:
        raise errors[0][1]
    return combine([done[m] for m in members], members, b.by, b.level_dtype)


def _alone(m: Hashable) -> Call:
    return (None, None), [m]
