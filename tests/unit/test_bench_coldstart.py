"""bench/coldstart.py: each function's floor, derived from the modules its ready path loaded, and the floor
handler built from it (what it loads, what it sets up, garbage collection paused as the functions do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench import coldstart

# sys.modules after a made-up ready path, in load order: the standard library, the runtime's boto3 and
# its dependencies, the product, a module an extension makes up, and three libraries of the layer.
LOADED = [
    "sys",
    "json",
    "json.decoder",
    "boto3",
    "botocore.client",
    "urllib3.util",
    "dateutil.tz",
    "app",
    "dunning",
    "dunning.rules",
    "yaml.error",
    "yaml._yaml",
    "yaml",
    "cython_runtime",
    "pydantic_core._pydantic_core",
    "pydantic_core",
    "pydantic",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools",
]


@pytest.fixture(scope="module")
def owners() -> dict[str, str]:
    site_packages = Path(yaml.__file__).resolve().parent.parent
    return coldstart.distribution_owners([site_packages])


@pytest.fixture(scope="module")
def floor(owners: dict[str, str]) -> dict[str, list[str]]:
    return coldstart.floor_modules(LOADED, owners)


def test_the_floor_is_the_layers_distributions_the_function_loaded(floor: dict[str, list[str]]) -> None:
    assert list(floor) == ["aws-lambda-powertools", "pydantic", "pydantic-core", "pyyaml"]


def test_a_distribution_keeps_every_module_the_function_loaded_in_load_order(
    floor: dict[str, list[str]],
) -> None:
    assert floor["pyyaml"] == ["yaml.error", "yaml._yaml", "yaml"]


def _all(floor: dict[str, list[str]]) -> set[str]:
    return {name for names in floor.values() for name in names}


def test_the_standard_library_is_not_in_the_floor(floor: dict[str, list[str]]) -> None:
    assert _all(floor) & {"sys", "json", "json.decoder"} == set()


def test_the_runtimes_boto3_and_its_dependencies_are_the_bare_handlers(floor: dict[str, list[str]]) -> None:
    assert _all(floor) & {"boto3", "botocore.client", "urllib3.util", "dateutil.tz"} == set()


def test_the_product_and_what_no_distribution_ships_are_not_in_the_floor(floor: dict[str, list[str]]) -> None:
    assert _all(floor) & {"app", "dunning", "dunning.rules", "cython_runtime"} == set()


def test_the_runtime_is_whatever_the_caller_says_it_is(owners: dict[str, str]) -> None:
    floor = coldstart.floor_modules(LOADED, owners, runtime=frozenset({"boto3", "pyyaml"}))
    assert list(floor) == [
        "aws-lambda-powertools",
        "botocore",
        "pydantic",
        "pydantic-core",
        "python-dateutil",
        "urllib3",
    ]


def test_the_aws_clients_a_function_made_are_found_though_frozen() -> None:
    # As a function leaves them: made while collection was paused, then frozen (dunning.startup.resume).
    made = (
        "import gc, json, boto3\ngc.disable()\n"
        'client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="testing", '
        'aws_secret_access_key="testing")\ngc.freeze()\ngc.enable()\n'
    )
    done = subprocess.run(
        [sys.executable, "-c", made + coldstart._FOOTPRINT],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1])["clients"] == ["dynamodb"]


def test_a_floor_makes_the_clients_after_collection_resumes() -> None:
    source = coldstart.floor_source("reconcile", {"pyyaml": ["yaml"]}, ["dynamodb"])
    assert source.index("gc.enable()") < source.index("boto3.client('dynamodb')")


def test_a_floor_sets_up_only_the_libraries_it_loads() -> None:
    source = coldstart.floor_source("indexer", {"pyyaml": ["yaml"]})
    assert "CSafeLoader" in source
    assert "Logger(" not in source
    assert "BaseModel" not in source


_RUN_FLOOR = """
import gc, json, sys
sys.path.insert(0, {folder!r})
import app
paused_at_import = not gc.isenabled()


class Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"


answer = app.handler({{}}, Context())
print(json.dumps({{
    "answer": answer,
    "paused_at_import": paused_at_import,
    "enabled_after": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "modules": sorted(sys.modules),
}}))
"""


@pytest.fixture(scope="module")
def ran(floor: dict[str, list[str]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("floor")
    (folder / "app.py").write_text(coldstart.floor_source("indexer", floor), encoding="utf-8")
    env = {**os.environ, "POWERTOOLS_SERVICE_NAME": "dunning", "POWERTOOLS_METRICS_NAMESPACE": "Dunning"}
    done = subprocess.run(
        [sys.executable, "-c", _RUN_FLOOR.format(folder=str(folder))],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_floor_handler_answers_like_the_bare_one(ran: dict[str, object]) -> None:
    assert ran["answer"] == {}


def test_the_floor_handler_loads_every_module_of_its_floor(
    ran: dict[str, object], floor: dict[str, list[str]]
) -> None:
    modules = ran["modules"]
    assert isinstance(modules, list)
    assert sorted(_all(floor) - set(modules)) == []


def test_the_floor_handler_loads_nothing_of_the_product(ran: dict[str, object]) -> None:
    modules = ran["modules"]
    assert isinstance(modules, list)
    assert [m for m in modules if m == "dunning" or m.startswith("dunning.")] == []


def test_the_floor_handler_collects_no_garbage_while_importing(ran: dict[str, object]) -> None:
    assert ran["paused_at_import"] is True


def test_the_floor_handler_freezes_what_it_made_and_collects_again_after_its_first_invocation(
    ran: dict[str, object],
) -> None:
    frozen = ran["frozen"]
    assert isinstance(frozen, int)
    assert (ran["enabled_after"], frozen > 10_000) == (True, True)
