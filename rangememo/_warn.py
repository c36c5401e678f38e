"""Warnings that point at the user's call, not at a line of rangememo.

A fixed ``stacklevel`` breaks as soon as the path to a warning changes, and it
cannot work at all where the warning is raised in a fetch task, a worker
thread or an ``asyncio.to_thread`` hop: the user's frame is not on that stack.
So each call remembers where it came from (:func:`remember_caller`, in a
context variable that tasks and rangememo's worker threads inherit), and
:func:`warn` points at the nearest frame outside rangememo and asyncio on the
live stack, else at that remembered call site.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import importlib.util
import os
import sys
import threading
import warnings
from types import FrameType
from typing import Any

__all__ = ["remember_caller", "warn"]


def _stdlib_dir(name: str) -> str:
    """The directory of package ``name``, located, not imported (a sync-only
    program never loads asyncio)."""
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None and spec.origin else name
    return os.path.dirname(origin) + os.sep


# Frames in rangememo are never "the user's"; nor is the machinery a task or a
# worker thread runs on: reaching it means the user's frame is not on this stack.
_OURS = os.path.dirname(os.path.abspath(__file__)) + os.sep
_MACHINERY = (
    _OURS,
    _stdlib_dir("asyncio"),
    os.path.dirname(concurrent.futures.__file__) + os.sep,
    *(m.__file__ for m in (threading, contextlib, contextvars) if m.__file__),
)

_Site = tuple[str, int, dict[str, Any]]
_caller: contextvars.ContextVar[_Site | None] = contextvars.ContextVar(
    "rangememo_caller", default=None
)


def _outside(frame: FrameType | None, skip: tuple[str, ...]) -> FrameType | None:
    while frame is not None and frame.f_code.co_filename.startswith(skip):
        frame = frame.f_back
    return frame


def remember_caller() -> None:
    """Note the current call's site for warnings raised later in its tasks/threads."""
    frame = _outside(sys._getframe(1), _MACHINERY)
    if frame is not None:
        _caller.set((frame.f_code.co_filename, frame.f_lineno, frame.f_globals))


def warn(message: Warning) -> None:
    """Issue ``message`` attributed to the user's code (see the module docstring)."""
    frame = _outside(sys._getframe(1), (_OURS,))
    if frame is not None and not frame.f_code.co_filename.startswith(_MACHINERY):
        warnings.warn(message, stacklevel=_depth(frame))
        return
    site = _caller.get()
    if site is None:  # nowhere better to point
        warnings.warn(message, stacklevel=2)
        return
    filename, lineno, module_globals = site
    warnings.warn_explicit(
        message,
        type(message),
        filename,
        lineno,
        module=module_globals.get("__name__", "<unknown>"),
        registry=module_globals.setdefault("__warningregistry__", {}),
        module_globals=module_globals,
    )


def _depth(target: FrameType) -> int:
    """The ``stacklevel`` that makes ``warnings.warn`` (called in :func:`warn`) name ``target``."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame is not target:
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level
