"""Checking ``range_cached``'s options at decoration, before any call.

Whatever an option's value alone shows to be wrong fails here with
:class:`~rangememo.InvalidOption`, naming the value and what to pass instead.
What depends on the bounds (an ``int`` step is right for int bounds only) is
checked at the first call it affects.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from .._core.steps import span_ns
from .._errors import InvalidOption

__all__ = ["check_options", "is_auto"]

_SPANS = ("readahead", "max_readahead", "lookback", "coalesce", "max_span")


def is_auto(value: Any) -> bool:
    """Is ``value`` the adaptive readahead (``"auto"``)?"""
    return isinstance(value, str) and value == "auto"


def _count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_step(step: Any) -> None:
    """A fixed step: a positive int (int bounds) or a positive fixed span (time bounds)."""
    if step is None or (callable(step) and not isinstance(step, (dt.timedelta, np.timedelta64))):
        return
    if _count(step):
        if step < 1:
            raise InvalidOption(f"step={step!r}: pass a positive int (int bounds) or a span")
        return
    ns = span_ns(step, "step")
    if not ns:
        raise InvalidOption(f"step={step!r} is zero; pass a positive span such as '1D'")


def check_options(o: Any) -> None:
    """Everything about ``Options`` ``o`` that no call is needed to know."""
    if o.closed not in ("both", "left"):
        raise InvalidOption(
            f"closed={o.closed!r}: pass closed='both' (end inclusive, the usual bar API) "
            "or closed='left' (end exclusive)"
        )
    if not _count(o.max_concurrency) or o.max_concurrency < 1:
        raise InvalidOption(f"max_concurrency={o.max_concurrency!r}: pass an int >= 1")
    for role in ("start", "end"):
        if not isinstance(getattr(o, role), str):
            raise InvalidOption(f"{role}={getattr(o, role)!r}: pass the argument's name")
    if o.index is not None and not isinstance(o.index, str):
        raise InvalidOption(f"index={o.index!r}: pass a column name, or None for the index")
    check_step(o.step)
    if o.settle is not False:  # False: every bar is final (the old default)
        span_ns(o.settle, "settle")
    span_ns(o.ttl, "ttl")
    if o.ttl is not None and o.settle is False:
        raise InvalidOption("ttl= has no effect with settle=False (nothing is provisional)")
    for name in _SPANS:
        value = getattr(o, name)
        if name == "readahead" and is_auto(value):
            continue
        if value is None or (_count(value) and value >= 1):
            continue
        if _count(value) or not span_ns(value, name):
            raise InvalidOption(f"{name}={value!r}: pass a positive count of steps, or a span")
    if o.max_readahead is not None and not is_auto(o.readahead):
        raise InvalidOption(
            f"max_readahead={o.max_readahead!r} caps readahead='auto' only, "
            f"not readahead={o.readahead!r}; drop one of them"
        )
    if o.rate_limit is not None:
        calls: Any = None
        seconds: Any = None
        if isinstance(o.rate_limit, (tuple, list)) and len(o.rate_limit) == 2:
            calls, seconds = o.rate_limit
        if not _count(calls) or calls < 1 or not _positive_number(seconds):
            raise InvalidOption(
                f"rate_limit={o.rate_limit!r}: pass (calls >= 1, seconds > 0), such as (5, 1.0)"
            )
    if o.namespace is not None and (not isinstance(o.namespace, str) or not o.namespace):
        raise InvalidOption(f"namespace={o.namespace!r}: pass a non-empty string")
    version = o.version
    if isinstance(version, bool) or not isinstance(version, (int, str)) or version == "":
        raise InvalidOption(f"version={version!r}: pass an int, a string, or 'auto'")
    for name in ("stale_if_error", "coerce_bounds"):
        if not isinstance(getattr(o, name), bool):
            raise InvalidOption(f"{name}={getattr(o, name)!r}: pass True or False")
    if not callable(o.clock):
        raise InvalidOption(f"clock={o.clock!r}: pass a callable returning a datetime")


def _positive_number(value: Any) -> bool:
    return bool(
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and value > 0
    )
