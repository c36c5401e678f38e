"""Results and keys as Arrow and JSON, exactly (pure, no I/O; no pickle).

A segment on disk is an Arrow table: the provider's rows (a DataFrame keeps its
index as columns, a Series becomes one column) plus an int64 position column.
Parquet loses a few pandas details on the way (``datetime64[s]`` comes back in
ms, an ``object`` column of strings as ``str``, ``string[python]`` as
``string[pyarrow]``), so a read is conformed to the key's *template*, which is
stored exactly: its Arrow schema (column labels, index layout) plus one dtype
descriptor per column and index level. A template that does not survive that
round trip (a ``category`` column, an unnamed-type Series name) is refused up
front with :class:`UnstorableError`, before anything is written.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..._core.widen import same_dtype
from .arrowenc import frame_table
from .dtypejson import (
    UnstorableError,
    as_dtype,
    conform_frame,
    conform_index,
    dtype_from_json,
    dtype_to_json,
    index_levels,
)
from .keyjson import key_from_json, key_to_json

__all__ = [
    "POS",
    "UnstorableError",
    "decode",
    "encode",
    "template_from_json",
    "template_to_json",
]

#: The int64 position column every segment carries (row-group statistics on it
#: let a reader open only the row groups a window needs).
POS = "__rangememo_pos__"
#: The column a Series' values are stored in.
VALUES = "__rangememo_values__"
#: Schema metadata of a segment: the template of its own piece (each piece keeps
#: its dtypes; the key's template is the widened schema of all of them).
PIECE = b"rangememo.piece"


# -- templates (an empty result with the key's schema) ------------------------------


POLARS = "polars.DataFrame"


def _polars() -> Any:
    """The polars helpers, imported only for a polars key (polars is optional)."""
    from ..._core import polars

    return polars


def _b64(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def _schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def template_to_json(kind: str, template: Any) -> dict[str, Any]:
    """The JSON form of a template; :class:`UnstorableError` unless it reads back exactly."""
    try:
        doc = _template_doc(kind, template)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        if isinstance(exc, UnstorableError):
            raise
        raise UnstorableError(f"cannot store a {kind} with this schema: {exc}") from exc
    problem = _differs(kind, template_from_json(kind, doc), template)
    if problem:
        raise UnstorableError(f"cannot store this {kind} exactly in Parquet: {problem}")
    return doc


def _template_doc(kind: str, template: Any) -> dict[str, Any]:
    if kind == "pyarrow.Table":
        return {"arrow": _b64(template.schema)}
    if kind == POLARS:  # polars keeps its own dtypes (Enum, Categorical) in field metadata
        return {"arrow": _b64(_polars().to_arrow(template).schema)}
    lvls = enumerate(index_levels(template.index))
    index = [dtype_to_json(lvl.dtype, f"index level {i}") for i, lvl in lvls]
    if kind == "Series":
        frame = template.to_frame(name=VALUES)
        return {
            "arrow": _b64(pa.Schema.from_pandas(frame, preserve_index=True)),
            "values": dtype_to_json(template.dtype, "the Series"),
            "index": index,
            "name": key_to_json(template.name),
        }
    columns = [dtype_to_json(t, f"column {c!r}") for c, t in template.dtypes.items()]
    doc: dict[str, Any] = {
        "arrow": _b64(pa.Schema.from_pandas(template, preserve_index=True)),
        "columns": columns,
        "index": index,
    }
    labels = template.columns
    if isinstance(labels, pd.RangeIndex) and not len(labels):  # pd.DataFrame(): "no rows"
        doc["no_columns"] = True
    elif isinstance(labels, pd.RangeIndex):
        # ``pd.DataFrame(ndarray)`` and evenly spaced int labels: Arrow's pandas
        # metadata brings them back as an int64 Index, not the RangeIndex given.
        doc["range_columns"] = [labels.start, labels.stop, labels.step]
    return doc


def template_from_json(kind: str, doc: dict[str, Any]) -> Any:
    """The template :func:`template_to_json` stored."""
    schema = _schema(doc["arrow"])
    if kind == "pyarrow.Table":
        return schema.empty_table()
    if kind == POLARS:
        return _polars().template_from_schema(schema)
    frame = schema.empty_table().to_pandas()
    index = frame.index
    levels = [dtype_from_json(d) for d in doc["index"]]
    arrays = [as_dtype(lvl, d) for lvl, d in zip(index_levels(index), levels, strict=True)]
    if isinstance(index, pd.MultiIndex):
        index = pd.MultiIndex.from_arrays(arrays, names=index.names)
    else:
        index = pd.Index(arrays[0], name=index.name)
    if kind == "Series":
        values = as_dtype(frame[VALUES], dtype_from_json(doc["values"]))
        return pd.Series(values.array, index=index, name=key_from_json(doc["name"]), copy=False)
    dtypes = [dtype_from_json(d) for d in doc["columns"]]
    out = pd.DataFrame(
        {i: as_dtype(frame.iloc[:, i], d).array for i, d in enumerate(dtypes)}, index=index
    )
    if doc.get("no_columns"):
        out.columns = pd.RangeIndex(0)
    elif "range_columns" in doc:
        out.columns = pd.RangeIndex(*doc["range_columns"])
    else:
        out.columns = frame.columns
    return out


def _differs(kind: str, back: Any, template: Any) -> str:
    """What differs between a template and its stored form ('' if nothing)."""
    if kind == "pyarrow.Table":
        ok = back.schema.equals(template.schema, check_metadata=True)
        return "" if ok else f"schema {template.schema} reads back as {back.schema}"
    if kind == POLARS:
        return str(_polars().schema_differs(back, template))
    if kind == "Series":
        if back.name != template.name or not isinstance(back.name, type(template.name)):
            return f"Series name {template.name!r} reads back as {back.name!r}"
        if not same_dtype(back.dtype, template.dtype):
            return f"dtype {template.dtype} reads back as {back.dtype}"
    else:
        try:
            pd.testing.assert_index_equal(back.columns, template.columns, exact=True)
        except AssertionError:
            return f"columns {list(template.columns)!r} read back as {list(back.columns)!r}"
        for c, a, b in zip(template.columns, template.dtypes, back.dtypes, strict=True):
            if not same_dtype(a, b):
                return f"column {c!r} of dtype {a} reads back as {b}"
    t_idx, b_idx = template.index, back.index
    if list(t_idx.names) != list(b_idx.names) or t_idx.nlevels != b_idx.nlevels:
        return f"index names {list(t_idx.names)} read back as {list(b_idx.names)}"
    for t, b in zip(index_levels(t_idx), index_levels(b_idx), strict=True):
        if not same_dtype(t.dtype, b.dtype):
            return f"index dtype {t.dtype} reads back as {b.dtype}"
    return ""


# -- rows -------------------------------------------------------------------------------


def encode(kind: str, data: Any, positions: np.ndarray[Any, Any], piece: Any = None) -> pa.Table:
    """The Arrow table a segment stores for ``data`` (``UnstorableError`` if none).

    ``piece``: the JSON template of ``data`` itself, kept in the schema metadata
    so the segment reads back with its own dtypes.
    """
    try:
        if kind == "pyarrow.Table":
            table = data
        elif kind == POLARS:
            table = _polars().to_arrow(data)
        elif kind == "Series":
            table = pa.Table.from_pandas(data.to_frame(name=VALUES), preserve_index=True)
        else:
            table = frame_table(data)  # from_pandas, faster for dtypes seen before
        if POS in table.column_names:
            raise UnstorableError(f"the result has a column named {POS!r}, reserved by the store")
        table = table.append_column(POS, pa.array(positions, type=pa.int64()))
        if piece is not None:
            meta = dict(table.schema.metadata or {})
            meta[PIECE] = json.dumps(piece, sort_keys=True).encode()
            table = table.replace_schema_metadata(meta)
        return table
    except (pa.ArrowException, TypeError, ValueError) as exc:
        if isinstance(exc, UnstorableError):
            raise
        raise UnstorableError(f"cannot write these rows to Parquet: {exc}") from exc


def piece_template(kind: str, table: pa.Table, seen: dict[bytes, Any]) -> Any:
    """The template a segment's table was written with (``None``: an older segment)."""
    raw = (table.schema.metadata or {}).get(PIECE)
    if raw is None:
        return None
    template = seen.get(raw)
    if template is None:
        if len(seen) > 64:
            seen.clear()
        template = seen[raw] = template_from_json(kind, json.loads(raw))
    return template


def same_template(kind: str, a: Any, b: Any) -> bool:
    """Do two templates describe exactly one schema?"""
    return not _differs(kind, a, b)


def decode(kind: str, table: pa.Table, template: Any) -> Any:
    """Rows read from a segment (position column dropped), exactly as they were written."""
    if kind == "pyarrow.Table":
        wanted = {f.name: f.type for f in template.schema}
        fields = [
            f.with_type(wanted[f.name]) if f.name in wanted and f.type != wanted[f.name] else f
            for f in table.schema
        ]
        target = pa.schema(fields, metadata=table.schema.metadata)
        return table if target.equals(table.schema) else table.cast(target)
    if kind == POLARS:
        return _polars().from_arrow(table, template)
    frame = table.to_pandas()
    if kind == "Series":
        values = frame[VALUES]
        values = as_dtype(values, template.dtype)
        index = conform_index(frame.index, template.index)
        return pd.Series(values.array, index=index, name=template.name, copy=False)
    return conform_frame(frame, template)
