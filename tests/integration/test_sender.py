"""The sender through the real SenderFunction: re-checks, claims, throttling, dead contact points."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import boto3
import pytest
from moto.sns.exceptions import SNSException, SNSInvalidParameter
from moto.sns.models import sns_backends
from pipeline_helpers import FCM_APP_NAME

from dunning.items import borrower_to_item, loan_to_item
from dunning.jobs import Job
from dunning.models import Address, Borrower, Channel, Consent, Loan, PushEndpoint
from dunning.settings import SettingsError
from dunning_local import lambda_events as events
from dunning_local.invoke import batch_item_failures, invoke
from dunning_local.stack import LocalStack

ACCOUNT, REGION = "123456789012", "us-east-1"
TICK = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 in New York
PHONE = "+12125550142"


class World:
    def __init__(self, stack: LocalStack, session: boto3.Session) -> None:
        self.stack = stack
        dynamodb = session.resource("dynamodb")
        self.loans = dynamodb.Table(stack.tables["LoansTable"])
        self.borrowers = dynamodb.Table(stack.tables["BorrowersTable"])
        self.state = dynamodb.Table(stack.tables["StateTable"])
        self.ledger = dynamodb.Table(stack.tables["LedgerTable"])
        sns = session.client("sns")
        app = sns.create_platform_application(
            Name=FCM_APP_NAME, Platform="GCM", Attributes={"PlatformCredential": "x"}
        )
        self.endpoint = sns.create_platform_endpoint(
            PlatformApplicationArn=app["PlatformApplicationArn"], Token="token-0001"
        )["EndpointArn"]
        self.sns = sns
        borrower = Borrower(
            borrower_id="B-1",
            first_name="Ada",
            time_zone="America/New_York",
            phone=PHONE,
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True, push=True),
            push_endpoints=(PushEndpoint(arn=self.endpoint, platform="GCM"),),
        )
        self.borrowers.put_item(Item=borrower_to_item(borrower))
        loan = Loan(
            loan_id="L-1",
            borrower_id="B-1",
            currency="USD",
            amount_due=Decimal("250.00"),
            due_date=date(2026, 2, 23),
            jurisdiction="US-NY",
        )
        self.loans.put_item(Item=loan_to_item(loan))
        # The cadence item as the planner leaves it after publishing the job.
        self.state.put_item(
            Item={
                "pk": "LOAN#L-1",
                "sk": "CADENCE",
                "loan_id": "L-1",
                "borrower_id": "B-1",
                "home_shard": "DUE#03",
                "due_shard": "DUE#03",
                "next_contact_at": "2026-03-10T14:00:00Z",
            }
        )

    def job(self, step: str = "D+7", channel: Channel = Channel.SMS, planned_at: datetime = TICK) -> Job:
        return Job(
            job_id=f"L-1#{step}",
            loan_id="L-1",
            borrower_id="B-1",
            step=step,
            channel=channel,
            template="overdue",
            planned_at=planned_at,
            expires_at=planned_at + timedelta(hours=1),
            rule_id="cadence.step_due",
            reason="step due",
            phone=PHONE,
        )

    def send(self, bodies: list[str], at: datetime, **env: str) -> list[str]:
        messages = [
            {"MessageId": str(uuid.uuid4()), "ReceiptHandle": "rh", "Body": body, "Attributes": {}}
            for body in bodies
        ]
        event = events.sqs_event(messages, self.stack.get_att("SmsQueue", "Arn"))
        return batch_item_failures(invoke("SenderFunction", event, self.stack, now=at, env_overrides=env))

    def contact(self) -> dict[str, Any]:
        return self.state.get_item(Key={"pk": "BORROWER#B-1", "sk": "CONTACT"}).get("Item", {})

    def outcome(self, step: str = "D+7") -> dict[str, Any]:
        return self.ledger.get_item(Key={"pk": f"JOB#L-1#{step}", "sk": "OUTCOME"}).get("Item", {})

    def messages(self) -> list[dict[str, Any]]:
        return [i for i in self.ledger.scan()["Items"] if i["sk"] == "MESSAGE"]

    @staticmethod
    def texts() -> list[tuple[str, str]]:
        return list(sns_backends[ACCOUNT][REGION].sms_messages.values())

    def pushes(self) -> list[str]:
        return list(sns_backends[ACCOUNT][REGION].platform_endpoints[self.endpoint].messages.values())


@pytest.fixture
def world(stack: LocalStack, aws: boto3.Session) -> Iterator[World]:
    yield World(stack, aws)


def test_a_job_is_sent_once_and_recorded(world: World) -> None:
    assert world.send([world.job().to_json()], TICK + timedelta(minutes=1)) == []
    ((number, text),) = world.texts()
    assert number == PHONE
    assert "STOP" in text
    (message,) = world.messages()
    assert message["status"] == "SENT"
    assert message["step"] == "D+7"
    assert message["contact_point"] == PHONE
    contact = world.contact()
    assert contact["claims"] == {"L-1#D+7"}
    assert contact["version"] == 1
    assert [s["step"] for s in contact["sends"]] == ["D+7"]


@pytest.mark.filterwarnings("ignore:Exception\\(SNSException\\) with code Throttling")
def test_throttling_releases_the_claim_and_the_job_is_retried_later(world: World) -> None:
    backend = sns_backends[ACCOUNT][REGION]
    body = world.job().to_json()
    throttled = SNSException("Throttling", "Rate exceeded")
    with patch.object(backend, "publish", side_effect=throttled) as publish:
        failures = world.send(
            [body], TICK + timedelta(minutes=1), AWS_RETRY_MODE="standard", AWS_MAX_ATTEMPTS="2"
        )
    assert len(failures) == 1  # reported, not lost
    # Attempted once, even with botocore told to retry: a retry after a lost response sends twice.
    assert publish.call_count == 1
    assert world.texts() == []
    assert world.messages() == []
    contact = world.contact()
    assert "L-1#D+7" not in contact.get("claims", set())
    assert contact.get("sends", []) == []

    assert world.send([body], TICK + timedelta(minutes=3)) == []
    assert len(world.texts()) == 1
    assert world.contact()["claims"] == {"L-1#D+7"}


def test_a_dead_number_is_marked_and_the_step_goes_out_by_push(world: World) -> None:
    backend = sns_backends[ACCOUNT][REGION]
    original = backend.publish

    def refuse_the_number(message: str, arn: str | None, phone_number: str | None = None, **kw: Any) -> str:
        if phone_number:
            raise SNSInvalidParameter(
                f"Invalid parameter: PhoneNumber Reason: {phone_number} is not valid to publish"
            )
        return original(message, arn, phone_number=phone_number, **kw)

    with patch.object(backend, "publish", side_effect=refuse_the_number):
        assert world.send([world.job().to_json()], TICK + timedelta(minutes=1)) == []
    outcome = world.outcome()
    assert outcome["status"] == "FAILED"
    assert outcome["rule_id"] == "publish.contact_point"
    contact = world.contact()
    assert PHONE in contact["unusable"]
    # The strategy lets push stand in for a text: the same step went out on the borrower's app.
    (push,) = world.pushes()
    assert json.loads(push)["GCM"]
    (message,) = world.messages()
    assert message["channel"] == "push"
    assert message["step"] == "D+7"
    assert message["contact_point"] == world.endpoint
    assert contact["claims"] == {"L-1#D+7"}
    assert [s["channel"] for s in contact["sends"]] == ["push"]


def test_a_disabled_endpoint_is_marked_and_the_step_goes_out_by_text(world: World) -> None:
    # Due on 27 Feb: at the tick, step D+3 is due, a push.
    loan = Loan(
        loan_id="L-1",
        borrower_id="B-1",
        currency="USD",
        amount_due=Decimal("250.00"),
        due_date=date(2026, 2, 27),
        jurisdiction="US-NY",
    )
    world.loans.put_item(Item=loan_to_item(loan))
    world.sns.set_endpoint_attributes(EndpointArn=world.endpoint, Attributes={"Enabled": "false"})
    assert world.send([world.job("D+3", Channel.PUSH).to_json()], TICK + timedelta(minutes=1)) == []
    assert world.outcome("D+3")["status"] == "FAILED"
    assert world.endpoint in world.contact()["unusable"]
    ((number, _),) = world.texts()
    assert number == PHONE


def test_an_expired_job_is_not_sent(world: World) -> None:
    assert world.send([world.job().to_json()], TICK + timedelta(hours=2)) == []
    assert world.texts() == []
    assert world.outcome()["status"] == "EXPIRED"


def test_a_job_outside_the_window_is_suppressed_and_re_planned(world: World) -> None:
    night = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # 22:00 in New York
    assert world.send([world.job(planned_at=night).to_json()], night + timedelta(minutes=1)) == []
    assert world.texts() == []
    outcome = world.outcome()
    assert outcome["status"] == "SUPPRESSED"
    assert outcome["rule_id"].startswith("window.")
    cadence = world.state.get_item(Key={"pk": "LOAN#L-1", "sk": "CADENCE"})["Item"]
    assert cadence["next_contact_at"] == "2026-03-03T13:00:00Z"  # 08:00 in New York, not 03-10


def test_bad_bodies_are_recorded_and_consumed(world: World) -> None:
    good = world.job().to_json()
    bad = ["not json", json.dumps({"job_id": "x"}), json.dumps([1, 2])]
    assert world.send([*bad, good], TICK + timedelta(minutes=1)) == []
    invalid = [i for i in world.ledger.scan()["Items"] if i["sk"] == "INVALID_JOB"]
    assert len(invalid) == 3
    assert all("reason" in i for i in invalid)
    assert len(world.texts()) == 1


def test_a_redelivered_job_is_ambiguous_never_resent(world: World) -> None:
    body = world.job().to_json()
    world.send([body], TICK + timedelta(minutes=1))
    world.send([body], TICK + timedelta(minutes=8))
    assert len(world.texts()) == 1
    assert world.outcome()["status"] == "AMBIGUOUS"


def test_sms_attributes_follow_the_settings(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[dict[str, Any]] = []
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session(region_name=REGION)
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register(
        "provide-client-params.sns.Publish", lambda params, **_: published.append(dict(params))
    )
    settings = {"SMS_ORIGINATION_IDENTITY": "+12125550101", "SMS_MAX_PRICE_USD": "0.50"}
    assert world.send([world.job().to_json()], TICK + timedelta(minutes=1), **settings) == []
    (params,) = published
    assert params["PhoneNumber"] == PHONE
    assert params["MessageAttributes"] == {
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
        "AWS.MM.SMS.OriginationNumber": {"DataType": "String", "StringValue": "+12125550101"},
        "AWS.SNS.SMS.MaxPrice": {"DataType": "Number", "StringValue": "0.50"},
    }
    # A sender id instead of a number, and no price cap: only what is set is sent.
    published.clear()
    later = TICK + timedelta(days=8)
    world.send([world.job("D+15", planned_at=later).to_json()], later, SMS_ORIGINATION_IDENTITY="ExampleLnd")
    (params,) = published
    assert set(params["MessageAttributes"]) == {"AWS.SNS.SMS.SMSType", "AWS.SNS.SMS.SenderID"}


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_misconfigured_function_fails_loudly_naming_the_variable(world: World) -> None:
    with pytest.raises(SettingsError, match="JOB_TTL_MINUTES"):
        world.send([world.job().to_json()], TICK, JOB_TTL_MINUTES="soon")


def test_metrics_say_what_was_sent_by_channel(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.send([world.job().to_json()], TICK + timedelta(minutes=1))
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    sent = [b for b in blobs if "Sent" in b]
    assert sent
    assert sent[0]["channel"] == "sms"
    assert sent[0]["Sent"] in (1, [1.0], 1.0)
    assert any(b.get("Jobs") for b in blobs)


def test_a_message_to_a_point_with_counted_failures_says_so_for_its_receipt(world: World) -> None:
    # Two failures were counted against the number; the DELIVERED receipt of this message resets them
    # (receipts read contact items only for messages marked so).
    world.state.put_item(
        Item={"pk": "BORROWER#B-1", "sk": "CONTACT", "version": 2, "hard_failures": {PHONE: 2}}
    )
    assert world.send([world.job().to_json()], TICK + timedelta(minutes=1)) == []
    (message,) = world.messages()
    assert message["failures_counted"] is True


def test_a_message_to_a_point_without_failures_carries_no_mark(world: World) -> None:
    assert world.send([world.job().to_json()], TICK + timedelta(minutes=1)) == []
    (message,) = world.messages()
    assert "failures_counted" not in message
