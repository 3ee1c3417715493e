"""Soak: the demo's realistic run (payments, replies, late receipts, the daily sweep) under faults.

``dunning_local.simulate.run_demo`` drives every handler through eight simulated hours of 15-minute
ticks for about 300 loans while ``dunning_local.faults`` (at 5 %, and at a harsh 30 %) throttles SNS
publishes and DynamoDB writes and leaves batch items and keys unprocessed. The run's own records must
still pass every invariant the demo audits (no send outside a window, no cap exceeded, nothing sent
twice or unrecorded, every job terminal and every queue drained), and the faults must really have
happened.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dunning_local.simulate import DemoOptions, run_demo


@pytest.mark.slow
@pytest.mark.parametrize(("fault_rate", "seed"), [(0.05, 11), (0.3, 12)])
def test_eight_hours_under_faults_keep_every_invariant(tmp_path: Path, fault_rate: float, seed: int) -> None:
    options = DemoOptions(loans=300, hours=8, fault_rate=fault_rate, seed=seed, quiet=True, out=tmp_path)
    result = run_demo(options)
    summary = result.summary
    failed = [f"{i['name']}: {i['detail']}" for i in summary["invariants"] if not i["passed"]]
    assert failed == []
    assert result.passed
    assert len(summary["invariants"]) >= 4
    faults = summary["faults"]
    kinds = {kind.split(":")[0] for kind in faults["by_kind"]}
    assert faults["injected"] >= 10, faults
    # Both services were hit: SNS publishes and DynamoDB requests.
    assert any(k.startswith("sns.") for k in kinds), kinds
    assert any(k.startswith("dynamodb.") for k in kinds), kinds
    assert sum(summary["sent"].values()) >= 50  # a run that did real work
    print(
        f"\nsoak at {fault_rate:.0%}: {faults['injected']} faults {faults['by_kind']}; sent {summary['sent']}"
    )


SOAK_DEMO_SEEDS = int(os.environ.get("SOAK_DEMO_SEEDS", "0"))


@pytest.mark.skipif(SOAK_DEMO_SEEDS == 0, reason="make soak (SOAK_DEMO_SEEDS=N) only")
def test_soak_demo_runs_under_harsh_faults_with_many_seeds(tmp_path: Path) -> None:
    """``make soak``: SOAK_DEMO_SEEDS eight-hour runs at 30 % faults, one seed each (a seed replays exactly:
    the send pacer runs on simulated time). Prints the seeds run, the faults injected and what failed."""
    failures: dict[int, list[str]] = {}
    injected = sent = 0
    for seed in range(100, 100 + SOAK_DEMO_SEEDS):
        options = DemoOptions(
            loans=150, hours=8, fault_rate=0.3, seed=seed, quiet=True, out=tmp_path / str(seed)
        )
        summary = run_demo(options).summary
        injected += summary["faults"]["injected"]
        sent += sum(summary["sent"].values())
        failed = [f"{i['name']}: {i['detail']}" for i in summary["invariants"] if not i["passed"]]
        if failed:
            failures[seed] = failed
    print(
        f"\nSOAK demo: {SOAK_DEMO_SEEDS} seeded runs at 30 % faults, {injected} faults injected, "
        f"{sent} messages sent, {len(failures)} runs failed an invariant"
    )
    assert failures == {}
