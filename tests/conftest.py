"""Test-session setup: nothing a test does may land in the user's real cache."""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # The default store (a ParquetStore) lives under $RANGEMEMO_CACHE_DIR; point
    # it at a throwaway directory for the whole run, subprocesses included.
    os.environ["RANGEMEMO_CACHE_DIR"] = tempfile.mkdtemp(prefix="rangememo-tests-")
