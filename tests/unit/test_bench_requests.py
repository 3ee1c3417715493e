"""A guard on what a delivered message costs in AWS requests, at a small scale (a few hundred loans
through the real handlers on moto): counts are deterministic, so a change that adds requests shows here.
Timings are never asserted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bench import cost, report
from bench.requests import RunOptions, run

# 11:00 in New York, 08:00 in California: most of a US-heavy book is inside its window at once.
START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    return run(RunOptions(loans=250, hours=2, shards=2, start=START))


def test_requests_per_delivered_message_stay_under_target(measured: dict[str, Any]) -> None:
    delivered = measured["delivered"]
    assert delivered >= 100
    # Shards polled with nothing due are a cost per tick, not per message (reported apart), and so are
    # the send budget's shared counters (send-rate tokens, spend reservations: bounded below).
    budget = measured["budget_requests"]
    per_message = (measured["requests"] - measured["empty_polls"] - budget) / delivered
    # 2.95 before window releases were paced: spreading a 250-loan book's releases over the three hours
    # after each opening leaves fewer jobs per tick to batch (PublishBatch, BatchGetItem, BatchWriteItem
    # less full). Since the indexer puts a new loan at its first allowed instant, the loans seeded just
    # before their window opens are spread too (3.27 here). At scale the batches fill regardless;
    # docs/benchmarks.md has the full book's figure.
    assert per_message <= 3.3
    assert 0 < budget / delivered <= 0.7
    ops = measured["by_operation"]
    # The floor: exactly one Publish per message (PublishBatch cannot target phones or endpoints) ...
    assert ops["sns.Publish"] == measured["published"]
    # ... and one claim; a few more UpdateItems put back loans whose job was suppressed at send time.
    assert ops["dynamodb.UpdateItem"] - budget <= 1.15 * measured["published"]
    # Everything else is batched (0.9 a message before pacing spread this small book's sends thinner;
    # 1.23 once the loans seeded just before their window opens are spread too).
    batched = sum(n for op, n in ops.items() if op not in ("sns.Publish", "dynamodb.UpdateItem"))
    assert batched / delivered <= 1.3


def test_the_planner_reads_a_page_in_one_round(measured: dict[str, Any]) -> None:
    planner = measured["by_function"]["planner"]
    # The due-index projects borrower_id and phone: loans, borrowers, contact and consent items are read
    # together, four keys a loan, at most 100 keys a request.
    loans_read = sum(measured["ledger"]["decisions"].values()) + measured["published"]
    pages = planner["dynamodb.Query"] - measured["empty_polls"]
    assert planner["dynamodb.BatchGetItem"] <= loans_read * 4 / 100 + pages


def test_write_units_stay_at_the_designs_floor(measured: dict[str, Any]) -> None:
    # 7 a delivered message on the send path (claim, cadence + index move, message + ByLoan, receipt),
    # plus the deferrals and stops of the loans that were not sent (docs/benchmarks.md). 11.2 here
    # while loans were indexed at their stream time and followed up at the next step's midnight (each
    # a window DEFER: 4 units); 7.9 with both at the first allowed instant.
    assert measured["write_units_per_delivered"] <= 8.5
    writes = measured["capacity"]["write_units"]
    assert "planner | LedgerTable decision | index ByLoan put" not in writes
    assert all(size < 1024 for size in measured["largest_item_bytes"].values())


def test_the_baseline_reads_the_whole_book_every_tick(measured: dict[str, Any]) -> None:
    baseline = measured["baseline"]
    # The same engine decides for both; the pipeline also paces window releases over the pacing span
    # (data/lender/sending.yaml), so in a two-hour run the baseline sends some of them sooner (147
    # against 113 here: the loans seeded an hour before their window opens are released after the run).
    assert measured["delivered"] <= baseline["delivered"] <= 1.35 * measured["delivered"]
    loans = measured["book"]["loans"]
    assert baseline["by_operation"]["dynamodb.GetItem"] == 2 * loans * measured["ticks"]
    assert baseline["requests_per_delivered"] > 5 * measured["requests_per_delivered"]


def test_cost_and_report_are_computed_from_a_run(measured: dict[str, Any]) -> None:
    priced = cost.per_million(measured)
    infra = priced["infrastructure"]
    assert infra["total_per_message_usd"] == pytest.approx(sum(infra["per_message_usd"].values()), rel=1e-3)
    writes = infra["per_message_usd"]["DynamoDB writes"]
    assert writes == pytest.approx(measured["write_units_per_delivered"] * 0.625e-6, rel=1e-2)
    assert priced["push_per_million_usd"] > priced["infrastructure_per_million_usd"]
    results = {
        "generated_at": "now",
        "command": "test",
        "seconds": 1,
        "machine": {"cpus": 1, "python": "3"},
        "requests": measured,
        "cost": priced,
    }
    results["targets"] = report.targets(results)
    text = report.markdown(results)
    assert "AWS requests per delivered message" in text
    assert "| planner | dynamodb.Query |" in text
