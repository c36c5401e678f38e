"""The ``rangememo`` command (imported only by the console script and ``python -m``)."""

from __future__ import annotations

from ._app import main
from ._audit import audit

# Registered here, not in _app: each command module stays independent of the others.
main.add_command(audit)

__all__ = ["main"]
