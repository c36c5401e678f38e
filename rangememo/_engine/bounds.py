"""``coerce_bounds=True``: ISO-8601 strings as bounds (what yfinance callers pass).

A string bound is parsed to the axis' type before anything is encoded: a
date-only string (``"2024-01-05"``) is a ``date`` (unless the other bound is
a datetime, which makes it that day's midnight), anything else a
``datetime``. The timezone is the axis': a string without an offset takes the
other bound's zone (naive if that is naive or a string too); one with an
offset is converted into the other bound's zone, or kept as given.

Parsing is the standard library's ``fromisoformat``, not ``pd.Timestamp``:
pandas also reads ``"now"``, ``"today"`` and ``"Jan 5"``, which would make a
key's coverage depend on when, or where, the call ran.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from .._errors import BoundsTypeError

__all__ = ["as_string", "coerce_bounds"]

_EXAMPLE = "such as '2024-01-05', '2024-01-05T09:30' or '2024-01-05T09:30:00-05:00'"


def coerce_bounds(start: Any, end: Any) -> tuple[Any, Any, bool]:
    """The bounds as the axis sees them, and whether the caller gave strings.

    Either bound may be ``None`` (``invalidate(start=...)`` alone): the other
    is then parsed on its own.
    """
    s_str, e_str = isinstance(start, str), isinstance(end, str)
    if not (s_str or e_str):
        return start, end, False
    if s_str and e_str:
        s, e = _parse(start, "start"), _parse(end, "end")
        if type(s) is dt.date and type(e) is dt.date:
            return s, e, True
        s, e = _together(_midnight(s), _midnight(e), start, end)
        return s, e, True
    text: str = start if s_str else end
    other = end if s_str else start
    role = "start" if s_str else "end"
    value = _against(_parse(text, role), text, role, other)
    return (value, end, True) if s_str else (start, value, True)


def _parse(text: str, role: str) -> dt.date | dt.datetime:
    try:
        return dt.date.fromisoformat(text)  # date-only text, and nothing else
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise BoundsTypeError(
            f"{role}={text!r} is not an ISO-8601 date or datetime (coerce_bounds=True); "
            f"pass one {_EXAMPLE}"
        ) from None


def _midnight(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day)


def _against(parsed: dt.date | dt.datetime, text: str, role: str, other: Any) -> Any:
    """One string bound, in the type and zone of the other bound."""
    if other is None:
        return parsed
    if isinstance(other, dt.datetime):  # pd.Timestamp too
        value = _midnight(parsed)
        tz = other.tzinfo
        if tz is None:
            if value.tzinfo is not None:
                raise BoundsTypeError(
                    f"{role}={text!r} has a UTC offset but the other bound ({other!r}) is "
                    "naive; give both an offset or neither"
                )
            return value
        if value.tzinfo is not None:
            moved = pd.Timestamp(value).tz_convert(tz)
        else:
            moved = _localize(value, tz, text, role)
        # A Timestamp stays one: a pytz zone's datetime would carry a fixed-offset tzinfo.
        return moved if isinstance(other, pd.Timestamp) else moved.to_pydatetime()
    if isinstance(other, dt.date):
        if type(parsed) is not dt.date:
            raise BoundsTypeError(
                f"{role}={text!r} holds a time but the other bound is a date ({other!r}); "
                "pass a date-only string such as '2024-01-05'"
            )
        return parsed
    raise BoundsTypeError(
        f"{role}={text!r} is a string but the other bound is a {type(other).__name__} "
        f"({other!r}); coerce_bounds=True parses strings for datetime and date bounds only"
    )


def _localize(value: dt.datetime, tz: Any, text: str, role: str) -> pd.Timestamp:
    """A wall time in ``tz``; one that does not exist or happens twice (DST) is refused."""
    try:
        local = pd.Timestamp(value).tz_localize(tz, ambiguous="raise", nonexistent="raise")
    except Exception as exc:  # ValueError in pandas 3; pytz's own classes in older ones
        raise BoundsTypeError(
            f"{role}={text!r} is not one instant in {tz} ({type(exc).__name__}: {exc}); "
            "give it a UTC offset, e.g. '2024-11-03T01:30:00-05:00'"
        ) from None
    return local


def _together(start: dt.datetime, end: dt.datetime, s_text: str, e_text: str) -> tuple[Any, Any]:
    """Two parsed strings: aware together (end in start's zone) or both naive."""
    if (start.tzinfo is None) != (end.tzinfo is None):
        raise BoundsTypeError(
            f"start={s_text!r} and end={e_text!r}: one has a UTC offset "
            "and the other not; give both or neither"
        )
    if start.tzinfo is not None:
        end = end.astimezone(start.tzinfo)
    return start, end


def as_string(value: Any) -> str:
    """A decoded bound in the form a string-bound caller gave: ISO-8601 text."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)
