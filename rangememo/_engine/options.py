"""A cached function's options, one bound call (``Request``), and when keys last landed."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .._core.axis import Axis, Closed
from .._core.struct import Struct
from .binding import KeySpec
from .validate import check_options

__all__ = ["Landings", "Options", "Request"]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Options:
    """Everything ``range_cached`` was configured with."""

    key: KeySpec = None
    start: str = "start"
    end: str = "end"
    step: Any = None
    closed: Closed = "both"
    index: str | None = None
    settle: Any = None
    ttl: Any = None
    max_concurrency: int = 4
    namespace: str | None = None
    version: int | str = 0
    clock: Callable[[], dt.datetime] = _utcnow
    readahead: Any = "auto"
    max_readahead: Any = None
    lookback: Any = None
    coalesce: Any = None
    max_span: Any = None
    rate_limit: tuple[int, float] | None = None
    calendar: Any = None
    stale_if_error: bool = False
    coerce_bounds: bool = False

    def __post_init__(self) -> None:
        check_options(self)  # InvalidOption at decoration, naming the value

    @property
    def plans(self) -> bool:
        """Does planning need more than the ledger (so a Policy is built)?"""
        return any(
            v is not None
            for v in (self.readahead, self.lookback, self.coalesce, self.max_span, self.calendar)
        )


class Request(Struct):
    """One call, bound and encoded."""

    __slots__ = ("bound", "key", "axis", "lo", "rows_hi", "strings")
    bound: Any  # inspect.BoundArguments
    key: Hashable
    axis: Axis
    lo: int
    rows_hi: int  # end of the rows the answer holds
    strings: bool  # the caller's bounds were ISO strings (coerce_bounds=True)

    def __init__(
        self, bound: Any, key: Hashable, axis: Axis, lo: int, rows_hi: int, strings: bool = False
    ) -> None:
        self.bound, self.key, self.axis = bound, key, axis
        self.lo, self.rows_hi, self.strings = lo, rows_hi, strings

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as its dataclass was

    @property
    def hi(self) -> int:
        """End of what the answer needs covered: what was asked (a fetch may claim more)."""
        return self.rows_hi

    @property
    def tz(self) -> str | None:
        """The timezone of the caller's bounds, as text (``None``: naive)."""
        return str(self.axis.tz) if self.axis.aware else None


class Landings:
    """When each key last had a flight land, on a counter (changed under the cache's lock).

    Bounded: keys that fell out count as landed at the newest stamp that fell
    out, which can only make a caller read its entry once more.
    """

    __slots__ = ("clock", "floor", "last", "size")

    def __init__(self, size: int = 4096) -> None:
        self.clock = self.floor = 0
        self.size = size
        self.last: OrderedDict[Hashable, int] = OrderedDict()

    def stamp(self) -> int:
        return self.clock

    def note(self, key: Hashable) -> None:
        self.clock += 1
        self.last[key] = self.clock
        self.last.move_to_end(key)
        if len(self.last) > self.size:
            self.floor = max(self.floor, self.last.popitem(last=False)[1])

    def since(self, key: Hashable, seen: int) -> bool:
        return self.last.get(key, self.floor) > seen
