"""Test-session setup: nothing a test does may land in the user's real cache."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import settings

# S3 fixtures (a session SeaweedFS server, fault proxy); started only on use.
pytest_plugins = ["s3fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    # The default store (a ParquetStore) lives under $RANGEMEMO_CACHE_DIR; point
    # it at a throwaway directory for the whole run, subprocesses included.
    os.environ["RANGEMEMO_CACHE_DIR"] = tempfile.mkdtemp(prefix="rangememo-tests-")


# Timing is measured in benchmarks, not here: on a loaded 2-core CI machine a
# per-example deadline only makes property tests flaky.
settings.register_profile("rangememo", deadline=None)
settings.load_profile("rangememo")
