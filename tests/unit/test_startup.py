"""Garbage collection paused over a cold start (dunning.startup): only when Lambda imports the handler as
``app``, resumed with the cold start's objects frozen once the first invocation has built its service,
also when that build fails."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dunning import startup

ROOT = Path(__file__).parents[2]
INDEXER_ENV = {
    "STATE_TABLE": "dunning-State",
    "LEDGER_TABLE": "dunning-Ledger",
    "LEDGER_RETENTION_DAYS": "800",
    "LOANS_TABLE": "dunning-Loans",
    "BORROWERS_TABLE": "dunning-Borrowers",
    "SHARD_COUNT": "16",
    "PLANNER_SCHEDULE": "rate(15 minutes)",
}

_FIRST_INVOCATION = """
import gc, json, sys


class Context:
    function_name = "indexer"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:indexer"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self):
        return 60_000


import app
seen = {"after import": gc.isenabled()}
try:
    app.handler({"Records": []}, Context())
    seen["failed"] = False
except Exception as exc:
    seen["failed"] = True
    print(repr(exc), file=sys.stderr)
seen["after the first invocation"] = gc.isenabled()
seen["frozen"] = gc.get_freeze_count() > 10_000
print(json.dumps(seen))
"""


def _first_invocation(settings: dict[str, str]) -> dict[str, bool]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "dunning",
        "POWERTOOLS_METRICS_NAMESPACE": "Dunning",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / "indexer"), *sys.path]),
        **settings,
    }
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_INVOCATION], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_collection_is_paused_over_the_import_and_resumed_by_the_first_invocation() -> None:
    seen = _first_invocation(INDEXER_ENV)

    assert seen == {
        "after import": False,
        "failed": False,
        "after the first invocation": True,
        "frozen": True,
    }


def test_collection_resumes_when_the_first_invocation_cannot_build_its_service() -> None:
    seen = _first_invocation({})  # no settings: the build raises SettingsError

    assert seen["failed"] is True
    assert seen["after the first invocation"] is True


@pytest.mark.parametrize("module", ["_dunning_fn_indexer_0123", "functions.indexer.app", "__main__"])
def test_a_handler_imported_under_another_name_leaves_collection_alone(module: str) -> None:
    startup.pause(module)
    enabled = gc.isenabled()
    startup.resume()

    assert enabled is True
    assert gc.isenabled() is True


def test_the_template_names_the_handler_module_the_pause_is_for() -> None:
    handlers = {
        line.split(":", 1)[1].strip()
        for line in (ROOT / "template.yaml").read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("Handler:")
    }

    assert handlers == {f"{startup.HANDLER_MODULE}.handler"}
