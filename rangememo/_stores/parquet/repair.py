"""``rangememo repair``: quarantine damaged files and forget their ranges now.

Readers already do this when they meet a damaged file (see :mod:`.damage`);
``repair`` does it for a whole store at once, so the next call refetches
exactly the damaged ranges instead of warning first.
"""

from __future__ import annotations

import json

from .damage import bad_log, repair_segment
from .layout import NewerLedger, key_dirs, namespace_dirs
from .leases import LEASE_NAME, LEASES
from .log import is_log_file, load
from .maintenance import Where, as_medium, paths_of
from .medium import Medium
from .segments import Damaged, read_segment

__all__ = ["repair", "is_store"]


def repair(where: Where) -> list[tuple[str, str]]:
    """``(file, what was wrong)`` for every damaged file quarantined."""
    medium = as_medium(where)
    done: list[tuple[str, str]] = []
    for _, nsname in namespace_dirs(medium):
        for khash in key_dirs(medium, nsname):
            paths = paths_of(medium, nsname, khash)
            try:
                state = load(medium, paths.prefix)
            except Damaged as exc:  # the whole log goes: the key starts afresh
                bad_log(medium, paths, exc)
                done.append((str(exc.path), exc.reason))
                continue
            except NewerLedger:
                continue
            if state is None:
                continue
            for seg in state.segments:
                if seg.file is None:
                    continue
                name = f"{paths.prefix}/{seg.file}"
                try:
                    read_segment(medium, name, seg, 0, 0, whole=True)
                except Damaged as exc:
                    repair_segment(medium, paths, seg)
                    done.append((str(exc.path), exc.reason))
    return done


#: Folders only a store has at its top (``.locks`` and ``.leases`` outlive a ``clear``).
_MARKS = {".locks", ".leases", ".trash", ".quarantine", ".probe"}


def is_store(where: Where) -> bool:
    """Whether ``where`` looks like a store: empty, holding a namespace directory (named
    as rangememo names them, with its ``namespace.json`` or a key's log), or holding only
    what a cleared store keeps (its lock folder, or a live process's reader lease: on an
    object store nothing else of a cleared store is left beside a user's objects)."""
    medium = as_medium(where)
    dirs = medium.list_dirs("")
    names = medium.list("")
    if not dirs and not names:
        return True
    for _, name in namespace_dirs(medium):
        if _namespace_doc(medium, name):
            return True
        for k in key_dirs(medium, name):
            if any(map(is_log_file, medium.list(f"{name}/{k}/log"))):
                return True
    if any(LEASE_NAME.fullmatch(n) for n in medium.list(LEASES)):
        return True
    mine = [n for n in names if not n.startswith(".")]
    return not mine and any(n in _MARKS for n in dirs)


def _namespace_doc(medium: Medium, nsname: str) -> bool:
    """Does ``nsname`` hold rangememo's namespace.json (not another tool's file of that name)?"""
    try:
        data = medium.read(f"{nsname}/namespace.json")
        doc = json.loads(data) if data is not None else None
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("namespace"), str)
