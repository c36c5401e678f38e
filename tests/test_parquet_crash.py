"""Crash safety: a writer SIGKILLed at any step leaves a store the next process reads exactly.

A subprocess runs ``tests/parquet_workers.py`` with ``$RANGEMEMO_CRASHPOINT``
naming a step of the commit protocol; the store kills the process there. The
next reader must get exact rows, no warning, and only the uncommitted range
fetched again; ``verify`` must find no problem (orphans are notes) and ``gc``
must sweep what the crash left.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from parquet_workers import bars_function, day, recorded

from rangememo._stores.parquet.maintenance import verify
from rangememo._stores.parquet.segments import CRASH_ENV
from rangememo._stores.parquet.tidy import collect
from rangememo.testing import make_bars

WORKERS = str(Path(__file__).with_name("parquet_workers.py"))


def run_worker(*args: str, crash: str | None = None, timeout: float = 60) -> int:
    env = dict(os.environ)
    env.pop(CRASH_ENV, None)
    if crash is not None:
        env[CRASH_ENV] = crash
    done = subprocess.run([sys.executable, WORKERS, *args], env=env, timeout=timeout, check=False)
    return done.returncode


def check_store(root: Path, calls: Path, first: int, last: int) -> list[tuple[str, int, int]]:
    """Read ``[first, last]`` of AAA through a new store: exact, no warning, and only what
    the log did not cover fetched; the calls made (in days)."""
    calls = calls / uuid.uuid4().hex  # this reader's calls only
    calls.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bars = bars_function(str(root), str(calls))
        covered = bars.coverage("AAA")
        got = bars("AAA", day(first), day(last))
    assert_frame_equal(got, make_bars("AAA", day(first), day(last)))
    made = [(s, (a - day(0)).days, (b - day(0)).days) for s, a, b in recorded(calls)]
    for _, a, b in made:  # nothing a committed record covers is fetched again
        assert not any(pd.Timestamp(s) <= day(a) and day(b) <= pd.Timestamp(e) for s, e in covered)
    report = verify(root)
    assert report.problems == []
    return made


ONE_DAY_EACH = ",".join(f"{d}:{d}" for d in range(10, 30))
CRASHES = [
    # (crash point, how the store is built, the killed run, calls the next reader makes)
    ("create-written", ("write", "1:9"), ("write", "10:29"), [("AAA", 10, 29)]),
    ("segment-created", ("write", "1:9"), ("write", "10:29"), [("AAA", 10, 29)]),
    ("record-created", ("write", "1:9"), ("write", "10:29"), []),
    ("segment-created", ("write-parts", "1:1,2:2,3:3"), ("write", "4:29"), [("AAA", 4, 29)]),
    ("checkpoint-created", ("write", "1:9"), ("write", ONE_DAY_EACH), None),
    ("prune-deleted", ("write", "1:9"), ("write", ONE_DAY_EACH), None),
    (
        "compact-created",
        ("write-parts", ",".join(f"{d}:{d}" for d in range(1, 30))),
        ("compact",),
        [],
    ),
    (
        "compact-committed",
        ("write-parts", ",".join(f"{d}:{d}" for d in range(1, 30))),
        ("compact",),
        [],
    ),
    (
        "release-deleted",
        ("write-parts", ",".join(f"{d}:{d}" for d in range(1, 30))),
        ("compact",),
        [],
    ),
]


@pytest.mark.parametrize(("point", "before", "killed", "expected"), CRASHES)
def test_sigkill_at_a_crash_point(tmp_path, point, before, killed, expected):
    """Killed at a step of the protocol: readable, exact, nothing committed fetched twice."""
    root, calls = tmp_path / "store", tmp_path / "calls"
    calls.mkdir()
    command, *args = before
    assert run_worker(command, str(root), *args, *(["32"] if command == "write" else [])) == 0
    command, *args = killed
    extra = ["32"] if command == "write" else []
    assert run_worker(command, str(root), *args, *extra, crash=point) == -signal.SIGKILL
    made = check_store(root, calls, 1, 29)
    if expected is not None:
        assert made == expected
    else:  # killed mid-run: some one-day writes landed, the rest is fetched in one gap
        assert len(made) <= 1
    collect(root, grace=0.0)
    after_gc = {p.name for p in root.rglob("*") if p.is_file()}
    assert not any(name.startswith(".tmp-") for name in after_gc)
    assert check_store(root, calls, 1, 29) == []  # nothing refetched after gc


def _random_kills(tmp_path: Path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "store"
    for i in range(rounds):
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        log = tmp_path / f"churn{i}.log"
        with open(log, "wb") as out:
            args = [sys.executable, WORKERS, "churn", str(root), str(seed + i)]
            proc = subprocess.Popen(args, env=env, stderr=out)
            time.sleep(rng.uniform(1.2, 2.5))  # imports take ~1 s; then it writes flat out
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL, log.read_text()
        calls = tmp_path / f"calls{i}"
        calls.mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            bars = bars_function(str(root), str(calls))
            for symbol in ("AAA", "BBB"):
                covered = bars.coverage(symbol)
                got = bars(symbol, day(0), day(130))
                assert_frame_equal(got, make_bars(symbol, day(0), day(130)))
                mine = [(a, b) for s, a, b in recorded(calls) if s == symbol]
                for a, b in mine:  # only what was not covered is fetched
                    assert not any(
                        pd.Timestamp(s) <= a and b <= pd.Timestamp(e) for s, e in covered
                    )
        assert verify(root).problems == []
        bars.invalidate("AAA", start=day(40), end=day(60))  # keep the next round writing


def test_random_kills_leave_a_readable_store(tmp_path):
    """A writer killed at random moments (a few rounds): every read stays exact."""
    _random_kills(tmp_path, rounds=2, seed=1)


@pytest.mark.slow
def test_random_kill_loop(tmp_path):
    """The long version of the random-kill loop."""
    _random_kills(tmp_path, rounds=15, seed=100)
