"""rangememo's own exceptions and warnings.

Every exception derives from :class:`RangememoError` *and* a builtin, so callers
that already catch ``ValueError``/``TypeError`` keep working.
"""

from __future__ import annotations

__all__ = [
    "BoundsTypeError",
    "CacheWarning",
    "InvalidOption",
    "InvalidRange",
    "InvalidResult",
    "NotCached",
    "RangememoError",
    "ResultTypeError",
    "SchemaMismatchError",
]


class RangememoError(Exception):
    """Base class of every exception raised by rangememo itself."""


class InvalidRange(RangememoError, ValueError):
    """The bounds of a call cannot form a range (``start > end``, bad step, ...)."""


class InvalidOption(RangememoError, ValueError, TypeError):
    """A ``range_cached`` option with a bad value (``closed="right"``, ``step="bogus"``).

    Raised at decoration wherever the value alone shows the mistake, else at the
    first call it affects (``step=5`` with datetime bounds). Both a ``ValueError``
    and a ``TypeError``, so code that caught either for a bad option still does.
    """


class BoundsTypeError(RangememoError, TypeError):
    """The bounds are of different types, or naive mixed with tz-aware."""


class InvalidResult(RangememoError, ValueError):
    """The wrapped function returned something the cache cannot position."""


class ResultTypeError(RangememoError, TypeError):
    """The wrapped function returned an unsupported type."""


class SchemaMismatchError(RangememoError, ValueError):
    """A fetched piece changed the dtype/timezone of a column already cached."""


class NotCached(RangememoError, LookupError):
    """A cache-only call (``.cached``, ``offline()``) found part of its range uncovered.

    ``missing`` lists the uncovered ranges as ``(start, end)`` pairs in the
    caller's convention (inclusive ends where ``closed="both"``); ``key`` is
    the series' key. The provider was not called.
    """

    def __init__(
        self, message: str, key: object = None, missing: list[tuple[object, object]] | None = None
    ) -> None:
        super().__init__(message)
        self.key = key
        self.missing = list(missing or [])


class CacheWarning(UserWarning):
    """A cache entry could not be read or written (it is dropped and refetched), or
    was written by code that has changed since."""
