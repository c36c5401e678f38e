"""Adaptive readahead's engine side: each key's marches and the rows fetched ahead.

The detector itself is pure (``rangememo._core.ahead``); this keeps its per-key
state in memory (the newest keys only, so it stays bounded) and counts what
``cache_info()`` reports about rows fetched ahead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

from .._core.ahead import Trail
from .._core.axis import Axis
from .policy import to_units
from .stats import Stats

__all__ = ["DEFAULT_MAX_READAHEAD", "Readahead", "auto_cap"]

#: Keys whose marches (and unused rows fetched ahead) are remembered, the newest.
KEYS = 4096
#: Rows fetched ahead remembered per key for ``rows_ahead_used`` (the latest).
UNUSED_ROWS = 1 << 16
#: ``max_readahead``'s default, in steps.
DEFAULT_MAX_READAHEAD = 1024

Positions = np.ndarray[Any, np.dtype[np.int64]]


def auto_cap(value: Any, axis: Axis) -> int:
    """``readahead="auto"``'s cap in axis units: ``max_readahead``, or its default.

    The default counts steps; an axis without a step (continuous time) has no
    row size to count in, so there the default is no readahead at all.
    """
    if value is not None:
        return to_units(value, axis, "max_readahead") or 0
    if axis.kind == "datetime" and axis.step == 1:
        return 0
    return DEFAULT_MAX_READAHEAD * axis.step


class Readahead:
    """Per-key marches (read and written under the cache's lock, with the plan)
    and the positions of rows fetched ahead that no request has asked for yet."""

    __slots__ = ("_lock", "stats", "trails", "unused")

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.trails: OrderedDict[Hashable, Trail] = OrderedDict()
        self.unused: OrderedDict[Hashable, Positions] = OrderedDict()
        self._lock = threading.Lock()

    def trail(self, key: Hashable) -> Trail | None:
        return self.trails.get(key)

    def keep(self, key: Hashable, trail: Trail) -> None:
        """Remember ``key``'s marches (the caller holds the cache's lock)."""
        trails = self.trails
        trails[key] = trail
        trails.move_to_end(key)
        if len(trails) > KEYS:
            trails.popitem(last=False)

    def fetched(self, key: Hashable, lo: int, hi: int, positions: Positions) -> None:
        """Count the rows of a fetch outside its request ``[lo, hi)``; remember them."""
        outside = positions[(positions < lo) | (positions >= hi)]
        if not len(outside):
            return
        self.stats.count(rows_ahead=len(outside))
        with self._lock:
            before = self.unused.get(key)
            merged = outside if before is None else np.union1d(before, outside)
            self.unused[key] = np.sort(merged)[-UNUSED_ROWS:]
            self.unused.move_to_end(key)
            if len(self.unused) > KEYS:
                self.unused.popitem(last=False)

    def used(self, key: Hashable, lo: int, hi: int) -> None:
        """Count the rows fetched ahead that ``[lo, hi)`` holds (each once)."""
        if key not in self.unused:
            return
        with self._lock:
            positions = self.unused.get(key)
            if positions is None:
                return
            i, j = (int(x) for x in np.searchsorted(positions, [lo, hi], side="left"))
            if j <= i:
                return
            rest = np.concatenate([positions[:i], positions[j:]])
            if len(rest):
                self.unused[key] = rest
            else:
                del self.unused[key]
        self.stats.count(rows_ahead_used=j - i)
