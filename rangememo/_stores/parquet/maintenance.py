"""A store directory as a whole: list, verify, collect garbage, compact, clear.

These work on directories, not on keys: they need no provider and no key
objects (a key whose value has no JSON form is found by its hash), so the
``rangememo`` command can run them against any store directory. Writers'
locks are honoured: anything that changes a key holds that key's lock.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePath, PurePosixPath
from typing import Any

import pandas as pd

from ..._core.ledger import Ledger
from .codec import decode, template_from_json
from .compaction import compact_state
from .layout import (
    QUARANTINE,
    KeyPaths,
    NewerLedger,
    key_dirs,
    key_from_doc,
    make_paths,
    namespace_dirs,
    ours,
    read_key,
)
from .leases import Leases
from .local.locks import LockTimeout
from .local.medium import TEMP_PREFIX, TRASH
from .location import open_medium
from .log import LOG, LogState, checkpoint, is_log_file, load
from .medium import Medium
from .segments import Damaged, read_segment

__all__ = [
    "KeyInfo",
    "clear_keys",
    "clear_store",
    "collect",
    "compact_all",
    "find",
    "scan",
    "verify",
]

#: How long maintenance waits for a key that a writer holds before skipping it.
LOCK_WAIT = 10.0


#: What maintenance accepts: a medium, or a store directory or URL.
Where = Medium | str | os.PathLike[str]


def as_medium(where: Where) -> Medium:
    if isinstance(where, (str, os.PathLike)):
        return open_medium(where)
    return where


def paths_of(medium: Medium, nsname: str, khash: str) -> KeyPaths:
    return make_paths(root_of(medium), nsname, khash)


def root_of(medium: Medium) -> PurePath:
    """The root of ``medium`` as a path (local) or a path-like name (for messages)."""
    root = getattr(medium, "root", None)
    return root if isinstance(root, PurePath) else PurePosixPath(medium.url)


@dataclass
class KeyInfo:
    """One key directory, as ``ls``/``show`` present it."""

    namespace: str
    key: str  # the key's repr
    paths: KeyPaths
    where: str  # the key's directory or URL
    doc: LogState | None = None
    problem: str = ""

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.doc.segments) if self.doc else 0

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.doc.segments) if self.doc else 0

    @property
    def ledger(self) -> Ledger:
        return self.doc.ledger if self.doc else Ledger()

    @property
    def updated(self) -> dt.datetime | None:
        return dt.datetime.fromtimestamp(self.doc.updated) if self.doc else None

    def position(self, pos: int) -> str:
        """A position in the key's own terms (a date, a UTC time, an int)."""
        axis = (self.doc.schema or {}).get("axis") if self.doc else None
        if axis is None or axis[0] == "int" or abs(pos) >= 2**62:
            return "-inf" if pos <= -(2**62) else "+inf" if pos >= 2**62 else str(pos)
        ts = pd.Timestamp(pos, unit="ns", tz="UTC" if axis[1] else None)
        if axis[0] == "date" or (ts.hour, ts.minute, ts.second, ts.nanosecond) == (0, 0, 0, 0):
            return str(ts.date())
        return str(ts)


def scan(where: Where) -> Iterator[KeyInfo]:
    """Every key directory with its log state (or the reason it cannot be read)."""
    medium = as_medium(where)
    for namespace, nsname in namespace_dirs(medium):
        for khash in key_dirs(medium, nsname):
            paths = paths_of(medium, nsname, khash)
            info = KeyInfo(namespace, f"<{khash}>", paths, medium.describe(paths.prefix))
            try:
                info.doc = load(medium, paths.prefix)
            except Damaged as exc:
                info.problem = f"{exc.path}: {exc.reason}"
            except NewerLedger as exc:
                info.problem = f"{exc} (left alone)"
            else:
                if info.doc is None:
                    info.problem = "no log (a first write did not finish)"
            doc = info.doc
            found = (
                key_from_doc(doc.key, khash) if doc and doc.key else read_key(medium, paths.prefix)
            )
            info.key = found[0]
            yield info


def find(where: Where, namespace: str | None = None, key: str | None = None) -> list[KeyInfo]:
    """Keys matching a namespace (name or directory, or a prefix of either) and a key
    (its repr, or a prefix of its hash)."""
    medium = as_medium(where)
    out = []
    for info in scan(medium):
        if namespace is not None and not _matches(namespace, info.namespace, info.paths.nsname):
            continue
        if (
            key is not None
            and key != info.key
            and not (len(key) >= 4 and info.paths.keydir.name.startswith(key))
        ):
            continue
        out.append(info)
    if namespace is not None:  # an exact name wins over prefixes of other names
        exact = [i for i in out if namespace in (i.namespace, i.paths.nsname)]
        out = exact or out
    return out


def _matches(query: str, name: str, dirname: str) -> bool:
    return query in (name, dirname) or name.startswith(query) or dirname.startswith(query)


