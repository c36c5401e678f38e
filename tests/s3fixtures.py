"""pytest fixtures for S3 tests against a real SeaweedFS (loaded by conftest.py).

- ``seaweed`` (session): one `weed mini` for the whole run, started only when
  a test first asks for it, with the bucket ``S3_BUCKET`` created.
- ``s3_bucket_url`` (function): ``s3://<bucket>/<fresh prefix>``, with the
  AWS_* variables set (via monkeypatch) so that a client configured from the
  environment alone reaches the server.
- ``fault_proxy`` (function): a FaultProxy in front of the server, with
  AWS_ENDPOINT_URL pointing at it (``s3_bucket_url`` is set up first).

A missing `weed` binary fails these tests (``make test`` installs it); set
RANGEMEMO_SKIP_S3=1 to skip them instead.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest
from faultproxy import FaultProxy
from s3server import SeaweedServer, WeedNotFoundError, find_weed

S3_BUCKET = "rangememo-test"
SKIP_ENV = "RANGEMEMO_SKIP_S3"


def require_weed() -> None:
    """Fail (or skip, under RANGEMEMO_SKIP_S3=1) when `weed` is not installed."""
    try:
        find_weed()
    except WeedNotFoundError as e:
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"{e} ({SKIP_ENV}=1)")
        pytest.fail(f"{e}; or set {SKIP_ENV}=1 to skip the S3 tests", pytrace=False)


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedServer]:
    require_weed()
    with SeaweedServer() as server:
        server.create_bucket(S3_BUCKET)
        yield server


def _prefix(test_name: str) -> str:
    # Readable in the server's listing, unique across tests and reruns.
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40]
    return f"{slug}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def s3_bucket_url(
    seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    if not seaweed.running:
        pytest.fail(f"weed mini died during the session:\n{seaweed.log_tail()}", pytrace=False)
    # The developer's own AWS settings (a profile, a session token, an
    # AWS_ENDPOINT_URL_S3, which wins over AWS_ENDPOINT_URL) must not leak in.
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{S3_BUCKET}/{_prefix(request.node.name)}"


@pytest.fixture
def fault_proxy(
    seaweed: SeaweedServer, s3_bucket_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultProxy]:
    with FaultProxy(seaweed.s3_port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        yield proxy
