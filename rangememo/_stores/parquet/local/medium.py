"""A :class:`~rangememo._stores.parquet.medium.Medium` on a local directory.

Create-if-absent is a hard link: the bytes go to a temp file inside the
store directory (fsynced when ``durable``), ``os.link(temp, final)`` publishes
them, failing with ``FileExistsError`` if ``final`` exists, and the temp file
is unlinked. A link is atomic and never replaces anything, so a reader sees
the whole file or none and two writers of one name cannot both win, whatever
the order in which the directory's entries reach the disk. A crash leaves at
most a temp file (``.tmp-…``), which ``gc`` removes. Segment files have uuid
names that no two writers share: :meth:`LocalMedium.create_unique` creates them in
place. Where hard links are not supported (some network and FAT file
systems), ``O_CREAT | O_EXCL`` of the final name with the content written
after is the fallback: still exclusive, and a reader of a half-written record
finds it incomplete JSON and waits.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from .. import segments as _segments
from ..segments import crashpoint
from .locks import ahold, held, hold

__all__ = ["LOCKS", "LOCK_STRIPES", "LocalMedium", "TEMP_PREFIX", "TRASH"]

#: Temp files start with this; everything else in a key's directory is named by the log.
TEMP_PREFIX = ".tmp-"
LOCKS, TRASH = ".locks", ".trash"
#: Lock files are shared by keys (a key's in-process mutex stays its own):
#: a lock only keeps two processes from fetching one range twice, and 64
#: stripes keep false sharing rare without a file per key.
LOCK_STRIPES = 64


class LocalMedium:
    """Files under ``root``; ``durable`` fsyncs every created file before publishing it."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root, self.durable = root, durable
        self.url = str(root)
        self._links = True
        self._lock_paths: dict[str, str] = {}
        self._base = os.path.join(str(root), "")

    def path(self, name: str) -> str:
        # Names are relative and "/"-separated: a concatenation (the hit path's
        # two stats build two of these), not os.path.join.
        return self._base + name if name else self.url

    def describe(self, name: str) -> str:
        return self.path(name)

    def read(self, name: str) -> bytes | None:
        try:
            with open(self.path(name), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def exists(self, name: str) -> bool:
        try:
            os.stat(self.path(name))
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def stamp(self, name: str) -> str | None:
        try:
            st = os.stat(self.path(name))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def size(self, name: str) -> int:
        return os.stat(self.path(name)).st_size

    def _temp(self, final: str, data: bytes, sync: bool = True) -> str:
        folder = os.path.dirname(final)
        tmp = os.path.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex[:16]}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0))
        try:
            _segments.write_bytes(fd, data)
            if self.durable and sync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def create(self, name: str, data: bytes) -> bool:
        final = self.path(name)
        if not self._links:
            return self._create_excl(final, data)
        tmp = self._temp(final, data)
        try:
            crashpoint("create-written")
            os.link(tmp, final)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            self._links = False  # no hard links here: exclusive create instead
            return self._create_excl(final, data)
        finally:
            _unlink(tmp)
        return True

    def create_unique(self, name: str, data: bytes) -> None:
        """Create ``name``, a name no other writer picks (a uuid4): the segment files.

        An exclusive create of the final name with the bytes written after it,
        fsynced when ``durable``: no temp file and no link. A reader never sees
        the file half-written, because no record names it before this returns
        (a record is created only after its segment); a crash leaves an orphan,
        which ``gc`` sweeps like any file no record names.
        """
        final = self.path(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(final, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            fd = os.open(final, flags, 0o644)
        try:
            _segments.write_bytes(fd, data)
            crashpoint("create-written")
            if self.durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink(final)
            raise
        os.close(fd)

    def _create_excl(self, final: str, data: bytes) -> bool:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            try:
                fd = os.open(final, flags)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                fd = os.open(final, flags)
        except FileExistsError:
            return False
        try:
            _segments.write_bytes(fd, data)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def put(self, name: str, data: bytes) -> None:
        final = self.path(name)
        tmp = self._temp(final, data, sync=False)  # hints and leases: losing one is harmless
        try:
            os.replace(tmp, final)
        except BaseException:
            _unlink(tmp)
            raise

    def list(self, prefix: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(prefix)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        # A link to a folder counts (a namespace kept on another disk); a link that
        # loops or dangles does not. Maintenance touches only folders named as
        # rangememo names its own, so a link to a user's folder is left alone.
        try:
            with os.scandir(self.path(prefix)) as entries:
                return sorted(e.name for e in entries if _real_dir(e))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def mtime(self, name: str) -> float | None:
        try:
            return os.stat(self.path(name)).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

    def delete(self, name: str) -> None:
        _unlink(self.path(name))

    def move(self, name: str, target: str) -> bool:
        os.makedirs(os.path.dirname(self.path(target)), exist_ok=True)
        try:
            os.replace(self.path(name), self.path(target))
        except FileNotFoundError:
            return False
        return True

    def remove_tree(self, prefix: str) -> None:
        """Renamed into ``.trash`` (atomic: readers see all or nothing), then removed."""
        trash = os.path.join(self.root, TRASH)
        if prefix == TRASH:
            shutil.rmtree(trash, ignore_errors=True)
            return
        os.makedirs(trash, exist_ok=True)
        target = os.path.join(trash, f"{os.path.basename(prefix)}.{uuid.uuid4().hex[:12]}")
        try:
            os.replace(self.path(prefix), target)
        except FileNotFoundError:
            return
        shutil.rmtree(target, ignore_errors=True)

    def makedirs(self, prefix: str) -> None:
        os.makedirs(self.path(prefix), exist_ok=True)

    def open_input(self, name: str, size_hint: int | None = None) -> tuple[Any, int]:
        path = self.path(name)
        return path, os.stat(path).st_size

    def open_parquet(self, name: str) -> str:
        return self.path(name)

    # -- locks: a striped lock file per key (see rangememo._stores.parquet.layout) ----
    def lock_path(self, prefix: str) -> str:
        # Asked several times per call (the engine's hold, the put inside it, the
        # hit path's held() check): hashed once per key.
        path = self._lock_paths.get(prefix)
        if path is None:
            digest = hashlib.sha256(prefix.encode("utf-8", "surrogatepass")).hexdigest()
            stripe = int(digest[:8], 16) % LOCK_STRIPES
            path = f"{os.path.join(self.root, LOCKS, f'{stripe:02x}.lock')}#{prefix}"
            if len(self._lock_paths) > 100_000:
                self._lock_paths.clear()
            self._lock_paths[prefix] = path
        return path

    def lock(
        self, prefix: str, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        return hold(self.lock_path(prefix), timeout)

    def alock(self, prefix: str) -> contextlib.AbstractAsyncContextManager[None]:
        return ahold(self.lock_path(prefix))

    def held(self, prefix: str) -> bool:
        return held(self.lock_path(prefix))

    def close(self) -> None:
        return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except (FileNotFoundError, NotADirectoryError):
        pass


def _real_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop
        return False
