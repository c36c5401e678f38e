"""Recipe: a JSON bar API answered as a ``polars.DataFrame``.

polars has no index, so ``index="ts"`` names the time column the cache slices
on. The column is a tz-aware ``Datetime`` (UTC, as the API stamps its bars); the cache
keeps its dtype, time zone and the column order (and the Categorical and
Float32 columns), so the cached answer equals the uncached one under
``polars.testing.assert_frame_equal``. Install with
``pip install -e '.[polars]'`` (from a clone).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import requests

from rangememo import RangeCached, Store, range_cached

COLUMNS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}


def to_frame(symbol: str, bars: list[dict[str, Any]]) -> pl.DataFrame:
    """JSON bars (``t`` in ISO 8601 UTC) as polars: a UTC ``ts``, the symbol, then prices."""
    frame = pl.DataFrame(bars, schema={"t": pl.String, **dict.fromkeys(COLUMNS, pl.Float64)})
    return frame.select(
        pl.col("t")
        .str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us", time_zone="UTC")
        .alias("ts"),
        pl.lit(symbol, dtype=pl.Categorical).alias("symbol"),
        *(
            pl.col(k).cast(pl.Float32 if k == "v" else pl.Float64).alias(v)
            for k, v in COLUMNS.items()
        ),
    )


def fetch_bars(
    session: requests.Session, base_url: str, symbol: str, start: dt.datetime, end: dt.datetime
) -> pl.DataFrame:
    """Daily bars of ``symbol`` from ``start`` to ``end`` inclusive: one HTTP request."""
    params = {"start": start.isoformat(), "end": end.isoformat()}
    response = session.get(f"{base_url}/v1/bars/{symbol}", params=params, timeout=10)
    response.raise_for_status()
    bars: list[dict[str, Any]] = response.json()["bars"]
    return to_frame(symbol, bars)


def cached_bars(
    session: requests.Session, base_url: str, store: Store | None = None
) -> RangeCached[[str, dt.datetime, dt.datetime], pl.DataFrame]:
    """``fetch_bars`` behind the cache, sliced on its ``ts`` column."""

    @range_cached(key="symbol", step="1D", index="ts", store=store, namespace="recipes.polars.bars")
    def get_bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        return fetch_bars(session, base_url, symbol, start, end)

    return get_bars


def main(base_url: str) -> pl.DataFrame:
    with requests.Session() as session:
        get_bars = cached_bars(session, base_url)
        utc = dt.UTC
        get_bars("AAPL", dt.datetime(2024, 3, 1, tzinfo=utc), dt.datetime(2024, 3, 15, tzinfo=utc))
        # Only the days after March 15 are requested: the rest is in the cache.
        return get_bars(
            "AAPL", dt.datetime(2024, 3, 8, tzinfo=utc), dt.datetime(2024, 3, 29, tzinfo=utc)
        )
