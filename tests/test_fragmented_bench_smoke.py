"""The fragmented-ledger benchmark runs end to end at a tiny size (no timing asserted)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_fragmented.py"


def test_fragmented_benchmark_runs_and_reports_every_row() -> None:
    spec = importlib.util.spec_from_file_location("_benchmarks_bench_fragmented", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = module.main(["--k", "40", "--no-save"])
    assert out["k"] == 40
    for store in ("memory", "parquet"):
        for name in ("covered_us", "one_gap_us"):
            assert math.isfinite(out[store][name]) and out[store][name] > 0
    assert math.isfinite(out["parquet"]["open_ms"])
    assert out["parquet"]["open_one_ms"] > 0
