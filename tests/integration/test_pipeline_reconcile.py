"""The daily reconcile sweep through the real ReconcileFunction: what a missed stream record or a crash
left behind is repaired."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest

from dunning.items import loan_to_item
from dunning.models import Loan, LoanStatus
from dunning_local.invoke import invoke
from dunning_local.stack import LocalStack

SWEEP = datetime(2026, 3, 3, 3, 30, tzinfo=UTC)


class Book:
    def __init__(self, stack: LocalStack, session: boto3.Session) -> None:
        self.stack = stack
        dynamodb = session.resource("dynamodb")
        self.loans = dynamodb.Table(stack.tables["LoansTable"])
        self.state = dynamodb.Table(stack.tables["StateTable"])
        self.ledger = dynamodb.Table(stack.tables["LedgerTable"])

    def loan(self, loan_id: str, **kw: Any) -> None:
        loan = Loan(
            loan_id=loan_id,
            borrower_id="B-1",
            currency="USD",
            amount_due=Decimal("100.00"),
            due_date="2026-02-23",
            jurisdiction="US-NY",
            **kw,
        )
        self.loans.put_item(Item=loan_to_item(loan))

    def cadence(self, loan_id: str, *, due: bool) -> None:
        item = {
            "pk": f"LOAN#{loan_id}",
            "sk": "CADENCE",
            "loan_id": loan_id,
            "borrower_id": "B-1",
            "home_shard": "DUE#01",
        }
        if due:
            item |= {"due_shard": "DUE#01", "next_contact_at": "2026-03-05T14:00:00Z"}
        self.state.put_item(Item=item)

    def get_cadence(self, loan_id: str) -> dict[str, Any]:
        return self.state.get_item(Key={"pk": f"LOAN#{loan_id}", "sk": "CADENCE"}).get("Item", {})

    def sweep(self, **extra: Any) -> dict[str, Any]:
        event = {"scheduled_time": "2026-03-03T03:30:00Z", **extra}
        result: dict[str, Any] = invoke("ReconcileFunction", event, self.stack, now=SWEEP)
        return result

    def partition(self, pk: str) -> list[dict[str, Any]]:
        return self.ledger.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": pk})[
            "Items"
        ]


@pytest.fixture
def book(stack: LocalStack, aws: boto3.Session) -> Book:
    return Book(stack, aws)


def test_missed_and_stale_index_entries_are_repaired(book: Book) -> None:
    book.loan("L-missed")  # its INSERT never reached the indexer
    book.loan("L-paid", status=LoanStatus.PAID)
    book.cadence("L-paid", due=True)  # its MODIFY never reached the indexer
    book.loan("L-fine")
    book.cadence("L-fine", due=True)
    bad = loan_to_item(
        Loan(
            loan_id="L-bad",
            borrower_id="B-1",
            currency="USD",
            amount_due=Decimal("1"),
            due_date="2026-02-23",
            jurisdiction="US-NY",
        )
    )
    bad["jurisdiction"] = "Narnia"
    book.loans.put_item(Item=bad)

    result = book.sweep()
    assert (result["scanned"], result["reindexed"], result["unindexed"], result["invalid"]) == (4, 1, 1, 1)
    assert book.get_cadence("L-missed")["next_contact_at"] == "2026-03-03T03:30:00Z"
    assert "due_shard" not in book.get_cadence("L-paid")
    assert [i["rule_id"] for i in book.partition("LOAN#L-paid")] == ["status.paid"]
    assert book.get_cadence("L-fine")["next_contact_at"] == "2026-03-05T14:00:00Z"
    assert [i["rule_id"] for i in book.partition("LOAN#L-bad")] == ["data.invalid"]

    again = book.sweep()  # nothing left to repair, nothing recorded twice
    assert (again["reindexed"], again["unindexed"], again["invalid"]) == (0, 0, 0)
    assert len(book.partition("LOAN#L-bad")) == 1


def test_segments_split_the_scan_without_overlap(book: Book) -> None:
    for n in range(12):
        book.loan(f"L-{n:02d}")
    scanned = [book.sweep(segment=s, total_segments=3)["scanned"] for s in range(3)]
    assert sum(scanned) == 12
    assert all("due_shard" in book.get_cadence(f"L-{n:02d}") for n in range(12))


def test_ambiguous_jobs_resolve_to_sent_only_when_the_message_exists(book: Book) -> None:
    for loan_id in ("L-sent", "L-unknown"):
        book.ledger.put_item(
            Item={
                "pk": f"JOB#{loan_id}#D+7",
                "sk": "OUTCOME",
                "type": "OUTCOME",
                "loan_id": loan_id,
                "step": "D+7",
                "status": "AMBIGUOUS",
                "rule_id": "claim.exists",
                "at": "2026-03-02T14:05:00Z",
            }
        )
        book.ledger.put_item(
            Item={
                "pk": "AMBIGUOUS",
                "sk": f"{loan_id}#D+7",
                "loan_id_ref": loan_id,
                "step": "D+7",
                "at": "2026-03-02T14:05:00Z",
            }
        )
    book.ledger.put_item(
        Item={
            "pk": "MSG#m-1",
            "sk": "MESSAGE",
            "type": "MESSAGE",
            "message_id": "m-1",
            "loan_id": "L-sent",
            "step": "D+7",
            "status": "DELIVERED",
            "at": "2026-03-02T14:01:00Z",
        }
    )
    result = book.sweep()
    assert (result["ambiguous_resolved"], result["ambiguous_open"]) == (1, 1)
    sent = book.partition("JOB#L-sent#D+7")[0]
    assert sent["status"] == "SENT"
    assert sent["message_id"] == "m-1"
    assert sent["previous_status"] == "AMBIGUOUS"
    assert book.partition("JOB#L-unknown#D+7")[0]["status"] == "AMBIGUOUS"
    assert [i["sk"] for i in book.partition("AMBIGUOUS")] == ["L-unknown#D+7"]
