"""Two invocations of one function at once (two Lambdas on the same work) through the offline invoke.

The invoker shares one module table and one environment between threads. An invocation that returns
first must leave a concurrent one's handler module and environment alone: before the fix it removed
the other's freshly imported module (seen as ``KeyError('_dunning_fn_planner_…')`` under load) and put
back the process's environment under a handler still running.
"""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dunning_local.invoke import invoke
from dunning_local.stack import LocalStack

_STAND_IN = """
import os
import sys

import _invoke_race_sync as sync


def handler(event, context):
    if event["role"] == "first":
        sync.first_in_handler.set()
        sync.second_in_handler.wait(10)
    else:
        sync.second_in_handler.set()
        sync.first_returned.wait(10)
    return {"module_present": __name__ in sys.modules, "loans_table": os.environ.get("LOANS_TABLE")}
"""


@pytest.fixture
def racing(tmp_path: Path) -> Iterator[types.SimpleNamespace]:
    code = tmp_path / "functions" / "planner"
    code.mkdir(parents=True)
    (code / "app.py").write_text(_STAND_IN)
    sync = types.SimpleNamespace(
        root=tmp_path,
        first_in_handler=threading.Event(),
        second_in_handler=threading.Event(),
        first_returned=threading.Event(),
    )
    sys.modules["_invoke_race_sync"] = sync  # type: ignore[assignment]
    try:
        yield sync
    finally:
        del sys.modules["_invoke_race_sync"]


def test_an_invocation_that_returns_first_leaves_the_other_ones_module_and_environment(
    stack: LocalStack, racing: types.SimpleNamespace
) -> None:
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def run(role: str) -> None:
        try:
            results[role] = invoke("planner", {"role": role}, stack, repo_root=racing.root)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            if role == "first":
                racing.first_returned.set()

    first = threading.Thread(target=run, args=("first",))
    second = threading.Thread(target=run, args=("second",))
    first.start()
    assert racing.first_in_handler.wait(10)
    second.start()
    first.join(20)
    second.join(20)
    assert errors == []
    assert results["second"]["module_present"] is True
    assert results["second"]["loans_table"] == stack.tables["LoansTable"]
    assert "LOANS_TABLE" not in os.environ
    assert not [name for name in sys.modules if name.startswith("_dunning_fn_planner_")]


def test_many_concurrent_invocations_of_the_real_planner_all_succeed(stack: LocalStack) -> None:
    # Real handler modules, imported afresh by each invocation, eight at a time, twice over.
    tick = {"scheduled_time": "2026-03-02T14:00:00Z", "execution_id": "race"}
    errors: list[BaseException] = []
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(invoke("PlannerFunction", tick, stack))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    for _ in range(2):
        threads = [threading.Thread(target=run) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert errors == []
    assert [r["shards"] for r in results] == [16] * 16
    assert not [name for name in sys.modules if name.startswith("_dunning_fn_planner_")]
