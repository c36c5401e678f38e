"""Recipe: aggregates from Massive (formerly Polygon.io) with its ``RESTClient``.

``RESTClient(base=...)`` points the client at another server (a test server, a
proxy). ``get_aggs`` takes the range as datetimes (sent as Unix ms, both ends
inclusive) and answers with ``Agg`` objects; each is stamped with Unix ms at
midnight New York time for daily bars, so the bounds are New York midnights.

The ``massive`` package ships no type information: the client is held as
``Any`` (the cast in ``client``) and each ``Agg``'s fields are read by name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import massive
import pandas as pd

from rangememo import RangeCached, Store, range_cached

COLUMNS = ["open", "high", "low", "close", "volume"]
NEW_YORK = "America/New_York"


def client(api_key: str, base: str = "https://api.massive.com") -> Any:
    return cast(Any, massive).RESTClient(api_key=api_key, base=base, retries=0)


def fetch_aggs(api: Any, ticker: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Daily aggregates of ``ticker`` from ``start`` to ``end`` inclusive: one request."""
    aggs: list[Any] = api.get_aggs(ticker, 1, "day", from_=start, to=end, limit=50_000)
    frame = pd.DataFrame([[getattr(a, c) for c in COLUMNS] for a in aggs], columns=COLUMNS)
    stamps = pd.to_datetime([a.timestamp for a in aggs], unit="ms", utc=True).tz_convert(NEW_YORK)
    frame.index = pd.DatetimeIndex(stamps, name="ts")
    return frame.astype("float64")


def cached_aggs(
    api: Any, store: Store | None = None
) -> RangeCached[[str, dt.datetime, dt.datetime], pd.DataFrame]:
    """``fetch_aggs`` behind the cache: each day is requested once."""

    @range_cached(key="ticker", step="1D", store=store, namespace="recipes.massive.aggs")
    def get_aggs(ticker: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return fetch_aggs(api, ticker, start, end)

    return get_aggs
