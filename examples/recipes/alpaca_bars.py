"""Recipe: US stock bars from Alpaca with alpaca-py's ``StockHistoricalDataClient``.

``raw_data=True`` makes the client answer with the API's JSON (a dict of
symbol to bars) instead of its model objects, which is cheaper to turn into a
frame; ``url_override`` points it at another server (a test server, a proxy).

Alpaca stamps a daily bar at midnight New York time, so the bounds are New
York midnights too: on a whole-day step rangememo counts local calendar days,
and a bar at each local midnight lies on the grid (across DST as well).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pandas as pd
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from rangememo import RangeCached, Store, range_cached

COLUMNS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
NEW_YORK = "America/New_York"
# alpaca-py annotates the members of its ``str`` enum ``TimeFrameUnit`` as ``str``
# (``Day: str = "Day"``), which pyright takes literally; mypy does not.
DAY = TimeFrame(1, TimeFrameUnit.Day)  # pyright: ignore[reportArgumentType]


def client(key: str, secret: str, url: str | None = None) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(key, secret, raw_data=True, url_override=url)


def fetch_bars(
    api: StockHistoricalDataClient, symbol: str, start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """Daily bars of ``symbol`` from ``start`` to ``end`` inclusive (alpaca-py follows pages)."""
    request = StockBarsRequest(symbol_or_symbols=symbol, timeframe=DAY, start=start, end=end)
    # With raw_data=True the answer is the JSON dict (the union's other half is BarSet).
    raw = cast(dict[str, list[dict[str, Any]]], api.get_stock_bars(request))
    bars = raw.get(symbol, [])
    frame = pd.DataFrame(bars, columns=["t", *COLUMNS]).rename(columns=COLUMNS)
    stamps = pd.to_datetime(frame.pop("t"), utc=True).dt.tz_convert(NEW_YORK)
    frame.index = pd.DatetimeIndex(stamps, name="ts")
    return frame.astype("float64")


def cached_bars(
    api: StockHistoricalDataClient, store: Store | None = None
) -> RangeCached[[str, dt.datetime, dt.datetime], pd.DataFrame]:
    """``fetch_bars`` behind the cache; weekends and holidays are covered by their empty answers."""

    @range_cached(key="symbol", step="1D", store=store, namespace="recipes.alpaca.bars")
    def get_bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return fetch_bars(api, symbol, start, end)

    return get_bars
