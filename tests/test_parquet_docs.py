"""The Python examples in docs/parquet.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parent.parent / "docs" / "parquet.md"
FENCE = re.compile(r"^```python[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)


def test_parquet_doc_examples_run_in_order():
    """Every ```python block of docs/parquet.md, in one namespace, top to bottom."""
    text = DOC.read_text(encoding="utf-8")
    blocks = list(FENCE.finditer(text))
    assert len(blocks) >= 2
    namespace = {"__name__": "example_parquet"}
    for match in blocks:
        line = text.count("\n", 0, match.start("code"))
        exec(compile("\n" * line + match["code"], str(DOC), "exec"), namespace)
