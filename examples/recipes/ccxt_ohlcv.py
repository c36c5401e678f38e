"""Recipe: crypto candles from an exchange through ccxt's ``fetch_ohlcv``.

ccxt takes ``since`` (Unix ms) and a ``limit``; ``params={"until": ms}`` bounds
the end. Binance answers at most 1,000 candles a request, so ``max_span``
keeps each gap within one page. Candles are 24/7 and stamped at UTC midnight:
the bounds are UTC datetimes on the same daily grid.

ccxt ships no type information, so the exchange object is held as ``Any``
(the one cast below) and its answer is checked and converted to a frame here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import ccxt
import pandas as pd

from rangememo import RangeCached, Store, range_cached

COLUMNS = ["open", "high", "low", "close", "volume"]


def exchange(api_url: str | None = None) -> Any:
    """A Binance client; ``api_url`` points its public REST endpoints elsewhere (a test server)."""
    # Spot markets only: loading them is one request (futures and options are more).
    config = {"enableRateLimit": False, "options": {"fetchMarkets": {"types": ["spot"]}}}
    client = cast(Any, ccxt).binance(config)
    if api_url is not None:
        client.urls["api"]["public"] = api_url
    return client


def fetch_candles(client: Any, symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Daily candles of ``symbol`` (``"BTC/USDT"``) from ``start`` to ``end`` inclusive."""
    since, until = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    rows: list[list[float]] = client.fetch_ohlcv(symbol, "1d", since=since, params={"until": until})
    frame = pd.DataFrame([r[1:6] for r in rows], columns=COLUMNS, dtype="float64")
    frame.index = pd.DatetimeIndex(
        pd.to_datetime([r[0] for r in rows], unit="ms", utc=True), name="ts"
    )
    return frame


def cached_candles(
    client: Any, store: Store | None = None
) -> RangeCached[[str, dt.datetime, dt.datetime], pd.DataFrame]:
    """``fetch_candles`` behind the cache, one page (1,000 days) per request at most."""

    @range_cached(
        key="symbol", step="1D", store=store, namespace="recipes.ccxt.binance", max_span="1000D"
    )
    def get_candles(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return fetch_candles(client, symbol, start, end)

    return get_candles
