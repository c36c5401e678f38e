"""Per-key locks across threads, event loops and processes.

One lock file per key (``filelock``, an ``flock`` on POSIX) keeps processes
apart. Inside a process a :class:`Mutex` comes first: ``filelock`` instances
are reentrant (``thread_local=False`` shares one hold between threads), so they
cannot keep two threads of one process apart, and two instances on one path
would trip filelock's deadlock guard. One :class:`KeyLock` per lock path per
process, shared by every store instance, does both.

A hold is reentrant along one logical flow: the held paths live in a context
variable, which ``asyncio`` tasks and ``asyncio.to_thread`` carry along, so a
store's ``put`` inside the cache's ``lock()`` (or ``alock()``, with ``aput``
running in a worker thread) does not wait for itself. Waiting never occupies
a thread of the event loop's executor: ``alock`` awaits a future for the
in-process part and polls the file lock without blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import filelock

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: filelock's msvcrt lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["KeyLock", "LockTimeout", "Mutex", "hold", "ahold", "held"]

_HELD: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "rangememo_held_locks", default=frozenset()
)
_POLL = (0.001, 0.02)  # first and longest pause between file lock attempts


class LockTimeout(TimeoutError):
    """A key's lock was not free in time."""


class _Waiter:
    __slots__ = ("event", "future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.granted = False
        self.loop = loop
        self.event = threading.Event() if loop is None else None
        self.future: asyncio.Future[None] | None = loop.create_future() if loop else None


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Mutex:
    """A FIFO lock that threads and coroutines (of any loop) can both wait for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owned = False
        self._waiters: deque[_Waiter] = deque()

    def acquire(self, timeout: float | None = None) -> bool:
        with self._lock:
            if not self._owned:
                self._owned = True
                return True
            waiter = _Waiter()
            self._waiters.append(waiter)
        assert waiter.event is not None
        waiter.event.wait(timeout)
        with self._lock:
            if waiter.granted:
                return True
            self._waiters.remove(waiter)
            return False

    async def aacquire(self) -> None:
        with self._lock:
            if not self._owned:
                self._owned = True
                return
            waiter = _Waiter(asyncio.get_running_loop())
            self._waiters.append(waiter)
        assert waiter.future is not None
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiters.remove(waiter)
            if granted:  # handed over as we were cancelled: pass it on
                self.release()
            raise

    def release(self) -> None:
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if waiter.event is not None:
                    waiter.granted = True
                    waiter.event.set()
                    return
                assert waiter.loop is not None and waiter.future is not None
                try:
                    waiter.loop.call_soon_threadsafe(_wake, waiter.future)
                except RuntimeError:  # its loop is closed: nobody is waiting there
                    continue
                waiter.granted = True
                return
            self._owned = False


class KeyLock:
    """The in-process mutex of one key and the lock file it uses.

    ``path`` is a lock file, or ``<lock file>#<key>`` for a key sharing a
    striped lock file with others: the mutex is the key's own, the file lock
    is shared (filelock counts holds, so two keys of one stripe held by two
    threads of this process do not wait for each other).
    """

    def __init__(self, path: str, file: Any = None) -> None:
        self.path = path
        self.mutex = Mutex()
        # ``file``: anything with filelock's acquire/release (an object-store lease).
        self.file = file if file is not None else _file_lock(path.partition("#")[0])

    def _try_file(self) -> bool:
        try:
            self.file.acquire(blocking=False)
        except filelock.Timeout:
            return False
        return True


class Flock:
    """An ``flock`` on a lock file with ``filelock``'s interface, holds counted.

    What ``filelock.FileLock(thread_local=False)`` does on POSIX (one hold shared
    by the threads of a process, the file opened per hold, a file deleted
    under a holder not trusted), at ~2 us a hold instead of ~170 us (measured:
    filelock's per-acquire bookkeeping): a miss takes its key's lock once.
    """

    remote = False

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._holds = 0
        self._lock = threading.Lock()

    def _try(self) -> bool:
        # Called under self._lock.
        if self._holds:
            self._holds += 1
            return True
        try:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except (NotADirectoryError, FileExistsError) as exc:  # a file where the folder belongs
            raise _not_a_folder(os.path.dirname(self.path)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        if os.fstat(fd).st_nlink == 0:  # deleted meanwhile: lock the file now there
            os.close(fd)
            return self._try()
        self._fd, self._holds = fd, 1
        return True

    def acquire(
        self, timeout: float | None = -1, poll_interval: float = 0.05, *, blocking: bool = True
    ) -> None:
        """Hold the lock; ``filelock.Timeout`` after ``timeout`` s (``-1``: wait for it)."""
        forever = timeout is None or timeout < 0
        deadline = 0.0 if forever else time.monotonic() + float(timeout or 0)
        pause = min(_POLL[0], poll_interval)
        while True:
            with self._lock:
                if self._try():
                    return
            if not blocking or (not forever and time.monotonic() >= deadline):
                raise filelock.Timeout(self.path)
            time.sleep(pause)
            pause = min(pause * 2, poll_interval)

    def release(self) -> None:
        with self._lock:
            self._holds -= 1
            if self._holds == 0 and self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)


_REGISTRY: dict[str, KeyLock] = {}
_FILES: dict[str, Any] = {}
_REGISTRY_LOCK = threading.Lock()


def _not_a_folder(folder: str) -> NotADirectoryError:
    return NotADirectoryError(f"{folder} is not a folder: rangememo keeps its lock files there")


def _file_lock(path: str) -> Any:
    # Called under _REGISTRY_LOCK. Shared holds: acquired by one thread,
    # released by another is fine.
    lock = _FILES.get(path)
    if lock is None:
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
        except FileExistsError as exc:  # a file where the folder belongs
            raise _not_a_folder(folder) from exc
        lock = _FILES[path] = (
            Flock(path) if fcntl is not None else filelock.FileLock(path, thread_local=False)
        )
    return lock


def _reset_after_fork() -> None:
    # A forked child must not inherit holds of its parent's threads.
    global _REGISTRY_LOCK
    _REGISTRY.clear()
    _FILES.clear()
    _REGISTRY_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def key_lock(path: str, opener: Callable[[str], Any] | None = None) -> KeyLock:
    """The process's lock for ``path``; ``opener(path)`` makes its cross-process part."""
    with _REGISTRY_LOCK:
        lock = _REGISTRY.get(path)
        if lock is None:
            lock = _REGISTRY[path] = KeyLock(path, opener(path) if opener else None)
        return lock


def held(path: str) -> bool:
    """Does the current thread or task hold the lock at ``path``?"""
    return path in _HELD.get()


@contextlib.contextmanager
def hold(
    path: str, timeout: float | None = None, opener: Callable[[str], Any] | None = None
) -> Iterator[None]:
    """Hold the key lock at ``path`` (reentrant); :class:`LockTimeout` after ``timeout``."""
    if held(path):
        yield
        return
    lock = key_lock(path, opener)
    deadline = None if timeout is None else time.monotonic() + timeout
    if not lock.mutex.acquire(timeout):
        raise LockTimeout(f"lock {path} is held by another thread")
    try:
        remaining = -1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            lock.file.acquire(timeout=remaining, poll_interval=_POLL[1])
        except filelock.Timeout:
            raise LockTimeout(f"lock {path} is held by another process") from None
        token = _HELD.set(_HELD.get() | {path})
        try:
            yield
        finally:
            _HELD.reset(token)
            lock.file.release()
    finally:
        lock.mutex.release()


@contextlib.asynccontextmanager
async def ahold(path: str, opener: Callable[[str], Any] | None = None) -> AsyncIterator[None]:
    """:func:`hold` for coroutines: waits without blocking the loop or its executor."""
    if held(path):
        yield
        return
    lock = key_lock(path, opener)
    await lock.mutex.aacquire()
    try:
        pause = _POLL[0]
        # A lock file is tried in the loop (a syscall); a lease on an object
        # store is a request, tried in a worker thread so the loop keeps running.
        remote = getattr(lock.file, "remote", not isinstance(lock.file, filelock.BaseFileLock))
        while not (await asyncio.to_thread(lock._try_file) if remote else lock._try_file()):
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL[1])
        token = _HELD.set(_HELD.get() | {path})
        try:
            yield
        finally:
            _HELD.reset(token)
            lock.file.release()
    finally:
        lock.mutex.release()
