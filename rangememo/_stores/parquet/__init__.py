"""The Parquet store: immutable segments plus a log-structured ledger per key, on a medium."""
