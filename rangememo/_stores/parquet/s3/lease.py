"""Writer leases on an object store: one provider call per gap across machines.

A key's lease is an object, ``.locks/<namespace dir>/<key hash>.json``, holding
its owner and an expiry. It is taken with a conditional create; one that has
expired is taken over with a compare-and-swap on its ETag (``If-Match``), so
of two processes that find it expired exactly one gets it. While held, a
thread renews it (again ``If-Match``) every ``ttl / 3`` seconds, so a fetch
that takes longer than the lease keeps it.

Correctness never depends on a lease. A holder stalled past its expiry
(SIGSTOP, a GC pause, a partition) may find its key taken over; when it
resumes, its commit is a conditional create of the next log record, which
fails if the new holder committed first: it reads the newer log and commits
after it, or drops its piece (see :mod:`rangememo._stores.parquet.keywrite`).
The worst a stalled holder causes is one duplicate provider call.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING

import filelock

from ..local.locks import ahold, hold

if TYPE_CHECKING:
    from .medium import S3Medium

__all__ = ["LEASE_TTL", "Lease", "LeaseLocks"]

log = logging.getLogger("rangememo")

LOCKS = ".locks"
#: Seconds a writer lease is valid without renewal (``ParquetStore(lease=...)``).
LEASE_TTL = 30.0
#: The longest pause between two tries of a taken lease (seconds).
POLL_MAX = 0.25


class Lease:
    """One key's lease object, with filelock's ``acquire``/``release`` interface."""

    def __init__(self, locks: LeaseLocks, name: str) -> None:
        self.locks, self.name = locks, name
        self.etag: str | None = None
        self.count = 0
        self.mutex = threading.Lock()

    # filelock's interface, as KeyLock calls it
    def acquire(
        self, timeout: float = -1, poll_interval: float = 0.05, *, blocking: bool = True
    ) -> None:
        deadline = None if timeout < 0 else time.monotonic() + timeout
        pause = 0.02
        while True:
            with self.mutex:
                if self.count or self._take():
                    self.count += 1
                    if self.count == 1:
                        self.locks.renewing(self)
                    return
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                raise filelock.Timeout(self.name)
            time.sleep(pause)
            # Each try is two requests (a create, a read): back off to POLL_MAX, so
            # that waiters on a busy key cost a few requests a second, not dozens.
            pause = min(pause * 2, max(poll_interval, POLL_MAX))

    def release(self) -> None:
        with self.mutex:
            self.count -= 1
            if self.count:
                return
            etag, self.etag = self.etag, None
            self.locks.stop_renewing(self)
        if etag is not None:
            self._drop(etag)

    # -- the object ---------------------------------------------------------------
    def _body(self) -> bytes:
        now = time.time()
        owner = self.locks.owner
        body = {"owner": owner, "time": now, "expires": now + self.locks.ttl, "n": uuid.uuid4().hex}
        return json.dumps(body, separators=(",", ":")).encode()

    def _take(self) -> bool:
        import obstore
        from obstore import exceptions as ox

        medium = self.locks.medium
        mine = self._body()
        try:
            result = obstore.put(medium.store, self.name, mine, mode="create")
            self.etag = str(result["e_tag"])
            return True
        except (ox.AlreadyExistsError, ox.PreconditionError):
            pass
        except (ox.BaseError, OSError) as exc:
            # The create may have landed with its answer lost: then the lease is
            # ours and must be released after the commit, or the next writer
            # waits out its whole lifetime.
            try:
                self.etag = self._ours(mine)
            except OSError:
                self.etag = None
            if self.etag is not None:
                return True
            return self._unreachable(exc)
        try:
            got = obstore.get(medium.store, self.name)
            etag, data = str(got.meta["e_tag"]), got.bytes().to_bytes()
        except (ox.NotFoundError, FileNotFoundError):
            return False  # released meanwhile: the next attempt creates it
        except (ox.BaseError, OSError) as exc:
            self.etag = None
            return self._unreachable(exc)
        if data == mine:
            # Our own create: its answer was lost and obstore's retry found it.
            self.etag = etag
            return True
        try:
            body = json.loads(data)
            expired = float(body["expires"]) < time.time()
        except (ValueError, KeyError, TypeError):
            expired = True  # unreadable: nobody can be renewing it
        if not expired:
            return False
        tag = medium.swap(self.name, self._body(), etag)
        if tag is None:
            return False  # another process took it over first
        log.warning("took over the expired writer lease %s", medium.describe(self.name))
        self.etag = tag
        return True

    def _unreachable(self, exc: BaseException) -> bool:
        # A lease is advisory: with the store unreachable there is no commit to
        # protect either, and the commit itself reports the failure.
        log.debug("lease %s: %s; going on without it", self.name, exc)
        return True

    def renew(self) -> None:
        with self.mutex:
            if not self.count or self.etag is None:
                return
            body = self._body()
            try:
                tag = self.locks.medium.swap(self.name, body, self.etag)
                if tag is None:  # taken over, or our own swap whose answer was lost
                    tag = self._ours(body)
            except OSError as exc:
                log.debug("could not renew the lease %s: %s", self.name, exc)
                return
            if tag is None:
                log.warning(
                    "lost the writer lease %s (expired and taken over); commits stay safe",
                    self.locks.medium.describe(self.name),
                )
                self.etag = None
            else:
                self.etag = tag

    def _ours(self, body: bytes) -> str | None:
        """The lease's ETag if it holds exactly ``body`` (this process wrote it)."""
        import obstore

        try:
            got = obstore.get(self.locks.medium.store, self.name)
        except FileNotFoundError:
            return None
        except Exception as exc:  # obstore's errors: not ours to decide now
            raise OSError(str(exc)) from exc
        return str(got.meta["e_tag"]) if got.bytes().to_bytes() == body else None

    def _drop(self, etag: str) -> None:
        medium = self.locks.medium
        try:
            meta = medium.head(self.name)
            if meta is not None and str(meta["e_tag"]) == etag:  # still ours
                medium.delete(self.name)
        except OSError as exc:
            log.debug("could not release the lease %s: %s", self.name, exc)


