"""MemoryStore: entries in a mutable mapping, in this process only."""

from __future__ import annotations

import threading
from collections.abc import Hashable, MutableMapping
from typing import Any

import cachetools

from ._entry import Entry, Fetched
from ._errors import CacheWarning
from ._store import Store
from ._warn import warn

__all__ = ["MemoryStore"]

_Key = tuple[str, Hashable]


def _entry_size(entry: Entry) -> int:
    return max(entry.nbytes, 1)


class MemoryStore(Store):
    """Keeps entries in a ``MutableMapping`` (as cachetools: any mapping works).

    ``MemoryStore()`` holds at most 1,024 keys, least recently used evicted;
    ``MemoryStore(maxsize=n)`` sets that bound; ``MemoryStore(maxbytes=n)``
    bounds the rows' bytes instead; ``MemoryStore(cache=mapping)`` uses your
    own mapping (an ``LRUCache``, a ``TTLCache``, a plain ``dict``). An
    evicted key is simply fetched again on its next call.
    """

    persistent = False

    def __init__(
        self,
        maxsize: int | None = 1024,
        *,
        maxbytes: int | None = None,
        cache: MutableMapping[Any, Entry] | None = None,
    ) -> None:
        if cache is not None:
            self._map: MutableMapping[Any, Entry] = cache
        elif maxbytes is not None:
            self._map = cachetools.LRUCache(maxsize=maxbytes, getsizeof=_entry_size)
        elif maxsize is not None:
            self._map = cachetools.LRUCache(maxsize=maxsize)
        else:
            self._map = {}
        # cachetools mappings are not thread-safe; reads on the hot path go
        # through ``dict``-like ``get`` under the GIL, writes take this lock.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"MemoryStore({type(self._map).__name__}, {len(self._map)} keys)"

    def get(self, namespace: str, key: Hashable) -> Entry | None:
        with self._lock:
            return self._map.get((namespace, key))

    def put(self, namespace: str, key: Hashable, fetched: Fetched) -> Entry:
        with self._lock:
            entry = self._map.get((namespace, key))
            if entry is None:
                entry = Entry()
            with entry.lock:
                entry.apply(fetched)
            try:
                # Re-setting the item lets a size-bounded mapping re-measure it.
                self._map[(namespace, key)] = entry
            except ValueError:
                # cachetools: "value too large" for the whole budget. Serve the
                # call from this entry, but keep nothing of a key this big.
                self._map.pop((namespace, key), None)
                warn(
                    CacheWarning(
                        f"key {key!r} ({entry.nbytes:,} bytes) exceeds the store's budget; "
                        "it is not cached"
                    )
                )
            return entry

    def forget(
        self, namespace: str, key: Hashable, lo: int | None = None, hi: int | None = None
    ) -> None:
        with self._lock:
            if lo is None and hi is None:
                self._map.pop((namespace, key), None)
                return
            entry = self._map.get((namespace, key))
            if entry is not None:
                with entry.lock:
                    entry.forget(lo, hi)

    def clear(self, namespace: str | None = None) -> None:
        with self._lock:
            if namespace is None:
                self._map.clear()
                return
            for k in [k for k in self._map if k[0] == namespace]:
                del self._map[k]

    def keys(self, namespace: str) -> list[Hashable]:
        with self._lock:
            return [k[1] for k in list(self._map) if k[0] == namespace]
