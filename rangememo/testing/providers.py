"""Fake range-queried data providers for unit tests.

Put a :class:`FakeProvider` under your cache and assert exactly what was fetched::

    fake = FakeProvider()
    get_bars = my_cache(fake.get_bars)  # your cache wrapped around the fake
    await get_bars("AAPL", "2024-01-01", "2024-01-31")
    await get_bars("AAPL", "2024-01-10", "2024-01-20")  # fully cached: no provider call
    assert fake.ranges("AAPL", "D") == [(Timestamp("2024-01-01"), Timestamp("2024-01-31"))]
    assert fake.call_count == 1

Bar values depend only on ``(symbol, grid position)``, never on the requested range, so a
bar fetched in a small range equals the same bar fetched as part of a large one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["Call", "FakeProvider", "make_bars", "make_blocks"]

logger = logging.getLogger(__name__)

Bound: TypeAlias = "dt.date | str | np.datetime64"
Tz: TypeAlias = "str | dt.tzinfo | None"
Failure: TypeAlias = "BaseException | type[BaseException]"
FailSpec: TypeAlias = "Failure | Callable[[Call], Failure | None] | None"
_I64 = npt.NDArray[np.int64]
_U64 = npt.NDArray[np.uint64]

_DAY_NS = 86_400 * 10**9
_BAR_COLUMNS = ["open", "high", "low", "close", "volume"]
_UNIT_ALIASES = {"H": "h", "T": "min", "S": "s", "L": "ms", "D": "D", "d": "D"}
_TF_RE = re.compile(r"^\s*(\d*)\s*([A-Za-z]+)\s*$")


@functools.lru_cache(maxsize=64)
def _step_ns(timeframe: str) -> int:
    """Grid step in nanoseconds for a timeframe such as "D", "1h", "5min" or "T"."""
    m = _TF_RE.match(timeframe)
    if m is not None:
        count, unit = m.group(1) or "1", m.group(2)
        step = pd.Timedelta(f"{count}{_UNIT_ALIASES.get(unit, unit)}")
    else:
        step = pd.Timedelta(timeframe)
    if step <= pd.Timedelta(0):
        raise ValueError(f"timeframe must be positive: {timeframe!r}")
    return int(step.value)


def _mix(x: _U64) -> _U64:
    """splitmix64 finaliser: a stable, vectorised 64-bit integer hash."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hashes(key: str, positions: _I64, n: int) -> list[_U64]:
    """``n`` independent hash streams of (key, position)."""
    seed = np.uint64(zlib.crc32(key.encode()))
    x = positions.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + seed
    out = [_mix(x)]
    for _ in range(n - 1):
        out.append(_mix(out[-1] + np.uint64(0x632BE59BD9B4E019)))
    return out


