"""Which entries a decorated function owns: its default namespace, its code fingerprint.

Rules (docs/usage.md, "Which entries a function owns"):

* a module-level function of an importable module: ``module.qualname``, as
  always (caches on disk stay found);
* a function of ``__main__``: its script's absolute path is part of the name;
  without a file (a notebook, the REPL) its code fingerprint is;
* a nested function (``<locals>``) or a lambda: its code fingerprint is part of
  the name, since two of them may share a qualname and differ;
* what a closure, ``functools.partial``, bound method or callable object carries
  (its cells, arguments, ``self``): plain values (numbers, strings, enums,
  module-level functions and classes, ...) by value. Other objects (a provider
  client, a dict) have no stable identity: in an in-process store they count by
  object identity (two closures over one client share, over two do not); a
  persistent store refuses them at decoration, asking for ``namespace=``.

The fingerprint hashes bytecode, constants, names and defaults (recursively
for nested code), so line numbers, whitespace, comments and the docstring do
not count; a new Python minor version, whose bytecode differs, does.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import inspect
import itertools
import os
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

from .._errors import InvalidOption

__all__ = ["default_namespace", "describe", "fingerprint"]

_PLAIN = (type(None), bool, int, float, complex, str, bytes, dt.date, dt.time, dt.timedelta)


def describe(fn: Any) -> str:
    """A readable name of any callable, for namespaces and messages."""
    if isinstance(fn, functools.partial):
        return f"functools.partial({describe(fn.func)})"
    if isinstance(fn, types.MethodType):
        return describe(fn.__func__)
    owner = fn if hasattr(fn, "__qualname__") else type(fn)
    module = getattr(owner, "__module__", None) or "<unknown>"
    name = f"{module}.{getattr(owner, '__qualname__', repr(owner))}"
    return name if owner is fn else f"{name} instance"


def _parts(fn: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """The function whose code runs, and the state the callable carries with it."""
    if isinstance(fn, functools.partial):
        inner, state = _parts(fn.func)
        state += [(f"partial argument {i}", a) for i, a in enumerate(fn.args)]
        return inner, state + [(f"partial {k}=", v) for k, v in sorted(fn.keywords.items())]
    if isinstance(fn, types.MethodType):
        inner, state = _parts(fn.__func__)
        return inner, [("self", fn.__self__), *state]
    if not isinstance(fn, (types.FunctionType, types.BuiltinFunctionType, type)):
        call = type(fn).__call__  # type: ignore[operator,unused-ignore]
        return call, [("the instance", fn)]
    state = []
    names = getattr(getattr(fn, "__code__", None), "co_freevars", ())
    for name, cell in zip(names, getattr(fn, "__closure__", None) or (), strict=False):
        try:
            state.append((name, cell.cell_contents))
        except ValueError:  # a cell not yet filled
            state.append((name, None))
    return fn, state


def default_namespace(fn: Any, persistent: bool) -> str:
    """The namespace ``fn`` gets without ``namespace=`` (the version is added later)."""
    inner, state = _parts(fn)
    qualname = getattr(inner, "__qualname__", "")
    base = describe(fn)
    local = "<locals>" in qualname or "<lambda>" in qualname
    if getattr(inner, "__module__", None) == "__main__":
        path = _main_file()
        if path is not None:
            base += f"[{path}]"
        else:
            local = True  # no file to tell scripts apart: the code does
    if local:
        base += f"[code {fingerprint(fn)[:12]}]"
    elif isinstance(fn, types.FunctionType):
        # A module-level function (even one wrapped by another decorator, whose
        # cells are the wrapped function) keeps ``module.qualname``.
        return base
    if not state:
        return base
    tokens = [(name, _token(value)) for name, value in state]
    loose = [(n, v) for (n, v), (_, t) in zip(state, tokens, strict=True) if t is None]
    if loose and persistent:
        name, value = loose[0]
        raise InvalidOption(
            f"{base} carries {name}={_short(value)} ({type(value).__qualname__}), which "
            "rangememo cannot tell apart from another such object across processes, so two "
            "of these made by one factory would share entries in a persistent store. "
            'Pass namespace="..." naming what makes this one distinct '
            '(for example namespace=f"bars-{provider.name}"), or use a MemoryStore'
        )
    text = repr(
        [
            (n, t if t is not None else _identity(v))
            for (n, v), (_, t) in zip(state, tokens, strict=True)
        ]
    )
    return f"{base}[{hashlib.sha256(text.encode()).hexdigest()[:12]}]"


def _main_file() -> str | None:
    main = sys.modules.get("__main__")
    for path in (
        getattr(main, "__file__", None),
        getattr(main, "__vsc_ipynb_file__", None),  # a notebook in VS Code
        os.environ.get("JPY_SESSION_NAME"),  # a notebook under Jupyter Server
    ):
        if isinstance(path, str) and path:
            return os.path.abspath(path)
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _token(value: Any) -> str | None:
    """A process-independent text for a plain value; ``None`` for anything else."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__module__}.{type(value).__qualname__}.{value.name}"
    if isinstance(value, _PLAIN):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, (tuple, frozenset)):
        inner = [_token(v) for v in value]
        if any(t is None for t in inner):
            return None
        items = sorted(inner) if isinstance(value, frozenset) else inner  # type: ignore[type-var]
        return f"{type(value).__name__}:{items!r}"
    if isinstance(value, types.ModuleType):
        return f"module:{value.__name__}"
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        qualname = getattr(value, "__qualname__", "")
        if "<locals>" not in qualname and "<lambda>" not in qualname:
            return f"{type(value).__name__}:{value.__module__}.{qualname}"
    return None


