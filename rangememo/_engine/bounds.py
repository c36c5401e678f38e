"""``coerce_bounds=True``: ISO-8601 strings as bounds (what yfinance callers pass).

A string bound is parsed to the axis' type before anything is encoded: a
date-only string (``"2024-01-05"``) is a ``date`` (unless the other bound is
a datetime, which makes it that day's midnight), anything else a
``datetime``. The timezone is the axis': a string without an offset takes the
other bound's zone (naive if that is naive or a string too); one with an
offset is converted into the other bound's zone, or kept as given.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pandas as pd

from .._errors import BoundsTypeError

__all__ = ["as_string", "coerce_bounds"]

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def coerce_bounds(start: Any, end: Any) -> tuple[Any, Any, bool]:
    """The bounds as the axis sees them, and whether the caller gave strings."""
    s_str, e_str = isinstance(start, str), isinstance(end, str)
    if not (s_str or e_str):
        return start, end, False
    if s_str and e_str:
        if _DATE_ONLY.match(start) and _DATE_ONLY.match(end):
            return _parse(start, "start", None).date(), _parse(end, "end", None).date(), True
        s, e = _together(_parse(start, "start", None), _parse(end, "end", None))
        return s, e, True
    other = end if s_str else start
    text = start if s_str else end
    role = "start" if s_str else "end"
    parsed = _parse(text, role, other)
    if isinstance(other, dt.datetime):  # pd.Timestamp too
        value: Any = parsed.to_pydatetime()
    elif isinstance(other, dt.date):
        if not _DATE_ONLY.match(text):
            raise BoundsTypeError(
                f"{role}={text!r} holds a time but the other bound is a date ({other!r}); "
                "pass a date-only string such as '2024-01-05'"
            )
        value = parsed.date()
    else:
        raise BoundsTypeError(
            f"{role}={text!r} is a string but the other bound is a {type(other).__name__} "
            f"({other!r}); coerce_bounds=True parses strings for datetime and date bounds only"
        )
    return (value, end, True) if s_str else (start, value, True)


def _parse(text: str, role: str, other: Any) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise BoundsTypeError(
            f"{role}={text!r} is not an ISO-8601 date or datetime (coerce_bounds=True): {exc}"
        ) from None
    if pd.isna(ts):
        raise BoundsTypeError(f"{role}={text!r} is not a date or datetime (coerce_bounds=True)")
    tz = getattr(other, "tzinfo", None) if isinstance(other, dt.datetime) else None
    if tz is not None:
        ts = ts.tz_localize(tz) if ts.tzinfo is None else ts.tz_convert(tz)
    return ts


def _together(start: pd.Timestamp, end: pd.Timestamp) -> tuple[Any, Any]:
    """Two parsed strings: aware together (end in start's zone) or both naive."""
    if (start.tzinfo is None) != (end.tzinfo is None):
        raise BoundsTypeError(
            f"start={start.isoformat()!r} and end={end.isoformat()!r}: one has a UTC offset "
            "and the other not; give both or neither"
        )
    if start.tzinfo is not None:
        end = end.tz_convert(start.tzinfo)
    return start.to_pydatetime(), end.to_pydatetime()


def as_string(value: Any) -> str:
    """A decoded bound in the form a string-bound caller gave: ISO-8601 text."""
    if isinstance(value, dt.datetime):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
