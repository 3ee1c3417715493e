"""The packaged data parses the same with the fast loader as with PyYAML's pure-Python safe loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dunning import yamlio

DATA = Path(yamlio.__file__).parent / "data"
FILES = sorted(DATA.rglob("*.yaml"))


def test_the_c_parser_is_in_use_here() -> None:
    assert yamlio.SafeLoader is yaml.CSafeLoader


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(DATA)))
def test_every_packaged_file_parses_as_with_the_pure_python_loader(path: Path) -> None:
    text = path.read_text(encoding="utf-8")

    assert yamlio.safe_load(text) == yaml.safe_load(text)


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(yaml.YAMLError):
        yamlio.safe_load("!!python/object/apply:os.system ['true']")


def test_a_syntax_error_is_a_yaml_error() -> None:
    with pytest.raises(yaml.YAMLError):
        yamlio.safe_load("a: [1, 2")
