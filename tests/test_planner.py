"""The gap planner: request + ledger + in-flight fetches -> gaps to fetch, flights to share."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st
from strategies import DOMAIN, interval_lists, intervals, nonempty_intervals, times

from rangememo._core.ledger import Ledger
from rangememo._core.planner import Plan, Policy, plan_gaps, split_span


@dataclass(eq=False)
class Flight:
    """A fetch in progress (compared by identity, like the real ones)."""

    lo: int
    hi: int


def positions(pairs) -> set[int]:
    return {p for lo, hi in pairs for p in range(lo, hi)}


def spans(plan: Plan) -> list[tuple[int, int]]:
    """The ranges a plan covers by fetching."""
    return [(g.lo, g.hi) for g in plan.gaps]


def calls(plan: Plan) -> list[tuple[int, int]]:
    """The ranges a plan asks the provider for."""
    return [(g.call_lo, g.call_hi) for g in plan.gaps if g.needs_call]


def ledger_of(pieces) -> Ledger:
    ledger = Ledger()
    for lo, hi in pieces:
        ledger.add(lo, hi)
    return ledger


flights = st.lists(nonempty_intervals().map(lambda s: Flight(*s)), max_size=4)


# -- examples -------------------------------------------------------------------------


def test_nothing_cached_is_one_gap():
    """With no ledger the whole request is one gap, asked for as is."""
    plan = plan_gaps(3, 9, None)
    assert spans(plan) == [(3, 9)]
    assert calls(plan) == [(3, 9)]
    assert plan.waits == []
    assert not plan.hit


def test_fully_covered_is_a_hit():
    """A covered request plans nothing."""
    plan = plan_gaps(2, 5, ledger_of([(0, 10)]))
    assert plan.gaps == []
    assert plan.waits == []
    assert plan.hit


def test_hole_between_two_pieces():
    """Only the hole between two covered pieces is fetched."""
    assert spans(plan_gaps(0, 20, ledger_of([(0, 5), (15, 20)]))) == [(5, 15)]


def test_empty_request_plans_nothing():
    """``[a, a)`` asks for no position."""
    assert plan_gaps(4, 4, None).hit
    assert plan_gaps(4, 4, Ledger()).hit


def test_in_flight_overlap_is_shared_not_refetched():
    """The part another caller is fetching is waited for; only the rest is a gap."""
    other = Flight(5, 12)
    plan = plan_gaps(0, 20, None, [other])
    assert spans(plan) == [(0, 5), (12, 20)]
    assert plan.waits == [other]


def test_unrelated_flight_is_not_waited_for():
    """A flight outside the missing part of the request is ignored."""
    plan = plan_gaps(0, 10, ledger_of([(0, 5)]), [Flight(0, 5), Flight(30, 40)])
    assert spans(plan) == [(5, 10)]
    assert plan.waits == []


def test_expired_provisional_is_planned_again():
    """A live-edge range is covered until it expires, a gap after."""
    ledger = ledger_of([(0, 8)])
    ledger.add_provisional(8, 10, fetched=0.0, expires=5.0)
    assert plan_gaps(0, 10, ledger, now=4.0).hit
    assert spans(plan_gaps(0, 10, ledger, now=5.0)) == [(8, 10)]


def test_max_span_splits_into_consecutive_chunks():
    """A long gap is cut into calls of at most ``max_span``, in order."""
    plan = plan_gaps(0, 10, None, policy=Policy(max_span=4))
    assert spans(plan) == [(0, 4), (4, 8), (8, 10)]
    assert calls(plan) == spans(plan)


def test_readahead_extends_into_free_space_only():
    """Readahead runs past the request's end up to the next covered piece."""
    plan = plan_gaps(0, 10, ledger_of([(14, 30)]), policy=Policy(readahead=10))
    assert spans(plan) == [(0, 14)]


