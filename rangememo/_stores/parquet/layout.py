"""Where things live in a store directory, and the ledger file (JSON, no pickle).

::

    <root>/
      .locks/<namespace dir>.<key hash>.lock     one lock file per key (kept)
      .trash/                                    directories being deleted
      .quarantine/<namespace dir>/<key hash>/    damaged files, kept for a post-mortem
      <namespace dir>/                           readable prefix + hash of the namespace
        namespace.json                           {"namespace": "pkg.mod.fn@v0"}
        <key hash>/                              joblib.hash(key): never the key itself
          key.json                               the key, readable (repr) and typed JSON
          ledger.json                            coverage, segments, schema (+ sha256)
          seg-<uuid>.parquet                     immutable parts

A key's value never reaches a path: ``../``, NUL or a 10 kB string is hashed.
The namespace directory keeps a sanitised prefix for ``ls``, plus a hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import time
import uuid
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import joblib

from ..._errors import RangememoError
from .keyjson import key_from_json, key_to_json
from .segments import Damaged, Segment, segment_name, write_file

__all__ = [
    "FORMAT",
    "NOT_JSON",
    "Doc",
    "NewerLedger",
    "KeyPaths",
    "Sig",
    "key_paths",
    "namespace_dirs",
    "read_doc",
    "read_key",
    "write_doc",
]

log = logging.getLogger("rangememo")

FORMAT = 1
LOCKS, TRASH, QUARANTINE = ".locks", ".trash", ".quarantine"
#: ``(mtime_ns, size, inode)`` of ledger.json: equal means unchanged.
Sig = tuple[int, int, int]
_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")


class NewerLedger(RangememoError, OSError):
    """A ledger written by a newer rangememo: left alone (not read, not overwritten)."""


class KeyPaths(NamedTuple):
    root: Path
    nsdir: Path
    keydir: Path
    ledger: Path  # format 1's ledger.json
    keyfile: Path  # format 1's key.json
    lock: str
    prefix: str  # ``<namespace dir>/<key hash>``: the key's names on the medium


#: Lock files are shared by keys (a key's in-process mutex stays its own):
#: a lock only keeps two processes from fetching one range twice, and 64
#: stripes keep false sharing rare without a file per key.
LOCK_STRIPES = 64


def lock_path(root: Path, nsname: str, khash: str) -> str:
    """``<file>#<key>``: the stripe's lock file, and the key the in-process mutex is for."""
    stripe = int(_digest(f"{nsname}/{khash}")[:8], 16) % LOCK_STRIPES
    return f"{root / LOCKS / f'{stripe:02x}.lock'}#{nsname}/{khash}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def namespace_dirname(namespace: str) -> str:
    """A safe, readable directory name for a namespace (prefix + hash)."""
    safe = _UNSAFE.sub("_", namespace)[:80].lstrip(".") or "_"
    return f"{safe}-{_digest(namespace)[:12]}"


def key_hash(key: Hashable) -> str:
    """The directory name of a key: its ``joblib.hash`` (stable across processes)."""
    try:
        return str(joblib.hash(key))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        # Unpicklable keys still get a directory, but only as stable as their repr.
        log.warning("key %r cannot be hashed by joblib (%s); hashing its repr", key, exc)
        return _digest(repr(key))[:32]


def key_paths(root: Path, namespace: str, key: Hashable) -> KeyPaths:
    nsname, khash = namespace_dirname(namespace), key_hash(key)
    nsdir = root / nsname
    keydir = nsdir / khash
    return make_paths(root, nsdir, keydir)


def make_paths(root: Path, nsdir: Path, keydir: Path) -> KeyPaths:
    lock = lock_path(root, nsdir.name, keydir.name)
    prefix = f"{nsdir.name}/{keydir.name}"
    return KeyPaths(root, nsdir, keydir, keydir / "ledger.json", keydir / "key.json", lock, prefix)


# -- the ledger file ----------------------------------------------------------------------


@dataclass(slots=True)
class Doc:
    """What ledger.json holds: coverage, the segments behind it, the schema."""

    ledger: dict[str, Any] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    schema: dict[str, Any] | None = None
    generation: int = 0
    retired: list[tuple[str, float]] = field(default_factory=list)  # (file, since)
    updated: float = 0.0

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "generation": self.generation,
            "updated": self.updated,
            "schema": self.schema,
            "ledger": self.ledger,
            "segments": [s.to_json() for s in self.segments],
            "retired": [list(r) for r in self.retired],
        }

    def to_bytes(self) -> bytes:
        body = self.body()
        body["sha256"] = _checksum(body)
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Doc:
        """Parse ledger.json; ``ValueError`` (or ``KeyError``/``TypeError``) if damaged."""
        body = json.loads(data)
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        digest = body.pop("sha256", None)
        if digest != _checksum(body):
            raise ValueError("checksum mismatch")
        if body["format"] != FORMAT:
            if isinstance(body["format"], int) and body["format"] > FORMAT:
                raise NewerLedger(f"format {body['format']}: written by a newer rangememo")
            raise ValueError(f"format {body['format']!r}, this rangememo reads {FORMAT}")
        return cls(
            ledger=dict(body["ledger"]),
            segments=[Segment.from_json(s) for s in body["segments"]],
            schema=body["schema"],
            generation=int(body["generation"]),
            retired=[(segment_name(f), float(t)) for f, t in body["retired"]],
            updated=float(body["updated"]),
        )

    def files(self) -> set[str]:
        """Every segment file this ledger still needs or may still be read from."""
        return {s.file for s in self.segments if s.file} | {f for f, _ in self.retired}


