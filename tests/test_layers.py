"""The package's layers and their dependency rules (docs/architecture.md), read from the source.

Every relative and absolute import of a ``rangememo`` module, at module level
or inside a function, is an edge. The rules:

* ``_core`` imports nothing of the package but ``_errors`` and ``_warn``;
* ``_engine`` imports ``_core``, the shared modules, and of the stores only
  the interface ``_stores.base``;
* ``_stores`` never import the engine, the decorator or the CLI;
* no import cycles between modules (imports for type checkers only excepted).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PKG = Path(__file__).parent.parent / "rangememo"
SHARED = {"_errors", "_warn"}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(name: str, path: Path) -> set[str]:
    """The package modules ``name`` imports (dotted, relative to ``rangememo``)."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if name else []
    package = here if is_pkg else here[:-1]
    out: set[str] = set()
    tree = ast.parse(path.read_text())
    # Imports only for type checkers are not edges at run time.
    typing_only = {
        id(inner)
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            mod = [*base, *(node.module.split(".") if node.module else [])]
            if node.module is None:
                out.update(".".join([*mod, a.name]) for a in node.names)
            else:
                out.add(".".join(mod))
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "rangememo" or node.module.startswith("rangememo."):
                out.add(node.module.removeprefix("rangememo").lstrip("."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("rangememo."):
                    out.add(alias.name.removeprefix("rangememo."))
    return {m for m in out if m}


GRAPH = {name: _imports(name, path) for name, path in _modules()}


def _layer(module: str) -> str:
    return module.split(".")[0]


def test_the_layers_exist() -> None:
    for layer in ("_core", "_engine", "_stores", "_stores.parquet", "_stores.base"):
        assert layer in GRAPH, layer


def test_core_imports_nothing_of_the_package_but_shared_modules() -> None:
    for module, deps in GRAPH.items():
        if _layer(module) == "_core":
            bad = {d for d in deps if _layer(d) not in {"_core", *SHARED}}
            assert not bad, f"{module} imports {sorted(bad)}"


def test_engine_knows_only_the_store_interface() -> None:
    for module, deps in GRAPH.items():
        if _layer(module) == "_engine":
            stores = {d for d in deps if _layer(d) == "_stores" and d != "_stores.base"}
            above = {
                d
                for d in deps
                if _layer(d) in {"_decorator", "_wrapper", "_awrapper", "_bound", "_cli", ""}
            }
            assert not stores, f"{module} imports concrete stores {sorted(stores)}"
            assert not above, f"{module} imports {sorted(above)}"


def test_stores_import_neither_engine_nor_front_door() -> None:
    for module, deps in GRAPH.items():
        if _layer(module) == "_stores":
            bad = {
                d
                for d in deps
                if _layer(d) in {"_engine", "_decorator", "_wrapper", "_awrapper", "_bound", "_cli"}
            }
            assert not bad, f"{module} imports {sorted(bad)}"


def test_no_import_cycles() -> None:
    known = set(GRAPH)

    def resolve(dep: str) -> str | None:
        while dep and dep not in known:
            dep = dep.rpartition(".")[0]
        return dep or None

    edges = {m: {r for d in deps if (r := resolve(d)) and r != m} for m, deps in GRAPH.items()}
    # Packages' __init__ re-exports are allowed to point down into their own children.
    for m in edges:
        edges[m] = {d for d in edges[m] if not d.startswith(m + ".")} if m else set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d) :], d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
