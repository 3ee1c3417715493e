"""The contact item does not grow with every loan a borrower ever had (issue 12, section 2).

The real sender (``build_sender`` on template.yaml's tables on moto, pacing aside) sends two reminders of
each of 60 loans a month apart, each loan paid a few days after its last one; one old loan is never
paid. Every claim of a paid loan whose sends have left the caps' window is dropped by a later claim, so
the CONTACT item stays under 1 KB (one write unit per claim); before, every (loan, step) claimed stayed
for good and the item passed 1 KB after about 40 loans. The old loan that is still active keeps its
claims, and a redelivered job of it is not sent again.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto.sns.models import sns_backends

from bench.capacity import item_size
from dunning.items import borrower_to_item, loan_to_item
from dunning.jobs import Job
from dunning.models import Address, Borrower, Channel, Consent, Loan, LoanStatus
from dunning.observability import MetricsRecorder
from dunning.sender import Sender, build_sender
from dunning.settings import SenderSettings
from dunning_local import lambda_events as events
from dunning_local.stack import LocalStack

ACCOUNT, REGION = "123456789012", "us-east-1"
PHONE = "+12125550142"
LOANS = 60
FIRST_DUE = date(2026, 1, 20)
OLD_ACTIVE = "L-0000"  # reminded first, never paid
ONE_WRITE_UNIT = 1024


class Life:
    def __init__(self, stack: LocalStack, session: boto3.Session) -> None:
        self.stack = stack
        dynamodb = session.resource("dynamodb")
        self.loans = dynamodb.Table(stack.tables["LoansTable"])
        self.state_client = session.client("dynamodb")
        borrower = Borrower(
            borrower_id="B-1",
            first_name="Ada",
            time_zone="America/New_York",
            phone=PHONE,
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True),
        )
        dynamodb.Table(stack.tables["BorrowersTable"]).put_item(Item=borrower_to_item(borrower))
        settings = SenderSettings.from_env(stack.function_environment("SenderFunction"))
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.sender: Sender = dataclasses.replace(build_sender(settings), pacer=None, clock=lambda: self.now)
        self.largest = 0

    def loan(self, loan_id: str, due: date, status: LoanStatus = LoanStatus.ACTIVE) -> None:
        loan = Loan(
            loan_id=loan_id,
            borrower_id="B-1",
            currency="USD",
            amount_due=Decimal("80.00"),
            due_date=due,
            jurisdiction="US-NY",
            status=status,
        )
        self.loans.put_item(Item=loan_to_item(loan))

    def send(self, loan_id: str, step: str, at: datetime) -> None:
        """One job through the sender at ``at`` (09:00 in New York)."""
        self.now = at
        job = Job(
            job_id=f"{loan_id}#{step}",
            loan_id=loan_id,
            borrower_id="B-1",
            step=step,
            channel=Channel.SMS,
            template="pre_due" if step.startswith("D-") else "due_reminder",
            planned_at=at,
            expires_at=at + timedelta(hours=1),
            rule_id="cadence.step_due",
            reason="step due",
            phone=PHONE,
        )
        message = {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": "rh",
            "Body": job.to_json(),
            "Attributes": {},
        }
        event = events.sqs_event([message], self.stack.get_att("SmsQueue", "Arn"))
        response = self.sender.process(event, None, MetricsRecorder())
        assert response == {"batchItemFailures": []}
        self.largest = max(self.largest, item_size(self.contact()))

    def contact(self) -> dict[str, Any]:
        key = {"pk": {"S": "BORROWER#B-1"}, "sk": {"S": "CONTACT"}}
        return self.state_client.get_item(TableName=self.stack.tables["StateTable"], Key=key)["Item"]

    def claims(self) -> set[str]:
        return set(self.contact()["claims"]["SS"])


@pytest.fixture
def life(stack: LocalStack, aws: boto3.Session) -> Iterator[Life]:
    yield Life(stack, aws)


def texts() -> list[tuple[str, str]]:
    return list(sns_backends[ACCOUNT][REGION].sms_messages.values())


def at_nine(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=14)


def test_claims_of_paid_loans_are_pruned_and_the_contact_item_stays_under_1_kb(life: Life) -> None:
    old_due = FIRST_DUE - timedelta(days=30)
    life.loan(OLD_ACTIVE, old_due)
    life.send(OLD_ACTIVE, "D-1", at_nine(old_due - timedelta(days=1)))
    life.send(OLD_ACTIVE, "D+1", at_nine(old_due + timedelta(days=1)))
    for n in range(1, LOANS + 1):
        loan_id, due = f"L-{n:04d}", FIRST_DUE + timedelta(days=30 * n)
        life.loan(loan_id, due)
        life.send(loan_id, "D-1", at_nine(due - timedelta(days=1)))
        life.send(loan_id, "D+1", at_nine(due + timedelta(days=1)))
        life.loan(loan_id, due, LoanStatus.PAID)

    claims = life.claims()
    assert len(texts()) == 2 * (LOANS + 1)
    assert life.largest < ONE_WRITE_UNIT, f"the contact item reached {life.largest} bytes"
    assert {f"{OLD_ACTIVE}#D-1", f"{OLD_ACTIVE}#D+1"} <= claims  # a loan still active keeps its claims
    assert "L-0001#D-1" not in claims  # a paid loan's claims go once its sends left the window
    assert f"L-{LOANS:04d}#D+1" in claims  # ...not before


def test_a_redelivered_job_of_an_old_active_loan_is_not_sent_again(life: Life) -> None:
    old_due = FIRST_DUE - timedelta(days=30)
    life.loan(OLD_ACTIVE, old_due)
    life.send(OLD_ACTIVE, "D+1", at_nine(old_due + timedelta(days=1)))
    for n in range(1, 10):
        loan_id, due = f"L-{n:04d}", FIRST_DUE + timedelta(days=30 * n)
        life.loan(loan_id, due)
        life.send(loan_id, "D-1", at_nine(due - timedelta(days=1)))
        life.loan(loan_id, due, LoanStatus.PAID)
    sent = len(texts())

    # The same step's job again, a year on: its claim is still there, so nothing goes out.
    life.send(OLD_ACTIVE, "D+1", at_nine(old_due + timedelta(days=366)))

    assert len(texts()) == sent
    assert f"{OLD_ACTIVE}#D+1" in life.claims()
