"""The readahead benchmark's quick run meets its targets (calls and rows, not timings)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_readahead.py"


def test_quick_readahead_benchmark_meets_its_targets(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("exchange_calendars")
    spec = importlib.util.spec_from_file_location("_benchmarks_bench_readahead", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "MISSED" not in out
    targets = [line for line in out.splitlines() if line.endswith("| ok |")]
    assert len(targets) == 1 + 6  # the header, and six targets met
