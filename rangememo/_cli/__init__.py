"""The ``rangememo`` command (imported only by the console script and ``python -m``)."""

from __future__ import annotations

from ._app import main

__all__ = ["main"]
