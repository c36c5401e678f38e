"""Does the endpoint really enforce conditional writes? Checked once per process and store.

The whole protocol rests on two refusals: a second create of one name must
fail (``If-None-Match: *``), and a compare-and-swap with a stale ETag must
fail (``If-Match``). Some S3-compatible servers, and proxies that drop
headers, accept both silently, and two writers would then both "win" one log
record. The probe writes under the store's own prefix (``.probe/``) and
removes what it wrote.
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

from ...._errors import RangememoError

if TYPE_CHECKING:
    from .medium import S3Medium

__all__ = ["ConditionalWritesUnsupported", "check_conditional_writes"]

PROBE = ".probe"
_CHECKED: set[tuple[str, ...]] = set()  # S3Medium.server: URL, endpoint, region
_LOCK = threading.Lock()


class ConditionalWritesUnsupported(RangememoError):
    """The object store (or a proxy before it) ignores conditional writes."""


def check_conditional_writes(medium: S3Medium) -> None:
    """Raise :class:`ConditionalWritesUnsupported` unless both conditions are enforced."""
    import obstore

    with _LOCK:
        if medium.server in _CHECKED:
            return
    name = f"{PROBE}/{uuid.uuid4().hex}"
    try:
        if not medium.create(name, b"first"):
            raise ConditionalWritesUnsupported(f"{medium.describe(name)}: a fresh create failed")
        second = medium.create(name, b"second")
        if second or medium.read(name) != b"first":
            raise ConditionalWritesUnsupported(
                f"{medium.url}: the endpoint accepted a second create of {name!r} "
                "(PUT If-None-Match: * was ignored). rangememo needs an object store that "
                "enforces conditional writes (AWS S3, SeaweedFS, MinIO, R2); "
                "is a proxy dropping the If-None-Match header?"
            )
        result = obstore.put(medium.store, name, b"third")
        stale = '"00000000000000000000000000000000"'
        if medium.swap(name, b"fourth", stale) is not None or medium.read(name) != b"third":
            raise ConditionalWritesUnsupported(
                f"{medium.url}: the endpoint accepted a compare-and-swap with a stale ETag "
                "(PUT If-Match was ignored). rangememo needs an object store that enforces "
                "conditional writes; is a proxy dropping the If-Match header?"
            )
        if medium.swap(name, b"fifth", str(result["e_tag"])) is None:
            raise ConditionalWritesUnsupported(
                f"{medium.url}: a compare-and-swap with the current ETag failed (If-Match)"
            )
    finally:
        try:
            medium.delete(name)
        except OSError:
            pass
    with _LOCK:
        _CHECKED.add(medium.server)
