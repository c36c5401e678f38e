"""The memory layer in front of a store directory: recently used keys, by bytes.

A cachetools LRU of :class:`~rangememo._stores.parquet.key.KeyState` objects whose size
is the bytes of the rows each holds in memory. A key grows as windows load, so
the store puts it again after a load to have it measured again. A key larger
than the whole budget is simply not kept (it is read from disk each time).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

import cachetools

from .key import KeyState

__all__ = ["MemoryLayer"]

Slot = tuple[str, Hashable]


def _size(state: KeyState) -> int:
    return max(state.nbytes, 1)


class MemoryLayer:
    """Thread-safe LRU of key states bounded by ``budget`` bytes (0: keeps nothing)."""

    def __init__(self, budget: int) -> None:
        self._lru: cachetools.LRUCache[Slot, KeyState] = cachetools.LRUCache(
            maxsize=max(budget, 0), getsizeof=_size
        )
        self._lock = threading.RLock()  # cachetools mappings are not thread-safe

    def get(self, namespace: str, key: Hashable) -> KeyState | None:
        with self._lock:
            return self._lru.get((namespace, key))

    def keep(self, state: KeyState) -> None:
        """Hold ``state`` (again: re-measured), evicting least recently used keys."""
        slot = (state.namespace, state.key)
        with self._lock:
            try:
                self._lru[slot] = state
            except ValueError:  # bigger than the whole budget
                self._lru.pop(slot, None)

    def drop(self, namespace: str, key: Hashable) -> None:
        with self._lock:
            self._lru.pop((namespace, key), None)

    def drop_all(self, namespace: str | None = None) -> None:
        """Forget every key (of ``namespace``)."""
        with self._lock:
            for slot in [s for s in self._lru if namespace is None or s[0] == namespace]:
                del self._lru[slot]

    def resident(self) -> list[Slot]:
        """The keys held, least recently used first."""
        with self._lock:
            return list(self._lru)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return int(self._lru.currsize)