def _checksum(body: dict[str, Any]) -> str:
    return _digest(json.dumps(body, sort_keys=True, separators=(",", ":")))


def read_doc(path: Path) -> tuple[Doc, Sig] | None:
    """The ledger at ``path`` and its signature; ``None`` if there is none.

    Raises :class:`~rangememo._stores.parquet.segments.Damaged` for a truncated or corrupt
    file, :class:`NewerLedger` for one this version cannot read.
    """
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except FileNotFoundError:
        return None
    try:
        doc = Doc.from_bytes(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise Damaged(path, f"unreadable ledger ({type(exc).__name__}: {exc})") from exc
    return doc, (st.st_mtime_ns, st.st_size, st.st_ino)


def stat_sig(path: Path) -> Sig:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


def write_doc(paths: KeyPaths, doc: Doc, *, durable: bool = True) -> Sig:
    """Replace ledger.json atomically; return the new signature."""
    doc.updated = time.time()
    st = write_file(paths.ledger, doc.to_bytes(), durable=durable, point="ledger", commit=True)
    return st.st_mtime_ns, st.st_size, st.st_ino


# -- readable names ----------------------------------------------------------------


def ensure_dirs(paths: KeyPaths, namespace: str, *, durable: bool) -> None:
    """Create the key's directory and the namespace's namespace.json (idempotent)."""
    for _ in range(3):  # a concurrent ``clear`` may remove an empty namespace dir
        try:
            (paths.keydir / "log").mkdir(parents=True, exist_ok=True)
            if not (paths.nsdir / "namespace.json").exists():
                text = json.dumps({"format": FORMAT, "namespace": namespace})
                write_file(paths.nsdir / "namespace.json", text.encode(), durable=durable)
            return
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"could not create {paths.keydir}")


def key_doc(key: Hashable) -> dict[str, Any]:
    """The key as a log records it: readable (repr) and, if it has one, typed JSON."""
    try:
        value: Any = key_to_json(key)
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        value = None  # shown by its repr; keys() can only return it from memory
    return {"repr": repr(key)[:2000], "key": value}


def key_from_doc(data: Any, keydir: Path) -> tuple[str, Any]:
    """``(repr, key)`` of a :func:`key_doc`; the key is :data:`NOT_JSON` when not restorable."""
    try:
        text = str(data["repr"])
        if data["key"] is None and text != "None":
            return text, NOT_JSON
        return text, key_from_json(data["key"])
    except (ValueError, KeyError, TypeError):
        return f"<{keydir.name}>", NOT_JSON


#: A key that key.json holds only as its repr.
NOT_JSON = object()


def read_key(keydir: Path) -> tuple[str, Any]:
    """``(repr, key)`` from format 1's key.json (see :func:`key_from_doc`)."""
    try:
        data = json.loads((keydir / "key.json").read_bytes())
    except (OSError, ValueError):
        return f"<{keydir.name}>", NOT_JSON
    return key_from_doc(data, keydir)


def namespace_dirs(root: Path) -> Iterator[tuple[str, Path]]:
    """``(namespace, directory)`` of every namespace in a store directory."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            data = json.loads((Path(entry.path) / "namespace.json").read_bytes())
            name = str(data["namespace"])
        except (OSError, ValueError, KeyError, TypeError):
            name = entry.name
        yield name, Path(entry.path)


def key_dirs(nsdir: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(nsdir) if e.is_dir())
    except FileNotFoundError:
        return []


def remove_tree(root: Path, path: Path) -> None:
    """Delete a directory: first renamed into .trash (atomic), then removed."""
    trash = root / TRASH
    trash.mkdir(parents=True, exist_ok=True)
    target = trash / f"{path.name}.{uuid.uuid4().hex[:12]}"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return
    shutil.rmtree(target, ignore_errors=True)


def quarantine(paths: KeyPaths, path: Path) -> Path | None:
    """Move a damaged file aside (kept for inspection; ``clear`` removes it)."""
    where = paths.root / QUARANTINE / paths.nsdir.name / paths.keydir.name
    try:
        where.mkdir(parents=True, exist_ok=True)
        target = where / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.{uuid.uuid4().hex[:6]}"
        os.replace(path, target)
    except OSError as exc:
        log.warning("could not quarantine %s: %s", path, exc)
        return None
    return target
