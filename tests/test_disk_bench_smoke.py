"""Smoke versions of benchmarks/bench_disk.py (the full sizes run under ``-m slow``).

The small sizes check the mechanics and the size-independent bounds (files per key,
bytes against one pandas file, the hit path); the timing ratios need the full sizes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import bench_disk


def test_universe_smoke():
    """A daily universe after many commits: few files per key, bytes near one pandas file."""
    got = bench_disk.bench_universe(symbols=8, history=120, commits=12, durable=False)
    assert got["files_per_key"] <= 4 + 64 / 8  # the 64 shared lock files weigh on 8 keys
    assert got["key_files"] <= 3
    assert got["universe_bytes"] <= 2.0  # metadata weighs more on 132 rows than on years


def test_growth_smoke():
    """A minute key grown day by day: compacted, it is near one pandas file's size."""
    got = bench_disk.bench_growth(days=30, per_day=390, durable=False)
    assert got["growth_bytes"] <= 1.3
    assert got["files_before_compact"] <= 8


def test_live_smoke():
    """The live-update path on both stores: one fetch per symbol per new day, none on a hit.

    The ratios are timings and belong to ``make bench``; a timed bound here failed CI
    on a loaded machine (3.36 against 3.0), so only their being measured is checked.
    """
    got = bench_disk.bench_live(symbols=5, days=3, durable=False)
    for label in ("memory", "parquet"):
        assert got[f"{label}_miss_calls"] == 5 * 3
        assert got[f"{label}_hit_calls"] == 0
        assert got[f"{label}_miss_us"] > 0 and got[f"{label}_hit_us"] > 0
    assert got["live_hit"] > 0 and got["live_miss"] > 0


def test_intervals_smoke():
    """A key of many disjoint intervals opens in a new process and answers one gap."""
    got = bench_disk.bench_intervals(intervals=50)
    assert got["open_ms"] > 0 and got["gap_ms"] > 0


@pytest.mark.slow
def test_disk_benchmarks_full_size():
    """The full benchmark against its targets (durable=True, as users run it)."""
    results = bench_disk.run_all(quick=False)
    assert results["universe"]["files_per_key"] <= 4
    assert results["universe"]["universe_bytes"] <= 1.3
    assert results["growth"]["growth_bytes"] <= 1.3
