"""benchmarks/bench_parquet.py runs (tiny sizes; timings are not asserted here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

TINY = {
    "extend": {"sizes": (200, 2_000), "extensions": 5, "rewrites": 2},
    "window": {"rows": 3_000, "window": 30, "processes": 1},
    "seed": {"days": 5},
    "memory": {"rows": 2_000},
}


def _load() -> ModuleType:
    path = Path(__file__).parent.parent / "benchmarks" / "bench_parquet.py"
    spec = importlib.util.spec_from_file_location("_benchmarks_bench_parquet", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_parquet_benchmarks_run_and_report(tmp_path):
    """Every measurement runs tiny; call counts hold; the table renders; JSON serialises."""
    bench = _load()
    results = bench.run_all(TINY)
    assert results["seed"]["calls"] <= 5 + 1 and results["seed"]["rerun_calls"] == 0
    assert results["window"]["ratio"] > 0 and results["memory"]["ratio"] > 0
    assert set(results["extend"]["per_extension_ms"]) == {"200", "2000"}
    table = bench.markdown(results)
    assert table.count("\n| (") == 5
    (tmp_path / "parquet.json").write_text(json.dumps(results))
