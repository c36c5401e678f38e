"""Where things live in a store directory, and the ledger file (JSON, no pickle).

::

    <root>/
      .locks/<stripe>.lock                       lock files, shared by keys (kept)
      .trash/                                    directories being deleted
      .quarantine/<namespace dir>/<key hash>/    damaged files, kept for a post-mortem
      <namespace dir>/                           readable prefix + hash of the namespace
        namespace.json                           {"namespace": "pkg.mod.fn@v0"}
        <key hash>/                              joblib.hash(key): never the key itself
          log/<seq>.json, log/<seq>.ckpt.json    the log (see rangememo._stores.parquet.log)
          seg-<uuid>.parquet                     immutable parts
          key.json, ledger.json                  format 1 (read, migrated on the first write)

On an object store the same names are object keys under the store's prefix
(``.locks/`` holds writer leases there, see ``s3/lease.py``).

A key's value never reaches a path: ``../``, NUL or a 10 kB string is hashed.
The namespace directory keeps a sanitised prefix for ``ls``, plus a hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
import time
import uuid
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, NamedTuple

import joblib

from ..._errors import RangememoError
from .keyjson import key_from_json, key_to_json
from .local.medium import TEMP_PREFIX
from .medium import Medium
from .segments import Segment, segment_name

__all__ = [
    "FORMAT",
    "NOT_JSON",
    "Doc",
    "NewerLedger",
    "KeyPaths",
    "ensure_dirs",
    "key_dirs",
    "key_paths",
    "is_temp",
    "namespace_dirs",
    "ours",
    "quarantine",
    "read_key",
]

log = logging.getLogger("rangememo")

FORMAT = 1
QUARANTINE = ".quarantine"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")
_NSNAME = re.compile(r".+-[0-9a-f]{12}")  # namespace_dirname
_KEYNAME = re.compile(r"[0-9a-f]{32}")  # key_hash


class NewerLedger(RangememoError, OSError):
    """A ledger written by a newer rangememo: left alone (not read, not overwritten)."""


class KeyPaths(NamedTuple):
    """Where a key lives: ``prefix`` on the medium; the paths are for messages (and local)."""

    root: PurePath
    nsdir: PurePath
    keydir: PurePath
    prefix: str  # ``<namespace dir>/<key hash>``: the key's names on the medium

    @property
    def nsname(self) -> str:
        return self.nsdir.name


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


def key_paths(root: PurePath, namespace: str, key: Hashable) -> KeyPaths:
    nsname, khash = namespace_dirname(namespace), key_hash(key)
    return make_paths(root, nsname, khash)


def make_paths(root: PurePath, nsname: str, khash: str) -> KeyPaths:
    nsdir = root / nsname
    keydir = nsdir / khash
    prefix = f"{nsname}/{khash}"
    return KeyPaths(root, nsdir, keydir, prefix)


# -- format 1's ledger file (read for migration) -------------------------------------


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


# -- readable names ----------------------------------------------------------------


def ensure_dirs(medium: Medium, paths: KeyPaths, namespace: str) -> None:
    """Create the key's directory and the namespace's namespace.json (idempotent)."""
    for _ in range(3):  # a concurrent ``clear`` may remove an empty namespace dir
        try:
            medium.makedirs(f"{paths.prefix}/log")
            name = f"{paths.nsname}/namespace.json"
            if not medium.exists(name):
                text = json.dumps({"format": FORMAT, "namespace": namespace})
                medium.create(name, text.encode())
            return
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"could not create {medium.describe(paths.prefix)}")


def key_doc(key: Hashable) -> dict[str, Any]:
    """The key as a log records it: readable (repr) and, if it has one, typed JSON."""
    try:
        value: Any = key_to_json(key)
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        value = None  # shown by its repr; keys() can only return it from memory
    return {"repr": repr(key)[:2000], "key": value}


def key_from_doc(data: Any, khash: str) -> tuple[str, Any]:
    """``(repr, key)`` of a :func:`key_doc`; the key is :data:`NOT_JSON` when not restorable."""
    try:
        text = str(data["repr"])
        if data["key"] is None and text != "None":
            return text, NOT_JSON
        return text, key_from_json(data["key"])
    except (ValueError, KeyError, TypeError):
        return f"<{khash}>", NOT_JSON


#: A key that key.json holds only as its repr.
NOT_JSON = object()


def read_key(medium: Medium, prefix: str) -> tuple[str, Any]:
    """``(repr, key)`` from format 1's key.json (see :func:`key_from_doc`)."""
    khash = prefix.rpartition("/")[2]
    try:
        data = medium.read(f"{prefix}/key.json")
        if data is None:
            return f"<{khash}>", NOT_JSON
        return key_from_doc(json.loads(data), khash)
    except (OSError, ValueError):
        return f"<{khash}>", NOT_JSON


def namespace_dirs(medium: Medium) -> Iterator[tuple[str, str]]:
    """``(namespace, directory name)`` of every namespace in a store (the folders named
    as rangememo names them: a store may share its directory with other folders)."""
    for name in medium.list_dirs(""):
        if not ours(name):
            continue
        try:
            data = medium.read(f"{name}/namespace.json")
            namespace = str(json.loads(data)["namespace"]) if data is not None else name
        except (OSError, ValueError, KeyError, TypeError):
            namespace = name
        yield namespace, name


def key_dirs(medium: Medium, nsname: str) -> list[str]:
    """The key hashes of a namespace directory (other folders there are not keys)."""
    return [k for k in medium.list_dirs(nsname) if _KEYNAME.fullmatch(k)]


def is_temp(name: str) -> bool:
    """A temp file's name (``LocalMedium``'s, or a crashed write's ``.<name>.tmp``)."""
    return name.startswith(TEMP_PREFIX) or (name.startswith(".") and name.endswith(".tmp"))


def ours(nsname: str, khash: str | None = None) -> bool:
    """Whether a directory is named as rangememo names its own: ``gc`` and ``clear`` delete
    only these, so a store opened on a directory that holds other folders keeps them."""
    if _NSNAME.fullmatch(nsname) is None:
        return False
    return khash is None or _KEYNAME.fullmatch(khash) is not None


def stamp() -> str:
    """A unique, sortable suffix for a quarantined name."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}.{uuid.uuid4().hex[:6]}"


def quarantine(medium: Medium, paths: KeyPaths, name: str, to: str = "") -> str | None:
    """Move a damaged file aside (kept for inspection; ``clear`` removes it)."""
    target = f"{QUARANTINE}/{paths.prefix}/{to or name.rpartition('/')[2] + '.' + stamp()}"
    try:
        if not medium.move(f"{paths.prefix}/{name}", target):
            return None
    except OSError as exc:
        log.warning("could not quarantine %s: %s", medium.describe(name), exc)
        return None
    return target