@dataclass
class Report:
    """What ``verify`` found: problems (exit non-zero) and notes (harmless)."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    checked: int = 0


def verify(where: Where) -> Report:
    """Read every ledger and every segment it names, as a reader would."""
    medium = as_medium(where)
    report = Report()
    for info in scan(medium):
        where = f"{info.namespace} {info.key}"
        report.checked += 1
        if info.doc is None:
            harmless = "did not finish" in info.problem or "newer rangememo" in info.problem
            bucket = report.notes if harmless else report.problems
            bucket.append((where, f"{info.where}: {info.problem}"))
            continue
        for problem in _check(medium, info.paths, info.doc):
            report.problems.append((where, problem))
        files = set(medium.list(info.paths.prefix)) - set(medium.list_dirs(info.paths.prefix))
        for name in sorted(files - info.doc.files() - {"ledger.json", "key.json"}):
            if _temp(name):
                kind = "temp file"
            elif name.startswith("seg-") and name.endswith(".parquet"):
                kind = "orphan file (gc removes it)"
            else:
                kind = "not rangememo's file (left alone)"
            report.notes.append(
                (where, f"{medium.describe(f'{info.paths.prefix}/{name}')}: {kind}")
            )
    return report


def _temp(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) or (name.startswith(".") and name.endswith(".tmp"))


def _check(medium: Medium, paths: KeyPaths, doc: LogState) -> Iterator[str]:
    schema = doc.schema
    template: Any = None
    log_where = medium.describe(f"{paths.prefix}/{LOG}")
    if schema is not None:
        try:
            template = template_from_json(schema["kind"], schema["template"])
        except (KeyError, TypeError, ValueError) as exc:
            yield f"{log_where}: unreadable schema ({exc})"
            return
    for seg in doc.segments:
        if any(a >= b for a, b in seg.claims):
            yield f"{log_where}: segment {seg.file} claims an empty range"
        if seg.file is None:
            continue
        name = f"{paths.prefix}/{seg.file}"
        try:
            _, _, _, table = read_segment(medium, name, seg, 0, 0, whole=True)
            if schema is not None:
                decode(schema["kind"], table, template)
        except Damaged as exc:
            yield str(exc)
        except (ValueError, TypeError, KeyError) as exc:
            yield f"{medium.describe(name)}: rows do not decode ({exc})"


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
        for name in medium.list(nsname):  # a crashed namespace.json write
            if _temp(name) and now - (medium.mtime(f"{nsname}/{name}") or now) > grace:
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
    names = _first_write(medium, paths.prefix)
    if names is None:
        return False
    now = time.time()
    for name in names:
        mtime = medium.mtime(name)
        if mtime is not None and now - mtime < grace:
            return False
    return True


def _first_write(medium: Medium, prefix: str) -> list[str] | None:
    """The files of a key directory if they are all a first write's (else ``None``)."""
    folders = medium.list_dirs(prefix)  # an object store lists no empty ``log/``
    if set(folders) - {LOG} or medium.list_dirs(f"{prefix}/{LOG}"):
        return None
    names = [f"{prefix}/{n}" for n in medium.list(prefix) if n not in folders]
    names += [f"{prefix}/{LOG}/{n}" for n in medium.list(f"{prefix}/{LOG}")]
    for name in names:
        base = name.rpartition("/")[2]
        if not (_temp(base) or (base.startswith("seg-") and base.endswith(".parquet"))):
            return None
    return names


def sweep(medium: Medium, prefix: str, state: LogState | None, grace: float) -> list[str]:
    """Remove temp files and segments no log names, older than ``grace`` (key locked)."""
    keep = state.files() if state is not None else set()
    now, removed = time.time(), []
    for folder in (prefix, f"{prefix}/{LOG}"):
        for name in medium.list(folder):
            orphan = name.startswith("seg-") and name.endswith(".parquet") and name not in keep
            if not (orphan or _temp(name)):
                continue
            try:
                mtime = medium.mtime(f"{folder}/{name}")
            except OSError:
                continue
            if mtime is None or now - mtime < grace:
                continue
            medium.delete(f"{folder}/{name}")
            removed.append(name if folder == prefix else f"{LOG}/{name}")
    return removed


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
    for info in infos:
        with medium.lock(info.paths.prefix):
            medium.remove_tree(info.paths.prefix)
        _drop_namespace(medium, info.paths.nsname)
    return len(infos)


def _a_key(medium: Medium, prefix: str) -> bool:
    """Does ``prefix`` hold a key (a log, format 1's files, or an unfinished first
    write), not a user's folder that happens to be named like one?"""
    if any(map(is_log_file, medium.list(f"{prefix}/{LOG}"))):
        return True
    if any(medium.exists(f"{prefix}/{n}") for n in ("ledger.json", "key.json")):
        return True
    return _first_write(medium, prefix) is not None


def _drop_namespace(medium: Medium, nsname: str) -> None:
    """Remove a namespace directory its last key left, if nothing but its metadata is left."""
    if medium.list_dirs(nsname):
        return
    if all(n in ("namespace.json", "code.json") or _temp(n) for n in medium.list(nsname)):
        medium.remove_tree(nsname)
