"""The march detector (rangememo._core.ahead) and the planner's adaptive readahead."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rangememo._core.ahead import GROWTH, THRESHOLD, March, Trail, grant, march, moved
from rangememo._core.ledger import Ledger
from rangememo._core.planner import Policy, plan_gaps


def _windows(requests: list[tuple[int, int]], cap: int, step: int = 1) -> list[int]:
    """Plan each request against a ledger its plans fill; how far each read ahead."""
    ledger, trail, out = Ledger(), Trail(), []
    policy = Policy(step=step, auto=cap)
    for lo, hi in requests:
        plan = plan_gaps(lo, hi, ledger, (), 0.0, policy, trail)
        trail = plan.trail or trail
        out.append(max([0, *(g.hi - hi for g in plan.gaps)]))
        for g in plan.gaps:
            ledger.add(g.lo, g.hi)
    return out


# -- the pure detector ------------------------------------------------------------


@given(
    steps=st.integers(0, 50),
    window=st.integers(0, 10**9),
    gap=st.integers(0, 10**9),
    run=st.integers(0, 10**12),
    cap=st.integers(-5, 10**9),
)
def test_grant_is_never_negative_nor_beyond_the_cap(
    steps: int, window: int, gap: int, run: int, cap: int
) -> None:
    w = grant(March(0, steps, window), gap, run, cap)
    assert 0 <= w <= max(cap, 0)
    if steps < THRESHOLD:
        assert w == 0  # one step, or two, are a coincidence


@given(st.integers(-(10**6), 10**6), st.integers(0, 5), st.integers(1, 100))
def test_a_step_must_start_at_the_edge(edge: int, steps: int, off: int) -> None:
    state = March(edge, steps, 7)
    on = march(state, edge, 0)
    assert on.steps == steps + 1 and on.window == 7
    off_state = march(state, edge + off, 0)
    assert off_state.steps == 0 and off_state.window == 0  # shrinks back to nothing
    assert march(state, edge + off, off).steps == steps + 1  # within the slack


@given(st.integers(1, 10**6), st.integers(1, 10**3), st.integers(1, 30))
def test_the_window_grows_geometrically_while_the_march_goes_on(
    cap: int, first: int, n: int
) -> None:
    state: March | None = None
    edge, windows = 0, []
    for _ in range(n + THRESHOLD):
        state = march(state, edge)
        w = grant(state, 1, first, cap)
        windows.append(w)
        edge += 1 + w
        state = moved(state, edge, w)
    granted = windows[THRESHOLD:]
    assert all(w == 0 for w in windows[:THRESHOLD])
    assert granted[0] == min(cap, first)
    for a, b in itertools.pairwise(granted):
        assert b == min(cap, a * GROWTH)  # grows, up to the cap, and stays there


# -- through the planner ----------------------------------------------------------


def test_a_forward_march_gets_growing_windows_and_a_break_resets_them() -> None:
    # A 30-unit lookback first, then one unit at a time forward.
    reqs = [(70, 101), *((d, d + 1) for d in range(101, 400))]
    ledger, trail, granted = Ledger(), Trail(), []
    policy = Policy(step=1, auto=64)
    for lo, hi in reqs:
        plan = plan_gaps(lo, hi, ledger, (), 0.0, policy, trail)
        trail = plan.trail or trail
        if plan.gaps:
            granted.append(max(g.hi for g in plan.gaps) - hi)
        for g in plan.gaps:
            ledger.add(g.lo, g.hi)
    # 70..101 (new), 101 (step 1), 102 (step 2: the run behind, 70..102), then doubled
    # up to the cap; the hits between are never planned.
    assert granted[:3] == [0, 0, 32]
    assert granted[3:6] == [64, 64, 64]
    # A request elsewhere breaks the march: the next steps start from nothing.
    plan = plan_gaps(500, 501, ledger, (), 0.0, policy, trail)
    assert [(g.lo, g.hi) for g in plan.gaps] == [(500, 501)]
    assert plan.trail is not None and plan.trail.ahead is not None
    assert plan.trail.ahead.steps == 0 and plan.trail.ahead.window == 0


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32))
def test_random_windows_get_no_readahead(seed: int) -> None:
    rng = random.Random(seed)
    reqs = []
    for _ in range(40):
        lo = rng.randrange(0, 3650)
        reqs.append((lo, lo + rng.randrange(1, 60)))
    windows = _windows(reqs, cap=1024)
    # A window is granted only after THRESHOLD requests in a row each started
    # where the previous fetch of the key ended: random windows almost never do,
    # and when one does by chance it is bounded by the run behind it.
    assert sum(1 for w in windows if w) <= 1


def test_backward_march_reads_behind() -> None:
    ledger, trail = Ledger(), Trail()
    policy = Policy(step=1, auto=1000)
    starts = []
    d = 1000
    for _ in range(6):
        plan = plan_gaps(d, d + 1, ledger, (), 0.0, policy, trail)
        trail = plan.trail or trail
        if plan.gaps:
            lo = min(g.lo for g in plan.gaps)
            starts.append(d - lo)
            for g in plan.gaps:
                ledger.add(g.lo, g.hi)
        d -= 1
    assert starts[:2] == [0, 0]
    assert starts[2] > 0
