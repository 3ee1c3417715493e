"""Classes in the product package and the local tooling fit on a screen or two (issue 14, STYLE.md).

A class past MAX_CLASS_LINES has grown more than one job; split it by the item or the resource it owns.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("layers", "infra")
MAX_CLASS_LINES = 250


PACKAGE_PARENTS = (ROOT / "layers" / "dunning", ROOT / "infra")


def _module_name(path: Path) -> str:
    """The dotted name a file is imported as (``dunning.x``, ``dunning_local.y``; a script beside the
    packages, such as ``build_layer``, by its own name)."""
    parent = next((p for p in PACKAGE_PARENTS if path.is_relative_to(p)), ROOT)
    parts = list(path.relative_to(parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parent != ROOT else path.relative_to(ROOT).as_posix()


def class_lengths() -> dict[str, int]:
    """Every class under ``layers/`` and ``infra/`` by its dotted name, with its length in lines."""
    lengths: dict[str, int] = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if any(part.startswith(".") or part == "build" for part in path.relative_to(ROOT).parts):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                    name = f"{_module_name(path)}.{node.name}"
                    lengths[name] = node.end_lineno - node.lineno + 1
    return lengths


def test_the_scan_finds_the_product_classes() -> None:
    lengths = class_lengths()
    assert "dunning.inbound.InboundService" in lengths
    assert "dunning_local.simulate.Simulation" in lengths


def test_no_class_in_layers_or_infra_is_over_250_lines() -> None:
    too_long = {name: lines for name, lines in class_lengths().items() if lines > MAX_CLASS_LINES}
    assert too_long == {}, f"classes over {MAX_CLASS_LINES} lines (split them by what they own): {too_long}"
