"""Each recipe (examples/recipes/) runs with its real client library against a loopback
server answering in the real API's shape: the cached answers equal the uncached
ones, and a second, overlapping call asks the server only for what is new."""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import recipe_server
from pandas.testing import assert_frame_equal

from rangememo import MemoryStore, ParquetStore

ROOT = Path(__file__).parent.parent
if str(ROOT) not in sys.path:  # the recipes are imported as examples.recipes.*
    sys.path.insert(0, str(ROOT))

UTC = dt.UTC
NY = ZoneInfo("America/New_York")


@pytest.fixture
def server() -> Iterator[recipe_server.BarServer]:
    running = recipe_server.start()
    try:
        yield running.state
    finally:
        running.stop()


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path / "cache")


def utc(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, tzinfo=UTC)


def ny(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, tzinfo=NY)


def expected_days(first: dt.date, last: dt.date, weekdays_only: bool) -> list[dt.date]:
    return list(recipe_server.days(first, last, weekdays_only))


# -- httpx (async) --------------------------------------------------------------------------


async def test_httpx_async(server: recipe_server.BarServer, store: Any) -> None:
    httpx = pytest.importorskip("httpx")
    from examples.recipes import httpx_async as recipe

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        get_bars = recipe.cached_bars(client, store)
        first = await get_bars("AAPL", utc(2024, 1, 1), utc(2024, 1, 31))
        assert len(server.requests) == 1
        second = await get_bars("AAPL", utc(2024, 1, 15), utc(2024, 2, 29))
        plain = await recipe.fetch_bars(client, "AAPL", utc(2024, 1, 15), utc(2024, 2, 29))
    assert_frame_equal(second, plain)
    # The second call asked only for February.
    asked = server.requests[1].query
    assert asked["start"].startswith("2024-02-01") and asked["end"].startswith("2024-02-29")
    days = [ts.date() for ts in first.index]
    assert days == expected_days(dt.date(2024, 1, 1), dt.date(2024, 1, 31), True)
    assert str(first.index.tz) == "UTC" and first.index.name == "ts"
    assert first.loc["2024-01-02", "close"] == recipe_server.bar(dt.date(2024, 1, 2), "AAPL")["c"]


async def test_httpx_main(server: recipe_server.BarServer) -> None:
    pytest.importorskip("httpx")
    from examples.recipes import httpx_async as recipe

    frame = await recipe.main(server.url)
    assert frame.index[0].date() == dt.date(2024, 1, 15)
    assert frame.index[-1].date() == dt.date(2024, 2, 29)


# -- requests (sync) ------------------------------------------------------------------------


def test_requests_session(server: recipe_server.BarServer, store: Any) -> None:
    requests = pytest.importorskip("requests")
    from examples.recipes import requests_sync as recipe

    with requests.Session() as session:
        get_bars = recipe.cached_bars(session, server.url, store)
        year = get_bars("MSFT", utc(2023, 1, 1), utc(2023, 12, 31))
        # 365 days in calls of at most 90: five requests, none overlapping.
        assert len(server.requests) == 5
        spans = sorted((r.query["start"][:10], r.query["end"][:10]) for r in server.requests)
        assert spans[0][0] == "2023-01-01" and spans[-1][1] == "2023-12-31"
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert dt.date.fromisoformat(end) + dt.timedelta(days=1) == dt.date.fromisoformat(start)
        again = get_bars("MSFT", utc(2023, 3, 1), utc(2023, 3, 31))
        assert len(server.requests) == 5  # a hit
        plain = recipe.fetch_bars(session, server.url, "MSFT", utc(2023, 3, 1), utc(2023, 3, 31))
    assert_frame_equal(again, plain)
    assert len(year) == len(expected_days(dt.date(2023, 1, 1), dt.date(2023, 12, 31), True))


def test_requests_main(server: recipe_server.BarServer) -> None:
    pytest.importorskip("requests")
    from examples.recipes import requests_sync as recipe

    frame = recipe.main(server.url)
    assert frame.index[0].date() == dt.date(2023, 1, 2)  # the first weekday


# -- alpaca-py ------------------------------------------------------------------------------


