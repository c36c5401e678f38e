"""The benchmark code runs (tiny sizes; timings are not asserted here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"

TINY = {
    "seed": {"latency": 0.0, "days": 4, "repeats": 1},
    "hit": {"rows": 500, "window": 30, "calls": 5, "repeats": 1},
    "extend": {"sizes": (100, 1_000), "extensions": 5, "repeats": 1},
    "partial": {"rows": 500, "window": 30, "calls": 5, "repeats": 1},
    "import": {"repeats": 1},
}


def _load(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (not a package) under a private module name."""
    alias = f"_benchmarks_{name}"
    spec = importlib.util.spec_from_file_location(alias, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module  # dataclasses and pickling look modules up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_core() -> ModuleType:
    return _load("bench_core")


def test_seed_workload_call_counts(bench_core: ModuleType) -> None:
    """The seed benchmark checks equal frames and counts 2 * days + 1 calls uncached."""
    out = bench_core.bench_seed(**TINY["seed"])
    assert out["calls"]["uncached"] == out["calls"]["joblib"] == 2 * 4 + 1
    assert out["calls"]["rangememo"] <= 4 + 1
    assert out["ratio"] > 0


def test_all_benchmarks_run_and_report(bench_core: ModuleType, tmp_path: Path) -> None:
    """Every benchmark runs tiny, the table renders and the results serialise."""
    results = bench_core.run_all(TINY)
    assert results["hit"]["provider_calls"] == 2  # one warm-up fetch per wrapper
    assert set(results["extend"]["per_extension_us"]) == {"100", "1000"}
    table = bench_core.markdown(results)
    assert table.count("\n| (") == 6
    path = tmp_path / "core.json"
    path.write_text(json.dumps(results))
    assert json.loads(path.read_text())["seed"]["days"] == 4


def test_runner_skips_missing_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    """run.py with a filter that matches no script runs nothing and succeeds."""
    runner = _load("run")
    assert runner.main(["no_such_bench"]) == 0
    assert capsys.readouterr().out == ""
