"""docs/README.md maps every module to its doc and its tests: a new module without a row fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
MAP = ROOT / "docs" / "README.md"
FOLDERS = [
    ROOT / "layers" / "dunning" / "dunning",
    ROOT / "layers" / "dunning" / "dunning" / "adapters",
    ROOT / "infra" / "dunning_local",
    ROOT / "bench",
]


def test_every_module_has_a_row_in_the_map() -> None:
    text = MAP.read_text(encoding="utf-8")
    modules = [
        f"{folder.relative_to(ROOT)}/{path.name}"
        for folder in FOLDERS
        for path in sorted(folder.glob("*.py"))
        if path.name != "__init__.py"
    ]

    missing = [m for m in modules if f"`{Path(m).stem}`" not in text]

    assert missing == []


def test_every_handler_has_a_row_in_the_map() -> None:
    text = MAP.read_text(encoding="utf-8")

    missing = [d.name for d in sorted((ROOT / "functions").iterdir()) if f"`functions/{d.name}`" not in text]

    assert missing == []


def test_every_test_file_the_map_names_exists() -> None:
    named = set(re.findall(r"\b(test_\w+\.py)\b", MAP.read_text(encoding="utf-8")))
    existing = {p.name for p in (ROOT / "tests").rglob("test_*.py")}

    assert sorted(named - existing) == []


def test_the_map_links_the_resource_contract() -> None:
    assert "(contract-resources.md)" in MAP.read_text(encoding="utf-8")
