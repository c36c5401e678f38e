"""The Python examples in README.md and the docs run as written.

Every fenced block opened with ```` ```python ```` is executed in a fresh
namespace. To show code that cannot run here (a real API, a path on your
machine), put ``<!-- notest -->`` on the line before the fence (invisible on
GitHub and in mkdocs), or open the block with ```` ```python notest ````.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent
DOCUMENTS = ["README.md", "docs/index.md", "docs/usage.md", "docs/testing.md", "docs/control.md"]
FENCE = re.compile(
    r"(?P<mark>^<!--\s*notest\s*-->[ \t]*\n)?"
    r"^```python[ \t]*(?P<tag>\S*)[ \t]*\n(?P<code>.*?)^```[ \t]*$",
    re.M | re.S,
)


def _blocks() -> list[Any]:
    params = []
    for name in DOCUMENTS:
        path = ROOT / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            notest = match["mark"] is not None or match["tag"] == "notest"
            marks = [pytest.mark.skip(reason="marked notest")] if notest else []
            params.append(pytest.param(name, line, match["code"], marks=marks, id=f"{name}:{line}"))
    return params


BLOCKS = _blocks()


def test_readme_has_examples() -> None:
    """The README opens with a runnable example."""
    assert any(p.values[0] == "README.md" and not p.marks for p in BLOCKS)


@pytest.mark.parametrize(("document", "line", "code"), BLOCKS)
def test_example_runs(document: str, line: int, code: str) -> None:
    """A code block runs without error in a fresh namespace."""
    namespace = {"__name__": f"example_{Path(document).stem}_{line}"}
    # Pad with blank lines so tracebacks point at the document's own line numbers.
    exec(compile("\n" * line + code, str(ROOT / document), "exec"), namespace)


def test_quickstart_file_matches_readme() -> None:
    """examples/quickstart.py is the README's first example, word for word."""
    first = next(p.values[2] for p in BLOCKS if p.values[0] == "README.md")
    assert first in (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
