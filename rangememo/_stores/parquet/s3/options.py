"""Where an ``s3://`` store lives and how to reach it.

Credentials, region and endpoint come from the standard AWS environment
variables, read when the store is opened (so a worker on another machine uses
its own), or from ``storage_options``, which win over the environment:

========================  =================================  =========================
variable                  ``storage_options`` key            meaning
========================  =================================  =========================
``AWS_ACCESS_KEY_ID``     ``access_key_id``                  credentials
``AWS_SECRET_ACCESS_KEY`` ``secret_access_key``
``AWS_SESSION_TOKEN``     ``session_token``
``AWS_REGION``            ``region``                         (``AWS_DEFAULT_REGION`` too)
``AWS_ENDPOINT_URL``      ``endpoint``                       an S3-compatible server
``AWS_ALLOW_HTTP``        ``allow_http``                     plain HTTP (a local server)
========================  =================================  =========================

``timeout`` (seconds per request, default 30), ``connect_timeout`` (5) and
``max_retries`` (3, for 5xx answers and dropped connections, with backoff,
within ``retry_timeout``, 20 s) bound how long a call can wait for storage.
Any other key is passed to obstore's ``S3Config`` as it is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from typing import Any

from ...._errors import InvalidOption

__all__ = ["S3Location", "parse_s3_url"]

_ENV = {
    "access_key_id": ("AWS_ACCESS_KEY_ID",),
    "secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "session_token": ("AWS_SESSION_TOKEN",),
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "endpoint": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"),
    "allow_http": ("AWS_ALLOW_HTTP",),
}
_CLIENT = {"allow_http", "timeout", "connect_timeout"}
_RETRY = {"max_retries", "retry_timeout"}
_DEFAULTS: dict[str, Any] = {
    "timeout": 30.0,
    "connect_timeout": 5.0,
    "max_retries": 3,
    "retry_timeout": 20.0,
}
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``("bucket", "prefix")`` of ``s3://bucket/prefix``; ``InvalidOption`` names a bad one."""
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.match(bucket):
        raise InvalidOption(
            f"ParquetStore({url!r}): {bucket!r} is not an S3 bucket name "
            "(3-63 lowercase letters, digits, '.' or '-'); expected s3://bucket/prefix"
        )
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise InvalidOption(
            f"ParquetStore({url!r}): the prefix {prefix!r} has an empty or dot part"
        )
    return bucket, prefix


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _seconds(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidOption(f"storage_options[{name!r}]={value!r}: expected seconds") from None
    if not out > 0:
        raise InvalidOption(f"storage_options[{name!r}]={value!r}: expected seconds > 0")
    return out


@dataclasses.dataclass(frozen=True)
class S3Location:
    """A bucket, a prefix in it, and the options given (never the environment's)."""

    bucket: str
    prefix: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str, options: dict[str, Any] | None = None) -> S3Location:
        bucket, prefix = parse_s3_url(url)
        opts = dict(options or {})
        for key in ("timeout", "connect_timeout", "retry_timeout"):
            if key in opts:
                _seconds(key, opts[key])
        if "max_retries" in opts and (
            not isinstance(opts["max_retries"], int) or opts["max_retries"] < 0
        ):
            raise InvalidOption(
                f"storage_options['max_retries']={opts['max_retries']!r}: expected an int >= 0"
            )
        return cls(bucket, prefix, opts)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def settings(self) -> dict[str, Any]:
        """The options in force: ``storage_options`` over the environment over defaults."""
        out: dict[str, Any] = dict(_DEFAULTS)
        for key, names in _ENV.items():
            for name in names:
                if os.environ.get(name):
                    out[key] = os.environ[name]
                    break
        out.update(self.options)
        return out

    def open(self) -> Any:
        """An ``obstore`` S3Store for the bucket and prefix."""
        try:
            from obstore.store import S3Store
        except ImportError:
            raise InvalidOption(
                f"ParquetStore({self.url!r}) needs obstore: pip install 'rangememo[s3]'"
            ) from None
        settings = self.settings()
        client: dict[str, Any] = {}
        retry: dict[str, Any] = {}
        config: dict[str, Any] = {}
        for key, value in settings.items():
            if key == "allow_http":
                client[key] = _truthy(value)
            elif key in _CLIENT:
                client[key] = dt.timedelta(seconds=_seconds(key, value))
            elif key == "max_retries":
                retry[key] = int(value)
            elif key == "retry_timeout":
                retry[key] = dt.timedelta(seconds=_seconds(key, value))
            else:
                config[key] = value
        config.setdefault("region", "us-east-1")
        if "endpoint" in config:
            # Path-style requests: what S3-compatible servers on a host:port expect.
            config.setdefault("virtual_hosted_style_request", False)
        return S3Store(
            self.bucket,
            prefix=self.prefix or None,
            config=config,  # type: ignore[arg-type]
            client_options=client,  # type: ignore[arg-type]
            retry_config=retry,  # type: ignore[arg-type]
        )
