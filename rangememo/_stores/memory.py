"""MemoryStore: entries in a mutable mapping, in this process only."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, MutableMapping
from typing import Any, Literal

import cachetools

from .._core.entry import Entry, Fetched, ticket
from .._errors import CacheWarning, InvalidOption
from .._warn import warn
from .base import Store
from .budget import default_budget
from .thrash import Evictions

__all__ = ["MemoryStore"]

_Key = tuple[str, Hashable]


def _entry_size(entry: Entry) -> int:
    return max(entry.nbytes, 1)


class _Bounded(cachetools.LRUCache[_Key, Entry]):
    """An LRU bounded by bytes and/or keys, telling ``evictions`` what it evicts."""

    def __init__(self, maxsize: int | None, maxbytes: int | None, evictions: Evictions) -> None:
        if maxbytes is not None:
            super().__init__(maxsize=maxbytes, getsizeof=_entry_size)
        else:
            assert maxsize is not None, "an unbounded store is a plain dict"
            super().__init__(maxsize=maxsize)
        # The key bound, when bytes are the mapping's own measure.
        self._maxkeys = maxsize if maxbytes is not None else None
        self._evictions = evictions
        self._bound = "maxbytes" if maxbytes is not None else "maxsize"

    def __setitem__(self, key: _Key, value: Entry) -> None:
        super().__setitem__(key, value)
        if self._maxkeys is not None and len(self) > self._maxkeys:
            self._bound = "maxsize"
            try:
                while len(self) > self._maxkeys:
                    self.popitem()
            finally:
                self._bound = "maxbytes"

    def clear(self) -> None:
        # MutableMapping.clear() pops item by item: a clear is not an eviction.
        while self:
            del self[next(iter(self))]

    def popitem(self) -> tuple[_Key, Entry]:
        # cachetools evicts through popitem(): the one place to see every eviction.
        key, value = super().popitem()
        self._evictions.evict(key, self._bound)
        return key, value


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidOption(
            f"MemoryStore({name}={value!r}): a bound must be a positive int or None"
        )
    return value


class MemoryStore(Store):
    """Keeps entries in a ``MutableMapping`` (as cachetools: any mapping works).

    ``MemoryStore()`` is bounded by the bytes of the rows it holds:
    ``maxbytes="auto"`` is ``min(25% of physical memory, 8 GiB)`` (1 GiB where
    memory cannot be read), least recently used keys evicted.
    ``MemoryStore(maxbytes=n)`` sets that budget; ``MemoryStore(maxsize=n)``
    also bounds the number of keys (whichever bound is reached first evicts);
    ``maxsize=None, maxbytes=None`` keeps everything. ``MemoryStore(cache=mapping)``
    uses your own mapping (an ``LRUCache``, a ``TTLCache``, a plain ``dict``).
    An evicted key is simply fetched again on its next call; a store that keeps
    evicting keys it is asked for again soon after warns once
    (:class:`~rangememo.CacheWarning`) with the numbers and the bound to raise.
    """

    persistent = False

    def __init__(
        self,
        maxsize: int | None = None,
        *,
        maxbytes: int | Literal["auto"] | None = "auto",
        cache: MutableMapping[Any, Entry] | None = None,
    ) -> None:
        self.maxsize = _positive("maxsize", maxsize)
        self.maxbytes = _positive("maxbytes", default_budget() if maxbytes == "auto" else maxbytes)
        self._auto = maxbytes == "auto"  # a worker unpickling it uses its own machine's budget
        self._evictions = Evictions()
        self._own = cache is None  # a mapping of ours: bounds known, evictions seen
        if cache is not None:
            self._map: MutableMapping[Any, Entry] = cache
            self.maxsize = self.maxbytes = None  # the mapping's own business
        elif self.maxsize is None and self.maxbytes is None:
            self._map = {}
        else:
            self._map = _Bounded(self.maxsize, self.maxbytes, self._evictions)
        # cachetools mappings are not thread-safe; reads on the hot path go
        # through ``dict``-like ``get`` under the GIL, writes take this lock.
        self._lock = threading.RLock()
        self._marks = _Marks()

    def __repr__(self) -> str:
        if not self._own:
            bounds = type(self._map).__name__
        else:
            bounds = f"maxsize={self.maxsize}, maxbytes={self.maxbytes}"
        return f"MemoryStore({bounds}, {len(self._map)} keys)"

    def get(self, namespace: str, key: Hashable) -> Entry | None:
        with self._lock:
            entry = self._map.get((namespace, key))
            thrashing = self._evictions.looked_up((namespace, key), entry is not None)
        if thrashing:
            warn(CacheWarning(self._thrash_text()))
        return entry

    def _thrash_text(self) -> str:
        ev = self._evictions
        if ev.bound == "maxsize":
            budget, option = f"{self.maxsize:,} keys", "maxsize"
        else:
            budget, option = f"{self.maxbytes:,} bytes", "maxbytes"
        with self._lock:
            held = len(self._map)
            nbytes = int(getattr(self._map, "currsize", 0))
        return (
            f"MemoryStore is too small for the keys in use: it evicted {ev.evicted:,} keys "
            f"and was asked for {ev.total_reasked:,} of them again soon after "
            f"({ev.reasked:,} of the last {ev.lookups:,} lookups), so they are fetched again. "
            f"It holds {held:,} keys ({nbytes:,} bytes) within its budget of {budget}; "
            f"raise it with MemoryStore({option}=...)"
            + (" or lift the key bound (maxsize=None)" if option == "maxsize" else "")
        )

    def put(self, namespace: str, key: Hashable, fetched: Fetched) -> Entry:
        with self._lock:
            entry = self._map.get((namespace, key))
            if self._marks.overtaken(namespace, key, fetched):
                # Begun before a refresh or invalidate of its range (this store has
                # no lock that keeps fetches apart): its rows are older than what
                # replaced them, so they are not committed. Its caller is answered.
                fetched.dropped = True
                return entry if entry is not None else Entry()
            if fetched.replaces:
                self._marks.mark(namespace, key, fetched.lo, fetched.hi)
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
            self._marks.mark(namespace, key, lo, hi)
            if lo is None and hi is None:
                self._map.pop((namespace, key), None)
                return
            entry = self._map.get((namespace, key))
            if entry is not None:
                with entry.lock:
                    entry.forget(lo, hi)
                # Re-set, as put does: a size-bounded mapping re-measures the
                # smaller entry (it would go on counting the forgotten rows).
                self._map[(namespace, key)] = entry

    def clear(self, namespace: str | None = None) -> None:
        with self._lock:
            self._marks.clear(namespace)
            if namespace is None:
                self._map.clear()
                return
            for k in [k for k in self._map if k[0] == namespace]:
                del self._map[k]

    def keys(self, namespace: str) -> list[Hashable]:
        with self._lock:
            return [k[1] for k in list(self._map) if k[0] == namespace]


class _Marks:
    """What was replaced when: ranges refreshed or forgotten, per key, and clears.

    A fetch carries the ticket taken as its provider call began; one begun
    before a replacement of its range commits nothing (ParquetStore needs no
    such record: its key lock keeps a fetch and a refresh apart). Bounded: the
    oldest keys' marks go first, which only a fetch in flight across thousands
    of other keys' replacements could notice.
    """

    KEYS = 4096  # keys with marks kept
    PER_KEY = 16  # marks kept per key (a fetch in flight across more is rare)

    def __init__(self) -> None:
        self.keys: OrderedDict[tuple[str, Hashable], list[tuple[int, int, int]]] = OrderedDict()
        self.cleared: dict[str | None, int] = {}

    def mark(self, namespace: str, key: Hashable, lo: int | None, hi: int | None) -> None:
        a = lo if lo is not None else -(2**63)
        b = hi if hi is not None else 2**63 - 1
        whole = (-(2**63), 2**63 - 1)
        marks = self.keys.setdefault((namespace, key), [])
        marks.append((a, b, ticket()))
        if len(marks) > self.PER_KEY:
            # The oldest marks go, but not what they say: a fetch of the key begun
            # before the newest one dropped is overtaken whatever its range.
            floor = max(t for _, _, t in marks[: -self.PER_KEY + 1])
            marks[: -self.PER_KEY + 1] = [(*whole, floor)]
        self.keys.move_to_end((namespace, key))
        if len(self.keys) > self.KEYS:
            _, dropped = self.keys.popitem(last=False)
            # Likewise for every key: a fetch begun before it is dropped. Only
            # fetches in flight across thousands of replacements refetch for it.
            floor = max(t for _, _, t in dropped)
            self.cleared[None] = max(self.cleared.get(None, 0), floor)

    def clear(self, namespace: str | None) -> None:
        self.cleared[namespace] = ticket()
        if namespace is None:
            self.keys.clear()
        else:
            for k in [k for k in self.keys if k[0] == namespace]:
                del self.keys[k]

    def overtaken(self, namespace: str, key: Hashable, fetched: Fetched) -> bool:
        begun = fetched.begun
        if begun is None:
            return False
        if max(self.cleared.get(namespace, 0), self.cleared.get(None, 0)) > begun:
            return True
        marks = self.keys.get((namespace, key))
        if not marks:
            return False
        return any(t > begun and a < fetched.hi and fetched.lo < b for a, b, t in marks)
