"""Tidying a store directory: collect garbage (``gc``), compact, clear.

Only what rangememo wrote is deleted: a store may share its directory with
other folders (see docs/cli.md), so a folder is removed only if it is named
as rangememo names its own and holds what rangememo writes there. Writers'
locks are honoured: anything that changes a key holds that key's lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .compaction import compact_state
from .layout import QUARANTINE, KeyPaths, NewerLedger, is_temp, key_dirs, namespace_dirs, ours
from .leases import Leases
from .local.locks import LockTimeout
from .local.medium import TRASH
from .log import LOG, LogState, checkpoint, is_log_file, load
from .maintenance import LOCK_WAIT, KeyInfo, Where, as_medium, first_write, paths_of, scan
from .medium import Medium
from .segments import Damaged

__all__ = ["clear_keys", "clear_store", "collect", "compact_all", "sweep"]


def collect(where: Where, grace: float = 60.0) -> list[str]:
    """Remove what no log needs: replaced files no other process reads, and orphans and
    temp files older than ``grace`` seconds (a writer may be about to commit a younger one)."""
    medium = as_medium(where)
    removed: list[str] = []
    for name in medium.list(TRASH):
        removed.append(medium.describe(f"{TRASH}/{name}"))
    for name in medium.list_dirs(TRASH):
        removed.append(medium.describe(f"{TRASH}/{name}"))
    if removed:
        medium.remove_tree(TRASH)
    now = time.time()
    leases = Leases(medium)
    for _, nsname in namespace_dirs(medium):
        for name in _files(medium, nsname, is_temp):  # a crashed namespace.json write
            if now - (medium.mtime(f"{nsname}/{name}") or now) > grace:
                medium.delete(f"{nsname}/{name}")
                removed.append(medium.describe(f"{nsname}/{name}"))
        for khash in key_dirs(medium, nsname):
            paths = paths_of(medium, nsname, khash)
            try:
                with medium.lock(paths.prefix, timeout=LOCK_WAIT):
                    removed += _collect_key(medium, leases, paths, grace)
            except (LockTimeout, Damaged, NewerLedger):
                continue  # busy, damaged or not ours: verify reports it
    return removed


def _collect_key(medium: Medium, leases: Leases, paths: KeyPaths, grace: float) -> list[str]:
    state = load(medium, paths.prefix)
    if state is None:  # a first write that never committed: nothing to keep
        if not _abandoned(medium, paths, grace):
            return []
        medium.remove_tree(paths.prefix)
        return [medium.describe(paths.prefix)]
    gone: list[str] = []
    if state.retired and not leases.others_hold(paths.prefix):
        for name in state.retired:
            if medium.exists(f"{paths.prefix}/{name}"):
                medium.delete(f"{paths.prefix}/{name}")
                gone.append(medium.describe(f"{paths.prefix}/{name}"))
        state.retired = []
        checkpoint(medium, paths.prefix, state)  # a log that no longer names them
    swept = sweep(medium, paths.prefix, state, grace)
    return gone + [medium.describe(f"{paths.prefix}/{n}") for n in swept]


def _abandoned(medium: Medium, paths: KeyPaths, grace: float) -> bool:
    """Whether a key directory without a log is what a first write leaves (a ``log/``
    folder, temp files, uncommitted segments), all older than ``grace``: anything else,
    or a directory not named as ours, is someone's data, and ``gc`` keeps it."""
    if not ours(paths.nsname, paths.prefix.rpartition("/")[2]):
        return False
    names = first_write(medium, paths.prefix)
    if names is None:
        return False
    now = time.time()
    for name in names:
        mtime = medium.mtime(name)
        if mtime is not None and now - mtime < grace:
            return False
    return True


def sweep(medium: Medium, prefix: str, state: LogState | None, grace: float) -> list[str]:
    """Remove temp files and segments no log names, older than ``grace`` (key locked)."""
    keep = state.files() if state is not None else set()
    now, removed = time.time(), []

    def unneeded(name: str) -> bool:
        orphan = name.startswith("seg-") and name.endswith(".parquet") and name not in keep
        return orphan or is_temp(name)

    for folder in (prefix, f"{prefix}/{LOG}"):
        for name in _files(medium, folder, unneeded):
            try:
                mtime = medium.mtime(f"{folder}/{name}")
            except OSError:
                continue
            if mtime is None or now - mtime < grace:
                continue
            medium.delete(f"{folder}/{name}")
            removed.append(name if folder == prefix else f"{LOG}/{name}")
    return removed


