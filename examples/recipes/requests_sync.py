"""Recipe: a sync JSON REST API called with a ``requests.Session``.

A ``Session`` keeps its connections alive between calls; the cache's worker
threads (``max_concurrency``, for a ``max_span`` split) share it, which
``requests`` allows for plain GETs. The session is bound by a factory, as in
the httpx recipe.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import requests

from rangememo import RangeCached, Store, range_cached

from .httpx_async import to_frame


def fetch_bars(
    session: requests.Session, base_url: str, symbol: str, start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """Daily bars of ``symbol`` from ``start`` to ``end`` inclusive: one HTTP request."""
    params = {"start": start.isoformat(), "end": end.isoformat()}
    response = session.get(f"{base_url}/v1/bars/{symbol}", params=params, timeout=10)
    response.raise_for_status()
    bars: list[dict[str, Any]] = response.json()["bars"]
    return to_frame(bars)


def cached_bars(
    session: requests.Session, base_url: str, store: Store | None = None
) -> RangeCached[[str, dt.datetime, dt.datetime], pd.DataFrame]:
    """``fetch_bars`` behind the cache; at most 90 days per request, 3 at once."""

    @range_cached(
        key="symbol",
        step="1D",
        store=store,
        namespace="recipes.requests.bars",
        max_span="90D",
        max_concurrency=3,
    )
    def get_bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return fetch_bars(session, base_url, symbol, start, end)

    return get_bars


def main(base_url: str) -> pd.DataFrame:
    with requests.Session() as session:
        get_bars = cached_bars(session, base_url)
        utc = dt.UTC
        return get_bars(
            "MSFT", dt.datetime(2023, 1, 1, tzinfo=utc), dt.datetime(2023, 12, 31, tzinfo=utc)
        )
