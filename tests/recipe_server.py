"""A loopback HTTP server answering in the shapes of the real bar APIs the recipes call.

Every bar is computed from its date, so any two answers for one day agree, and
every request is recorded, so a test can check that the cache asked only for
the gaps. It listens on 127.0.0.1 only: the recipes' tests never reach the network.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

UTC = dt.UTC
NEW_YORK = ZoneInfo("America/New_York")
DAY = dt.timedelta(days=1)


def bar(day: dt.date, symbol: str) -> dict[str, float]:
    """The bar of ``symbol`` on ``day``: a function of both, so every answer agrees."""
    base = 100.0 + (day.toordinal() % 97) + len(symbol)
    return {"o": base, "h": base + 2.5, "l": base - 1.5, "c": base + 1.0, "v": 1000.0 + day.day}


def days(first: dt.date, last: dt.date, weekdays_only: bool) -> Iterator[dt.date]:
    d = first
    while d <= last:
        if not weekdays_only or d.weekday() < 5:
            yield d
        d += DAY


def _ms(day: dt.date, tz: dt.tzinfo = UTC) -> int:
    """Unix ms of ``day``'s midnight in ``tz`` (US stock APIs stamp daily bars at New York's)."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


def _iso_utc(day: dt.date, tz: dt.tzinfo) -> str:
    stamp = dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _day_of(value: str) -> dt.date:
    """A bound as an API receives it: ISO text (``Z`` or offset), a date, or Unix ms.

    The day is New York's for a stock API's bounds (its midnight is 04:00 or 05:00
    UTC), which equals the UTC day of a UTC midnight.
    """
    if value.isdigit():
        stamp = dt.datetime.fromtimestamp(int(value) / 1000, UTC)
    else:
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            return stamp.date()
    utc = stamp.astimezone(UTC)
    return utc.date() if utc.hour == 0 else stamp.astimezone(NEW_YORK).date()


@dataclass
class Recorded:
    path: str
    query: dict[str, str]


@dataclass
class BarServer:
    """The running server: its base URL and every request it answered."""

    url: str
    requests: list[Recorded] = field(default_factory=list)

    def hits(self, prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(prefix)]


def _generic(symbol: str, q: dict[str, str]) -> Any:
    """GET /v1/bars/{symbol}?start=ISO&end=ISO (inclusive): a plain JSON REST API."""
    first, last = _day_of(q["start"]), _day_of(q["end"])
    out = [{"t": f"{d.isoformat()}T00:00:00Z", **bar(d, symbol)} for d in days(first, last, True)]
    return {"symbol": symbol, "bars": out}


def _alpaca(q: dict[str, str]) -> Any:
    """GET /v2/stocks/bars?symbols=..&timeframe=1Day&start=..&end=.. (Alpaca market data v2)."""
    first, last = _day_of(q["start"]), _day_of(q["end"])
    bars: dict[str, list[dict[str, Any]]] = {}
    for symbol in q["symbols"].split(","):
        bars[symbol] = [
            {
                "t": _iso_utc(d, NEW_YORK),
                **bar(d, symbol),
                "n": 10,
                "vw": bar(d, symbol)["c"],
            }
            for d in days(first, last, True)
        ]
    return {"bars": bars, "next_page_token": None}


def _massive(parts: list[str], q: dict[str, str]) -> Any:
    """GET /v2/aggs/ticker/{T}/range/1/day/{from}/{to} (Massive, formerly Polygon)."""
    ticker, first, last = parts[3], _day_of(parts[7]), _day_of(parts[8])
    results = [
        {"t": _ms(d, NEW_YORK), **bar(d, ticker), "vw": bar(d, ticker)["c"], "n": 10}
        for d in days(first, last, True)
    ]
    return {
        "ticker": ticker,
        "status": "OK",
        "adjusted": True,
        "queryCount": len(results),
        "resultsCount": len(results),
        "results": results,
    }


def _klines(q: dict[str, str]) -> Any:
    """GET /api/v3/klines?symbol=BTCUSDT&interval=1d&startTime=ms&limit=N (Binance spot)."""
    assert q["interval"] == "1d", q
    first = _day_of(q["startTime"])
    last = _day_of(q["endTime"]) if "endTime" in q else first + (int(q.get("limit", 500)) - 1) * DAY
    rows = []
    for d in list(days(first, last, False))[: int(q.get("limit", 500))]:
        b = bar(d, q["symbol"])
        close_ms = _ms(d + DAY) - 1
        rows.append([_ms(d), *(str(b[k]) for k in "ohlcv"), close_ms, "0", 10, "0", "0", "0"])
    return rows


def _exchange_info() -> Any:
    """GET /api/v3/exchangeInfo (Binance spot): the one market the tests trade, BTC/USDT."""
    market = {
        "symbol": "BTCUSDT",
        "status": "TRADING",
        "baseAsset": "BTC",
        "baseAssetPrecision": 8,
        "quoteAsset": "USDT",
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01",
                "maxPrice": "1000000.00",
                "tickSize": "0.01",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001",
                "maxQty": "9000.0",
                "stepSize": "0.00001",
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }
    return {"timezone": "UTC", "serverTime": 0, "rateLimits": [], "symbols": [market]}


class _Handler(BaseHTTPRequestHandler):
    server_state: BarServer

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(split.query).items()}
        self.server_state.requests.append(Recorded(split.path, q))
        parts = split.path.strip("/").split("/")
        if split.path.startswith("/v1/bars/"):
            body = _generic(parts[2], q)
        elif split.path == "/v2/stocks/bars":
            body = _alpaca(q)
        elif split.path.startswith("/v2/aggs/ticker/"):
            body = _massive(parts, q)
        elif split.path == "/api/v3/exchangeInfo":
            body = _exchange_info()
        elif split.path == "/api/v3/klines":
            body = _klines(q)
        else:
            self.send_error(404, f"no route {split.path}")
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        pass


@dataclass
class Running:
    state: BarServer
    httpd: ThreadingHTTPServer
    thread: threading.Thread

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def start() -> Running:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    state = BarServer(f"http://127.0.0.1:{httpd.server_address[1]}")
    handler = type("Handler", (_Handler,), {"server_state": state})
    httpd.RequestHandlerClass = handler
    thread = threading.Thread(target=httpd.serve_forever, name="recipe-server", daemon=True)
    thread.start()
    return Running(state, httpd, thread)
