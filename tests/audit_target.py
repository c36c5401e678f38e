"""A decorated provider for ``rangememo audit MODULE:FUNCTION`` tests (tests/test_audit.py).

Module-level, so the command imports it by path; its MemoryStore is shared
with the test in the same process (CliRunner runs the command in-process).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from rangememo import MemoryStore, range_cached
from rangememo.testing import make_bars

STORE = MemoryStore()
REVISED: set[pd.Timestamp] = set()  # days whose close the provider now reports 2.0 higher
CALLS: list[Any] = []


def provider(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    df = make_bars(symbol, start, end)
    df.loc[df.index.isin(sorted(REVISED)), "close"] += 2.0
    return df


@range_cached(key="symbol", step="1D", store=STORE, namespace="tests.audit_target.bars")
def bars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    CALLS.append((symbol, start, end))
    return provider(symbol, start, end)


@range_cached(key="symbol", step="1D", store=STORE, namespace="tests.audit_target.abars")
async def abars(symbol: str, start: Any, end: Any) -> pd.DataFrame:
    CALLS.append((symbol, start, end))
    return provider(symbol, start, end)


@range_cached(key="session", step=1, store=STORE, namespace="tests.audit_target.ticks")
def ticks(session: dt.date, start: int, end: int) -> pd.DataFrame:
    """Keyed by a date: ``ls`` shows its key as ``(datetime.date(2024, 1, 2),)``."""
    CALLS.append((session, start, end))
    return pd.DataFrame({"n": range(start, end)}, index=pd.RangeIndex(start, end, name="seq"))
