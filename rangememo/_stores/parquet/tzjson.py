"""Timezone objects as JSON, so a stored dtype compares equal to the provider's (pure).

pandas compares tz-aware dtypes by zone: ``America/New_York`` from pytz, zoneinfo
or dateutil is one zone, and the UTCs of the standard library, pytz and dateutil
are one UTC. A fixed offset from another library is not: pydantic's ``TzInfo(0)``
(what the alpaca-py SDK returns) is not "UTC" to pandas, and ``pytz.FixedOffset``
is not ``datetime.timezone``. So a fixed offset is stored with the library that
made it and rebuilt by that library's constructor; a zone by its name. Any other
tzinfo (``tzlocal()``, a custom class) has no exact stored form.
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

import pandas as pd

__all__ = ["tz_from_json", "tz_to_json"]


def _pydantic(seconds: int, name: str | None) -> dt.tzinfo:
    tzinfo: Any = importlib.import_module("pydantic_core").TzInfo
    return tzinfo(seconds)  # type: ignore[no-any-return]


def _pytz(seconds: int, name: str | None) -> dt.tzinfo:
    return importlib.import_module("pytz").FixedOffset(seconds // 60)  # type: ignore[no-any-return]


def _dateutil(seconds: int, name: str | None) -> dt.tzinfo:
    return importlib.import_module("dateutil.tz").tzoffset(name, seconds)  # type: ignore[no-any-return]


def _stdlib(seconds: int, name: str | None) -> dt.tzinfo:
    offset = dt.timedelta(seconds=seconds)
    return dt.timezone(offset, name) if name is not None else dt.timezone(offset)


#: Fixed-offset classes by (module, class name): how each is rebuilt, and its name if any.
_FIXED = {
    ("pydantic_core._pydantic_core", "TzInfo"): ("pydantic", _pydantic),
    ("pytz", "_FixedOffset"): ("pytz", _pytz),
    ("dateutil.tz.tz", "tzoffset"): ("dateutil", _dateutil),
    ("datetime", "timezone"): ("stdlib", _stdlib),
}
_BUILD = dict(_FIXED.values())


def _same(a: Any, b: Any) -> bool:
    return bool(pd.DatetimeTZDtype("ns", a) == pd.DatetimeTZDtype("ns", b))


def tz_to_json(tz: Any) -> Any:
    """A JSON form of ``tz`` that :func:`tz_from_json` restores to an equal zone; ``None``: none."""
    for zone in _names(tz):
        try:
            if _same(tz, zone):
                return zone
        except (TypeError, ValueError, KeyError, LookupError):
            continue
    kind = _FIXED.get((type(tz).__module__, type(tz).__name__))
    offset = tz.utcoffset(None) if kind is not None else None
    if kind is None or offset is None:
        return None
    seconds = int(offset.total_seconds())
    name: str | None = tz.tzname(None) if kind[0] in ("stdlib", "dateutil") else None
    if kind[0] == "stdlib" and name == _stdlib(seconds, None).tzname(None):
        name = None  # the default name of that offset
    doc = {"offset": seconds, "name": name, "lib": kind[0]}
    try:
        return doc if _same(tz_from_json(doc), tz) else None
    except (ImportError, TypeError, ValueError):
        return None


def _names(tz: Any) -> list[str]:
    """Zone names pandas may know ``tz`` by."""
    out = ["UTC"]
    for attr in ("key", "zone"):  # zoneinfo, pytz
        value = getattr(tz, attr, None)
        if isinstance(value, str):
            out.append(value)
    filename = getattr(tz, "_filename", None)  # dateutil's tzfile
    if isinstance(filename, str):
        parts = filename.split("zoneinfo/")
        out.append("dateutil/" + parts[-1].lstrip("/"))
    return out


def tz_from_json(doc: Any) -> Any:
    """The tzinfo :func:`tz_to_json` described."""
    if isinstance(doc, str):
        return pd.DatetimeTZDtype("ns", doc).tz
    seconds, name, lib = int(doc["offset"]), doc["name"], doc["lib"]
    try:
        return _BUILD[lib](seconds, name)
    except ImportError:  # the library is gone: the same offset, from the standard library
        return _stdlib(seconds, name)
