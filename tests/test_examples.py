"""Every example runs as a user runs it (``make demo`` runs the backtest), and says OK."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


# A 4-process Dask cluster (~15 s); tests/test_s3_multiprocess.py runs it on S3 quickly.
SLOW = {"dask_sweep"}
CASES = [
    pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else []) for p in EXAMPLES
]


@pytest.mark.parametrize("script", CASES)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    """A fresh interpreter, a fresh default store: exit 0."""
    env = {**os.environ, "RANGEMEMO_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if script.stem == "backtest":
        assert "OK: all three returned identical frames" in done.stdout
