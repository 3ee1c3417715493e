"""No import cycles in ``dunning``, ``dunning_local`` or ``bench``, counting the imports inside functions too.

A cycle hidden in a function body still ties two modules together (neither can change alone, and the
first caller decides which half-initialised module the other sees). Imports under ``if TYPE_CHECKING:``
never run, so they are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGES = {
    "dunning": ROOT / "layers" / "dunning" / "dunning",
    "dunning_local": ROOT / "infra" / "dunning_local",
    "bench": ROOT / "bench",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from pkg import mod`` imports the submodule when there is one.
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {t for t in targets if t in known and t != module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_the_walk_sees_imports_inside_functions() -> None:
    graph = _graph()

    assert "dunning_local.simulate" in graph["dunning_local.cli"], "cli imports simulate inside cmd_demo"


def test_the_walk_finds_a_cycle_when_there_is_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_dunning_or_dunning_local() -> None:
    cycles = _cycles(_graph())

    assert cycles == [], "import cycles (each list imports itself round): " + "; ".join(
        " -> ".join(c) for c in cycles
    )


def test_nothing_imports_the_cli() -> None:
    graph = _graph()

    importers = sorted(name for name, targets in graph.items() if "dunning_local.cli" in targets)

    assert importers == []


def test_only_the_cli_imports_the_commands() -> None:
    graph = _graph()
    commands = {"dunning_local.operate", "dunning_local.simulate"}

    # bench/ drives the demo's embedded stack as a library; the rule is about the local tool itself.
    importers = sorted(
        name for name, targets in graph.items() if targets & commands and name.startswith("dunning_local")
    )

    assert importers == ["dunning_local.cli"]
