"""How much memory an in-memory store may hold by default: bytes, not keys.

A key count says nothing about memory: 1,024 keys of one row each is nothing,
1,024 keys of ten years of minute bars is more than most machines have. So a
default store is bounded by the bytes of the rows it holds, a fraction of the
machine's physical memory, capped so that a large server does not hand one
cache a quarter of a terabyte.
"""

from __future__ import annotations

import os

__all__ = ["FALLBACK_BUDGET", "default_budget", "physical_memory"]

#: The share of physical memory a default ``MemoryStore`` may fill.
FRACTION = 0.25
#: ... but never more than this.
CAP = 8 * 2**30
#: Where physical memory cannot be read (no ``os.sysconf``: Windows).
FALLBACK_BUDGET = 2**30


def physical_memory() -> int | None:
    """Bytes of physical memory, or ``None`` where this cannot be read cheaply."""
    sysconf = getattr(os, "sysconf", None)
    if sysconf is None:
        return None
    try:
        pages, size = sysconf("SC_PHYS_PAGES"), sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # a name this platform does not know
        return None
    total = int(pages) * int(size)
    return total if total > 0 else None


def default_budget() -> int:
    """``min(25% of physical memory, 8 GiB)``; 1 GiB where memory cannot be read."""
    total = physical_memory()
    if total is None:
        return FALLBACK_BUDGET
    return min(int(total * FRACTION), CAP)