# -- identity of objects without a stable form (in-process stores only) --------------------
# id() alone could be reused once an object dies, handing a new client the
# entries of a dead one: a weak reference tells the two apart.
# Reentrant: a collection can run while _identity holds it (allocating the weak
# reference) and call _forget for an object that died, in the same thread.
_lock = threading.RLock()
_seen: dict[int, tuple[weakref.ref[Any], int]] = {}
_serial = itertools.count()


def _identity(value: Any) -> str:
    key = id(value)
    with _lock:
        known = _seen.get(key)
        if known is not None and known[0]() is value:
            return f"object:{known[1]}"
        serial = next(_serial)
        try:
            _seen[key] = (weakref.ref(value, lambda r: _forget(key, r)), serial)
        except TypeError:  # not weakly referenceable: unique to this decoration
            return f"once:{serial}"
        return f"object:{serial}"


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    with _lock:
        known = _seen.get(key)
        if known is not None and known[0] is ref:
            del _seen[key]


# -- the code fingerprint -----------------------------------------------------------------
def fingerprint(fn: Any) -> str:
    """A hash of what ``fn`` runs: unchanged by line numbers, comments or the docstring."""
    inner, state = _parts(fn)
    inner = inspect.unwrap(inner) if callable(inner) else inner
    code = getattr(inner, "__code__", None)
    parts: list[Any] = [sys.version_info[:2]]
    if code is None:  # a builtin: its name is all there is
        parts.append(describe(inner))
    else:
        consts = code.co_consts
        doc = getattr(inner, "__doc__", None)
        if consts and (consts[0] == doc if doc is not None else consts[0] is None):
            consts = consts[1:]  # the docstring (or its None placeholder) is no behaviour
        parts += [_code(code, consts), _defaults(inner)]
    # Plain arguments of a partial are behaviour too (other objects are identity).
    parts.append([(n, _token(v)) for n, v in state if n.startswith("partial ")])
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _code(code: types.CodeType, consts: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
    consts = code.co_consts if consts is None else consts
    return (
        code.co_code,
        code.co_names,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        tuple(_const(c) for c in consts),
    )


def _const(value: Any) -> Any:
    if isinstance(value, types.CodeType):
        return _code(value)
    if isinstance(value, tuple):
        return tuple(_const(v) for v in value)
    if isinstance(value, frozenset):  # iteration order varies with the hash seed
        return ("frozenset", sorted(repr(_const(v)) for v in value))
    return (type(value).__name__, repr(value))


def _defaults(fn: Callable[..., Any]) -> Any:
    values = [
        *(getattr(fn, "__defaults__", None) or ()),
        *sorted((getattr(fn, "__kwdefaults__", None) or {}).items()),
    ]
    return [_token(v) or type(v).__qualname__ for v in values]
