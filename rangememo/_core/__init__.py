"""The pure core: axis, ledger, planner, grid, results, rows, entries. No I/O, no threads, no store.

Imports nothing of the package but ``_errors`` and ``_warn`` (see docs/architecture.md).
"""
