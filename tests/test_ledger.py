"""The ledger: covered half-open ranges of one key, against a set-of-integers model."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from strategies import DOMAIN, interval_lists, intervals, nonempty_intervals, times

from rangememo._core.ledger import Ledger

# -- the model ------------------------------------------------------------------------


def runs(positions: set[int]) -> list[tuple[int, int]]:
    """Maximal half-open runs of consecutive integers."""
    out: list[tuple[int, int]] = []
    for p in sorted(positions):
        if out and out[-1][1] == p:
            out[-1] = (out[-1][0], p + 1)
        else:
            out.append((p, p + 1))
    return out


class Model:
    """Final positions, and provisional positions with the time each expires.

    A provisional position is served while it has not expired, and never when its
    expiry is not after its fetch (no ``ttl``), even at a clock reading before it.
    """

    def __init__(self) -> None:
        self.final: set[int] = set()
        self.provisional: dict[int, float] = {}
        self.served: dict[int, bool] = {}  # expires > fetched

    def add(self, lo: int, hi: int) -> None:
        for p in range(lo, hi):
            self.final.add(p)
            self.provisional.pop(p, None)

    def add_provisional(self, lo: int, hi: int, fetched: float, expires: float) -> None:
        for p in range(lo, hi):
            self.provisional[p] = expires  # the newest claim wins, served or not
            self.served[p] = expires > fetched

    def remove(self, lo: int, hi: int) -> None:
        for p in range(lo, hi):
            self.final.discard(p)
            self.provisional.pop(p, None)

    def prune(self, now: float) -> None:
        self.provisional = {p: e for p, e in self.provisional.items() if e > now}

    def live(self, now: float) -> set[int]:
        always = now == float("-inf")  # every mark counts (stale_if_error)
        live = {p for p, e in self.provisional.items() if e > now and (self.served[p] or always)}
        return self.final | live

    def missing(self, lo: int, hi: int, now: float) -> list[tuple[int, int]]:
        return runs(set(range(lo, hi)) - self.live(now))


def ledger_of(pieces: list[tuple[int, int]]) -> tuple[Ledger, Model]:
    ledger, model = Ledger(), Model()
    for lo, hi in pieces:
        ledger.add(lo, hi)
        model.add(lo, hi)
    return ledger, model


# -- adding and merging ---------------------------------------------------------------


def test_a_new_ledger_is_empty():
    """Nothing is covered and everything is missing."""
    ledger = Ledger()
    assert ledger.empty
    assert ledger.intervals() == []
    assert not ledger.covers(0, 1)
    assert ledger.missing(3, 9) == [(3, 9)]


def test_adjacent_half_open_ranges_merge():
    """``[0, 5)`` and ``[5, 10)`` are one piece: no gap at the seam."""
    ledger = Ledger()
    ledger.add(0, 5)
    ledger.add(5, 10)
    assert ledger.intervals() == [(0, 10)]
    assert ledger.covers(0, 10)
    assert ledger.missing(0, 10) == []


def test_ranges_one_apart_do_not_merge():
    """``[0, 5)`` and ``[6, 10)`` leave position 5 missing."""
    ledger = Ledger()
    ledger.add(0, 5)
    ledger.add(6, 10)
    assert ledger.intervals() == [(0, 5), (6, 10)]
    assert ledger.missing(0, 10) == [(5, 6)]


def test_empty_and_inverted_ranges_change_nothing():
    """``add``/``remove`` of ``[a, a)`` or ``[b, a)`` are no-ops."""
    ledger = Ledger()
    ledger.add(4, 4)
    ledger.add(7, 3)
    assert ledger.empty
    ledger.add(0, 10)
    ledger.remove(5, 5)
    ledger.remove(8, 2)
    assert ledger.intervals() == [(0, 10)]


def test_int64_extremes():
    """Bounds at the ends of int64 (nanosecond timestamps) stay exact."""
    lo, hi = -(2**63), 2**63 - 1
    ledger = Ledger()
    ledger.add(lo, 0)
    ledger.add(1_700_000_000_000_000_000, hi)
    assert ledger.intervals() == [(lo, 0), (1_700_000_000_000_000_000, hi)]
    assert ledger.missing(lo, hi) == [(0, 1_700_000_000_000_000_000)]
    assert all(type(x) is int for pair in ledger.intervals() for x in pair)


@given(interval_lists(), intervals())
def test_add_matches_a_set_of_integers(pieces, req):
    """After any adds: pieces, ``covers`` and ``missing`` agree with a set model."""
    ledger, model = ledger_of(pieces)
    lo, hi = req
    assert ledger.intervals() == runs(model.final)
    assert ledger.missing(lo, hi) == model.missing(lo, hi, 0.0)
    assert ledger.covers(lo, hi) == (set(range(lo, hi)) <= model.final)


@given(interval_lists(), interval_lists(), intervals())
def test_remove_matches_a_set_of_integers(added, removed, req):
    """Removing ranges forgets exactly those positions."""
    ledger, model = ledger_of(added)
    for lo, hi in removed:
        ledger.remove(lo, hi)
        model.remove(lo, hi)
    assert ledger.intervals() == runs(model.final)
    assert ledger.missing(*req) == model.missing(*req, 0.0)
    assert ledger.empty == (not model.final)


@given(interval_lists(), nonempty_intervals())
def test_missing_then_add_covers_the_request(pieces, req):
    """Adding every missing piece of a request makes it covered."""
    ledger, _ = ledger_of(pieces)
    gaps = ledger.missing(*req)
    for lo, hi in gaps:
        ledger.add(lo, hi)
    assert ledger.covers(*req)
    assert ledger.missing(*req) == []


@given(interval_lists(), nonempty_intervals())
def test_missing_pieces_are_maximal_sorted_and_inside(pieces, req):
    """Gaps lie inside the request, are ordered, non-empty and never touch."""
    ledger, _ = ledger_of(pieces)
    lo, hi = req
    gaps = ledger.missing(lo, hi)
    for a, b in gaps:
        assert lo <= a < b <= hi
    for (_, b1), (a2, _) in itertools.pairwise(gaps):
        assert b1 < a2


# -- provisional ranges (the live edge) ---------------------------------------------


def test_provisional_range_is_served_until_it_expires():
    """A live-edge range counts as covered before ``expires`` and missing after."""
    ledger = Ledger()
    ledger.add(0, 10)
    ledger.add_provisional(10, 12, fetched=100.0, expires=160.0)
    assert ledger.covers(0, 12, now=159.0)
    assert ledger.missing(0, 12, now=159.0) == []
    assert not ledger.covers(0, 12, now=160.0)
    assert ledger.missing(0, 12, now=160.0) == [(10, 12)]
    assert ledger.intervals() == [(0, 10)]
    assert not ledger.empty


def test_provisional_that_expires_at_once_is_never_served():
    """``expires <= fetched`` (no ttl) is missing at once: refetched on the next call."""
    ledger = Ledger()
    ledger.add_provisional(0, 5, fetched=10.0, expires=10.0)
    assert ledger.missing(0, 5, now=10.0) == [(0, 5)]
    assert not ledger.covers(0, 5, now=10.0)
    assert ledger.intervals() == []


def test_final_add_replaces_provisional():
    """Recording a range as final removes its provisional claim."""
    ledger = Ledger()
    ledger.add_provisional(0, 10, fetched=0.0, expires=5.0)
    ledger.add(3, 6)
    assert ledger.covers(3, 6, now=99.0)
    assert ledger.missing(0, 10, now=99.0) == [(0, 3), (6, 10)]
    assert ledger.covers(0, 10, now=1.0)


def test_newer_provisional_claim_replaces_older():
    """A later live-edge fetch of a range sets its expiry, longer or shorter."""
    ledger = Ledger()
    ledger.add_provisional(0, 10, fetched=0.0, expires=100.0)
    ledger.add_provisional(4, 6, fetched=1.0, expires=2.0)
    assert ledger.missing(0, 10, now=3.0) == [(4, 6)]


def test_prune_drops_only_expired():
    """``prune(now)`` forgets provisional ranges that expired, keeps the rest."""
    ledger = Ledger()
    ledger.add_provisional(0, 2, fetched=0.0, expires=5.0)
    ledger.add_provisional(4, 6, fetched=0.0, expires=50.0)
    ledger.prune(10.0)
    assert ledger.missing(0, 6, now=0.0) == [(0, 4)]
    ledger.prune(50.0)
    assert ledger.empty


@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "prov", "remove", "prune"]), intervals(), times, times),
        max_size=10,
    ),
    intervals(),
    times,
)
def test_live_coverage_matches_the_model(ops, req, now):
    """Any mix of final, provisional, remove and prune agrees with the model at any time."""
    ledger, model = Ledger(), Model()
    for op, (lo, hi), t1, t2 in ops:
        if op == "add":
            ledger.add(lo, hi)
            model.add(lo, hi)
        elif op == "prov":
            ledger.add_provisional(lo, hi, t1, t2)
            model.add_provisional(lo, hi, t1, t2)
        elif op == "remove":
            ledger.remove(lo, hi)
            model.remove(lo, hi)
        else:
            ledger.prune(t1)
            model.prune(t1)
    lo, hi = req
    assert ledger.intervals() == runs(model.final)
    assert ledger.missing(lo, hi, now) == model.missing(lo, hi, now)
    assert ledger.covers(lo, hi, now) == (set(range(lo, hi)) <= model.live(now))


# -- persistence ----------------------------------------------------------------------


def test_json_is_plain_data():
    """``to_json`` survives ``json.dumps``/``loads`` unchanged."""
    ledger = Ledger()
    ledger.add(0, 5)
    ledger.add(-(2**63), -(2**62))
    ledger.add_provisional(7, 9, fetched=1.5, expires=2.5)
    data = ledger.to_json()
    assert json.loads(json.dumps(data)) == data


def test_from_json_of_nothing_is_empty():
    """An empty mapping reads as an empty ledger."""
    assert Ledger.from_json({}).empty


@given(
    interval_lists(),
    st.lists(st.tuples(intervals(), times, times), max_size=4),
    intervals(),
    times,
)
def test_json_round_trip(pieces, provisional, req, now):
    """``from_json(loads(dumps(to_json())))`` answers every question the same."""
    ledger, _ = ledger_of(pieces)
    for (lo, hi), fetched, expires in provisional:
        ledger.add_provisional(lo, hi, fetched, expires)
    back = Ledger.from_json(json.loads(json.dumps(ledger.to_json())))
    assert back.intervals() == ledger.intervals()
    assert back.provisional == ledger.provisional
    assert back.missing(*req, now) == ledger.missing(*req, now)
    assert back.empty == ledger.empty


@given(interval_lists(), intervals())
def test_copy_is_independent(pieces, extra):
    """Mutating a copy leaves the original as it was."""
    ledger, model = ledger_of(pieces)
    twin = ledger.copy()
    twin.add(*extra)
    twin.remove(0, DOMAIN // 2)
    assert ledger.intervals() == runs(model.final)


# -- a stateful run against the model ---------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """Random adds, removes, live-edge claims, prunes and persistence round trips."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        self.model = Model()
        self.now = 0.0

    @rule(span=intervals())
    def add(self, span):
        self.ledger.add(*span)
        self.model.add(*span)

    @rule(span=intervals())
    def remove(self, span):
        self.ledger.remove(*span)
        self.model.remove(*span)

    @rule(span=intervals(), ttl=st.integers(-1, 5).map(float))
    def add_provisional(self, span, ttl):
        self.ledger.add_provisional(*span, fetched=self.now, expires=self.now + ttl)
        self.model.add_provisional(*span, fetched=self.now, expires=self.now + ttl)

    @rule(dt=st.integers(0, 3).map(float))
    def tick(self, dt):
        self.now += dt

    @rule()
    def prune(self):
        self.ledger.prune(self.now)
        self.model.prune(self.now)

    @precondition(lambda self: not self.ledger.empty)
    @rule()
    def reload(self):
        self.ledger = Ledger.from_json(json.loads(json.dumps(self.ledger.to_json())))

    @rule(span=nonempty_intervals())
    def fill_gaps(self, span):
        for lo, hi in self.ledger.missing(*span, self.now):
            self.ledger.add(lo, hi)
            self.model.add(lo, hi)
        assert self.ledger.covers(*span, self.now)

    @invariant()
    def final_pieces_agree(self):
        assert self.ledger.intervals() == runs(self.model.final)

    @invariant()
    def live_coverage_agrees(self):
        assert self.ledger.missing(0, DOMAIN, self.now) == self.model.missing(0, DOMAIN, self.now)

    @invariant()
    def emptiness_agrees(self):
        assert self.ledger.empty == (not self.model.final and not self.model.provisional)


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