def test_coalesce_bridges_a_small_covered_hole():
    """Two gaps closer than ``coalesce`` become one call."""
    ledger = ledger_of([(5, 7)])
    assert spans(plan_gaps(0, 12, ledger)) == [(0, 5), (7, 12)]
    assert spans(plan_gaps(0, 12, ledger, policy=Policy(coalesce=3))) == [(0, 12)]
    assert spans(plan_gaps(0, 12, ledger, policy=Policy(coalesce=2))) == [(0, 5), (7, 12)]


def test_a_range_without_sessions_needs_no_call():
    """A calendar with no session in a gap covers it without asking the provider."""
    plan = plan_gaps(0, 10, None, policy=Policy(sessions=lambda lo, hi: []))
    assert spans(plan) == [(0, 10)]
    assert calls(plan) == []


def test_sessions_trim_the_call_not_the_coverage():
    """A gap is covered whole but only its sessions are asked for."""
    plan = plan_gaps(0, 10, None, policy=Policy(sessions=lambda lo, hi: [(2, 4), (6, 8)]))
    assert spans(plan) == [(0, 10)]
    assert calls(plan) == [(2, 8)]


# -- properties -----------------------------------------------------------------------

policies = st.builds(
    Policy,
    max_span=st.none() | st.integers(1, DOMAIN),
    readahead=st.none() | st.integers(1, DOMAIN),
    lookback=st.none() | st.integers(1, DOMAIN),
)


@given(
    interval_lists(),
    flights,
    intervals(),
    times,
    st.lists(st.tuples(intervals(), times)),
    policies,
)
def test_every_position_is_covered_waited_or_fetched(pieces, inflight, req, now, prov, policy):
    """gaps | covered | waited flights >= request, whatever the policy."""
    ledger = ledger_of(pieces)
    for span, expires in prov:
        ledger.add_provisional(*span, fetched=0.0, expires=expires)
    plan = plan_gaps(*req, ledger, inflight, now, policy)
    covered = set(range(*req)) - positions(ledger.missing(*req, now))
    waited = positions((f.lo, f.hi) for f in plan.waits)
    assert set(range(*req)) <= positions(spans(plan)) | covered | waited


@given(interval_lists(), flights, intervals(), policies)
def test_gaps_avoid_coverage_and_flights(pieces, inflight, req, policy):
    """gaps & covered and gaps & in-flight are empty (every flight, waited or not)."""
    ledger = ledger_of(pieces)
    fetched = positions(spans(plan_gaps(*req, ledger, inflight, policy=policy)))
    assert not fetched & positions(ledger.intervals())
    assert not fetched & positions((f.lo, f.hi) for f in inflight)


@given(
    interval_lists(), flights, intervals(), policies | st.builds(Policy, coalesce=st.integers(1, 9))
)
def test_gaps_are_disjoint_and_ordered(pieces, inflight, req, policy):
    """Gaps are non-empty, each after the previous; each call lies inside its gap."""
    plan = plan_gaps(*req, ledger_of(pieces), inflight, policy=policy)
    for g in plan.gaps:
        assert g.lo < g.hi
        assert g.lo <= g.call_lo <= g.call_hi <= g.hi
    for a, b in zip(plan.gaps, plan.gaps[1:], strict=False):
        assert a.hi <= b.lo


@given(interval_lists(), flights, intervals())
def test_without_options_gaps_stay_inside_the_request(pieces, inflight, req):
    """With no readahead/lookback nothing outside the request is planned."""
    lo, hi = req
    for a, b in spans(plan_gaps(lo, hi, ledger_of(pieces), inflight)):
        assert lo <= a < b <= hi


@given(interval_lists(), flights, intervals())
def test_waits_are_needed_in_flight_fetches(pieces, inflight, req):
    """Every waited flight is one of the in-flight fetches and overlaps a missing position."""
    ledger = ledger_of(pieces)
    plan = plan_gaps(*req, ledger, inflight)
    missing = positions(ledger.missing(*req))
    for flight in plan.waits:
        assert any(flight is f for f in inflight)
        assert missing & set(range(flight.lo, flight.hi))
    assert len({id(f) for f in plan.waits}) == len(plan.waits)


