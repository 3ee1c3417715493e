"""Deployment sizes: the Lambda layer unzipped (its dependencies + the ``dunning`` package) and each
function's own package (``functions/<dir>``, the CodeUri).

Two layers are measured, both from wheels for ``manylinux2014_aarch64`` / CPython 3.13:

- ``built_layer``: what ``sam build`` ships, made by the same code (``layers/dunning/build_layer.py``,
  which the layer's ``build-DunningLayer`` make target runs): no runtime packages, Babel's data for the
  template languages only, no phonenumbers geocoder/carrier data, and CPython 3.13 bytecode when a 3.13
  interpreter is at hand (``$LAYER_PYTHON``; ``bytecode_bytes`` says how much, 0 without).
  ``layer_with_tracer_sdk`` is the same figure (the layer carries the X-Ray SDK, as ``Tracing: Active``
  needs), kept under that name for the report.
- ``declared_layer``: ``pip install --target`` of ``layers/dunning/requirements.txt`` as it comes,
  what ``BuildMethod: python3.13`` shipped before, into ``out/bench/layer/<hash>``.

pip results are kept between runs (PyPI is only asked when the requirements change). ``--no-compile``:
what is measured is what SAM zips. Without network the sizes are taken from the installed files of the
same dependency closure in this virtual environment instead (``source: venv``), which is a different
platform and Python, so close but not exact, and unpruned.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import importlib.util
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "layers" / "dunning" / "requirements.txt"
PACKAGE = REPO / "layers" / "dunning" / "dunning"
FUNCTIONS = REPO / "functions"
OUT = REPO / "out" / "bench" / "layer"
LAYER_CACHE = REPO / "out" / "layer-cache"
# Tracer() imports it; see the module docstring.
TRACER_EXTRA = ("aws-xray-sdk>=2.8,<3",)
# What the Lambda Python runtime already has on its path (boto3 and its dependencies). pip does not
# know that, so a SAM-built layer carries its own copies when a requirement pulls them in.
RUNTIME_PROVIDES = frozenset(
    canonicalize_name(n)
    for n in ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
)
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function + layers, unzipped


def load_build_layer() -> ModuleType:
    """``layers/dunning/build_layer.py`` (a script SAM runs, not an installed module)."""
    path = REPO / "layers" / "dunning" / "build_layer.py"
    spec = importlib.util.spec_from_file_location("build_layer", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def requirement_lines(path: Path = REQUIREMENTS) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def tree_size(root: Path) -> int:
    """Bytes of the files under ``root``, bytecode caches left out."""
    return sum(
        p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def function_sizes() -> dict[str, int]:
    return {d.name: tree_size(d) for d in sorted(FUNCTIONS.iterdir()) if d.is_dir()}


def closure(requirements: Iterable[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``requirements`` need, transitively (extras followed, markers
    evaluated for this interpreter)."""
    found: dict[str, metadata.Distribution] = {}
    pending = [(Requirement(r), "") for r in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        first_time = name not in found
        found[name] = dist
        wanted_extras = set(requirement.extras) | {""}
        if first_time or requirement.extras:
            for line in dist.requires or []:
                child = Requirement(line)
                for wanted in wanted_extras:
                    pending.append((child, wanted))
    return found


def distribution_size(dist: metadata.Distribution) -> int:
    total = 0
    for file in dist.files or []:
        if "__pycache__" in file.parts or str(file).endswith(".pyc"):
            continue
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total


def _venv_layer(requirements: list[str]) -> dict[str, Any]:
    by_distribution = {name: distribution_size(dist) for name, dist in sorted(closure(requirements).items())}
    return {"source": "venv", "by_distribution": by_distribution}


def _pip_layer(requirements: list[str]) -> dict[str, Any]:
    digest = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:12]
    target = OUT / digest
    marker = target / ".complete"
    if not marker.exists():
        target.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--target", str(target), "--upgrade",
            "--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.13",
            "--only-binary=:all:", *requirements,
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=600)
        marker.touch()
    by_distribution: dict[str, int] = {}
    for info in sorted(target.glob("*.dist-info")):
        dist = metadata.Distribution.at(info)
        name = canonicalize_name(dist.metadata["Name"])
        by_distribution[name] = sum(
            (target / str(f)).stat().st_size
            for f in dist.files or []
            if (target / str(f)).is_file() and "__pycache__" not in f.parts
        )
    return {"source": "pip (manylinux2014_aarch64, CPython 3.13)", "by_distribution": by_distribution}


