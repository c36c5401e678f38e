"""Prometheus metrics for cached functions (extra ``[metrics]``).

    from prometheus_client import REGISTRY
    from rangememo.metrics import RangememoCollector

    REGISTRY.register(RangememoCollector(get_bars, get_ticks))

Each ``cache_info()`` field becomes a counter labelled by the function's
namespace, read at scrape time: nothing is counted twice, nothing is
maintained on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["RangememoCollector"]

_HELP = {
    "hits": "Requests served entirely from the cache",
    "partial_hits": "Requests partly served from the cache (only gaps fetched)",
    "misses": "Requests with nothing cached for them",
    "provider_calls": "Calls of the wrapped function",
    "rows_fetched": "Rows kept from provider calls",
    "bytes_fetched": "In-memory bytes of the rows fetched",
    "errors": "Provider calls that raised",
    "calendar_skips": "Gaps covered without a call (no trading session)",
    "provisional_refetches": "Gaps refetched because live-edge data expired",
}


class RangememoCollector(Collector):
    """Exposes the counters of one or more ``range_cached`` functions."""

    def __init__(self, *functions: Callable[..., Any]) -> None:
        for fn in functions:
            if not hasattr(fn, "cache_info") or not hasattr(fn, "cache"):
                raise TypeError(f"{fn!r} is not a range_cached function")
        self._functions = list(functions)

    def add(self, fn: Callable[..., Any]) -> None:
        """Also report ``fn``."""
        self._functions.append(fn)

    def collect(self) -> Iterator[CounterMetricFamily]:
        families = {
            name: CounterMetricFamily(f"rangememo_{name}", text, labels=["function"])
            for name, text in _HELP.items()
        }
        for fn in self._functions:
            info = fn.cache_info()  # type: ignore[attr-defined]
            label = fn.cache.namespace  # type: ignore[attr-defined]
            for name, family in families.items():
                family.add_metric([label], getattr(info, name))
        yield from families.values()
