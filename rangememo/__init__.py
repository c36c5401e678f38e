"""rangememo: a range-aware cache for slow, range-queried APIs.

``@range_cached`` keeps, per key, a ledger of the intervals already fetched
and calls the wrapped function only for the gaps of each request.
"""

from __future__ import annotations

import logging
import typing as _typing

from ._core.entry import Entry, Fetched
from ._decorator import AsyncRangeCached, RangeCached, range_cached
from ._engine.control import disabled, offline
from ._engine.introspect import Coverage
from ._engine.stats import CacheInfo
from ._errors import (
    BoundsTypeError,
    CacheWarning,
    InvalidOption,
    InvalidRange,
    InvalidResult,
    NotCached,
    RangememoError,
    ResultTypeError,
    SchemaMismatchError,
)
from ._stores.base import Store
from ._stores.default import default_store
from ._stores.memory import MemoryStore

if _typing.TYPE_CHECKING:
    from ._core.audit import AuditReport
    from ._stores.parquet.store import ParquetStore

__all__ = [
    "AsyncRangeCached",
    "AuditReport",
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
    "NotCached",
    "ParquetStore",
    "RangeCached",
    "RangememoError",
    "ResultTypeError",
    "SchemaMismatchError",
    "Store",
    "default_store",
    "disabled",
    "offline",
    "range_cached",
]

__version__ = "0.1.0"

logging.getLogger("rangememo").addHandler(logging.NullHandler())

#: Names whose modules load on first use: the Parquet store pulls in joblib,
#: filelock, platformdirs and pyarrow.parquet, which a MemoryStore user never needs;
#: the audit report comes with ``.audit()``.
_LAZY = {"ParquetStore": "._parquet", "AuditReport": "._core.audit"}


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
