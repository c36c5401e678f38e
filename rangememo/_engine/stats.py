"""Counters behind ``cache_info()``."""

from __future__ import annotations

import threading
from typing import NamedTuple

__all__ = ["CacheInfo", "Stats"]


class CacheInfo(NamedTuple):
    """What ``cache_info()`` reports (as ``functools``' named tuple does)."""

    hits: int  # requests served entirely from the cache
    partial_hits: int  # requests that were partly cached: only gaps fetched
    misses: int  # requests with nothing cached for them
    provider_calls: int  # calls of the wrapped function
    rows_fetched: int  # rows kept from those calls
    bytes_fetched: int  # their in-memory size
    errors: int  # provider calls that raised
    calendar_skips: int  # gaps covered without a call: no session in them
    provisional_refetches: int  # gaps refetched because live-edge data expired
    rows_ahead: int = 0  # rows fetched beyond what their request asked (readahead, lookback)
    rows_ahead_used: int = 0  # of those, rows a later request asked for


class Stats:
    """Thread-safe counters (one lock: increments are rare next to I/O)."""

    __slots__ = ("_lock", "_values")

    _FIELDS = (
        "hits",
        "partial_hits",
        "misses",
        "calls",
        "rows",
        "nbytes",
        "errors",
        "calendar_skips",
        "provisional_refetches",
        "rows_ahead",
        "rows_ahead_used",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self._FIELDS, 0)

    def count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._values[name] += delta

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(*(self._values[f] for f in self._FIELDS))

    def reset(self) -> None:
        with self._lock:
            self._values = dict.fromkeys(self._FIELDS, 0)
