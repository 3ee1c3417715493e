"""Ids legal in the lender's tables but not as parts of Dunning's keys (issue break 5).

A Loans key or a Borrowers key may be up to 2,048 bytes; ``LOAN#<id>``, ``BORROWER#<id>`` and the other
keys built from it then exceed DynamoDB's limits. One such id must be recorded ``data.invalid`` on its
own (under its digest, never echoed) and never fail a batch, a sweep, a planner page, a sender batch or
another borrower's opt-out. moto enforces the key limits on writes; the AWS-like guard below enforces
them on reads too (GetItem, BatchGetItem, Query), as DynamoDB does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from pipeline_helpers import NY_PHONE, OUR_NUMBER, TICK, Harness, loan, start_harness

from dunning.ids import ID_MAX_LENGTH, id_problem, storable_id
from dunning.items import borrower_to_item, loan_to_item
from dunning.models import Address, Borrower, Consent
from dunning_local import lambda_events as events
from dunning_local.invoke import batch_item_failures, invoke
from dunning_local.stack import LocalStack

# Legal Loans/Borrowers keys (at most 2,048 bytes) that no key of ours can hold once prefixed.
LONG_LOAN_ID = "L" + "x" * 2044
LONG_BORROWER_ID = "A" + "y" * 2044  # sorts before "B-…": the first partition an inbound reply writes


def _too_large(operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {
                "Code": "ValidationException",
                "Message": "One or more parameter values were invalid: Size of key exceeded the limit",
            }
        },
        operation,
    )


def _check_key(key: Mapping[str, Any], operation: str) -> None:
    for name, value in key.items():
        text = value.get("S", "") if isinstance(value, Mapping) else ""
        if len(str(text).encode("utf-8")) > (1024 if name == "sk" else 2048):
            raise _too_large(operation)


@pytest.fixture
def harness(stack: LocalStack, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    """The pipeline harness, with DynamoDB's key size limits enforced on reads as AWS does."""
    harness = start_harness(stack, aws, monkeypatch)

    def guard(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "GetItem":
            _check_key(params["Key"], model.name)
        elif model.name == "BatchGetItem":
            for request in params["RequestItems"].values():
                for key in request["Keys"]:
                    _check_key(key, model.name)
        elif model.name == "Query":
            for value in params.get("ExpressionAttributeValues", {}).values():
                _check_key({"value": value}, model.name)

    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("provide-client-params.dynamodb.*", guard)
    yield harness


def ny_borrower(borrower_id: str, phone: str = NY_PHONE) -> Borrower:
    return Borrower(
        borrower_id=borrower_id,
        time_zone="America/New_York",
        phone=phone,
        address=Address(country="US", region="NY"),
        consent=Consent(sms=True),
    )


def no_item_holds(harness: Harness, raw: str) -> None:
    """The raw id is in no ledger or state item (it may carry anything: a name, a number)."""
    needle = raw[:300]
    for table in (harness.ledger, harness.state):
        for item in table.scan()["Items"]:
            assert needle not in repr(item)


def test_the_id_limits_leave_room_for_every_key_built_from_an_id() -> None:
    longest = "L" * ID_MAX_LENGTH
    assert id_problem(longest) is None
    assert len(f"JOB#{longest}#{'s' * 64}".encode()) < 1024  # the longest key we build, a sort key too
    assert id_problem(longest + "L") == f"longer than {ID_MAX_LENGTH} characters"
    assert id_problem("L#1") is not None  # '#' separates our key parts
    assert storable_id(LONG_LOAN_ID).startswith("~sha256:")
    assert id_problem(storable_id(LONG_LOAN_ID)) is not None  # a stand-in never equals a real id


def test_an_over_long_loan_id_is_recorded_alone_and_the_indexer_batch_goes_through(
    harness: Harness,
) -> None:
    # The Loan model refuses the id, as it should: the lender's item is written raw.
    good = loan("L-NY", "B-NY", "US-NY", TICK.date() - timedelta(days=7))
    harness.seed([good], [ny_borrower("B-NY")])
    harness.loans.put_item(Item={**loan_to_item(good), "loan_id": LONG_LOAN_ID})
    harness.index(TICK)  # asserts that no record of the batch failed
    assert harness.cadence("L-NY")["next_contact_at"] == "2026-03-02T14:00:00Z"
    stand_in = storable_id(LONG_LOAN_ID)
    (stop,) = harness.decisions(stand_in)
    assert stop["rule_id"] == "data.invalid"
    assert "loan_id: longer than 128 characters" in stop["reason"]
    assert harness.cadence(stand_in).get("due_shard") is None
    no_item_holds(harness, LONG_LOAN_ID)


def test_an_over_long_borrower_id_is_recorded_and_re_plans_nothing(harness: Harness) -> None:
    good = loan("L-NY", "B-NY", "US-NY", TICK.date() - timedelta(days=7))
    harness.seed([good], [ny_borrower("B-NY")])
    harness.borrowers.put_item(
        Item={**borrower_to_item(ny_borrower("B-NY")), "borrower_id": LONG_BORROWER_ID}
    )
    harness.loans.put_item(
        Item={**loan_to_item(good), "loan_id": "L-LONG-B", "borrower_id": LONG_BORROWER_ID}
    )
    harness.index(TICK)
    assert harness.cadence("L-NY")["next_contact_at"] == "2026-03-02T14:00:00Z"
    (stop,) = harness.decisions("L-LONG-B")
    assert stop["rule_id"] == "data.invalid"
    assert harness.cadence("L-LONG-B").get("due_shard") is None
    recorded = harness.ledger.query(
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": f"BORROWER#{storable_id(LONG_BORROWER_ID)}"},
    )["Items"]
    assert [r["rule_id"] for r in recorded] == ["data.invalid"]
    no_item_holds(harness, LONG_BORROWER_ID)


def test_reconcile_records_an_over_long_loan_id_once_and_repairs_the_rest(harness: Harness) -> None:
    good = loan("L-NY", "B-NY", "US-NY", TICK.date() - timedelta(days=7))
    harness.borrowers.put_item(Item=borrower_to_item(ny_borrower("B-NY")))
    # Written while the stream was not read: only the sweep sees them.
    harness.loans.put_item(Item=loan_to_item(good))
    harness.loans.put_item(Item={**loan_to_item(good), "loan_id": LONG_LOAN_ID})
    event = {"scheduled_time": "2026-03-03T03:30:00Z"}
    first = invoke("ReconcileFunction", event, harness.stack, now=TICK)
    assert first["reindexed"] == 1
    assert first["invalid"] == 1
    second = invoke("ReconcileFunction", event, harness.stack, now=TICK + timedelta(days=1))
    assert second["invalid"] == 0  # recorded once, not on every run
    assert len(harness.decisions(storable_id(LONG_LOAN_ID))) == 1
    no_item_holds(harness, LONG_LOAN_ID)


def test_a_stop_is_honoured_for_a_borrower_sharing_the_phone_with_an_over_long_id(
    harness: Harness,
) -> None:
    harness.borrowers.put_item(Item=borrower_to_item(ny_borrower("B-NY")))
    harness.borrowers.put_item(
        Item={**borrower_to_item(ny_borrower("B-NY")), "borrower_id": LONG_BORROWER_ID}
    )
    message = events.inbound_sms(NY_PHONE, OUR_NUMBER, "STOP", inbound_id="in-stop-long")
    event = events.sns_event(str(harness.stack.topics["InboundTopic"]), message, TICK)
    assert harness.invoke("InboundFunction", event, TICK) == {"handled": 1}
    consent = harness.state.get_item(Key={"pk": f"PHONE#{NY_PHONE}", "sk": "CONSENT"})["Item"]
    assert consent["sms_opted_out"] is True
    assert len(harness.sms_to(NY_PHONE)) == 1  # the confirmation
    contact = harness.state.get_item(Key={"pk": "BORROWER#B-NY", "sk": "CONTACT"})["Item"]
    assert contact["version"] >= 1  # touched: an in-flight claim re-decides and sees the opt-out
    replies = harness.ledger.query(
        KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": "BORROWER#B-NY"}
    )["Items"]
    assert [r["intent"] for r in replies] == ["STOP"]
    no_item_holds(harness, LONG_BORROWER_ID)


def test_a_planner_page_and_a_sender_batch_survive_a_loan_naming_an_over_long_borrower_id(
    harness: Harness,
) -> None:
    due = TICK.date() - timedelta(days=7)
    harness.seed(
        [loan("L-NY", "B-NY", "US-NY", due), loan("L-NY2", "B-NY2", "US-NY", due)],
        [ny_borrower("B-NY"), ny_borrower("B-NY2", "+12125550143")],
    )
    harness.index(TICK - timedelta(hours=1))
    # The lender rewrites one loan's borrower after it was indexed (a missed stream record): the planner
    # reads it from the due-index with its old hints.
    harness.loans.put_item(
        Item={**loan_to_item(loan("L-NY2", "B-NY2", "US-NY", due)), "borrower_id": LONG_BORROWER_ID + "zz"}
    )
    harness.tick(TICK)
    harness.plan(TICK + timedelta(seconds=10))  # asserts that no shard task failed
    jobs = harness.jobs()
    assert [json.loads(j["Body"])["loan_id"] for j in jobs["SmsQueue"]] == ["L-NY"]
    (stop,) = [d for d in harness.decisions("L-NY2") if d["rule_id"] == "data.invalid"]
    assert stop["reason"] == "loan L-NY2: borrower_id: String should have at most 128 characters"
    assert stop["borrower_id"] == storable_id(LONG_BORROWER_ID + "zz")
    # Now the sender: the good loan's job and the same loan rewritten between planning and sending.
    harness.loans.put_item(
        Item={**loan_to_item(loan("L-NY", "B-NY", "US-NY", due)), "borrower_id": LONG_BORROWER_ID + "zz"}
    )
    harness.loans.put_item(Item=loan_to_item(loan("L-NY2", "B-NY2", "US-NY", due)))
    failures = harness.send(jobs, TICK + timedelta(minutes=1))
    assert failures == []
    (outcome,) = harness.outcomes()
    assert outcome["status"] == "SUPPRESSED"
    assert outcome["rule_id"] == "data.invalid"
    no_item_holds(harness, LONG_BORROWER_ID)


def test_an_indexer_event_of_only_over_long_ids_reports_no_failures(harness: Harness) -> None:
    record = {
        "eventID": "1",
        "eventName": "INSERT",
        "eventSourceARN": harness.loans.latest_stream_arn,
        "dynamodb": {
            "SequenceNumber": "100",
            "Keys": {"loan_id": {"S": LONG_LOAN_ID}},
            "NewImage": {"loan_id": {"S": LONG_LOAN_ID}, "borrower_id": {"S": LONG_BORROWER_ID}},
        },
    }
    event = events.dynamodb_stream_event([record], harness.loans.latest_stream_arn)
    assert batch_item_failures(harness.invoke("IndexerFunction", event, TICK)) == []
