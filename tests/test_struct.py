"""The core's slotted records (``_core/struct.py``) behave as the dataclasses they replace."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from rangememo._core.ahead import March, Trail
from rangememo._core.planner import Gap, Plan, Policy
from rangememo._core.records import Stamp, State
from rangememo._core.rows import Chunk


def test_equality_and_hash_follow_every_field() -> None:
    a, b = Stamp(1, 5, 2.0, False), Stamp(1, 5, 2.0, False)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    for changed in (Stamp(2, 5, 2.0, False), Stamp(1, 6, 2.0, False), Stamp(1, 5, 3.0, False)):
        assert a != changed
    assert a != Stamp(1, 5, 2.0, True)


def test_records_of_different_types_with_equal_fields_differ() -> None:
    # A dataclass compares equal only to its own class; so must these.
    assert March(3, 0, 0) != Gap(3, 0, 0, 0)
    assert Stamp(0, 1, 0.0, False) != (0, 1, 0.0, False)


def test_defaults_and_keywords() -> None:
    assert Gap(0, 4, 0, 4) == Gap(lo=0, hi=4, call_lo=0, call_hi=4, quiet=False)
    assert State(0, 1, "final", None).expires is None
    assert Policy().step == 1 and Policy(readahead=3).readahead == 3
    assert Trail() == Trail(None, None)


def test_replace_copies_and_refuses_unknown_fields() -> None:
    gap = Gap(0, 10, 2, 8)
    moved = gap.replace(hi=12)
    assert (moved.lo, moved.hi, moved.call_lo, moved.call_hi) == (0, 12, 2, 8)
    assert gap.hi == 10  # the original is untouched
    with pytest.raises(TypeError, match="hgh"):
        gap.replace(hgh=3)


def test_repr_names_fields_in_constructor_order() -> None:
    assert repr(March(5, 2, 7)) == "March(edge=5, steps=2, window=7)"


def test_mutable_records_are_unhashable_like_their_dataclasses() -> None:
    with pytest.raises(TypeError):
        hash(Plan())


def test_plan_defaults_are_not_shared() -> None:
    one, two = Plan[object](), Plan[object]()
    one.gaps.append(Gap(0, 1, 0, 1))
    assert two.gaps == []


@pytest.mark.parametrize("record", [Stamp(1, 2, 3.5, True), Trail(March(1), None), Policy(edge=9)])
def test_pickle_and_copy_round_trip(record: object) -> None:
    assert pickle.loads(pickle.dumps(record)) == record
    assert copy.copy(record) == record and copy.deepcopy(record) == record


def test_slots_leave_no_instance_dict() -> None:
    chunk = Chunk(np.arange(3), None, 24)
    assert not hasattr(chunk, "__dict__")
    with pytest.raises(AttributeError):
        chunk.extra = 1  # type: ignore[attr-defined]