def layer(requirements: list[str], *, use_pip: bool = True) -> dict[str, Any]:
    """The layer ``requirements`` make, with the ``dunning`` package; sizes in bytes."""
    measured: dict[str, Any] | None = None
    if use_pip:
        try:
            measured = _pip_layer(requirements)
        except (subprocess.SubprocessError, OSError) as exc:
            measured = None
            note = f"pip failed ({exc.__class__.__name__}); measured from the virtual environment"
    if measured is None:
        measured = _venv_layer(requirements)
        if use_pip:
            measured["note"] = note
    by_distribution = dict(sorted(measured["by_distribution"].items(), key=lambda kv: -kv[1]))
    dependencies = sum(by_distribution.values())
    package = tree_size(PACKAGE)
    duplicated = {k: v for k, v in by_distribution.items() if k in RUNTIME_PROVIDES}
    return {
        "source": measured["source"],
        **({"note": measured["note"]} if "note" in measured else {}),
        "requirements": requirements,
        "dependencies_bytes": dependencies,
        "dunning_package_bytes": package,
        "total_bytes": dependencies + package,
        "by_distribution": by_distribution,
        "runtime_provided_but_bundled": duplicated,
    }


def _dist_sizes(target: Path) -> dict[str, int]:
    """Bytes per distribution of what is left in ``target`` (pruned files are gone from the disk)."""
    sizes: dict[str, int] = {}
    for info in sorted(target.glob("*.dist-info")):
        dist = metadata.Distribution.at(info)
        files = (target / str(f) for f in dist.files or [] if "__pycache__" not in f.parts)
        sizes[canonicalize_name(dist.metadata["Name"])] = sum(p.stat().st_size for p in files if p.is_file())
    return sizes


def built_layer() -> dict[str, Any]:
    """The layer ``sam build`` ships (``build_layer.py`` for arm64 / CPython 3.13); sizes in bytes."""
    build = load_build_layer()
    target = build.build(OUT / "built", platform=build.LAMBDA_PLATFORM, cache=LAYER_CACHE)
    package = tree_size(target / "dunning")
    by_distribution = dict(sorted(_dist_sizes(target).items(), key=lambda kv: -kv[1]))
    # Bytecode ships too (compiled by CPython 3.13 when the build machine has it; see build_layer.py).
    bytecode = sum(p.stat().st_size for p in target.rglob("*.pyc"))
    total = tree_size(target) + bytecode
    locale_data = list((target / "babel" / "locale-data").glob("*.dat"))
    return {
        "source": "build_layer.py (manylinux2014_aarch64, CPython 3.13)",
        "requirements": requirement_lines(),
        "dependencies_bytes": total - package,
        "dunning_package_bytes": package,
        "bytecode_bytes": bytecode,
        "total_bytes": total,
        "by_distribution": by_distribution,
        "runtime_provided_but_bundled": {k: v for k, v in by_distribution.items() if k in RUNTIME_PROVIDES},
        "babel_locales_with_data": sum(1 for p in locale_data if p.stat().st_size),
        "babel_locales_emptied": sum(1 for p in locale_data if not p.stat().st_size),
    }


def run(*, use_pip: bool = True) -> dict[str, Any]:
    declared = requirement_lines()
    functions = function_sizes()
    declared_layer = layer(declared, use_pip=use_pip)
    working_layer: dict[str, Any] | None = None
    if use_pip:
        try:
            working_layer = built_layer()
        except (subprocess.SubprocessError, OSError):
            working_layer = None
    if working_layer is None:
        working_layer = layer([*declared, *TRACER_EXTRA], use_pip=False)
    largest_function = max(functions.values()) if functions else 0
    return {
        "declared_layer": declared_layer,
        "built_layer": working_layer,
        "layer_with_tracer_sdk": working_layer,
        "functions_bytes": functions,
        "largest_deployment_bytes": working_layer["total_bytes"] + largest_function,
        "lambda_unzipped_limit_bytes": LAMBDA_UNZIPPED_LIMIT,
    }


def main() -> None:
    import json

    print(json.dumps(run(use_pip="--venv" not in sys.argv), indent=2))


if __name__ == "__main__":
    main()
