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
from pathlib import Path

from .layout import FORMAT
from .segments import write_file

__all__ = ["read_codes", "write_codes"]

log = logging.getLogger("rangememo")

NAME = "code.json"


def read_codes(nsdir: Path) -> dict[str, str]:
    try:
        data = json.loads((nsdir / NAME).read_bytes())
        return {str(k): str(v) for k, v in dict(data["functions"]).items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning(
            "%s unreadable (%s): code changes are not detected this once", nsdir / NAME, exc
        )
        return {}


def write_codes(nsdir: Path, namespace: str, codes: dict[str, str], *, durable: bool) -> None:
    body = {"format": FORMAT, "namespace": namespace, "functions": codes}
    try:
        write_file(nsdir / NAME, json.dumps(body, sort_keys=True).encode(), durable=durable)
    except OSError as exc:  # a read-only store still serves; it just cannot tell next time
        log.warning("could not record the code of %s in %s: %s", namespace, nsdir, exc)
