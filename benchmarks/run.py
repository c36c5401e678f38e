"""Run every benchmark script present: ``python benchmarks/run.py [--quick]``.

Each ``bench_*.py`` here is a standalone script that accepts ``--quick``, prints a
markdown table and writes its numbers as JSON under ``benchmarks/results/``.
They run one after another, each in its own interpreter, so one benchmark's
imports, caches and garbage cannot skew the next one's timings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
#: In this order; scripts not written yet are skipped.
SCRIPTS = [
    "bench_core.py",
    "bench_parquet.py",
    "bench_planner.py",
    "bench_scale.py",
    "bench_fragmented.py",
    "bench_disk.py",
    "bench_s3.py",
    "bench_batch.py",
    "bench_readahead.py",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run rangememo's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("only", nargs="*", help="run only these scripts (e.g. bench_core)")
    args = parser.parse_args(argv)
    wanted = {name.removesuffix(".py") for name in args.only}
    failed = []
    for script in SCRIPTS:
        path = HERE / script
        if not path.exists() or (wanted and path.stem not in wanted):
            continue
        sys.stdout.write(f"\n$ python benchmarks/{script}{' --quick' if args.quick else ''}\n")
        sys.stdout.flush()
        cmd = [sys.executable, str(path), *(["--quick"] if args.quick else [])]
        if subprocess.run(cmd, check=False).returncode != 0:
            failed.append(script)
    if failed:
        sys.stderr.write(f"benchmarks failed: {', '.join(failed)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
