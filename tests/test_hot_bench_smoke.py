"""The hot-path benchmark rows of issue 8 run, tiny (timings are not asserted here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench_core() -> ModuleType:
    alias = "_benchmarks_bench_core_hot"
    spec = importlib.util.spec_from_file_location(alias, BENCHMARKS / "bench_core.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def test_partial_hit_bench_runs(bench_core: ModuleType) -> None:
    """One-gap partial hits: one fetch per new bar, positive times, the issue's target."""
    out = bench_core.bench_partial(rows=2_000, window=30, calls=20, repeats=2)
    assert out["provider_calls"] == 1 + 20 * 2
    assert out["overhead_us"] > 0 and out["slice_copy_us"] > 0
    assert 0 < out["ratio"] < 1_000
    assert out["target"] == 3.0


def test_warm_hit_bench_runs(bench_core: ModuleType) -> None:
    """Warm hits of 30 rows: no fetch beyond the warm-up, held to 1.0x the raw slice."""
    out = bench_core.bench_hit(rows=2_000, window=30, calls=20, repeats=2)
    assert out["provider_calls"] == 2
    assert 0 < out["ratio"] < 100 and 0 < out["ratio_sync"] < 100
    assert out["target"] == 1.0


def test_import_bench_runs(bench_core: ModuleType) -> None:
    """Import times come from fresh interpreters: both positive, a sane ratio."""
    out = bench_core.bench_import(repeats=1)
    assert out["rangememo_ms"] > 0 and out["pandas_pyarrow_ms"] > 0
    assert 0.2 < out["ratio"] < 10  # a sanity bound (an empty interpreter is ~0.03), not the target
    assert out["target"] == 1.1


def test_rows_are_in_the_table(bench_core: ModuleType) -> None:
    """The markdown table names the three rows with their targets."""
    sizes = {
        "seed": {"latency": 0.0, "days": 2, "repeats": 1},
        "hit": {"rows": 500, "window": 30, "calls": 5, "repeats": 1},
        "extend": {"sizes": (100, 1_000), "extensions": 5, "repeats": 1},
        "partial": {"rows": 500, "window": 30, "calls": 5, "repeats": 1},
        "import": {"repeats": 1},
    }
    table = bench_core.markdown(bench_core.run_all(sizes))
    assert "partial hit one gap" in table and "≤ 3.0" in table
    assert "`import rangememo`" in table and "≤ 1.1" in table
    assert "warm hit" in table and "≤ 1.0" in table
