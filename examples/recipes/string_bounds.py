"""Recipe: yfinance-style string bounds (``start="2024-01-01"``), with ``coerce_bounds=True``.

With ``coerce_bounds=True`` rangememo parses ``str`` bounds (ISO-8601) before
planning, and hands each gap to the function as strings again, so the API
sees the same kind of text the caller passed.

yfinance's ``Ticker.history(start=..., end=...)`` takes dates as text and its
``end`` is exclusive, hence ``closed="left"``. The cache calls the function for
each gap with bounds it made itself (strings for string callers, dates for
date callers), so the function accepts either form and hands the API text.
Daily rows are keyed by their session date: the index is made naive
(yfinance stamps them at the exchange's midnight).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

import pandas as pd

from rangememo import RangeCached, Store, range_cached


class Ticker(Protocol):
    """What the recipe needs of a ``yfinance.Ticker``."""

    def history(self, *, start: str, end: str, interval: str = ...) -> pd.DataFrame: ...


Bound = str | dt.date | pd.Timestamp


def as_text(bound: Bound) -> str:
    """A bound as yfinance takes it: ``YYYY-MM-DD``."""
    return pd.Timestamp(bound).strftime("%Y-%m-%d")


def cached_history(
    ticker: Callable[[str], Ticker], store: Store | None = None
) -> RangeCached[[str, Bound, Bound], pd.DataFrame]:
    """``ticker(symbol).history(start, end)`` behind the cache, for string bounds."""

    @range_cached(
        key="symbol",
        step="1D",
        closed="left",
        store=store,
        namespace="recipes.yfinance.history",
        coerce_bounds=True,
    )
    def history(symbol: str, start: Bound, end: Bound) -> pd.DataFrame:
        frame = ticker(symbol).history(start=as_text(start), end=as_text(end), interval="1d")
        if isinstance(frame.index, pd.DatetimeIndex) and frame.index.tz is not None:
            frame.index = frame.index.tz_localize(None)
        return frame

    return history
