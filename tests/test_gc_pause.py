"""Checkpoint parsing pauses the garbage collector without leaving it changed."""

from __future__ import annotations

import gc
import threading

from rangememo._stores.parquet import logformat


def test_overlapping_pauses_restore_the_collector_once_all_end():
    assert gc.isenabled()
    inside = threading.Barrier(2)
    seen: list[bool] = []

    def parse() -> None:
        with logformat._gc_paused():
            inside.wait(10)
            seen.append(gc.isenabled())
            inside.wait(10)

    threads = [threading.Thread(target=parse) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [False, False]
    assert gc.isenabled()


def test_a_collector_turned_off_before_stays_off():
    gc.disable()
    try:
        with logformat._gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_exception_inside_still_restores_it():
    try:
        with logformat._gc_paused():
            raise ValueError("a damaged checkpoint")
    except ValueError:
        pass
    assert gc.isenabled()
