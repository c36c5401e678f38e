"""A :class:`~rangememo._stores.parquet.medium.Medium` on S3-compatible object storage.

Built on obstore (``pip install rangememo[s3]``), which sends S3's conditional
writes: :meth:`S3Medium.create` is ``PUT If-None-Match: *``, so of two writers of
one log record exactly one wins, on any number of machines, with no lock and
no rename. A create whose response was lost and whose retry then found the
object compares the bytes: the same bytes are this writer's own (names of
segments are unique; a record or checkpoint with equal bytes says the same).

Every request has a bounded number of retries and a timeout (``RETRY``,
``TIMEOUT``); what still fails is raised as :class:`StorageUnavailable`, an
``OSError``, so a commit that cannot be made answers the call uncached with a
``CacheWarning`` and leaves the log as it was.

On open, :func:`~rangememo._stores.parquet.s3.probe.check_conditional_writes` makes
sure the endpoint honours the conditions (a proxy that strips them would let
two writers both "win" one record).
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import io
import logging
import threading
from collections.abc import Iterator
from typing import Any

from ..local.locks import held
from ..medium import StorageUnavailable
from .lease import LEASE_TTL, LeaseLocks
from .options import S3Location
from .probe import check_conditional_writes

__all__ = ["S3Medium", "StorageUnavailable"]

log = logging.getLogger("rangememo")


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """obstore's errors as ``OSError`` s: the store's callers already handle those."""
    from obstore import exceptions as ox

    try:
        yield
    except (ox.NotFoundError, FileNotFoundError) as exc:
        raise FileNotFoundError(f"{what}: not found") from exc
    except ox.BaseError as exc:
        raise StorageUnavailable(f"{what}: {_short(exc)}") from exc
    except (TimeoutError, ConnectionError) as exc:
        raise StorageUnavailable(f"{what}: {exc}") from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


#: Parts up to this size are read with one GET; larger ones by ranges.
WHOLE_READ = 8 << 20


class _RangeFile(io.RawIOBase):
    """A read-only, seekable file over ranged GETs (what pyarrow's PythonFile wraps)."""

    def __init__(self, medium: S3Medium, name: str, size: int) -> None:
        super().__init__()
        self.medium, self.name, self.size, self.pos = medium, name, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, size: int = -1) -> bytes:
        import obstore

        end = self.size if size is None or size < 0 else min(self.size, self.pos + size)
        if end <= self.pos:
            return b""
        with _errors(f"GET {self.medium.describe(self.name)}"):
            data = bytes(obstore.get_range(self.medium.store, self.name, start=self.pos, end=end))
        self.pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class S3Medium:
    """Objects under ``s3://bucket/prefix``; see :class:`S3Location` for the options."""

    #: Records a key gathers before a checkpoint folds them: a checkpoint is about
    #: nine requests here, and a reader opening the key reads the records after it.
    fold_after = 8

    def __init__(self, location: S3Location, *, lease: float = LEASE_TTL) -> None:
        self.location = location
        self.url = location.url
        self.store = location.open()  # no request yet: the probe runs on first use
        # What the probe answers for: the same URL through another endpoint (a proxy
        # that drops If-None-Match) is another server, probed on its own.
        settings = location.settings()
        self.server = (self.url, str(settings.get("endpoint")), str(settings.get("region")))
        self.locks = LeaseLocks(self, lease)
        self._checked = self._probing = False
        self._probe_lock = threading.RLock()

    def _ready(self) -> None:
        """Probe the endpoint's conditional writes before the first request.

        Other threads wait for the probe; the probe's own requests (same thread,
        the lock is reentrant) pass. Unreachable or refused: probed again next time.
        """
        if self._checked:
            return
        with self._probe_lock:
            if self._checked or self._probing:
                return
            self._probing = True
            try:
                check_conditional_writes(self)
                self._checked = True
            finally:
                self._probing = False

    def describe(self, name: str) -> str:
        return f"{self.url}/{name}" if name else self.url

    # -- reading -------------------------------------------------------------------
    def read(self, name: str) -> bytes | None:
        self._ready()
        import obstore
        from obstore import exceptions as ox

        with _errors(f"GET {self.describe(name)}"):
            try:
                return obstore.get(self.store, name).bytes().to_bytes()
            except (ox.NotFoundError, FileNotFoundError):
                return None

    def head(self, name: str) -> dict[str, Any] | None:
        self._ready()
        import obstore
        from obstore import exceptions as ox

        with _errors(f"HEAD {self.describe(name)}"):
            try:
                return dict(obstore.head(self.store, name))
            except (ox.NotFoundError, FileNotFoundError):
                return None

    def exists(self, name: str) -> bool:
        return self.head(name) is not None

    def stamp(self, name: str) -> str | None:
        # Every record and checkpoint holds its write time: equal ETags (MD5s)
        # mean the same object.
        meta = self.head(name)
        return None if meta is None else str(meta.get("e_tag") or meta["last_modified"])

    def size(self, name: str) -> int:
        meta = self.head(name)
        if meta is None:
            raise FileNotFoundError(self.describe(name))
        return int(meta["size"])

    def mtime(self, name: str) -> float | None:
        meta = self.head(name)
        if meta is None:
            return None
        modified = meta["last_modified"]
        return modified.timestamp() if isinstance(modified, dt.datetime) else None

    def list(self, prefix: str) -> list[str]:
        return sorted(self._listing(prefix)[0])

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        # From a recursive listing, not the delimiter's common prefixes: some
        # servers (SeaweedFS) keep an emptied "directory" listed after its last
        # object is deleted, and a key with no object is no key.
        cut = len(prefix) + 1 if prefix else 0
        dirs = {n[cut:].partition("/")[0] for n, _ in self.walk(prefix) if "/" in n[cut:]}
        return sorted(dirs)

    def _listing(self, prefix: str) -> tuple[builtins.list[str], builtins.list[str]]:
        self._ready()
        import obstore

        with _errors(f"LIST {self.describe(prefix)}"):
            # ``list_with_delimiter`` pages through a prefix itself.
            found = obstore.list_with_delimiter(self.store, prefix or None)
        cut = len(prefix) + 1 if prefix else 0
        # SeaweedFS lists an emptied "directory" as an object named as the prefix
        # itself: it is no file (a key whose log was deleted is no user's object).
        files = [n for o in found["objects"] if (n := str(o["path"])[cut:])]
        dirs = [str(p)[cut:].rstrip("/") for p in found["common_prefixes"]]
        return files, dirs

    def walk(self, prefix: str) -> builtins.list[tuple[str, float]]:
        """``(name, mtime)`` of every object under ``prefix``, recursively."""
        self._ready()
        import obstore

        out: builtins.list[tuple[str, float]] = []
        with _errors(f"LIST {self.describe(prefix)}"):
            for batch in obstore.list(self.store, f"{prefix}/" if prefix else None):
                for meta in batch:
                    modified = meta["last_modified"]
                    out.append((str(meta["path"]), modified.timestamp()))
        return out

    def open_input(self, name: str, size_hint: int | None = None) -> tuple[Any, int]:
        import pyarrow as pa

        if size_hint is not None and size_hint <= WHOLE_READ:
            data = self.read(name)  # one GET: footer and rows at once
            if data is None:
                raise FileNotFoundError(self.describe(name))
            return pa.BufferReader(data), len(data)
        meta = self.head(name)
        if meta is None:
            raise FileNotFoundError(self.describe(name))
        size = int(meta["size"])
        # Range reads: only the footer and the row groups a window needs.
        return pa.PythonFile(_RangeFile(self, name, size), mode="r"), size

    # -- writing -------------------------------------------------------------------
    def create(self, name: str, data: bytes) -> bool:
        self._ready()
        import obstore
        from obstore import exceptions as ox

        payload = bytes(data)
        with _errors(f"PUT {self.describe(name)}"):
            try:
                obstore.put(self.store, name, payload, mode="create")
            except (ox.AlreadyExistsError, ox.PreconditionError):
                # Lost, or this writer's own create whose answer was lost and retried.
                return self.read(name) == payload
        return True

    def put(self, name: str, data: bytes) -> None:
        self._ready()
        import obstore

        with _errors(f"PUT {self.describe(name)}"):
            obstore.put(self.store, name, bytes(data))

    def swap(self, name: str, data: bytes, etag: str) -> str | None:
        """Replace ``name`` if its ETag is still ``etag`` (``If-Match``): the new ETag, or None."""
        self._ready()
        import obstore
        from obstore import exceptions as ox

        with _errors(f"PUT {self.describe(name)}"):
            try:
                result = obstore.put(self.store, name, bytes(data), mode={"e_tag": etag})
            except (
                ox.PreconditionError,
                ox.AlreadyExistsError,
                ox.NotFoundError,
                FileNotFoundError,
            ):
                return None
        tag = result.get("e_tag")
        return str(tag) if tag else None

    def delete(self, name: str) -> None:
        self._ready()
        import obstore
        from obstore import exceptions as ox

        with (
            _errors(f"DELETE {self.describe(name)}"),
            contextlib.suppress(ox.NotFoundError, FileNotFoundError),
        ):
            obstore.delete(self.store, name)

    def move(self, name: str, target: str) -> bool:
        self._ready()
        import obstore
        from obstore import exceptions as ox

        with _errors(f"COPY {self.describe(name)}"):
            try:
                obstore.copy(self.store, name, target)
            except (ox.NotFoundError, FileNotFoundError):
                return False
        self.delete(name)
        return True

    def remove_tree(self, prefix: str) -> None:
        # The log first: a reader that lists it meanwhile finds no key, not a
        # log naming segments already deleted.
        names = [n for n, _ in self.walk(prefix)]
        logs = [n for n in names if "/log/" in n[len(prefix) :]]
        for name in logs + [n for n in names if n not in set(logs)]:
            self.delete(name)

    def makedirs(self, prefix: str) -> None:
        return None  # an object store has no directories

    # -- locks -----------------------------------------------------------------------
    def lock(
        self, prefix: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        return self.locks.hold(prefix, timeout)

    def alock(self, prefix: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self.locks.ahold(prefix)

    def held(self, prefix: str) -> bool:
        return held(self.locks.path(prefix))

    def close(self) -> None:
        self.locks.close()
