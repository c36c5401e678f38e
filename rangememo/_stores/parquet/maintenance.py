"""A store directory as a whole: list and verify (``tidy``: gc, compact, clear).

These work on directories, not on keys: they need no provider and no key
objects (a key whose value has no JSON form is found by its hash), so the
``rangememo`` command can run them against any store directory. Writers'
locks are honoured: anything that changes a key holds that key's lock.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePath, PurePosixPath
from typing import Any

import pandas as pd

from ..._core.ledger import Ledger
from .codec import decode, template_from_json
from .layout import (
    KeyPaths,
    NewerLedger,
    is_temp,
    key_dirs,
    key_from_doc,
    make_paths,
    namespace_dirs,
    read_key,
)
from .location import open_medium
from .log import LOG, LogState, load
from .medium import Medium
from .segments import Damaged, read_segment

__all__ = [
    "KeyInfo",
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
                    if first_write(medium, paths.prefix) is None:
                        continue  # a user's folder named like a key, not rangememo's
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
    if not query:  # ``clear "$NS"`` with NS unset names nothing, not everything
        return False
    return query in (name, dirname) or name.startswith(query) or dirname.startswith(query)


def first_write(medium: Medium, prefix: str) -> list[str] | None:
    """The files of a key directory without a log if they are all a first write's (a
    ``log/`` folder, temp files, uncommitted segments); ``None``: someone else's folder."""
    folders = medium.list_dirs(prefix)  # an object store lists no empty ``log/``
    if set(folders) - {LOG} or medium.list_dirs(f"{prefix}/{LOG}"):
        return None
    names = [f"{prefix}/{n}" for n in medium.list(prefix) if n not in folders]
    names += [f"{prefix}/{LOG}/{n}" for n in medium.list(f"{prefix}/{LOG}")]
    for name in names:
        base = name.rpartition("/")[2]
        if not (is_temp(base) or (base.startswith("seg-") and base.endswith(".parquet"))):
            return None
    return names


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
            if is_temp(name):
                kind = "temp file"
            elif name.startswith("seg-") and name.endswith(".parquet"):
                kind = "orphan file (gc removes it)"
            else:
                kind = "not rangememo's file (left alone)"
            report.notes.append(
                (where, f"{medium.describe(f'{info.paths.prefix}/{name}')}: {kind}")
            )
    return report


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
