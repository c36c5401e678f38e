"""An optional tqdm progress bar for long prefetches."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int, enabled: bool | None) -> Any:
    """A tqdm bar over ``total`` gaps, or ``None``.

    ``enabled=None`` means "when stderr is a terminal"; without the
    ``[progress]`` extra (tqdm) there is never a bar.
    """
    if enabled is False or total < 2:
        return None
    if enabled is None and not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="gap", desc="rangememo prefetch", leave=False)
