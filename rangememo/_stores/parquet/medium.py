"""The storage medium: the few operations the Parquet store's protocol needs.

Every step of the commit protocol (:mod:`rangememo._stores.parquet.log`) is expressed through
a :class:`Medium`, so the same protocol runs on a local directory
(:class:`~rangememo._stores.parquet.local.medium.LocalMedium`) and on an object store whose
only atomic primitive is a conditional create (S3's ``PUT If-None-Match``).
None of these operations may rely on rename-over, on the order in which a
directory's entries become durable, or on locks for correctness.

Names are relative, ``/``-separated (``"<namespace dir>/<key hash>/log/…"``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Medium"]


@runtime_checkable
class Medium(Protocol):
    """Where a store's bytes live."""

    def read(self, name: str) -> bytes | None:
        """The whole content of ``name``; ``None`` if it does not exist."""

    def exists(self, name: str) -> bool:
        """Does ``name`` exist? (the cheapest probe: a ``stat``, a ``HEAD``)"""

    def create(self, name: str, data: bytes) -> bool:
        """Create ``name`` with ``data`` if it does not exist; ``False`` if it does.

        Atomic: afterwards ``name`` holds all of ``data`` or does not exist;
        of two concurrent creates exactly one returns ``True``. Durable before
        it returns when the medium is.
        """

    def put(self, name: str, data: bytes) -> None:
        """Create or replace ``name`` (used only for hints and leases, never for commits)."""

    def list(self, prefix: str) -> list[str]:
        """The names directly under the directory ``prefix`` (no ``/`` at the end), sorted."""

    def delete(self, name: str) -> None:
        """Remove ``name`` (no error if it is already gone)."""

    def open_parquet(self, name: str) -> str:
        """What ``pyarrow.parquet.ParquetFile`` opens to read ``name`` (a path here)."""

    def size(self, name: str) -> int:
        """The size of ``name`` in bytes (``FileNotFoundError`` if it does not exist)."""
