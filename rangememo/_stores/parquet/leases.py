"""Reader leases: which processes may still read a key's replaced files.

A compaction replaces segments; their files can go as soon as no reader can
still need them. Readers in this process are counted (:func:`reading`);
other processes announce themselves with a lease, ``.leases/<host>-<pid>-<id>.json``
in the store directory, naming the key directories they have opened and
refreshed (a heartbeat) while they use the store. A lease not refreshed for
``EXPIRY`` seconds is dead (its process crashed or went idle) and pins
nothing; a dead lease is removed by the next reader of the lease directory.

Leases only decide *when* a file is deleted, never what a reader sees: a
reader that finds a file gone under it catches up with the log and reads the
merged file instead (see ``KeyState.moved_on``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .medium import Medium

__all__ = ["EXPIRY", "Leases", "reading", "readers"]

log = logging.getLogger("rangememo")

LEASES = ".leases"
#: How a reader lease is named (``<host>-<pid>-<8 hex>.json``): what tells a store apart.
LEASE_NAME = re.compile(r"[^/]*-[0-9]+-[0-9a-f]{8}\.json")
#: Seconds a lease stays valid after its last heartbeat.
EXPIRY = 120.0
#: A used lease is rewritten this often at most (and when it names a new key).
BEAT = 20.0

_READING: dict[str, int] = {}
_READING_LOCK = threading.Lock()


@contextlib.contextmanager
def reading(prefix: str) -> Iterator[None]:
    """Count a read of a key's files in this process while it runs."""
    with _READING_LOCK:
        _READING[prefix] = _READING.get(prefix, 0) + 1
    try:
        yield
    finally:
        with _READING_LOCK:
            _READING[prefix] -= 1
            if not _READING[prefix]:
                del _READING[prefix]


def readers(prefix: str) -> int:
    """Reads of the key's files running in this process now."""
    return _READING.get(prefix, 0)


class Leases:
    """This process's lease in one store, and a view of the others'."""

    def __init__(self, medium: Medium, cache_for: float = 0.0) -> None:
        self.medium = medium
        # On an object store each look at the leases is a LIST and a GET per
        # process: it is reused for ``cache_for`` seconds. Leases only decide when
        # a replaced file goes; a reader that finds one gone catches up.
        self.cache_for = cache_for
        self._others: tuple[float, list[set[str]]] | None = None
        self.keys: set[str] = set()
        self.written = 0.0
        self.pid = -1
        self.name = ""
        self._lock = threading.Lock()

    def _own(self) -> str:
        if self.pid != os.getpid():  # a forked child is another process
            self.pid, self.keys, self.written = os.getpid(), set(), 0.0
            self.name = f"{LEASES}/{_host()}-{self.pid}-{uuid.uuid4().hex[:8]}.json"
            atexit.register(self._at_exit)  # a clean exit pins nothing
        return self.name

    def _at_exit(self) -> None:
        if self.pid == os.getpid():  # a forked child's copy: the parent's lease stays
            _drop(self.medium, self.name)

    def hold(self, prefix: str) -> None:
        """Announce that this process reads ``prefix`` (cheap when already announced)."""
        now = time.time()
        if prefix in self.keys and now - self.written < BEAT and self.pid == os.getpid():
            return
        with self._lock:
            name = self._own()
            self.keys.add(prefix)
            body = {"pid": self.pid, "time": now, "keys": sorted(self.keys)}
            try:
                self.medium.put(name, json.dumps(body, separators=(",", ":")).encode())
                self.written = now
            except OSError as exc:  # a lease is a courtesy: reads work without it
                log.debug("could not write the lease %s: %s", name, exc)

    def others_hold(self, prefix: str) -> bool:
        """Does a live lease of another process name ``prefix``?"""
        now = time.monotonic()
        if self.cache_for and self._others is not None and now - self._others[0] < self.cache_for:
            return any(prefix in keys for keys in self._others[1])
        others = self._read_others()
        self._others = (now, others)
        return any(prefix in keys for keys in others)

    def _read_others(self) -> list[set[str]]:
        """The keys named by each live lease of another process (dead ones removed)."""
        mine, now, out = self.name, time.time(), []
        for entry in self.medium.list(LEASES):
            name = f"{LEASES}/{entry}"
            if name == mine or not entry.endswith(".json"):
                continue
            data = self.medium.read(name)
            body: Any = None
            try:
                body = json.loads(data) if data is not None else None
                # Either way: a lease "from the future" (a crashed process on a
                # host whose clock runs ahead) must not pin files forever; a live
                # one is rewritten within BEAT, and a reader never needs it to read.
                fresh = isinstance(body, dict) and abs(now - float(body["time"])) < EXPIRY
            except (ValueError, KeyError, TypeError):
                fresh = False
            if not fresh or not isinstance(body, dict):
                if data is not None and not _young(self.medium, name, now):
                    self.medium.delete(name)  # dead: its process is gone or idle
                continue
            if body.get("pid") == os.getpid() and entry.startswith(_host()):
                continue  # this process's readers are counted by reading()
            out.append({str(k) for k in body["keys"]})
        return out

    def close(self) -> None:
        if self.name and self.pid == os.getpid():
            # Deleted now, so not again at exit (when the storage may be gone and
            # each store's retries would hold the exit up); reuse makes a new one.
            atexit.unregister(self._at_exit)
            self.medium.delete(self.name)
            self.keys, self.written, self.pid = set(), 0.0, -1


def _drop(medium: Medium, name: str) -> None:
    with contextlib.suppress(OSError):
        medium.delete(name)


def _host() -> str:
    return socket.gethostname().replace("/", "_").replace("-", "_")[:40]


def _young(medium: Medium, name: str, now: float) -> bool:
    # A lease being written (torn JSON on a medium without atomic put) is not dead.
    try:
        mtime = medium.mtime(name)
    except OSError:
        return False
    return mtime is not None and now - mtime < 5.0