@given(interval_lists(), intervals())
def test_without_flights_gaps_are_exactly_the_missing_positions(pieces, req):
    """No flight in the way: gaps = request - covered, as maximal pieces, one call each."""
    ledger = ledger_of(pieces)
    plan = plan_gaps(*req, ledger)
    assert positions(spans(plan)) == set(range(*req)) - positions(ledger.intervals())
    assert spans(plan) == ledger.missing(*req)
    assert calls(plan) == spans(plan)


@given(interval_lists(), flights, intervals(), policies)
def test_a_repeated_request_plans_zero_fetches(pieces, inflight, req, policy):
    """Once the gaps and the waited flights have landed, the same request is a hit."""
    ledger = ledger_of(pieces)
    plan = plan_gaps(*req, ledger, inflight, policy=policy)
    for lo, hi in spans(plan):
        ledger.add(lo, hi)
    for flight in plan.waits:
        ledger.add(flight.lo, flight.hi)
    assert plan_gaps(*req, ledger, policy=policy).hit


@given(interval_lists(), flights, intervals(), st.integers(1, DOMAIN + 1))
def test_max_span_covers_each_missing_position_exactly_once(pieces, inflight, req, max_span):
    """Split gaps: each at most ``max_span`` long, together the unsplit gaps, no overlap."""
    ledger = ledger_of(pieces)
    whole = spans(plan_gaps(*req, ledger, inflight))
    split = spans(plan_gaps(*req, ledger, inflight, policy=Policy(max_span=max_span)))
    assert all(0 < b - a <= max_span for a, b in split)
    assert sum(b - a for a, b in split) == len(positions(whole))
    assert positions(split) == positions(whole)


@given(interval_lists(), flights, intervals(), st.integers(1, DOMAIN), st.integers(1, DOMAIN))
def test_readahead_and_lookback_only_add_free_positions(pieces, inflight, req, ahead, behind):
    """Extensions keep every plain gap, add only free positions, within their reach."""
    ledger = ledger_of(pieces)
    lo, hi = req
    plain = positions(spans(plan_gaps(lo, hi, ledger, inflight)))
    policy = Policy(readahead=ahead, lookback=behind)
    extended = positions(spans(plan_gaps(lo, hi, ledger, inflight, policy=policy)))
    assert plain <= extended
    assert extended - plain <= set(range(lo - behind, lo)) | set(range(hi, hi + ahead))


@given(interval_lists(), flights, intervals(), st.integers(1, 9))
def test_coalesce_bridges_only_covered_holes_narrower_than_its_reach(pieces, inflight, req, within):
    """A coalesced gap is plain gaps plus covered holes of width < ``coalesce``."""
    ledger = ledger_of(pieces)
    plain = spans(plan_gaps(*req, ledger, inflight))
    merged = spans(plan_gaps(*req, ledger, inflight, policy=Policy(coalesce=within)))
    assert positions(plain) <= positions(merged)
    assert len(merged) <= len(plain)
    bridged = positions(merged) - positions(plain)
    assert bridged <= positions(ledger.intervals())
    assert not bridged & positions((f.lo, f.hi) for f in inflight)
    for (_, b1), (a2, _) in itertools.pairwise(plain):
        if set(range(b1, a2)) <= bridged:
            assert a2 - b1 < within


@given(intervals(min_size=1), st.integers(1, DOMAIN + 1))
def test_split_span_is_a_partition(span, max_span):
    """``split_span`` tiles ``[lo, hi)`` with consecutive pieces."""
    lo, hi = span
    pieces = split_span(lo, hi, max_span)
    assert pieces[0][0] == lo
    assert pieces[-1][1] == hi
    assert all(b1 == a2 for (_, b1), (a2, _) in itertools.pairwise(pieces))
    assert all(0 < b - a <= max_span for a, b in pieces)
