"""Caches written in format 1 (ledger.json per key) are read, and migrated by the first write.

``tests/data/legacy_v1`` was written by the rangememo of commit f6560d0 (the last
to write ledger.json) with ``tests/make_legacy_fixture.py``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from rangememo import ParquetStore, range_cached
from rangememo._stores.parquet.local.medium import LocalMedium
from rangememo._stores.parquet.log import load
from rangememo._stores.parquet.maintenance import verify
from rangememo.testing import make_bars

FIXTURE = Path(__file__).with_name("data") / "legacy_v1"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(FIXTURE, root)
    return root


def bars_fn(root: Path, calls: list[Any]) -> Any:
    @range_cached(
        key="symbol",
        step="1D",
        store=ParquetStore(root, durable=False),
        namespace="legacy.bars",
        settle=None,
    )
    def bars(symbol: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        calls.append((symbol, pd.Timestamp(start), pd.Timestamp(end)))
        return make_bars(symbol, start, end)

    return bars


def keydirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_dir())


def test_a_format_1_cache_is_read_without_a_provider_call(legacy):
    """Every range the old ledger covered answers exactly from disk: zero provider calls."""
    calls: list[Any] = []
    bars = bars_fn(legacy, calls)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = bars("AAA", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-05"))
        assert_frame_equal(got, make_bars("AAA", "2024-01-01", "2024-02-05"))
        got = bars("BBB", pd.Timestamp("2024-01-07"), pd.Timestamp("2024-02-05"))
        assert_frame_equal(got, make_bars("BBB", "2024-01-07", "2024-02-05"))
    assert calls == []
    assert sorted(bars.cache.store.keys(bars.cache.namespace)) == [("AAA",), ("BBB",)]
    assert all((k / "ledger.json").exists() for k in keydirs(legacy))  # reading changes nothing


def test_the_first_write_migrates_the_key_and_nothing_is_refetched(legacy):
    """A write to a format-1 key folds the old ledger into a checkpoint; the old files go."""
    calls: list[Any] = []
    bars = bars_fn(legacy, calls)
    got = bars("BBB", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-10"))
    assert_frame_equal(got, make_bars("BBB", "2024-01-01", "2024-02-10"))
    # Only the hole the old cache had (an invalidated day) and the new days are fetched.
    # (The two gaps are fetched concurrently, in either order.)
    assert sorted(calls) == [
        ("BBB", pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-06")),
        ("BBB", pd.Timestamp("2024-02-06"), pd.Timestamp("2024-02-10")),
    ]
    migrated = [k for k in keydirs(legacy) if not (k / "ledger.json").exists()]
    assert len(migrated) == 1
    (kdir,) = migrated
    assert not (kdir / "key.json").exists()  # the checkpoint holds the key
    state = load(LocalMedium(legacy), f"{kdir.parent.name}/{kdir.name}")
    assert state is not None and state.key == {"repr": "('BBB',)", "key": {"tuple": ["BBB"]}}
    named = {s.file for s in state.segments if s.file}
    assert {p.name for p in kdir.glob("seg-*.parquet")} == named  # replaced parts freed
    again: list[Any] = []
    fresh = bars_fn(legacy, again)
    for symbol in ("AAA", "BBB"):
        got = fresh(symbol, pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-05"))
        assert_frame_equal(got, make_bars(symbol, "2024-01-01", "2024-02-05"))
    assert again == []
    assert verify(legacy).problems == []
