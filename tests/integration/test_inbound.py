"""Two-way SMS through the real InboundFunction: STOP / START / HELP / free text."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.sns.models import sns_backends

from dunning.items import borrower_to_item, loan_to_item
from dunning.models import Borrower, Consent, Loan
from dunning_local import lambda_events as events
from dunning_local.invoke import invoke
from dunning_local.stack import LocalStack

AT = datetime(2026, 3, 2, 14, 20, tzinfo=UTC)
PHONE = "+12125550142"
OUR_NUMBER = "+12125550101"


@pytest.fixture
def replies(stack: LocalStack, aws: boto3.Session) -> Iterator[dict[str, Any]]:
    """Two borrowers share PHONE; an SQS queue listens on the AttentionTopic."""
    dynamodb = aws.resource("dynamodb")
    for borrower_id in ("B-1", "B-2"):
        borrower = Borrower(
            borrower_id=borrower_id, phone=PHONE, time_zone="America/New_York", consent=Consent(sms=True)
        )
        dynamodb.Table(stack.tables["BorrowersTable"]).put_item(Item=borrower_to_item(borrower))
    loan = Loan(
        loan_id="L-1",
        borrower_id="B-1",
        currency="USD",
        amount_due=100,
        due_date="2026-02-23",
        jurisdiction="US-NY",
    )
    dynamodb.Table(stack.tables["LoansTable"]).put_item(Item=loan_to_item(loan))
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName="attention-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws.client("sns").subscribe(TopicArn=stack.topics["AttentionTopic"], Protocol="sqs", Endpoint=queue_arn)
    yield {
        "sqs": sqs,
        "queue": queue_url,
        "state": dynamodb.Table(stack.tables["StateTable"]),
        "ledger": dynamodb.Table(stack.tables["LedgerTable"]),
    }


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """What the functions log, formatted exactly as their log handler formats it."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            service = logging.getLogger("dunning")
            formatter = service.handlers[0].formatter if service.handlers else None
            lines.append(formatter.format(record) if formatter else record.getMessage())

    handler = Collect()
    logging.getLogger("dunning").addHandler(handler)
    yield lines
    logging.getLogger("dunning").removeHandler(handler)


def reply(stack: LocalStack, body: str, inbound_id: str, at: datetime = AT, phone: str = PHONE) -> Any:
    message = events.inbound_sms(phone, OUR_NUMBER, body, inbound_id=inbound_id)
    return invoke(
        "InboundFunction", events.sns_event(str(stack.topics["InboundTopic"]), message, at), stack, now=at
    )


def texts_to(phone: str) -> list[str]:
    return [
        text
        for number, text in sns_backends["123456789012"]["us-east-1"].sms_messages.values()
        if number == phone
    ]


def test_help_gets_the_lenders_contact_and_the_way_out(stack: LocalStack, replies: dict[str, Any]) -> None:
    assert reply(stack, "HELP", "in-1") == {"handled": 1}
    (text,) = texts_to(PHONE)
    assert "Example Lending Co." in text
    assert "(212) 555-0142" in text
    assert "Reply STOP" in text
    reply(stack, "HELP", "in-1")  # redelivered: no second reply
    assert len(texts_to(PHONE)) == 1


def test_free_text_pauses_reminders_and_asks_a_person(
    stack: LocalStack, replies: dict[str, Any], log_lines: list[str]
) -> None:
    body = "I lost my job, can we talk about a payment plan?"
    reply(stack, body, "in-2")
    assert texts_to(PHONE) == []  # no automatic answer to free text
    for borrower_id in ("B-1", "B-2"):
        contact = replies["state"].get_item(Key={"pk": f"BORROWER#{borrower_id}", "sk": "CONTACT"})["Item"]
        assert contact["paused_until"] == "2026-03-09T14:20:00Z"  # INBOUND_PAUSE_DAYS = 7
        recorded = replies["ledger"].query(
            KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": f"BORROWER#{borrower_id}"}
        )["Items"]
        assert [i["body"] for i in recorded] == [body]
        assert recorded[0]["intent"] == "OTHER"
    (message,) = replies["sqs"].receive_message(QueueUrl=replies["queue"])["Messages"]
    attention = json.loads(json.loads(message["Body"])["Message"])
    assert attention["type"] == "inbound.free_text"
    assert attention["body"] == body
    assert attention["borrower_ids"] == ["B-1", "B-2"]
    assert attention["phone"] == PHONE
    # Logs say what happened without the words or the number.
    assert log_lines
    assert not any(body in line or PHONE in line for line in log_lines)
    assert any("+12*******42" in line for line in log_lines)


def test_a_chinese_paid_reply_is_for_a_person_too(stack: LocalStack, replies: dict[str, Any]) -> None:
    reply(stack, "已还款", "in-3")
    contact = replies["state"].get_item(Key={"pk": "BORROWER#B-1", "sk": "CONTACT"})["Item"]
    assert "paused_until" in contact


def test_stop_from_an_unknown_number_is_still_honoured(stack: LocalStack, replies: dict[str, Any]) -> None:
    stranger = "+12125550199"
    reply(stack, "退订", "in-4", phone=stranger)
    consent = replies["state"].get_item(Key={"pk": f"PHONE#{stranger}", "sk": "CONSENT"})["Item"]
    assert consent["sms_opted_out"] is True
    assert consent["source"] == "sms-reply"
    (confirmation,) = texts_to(stranger)
    assert confirmation.startswith("【示例金融】")
    assert "不再" in confirmation


def test_replies_from_another_topic_are_ignored(stack: LocalStack, replies: dict[str, Any]) -> None:
    message = events.inbound_sms(PHONE, OUR_NUMBER, "STOP", inbound_id="in-5")
    event = events.sns_event("arn:aws:sns:us-east-1:123456789012:someone-else", message, AT)
    assert invoke("InboundFunction", event, stack, now=AT) == {"handled": 0}
    assert replies["state"].get_item(Key={"pk": f"PHONE#{PHONE}", "sk": "CONSENT"}).get("Item") is None


def test_stop_then_start_each_confirmed_once(stack: LocalStack, replies: dict[str, Any]) -> None:
    reply(stack, "stop", "in-6")
    reply(stack, "STOP", "in-7", AT + timedelta(minutes=1))
    reply(stack, "START", "in-8", AT + timedelta(minutes=2))
    reply(stack, "START", "in-8", AT + timedelta(minutes=2))
    stop_confirmation, start_confirmation = texts_to(PHONE)
    assert "no further messages" in stop_confirmation
    assert "again" in start_confirmation
    consent = replies["state"].get_item(Key={"pk": f"PHONE#{PHONE}", "sk": "CONSENT"})["Item"]
    assert consent["sms_opted_out"] is False
