"""Planning options made concrete: spans in axis units, sessions, a rate limit."""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from .._core.axis import Axis
from .._core.ledger import Pair
from .._core.steps import span_ns
from .._errors import InvalidOption

__all__ = ["RateLimit", "SessionCalendar", "to_units"]

_DAY = pd.Timedelta(days=1)


def to_units(value: Any, axis: Axis, name: str) -> int | None:
    """A span option in the axis' units: an ``int`` counts steps (rows)."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value < 1:
            raise InvalidOption(f"{name}={value!r}: pass a positive count of steps, or a span")
        return int(value) * axis.step
    if axis.kind == "int":
        raise InvalidOption(f"{name}={value!r} for integer bounds: pass an int (a count)")
    return span_ns(value, name)


class SessionCalendar:
    """Which days hold a trading session, from an ``exchange_calendars`` name
    or any object with ``sessions_in_range(start, end)`` returning dates.

    A gap outside the calendar's known range is treated as unknown (fetched).
    """

    def __init__(self, calendar: Any) -> None:
        if isinstance(calendar, str):
            try:
                import exchange_calendars
            except ImportError as exc:  # pragma: no cover - depends on the extra
                raise ImportError(
                    f"calendar={calendar!r} needs exchange_calendars: "
                    "pip install 'rangememo[calendars]'"
                ) from exc
            calendar = exchange_calendars.get_calendar(calendar)
        if not hasattr(calendar, "sessions_in_range"):
            raise InvalidOption(
                f"calendar={calendar!r} has no sessions_in_range(start, end); pass an "
                "exchange_calendars name such as 'XNYS' or a calendar object"
            )
        self.calendar = calendar
        sessions = getattr(calendar, "sessions", None)
        # exchange_calendars knows all sessions up front: keep them as int64
        # day numbers and bisect, instead of a library call per gap.
        self._days: np.ndarray[Any, np.dtype[np.int64]] | None = None
        if isinstance(sessions, pd.DatetimeIndex) and len(sessions):
            self._days = sessions.as_unit("ns").asi8 // _DAY.value

    def bounds(self, axis: Axis) -> Pair | None:
        """The start of the first session and the end of the last, as axis positions.

        ``None`` when the calendar does not list its sessions up front.
        """
        if self._days is None:
            return None
        return _midnight(int(self._days[0]), axis), _midnight(int(self._days[-1]) + 1, axis)

    def spans(self, axis: Axis, lo: int, hi: int) -> list[Pair] | None:
        """Session days overlapping ``[lo, hi)`` as axis spans; ``None``: unknown."""
        first = pd.Timestamp(axis.decode(lo)).normalize()
        last = pd.Timestamp(axis.decode(hi - 1)).normalize()
        first_day, last_day = _day_number(first), _day_number(last)
        if self._days is not None:
            days = self._days
            if first_day < days[0] or last_day > days[-1]:
                return None
            i, j = np.searchsorted(days, [first_day, last_day], side="left")
            j = j + 1 if j < len(days) and days[j] == last_day else j
            chosen = [int(d) for d in days[i:j]]
        else:
            found = self.calendar.sessions_in_range(
                pd.Timestamp(first.date()), pd.Timestamp(last.date())
            )
            chosen = [_day_number(pd.Timestamp(d)) for d in found]
        out = []
        for d in chosen:
            start = _midnight(d, axis)
            out.append((max(lo, start), min(hi, _midnight(d + 1, axis))))
        return out


def _day_number(ts: pd.Timestamp) -> int:
    return int(pd.Timestamp(ts.date()).value // _DAY.value)


def _midnight(day: int, axis: Axis) -> int:
    ts = pd.Timestamp(day * _DAY.value, unit="ns")
    if axis.aware:
        ts = ts.tz_localize(axis.tz, nonexistent="shift_forward", ambiguous=False)
    return int(ts.value)


class RateLimit:
    """At most ``calls`` provider calls start in any window of ``seconds``.

    Shared by every call of one cached function, across tasks and threads.
    A caller is granted a start only when the ``calls``-th most recent start
    is at least ``seconds`` old; otherwise it sleeps until then and asks again
    (``asyncio.sleep`` on the async path, ``time.sleep`` on the sync one). The
    grant time is recorded as the start, so late wake-ups never squeeze two
    starts closer than the limit allows.
    """

    def __init__(self, calls: int, seconds: float) -> None:
        if int(calls) < 1 or float(seconds) <= 0:
            raise InvalidOption(
                f"rate_limit={(calls, seconds)!r}: pass (calls >= 1, seconds > 0), such as (5, 1.0)"
            )
        self.calls, self.seconds = int(calls), float(seconds)
        self._starts: collections.deque[float] = collections.deque(maxlen=self.calls)
        self._lock = threading.Lock()

    def _try(self) -> float:
        """Grant a start now (0.0) or say how long to wait before asking again."""
        with self._lock:
            now = time.monotonic()
            starts = self._starts
            if len(starts) == self.calls and now < starts[0] + self.seconds:
                return starts[0] + self.seconds - now
            starts.append(now)
            return 0.0

    def acquire(self) -> None:
        while (wait := self._try()) > 0:
            time.sleep(wait)

    async def aacquire(self) -> None:
        import asyncio  # the async path only

        while (wait := self._try()) > 0:  # noqa: ASYNC110 - waits for a deadline, not an event
            await asyncio.sleep(wait)


def clock_ns(clock: dt.datetime) -> int:
    """A clock reading as UTC nanoseconds (a naive clock is taken as UTC)."""
    return int(pd.Timestamp(clock).value)
