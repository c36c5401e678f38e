"""The local-disk medium and what only a local disk has (file locks)."""
