"""A weak-reference callback run by a collection inside the identity table's lock."""

from __future__ import annotations

import threading
import weakref

from rangememo._engine import identity


class _Client:
    pass


def test_a_callback_under_the_lock_in_the_same_thread_does_not_deadlock():
    """The garbage collector may run while ``_identity`` holds the lock (it allocates
    a weak reference) and fire ``_forget`` for a dead client in that same thread."""
    done = threading.Event()

    def run() -> None:
        dead = weakref.ref(_Client())  # already dead: what a collection would report
        with identity._lock:
            identity._forget(id(dead), dead)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(5), "_forget waited for a lock its own thread holds"


def test_identities_still_tell_live_objects_apart():
    a, b = _Client(), _Client()
    assert identity._identity(a) == identity._identity(a)
    assert identity._identity(a) != identity._identity(b)
