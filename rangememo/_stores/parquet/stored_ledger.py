"""The ledger of a stored key: answers first make sure the asked range is readable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..._core.ledger import Ledger, Pair

__all__ = ["StoredLedger"]


@dataclass(slots=True)
class StoredLedger(Ledger):
    """A ledger whose answers first make sure the asked range is readable."""

    probe: Callable[[int, int], None] | None = field(default=None, repr=False, compare=False)
    #: While a list, every mutation is also recorded here (a commit's log record).
    journal: list[list[object]] | None = field(default=None, repr=False, compare=False)

    def add(self, lo: int, hi: int, fetched: float = 0.0, empty: bool = False) -> None:
        if self.journal is not None and lo < hi:
            self.journal.append(["a", lo, hi, fetched, empty])
        Ledger.add(self, lo, hi, fetched, empty)

    def add_provisional(self, lo: int, hi: int, fetched: float, expires: float) -> None:
        if self.journal is not None and lo < hi:
            self.journal.append(["p", lo, hi, fetched, expires])
        Ledger.add_provisional(self, lo, hi, fetched, expires)

    def remove(self, lo: int, hi: int) -> None:
        if self.journal is not None and lo < hi:
            self.journal.append(["r", lo, hi])
        Ledger.remove(self, lo, hi)

    def prepare(self, lo: int, hi: int) -> None:
        if self.probe is not None:
            self.probe(lo, hi)

    def covers(self, lo: int, hi: int, now: float = 0.0) -> bool:
        if self.probe is not None:
            self.probe(lo, hi)
        return Ledger.covers(self, lo, hi, now)

    def missing(self, lo: int, hi: int, now: float = 0.0) -> list[Pair]:
        if self.probe is not None:
            self.probe(lo, hi)
        return Ledger.missing(self, lo, hi, now)
