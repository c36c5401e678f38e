"""The engine: one decorated function at run time (binding, cache, driving calls, introspection).

Knows stores only through ``_stores.base.Store`` (see docs/architecture.md).
"""
