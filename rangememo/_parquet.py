"""Kept for pickles made before the layered layout: they name ``rangememo._parquet._reopen``.

A ``ParquetStore`` pickles as its directory and options and reopens through
``_reopen``; pickles that outlive a process (a multiprocessing pool across an
upgrade) still find it here. Remove after one release.
"""

from ._stores.parquet.store import ParquetStore, _reopen

__all__ = ["ParquetStore", "_reopen"]