def test_alpaca_batch(server: recipe_server.BarServer, store: Any) -> None:
    pytest.importorskip("alpaca")
    from examples.recipes import alpaca_bars
    from examples.recipes import alpaca_batch as recipe

    api = alpaca_bars.client("key", "secret", server.url)
    get_bars = recipe.cached_bars(api, store, max_batch=2)
    get_bars(["AAPL", "MSFT"], ny(2024, 3, 1), ny(2024, 3, 15))
    members = ["TSLA", "MSFT", "AAPL"]
    got = get_bars(members, ny(2024, 3, 8), ny(2024, 3, 22))
    calls = [c.query for c in server.hits("/v2/stocks/bars")]
    # One call for the first pair; then MSFT and AAPL share their new week and
    # TSLA has its own range: each symbol's days are asked for once.
    # (The second call's two provider calls run concurrently, in either order.)
    assert calls[0]["symbols"] == "AAPL,MSFT"
    by_symbols = {c["symbols"]: c for c in calls[1:]}
    assert sorted(by_symbols) == ["MSFT,AAPL", "TSLA"]
    assert by_symbols["MSFT,AAPL"]["start"] == "2024-03-16T04:00:00+00:00"
    assert by_symbols["TSLA"]["start"] == "2024-03-08T05:00:00+00:00"
    plain = recipe.fetch_bars(api, members, ny(2024, 3, 8), ny(2024, 3, 22))
    assert_frame_equal(got, plain)
    assert list(got.index.get_level_values("symbol").unique()) == members
    assert len(server.hits("/v2/stocks/bars")) == 4  # and one uncached call


def test_alpaca(server: recipe_server.BarServer, store: Any) -> None:
    pytest.importorskip("alpaca")
    from examples.recipes import alpaca_bars as recipe

    api = recipe.client("key", "secret", server.url)
    get_bars = recipe.cached_bars(api, store)
    # Across the March 2024 DST change: New York midnights are 05:00 then 04:00 UTC.
    first = get_bars("AAPL", ny(2024, 3, 1), ny(2024, 3, 15))
    second = get_bars("AAPL", ny(2024, 3, 8), ny(2024, 3, 22))
    calls = server.hits("/v2/stocks/bars")
    assert len(calls) == 2
    assert calls[1].query["start"] == "2024-03-16T04:00:00+00:00"  # only the new week
    plain = recipe.fetch_bars(api, "AAPL", ny(2024, 3, 8), ny(2024, 3, 22))
    assert_frame_equal(second, plain)
    assert [ts.date() for ts in first.index] == expected_days(
        dt.date(2024, 3, 1), dt.date(2024, 3, 15), True
    )
    assert all(ts.hour == 0 for ts in first.index)  # local midnights, either side of DST
    assert get_bars("AAPL", ny(2024, 3, 4), ny(2024, 3, 20)).equals(
        recipe.fetch_bars(api, "AAPL", ny(2024, 3, 4), ny(2024, 3, 20))
    )
    assert len(server.hits("/v2/stocks/bars")) == 4  # the two uncached calls only


# -- massive (formerly polygon) -------------------------------------------------------------


def test_massive(server: recipe_server.BarServer, store: Any) -> None:
    pytest.importorskip("massive")
    from examples.recipes import massive_aggs as recipe

    api = recipe.client("key", server.url)
    get_aggs = recipe.cached_aggs(api, store)
    first = get_aggs("AAPL", ny(2024, 10, 21), ny(2024, 11, 8))  # across the November change
    second = get_aggs("AAPL", ny(2024, 10, 1), ny(2024, 11, 8))
    calls = server.hits("/v2/aggs/ticker/AAPL/range/1/day/")
    assert len(calls) == 2
    plain = recipe.fetch_aggs(api, "AAPL", ny(2024, 10, 1), ny(2024, 11, 8))
    assert_frame_equal(second, plain)
    lo_ms, hi_ms = (int(x) for x in calls[1].path.rsplit("/", 2)[1:])
    assert dt.datetime.fromtimestamp(lo_ms / 1000, NY) == ny(2024, 10, 1)
    assert dt.datetime.fromtimestamp(hi_ms / 1000, NY) == ny(2024, 10, 20)
    assert [ts.date() for ts in first.index] == expected_days(
        dt.date(2024, 10, 21), dt.date(2024, 11, 8), True
    )


# -- ccxt -----------------------------------------------------------------------------------


