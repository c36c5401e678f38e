"""Smoke versions of benchmarks/bench_s3.py on the session's SeaweedFS (full sizes: ``-m slow``).

Tiny sizes, correctness facts only: provider calls equal on both stores and equal to
the workload's gaps, a rerun makes none, a warm hit within ``refresh`` sends no
request. No timing is asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import bench_s3


@pytest.fixture
def server(seaweed):
    seaweed.create_bucket(bench_s3.BUCKET, exist_ok=True)
    return seaweed


def test_seed_smoke(server):
    """Day 0 makes two calls (the day, then its lookback), each later day one."""
    days = 6
    got = bench_s3.bench_seed(server, latency=0.0, days=days, repeats=1)
    assert got["calls"] == {
        "local_cold": days + 1,
        "s3_cold": days + 1,
        "local_rerun": 0,
        "s3_rerun": 0,
    }


def test_universe_smoke(server):
    """Processes sharing symbols make one provider call per gap in total, on both stores."""
    got = bench_s3.bench_universe(server, symbols=6, processes=3, days=3)
    assert got["gaps"] == 6 * 3  # each symbol: its first window, then one day per day
    assert got["local_calls"] == got["gaps"]
    assert got["s3_calls"] == got["gaps"]


def test_slices_put_each_symbol_in_two_processes():
    slices = bench_s3._slices(symbols=10, processes=5)
    seen = [name for part in slices for name in part]
    assert len(seen) == 2 * 10 and all(seen.count(n) == 2 for n in set(seen))
    assert all(len(set(part)) == len(part) for part in slices)


def test_requests_smoke(server):
    got = bench_s3.bench_requests(server, repeats=2)
    assert got["hit"]["total"] == 0  # within refresh: served from memory
    assert got["revalidate"]["total"] == got["revalidate"].get("HEAD", 0) > 0
    assert got["miss"].get("PUT", 0) >= 2  # at least the segment and the log record
    assert got["probe"]["total"] > 0
    assert got["first write"]["total"] > got["new key"]["total"]  # namespace.json, code.json


def test_latency_smoke(server):
    got = bench_s3.bench_latency(server, misses=3, hits=5)
    for name in ("local", "local durable=False", "s3"):
        assert got[name]["miss_ms"]["median"] > 0
    assert got["s3 refresh=0"]["hit_us"]["median"] > 0


def test_markdown_of_quick_results(server):
    results = bench_s3.run_all(quick=True, server=server)
    table = bench_s3.markdown(results)
    assert "(a) seed backtest" in table and "one-time probe" in table
    assert results["universe"]["s3_calls"] == results["universe"]["gaps"]


@pytest.mark.slow
def test_s3_benchmarks_full_size(server):
    results = bench_s3.run_all(quick=False, server=server)
    seed, universe = results["seed"], results["universe"]
    assert seed["calls"]["s3_cold"] == seed["calls"]["local_cold"] == 63
    assert seed["calls"]["s3_rerun"] == seed["calls"]["local_rerun"] == 0
    assert universe["s3_calls"] == universe["local_calls"] == universe["gaps"] == 500 * 10
    assert results["requests"]["hit"]["total"] == 0
