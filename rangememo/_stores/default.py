"""The store used when ``store=`` is not given: a ParquetStore, opened on first use."""

from __future__ import annotations

from .base import Store

__all__ = ["default_store"]

_DEFAULT: Store | None = None


def default_store() -> Store:
    """The store used when ``store=`` is not given (created on first use).

    A :class:`~rangememo.ParquetStore` under ``$RANGEMEMO_CACHE_DIR``, else
    under the platform's user cache directory.
    """
    global _DEFAULT
    if _DEFAULT is None:
        from .parquet.store import ParquetStore, default_cache_dir

        _DEFAULT = ParquetStore(default_cache_dir())
    return _DEFAULT