class LeaseLocks:
    """The leases of one medium in this process, and the thread renewing them."""

    def __init__(self, medium: S3Medium, ttl: float = LEASE_TTL) -> None:
        self.medium, self.ttl = medium, ttl
        self.owner = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.held: set[Lease] = set()
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        self.closed = False

    def path(self, prefix: str) -> str:
        # The registry key: the store's URL makes two buckets' keys distinct.
        return f"{self.medium.url}#{LOCKS}/{prefix}.json"

    def _open(self, path: str) -> Lease:
        return Lease(self, path.partition("#")[2])

    def hold(self, prefix: str, timeout: float | None = None) -> AbstractContextManager[None]:
        return hold(self.path(prefix), timeout, self._open)

    def ahold(self, prefix: str) -> AbstractAsyncContextManager[None]:
        return ahold(self.path(prefix), self._open)

    def renewing(self, lease: Lease) -> None:
        with self.cond:
            self.closed = False  # a store closed and used again renews again
            self.held.add(lease)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=_renew_loop,
                    args=(weakref.ref(self),),
                    daemon=True,
                    name="rangememo-lease",
                )
                self.thread.start()

    def stop_renewing(self, lease: Lease) -> None:
        with self.cond:
            self.held.discard(lease)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def _renew_loop(ref: weakref.ref[LeaseLocks]) -> None:
    while True:
        locks = ref()
        if locks is None:
            return
        with locks.cond:
            if locks.closed:
                return
            locks.cond.wait(locks.ttl / 3)
            if locks.closed:
                return
            leases = list(locks.held)
        for lease in leases:
            lease.renew()
        del locks
