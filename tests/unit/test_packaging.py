"""The Lambda layer carries exactly the runtime dependencies the project declares."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _requirements(lines: list[str]) -> set[str]:
    return {line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()}


def test_layer_requirements_match_the_project_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    layer = (ROOT / "layers" / "dunning" / "requirements.txt").read_text(encoding="utf-8").splitlines()

    assert _requirements(layer) == set(project["dependencies"])


def test_boto3_is_left_to_the_lambda_runtime_but_pinned_for_development() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    assert not any(dep.startswith("boto3") for dep in project["dependencies"])
    assert any(dep.startswith("boto3==") for dep in project["optional-dependencies"]["dev"])


def test_the_layer_package_is_the_one_tests_import() -> None:
    import dunning

    assert Path(dunning.__file__).resolve().parent == (ROOT / "layers" / "dunning" / "dunning").resolve()
