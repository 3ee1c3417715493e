"""bench/overlap.py at a small scale: the overlapped shard task makes exactly the requests the sequential
one makes and plans the same loans, and moto's recorded answers cover every request of the replayed runs.
Counts only: timings are never asserted."""

from __future__ import annotations

from typing import Any

import pytest

from bench import overlap, report


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    return overlap.run(120, rounds=1, page_size=30, dynamodb_ms=1, messaging_ms=1)


@pytest.mark.parametrize("moto", ["live", "replayed"])
def test_overlapped_and_sequential_make_the_same_requests(measured: dict[str, Any], moto: str) -> None:
    runs = measured[moto]
    assert runs["overlapped"]["requests"] == runs["sequential"]["requests"]


@pytest.mark.parametrize("moto", ["live", "replayed"])
def test_overlapped_and_sequential_plan_the_same_loans(measured: dict[str, Any], moto: str) -> None:
    counts = ("loans", "planned", "deferred", "stopped", "invalid", "publish_failed", "pages")
    runs = measured[moto]
    assert {k: runs["overlapped"][k] for k in counts} == {k: runs["sequential"][k] for k in counts}


def test_every_due_loan_is_planned(measured: dict[str, Any]) -> None:
    assert measured["live"]["overlapped"]["loans"] == measured["due"]


def test_the_book_has_sends_and_deferrals(measured: dict[str, Any]) -> None:
    run = measured["live"]["sequential"]
    assert run["planned"] > 0
    assert run["deferred"] > 0


@pytest.mark.parametrize("mode", ["sequential", "overlapped"])
def test_replayed_runs_ask_nothing_moto_did_not_answer_before(measured: dict[str, Any], mode: str) -> None:
    run = measured["replayed"][mode]
    assert run["replay_misses"] == 0
    assert run["moto_cpu_seconds"] == 0


def test_every_request_is_delayed_and_counted(measured: dict[str, Any]) -> None:
    run = measured["live"]["sequential"]
    requests = run["requests"]
    expected = sum(requests.values()) * 0.001  # 1 ms a request, every service
    assert run["latency_seconds"] == pytest.approx(expected, abs=0.002)
    assert set(requests) >= {
        "dynamodb.Query",
        "dynamodb.BatchGetItem",
        "dynamodb.BatchWriteItem",
        "sns.PublishBatch",
    }


def test_the_report_has_the_section_and_the_target(measured: dict[str, Any]) -> None:
    results = {"overlap": measured}
    section = "\n".join(report._overlap_section(results))
    (target,) = [t for t in report.targets(results) if "overlapped" in t["target"]]
    assert "| replayed |" in section
    assert target["measured"] == measured["replayed"]["ratio"]
