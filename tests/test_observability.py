"""Progress bars count time covered (not gaps); DEBUG logs one line per call."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from typing import Any, ClassVar

import pandas as pd
import pytest
import tqdm.auto

from rangememo import MemoryStore, ParquetStore, range_cached

D = dt.datetime
DAY = dt.timedelta(days=1)


class CaptureBar:
    """Stands in for tqdm: records the total, each update and the last postfix."""

    made: ClassVar[list[CaptureBar]] = []

    def __init__(self, total: float, unit: str, **_: Any) -> None:
        self.total, self.unit = total, unit
        self.updates: list[float] = []
        self.postfix: dict[str, Any] = {}
        self.closed = False
        CaptureBar.made.append(self)

    def update(self, n: float) -> None:
        self.updates.append(n)

    def set_postfix(self, refresh: bool = True, **kw: Any) -> None:
        self.postfix = kw

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[CaptureBar]:
    CaptureBar.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", CaptureBar)
    return CaptureBar.made


def daily(start: D, end: D) -> pd.DataFrame:
    idx = pd.date_range(start, end, freq="D", name="ts")
    return pd.DataFrame({"close": range(len(idx))}, index=idx, dtype="float64")


def make(store: Any, calls: list[tuple[D, D]], **options: Any) -> Any:
    ns = f"obs-{id(calls)}"

    @range_cached(key="symbol", step="1D", store=store, namespace=ns, **options)
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        calls.append((start, end))
        return daily(start, end)

    return get_bars


@pytest.fixture(params=["memory", "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    return MemoryStore() if request.param == "memory" else ParquetStore(tmp_path / "c")


@pytest.mark.parametrize("workers", [1, 3])
def test_single_long_gap_split_by_max_span_advances_per_piece(
    bars: list[CaptureBar], store: Any, workers: int
) -> None:
    calls: list[tuple[D, D]] = []
    get_bars = make(store, calls, max_span="10D", max_concurrency=workers)
    # 2024-01-01 .. 2024-02-09 inclusive: 40 days, one gap, cut into four calls.
    get_bars.prefetch("X", D(2024, 1, 1), D(2024, 2, 9), progress=True)
    assert len(calls) == 4
    (bar,) = bars
    assert bar.unit == "day"
    assert bar.total == pytest.approx(40)
    assert len(bar.updates) == 4  # one step per piece, not one per gap
    assert sorted(bar.updates) == pytest.approx([10, 10, 10, 10])
    assert sum(bar.updates) == pytest.approx(bar.total)
    assert bar.postfix == {"rows": 40}
    assert bar.closed


def test_async_prefetch_bar_counts_days_and_rows(bars: list[CaptureBar]) -> None:
    seen: list[tuple[D, D]] = []

    @range_cached(key="symbol", step="1D", store=MemoryStore(), max_span="7D")
    async def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        seen.append((start, end))
        await asyncio.sleep(0)
        return daily(start, end)

    async def go() -> None:
        await get_bars("X", D(2024, 3, 5), D(2024, 3, 10))  # a hole in the middle
        await get_bars.prefetch("X", D(2024, 3, 1), D(2024, 3, 20), progress=True)

    asyncio.run(go())
    (bar,) = bars
    # 20 days asked, 6 already held: 14 days to cover (4 before, 10 after).
    assert bar.total == pytest.approx(14)
    assert sum(bar.updates) == pytest.approx(14)
    assert len(bar.updates) == len(seen) - 1
    assert bar.postfix == {"rows": 14}


def test_no_bar_when_disabled_or_not_a_terminal(bars: list[CaptureBar], store: Any) -> None:
    get_bars = make(store, [], max_span="5D")
    get_bars.prefetch("X", D(2024, 1, 1), D(2024, 1, 20), progress=False)
    get_bars.prefetch("Y", D(2024, 1, 1), D(2024, 1, 20))  # None, and pytest's stderr is no tty
    assert bars == []


def test_int_axis_bar_counts_positions(bars: list[CaptureBar]) -> None:
    @range_cached(key="chain", store=MemoryStore(), max_span=100)
    def blocks(chain: str, start: int, end: int) -> pd.DataFrame:
        idx = pd.Index(range(start, end + 1), name="height")
        return pd.DataFrame({"n": 1}, index=idx)

    blocks.prefetch("eth", 0, 249, progress=True)
    (bar,) = bars
    assert bar.unit == "pos"
    assert bar.total == pytest.approx(250)
    assert sorted(bar.updates) == pytest.approx([50, 100, 100])
    assert bar.postfix == {"rows": 250}


def test_failed_piece_does_not_advance(bars: list[CaptureBar]) -> None:
    @range_cached(key="symbol", step="1D", store=MemoryStore(), max_span="10D", max_concurrency=1)
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        if start >= D(2024, 1, 21):
            raise RuntimeError("provider down")
        return daily(start, end)

    with pytest.raises(RuntimeError):
        get_bars.prefetch("X", D(2024, 1, 1), D(2024, 2, 9), progress=True)
    (bar,) = bars
    assert sum(bar.updates) == pytest.approx(20)
    assert bar.closed


# -- DEBUG line per call ------------------------------------------------------------------

LINE = re.compile(
    r"call (?P<ns>.+) key=\('X',\): (?P<what>.+?), (?P<rows>\d+) rows, "
    r"provider (?P<p>[\d.]+)s, store (?P<s>[\d.]+)s$"
)


def call_lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    found = [LINE.match(r.getMessage()) for r in caplog.records if r.name == "rangememo"]
    return [m for m in found if m is not None]


def test_debug_line_per_call_hit_and_gaps(caplog: pytest.LogCaptureFixture, store: Any) -> None:
    slow = 0.05

    @range_cached(key="symbol", step="1D", store=store)
    def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        import time

        time.sleep(slow)
        return daily(start, end)

    caplog.set_level(logging.DEBUG, logger="rangememo")
    get_bars("X", D(2024, 1, 10), D(2024, 1, 19))  # miss: 10 rows
    get_bars("X", D(2024, 1, 12), D(2024, 1, 15))  # hit: 4 rows
    get_bars("X", D(2024, 1, 1), D(2024, 1, 31))  # two gaps around what is held
    lines = call_lines(caplog)
    assert [m["what"] for m in lines] == ["1 gap fetched", "hit", "2 gaps fetched"]
    assert [int(m["rows"]) for m in lines] == [10, 4, 31]
    assert float(lines[0]["p"]) >= slow
    assert float(lines[1]["p"]) == 0.0
    assert float(lines[2]["p"]) >= 2 * slow
    assert all(float(m["s"]) > 0 for m in lines)


def test_debug_line_for_prefetch_counts_rows_fetched(caplog: pytest.LogCaptureFixture) -> None:
    get_bars = make(MemoryStore(), [], max_span="10D")
    caplog.set_level(logging.DEBUG, logger="rangememo")
    get_bars.prefetch("X", D(2024, 1, 1), D(2024, 1, 25))
    (line,) = call_lines(caplog)
    assert line["what"] == "3 gaps fetched"
    assert int(line["rows"]) == 25


def test_async_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    @range_cached(key="symbol", step="1D", store=MemoryStore())
    async def get_bars(symbol: str, start: D, end: D) -> pd.DataFrame:
        await asyncio.sleep(0.02)
        return daily(start, end)

    caplog.set_level(logging.DEBUG, logger="rangememo")

    async def go() -> None:
        await get_bars("X", D(2024, 1, 1), D(2024, 1, 5))
        await get_bars("X", D(2024, 1, 2), D(2024, 1, 3))

    asyncio.run(go())
    lines = call_lines(caplog)
    assert [(m["what"], int(m["rows"])) for m in lines] == [("1 gap fetched", 5), ("hit", 2)]
    assert float(lines[0]["p"]) >= 0.02


def test_no_call_line_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    get_bars = make(MemoryStore(), [])
    caplog.set_level(logging.INFO, logger="rangememo")
    get_bars("X", D(2024, 1, 1), D(2024, 1, 5))
    assert call_lines(caplog) == []
