"""The ledger at scale: chunked spans and bounded records, against a set-of-integers model."""

from __future__ import annotations

import itertools
import json

import portion as P
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from strategies import intervals, nonempty_intervals

from rangememo._core import spans as _spans
from rangememo._core.ledger import PROVISIONAL_LIMIT, STAMP_LIMIT, Ledger
from rangememo._core.planner import Policy, plan_gaps
from rangememo._core.spans import EMPTY, Spans


def runs(positions: set[int]) -> list[tuple[int, int]]:
    """Maximal half-open runs of consecutive integers."""
    out: list[tuple[int, int]] = []
    for p in sorted(positions):
        if out and out[-1][1] == p:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out


@pytest.fixture(autouse=True)
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 2 ranges, so small random cases cross chunk borders all the time."""
    monkeypatch.setattr(_spans, "CHUNK", 2)


ops = st.lists(st.tuples(st.booleans(), intervals()), max_size=40)


# -- spans alone ------------------------------------------------------------------------


@settings(max_examples=300)
@given(ops, intervals())
def test_spans_match_a_set_of_integers(steps, req):
    """Any adds and removes: pieces, covers, overlaps, window and missing agree with a set."""
    spans, model = EMPTY, set()
    for adding, (lo, hi) in steps:
        spans = spans.add(lo, hi) if adding else spans.remove(lo, hi)
        model = model | set(range(lo, hi)) if adding else model - set(range(lo, hi))
        assert list(spans) == runs(model)
        assert len(spans) == len(runs(model))
    lo, hi = req
    asked = set(range(lo, hi))
    assert spans.covers(lo, hi) == (asked <= model)
    assert spans.overlaps(lo, hi) == bool(asked & model)
    assert spans.window(lo, hi) == runs(asked & model)
    assert spans.missing(lo, hi) == runs(asked - model)


@given(ops)
def test_spans_are_values(steps):
    """A change makes a new value: the old one answers as before (readers need no lock)."""
    spans = EMPTY
    for adding, (lo, hi) in steps:
        before = list(spans)
        changed = spans.add(lo, hi) if adding else spans.remove(lo, hi)
        assert list(spans) == before
        spans = changed


@given(st.lists(intervals(), max_size=30))
def test_spans_of_any_pairs_is_their_union(pieces):
    """``Spans.of`` takes unsorted, overlapping, touching and empty pairs."""
    model = {p for lo, hi in pieces for p in range(lo, hi)}
    assert list(Spans.of(pieces)) == runs(model)
    assert Spans.of(pieces) == Spans.of(reversed(pieces))


def test_chunks_stay_bounded_under_churn():
    """Growing, punching holes and healing keep every chunk non-empty and at most 2 * CHUNK."""
    spans = EMPTY
    for i in range(400):
        spans = spans.add(3 * i, 3 * i + 2)
    for i in range(0, 400, 3):
        spans = spans.remove(3 * i, 3 * i + 2)
    spans = spans.add(300, 900)
    sizes = [len(c) for c in spans._los]
    assert all(0 < s <= 2 * _spans.CHUNK for s in sizes)
    assert sum(sizes) == len(spans) == len(list(spans))


# -- the ledger against a model -----------------------------------------------------------


class Model:
    """Final positions (with the last fetch's time and emptiness) and live-edge expiries."""

    def __init__(self) -> None:
        self.final: dict[int, tuple[float, bool]] = {}
        self.provisional: dict[int, float] = {}

    def add(self, lo: int, hi: int, fetched: float, empty: bool) -> None:
        for p in range(lo, hi):
            self.final[p] = (fetched, empty)
            self.provisional.pop(p, None)

    def add_provisional(self, lo: int, hi: int, expires: float, fetched: float) -> None:
        for p in range(lo, hi):
            # Never served without a ttl (expiry not after the fetch), whatever the clock.
            self.provisional[p] = expires if expires > fetched else float("-inf")

    def remove(self, lo: int, hi: int) -> None:
        for p in range(lo, hi):
            self.final.pop(p, None)
            self.provisional.pop(p, None)

    def live(self, now: float) -> set[int]:
        return set(self.final) | {p for p, e in self.provisional.items() if e > now}


class FastLedgerMachine(RuleBasedStateMachine):
    """Random adds (rows or none), removes, live-edge claims, clock ticks and reloads."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger, self.model, self.now = Ledger(), Model(), 0.0

    @rule(span=intervals(), empty=st.booleans())
    def add(self, span, empty):
        self.ledger.add(*span, fetched=self.now, empty=empty)
        self.model.add(*span, self.now, empty)

    @rule(span=intervals())
    def remove(self, span):
        self.ledger.remove(*span)
        self.model.remove(*span)

    @rule(span=intervals(), ttl=st.integers(-1, 4).map(float))
    def add_provisional(self, span, ttl):
        self.ledger.add_provisional(*span, fetched=self.now, expires=self.now + ttl)
        self.model.add_provisional(*span, self.now + ttl, self.now)

    @rule(dt=st.integers(0, 3).map(float))
    def tick(self, dt):
        self.now += dt

    @rule()
    def reload(self):
        """A JSON round trip gives back an equal ledger."""
        back = Ledger.from_json(json.loads(json.dumps(self.ledger.to_json())))
        assert back == self.ledger
        self.ledger = back

    @rule(req=intervals())
    def queries(self, req):
        lo, hi = req
        asked, live = set(range(lo, hi)), self.model.live(self.now)
        assert self.ledger.missing(lo, hi, self.now) == runs(asked - live)
        assert self.ledger.covers(lo, hi, self.now) == (asked <= live)
        assert self.ledger.overlaps(lo, hi) == bool(asked & set(self.model.final))
        assert self.ledger.window(lo, hi) == runs(asked & set(self.model.final))

    @rule(req=nonempty_intervals())
    def plan(self, req):
        """The planner's gaps are exactly the missing runs; planning reads no portion."""
        gaps = plan_gaps(*req, self.ledger, (), self.now).gaps
        assert [(g.lo, g.hi) for g in gaps] == self.ledger.missing(*req, self.now)

    @invariant()
    def final_pieces_agree(self):
        assert self.ledger.intervals() == runs(set(self.model.final))
        assert self.ledger.covered == P.Interval(
            *(P.closedopen(a, b) for a, b in runs(set(self.model.final)))
        )

    @invariant()
    def states_tell_the_truth(self):
        """Every final position has a stamp no later than its fetch; "empty" only where empty."""
        seen = set()
        for s in self.ledger.states():
            if s.state == "provisional":
                continue
            for p in range(s.lo, s.hi):
                fetched, empty = self.model.final[p]
                assert s.fetched is not None and s.fetched <= fetched
                assert s.state == ("empty" if empty else "final")
                seen.add(p)
        assert seen == set(self.model.final)

    @invariant()
    def records_are_sorted_and_disjoint(self):
        for records in (self.ledger.stamps, self.ledger.provisional):
            for a, b in itertools.pairwise(records):
                assert a.lo < a.hi <= b.lo < b.hi


TestFastLedgerMachine = FastLedgerMachine.TestCase
TestFastLedgerMachine.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)


