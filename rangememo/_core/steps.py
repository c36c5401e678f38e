"""Step and span options in axis units (pure, no I/O): ``step="1D"``, ``settle``, ``ttl``."""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._errors import InvalidOption

__all__ = ["DAY_NS", "AxisKind", "parse_step", "parse_step_cached", "span_ns"]

AxisKind = Literal["datetime", "date", "int"]

DAY_NS = 86_400 * 10**9


@functools.lru_cache(maxsize=256)
def parse_step_cached(step: Any, kind: AxisKind) -> int:
    # Parsing an alias costs ~10 µs; calls repeat the same few steps.
    return parse_step(step, kind)


def parse_step(step: Any, kind: AxisKind) -> int:
    """Turn a ``step`` option into axis units; ``None`` means the resolution.

    A ``date`` axis always steps by whole days (a date cannot be finer).
    """
    if step is None:
        return DAY_NS if kind == "date" else 1
    if isinstance(step, np.timedelta64):  # a subclass of np.integer, but a span
        if kind == "int":
            raise InvalidOption(
                f"step={step!r} is a span but the bounds are ints; pass a positive int such as 1"
            )
        step = pd.Timedelta(step)
    if kind == "int":
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
            raise InvalidOption(
                f"step={step!r} for integer bounds: pass a positive int (a count), such as 1"
            )
        return int(step)
    if isinstance(step, (int, np.integer)) and not isinstance(step, bool):
        raise InvalidOption(
            f"step={step!r} is an int but the bounds are {kind}s; "
            "pass a timedelta or an alias such as '1D' or '5min'"
        )
    ns = span_ns(step, "step")
    if ns is None or ns < 1:
        raise InvalidOption(f"step={step!r} is not positive; pass a span such as '1D' or '5min'")
    if kind == "date" and ns % DAY_NS:
        raise InvalidOption(
            f"step={step!r} for date bounds must be whole days; pass '1D' (or datetimes)"
        )
    return ns


def span_ns(value: Any, name: str) -> int | None:
    """A timedelta-like option in nanoseconds (``None`` stays ``None``).

    Accepts a ``timedelta``, ``pd.Timedelta``, ``np.timedelta64`` or a fixed
    pandas alias (``"1D"``, ``"15min"``); ``InvalidOption`` names anything else.
    """
    if value is None:
        return None
    span = value
    try:
        if isinstance(value, bool):
            raise TypeError("a bool is no span")
        if isinstance(value, str):
            span = pd.tseries.frequencies.to_offset(value)
        ns = int(pd.Timedelta(span).value)
    except (TypeError, ValueError, OverflowError) as exc:
        hint = ""
        if isinstance(span, pd.DateOffset):
            hint = f" (a {type(span).__name__} has no fixed length: pass '1D', and calendar= "
            hint += "to skip days without a session)"
        raise InvalidOption(
            f"{name}={value!r} is not a fixed span{hint}; pass a timedelta or an alias "
            f"such as '1D' or '15min' ({exc})"
        ) from None
    if ns < 0:
        raise InvalidOption(f"{name}={value!r} is negative; pass a span of zero or more")
    return ns
