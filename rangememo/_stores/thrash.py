"""Noticing a store too small for its working set: keys evicted, then asked for again.

An LRU that evicts a key shortly before the key is needed again (a backtest
cycling through more symbols than fit) fetches everything again and again,
silently. :class:`Evictions` keeps the hashes of recently evicted keys in a
small bounded ring; a lookup that misses one of them is a *re-ask*. Once
re-asks pass :data:`RATE` of lookups (over at least :data:`MIN_LOOKUPS`), the
store warns, once, with the numbers and the option to raise.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["Evictions"]

#: Evicted keys remembered (hashes only: a few MB at most). A key re-asked more
#: evictions than this after its own is not counted: then the working set is
#: many times the budget and the ones that are counted suffice.
RING = 16_384
#: Warn once re-asks reach this share of lookups ...
RATE = 0.10
#: ... over at least this many lookups.
MIN_LOOKUPS = 100
#: Counts decay (halve) every this many lookups, so a long-lived store that
#: starts thrashing late is noticed as soon as a fresh one would be.
WINDOW = 10_000


class Evictions:
    """Recently evicted keys of one store, and how often they come back (not thread-safe)."""

    __slots__ = ("_recent", "bound", "evicted", "lookups", "reasked", "total_reasked", "warned")

    def __init__(self) -> None:
        self._recent: dict[int, None] = {}  # insertion-ordered: oldest first
        self.evicted = 0  # keys evicted, all time
        self.total_reasked = 0  # re-asks, all time
        self.lookups = 0  # lookups in the current window
        self.reasked = 0  # re-asks in the current window
        self.bound = "maxbytes"  # the bound that evicted last
        self.warned = False

    def evict(self, key: Hashable, bound: str) -> None:
        """``key`` was evicted to honour ``bound`` (``"maxsize"`` or ``"maxbytes"``)."""
        h = hash(key)
        recent = self._recent
        recent.pop(h, None)
        recent[h] = None
        if len(recent) > RING:
            del recent[next(iter(recent))]
        self.evicted += 1
        self.bound = bound

    def looked_up(self, key: Hashable, found: bool) -> bool:
        """Count a lookup; ``True`` exactly once, when the store should warn."""
        self.lookups += 1
        if self.lookups >= WINDOW:
            self.lookups //= 2
            self.reasked //= 2
        if found or not self._recent:
            return False
        try:
            del self._recent[hash(key)]
        except KeyError:
            return False
        self.reasked += 1
        self.total_reasked += 1
        if self.warned or self.lookups < MIN_LOOKUPS or self.reasked < RATE * self.lookups:
            return False
        self.warned = True
        return True
