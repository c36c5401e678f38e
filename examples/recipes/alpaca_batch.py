"""Recipe: many symbols per call from Alpaca, cached per symbol (``batch=``).

Alpaca's bars endpoint takes a list of symbols; alpaca-py's ``BarSet.df``
answers with a ``(symbol, timestamp)`` MultiIndex. ``batch="symbols"`` makes
each symbol its own cached series and fetches a missing range once for every
symbol missing it; ``by="symbol"`` names the index level that says whose a
row is. ``max_batch`` keeps a call's symbol list under the API's limit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pandas as pd
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest

from rangememo import RangeCached, Store, range_cached

from .alpaca_bars import COLUMNS, DAY, NEW_YORK


def fetch_bars(
    api: StockHistoricalDataClient, symbols: list[str], start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """Daily bars of every symbol, ``start`` to ``end`` inclusive, in Alpaca's shape."""
    request = StockBarsRequest(symbol_or_symbols=symbols, timeframe=DAY, start=start, end=end)
    raw = cast(dict[str, list[dict[str, Any]]], api.get_stock_bars(request))
    frames: list[pd.DataFrame] = []
    for symbol in symbols:
        frame = pd.DataFrame(raw.get(symbol, []), columns=["t", *COLUMNS]).rename(columns=COLUMNS)
        stamps = pd.to_datetime(frame.pop("t"), utc=True).dt.tz_convert(NEW_YORK)
        frame.index = pd.MultiIndex.from_arrays(
            [[symbol] * len(frame), stamps], names=["symbol", "timestamp"]
        )
        frames.append(frame.astype("float64"))
    return pd.concat(frames)


def cached_bars(
    api: StockHistoricalDataClient, store: Store | None = None, max_batch: int = 200
) -> RangeCached[[list[str], dt.datetime, dt.datetime], pd.DataFrame]:
    """``fetch_bars`` behind the cache, one series per symbol."""

    @range_cached(
        batch="symbols",
        by="symbol",
        max_batch=max_batch,
        step="1D",
        store=store,
        namespace="recipes.alpaca.batch",
    )
    def get_bars(symbols: list[str], start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return fetch_bars(api, symbols, start, end)

    return get_bars
