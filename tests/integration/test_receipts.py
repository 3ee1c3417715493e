"""Receipts through the real ReceiptsFunction: delivery-status logs and End User Messaging events → ledger."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from dunning_local import lambda_events as events
from dunning_local.invoke import invoke
from dunning_local.stack import LocalStack

AT = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
PHONE = "+12125550142"


class Ledger:
    def __init__(self, stack: LocalStack, session: boto3.Session) -> None:
        dynamodb = session.resource("dynamodb")
        self.table = dynamodb.Table(stack.tables["LedgerTable"])
        self.state = dynamodb.Table(stack.tables["StateTable"])

    def sent(
        self,
        message_id: str,
        *,
        loan_id: str = "L-1",
        channel: str = "sms",
        point: str = PHONE,
        failures_counted: bool = False,
    ) -> None:
        """A MESSAGE item as the sender writes it (``failures_counted``: the point had failures counted
        when it was sent)."""
        extra = {"failures_counted": True} if failures_counted else {}
        self.table.put_item(
            Item={
                **extra,
                "pk": f"MSG#{message_id}",
                "sk": "MESSAGE",
                "type": "MESSAGE",
                "message_id": message_id,
                "loan_id": loan_id,
                "borrower_id": "B-1",
                "step": "D+7",
                "channel": channel,
                "contact_point": point,
                "status": "SENT",
                "at": "2026-03-02T14:00:30Z",
                "expires_at": 1850000000,
            }
        )

    def item(self, message_id: str, sk: str = "MESSAGE") -> dict[str, Any]:
        return self.table.get_item(Key={"pk": f"MSG#{message_id}", "sk": sk}).get("Item", {})

    def contact(self) -> dict[str, Any]:
        return self.state.get_item(Key={"pk": "BORROWER#B-1", "sk": "CONTACT"}).get("Item", {})


@pytest.fixture
def ledger(stack: LocalStack, aws: boto3.Session) -> Ledger:
    return Ledger(stack, aws)


def group(stack: LocalStack, logical_id: str) -> str:
    return str(stack.ref(logical_id))


def logs(stack: LocalStack, logical_id: str, *records: dict[str, Any]) -> dict[str, Any]:
    return events.logs_subscription_event(group(stack, logical_id), [(AT, r) for r in records])


def receipts(stack: LocalStack, event: dict[str, Any]) -> Any:
    return invoke("ReceiptsFunction", event, stack, now=AT + timedelta(minutes=1))


def test_a_delivered_sms_gets_its_provider_details(stack: LocalStack, ledger: Ledger) -> None:
    ledger.sent("m-1")
    record = events.sms_delivery_record("m-1", PHONE, AT, success=True, price=0.00581)
    assert receipts(stack, logs(stack, "SmsDeliveryLogGroup", record)) == {"receipts": 1}
    item = ledger.item("m-1")
    assert item["status"] == "DELIVERED"
    assert item["carrier"] == "Example Carrier"
    assert item["price_usd"] == Decimal("0.00581")
    assert item["dwell_ms"] == 412
    assert item["receipt_at"] == "2026-03-02T14:05:00Z"
    assert item["loan_id"] == "L-1"
    assert item["at"] == "2026-03-02T14:00:30Z"  # the send is kept


def test_a_receipt_for_an_unknown_message_is_kept_not_lost(stack: LocalStack, ledger: Ledger) -> None:
    record = events.sms_delivery_record("m-unknown", PHONE, AT, success=True, price=0.00581)
    assert receipts(stack, logs(stack, "SmsDeliveryLogGroup", record)) == {"receipts": 1}
    assert ledger.item("m-unknown") == {}
    kept = ledger.item("m-unknown", "RECEIPT")
    assert kept["status"] == "DELIVERED"
    assert kept["receipt_source"] == "sns-sms"


def test_control_messages_foreign_log_groups_and_bad_events_are_skipped(
    stack: LocalStack, ledger: Ledger
) -> None:
    ledger.sent("m-2")
    control = {"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logEvents": []}
    event = {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(control).encode())).decode()}}
    assert receipts(stack, event) == {"receipts": 0}
    foreign = events.logs_subscription_event(
        "some/other/group", [(AT, events.sms_delivery_record("m-2", PHONE, AT, success=False, price=0))]
    )
    assert receipts(stack, foreign) == {"receipts": 0}
    assert receipts(stack, {"awslogs": {"data": "not base64 gzip"}}) == {"receipts": 0}
    assert ledger.item("m-2")["status"] == "SENT"
    # One unreadable log event among good ones: the good ones count.
    good = events.sms_delivery_record("m-2", PHONE, AT, success=True, price=0.00581)
    mixed = logs(stack, "SmsDeliveryLogGroup", {"not": "a receipt"}, good)
    assert receipts(stack, mixed) == {"receipts": 1}
    assert ledger.item("m-2")["status"] == "DELIVERED"


def test_end_user_messaging_events_only_from_the_configured_topic(stack: LocalStack, ledger: Ledger) -> None:
    ledger.sent("eum-1")
    payload = {
        "eventType": "TEXT_DELIVERED",
        "isFinal": True,
        "messageId": "eum-1",
        "destinationPhoneNumber": PHONE,
        "originationPhoneNumber": "+12125550101",
        "messageStatus": "DELIVERED",
        "messageStatusDescription": "Message has been delivered",
        "totalMessageParts": 1,
        "totalMessagePrice": 0.00581,
        "eventTimestamp": int(AT.timestamp() * 1000),
    }
    foreign = events.sns_event("arn:aws:sns:us-east-1:123456789012:not-ours", json.dumps(payload), AT)
    assert receipts(stack, foreign) == {"receipts": 0}
    assert ledger.item("eum-1")["status"] == "SENT"
    ours = events.sns_event(str(stack.topics["DeliveryEventsTopic"]), json.dumps(payload), AT)
    assert receipts(stack, ours) == {"receipts": 1}
    item = ledger.item("eum-1")
    assert item["status"] == "DELIVERED"
    assert item["receipt_source"] == "eum-sms"
    # A progress event (not final) changes nothing.
    pending = events.sns_event(
        str(stack.topics["DeliveryEventsTopic"]),
        json.dumps({**payload, "eventType": "TEXT_PENDING", "isFinal": False}),
        AT,
    )
    assert receipts(stack, pending) == {"receipts": 0}


def test_repeated_hard_failures_make_the_number_unusable(stack: LocalStack, ledger: Ledger) -> None:
    for n in range(3):  # HARD_FAILURE_THRESHOLD in the template
        ledger.sent(f"hard-{n}")
        record = events.sms_delivery_record(
            f"hard-{n}", PHONE, AT + timedelta(minutes=n), success=False, price=0
        )
        receipts(stack, logs(stack, "SmsDeliveryFailureLogGroup", record))
        # The same receipt delivered again is not a second failure.
        receipts(stack, logs(stack, "SmsDeliveryFailureLogGroup", record))
        unusable = ledger.contact().get("unusable", set())
        assert (PHONE in unusable) == (n == 2)
    assert ledger.contact()["hard_failures"][PHONE] == 3
    assert ledger.item("hard-2")["status"] == "FAILED"
    assert ledger.item("hard-2")["hard_failure"] is True


def test_a_late_older_receipt_does_not_overwrite_a_newer_one(stack: LocalStack, ledger: Ledger) -> None:
    ledger.sent("m-3")
    newer = events.sms_delivery_record("m-3", PHONE, AT + timedelta(minutes=5), success=True, price=0.00581)
    older = events.sms_delivery_record("m-3", PHONE, AT, success=False, price=0)
    receipts(stack, logs(stack, "SmsDeliveryLogGroup", newer))
    receipts(stack, logs(stack, "SmsDeliveryFailureLogGroup", older))
    assert ledger.item("m-3")["status"] == "DELIVERED"


def test_push_receipts_close_push_messages(stack: LocalStack, ledger: Ledger) -> None:
    endpoint = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/ExampleApp/3f1a"
    ledger.sent("p-1", channel="push", point=endpoint)
    record = events.push_delivery_record("p-1", endpoint, AT, success=False)
    assert receipts(stack, logs(stack, "FcmDeliveryFailureLogGroup", record)) == {"receipts": 1}
    item = ledger.item("p-1")
    assert item["status"] == "FAILED"
    assert item["receipt_source"] == "sns-push"
    assert item["hard_failure"] is True


# ---- what a failure says about the number (transient, repeated, permanent) -------------------------


def sms_failure(message_id: str, at: datetime, response: str) -> dict[str, Any]:
    """An SNS SMS failure log record as SNS writes it, with the given provider response."""
    record = events.sms_delivery_record(message_id, PHONE, at, success=False, price=0)
    record["delivery"]["providerResponse"] = response
    return record


def eum_event(message_id: str, event_type: str, at: datetime, *, final: bool = True) -> dict[str, Any]:
    """An End User Messaging SMS v2 event (the shape in AWS-NOTES)."""
    return {
        "eventType": event_type,
        "isFinal": final,
        "messageId": message_id,
        "destinationPhoneNumber": PHONE,
        "originationPhoneNumber": "+12125550101",
        "messageStatus": event_type.removeprefix("TEXT_"),
        "messageStatusDescription": "status from the carrier",
        "totalMessageParts": 1,
        "totalMessagePrice": 0.00581,
        "totalCarrierFee": 0.0025,
        "context": {"loan": "L-1"},
        "eventTimestamp": int(at.timestamp() * 1000),
    }


@pytest.mark.parametrize(
    "response",
    ["Phone is currently unreachable/unavailable", "Phone carrier is currently unreachable/unavailable"],
)
def test_unreachable_and_carrier_temporary_failures_never_count_against_the_number(
    stack: LocalStack, ledger: Ledger, response: str
) -> None:
    for n in range(5):
        ledger.sent(f"t-{n}")
        record = sms_failure(f"t-{n}", AT + timedelta(minutes=n), response)
        assert receipts(stack, logs(stack, "SmsDeliveryFailureLogGroup", record)) == {"receipts": 1}
    assert PHONE not in ledger.contact().get("unusable", set())
    assert PHONE not in ledger.contact().get("hard_failures", {})
    item = ledger.item("t-4")
    assert item["status"] == "FAILED"
    assert item["failure_kind"] == "transient"
    assert "hard_failure" not in item


def test_an_invalid_number_is_unusable_after_one_failure(stack: LocalStack, ledger: Ledger) -> None:
    ledger.sent("inv-1")
    record = sms_failure("inv-1", AT, "Invalid phone number")
    assert receipts(stack, logs(stack, "SmsDeliveryFailureLogGroup", record)) == {"receipts": 1}
    assert PHONE in ledger.contact()["unusable"]
    assert ledger.item("inv-1")["failure_kind"] == "permanent"


@pytest.mark.parametrize(
    "response",
    [
        "NotificationErrorResponse(command=8, status=InvalidToken, id=1, cause=null)",
        "Endpoint is disabled: EndpointDisabled",
    ],
)
def test_a_dead_push_token_or_disabled_endpoint_is_unusable_after_one_failure(
    stack: LocalStack, ledger: Ledger, response: str
) -> None:
    endpoint = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/ExampleApp/3f1a"
    ledger.sent("p-dead", channel="push", point=endpoint)
    record = events.push_delivery_record("p-dead", endpoint, AT, success=False)
    record["delivery"]["providerResponse"] = response
    assert receipts(stack, logs(stack, "FcmDeliveryFailureLogGroup", record)) == {"receipts": 1}
    assert endpoint in ledger.contact()["unusable"]


def test_a_push_service_outage_does_not_count_against_the_token(stack: LocalStack, ledger: Ledger) -> None:
    endpoint = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/ExampleApp/3f1a"
    for n in range(4):
        ledger.sent(f"p-out-{n}", channel="push", point=endpoint)
        record = events.push_delivery_record(f"p-out-{n}", endpoint, AT + timedelta(minutes=n), success=False)
        record["delivery"]["providerResponse"] = "Service Unavailable (503)"
        receipts(stack, logs(stack, "FcmDeliveryFailureLogGroup", record))
    assert endpoint not in ledger.contact().get("unusable", set())


def test_a_delivery_resets_the_count_of_failures(stack: LocalStack, ledger: Ledger) -> None:
    minute = iter(range(100))

    def fail(message_id: str) -> None:
        ledger.sent(message_id)
        at = AT + timedelta(minutes=next(minute))
        receipts(
            stack,
            logs(
                stack,
                "SmsDeliveryFailureLogGroup",
                sms_failure(message_id, at, "Unknown error attempting to reach phone"),
            ),
        )

    fail("r-1")
    fail("r-2")
    assert ledger.contact()["hard_failures"][PHONE] == 2
    ledger.sent("r-ok", failures_counted=True)
    delivered = events.sms_delivery_record(
        "r-ok", PHONE, AT + timedelta(minutes=next(minute)), success=True, price=0.00581
    )
    receipts(stack, logs(stack, "SmsDeliveryLogGroup", delivered))
    assert PHONE not in ledger.contact().get("hard_failures", {})
    fail("r-3")
    fail("r-4")  # two more after the delivery: under the threshold of three
    assert PHONE not in ledger.contact().get("unusable", set())
    assert ledger.contact()["hard_failures"][PHONE] == 2


def test_end_user_messaging_events_through_a_logs_subscription_are_receipts(
    stack: LocalStack, ledger: Ledger
) -> None:
    ledger.sent("eum-log-1")
    ledger.sent("eum-log-2")
    event = logs(
        stack,
        "SmsEventsLogGroup",
        eum_event("eum-log-1", "TEXT_DELIVERED", AT),
        eum_event("eum-log-2", "TEXT_CARRIER_UNREACHABLE", AT),
        eum_event("eum-log-2", "TEXT_PENDING", AT, final=False),
    )
    assert receipts(stack, event) == {"receipts": 2}
    delivered, unreachable = ledger.item("eum-log-1"), ledger.item("eum-log-2")
    assert delivered["status"] == "DELIVERED"
    assert delivered["receipt_source"] == "eum-sms"
    assert unreachable["status"] == "FAILED"
    assert unreachable["failure_kind"] == "transient"
    assert PHONE not in ledger.contact().get("hard_failures", {})


def test_an_invalid_number_from_end_user_messaging_is_unusable_at_once(
    stack: LocalStack, ledger: Ledger
) -> None:
    ledger.sent("eum-inv")
    event = events.sns_event(
        str(stack.topics["DeliveryEventsTopic"]), json.dumps(eum_event("eum-inv", "TEXT_INVALID", AT)), AT
    )
    assert receipts(stack, event) == {"receipts": 1}
    assert PHONE in ledger.contact()["unusable"]


def test_end_user_messaging_events_in_a_foreign_log_group_are_rejected(
    stack: LocalStack, ledger: Ledger
) -> None:
    ledger.sent("eum-foreign")
    event = events.logs_subscription_event(
        "/dunning/someone-else/sms-events", [(AT, eum_event("eum-foreign", "TEXT_DELIVERED", AT))]
    )
    assert receipts(stack, event) == {"receipts": 0}
    assert ledger.item("eum-foreign")["status"] == "SENT"