def _files(medium: Medium, folder: str, wanted: Callable[[str], bool]) -> list[str]:
    """The files (not folders: a user's ``.cache.tmp/``) in ``folder`` that are ``wanted``;
    the folders are listed only when some name is (one request more on an object store)."""
    names = [n for n in medium.list(folder) if wanted(n)]
    if names:
        folders = set(medium.list_dirs(folder))
        names = [n for n in names if n not in folders]
    return names


def compact_all(where: Where, grace: float = 0.0) -> tuple[int, int]:
    """Merge every key's same-schema runs of segments; ``(keys, segments merged away)``.

    ``grace`` is accepted for compatibility: replaced files go as soon as no
    other process's lease names the key.
    """
    medium = as_medium(where)
    keys = merged = 0
    leases = Leases(medium)
    for info in scan(medium):
        if info.doc is None:
            continue
        try:
            with medium.lock(info.paths.prefix, timeout=LOCK_WAIT):
                state = load(medium, info.paths.prefix)
                if state is None:
                    continue
                before = len(state.segments)
                done = compact_state(medium, info.paths.prefix, state, True)
                if done:
                    keys, merged = keys + 1, merged + before - len(state.segments)
                if state.retired and not leases.others_hold(info.paths.prefix):
                    for name in state.retired:
                        medium.delete(f"{info.paths.prefix}/{name}")
                    state.retired = []
                if done or state.since or state.retired or state.legacy:
                    checkpoint(medium, info.paths.prefix, state)
                sweep(medium, info.paths.prefix, state, 60.0)
        except (LockTimeout, Damaged, OSError):
            continue
    return keys, merged


def clear_store(where: Where, nsname: str | None = None) -> None:
    """Delete one namespace directory (each key under its lock), or everything.

    Only what rangememo wrote: a folder of someone else's in the store's
    directory (or in a namespace's) is left as it is.
    """
    medium = as_medium(where)
    names = [nsname] if nsname is not None else [d for _, d in namespace_dirs(medium)]
    for name in names:
        if not ours(name):
            continue
        for khash in key_dirs(medium, name):
            prefix = f"{name}/{khash}"
            if _a_key(medium, prefix):
                with medium.lock(prefix):
                    medium.remove_tree(prefix)
        _drop_namespace(medium, name)
    if nsname is None:
        medium.remove_tree(QUARANTINE)
        medium.remove_tree(TRASH)


def clear_keys(where: Where, infos: list[KeyInfo]) -> int:
    """Delete the given keys (each under its lock); how many were deleted."""
    medium = as_medium(where)
    done = 0
    for info in infos:
        paths = info.paths
        if not (
            ours(paths.nsname, paths.prefix.rpartition("/")[2]) and _a_key(medium, paths.prefix)
        ):
            continue  # a folder of someone else's that a pattern matched
        with medium.lock(paths.prefix):
            medium.remove_tree(paths.prefix)
        _drop_namespace(medium, paths.nsname)
        done += 1
    return done


def _a_key(medium: Medium, prefix: str) -> bool:
    """Does ``prefix`` hold a key (a log, format 1's files, or an unfinished first
    write), not a user's folder that happens to be named like one?"""
    if any(map(is_log_file, medium.list(f"{prefix}/{LOG}"))):
        return True
    if any(medium.exists(f"{prefix}/{n}") for n in ("ledger.json", "key.json")):
        return True
    return first_write(medium, prefix) is not None


def _drop_namespace(medium: Medium, nsname: str) -> None:
    """Remove a namespace directory its last key left, if nothing but its metadata is left."""
    if medium.list_dirs(nsname):
        return
    if all(n in ("namespace.json", "code.json") or is_temp(n) for n in medium.list(nsname)):
        medium.remove_tree(nsname)
