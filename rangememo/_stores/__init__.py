"""Stores: the interface (``base``), the default store, memory, and Parquet on a storage medium."""
