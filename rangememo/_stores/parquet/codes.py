"""code.json: which code wrote a ParquetStore namespace's entries.

::

    <namespace dir>/code.json   {"format": 1, "namespace": "...", "functions": {name: fingerprint}}

Read once per function and process; rewritten (temp file + rename) only when
a fingerprint is new or changed. A missing or unreadable file reads as empty:
it only ever costs a warning that is not given, never data.
"""

from __future__ import annotations

import json
import logging

from .layout import FORMAT
from .medium import Medium

__all__ = ["read_codes", "write_codes"]

log = logging.getLogger("rangememo")

NAME = "code.json"


def read_codes(medium: Medium, nsname: str) -> dict[str, str]:
    name = f"{nsname}/{NAME}"
    try:
        raw = medium.read(name)
        if raw is None:
            return {}
        data = json.loads(raw)
        return {str(k): str(v) for k, v in dict(data["functions"]).items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning(
            "%s unreadable (%s): code changes are not detected this once",
            medium.describe(name),
            exc,
        )
        return {}


def write_codes(medium: Medium, nsname: str, namespace: str, codes: dict[str, str]) -> None:
    body = {"format": FORMAT, "namespace": namespace, "functions": codes}
    try:
        medium.put(f"{nsname}/{NAME}", json.dumps(body, sort_keys=True).encode())
    except OSError as exc:  # a read-only store still serves; it just cannot tell next time
        log.warning("could not record the code of %s in %s: %s", namespace, nsname, exc)