def _unit(h: _U64) -> npt.NDArray[np.float64]:
    """Map hashes to exact floats in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _to_ts(value: Bound, tz: Tz) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if tz is not None:
        ts = ts.tz_localize(tz) if ts.tzinfo is None else ts.tz_convert(tz)
    return ts


def make_bars(
    symbol: str,
    start: Bound,
    end: Bound,
    timeframe: str = "D",
    *,
    tz: Tz = None,
    skip_weekends: bool = True,
    holidays: Iterable[Bound] = (),
) -> pd.DataFrame:
    """Deterministic OHLCV bars on the ``timeframe`` grid for ``start <= t <= end``.

    The grid is anchored at the epoch in the bounds' wall-clock time; Saturday and Sunday
    positions produce no rows unless ``skip_weekends`` is False. ``tz`` localises naive
    bounds (or converts aware ones); by default the index takes the bounds' timezone.
    ``holidays`` are calendar dates without rows (e.g. an exchange's closures).
    """
    step = _step_ns(timeframe)
    t0, t1 = _to_ts(start, tz), _to_ts(end, tz)
    if (t0.tzinfo is None) != (t1.tzinfo is None):
        raise TypeError("start and end must both be naive or both be timezone-aware")
    zone = t0.tzinfo
    if zone is not None:
        t1 = t1.tz_convert(zone)
        t0, t1 = t0.tz_localize(None), t1.tz_localize(None)
    first, last = -(-t0.value // step), t1.value // step
    positions = np.arange(first, max(last + 1, first), dtype=np.int64)
    if skip_weekends:
        weekday = ((positions * step) // _DAY_NS + 3) % 7  # 1970-01-01 was a Thursday
        positions = positions[weekday < 5]
    closed = [pd.Timestamp(d).value // _DAY_NS for d in holidays]
    if closed:
        positions = positions[~np.isin((positions * step) // _DAY_NS, closed)]
    index = pd.DatetimeIndex((positions * step).view("M8[ns]"), name="time")
    if zone is not None:
        # Wall-clock grid: DST gaps have no bars; repeated hours take the first occurrence.
        index = index.tz_localize(
            zone, ambiguous=np.ones(len(index), dtype=bool), nonexistent="NaT"
        )
        keep = ~np.asarray(index.isna())
        if not keep.all():
            index, positions = index[keep], positions[keep]
    h0, h1, h2, h3, h4 = _hashes(symbol, positions, 5)
    base = 20.0 + float(zlib.crc32(symbol.encode()) % 480)
    trend = np.abs(positions % 2048 - 1024).astype(np.float64) / 1024.0
    close = base * (0.8 + 0.4 * trend) * (1.0 + 0.02 * (_unit(h0) - 0.5))
    open_ = close * (1.0 + 0.01 * (_unit(h1) - 0.5))
    high = np.maximum(open_, close) * (1.0 + 0.005 * _unit(h2))
    low = np.minimum(open_, close) * (1.0 - 0.005 * _unit(h3))
    volume = (h4 % np.uint64(1_000_000)).astype(np.int64) + 1_000
    data = {
        "open": np.round(open_, 4),
        "high": np.round(high, 4),
        "low": np.round(low, 4),
        "close": np.round(close, 4),
        "volume": volume,
    }
    return pd.DataFrame(data, index=index, columns=_BAR_COLUMNS)


def make_blocks(chain: str, start: int, end: int) -> pd.DataFrame:
    """One deterministic row per block ``start..end`` (inclusive), indexed by "block"."""
    blocks = np.arange(start, max(end + 1, start), dtype=np.int64)
    h0, h1 = _hashes(f"chain:{chain}", blocks, 2)
    data = {
        "hash": h0.view(np.int64),
        "tx_count": (h1 % np.uint64(300)).astype(np.int64) + 1,
    }
    return pd.DataFrame(data, index=pd.Index(blocks, name="block", dtype=np.int64))


@dataclass(frozen=True)
class Call:
    """One recorded provider call."""

    name: str
    args: tuple[Any, ...]
    start: Any
    end: Any
    key: tuple[Any, ...]
    at: float


def _as_exc(failure: Failure) -> BaseException:
    return failure() if isinstance(failure, type) else failure


class FakeProvider:
    """A recording, failure-injecting fake of a range-queried data API."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        fail: FailSpec = None,
        empty_weekends: bool = True,
        holidays: Iterable[Bound] = (),
    ) -> None:
        self.latency = latency
        self.fail = fail
        self.empty_weekends = empty_weekends
        self.holidays = tuple(holidays)
        self.calls: list[Call] = []
        self.rows_returned = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._pending: deque[Failure] = deque()
        self._lock = threading.Lock()

    # -- bookkeeping -------------------------------------------------------------------
    def _enter(
        self, name: str, args: tuple[Any, ...], start: Any, end: Any, key: tuple[Any, ...]
    ) -> BaseException | None:
        """Record the call, decide whether it must fail, then bump ``in_flight``."""
        call = Call(name, args, start, end, key, time.monotonic())
        with self._lock:
            self.calls.append(call)
            pending = self._pending.popleft() if self._pending else None
        logger.debug("fake provider call %s%r", name, args)
        exc = _as_exc(pending) if pending is not None else self._injected(call)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return exc

    def _injected(self, call: Call) -> BaseException | None:
        fail = self.fail
        if fail is None:
            return None
        if isinstance(fail, BaseException):
            return fail
        if isinstance(fail, type):
            return cast("type[BaseException]", fail)()
        result = fail(call)
        return None if result is None else _as_exc(result)

    def _exit(self, frame: pd.DataFrame | None) -> None:
        with self._lock:
            self.in_flight -= 1
            if frame is not None:
                self.rows_returned += len(frame)

    def _bars_call(
        self, name: str, symbol: str, start: Bound, end: Bound, timeframe: str
    ) -> BaseException | None:
        args = (symbol, start, end, timeframe)
        return self._enter(name, args, pd.Timestamp(start), pd.Timestamp(end), (symbol, timeframe))

    def _bars(self, symbol: str, start: Bound, end: Bound, timeframe: str) -> pd.DataFrame:
        return make_bars(
            symbol,
            start,
            end,
            timeframe,
            skip_weekends=self.empty_weekends,
            holidays=self.holidays,
        )

    # -- API -----------------------------------------------------------------------------
    async def get_bars(
        self, symbol: str, start: Bound, end: Bound, timeframe: str = "D"
    ) -> pd.DataFrame:
        """Async bars for ``[start, end]``; records the call before sleeping ``latency``."""
        exc = self._bars_call("get_bars", symbol, start, end, timeframe)
        frame = None
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if exc is not None:
                raise exc
            frame = self._bars(symbol, start, end, timeframe)
            return frame
        finally:
            self._exit(frame)

    def get_bars_sync(
        self, symbol: str, start: Bound, end: Bound, timeframe: str = "D"
    ) -> pd.DataFrame:
        """Blocking variant of :meth:`get_bars`."""
        exc = self._bars_call("get_bars_sync", symbol, start, end, timeframe)
        frame = None
        try:
            if self.latency > 0:
                time.sleep(self.latency)
            if exc is not None:
                raise exc
            frame = self._bars(symbol, start, end, timeframe)
            return frame
        finally:
            self._exit(frame)

    async def get_blocks(self, chain: str, start: int, end: int) -> pd.DataFrame:
        """Async blocks ``start..end`` (inclusive) of ``chain``."""
        exc = self._enter("get_blocks", (chain, start, end), start, end, (chain,))
        frame = None
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if exc is not None:
                raise exc
            frame = make_blocks(chain, start, end)
            return frame
        finally:
            self._exit(frame)

    def get_blocks_sync(self, chain: str, start: int, end: int) -> pd.DataFrame:
        """Blocking variant of :meth:`get_blocks`."""
        exc = self._enter("get_blocks_sync", (chain, start, end), start, end, (chain,))
        frame = None
        try:
            if self.latency > 0:
                time.sleep(self.latency)
            if exc is not None:
                raise exc
            frame = make_blocks(chain, start, end)
            return frame
        finally:
            self._exit(frame)

    # -- inspection ----------------------------------------------------------------------
    @property
    def call_count(self) -> int:
        """Number of recorded calls."""
        return len(self.calls)

    def ranges(self, *key: Any) -> list[tuple[Any, Any]]:
        """``(start, end)`` of recorded calls, optionally only those whose key equals ``key``."""
        with self._lock:
            calls = list(self.calls)
        return [(c.start, c.end) for c in calls if not key or c.key == key]

    def days_fetched(self) -> int:
        """Calendar days requested by all bar calls (inclusive spans, summed, not deduped)."""
        with self._lock:
            calls = [c for c in self.calls if c.name.startswith("get_bars")]
        return sum(max(0, (c.end.date() - c.start.date()).days + 1) for c in calls)

    def fail_next(self, exc: Failure, times: int = 1) -> None:
        """Make the next ``times`` calls raise ``exc`` (an instance or exception class)."""
        with self._lock:
            self._pending.extend([exc] * times)

    def reset(self) -> None:
        """Forget recorded calls, counters and pending failures."""
        with self._lock:
            self.calls.clear()
            self.rows_returned = 0
            self.max_in_flight = self.in_flight
            self._pending.clear()
