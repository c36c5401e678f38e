"""Keys (and Series names) as type-tagged JSON, so key.json can give them back.

``key_to_json`` keeps what JSON would blur: a tuple stays a tuple, a date a
date, an ``np.int64`` an ``np.int64``. A value with no such form raises
``TypeError``; the store then keeps only the key's ``repr`` (and its hash).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["key_from_json", "key_to_json"]


def key_to_json(value: Any) -> Any:
    """A JSON-able, type-tagged form of a key; ``TypeError`` if there is none."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return {"numpy": value.dtype.str, "value": key_to_json(value.item())}
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, tuple):
        return {"tuple": [key_to_json(v) for v in value]}
    if isinstance(value, frozenset):
        return {"frozenset": [key_to_json(v) for v in value]}
    if isinstance(value, pd.Timestamp):
        return {"timestamp": value.isoformat(), "tz": None if value.tz is None else str(value.tz)}
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    raise TypeError(f"{type(value).__qualname__} has no JSON form")


def key_from_json(data: Any) -> Hashable:
    """The key :func:`key_to_json` encoded."""
    if not isinstance(data, dict):
        return data  # type: ignore[no-any-return]
    if "tuple" in data:
        return tuple(key_from_json(v) for v in data["tuple"])
    if "frozenset" in data:
        return frozenset(key_from_json(v) for v in data["frozenset"])
    if "float" in data:
        return float(data["float"])
    if "numpy" in data:
        scalar: Any = np.dtype(data["numpy"]).type
        return scalar(key_from_json(data["value"]))  # type: ignore[no-any-return]
    if "timestamp" in data:
        ts = pd.Timestamp(data["timestamp"])
        return ts.tz_convert(data["tz"]) if data["tz"] is not None else ts
    if "datetime" in data:
        return dt.datetime.fromisoformat(data["datetime"])
    if "date" in data:
        return dt.date.fromisoformat(data["date"])
    raise ValueError(f"not an encoded key: {data!r}")
