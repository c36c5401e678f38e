"""Recipe: an async JSON REST API called with ``httpx.AsyncClient``.

The client is made once and shared; the cached function is built around it by
a small factory, so the same code can point at production or a test server.
``namespace`` is given because the function closes over the client: it names
what the entries are (the same API, whatever client object reaches it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pandas as pd

from rangememo import AsyncRangeCached, Store, range_cached

COLUMNS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}


def to_frame(bars: list[dict[str, Any]]) -> pd.DataFrame:
    """JSON bars (``t`` in ISO 8601 UTC) as a frame indexed by a UTC ``ts``."""
    frame = pd.DataFrame(bars, columns=["t", *COLUMNS]).rename(columns=COLUMNS)
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("t"), utc=True), name="ts")
    return frame.astype("float64")


async def fetch_bars(
    client: httpx.AsyncClient, symbol: str, start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """Daily bars of ``symbol`` from ``start`` to ``end`` inclusive: one HTTP request."""
    params = {"start": start.isoformat(), "end": end.isoformat()}
    response = await client.get(f"/v1/bars/{symbol}", params=params)
    response.raise_for_status()
    bars: list[dict[str, Any]] = response.json()["bars"]
    return to_frame(bars)


def cached_bars(
    client: httpx.AsyncClient, store: Store | None = None
) -> AsyncRangeCached[[str, dt.datetime, dt.datetime], pd.DataFrame]:
    """``fetch_bars`` behind the cache: each day is requested once."""

    @range_cached(key="symbol", step="1D", store=store, namespace="recipes.httpx.bars")
    async def get_bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return await fetch_bars(client, symbol, start, end)

    return get_bars


async def main(base_url: str) -> pd.DataFrame:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        get_bars = cached_bars(client)
        utc = dt.UTC
        await get_bars(
            "AAPL", dt.datetime(2024, 1, 1, tzinfo=utc), dt.datetime(2024, 1, 31, tzinfo=utc)
        )
        # Only February is requested: January is in the cache.
        return await get_bars(
            "AAPL", dt.datetime(2024, 1, 15, tzinfo=utc), dt.datetime(2024, 2, 29, tzinfo=utc)
        )
