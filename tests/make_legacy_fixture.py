"""Writes tests/data/legacy_v1: a store in the format-1 layout (ledger.json per key).

Run with the rangememo of commit f6560d0 (the last one writing ledger.json):
``python tests/make_legacy_fixture.py``. The committed output is what
tests/test_disk_migration.py reads with today's code.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd

from rangememo import ParquetStore, range_cached
from rangememo.testing import make_bars

OUT = Path(__file__).with_name("data") / "legacy_v1"


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    store = ParquetStore(OUT, durable=False, compact_at=3, grace=300.0)

    @range_cached(key="symbol", step="1D", store=store, namespace="legacy.bars", settle=None)
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        return make_bars(symbol, start, end)

    for symbol in ("AAA", "BBB"):
        for a, b in [
            ("2024-01-01", "2024-01-10"),
            ("2024-01-11", "2024-01-20"),
            ("2024-02-01", "2024-02-05"),
            ("2024-01-21", "2024-01-31"),
        ]:
            bars(symbol, pd.Timestamp(a), pd.Timestamp(b))
    bars.invalidate("BBB", start=pd.Timestamp("2024-01-05"), end=pd.Timestamp("2024-01-06"))
    shutil.rmtree(OUT / ".locks", ignore_errors=True)


if __name__ == "__main__":
    main()
