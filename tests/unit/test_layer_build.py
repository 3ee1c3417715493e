"""The DunningLayer as ``sam build`` builds it (``layers/dunning/Makefile``, target ``build-DunningLayer``).

Two builds of the same make target: for Lambda (``manylinux2014_aarch64``, CPython 3.13), whose files are
checked, and for this interpreter (``LAYER_PLATFORM=host``), the same layer with this machine's compiled
files, which is imported and run (an aarch64/3.13 build cannot be imported here). pip results are cached
under ``out/layer-cache`` by platform and requirements, so a rerun does not ask the package index.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.coldstart import runtime_folder
from bench.sizes import load_build_layer

ROOT = Path(__file__).parents[2]
OUT = ROOT / "out" / "test-layer"
CACHE = ROOT / "out" / "layer-cache"
PROBE = Path(__file__).with_name("layer_probe.py")
EM_AARCH64 = 183  # ELF e_machine of AArch64
LIMIT_BYTES = 40_000_000
BUILD = load_build_layer()


def _lambda_python() -> str | None:
    """A CPython of Lambda's version to compile the layer's bytecode with, if this machine has one."""
    candidates = [shutil.which(f"python{BUILD.LAMBDA_PYTHON}")]
    candidates += [str(p) for p in Path.home().glob(f".pyenv/versions/{BUILD.LAMBDA_PYTHON}*/bin/python3")]
    for candidate in filter(None, candidates):
        os.environ["LAYER_PYTHON"] = candidate
        found = BUILD.find_interpreter(BUILD.LAMBDA_PYTHON)
        del os.environ["LAYER_PYTHON"]
        if found:
            return str(found)
    return None


LAMBDA_PYTHON = _lambda_python()


def _inputs_digest() -> str:
    """What a build depends on: the make target, the script, the requirements and the package."""
    digest = hashlib.sha256()
    layer_dir = ROOT / "layers" / "dunning"
    files = [layer_dir / "Makefile", layer_dir / "build_layer.py", layer_dir / "requirements.txt"]
    files += sorted(
        p for p in (layer_dir / "dunning").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    for path in files:
        digest.update(str(path.relative_to(layer_dir)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _make(platform: str) -> Path:
    artifacts = OUT / platform
    stamp, digest = artifacts / ".inputs", _inputs_digest()
    if stamp.is_file() and stamp.read_text() == digest:
        return artifacts / "python"  # built from the same inputs by an earlier run
    env = {**os.environ, **({"LAYER_PYTHON": LAMBDA_PYTHON} if LAMBDA_PYTHON else {})}
    command = [
        "make", "--no-print-directory", "-C", str(ROOT / "layers" / "dunning"), "build-DunningLayer",
        f"ARTIFACTS_DIR={artifacts}", f"LAYER_CACHE={CACHE}", f"PYTHON={sys.executable}",
        f"LAYER_PLATFORM={platform}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    if done.returncode != 0:
        try:
            urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        except OSError as exc:
            pytest.skip(f"PyPI is unreachable ({exc}); the layer build needs its wheels for {platform}")
        pytest.fail(f"make build-DunningLayer failed:\n{done.stdout}\n{done.stderr}")
    stamp.write_text(digest)
    return artifacts / "python"


@pytest.fixture(scope="module")
def lambda_layer() -> Path:
    return _make(BUILD.LAMBDA_PLATFORM)


@pytest.fixture(scope="module")
def host_layer() -> Path:
    return _make("host")


@pytest.fixture(scope="module")
def runtime() -> Path:
    return runtime_folder(OUT / "runtime")


def _files(layer: Path) -> list[Path]:
    return [p for p in layer.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def _distributions(layer: Path) -> set[str]:
    return {p.name.removesuffix(".dist-info") for p in layer.glob("*.dist-info")}


def _elf_machine(path: Path) -> int | None:
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def test_every_compiled_file_is_aarch64(lambda_layer: Path) -> None:
    compiled = [p for p in _files(lambda_layer) if p.suffix == ".so" or ".so." in p.name]
    other = {
        str(p.relative_to(lambda_layer)): _elf_machine(p) for p in compiled if _elf_machine(p) != EM_AARCH64
    }

    assert any("pydantic_core" in p.parts for p in compiled), "pydantic_core's extension is in the layer"
    assert other == {}


def test_no_package_the_runtime_provides_is_inside(lambda_layer: Path) -> None:
    names = {BUILD.canonical(d.rsplit("-", 1)[0]) for d in _distributions(lambda_layer)}
    top_level = {p.name.removesuffix(".py") for p in lambda_layer.iterdir()}

    assert names & BUILD.RUNTIME_PROVIDED == set()
    assert top_level & {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"} == set()


def test_the_layer_is_at_most_40_mb_unzipped(lambda_layer: Path, host_layer: Path) -> None:
    size = sum(p.stat().st_size for p in lambda_layer.rglob("*") if p.is_file())
    if not any(lambda_layer.rglob("*.pyc")):
        # No CPython 3.13 here to compile it: count the twin's bytecode instead (3.11's, about the same).
        size += sum(p.stat().st_size for p in host_layer.rglob("*.pyc"))

    assert size <= LIMIT_BYTES


def _pyc_missing_or_checked(layer: Path, tag: str) -> list[str]:
    problems = []
    for source in layer.rglob("*.py"):
        if any(part.endswith(".dist-info") for part in source.parts):
            continue
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        if not compiled.is_file():
            problems.append(f"{source.relative_to(layer)}: no {compiled.name}")
        elif int.from_bytes(compiled.read_bytes()[4:8], "little") != 0b01:  # hash-based, unchecked
            problems.append(f"{compiled.relative_to(layer)}: not an unchecked-hash pyc")
    return problems


def test_every_module_is_precompiled_for_lambdas_python(lambda_layer: Path) -> None:
    if LAMBDA_PYTHON is None:
        pytest.skip(f"no CPython {BUILD.LAMBDA_PYTHON} on this machine to compile the layer with")
    tag = f"cpython-{BUILD.LAMBDA_PYTHON.replace('.', '')}"

    assert _pyc_missing_or_checked(lambda_layer, tag) == []


def test_the_twin_is_precompiled_too(host_layer: Path) -> None:
    assert _pyc_missing_or_checked(host_layer, sys.implementation.cache_tag) == []


def test_tracing_keeps_what_it_needs(lambda_layer: Path) -> None:
    # Tracing: Active: Powertools' Tracer loads the X-Ray SDK on a sampled invocation.
    assert {"aws_xray_sdk", "wrapt", "aws_lambda_powertools", "dunning"} <= {
        p.name for p in lambda_layer.iterdir()
    }


def test_babel_keeps_the_template_languages_and_root_in_full(lambda_layer: Path) -> None:
    data = lambda_layer / "babel" / "locale-data"
    languages = {p.stem.split("_")[0] for p in data.glob("*.dat") if p.stat().st_size > 0}

    assert languages == {"root", "en", "es", "zh"}
    assert (data / "fr_CA.dat").stat().st_size == 0, "pruned locales stay known to Babel, with no data"


def test_the_build_targets_what_the_template_declares(lambda_layer: Path) -> None:
    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=_Loader)
    layer = template["Resources"]["DunningLayer"]

    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["CompatibleRuntimes"] == [f"python{BUILD.LAMBDA_PYTHON}"]
    assert BUILD.LAMBDA_PLATFORM.endswith("_aarch64")


def test_the_importable_twin_is_the_same_layer(lambda_layer: Path, host_layer: Path) -> None:
    def pure(layer: Path) -> set[str]:
        return {
            str(p.relative_to(layer))
            for p in _files(layer)
            if p.suffix not in (".so", ".pyd")
            and not (p.parent.name.endswith(".dist-info") and p.name in ("RECORD", "WHEEL"))
        }

    assert _distributions(host_layer) == _distributions(lambda_layer)
    assert pure(host_layer) == pure(lambda_layer)


def _in_layer(layer: Path, runtime: Path, task_root: Path, code: str) -> subprocess.CompletedProcess[str]:
    return _start_in_layer(layer, runtime, task_root, code).result()


class _Run:
    """A subprocess started now, its output collected by ``result()``."""

    def __init__(self, command: list[str], **kwargs: Any) -> None:
        self.command = command
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
        )

    def result(self) -> subprocess.CompletedProcess[str]:
        stdout, stderr = self.process.communicate(timeout=300)
        return subprocess.CompletedProcess(self.command, self.process.returncode, stdout, stderr)


def _start_in_layer(layer: Path, runtime: Path, task_root: Path, code: str) -> _Run:
    setup = f"import sys; sys.path[:0] = {[str(task_root), str(layer), str(runtime)]!r}\n"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "dunning",
        "LAMBDA_TASK_ROOT": str(task_root),
    }
    return _Run([sys.executable, "-S", "-c", setup + code], env=env, cwd=str(task_root))


@pytest.mark.parametrize(
    "function", sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py")), ids=str
)
def test_each_handler_imports_from_the_layer(host_layer: Path, runtime: Path, function: str) -> None:
    code = "import app, dunning, pydantic_core\nprint(dunning.__file__); print(pydantic_core.__file__)"
    done = _in_layer(host_layer, runtime, ROOT / "functions" / function, code)

    assert done.returncode == 0, done.stderr
    assert all(line.startswith(str(host_layer)) for line in done.stdout.split())


def test_rendering_and_phones_on_the_layer_match_the_full_packages(host_layer: Path, runtime: Path) -> None:
    layer_run = _start_in_layer(host_layer, runtime, PROBE.parent, f"exec(open({str(PROBE)!r}).read())")
    full = _Run([sys.executable, str(PROBE)], cwd=str(ROOT)).result()
    on_layer = layer_run.result()
    assert on_layer.returncode == 0, on_layer.stderr
    layer_result: dict[str, Any] = json.loads(on_layer.stdout)
    full_result: dict[str, Any] = json.loads(full.stdout)

    assert layer_result["babel"].startswith(str(host_layer))
    assert layer_result["lint"] == []
    assert layer_result["phones"] == full_result["phones"]
    assert layer_result["known"] == full_result["known"]
    assert layer_result["renders"] == full_result["renders"]


def test_pruned_data_fails_loudly_when_used(host_layer: Path, runtime: Path) -> None:
    code = (
        "from babel.numbers import format_currency\n"
        "for call in (lambda: format_currency(1, 'EUR', locale='fr_CA'),"
        " lambda: __import__('phonenumbers.geocoder')):\n"
        "    try:\n        call()\n    except Exception as exc:\n        print(type(exc).__name__)\n"
    )
    done = _in_layer(host_layer, runtime, ROOT, code)

    assert done.stdout.split() == ["EOFError", "ModuleNotFoundError"]


def test_the_rulebooks_load_on_the_layer_from_its_holiday_table(host_layer: Path, runtime: Path) -> None:
    # The precomputed table (dunning/data/holidays.json) ships in the layer; loading the rulebooks and a
    # lookup in one of its years never import the holidays package (~250 country modules).
    code = (
        "import sys\nfrom datetime import date\nfrom dunning.rules import holiday_name, load_rulebooks\n"
        "load_rulebooks()\nprint(holiday_name('IE', None, ('public',), date(2026, 3, 17)))\n"
        "print('holidays' in sys.modules)\n"
    )
    done = _in_layer(host_layer, runtime, ROOT, code)

    assert (host_layer / "dunning" / "data" / "holidays.json").is_file()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Saint Patrick's Day", "False"]


def test_the_product_never_reads_the_dropped_phonenumbers_data() -> None:
    imported: set[str] = set()
    for path in (ROOT / "layers" / "dunning" / "dunning").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    dropped = {f"phonenumbers.{name}" for name in ("geocoder", "carrier", *BUILD.PHONENUMBERS_DROPPED)}

    assert imported & dropped == set()


_INVOCATIONS = """
import json, os, sys


