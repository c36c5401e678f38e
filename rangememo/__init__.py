"""rangememo: a range-aware cache for slow, range-queried APIs.

``@range_cached`` keeps, per key, a ledger of the intervals already fetched
and calls the wrapped function only for the gaps of each request.
"""

from __future__ import annotations

import logging

from ._decorator import AsyncRangeCached, RangeCached, range_cached
from ._entry import Entry, Fetched
from ._errors import (
    BoundsTypeError,
    CacheWarning,
    InvalidOption,
    InvalidRange,
    InvalidResult,
    RangememoError,
    ResultTypeError,
    SchemaMismatchError,
)
from ._introspect import Coverage
from ._memory import MemoryStore
from ._parquet import ParquetStore
from ._stats import CacheInfo
from ._store import Store, default_store

__all__ = [
    "AsyncRangeCached",
    "BoundsTypeError",
    "CacheInfo",
    "CacheWarning",
    "Coverage",
    "Entry",
    "Fetched",
    "InvalidOption",
    "InvalidRange",
    "InvalidResult",
    "MemoryStore",
    "ParquetStore",
    "RangeCached",
    "RangememoError",
    "ResultTypeError",
    "SchemaMismatchError",
    "Store",
    "default_store",
    "range_cached",
]

__version__ = "0.1.0"

logging.getLogger("rangememo").addHandler(logging.NullHandler())
