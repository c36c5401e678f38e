"""The README's first example, as a runnable file: ``python examples/quickstart.py``.

tests/test_readme.py checks that the code below matches the README word for word.
"""

import asyncio
from datetime import datetime

import pandas as pd

from rangememo import MemoryStore, range_cached
from rangememo.testing import FakeProvider

api = FakeProvider(latency=0.05)  # stands in for your slow market-data API


@range_cached(key=("symbol", "timeframe"), step="1D", store=MemoryStore())
async def get_bars(
    symbol: str, start: datetime, end: datetime, timeframe: str = "D"
) -> pd.DataFrame:
    return await api.get_bars(symbol, start, end, timeframe)


async def main() -> None:
    await get_bars("AAPL", datetime(2024, 9, 1), datetime(2024, 10, 1))  # fetches 31 days
    await get_bars("AAPL", datetime(2024, 9, 2), datetime(2024, 10, 2))  # fetches Oct 2 only
    await get_bars("AAPL", datetime(2024, 9, 9), datetime(2024, 9, 20))  # no fetch at all
    assert api.call_count == 2


asyncio.run(main())
print(api.ranges())  # the two ranges the provider was asked for
print(get_bars.cache_info())
