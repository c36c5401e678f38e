"""The documentation site builds with ``mkdocs build --strict`` (as ``make docs`` runs it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocstrings_handlers.python", reason="the [docs] extra is not installed")

ROOT = Path(__file__).parent.parent


def test_mkdocs_strict_build(tmp_path: Path) -> None:
    """Any warning (broken link, unparsable docstring, page outside the nav) fails."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = (tmp_path / "api" / "index.html").read_text()
    # The reference is generated from the docstrings, not an empty page.
    assert "max_span" in api and "InvalidOption" in api and "FakeProvider" in api
    assert (tmp_path / "recipes" / "index.html").exists()


def test_docs_fail_on_a_warning(tmp_path: Path) -> None:
    """--strict really turns a warning into a failure (a link to a missing page)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\nSee [nowhere](missing.md).\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\ndocs_dir: docs\n")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "missing.md" in done.stderr


def test_decisions_names_only_files_the_repo_has() -> None:
    """docs/decisions.md stands on its own: every path it names exists here."""
    import re

    text = (ROOT / "docs" / "decisions.md").read_text()
    named = set(re.findall(r"`((?:rangememo|tests|examples|benchmarks|docs)/[\w./-]+)`", text))
    named |= set(re.findall(r"\]\(([\w./-]+\.md)\)", text))
    missing = [
        p for p in sorted(named) if not (ROOT / p).exists() and not (ROOT / "docs" / p).exists()
    ]
    assert not missing, missing
    assert "CONTRACT.md" not in text  # the design notes are not part of the repository


def test_install_claims_no_registry_release() -> None:
    """rangememo is not on a package index: the docs install from a clone or a wheel."""
    import re

    for name in ["README.md", "docs/index.md", "docs/sharing.md", "docs/recipes.md"]:
        text = (ROOT / name).read_text()
        assert not re.search(r"pip install ['\"]?rangememo\b", text), name
