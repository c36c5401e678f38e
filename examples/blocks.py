"""An integer axis: blocks of a chain, cached by block number.

``step=1`` makes the axis discrete: a request for blocks ``[100, 199]`` covers
exactly those 100 blocks, and ``[200, 299]`` joins on without a gap.

Run it with ``python examples/blocks.py``.
"""

from __future__ import annotations

import asyncio

import pandas as pd
import pandas.testing as pdt

from rangememo import MemoryStore, range_cached
from rangememo.testing import FakeProvider, make_blocks

provider = FakeProvider(latency=0.01)


# readahead=None: the pages are fetched exactly as walked (the default would notice
# the walk and read ahead of it in growing windows).
@range_cached(key="chain", step=1, store=MemoryStore(), readahead=None)
async def get_blocks(chain: str, start: int, end: int) -> pd.DataFrame:
    return await provider.get_blocks(chain, start, end)


async def main() -> None:
    # An indexer walking the chain in pages of 100 blocks, then re-reading a window.
    for first in range(19_000_000, 19_000_500, 100):
        await get_blocks("eth", first, first + 99)
    window = await get_blocks("eth", 19_000_250, 19_000_349)  # spans two pages: cached
    wider = await get_blocks("eth", 18_999_950, 19_000_549)  # fetches only both ends

    pdt.assert_frame_equal(window, make_blocks("eth", 19_000_250, 19_000_349))
    pdt.assert_frame_equal(wider, make_blocks("eth", 18_999_950, 19_000_549))
    assert provider.ranges("eth") == [
        *[(b, b + 99) for b in range(19_000_000, 19_000_500, 100)],
        (18_999_950, 18_999_999),
        (19_000_500, 19_000_549),
    ]
    print("provider calls:", provider.ranges("eth"))
    print("covered:", await get_blocks.coverage("eth"))
    print(get_blocks.cache_info())


if __name__ == "__main__":
    asyncio.run(main())
