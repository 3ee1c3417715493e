"""The indexer through the real IndexerFunction, fed with the DynamoDB stream records moto produced."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from dunning.budget import load_sending_policy
from dunning.engine import decide
from dunning.items import borrower_to_item, loan_to_item
from dunning.models import Borrower, Consent, ContactState, Loan, LoanStatus
from dunning.rules import load_rulebooks
from dunning.strategy import load_strategies
from dunning.zones import phone_facts
from dunning_local import lambda_events as events
from dunning_local.invoke import batch_item_failures, invoke
from dunning_local.stack import LocalStack

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PACING_SPAN = timedelta(minutes=load_sending_policy().pacing_span_minutes)


class Tables:
    def __init__(self, stack: LocalStack, session: boto3.Session) -> None:
        self.stack = stack
        dynamodb = session.resource("dynamodb")
        self.loans = dynamodb.Table(stack.tables["LoansTable"])
        self.borrowers = dynamodb.Table(stack.tables["BorrowersTable"])
        self.state = dynamodb.Table(stack.tables["StateTable"])
        self.ledger = dynamodb.Table(stack.tables["LedgerTable"])
        # moto routes DynamoDB Streams only on the classic endpoint (botocore now uses an account one).
        self.streams = session.client(
            "dynamodbstreams", endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com"
        )
        self.positions: dict[str, str] = {}

    def records(self, table: Any) -> list[dict[str, Any]]:
        arn = table.latest_stream_arn
        out: list[dict[str, Any]] = []
        for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            key = f"{arn}/{shard['ShardId']}"
            iterator = (
                self.positions.get(key)
                or self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            response = self.streams.get_records(ShardIterator=iterator)
            out += response["Records"]
            self.positions[key] = response["NextShardIterator"]
        return out

    def index(self, table: Any, at: datetime, extra: list[dict[str, Any]] | None = None) -> list[str]:
        records = self.records(table)
        for record in records:
            record["dynamodb"]["ApproximateCreationDateTime"] = at.timestamp()
        event = events.dynamodb_stream_event(records, table.latest_stream_arn)
        event["Records"] += extra or []
        return batch_item_failures(invoke("IndexerFunction", event, self.stack, now=at))

    def cadence(self, loan_id: str) -> dict[str, Any]:
        return self.state.get_item(Key={"pk": f"LOAN#{loan_id}", "sk": "CADENCE"}).get("Item", {})

    def stops(self, loan_id: str) -> list[dict[str, Any]]:
        items = self.ledger.query(
            KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": f"LOAN#{loan_id}"}
        )["Items"]
        return [i for i in items if i["decision"] == "STOP"]


@pytest.fixture
def tables(stack: LocalStack, aws: boto3.Session) -> Tables:
    return Tables(stack, aws)


def loan(loan_id: str = "L-1", **kw: Any) -> Loan:
    fields: dict[str, Any] = {
        "borrower_id": "B-1",
        "currency": "USD",
        "amount_due": Decimal("250.00"),
        "due_date": "2026-02-23",
        "jurisdiction": "US-NY",
    }
    fields.update(kw)
    return Loan(loan_id=loan_id, **fields)


def test_a_new_loan_is_due_at_once_in_its_shard(tables: Tables) -> None:
    tables.loans.put_item(Item=loan_to_item(loan()))
    assert tables.index(tables.loans, T0) == []
    cadence = tables.cadence("L-1")
    assert cadence["next_contact_at"] == "2026-03-02T10:00:00Z"
    assert cadence["due_shard"] == f"DUE#{zlib.crc32(b'L-1') % 16:02d}" == cadence["home_shard"]
    assert cadence["borrower_id"] == "B-1"


def test_only_changes_that_matter_re_plan(tables: Tables) -> None:
    tables.loans.put_item(Item=loan_to_item(loan()))
    tables.index(tables.loans, T0)
    tables.loans.put_item(Item=loan_to_item(loan(amount_due=Decimal("120.00"))))
    tables.index(tables.loans, T0 + timedelta(hours=1))
    assert tables.cadence("L-1")["next_contact_at"] == "2026-03-02T10:00:00Z"  # amount only: nothing
    tables.loans.put_item(Item=loan_to_item(loan(amount_due=Decimal("120.00"), due_date="2026-03-10")))
    tables.index(tables.loans, T0 + timedelta(hours=2))
    assert tables.cadence("L-1")["next_contact_at"] == "2026-03-02T12:00:00Z"  # due date moved: now


@pytest.mark.parametrize("status", [LoanStatus.PAID, LoanStatus.CLOSED, LoanStatus.CHARGED_OFF])
def test_a_finished_loan_leaves_the_index_at_once(tables: Tables, status: LoanStatus) -> None:
    tables.loans.put_item(Item=loan_to_item(loan()))
    tables.index(tables.loans, T0)
    tables.loans.put_item(Item=loan_to_item(loan(status=status)))
    tables.index(tables.loans, T0 + timedelta(minutes=5))
    cadence = tables.cadence("L-1")
    assert "due_shard" not in cadence
    assert "next_contact_at" not in cadence
    (stop,) = tables.stops("L-1")
    assert stop["rule_id"] == f"status.{status.value.lower()}"


def test_a_bad_item_is_recorded_and_skipped_without_failing_the_batch(tables: Tables) -> None:
    good, bad = loan("L-good"), loan_to_item(loan("L-bad"))
    bad["currency"] = "dollars"
    tables.loans.put_item(Item=loan_to_item(good))
    tables.loans.put_item(Item=bad)
    assert tables.index(tables.loans, T0) == []
    assert tables.cadence("L-good")["next_contact_at"] == "2026-03-02T10:00:00Z"
    assert "due_shard" not in tables.cadence("L-bad")
    (stop,) = tables.stops("L-bad")
    assert stop["rule_id"] == "data.invalid"
    assert "currency" in stop["reason"]


def test_an_unreadable_record_is_a_batch_item_failure(tables: Tables) -> None:
    tables.loans.put_item(Item=loan_to_item(loan()))
    broken = {
        "eventID": "x",
        "eventName": "MODIFY",
        "eventSourceARN": tables.loans.latest_stream_arn,
        "dynamodb": {"SequenceNumber": "999", "Keys": {"loan_id": {"S": "L-9"}}},
    }
    assert tables.index(tables.loans, T0, extra=[broken]) == ["999"]
    assert tables.cadence("L-1")["next_contact_at"] == "2026-03-02T10:00:00Z"


def test_a_borrower_change_that_matters_re_plans_their_active_loans(tables: Tables) -> None:
    borrower = Borrower(borrower_id="B-1", phone="+12125550142", consent=Consent(sms=True))
    tables.borrowers.put_item(Item=borrower_to_item(borrower))
    tables.loans.put_item(Item=loan_to_item(loan("L-1")))
    tables.loans.put_item(Item=loan_to_item(loan("L-2", status=LoanStatus.PAID)))
    tables.index(tables.loans, T0)
    tables.index(tables.borrowers, T0)
    # The planner has moved L-1 on since.
    tables.state.update_item(
        Key={"pk": "LOAN#L-1", "sk": "CADENCE"},
        UpdateExpression="SET next_contact_at = :n",
        ExpressionAttributeValues={":n": "2026-03-10T14:00:00Z"},
    )
    tables.borrowers.put_item(Item=borrower_to_item(borrower.model_copy(update={"first_name": "Ada"})))
    tables.index(tables.borrowers, T0 + timedelta(hours=1))
    assert tables.cadence("L-1")["next_contact_at"] == "2026-03-10T14:00:00Z"  # a name change: nothing
    tables.borrowers.put_item(Item=borrower_to_item(borrower.model_copy(update={"phone": "+12125550143"})))
    tables.index(tables.borrowers, T0 + timedelta(hours=2))
    cadence = tables.cadence("L-1")
    # Re-planned from 07:00 in New York: at the window's opening (08:00), spread over the pacing span.
    looked_at = datetime.fromisoformat(cadence["next_contact_at"])
    assert looked_at >= datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    assert looked_at < datetime(2026, 3, 2, 13, 0, tzinfo=UTC) + PACING_SPAN
    assert cadence["phone"] == "+12125550143"
    # What parsing the new number says rides along, so the planner does not parse it again.
    assert cadence["phone_facts"] == phone_facts("+12125550143")
    assert "due_shard" not in tables.cadence("L-2")


@pytest.mark.parametrize(
    ("due_date", "opens"),
    [
        # Overdue, indexed at 05:00 in New York: the D+7 step may go out when the window opens at 08:00.
        ("2026-02-23", datetime(2026, 3, 2, 13, 0, tzinfo=UTC)),
        # Its first step (D-3) falls due on 9 March: looked at first when that day's window opens.
        ("2026-03-12", datetime(2026, 3, 9, 12, 0, tzinfo=UTC)),
    ],
)
def test_a_loan_is_indexed_at_the_first_instant_it_could_be_sent(
    tables: Tables, due_date: str, opens: datetime
) -> None:
    borrower = Borrower(
        borrower_id="B-1", phone="+12125550142", time_zone="America/New_York", consent=Consent(sms=True)
    )
    tables.borrowers.put_item(Item=borrower_to_item(borrower))
    tables.index(tables.borrowers, T0)
    tables.loans.put_item(Item=loan_to_item(loan(due_date=due_date)))
    night = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # 05:00 in New York

    tables.index(tables.loans, night)

    looked_at = datetime.fromisoformat(tables.cadence("L-1")["next_contact_at"])
    assert looked_at >= opens
    assert looked_at < opens + PACING_SPAN

    then = decide(
        loan(due_date=due_date),
        borrower,
        ContactState(borrower_id="B-1"),
        looked_at,
        load_rulebooks(),
        load_strategies(),
    )
    assert then.kind == "SEND", then.reason
    assert [s["rule_id"] for s in tables.stops("L-1")] == []


def _borrower_in_new_york(**kw: Any) -> Borrower:
    fields: dict[str, Any] = {
        "borrower_id": "B-1",
        "phone": "+12125550142",
        "time_zone": "America/New_York",
        "consent": Consent(sms=True),
    }
    fields.update(kw)
    return Borrower(**fields)


@pytest.mark.parametrize(
    ("flags", "borrower", "rule_id"),
    [
        ({"cease_and_desist": True}, {}, "flag.cease_and_desist"),
        ({}, {"consent": Consent(sms=False)}, "consent.none_usable"),
    ],
)
def test_a_loan_stopped_at_its_first_look_is_recorded_and_stays_out_of_the_index(
    tables: Tables, flags: dict[str, Any], borrower: dict[str, Any], rule_id: str
) -> None:
    tables.borrowers.put_item(Item=borrower_to_item(_borrower_in_new_york(**borrower)))
    tables.index(tables.borrowers, T0)
    tables.loans.put_item(Item=loan_to_item(loan(flags=flags)))

    tables.index(tables.loans, T0 + timedelta(minutes=1))

    cadence = tables.cadence("L-1")
    assert "due_shard" not in cadence
    assert cadence["last_rule"] == rule_id
    (stop,) = tables.stops("L-1")
    # The planner's record of the same STOP: rule, reason, citation and the jurisdictions that applied.
    assert stop["rule_id"] == rule_id
    assert stop["at"] == "2026-03-02T10:01:00Z"
    assert stop["citation"]
    assert {j["code"] for j in stop["jurisdictions"]} >= {"US", "US-NY"}


def test_a_loan_stopped_at_its_first_look_is_indexed_again_when_what_stopped_it_changes(
    tables: Tables,
) -> None:
    tables.borrowers.put_item(Item=borrower_to_item(_borrower_in_new_york(consent=Consent(sms=False))))
    tables.index(tables.borrowers, T0)
    tables.loans.put_item(Item=loan_to_item(loan()))
    tables.index(tables.loans, T0)
    assert "due_shard" not in tables.cadence("L-1")

    tables.borrowers.put_item(Item=borrower_to_item(_borrower_in_new_york()))
    tables.index(tables.borrowers, T0 + timedelta(hours=4))  # 10:00 in New York, inside the window

    cadence = tables.cadence("L-1")
    assert cadence["next_contact_at"] == "2026-03-02T14:00:00Z"
    assert cadence["due_shard"] == cadence["home_shard"]


@pytest.mark.parametrize(
    ("local_time", "indexed_at"),
    [
        # 20:30 in New York: the next tick (15 minutes at most) comes before 21:00, when the window closes.
        ((20, 30), datetime(2026, 3, 4, 1, 30, tzinfo=UTC)),
        # 20:50: the next tick may come after 21:00 and could only defer it; looked at when it opens.
        ((20, 50), None),
    ],
)
def test_a_loan_is_indexed_as_the_planners_next_tick_will_see_it(
    tables: Tables, local_time: tuple[int, int], indexed_at: datetime | None
) -> None:
    tables.borrowers.put_item(Item=borrower_to_item(_borrower_in_new_york()))
    tables.index(tables.borrowers, T0)
    tables.loans.put_item(Item=loan_to_item(loan()))
    hour, minute = local_time
    changed = datetime(2026, 3, 3, hour, minute, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)

    tables.index(tables.loans, changed)

    looked_at = datetime.fromisoformat(tables.cadence("L-1")["next_contact_at"])
    if indexed_at is not None:
        assert looked_at == indexed_at
    else:
        opens = datetime(2026, 3, 4, 13, 0, tzinfo=UTC)  # 08:00 in New York the next morning
        assert opens <= looked_at < opens + PACING_SPAN
    assert tables.stops("L-1") == []


def test_a_deleted_loan_loses_its_cadence(tables: Tables) -> None:
    tables.loans.put_item(Item=loan_to_item(loan()))
    tables.index(tables.loans, T0)
    tables.loans.delete_item(Key={"loan_id": "L-1"})
    tables.index(tables.loans, T0 + timedelta(hours=1))
    assert tables.cadence("L-1") == {}
    assert [s["rule_id"] for s in tables.stops("L-1")] == ["loan.removed"]
