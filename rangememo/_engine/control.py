"""Per-call control: ``.cached``, ``.refresh``, ``offline()``, ``disabled()``, stale rows.

The mode lives in a context variable, so it is local to a thread and to an
asyncio task (a task inherits the mode of the code that created it; a new
thread starts with none). ``RANGEMEMO_OFFLINE``/``RANGEMEMO_DISABLE`` give
the process-wide default; an entered context always wins over them.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any, Literal

from .._errors import CacheWarning, InvalidOption, NotCached, RangememoError
from .._warn import warn
from .bounds import as_string
from .cache import RangeCache
from .options import Request

__all__ = [
    "acached_call",
    "cached_call",
    "disabled",
    "mode",
    "offline",
    "refused",
    "stale",
]

Mode = Literal["online", "offline", "disabled"]

_mode: contextvars.ContextVar[Mode | None] = contextvars.ContextVar("rangememo_mode", default=None)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_parsed: dict[tuple[str | None, str | None], Mode] = {}


def _flag(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidOption(f"{name}={value!r}: set it to 1/true/yes/on or 0/false/no/off (or unset)")


def _from_env() -> Mode:
    env = os.environ
    raw = (env.get("RANGEMEMO_OFFLINE"), env.get("RANGEMEMO_DISABLE"))
    known = _parsed.get(raw)  # parsed once per distinct value: this runs on every call
    if known is not None:
        return known
    off = raw[0] is not None and _flag("RANGEMEMO_OFFLINE", raw[0])
    dis = raw[1] is not None and _flag("RANGEMEMO_DISABLE", raw[1])
    if off and dis:
        raise InvalidOption(
            "RANGEMEMO_OFFLINE and RANGEMEMO_DISABLE are both set: offline answers only "
            "from the cache, disabled never reads it; set one of them"
        )
    result: Mode = "offline" if off else "disabled" if dis else "online"
    _parsed[raw] = result
    return result


def mode() -> Mode:
    """The innermost ``offline()``/``disabled()`` context's mode, else the environment's."""
    current = _mode.get()
    return current if current is not None else _from_env()


@contextlib.contextmanager
def _entered(value: Mode) -> Iterator[None]:
    token = _mode.set(value)
    try:
        yield
    finally:
        _mode.reset(token)


def offline() -> contextlib.AbstractContextManager[None]:
    """Every cached function called in this context answers from the cache only.

    Like calling ``.cached``: a range not wholly covered raises
    :class:`~rangememo.NotCached`, and no provider is ever called. Local to
    the thread and task that enter it (tasks created inside inherit it).
    """
    return _entered("offline")


def disabled() -> contextlib.AbstractContextManager[None]:
    """Every cached function called in this context calls the wrapped function
    directly and touches no store (tests, live trading)."""
    return _entered("disabled")


# -- answering from the cache only ----------------------------------------------


def _not_cached(cache: RangeCache, req: Request, entry: Any, why: str = "") -> NotCached:
    ledger = None
    if entry is not None:
        cache.check_axis(req, entry)
        ledger = entry.ledger
    now = cache.now()
    gaps = ledger.missing(req.lo, req.hi, now) if ledger is not None else [(req.lo, req.hi)]
    if req.lo >= req.hi:  # an empty range of a key with no schema yet
        gaps = []
    missing = [req.axis.bounds(a, b) for a, b in gaps]
    if req.strings:  # in the caller's own form, as the provider would have been asked
        missing = [(as_string(a), as_string(b)) for a, b in missing]
    shown = ", ".join(f"[{a}, {b}]" for a, b in missing) or "none (no schema cached yet)"
    return NotCached(
        f"{cache.name}: key {req.key!r} is not cached over the range asked{why}; "
        f"missing: {shown}. The provider was not called",
        req.key,
        missing,
    )


def _served(cache: RangeCache, req: Request, entry: Any) -> Any:
    served, result = cache.hit(req, cache.view(req, entry))
    if served:
        return result
    raise _not_cached(cache, req, entry)


def cached_call(cache: RangeCache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The answer from the cache alone, or :class:`NotCached` naming what is missing."""
    req = cache.request(args, kwargs)
    return _served(cache, req, cache.store.get(cache.namespace, req.key))


async def acached_call(cache: RangeCache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    req = cache.request(args, kwargs)
    return _served(cache, req, await cache.store.aget(cache.namespace, req.key))


def refused(cache: RangeCache, args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> None:
    """``refresh`` (or ``cached``) cannot be honoured in this mode: say why."""
    req = cache.request(args, kwargs)
    raise _not_cached(cache, req, None, f" ({what})")


# -- stale_if_error ----------------------------------------------------------------


def stale(cache: RangeCache, req: Request, view: Any, exc: Exception) -> tuple[bool, Any]:
    """The stored rows, with a warning, when refetching only the live edge failed.

    Served only if ``stale_if_error=True``, the failure is the provider's (not
    rangememo's own error, nor a cancellation), and the call's range is all
    covered counting expired provisional rows: so what failed was the live edge.
    Otherwise ``(False, None)``: the caller re-raises ``exc``.
    """
    if (
        not cache.options.stale_if_error
        or isinstance(exc, RangememoError)
        or view is None
        or view.rows is None
        or not view.ledger.provisional
        or not view.ledger.covers(req.lo, req.hi, float("-inf"))
    ):
        return False, None
    warn(
        CacheWarning(
            f"{cache.name}: refetching the live edge of key {req.key!r} failed "
            f"({type(exc).__name__}: {exc}); serving the stored provisional rows"
        )
    )
    cache.stats.count(hits=1)
    return True, view.read(req.lo, req.rows_hi, req.tz)
