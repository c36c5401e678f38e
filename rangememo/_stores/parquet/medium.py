"""The storage medium: the few operations the Parquet store's protocol needs.

Every step of the commit protocol (:mod:`rangememo._stores.parquet.log`) is expressed through
a :class:`Medium`, so the same protocol runs on a local directory
(:class:`~rangememo._stores.parquet.local.medium.LocalMedium`) and on an object store whose
only atomic primitive is a conditional create (S3's ``PUT If-None-Match``,
:class:`~rangememo._stores.parquet.s3.medium.S3Medium`).
None of these operations may rely on rename-over, on the order in which a
directory's entries become durable, or on locks for correctness.

Names are relative, ``/``-separated (``"<namespace dir>/<key hash>/log/…"``). A
"directory" is a name prefix: an object store has none, and ``makedirs`` is a
no-op there.
"""

from __future__ import annotations

import builtins
import contextlib
from typing import Any, Protocol, runtime_checkable

__all__ = ["Medium", "StorageUnavailable"]


class StorageUnavailable(OSError):
    """The storage did not answer (after bounded retries), or refused the request."""


@runtime_checkable
class Medium(Protocol):
    """Where a store's bytes live."""

    #: The store's location as the user wrote it (a path, ``s3://bucket/prefix``).
    url: str

    def describe(self, name: str) -> str:
        """``name`` as a user finds it (a path, an ``s3://`` URL): for messages."""

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

    def stamp(self, name: str) -> str | None:
        """The identity of ``name`` as it is now (changes when it is deleted and created
        again); ``None`` if it does not exist. As cheap as :meth:`exists`."""

    def put(self, name: str, data: bytes) -> None:
        """Create or replace ``name`` (used only for hints and leases, never for commits)."""

    def list(self, prefix: str) -> list[str]:
        """The names directly under the directory ``prefix`` (no ``/`` at the end), sorted."""

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """The sub-directories directly under ``prefix`` (``""``: the root), sorted."""

    def mtime(self, name: str) -> float | None:
        """When ``name`` was last written (epoch seconds); ``None`` if it does not exist."""

    def delete(self, name: str) -> None:
        """Remove ``name`` (no error if it is already gone)."""

    def move(self, name: str, target: str) -> bool:
        """Move ``name`` to ``target`` (quarantine); ``False`` if ``name`` was gone."""

    def remove_tree(self, prefix: str) -> None:
        """Delete everything under ``prefix``; readers see the key's log go first."""

    def makedirs(self, prefix: str) -> None:
        """Make sure ``prefix`` can hold names (a no-op on an object store)."""

    def open_input(self, name: str, size_hint: int | None = None) -> tuple[Any, int]:
        """``(source, size)``: what ``pyarrow.parquet.ParquetFile`` opens to read ``name``.

        ``FileNotFoundError`` if it does not exist.
        """

    def lock(
        self, prefix: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the key ``prefix``'s writer lock (advisory: it only avoids duplicate
        fetches); ``LockTimeout`` after ``timeout`` seconds."""

    def alock(self, prefix: str) -> contextlib.AbstractAsyncContextManager[None]:
        """:meth:`lock` for coroutines: waiting never blocks the event loop."""

    def held(self, prefix: str) -> bool:
        """Does this thread or task hold ``prefix``'s lock now?"""

    def close(self) -> None:
        """Release what the medium holds (connections, leases)."""