# -- old files ------------------------------------------------------------------------


def test_reads_records_in_any_order():
    """Stamps and marks as an older version wrote them (append order) read the same."""
    data = {
        "covered": [[20, 30], [0, 10]],
        "provisional": [[35, 36, 5.0, 9.0], [30, 32, 4.0, 8.0]],
        "stamps": [[20, 30, 2.0, True], [0, 5, 1.0, False], [5, 10, 3.0, False]],
    }
    ledger = Ledger.from_json(data)
    assert ledger.intervals() == [(0, 10), (20, 30)]
    assert ledger.missing(0, 40, now=8.5) == [(10, 20), (30, 35), (36, 40)]
    assert [(s.lo, s.hi, s.state, s.fetched) for s in ledger.states()] == [
        (0, 10, "final", 1.0),
        (20, 30, "empty", 2.0),
        (30, 32, "provisional", 4.0),
        (35, 36, "provisional", 5.0),
    ]


# -- bounds -----------------------------------------------------------------------------


def test_stamps_stay_bounded_whatever_the_fetches():
    """10,000 fetches alternating rows / no rows keep at most STAMP_LIMIT stamps, truthfully."""
    ledger = Ledger()
    for i in range(10_000):
        ledger.add(10 * i, 10 * i + 5, fetched=float(i), empty=i % 2 == 1)
    assert len(ledger.stamps) <= STAMP_LIMIT
    states = [s for s in ledger.states() if s.state != "provisional"]
    assert sum(s.hi - s.lo for s in states) == 5 * 10_000
    for s in states:  # "empty" is only ever said of a range that had no rows
        if s.state == "empty":
            assert all((p // 10) % 2 == 1 for p in range(s.lo, s.hi))


def test_fragmented_fetches_keep_exact_stamps_up_to_the_limit():
    """Disjoint pieces keep their own fetch times; past the limit, fewer and older ones."""
    ledger = Ledger()
    for i in range(STAMP_LIMIT):
        ledger.add(10 * i, 10 * i + 5, fetched=float(i))
    assert [s.fetched for s in ledger.states()] == [float(i) for i in range(STAMP_LIMIT)]
    for i in range(STAMP_LIMIT, 10_000):
        ledger.add(10 * i, 10 * i + 5, fetched=float(i))
    assert len(ledger.stamps) <= STAMP_LIMIT
    states = ledger.states()
    assert all(s.fetched is not None and s.fetched <= s.lo // 10 for s in states)
    assert sum(s.hi - s.lo for s in states) == 5 * 10_000


def test_provisional_marks_stay_bounded():
    """Many live ranges at once keep at most PROVISIONAL_LIMIT marks, the latest to expire."""
    ledger = Ledger()
    n = 3 * PROVISIONAL_LIMIT
    for i in range(n):
        ledger.add_provisional(10 * i, 10 * i + 5, fetched=0.0, expires=100.0 + i)
    assert len(ledger.provisional) == PROVISIONAL_LIMIT
    assert ledger.covers(10 * (n - 1), 10 * (n - 1) + 5, now=50.0)
    assert ledger.missing(0, 5, now=50.0) == [(0, 5)]  # dropped: fetched again, never wrong


def test_expired_marks_are_dropped_first():
    """Past the limit the soonest to expire go: an expired mark before a live one."""
    ledger = Ledger()
    ledger.add_provisional(0, 5, fetched=0.0, expires=10.0)  # expired by now=20
    for i in range(1, PROVISIONAL_LIMIT + 1):
        ledger.add_provisional(10 * i, 10 * i + 5, fetched=20.0, expires=30.0)
    assert len(ledger.provisional) == PROVISIONAL_LIMIT
    assert ledger.provisional[0].lo == 10
    assert ledger.missing(0, 10 * PROVISIONAL_LIMIT + 5, now=25.0) == [
        (0, 10),
        *((10 * i + 5, 10 * i + 10) for i in range(1, PROVISIONAL_LIMIT)),
    ]


def test_adjacent_marks_with_one_expiry_merge():
    """A live edge grown bar by bar with one expiry is one mark."""
    ledger = Ledger()
    for i in range(100):
        ledger.add_provisional(i, i + 1, fetched=1.0, expires=50.0)
    assert [(p.lo, p.hi) for p in ledger.provisional] == [(0, 100)]


# -- scale (timing lives in benchmarks/bench_planner.py) ---------------------------------


@pytest.mark.parametrize("order", ["ascending", "descending", "interleaved"])
def test_ten_thousand_intervals_build_and_answer(order, monkeypatch):
    """10,000 disjoint pieces built by single adds, then queried, reloaded and punched."""
    monkeypatch.setattr(_spans, "CHUNK", 256)
    k = 10_000
    idx = list(range(k))
    if order == "descending":
        idx.reverse()
    elif order == "interleaved":
        idx = idx[::2] + idx[1::2]
    ledger = Ledger()
    for i in idx:
        ledger.add(10 * i, 10 * i + 5, fetched=float(i), empty=i % 3 == 0)
    assert len(ledger.intervals()) == k
    mid = 10 * (k // 2)
    assert ledger.covers(mid, mid + 5)
    assert ledger.missing(mid, mid + 8) == [(mid + 5, mid + 8)]
    assert len(ledger.missing(0, 10 * k)) == k
    assert plan_gaps(mid, mid + 8, ledger, (), 0.0, Policy(readahead=20)).gaps[0].hi == mid + 10
    back = Ledger.from_json(json.loads(json.dumps(ledger.to_json())))
    assert back == ledger
    for i in range(0, k, 2):
        back.remove(10 * i, 10 * i + 5)
    assert len(back.intervals()) == k // 2
    assert not back.overlaps(mid, mid + 5)


def test_a_ledger_pickles_and_copies():
    """A fragmented ledger survives pickle (a worker's store) and copy unchanged."""
    import copy
    import pickle

    ledger = Ledger()
    for i in range(600):
        ledger.add(10 * i, 10 * i + 5, fetched=1.0, empty=i % 2 == 0)
    ledger.add_provisional(9000, 9010, fetched=1.0, expires=2.0)
    for twin in (pickle.loads(pickle.dumps(ledger)), copy.deepcopy(ledger), ledger.copy()):
        assert twin == ledger
        assert twin.missing(0, 20, now=1.5) == [(5, 10), (15, 20)]


def test_bench_planner_end_to_end_smoke(monkeypatch):
    """The benchmark's fragmented-key rows run (tiny sizes; timings are not asserted)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "bench_planner.py"
    spec = importlib.util.spec_from_file_location("_benchmarks_bench_planner", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    out = module.end_to_end_rows(60, 40, quick=True)
    assert out["big"]["k"] == 60 and out["small"]["k"] == 40
    assert out["covered_ratio"] > 0 and out["one_gap_ratio"] > 0
    fn = module.fragmented_key(30)
    assert len(fn.coverage("X")) == 30


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-5, 60), st.integers(-5, 60)), max_size=12),
    st.booleans(),
)
def test_of_written_is_of(pairs: list[tuple[int, int]], as_written: bool) -> None:
    """Ranges as ``to_json`` writes them take the fast path; anything else is ``of``'s union."""
    if as_written:  # sorted, disjoint, not touching: what a ledger writes
        pairs = list(_spans.Spans.of(pairs))
    rows = [list(p) for p in pairs]
    assert list(_spans.Spans.of_written(rows)) == list(_spans.Spans.of(pairs))
    floats = [[float(a), float(b)] for a, b in pairs]  # JSON from elsewhere: still the union
    assert list(_spans.Spans.of_written(floats)) == list(_spans.Spans.of(pairs))


def test_of_written_chunks_a_long_ledger() -> None:
    rows = [[10 * i, 10 * i + 5] for i in range(1000)]
    spans = _spans.Spans.of_written(rows)
    assert len(spans) == 1000 and list(spans) == [tuple(r) for r in rows]
    assert spans.overlaps(4994, 4995) and not spans.overlaps(4985, 4990)
