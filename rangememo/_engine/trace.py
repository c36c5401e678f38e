"""The DEBUG line of one call: hit or gaps, rows returned, provider and store time.

Built only when the ``rangememo`` logger is enabled for DEBUG (checked once per
call), so a call with DEBUG off pays one ``isEnabledFor`` and nothing else.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["Trace", "clock", "log"]

log = logging.getLogger("rangememo")

clock = time.perf_counter


class Trace:
    """Timings of one call, summed over its store reads and its own flights."""

    __slots__ = ("fetched", "gaps", "provider_s", "store_s", "waited")

    def __init__(self) -> None:
        self.store_s = 0.0  # reads of the entry by the call itself
        self.provider_s = 0.0  # summed over the call's flights (they may overlap)
        self.gaps = self.waited = self.fetched = 0

    def flights(self, new: list[Any], waits: list[Any]) -> None:
        """A round's flights: ``new`` fetched by this call, ``waits`` by others."""
        self.gaps += len(new)
        self.waited += len(waits)
        for f in new:
            self.provider_s += f.provider_s
            self.store_s += f.store_s
            self.fetched += f.rows

    def emit(self, namespace: str, req: Any, result: Any, answer: bool) -> None:
        rows = _rows(result) if answer else self.fetched
        what = "hit" if not self.gaps and not self.waited else self._gaps()
        log.debug(
            "call %s key=%r: %s, %s rows, provider %.6fs, store %.6fs",
            namespace,
            req.key,
            what,
            rows,
            self.provider_s,
            self.store_s,
        )

    def _gaps(self) -> str:
        waited = f", {self.waited} shared" if self.waited else ""
        return f"{self.gaps} gap{'s' if self.gaps != 1 else ''} fetched{waited}"


def _rows(result: Any) -> int | str:
    try:
        return len(result)
    except TypeError:  # a result type without a length: say so rather than guess
        return "?"
