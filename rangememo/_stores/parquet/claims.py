"""Segment claims as sorted lists: what each segment shows, without ``portion`` (pure).

A key of K disjoint intervals carries segments with up to K claims each.
Every step here costs O(claims of the newer segments + log) per claim of the
segment asked about, never a ``portion`` union over all segments (the O(K)
unions that made each commit of a fragmented key cost milliseconds):

* :func:`union` merges sorted claim lists; one large list and a few small
  ones (a tail merge: the key's big segment plus the new piece) take a
  bisect and a tuple splice per small claim.
* :func:`visible` / :func:`shown` subtract the claims of later segments by
  bisecting in their (sorted, disjoint) union.
* :func:`outside` marks, vectorised, the rows no later claim covers.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from .segments import Claim, Segment

__all__ = [
    "Piece",
    "expand_ranges",
    "outside",
    "owned",
    "owners",
    "shown",
    "subtract",
    "union",
    "visible",
]

#: ``(lo, hi, segment)``: the rows of ``[lo, hi)`` live in ``segment``.
Piece = tuple[int, int, Segment]

#: Claims that go into a large list one bisect at a time (more: one linear pass).
_SPLICE = 32
#: Claims over all segments above which :func:`visible` works on arrays.
_VECTOR = 256
#: Elementary ranges :func:`owners` marks per array pass.
_BATCH = 1 << 22


def _linear(items: list[Claim]) -> tuple[Claim, ...]:
    out: list[Claim] = []
    for a, b in items:
        if a >= b:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return tuple(out)


def _splice(base: tuple[Claim, ...], a: int, b: int) -> tuple[Claim, ...]:
    """``base`` (sorted, disjoint, not touching) with ``[a, b)`` merged in."""
    if a >= b:
        return base
    # First claim with hi >= a (touching counts) and first with lo > b.
    i = bisect_left(base, a, key=lambda c: c[1])
    j = bisect_right(base, b, key=lambda c: c[0])
    if i < j:
        a, b = min(a, base[i][0]), max(b, base[j - 1][1])
    return (*base[:i], (a, b), *base[j:])


def _canonical(claims: Sequence[Claim]) -> bool:
    """Sorted, disjoint and not touching (what every stored segment holds)?"""
    return all(
        claims[k][0] < claims[k][1] and claims[k][1] < claims[k + 1][0]
        for k in range(len(claims) - 1)
    ) and (not claims or claims[-1][0] < claims[-1][1])


def union(*claims: Sequence[Claim]) -> tuple[Claim, ...]:
    """The union of sorted lists of half-open ranges, as sorted disjoint ranges."""
    lists = [c for c in claims if c]
    if not lists:
        return ()
    big = max(range(len(lists)), key=lambda k: len(lists[k]))
    rest = [c for k, cs in enumerate(lists) if k != big for c in cs]
    base = lists[big]
    if len(rest) <= _SPLICE and len(base) > 4 * _SPLICE and _canonical(base[:2]):
        # A large list is checked only at its start (O(1)): stored claims are
        # canonical by construction; anything else goes the linear way below.
        out = tuple(base)
        for a, b in rest:
            out = _splice(out, a, b)
        return out
    if len(lists) == 1:
        return _linear(list(lists[0]))
    return _linear(sorted((c for cs in lists for c in cs), key=lambda c: c[0]))


def subtract(claims: Sequence[Claim], los: list[int], his: list[int]) -> list[tuple[int, int]]:
    """``claims`` minus the sorted disjoint ranges ``zip(los, his)``."""
    out: list[tuple[int, int]] = []
    if not los:
        return [(a, b) for a, b in claims if a < b]
    for a, b in claims:
        k = bisect_right(his, a)  # the first later range ending after a
        cursor = a
        while k < len(los) and los[k] < b:
            if los[k] > cursor:
                out.append((cursor, los[k]))
            cursor = max(cursor, his[k])
            k += 1
        if cursor < b:
            out.append((cursor, b))
    return out


def _split(claims: Sequence[Claim]) -> tuple[list[int], list[int]]:
    return [a for a, _ in claims], [b for _, b in claims]


def _clip(claims: Sequence[Claim], lo: int, hi: int) -> Sequence[Claim]:
    """The sorted ``claims`` cut to ``[lo, hi)``: two bisects and a slice."""
    i = bisect_right(claims, lo, key=lambda c: c[1])  # the first ending after lo
    j = bisect_left(claims, hi, key=lambda c: c[0])  # the first starting at or after hi
    if i >= j:
        return ()
    out = claims[i:j]
    if out[0][0] < lo or out[-1][1] > hi:
        out = list(out)
        out[0] = (max(out[0][0], lo), out[0][1])
        out[-1] = (out[-1][0], min(out[-1][1], hi))
    return out


def visible(segments: Sequence[Segment]) -> list[Piece]:
    """Where each segment's rows show: its claims minus later claims, in order."""
    if sum(len(seg.claims) for seg in segments) > _VECTOR:
        return visible_vectorised(segments)
    seen: tuple[Claim, ...] = ()
    out: list[Piece] = []
    n = len(segments)
    for k in range(n - 1, -1, -1):
        seg = segments[k]
        if seg.file is not None and seg.rows:
            lo, hi = seg.first, seg.last + 1
            clipped = _clip(seg.claims, lo, hi)
            out += [(a, b, seg) for a, b in subtract(clipped, *_split(seen))]
        if k:  # the oldest segment's claims hide nothing
            seen = union(seen, seg.claims)
    out.sort(key=lambda p: p[0])
    return out


