"""A lock per member of a batched function, so concurrent batched calls fetch a range once.

A batch's provider calls run outside the single-key flights (they fetch for
many members at once), so two calls missing the same member's range would
both ask for it. A call with something to fetch holds its missing members'
locks while it plans them again, fetches and commits (see ``batch_drive``).

The locks are one per member key (not shared stripes), so a provider that
calls its own batched function for *other* members never waits for itself,
and every call takes its locks in one order, ``(hash, repr)`` of the key, so
two calls never wait for each other. A key's lock is forgotten when its last
user lets go.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from typing import Any

__all__ = ["MemberLocks"]


class _Table:
    """Locks by key, made on first use and dropped after their last user."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.locks: dict[Hashable, list[Any]] = {}  # key -> [lock, users]

    def take(self, keys: list[Hashable]) -> list[Any]:
        out = []
        for k in keys:
            slot = self.locks.get(k)
            if slot is None:
                slot = self.locks[k] = [self.make(), 0]
            slot[1] += 1
            out.append(slot[0])
        return out

    def give(self, keys: list[Hashable]) -> None:
        for k in keys:
            slot = self.locks[k]
            slot[1] -= 1
            if not slot[1]:
                del self.locks[k]


def _ordered(keys: list[Hashable]) -> list[Hashable]:
    return sorted(dict.fromkeys(keys), key=lambda k: (hash(k), repr(k)))


class MemberLocks:
    """The member locks of one batched function: threads', and each event loop's."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()  # guards the tables, held only briefly
        self.sync = _Table(threading.Lock)
        self.loops: weakref.WeakKeyDictionary[Any, _Table] = weakref.WeakKeyDictionary()

    @contextlib.contextmanager
    def hold(self, keys: list[Hashable]) -> Iterator[None]:
        """Hold these members' locks (a plain function's call)."""
        ordered = _ordered(keys)
        with self.mutex:
            locks = self.sync.take(ordered)
        held: list[Any] = []
        try:
            for lock in locks:
                lock.acquire()
                held.append(lock)
            yield
        finally:
            for lock in reversed(held):
                lock.release()
            with self.mutex:
                self.sync.give(ordered)

    @contextlib.asynccontextmanager
    async def ahold(self, keys: list[Hashable]) -> AsyncIterator[None]:
        """Hold these members' locks (an ``async def`` function's call).

        The locks are the running loop's: calls on two event loops at once
        (two threads each running one) are not kept apart.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        ordered = _ordered(keys)
        with self.mutex:
            table = self.loops.get(loop)
            if table is None:
                table = self.loops[loop] = _Table(asyncio.Lock)
            locks = table.take(ordered)
        held: list[Any] = []
        try:
            for lock in locks:
                await lock.acquire()
                held.append(lock)
            yield
        finally:
            for lock in reversed(held):
                lock.release()
            with self.mutex:
                table.give(ordered)
