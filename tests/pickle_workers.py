"""Cached functions that tests/test_pickling.py hands to other processes.

Importable, so ``multiprocessing``/``concurrent.futures`` workers find them by
reference. They use the default store, which conftest points at one
throwaway directory for the whole run (subprocesses inherit it); each test
uses its own symbol. Every provider call is one small JSON file in ``calls``,
so a test counts calls across processes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import pandas as pd

from rangememo import range_cached
from rangememo.testing import make_bars

DAY0 = dt.datetime(2024, 1, 1)


def day(n: int) -> dt.datetime:
    return DAY0 + dt.timedelta(days=n)


def record(calls: str, symbol: str, start: dt.datetime, end: dt.datetime) -> None:
    entry = {"pid": os.getpid(), "symbol": symbol, "start": str(start), "end": str(end)}
    (Path(calls) / f"{os.getpid()}-{uuid.uuid4().hex}.json").write_text(json.dumps(entry))


def recorded(calls: str | Path) -> list[dict[str, str]]:
    """The provider calls recorded in ``calls``, sorted by symbol, start and end."""
    found = [json.loads(p.read_text()) for p in Path(calls).glob("*.json")]
    return sorted(found, key=lambda e: (e["symbol"], e["start"], e["end"]))


@range_cached(key="symbol", step="1D")
def bars(symbol: str, start: dt.datetime, end: dt.datetime, calls: str = "") -> pd.DataFrame:
    """Daily bars; ``calls`` (not part of the key) is where calls are recorded."""
    if calls:
        record(calls, symbol, start, end)
    return make_bars(symbol, start, end)


class Client:
    """A client whose method is cached; instances pickle as plain objects."""

    def __init__(self, calls: str) -> None:
        self.calls = calls

    @range_cached(key="symbol", step="1D")
    def bars(self, symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        record(self.calls, symbol, start, end)
        return make_bars(symbol, start, end)
