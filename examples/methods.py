"""Decorating a method of a data-provider class.

``self`` is never part of the key: every instance of the class shares one
cache per decorated method (the namespace is ``module.qualname``). Give
instances that talk to different back ends their own ``namespace=``, or make
the distinguishing attribute an argument of the key.

Run it with ``python examples/methods.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pandas as pd

from rangememo import MemoryStore, range_cached
from rangememo.testing import FakeProvider

STORE = MemoryStore()
STEPS = {"D": "1D", "1h": "1h", "1min": "1min"}


def step_of(timeframe: str, **_: object) -> str:
    """The step follows the timeframe (``step=`` receives the call's arguments)."""
    return STEPS[timeframe]


class MarketData:
    """A thin client over a (fake) bar API, with both async and blocking methods."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider

    @range_cached(key=("symbol", "timeframe"), step=step_of, store=STORE)
    async def get_bars(
        self, symbol: str, start: dt.datetime, end: dt.datetime, timeframe: str = "D"
    ) -> pd.DataFrame:
        return await self.provider.get_bars(symbol, start, end, timeframe)

    @range_cached(key=("symbol", "timeframe"), step=step_of, store=STORE)
    def get_bars_blocking(
        self, symbol: str, start: dt.datetime, end: dt.datetime, timeframe: str = "D"
    ) -> pd.DataFrame:
        return self.provider.get_bars_sync(symbol, start, end, timeframe)


async def main() -> None:
    provider = FakeProvider(latency=0.01)
    client = MarketData(provider)
    monday = dt.datetime(2024, 10, 7)

    await client.get_bars("AAPL", monday, monday + dt.timedelta(days=4))
    await client.get_bars("AAPL", monday + dt.timedelta(days=1), monday + dt.timedelta(days=2))
    hourly = await client.get_bars("AAPL", monday, monday + dt.timedelta(hours=23), "1h")
    assert provider.call_count == 2, provider.ranges()  # the second daily call was cached
    assert len(hourly) == 24

    other = MarketData(provider)  # another instance shares the method's cache
    await other.get_bars("AAPL", monday, monday + dt.timedelta(days=3))
    assert provider.call_count == 2

    # Introspection through an instance passes the instance along, as the call does.
    await client.get_bars.prefetch("MSFT", monday, monday + dt.timedelta(days=4))
    print("MSFT covered:", await client.get_bars.coverage("MSFT", "D"))
    await client.get_bars.invalidate("MSFT", "D")

    print("async:", MarketData.get_bars.cache_info())


def blocking() -> None:
    provider = FakeProvider()
    client = MarketData(provider)
    day = dt.datetime(2024, 10, 7)
    client.get_bars_blocking("MSFT", day, day + dt.timedelta(days=9))
    client.get_bars_blocking("MSFT", day + dt.timedelta(days=5), day + dt.timedelta(days=12))
    assert provider.ranges() == [
        (pd.Timestamp(day), pd.Timestamp(day + dt.timedelta(days=9))),
        (pd.Timestamp(day + dt.timedelta(days=10)), pd.Timestamp(day + dt.timedelta(days=12))),
    ]
    print("sync: ", MarketData.get_bars_blocking.cache_info())


if __name__ == "__main__":
    asyncio.run(main())
    blocking()
