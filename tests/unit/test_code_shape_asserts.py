"""One fact per assert: ``assert a and b`` hides which of the two broke, so no test chains facts with ``and``.

Write one assert per fact, or a helper whose own asserts name each fact.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
CHECKED = [ROOT / "tests", ROOT / "bench", ROOT / "infra", ROOT / "layers", ROOT / "functions"]


def chained_asserts(source: str) -> list[int]:
    """The line of every ``assert`` whose test is an ``and`` chain."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Assert)
        and isinstance(node.test, ast.BoolOp)
        and isinstance(node.test.op, ast.And)
    ]


def test_the_walk_finds_a_chained_assert() -> None:
    source = "def test_x():\n    x = 1\n    assert x == 1 and (x > 0 or x < 0)\n    assert x or x\n"

    assert chained_asserts(source) == [3]


def test_no_assert_chains_facts_with_and() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in CHECKED
        for path in sorted(folder.rglob("*.py"))
        if ".venv" not in path.parts
        for line in chained_asserts(path.read_text(encoding="utf-8"))
    ]

    assert found == [], "one assert per fact (or a helper that names each): " + ", ".join(found)