def test_ccxt(server: recipe_server.BarServer, store: Any) -> None:
    pytest.importorskip("ccxt")
    from examples.recipes import ccxt_ohlcv as recipe

    client = recipe.exchange(server.url + "/api/v3")
    get_candles = recipe.cached_candles(client, store)
    # 2021-01-01 .. 2023-12-31: 1,095 days, more than one 1,000-candle page.
    three_years = get_candles("BTC/USDT", utc(2021, 1, 1), utc(2023, 12, 31))
    klines = server.hits("/api/v3/klines")
    assert len(klines) == 2
    assert all(int(k.query["limit"]) <= 1000 for k in klines)
    assert len(three_years) == 1095
    again = get_candles("BTC/USDT", utc(2023, 6, 1), utc(2024, 1, 10))
    new = server.hits("/api/v3/klines")[2:]
    assert len(new) == 1 and int(new[0].query["startTime"]) == 1704067200000  # 2024-01-01
    plain = recipe.fetch_candles(client, "BTC/USDT", utc(2023, 6, 1), utc(2024, 1, 10))
    assert_frame_equal(again, plain)


# -- yfinance-style string bounds -----------------------------------------------------------


class FakeTicker:
    """Answers like ``yfinance.Ticker.history``: ``end`` exclusive, a tz-aware ``Date`` index."""

    def __init__(self, symbol: str, log: list[tuple[str, str, str]]) -> None:
        self.symbol, self.log = symbol, log

    def history(self, *, start: str, end: str, interval: str = "1d") -> pd.DataFrame:
        assert isinstance(start, str) and isinstance(end, str), (start, end)
        self.log.append((self.symbol, start, end))
        last = dt.date.fromisoformat(end) - dt.timedelta(days=1)
        days = expected_days(dt.date.fromisoformat(start), last, True)
        rows = [recipe_server.bar(d, self.symbol) for d in days]
        index = pd.DatetimeIndex([pd.Timestamp(d).tz_localize(NY) for d in days], name="Date")
        frame = pd.DataFrame(rows, index=index, columns=["o", "h", "l", "c", "v"], dtype="float64")
        return frame.rename(columns={"o": "Open", "h": "High", "l": "Low", "c": "Close"})


def test_string_bounds(store: Any) -> None:
    from examples.recipes import string_bounds as recipe

    log: list[tuple[str, str, str]] = []
    history = recipe.cached_history(lambda s: FakeTicker(s, log), store)
    jan = history("SPY", "2024-01-01", "2024-02-01")
    assert log == [("SPY", "2024-01-01", "2024-02-01")]
    both = history("SPY", "2024-01-15", "2024-03-01")
    assert log[1:] == [("SPY", "2024-02-01", "2024-03-01")]
    plain = FakeTicker("SPY", []).history(start="2024-01-15", end="2024-03-01")
    plain.index = plain.index.tz_localize(None)
    assert_frame_equal(both, plain)
    assert jan.index[-1] == pd.Timestamp("2024-01-31")


# -- the Dask sweep --------------------------------------------------------------------------


def test_dask_recipe_is_the_tested_example() -> None:
    """docs/recipes.md links examples/dask_sweep.py, which tests/test_examples.py runs."""
    assert (ROOT / "examples" / "dask_sweep.py").exists()
    assert "examples/dask_sweep.py" in (ROOT / "docs" / "recipes.md").read_text()


# -- polars ---------------------------------------------------------------------------------


def test_polars_bars(server: recipe_server.BarServer, store: Any) -> None:
    pytest.importorskip("requests")
    pl_testing = pytest.importorskip("polars.testing")
    import polars as pl
    import requests

    from examples.recipes import polars_bars as recipe

    with requests.Session() as session:
        get_bars = recipe.cached_bars(session, server.url, store)
        first = get_bars("AAPL", utc(2024, 3, 1), utc(2024, 3, 15))
        second = get_bars("AAPL", utc(2024, 3, 8), utc(2024, 3, 29))
        assert len(server.requests) == 2
        assert server.requests[1].query["start"].startswith("2024-03-16")
        plain = recipe.fetch_bars(session, server.url, "AAPL", utc(2024, 3, 8), utc(2024, 3, 29))
    pl_testing.assert_frame_equal(second, plain)
    assert first.columns == ["ts", "symbol", "open", "high", "low", "close", "volume"]
    assert first.schema["ts"] == pl.Datetime("us", "UTC")
    assert first.schema["volume"] == pl.Float32
    got_days = [ts.date() for ts in first["ts"]]
    assert got_days == expected_days(dt.date(2024, 3, 1), dt.date(2024, 3, 15), True)
    assert first["close"][0] == recipe_server.bar(dt.date(2024, 3, 1), "AAPL")["c"]


def test_polars_main(server: recipe_server.BarServer) -> None:
    pytest.importorskip("requests")
    pytest.importorskip("polars")
    from examples.recipes import polars_bars as recipe

    frame = recipe.main(server.url)
    assert frame["ts"][0].date() == dt.date(2024, 3, 8) and len(server.requests) == 2
