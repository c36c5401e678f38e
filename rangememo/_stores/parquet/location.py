"""From what a user passes (a path, ``file://``, ``s3://bucket/prefix``) to a medium."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..._errors import InvalidOption
from .local.medium import LocalMedium
from .medium import Medium

__all__ = ["is_local", "open_medium", "url_scheme"]

#: Object stores: the scheme and where its medium lives.
SCHEMES = ("s3",)


def url_scheme(path: str | os.PathLike[str]) -> str | None:
    """The scheme of a URL (``"s3"`` for ``"s3://bucket/x"``), ``None`` for a path."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]+)://", os.fspath(path))
    return match.group(1).lower() if match else None


def is_local(path: str | os.PathLike[str]) -> bool:
    return url_scheme(path) in (None, "file")


def local_path(path: str | os.PathLike[str]) -> Path:
    """The absolute directory of a path or ``file://`` URL."""
    text = os.fspath(path)
    if url_scheme(text) == "file":
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidOption(f"{text!r}: a file:// URL of another host ({parsed.netloc!r})")
        text = unquote(parsed.path)
    return Path(os.path.abspath(Path(text).expanduser()))


def open_medium(
    path: str | os.PathLike[str],
    storage_options: dict[str, Any] | None = None,
    *,
    durable: bool = True,
    lease: float = 30.0,
) -> Medium:
    """The medium for a store location; ``InvalidOption`` names an unknown scheme."""
    scheme = url_scheme(path)
    if scheme in (None, "file"):
        if storage_options:
            raise InvalidOption(
                f"storage_options={storage_options!r}: only for object stores (s3://...), "
                f"not for the directory {os.fspath(path)!r}"
            )
        return LocalMedium(local_path(path), durable=durable)
    if scheme == "s3":
        from .s3.medium import S3Medium
        from .s3.options import S3Location

        return S3Medium(S3Location.from_url(os.fspath(path), storage_options), lease=lease)
    raise InvalidOption(
        f"{os.fspath(path)!r}: the scheme {scheme!r} is not supported; "
        "pass a directory, a file:// URL or s3://bucket/prefix"
    )