def expand_ranges(starts: np.ndarray[Any, Any], lens: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Every integer of the ranges ``[starts[i], starts[i] + lens[i])``, in order, in one pass.

    Each range's start minus the count before it, repeated over its length,
    plus a running count: no Python loop over ranges (thousands of claims).
    """
    return np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))


def owners(segments: Sequence[Segment]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``(cuts, owner)``: the claims' bounds, sorted, cut the axis into elementary
    ranges ``[cuts[i], cuts[i + 1])``; ``owner[i]`` is the index of the newest
    segment claiming range ``i`` (-1: none)."""
    flat = np.fromiter(
        chain.from_iterable(chain.from_iterable(seg.claims for seg in segments)), np.int64
    ).reshape(-1, 2)
    owner_of = np.repeat(np.arange(len(segments)), [len(seg.claims) for seg in segments])
    good = flat[:, 0] < flat[:, 1]
    flat, owner_of = flat[good], owner_of[good]
    if not len(flat):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cuts = np.sort(flat, axis=None)  # np.unique hashes: ~10x slower here
    cuts = cuts[np.r_[True, cuts[1:] != cuts[:-1]]]
    starts, stops = np.searchsorted(cuts, flat[:, 0]), np.searchsorted(cuts, flat[:, 1])
    lens = stops - starts
    owner = np.full(len(cuts) - 1, -1, dtype=np.int64)
    # Every elementary range a claim covers: a claim's starts, then consecutive;
    # in batches of at most _BATCH ranges (wide claims over a fragmented key
    # cover many ranges each: memory stays bounded).
    ends = np.cumsum(lens)
    i = 0
    while i < len(lens):
        j = max(int(np.searchsorted(ends, ends[i] - lens[i] + _BATCH, side="right")), i + 1)
        a, n = starts[i:j], lens[i:j]
        np.maximum.at(owner, expand_ranges(a, n), np.repeat(owner_of[i:j], n))
        i = j
    return cuts, owner


def owned(
    cuts: np.ndarray[Any, Any], owner: np.ndarray[Any, Any], k: int, positions: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """A mask of the ``positions`` whose newest claim is segment ``k``'s (:func:`owners`)."""
    j = np.searchsorted(cuts, positions, side="right") - 1
    mask = (j >= 0) & (j < len(owner))
    mask[mask] = owner[j[mask]] == k
    return mask


def visible_vectorised(segments: Sequence[Segment]) -> list[Piece]:
    """:func:`visible` in a few array passes (:func:`owners`), for keys of many claims.

    Runs of one owner are its pieces, cut to the owner's rows. The
    pass-per-segment way costs O(K) per segment (a union and a split of
    everything seen); this one O(K log K) once: 8 against 15 ms for a key of
    10,000 intervals, most of it building the pieces.
    """
    cuts, owner = owners(segments)
    if not len(owner):
        return []
    # Runs of one owner (an unclaimed range, -1, breaks a run as well).
    first = np.nonzero(np.r_[True, owner[1:] != owner[:-1]])[0]
    run_owner = owner[first]
    run_lo, run_hi = cuts[first], cuts[np.r_[first[1:], len(owner)]]
    has_rows = np.array([seg.file is not None and seg.rows > 0 for seg in segments] + [False])
    lo_cap = np.array([seg.first for seg in segments] + [0], dtype=np.int64)
    hi_cap = np.array([seg.last + 1 for seg in segments] + [0], dtype=np.int64)
    keep = has_rows[run_owner]  # -1 picks the sentinel: False
    run_owner, run_lo, run_hi = run_owner[keep], run_lo[keep], run_hi[keep]
    run_lo = np.maximum(run_lo, lo_cap[run_owner])
    run_hi = np.minimum(run_hi, hi_cap[run_owner])
    keep = run_lo < run_hi
    return [
        (a, b, segments[k])
        for a, b, k in zip(
            run_lo[keep].tolist(), run_hi[keep].tolist(), run_owner[keep].tolist(), strict=True
        )
    ]


def shown(segments: Sequence[Segment], file: str | None) -> list[tuple[int, int]]:
    """The ranges a segment speaks for: its claims minus the claims of later ones."""
    later: tuple[Claim, ...] = ()
    for seg in reversed(segments):
        if seg.file == file:
            return subtract(union(seg.claims), *_split(later))
        later = union(later, seg.claims)
    return []


def outside(positions: np.ndarray[Any, Any], claims: Sequence[Claim]) -> np.ndarray[Any, Any]:
    """A mask of the ``positions`` no range of ``claims`` (sorted, disjoint) holds."""
    if not claims or not len(positions):
        return np.ones(len(positions), dtype=bool)
    flat = np.array(claims, dtype=np.int64).reshape(-1, 2)
    k = np.searchsorted(flat[:, 1], positions, side="right")
    inside = k < len(flat)
    inside[inside] = flat[k[inside], 0] <= positions[inside]
    return ~inside