class Context:
    function_name = "indexer"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:indexer"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self):
        return 60_000


import app
loaded = {}
root = "Root=1-6756f4c0-0123456789abcdef01234567;Parent=0123456789abcdef"
for label, header in (("no header", ""), ("unsampled", f"{root};Sampled=0"), ("sampled", f"{root};Sampled=1"),
                      ("unsampled again", f"{root};Sampled=0")):
    os.environ["_X_AMZN_TRACE_ID"] = header
    result = app.handler({"Records": []}, Context())
    loaded[label] = "aws_xray_sdk" in sys.modules
print(json.dumps({"loaded": loaded, "result": result}))
"""


def test_the_x_ray_sdk_loads_on_the_first_traced_invocation_and_traces_it(
    host_layer: Path, runtime: Path
) -> None:
    import socket

    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(10)
    task_root = ROOT / "functions" / "indexer"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "dunning",
        "POWERTOOLS_METRICS_NAMESPACE": "Dunning",
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        "STATE_TABLE": "dunning-State",
        "LEDGER_TABLE": "dunning-Ledger",
        "LEDGER_RETENTION_DAYS": "800",
        "LOANS_TABLE": "dunning-Loans",
        "BORROWERS_TABLE": "dunning-Borrowers",
        "SHARD_COUNT": "16",
        "PLANNER_SCHEDULE": "rate(15 minutes)",
        "PYTHONWARNINGS": "ignore",
    }
    setup = f"import sys; sys.path[:0] = {[str(task_root), str(host_layer), str(runtime)]!r}\n"
    with daemon:
        done = subprocess.run(
            [sys.executable, "-S", "-c", setup + _INVOCATIONS],
            env=env,
            cwd=str(task_root),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        header, _, body = daemon.recv(65536).decode().partition("\n")
    out = json.loads(done.stdout.splitlines()[-1])
    segment = json.loads(body)

    assert out["loaded"] == {"no header": False, "unsampled": False, "sampled": True, "unsampled again": True}
    assert out["result"] == {"batchItemFailures": []}
    assert json.loads(header) == {"format": "json", "version": 1}
    assert (segment["name"], segment["parent_id"]) == ("## handler", "0123456789abcdef")
    # Not the first invocation of the process: Powertools must not call it a cold start.
    assert segment["annotations"] == {"ColdStart": False, "Service": "dunning"}
