"""Writes every file under events/: Lambda events in the shapes AWS sends, the seed data and env.json.

    .venv/bin/python events/make_events.py           # rewrite the files
    .venv/bin/python events/make_events.py --check   # exit 1 if a file differs (the tests run this)

Resource names and ARNs are those of the local stack under the default prefix (built from
template.yaml on in-process moto, so they follow the template). Everything else is fixed, so the output
is byte-for-byte reproducible. Loans L-0001..L-0003, borrowers B-0001..B-0003; phone numbers are
fictional (555-01xx); account 123456789012, region us-east-1; the tick is Monday 2026-03-02 14:00 UTC.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import struct
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.types import TypeSerializer
from moto import mock_aws

from dunning_local.stack import DEFAULT_REGION, LocalStack, build_local_stack

EVENTS_DIR = Path(__file__).resolve().parent
DOCKER_ENDPOINT = "http://host.docker.internal:5000"
TICK = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
OUR_NUMBER = "+12125550101"


def _id(label: str) -> str:
    """A stable UUID per label, so that regenerating changes nothing."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dunning-events/{label}"))


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------------
# The lender's data (item contract: README). Plain values here, DynamoDB JSON in the files.

LOANS: list[dict[str, Any]] = [
    {
        "loan_id": "L-0001",
        "borrower_id": "B-0001",
        "currency": "USD",
        "amount_due": Decimal("250.00"),
        "due_date": "2026-02-23",
        "status": "ACTIVE",
        "product": "installment",
        "jurisdiction": "US-NY",
        "flags": {},
    },
    {
        "loan_id": "L-0002",
        "borrower_id": "B-0002",
        "currency": "USD",
        "amount_due": Decimal("120.50"),
        "due_date": "2026-03-01",
        "status": "ACTIVE",
        "product": "installment",
        "jurisdiction": "US-NY",
        "flags": {},
    },
    {
        "loan_id": "L-0003",
        "borrower_id": "B-0003",
        "currency": "USD",
        "amount_due": Decimal("75.00"),
        "due_date": "2026-02-27",
        "status": "ACTIVE",
        "product": "installment",
        "jurisdiction": "US-IL",
        "flags": {},
    },
]

APNS_ENDPOINT = "arn:aws:sns:us-east-1:123456789012:endpoint/APNS/dunning-apns/" + _id("endpoint/B-0003")

BORROWERS: list[dict[str, Any]] = [
    {
        "borrower_id": "B-0001",
        "first_name": "Alex",
        "locale": "en-US",
        "time_zone": "America/New_York",
        "address": {"country": "US", "region": "NY"},
        "phone": "+12125550142",
        "consent": {"sms": True, "push": False},
    },
    {
        "borrower_id": "B-0002",
        "first_name": "Wei",
        "locale": "zh-CN",
        "time_zone": "America/New_York",
        "address": {"country": "US", "region": "NY"},
        "phone": "+12125550143",
        "consent": {"sms": True, "push": False},
    },
    {
        "borrower_id": "B-0003",
        "first_name": "Sam",
        "locale": "en-US",
        "time_zone": "America/Chicago",
        "address": {"country": "US", "region": "IL"},
        "phone": "+13125550144",
        "push_endpoints": [{"arn": APNS_ENDPOINT, "platform": "APNS"}],
        "consent": {"sms": False, "push": True},
    },
]

_serializer = TypeSerializer()


def ddb_json(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items()}


def seed() -> dict[str, Any]:
    return {
        "LoansTable": [ddb_json(loan) for loan in LOANS],
        "BorrowersTable": [ddb_json(b) for b in BORROWERS],
    }


# ---------------------------------------------------------------------------------------------------
# Scheduler


def scheduled_tick() -> dict[str, Any]:
    # The schedule's Input after the scheduler substituted its placeholders.
    return {"scheduled_time": _iso(TICK), "execution_id": _id("execution/planner/tick")}


def daily_tick() -> dict[str, Any]:
    return {"scheduled_time": "2026-03-03T03:30:00Z"}


# ---------------------------------------------------------------------------------------------------
# SQS


def _md5_of_attributes(attributes: dict[str, dict[str, Any]]) -> str:
    """SQS's MD5OfMessageAttributes: length-prefixed name, type, transport byte and value, by name."""
    digest = hashlib.md5()  # the checksum SQS defines, not security
    for name in sorted(attributes):
        attribute = attributes[name]
        for part in (name, attribute["dataType"]):
            encoded = part.encode()
            digest.update(struct.pack(">I", len(encoded)) + encoded)
        value = attribute["stringValue"].encode()
        digest.update(b"\x01" + struct.pack(">I", len(value)) + value)
    return digest.hexdigest()


def sqs_record(
    queue_arn: str, body: str, label: str, sent: datetime, attributes: dict[str, str]
) -> dict[str, Any]:
    message_attributes = {
        name: {"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "String"}
        for name, value in attributes.items()
    }
    record: dict[str, Any] = {
        "messageId": _id(f"sqs/{label}"),
        "receiptHandle": "AQEB" + base64.b64encode(hashlib.sha256(label.encode()).digest() * 3).decode(),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(_ms(sent)),
            "SenderId": "AIDAIT2UOQQY3AUEKVGXU",
            "ApproximateFirstReceiveTimestamp": str(_ms(sent) + 41),
        },
        "messageAttributes": message_attributes,
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # SQS's checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": DEFAULT_REGION,
    }
    if message_attributes:
        record["md5OfMessageAttributes"] = _md5_of_attributes(message_attributes)
    return record


def job(loan: dict[str, Any], step: str, channel: str, days_past_due: int) -> dict[str, Any]:
    return {
        "job_id": f"{loan['loan_id']}#{step}",
        "loan_id": loan["loan_id"],
        "borrower_id": loan["borrower_id"],
        "step": step,
        "channel": channel,
        "template": "overdue",
        "planned_at": _iso(TICK),
        "expires_at": _iso(TICK + timedelta(minutes=60)),
        "rule_id": "cadence.step_due",
        "reason": f"Cadence step {step} is due ({days_past_due} days past due); inside the contact window "
        "and under every cap",
    }


def jobs_event(stack: LocalStack, queue: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    arn = stack.get_att(queue, "Arn")
    records = [
        sqs_record(
            arn,
            json.dumps(item),
            f"{queue}/{item['job_id']}",
            TICK + timedelta(seconds=3),
            {"channel": item["channel"]},
        )
        for item in jobs
    ]
    return {"Records": records}


def shard_task(stack: LocalStack) -> dict[str, Any]:
    body = json.dumps({"shard": "DUE#03", "scheduled_time": _iso(TICK), "continuation": None})
    return {"Records": [sqs_record(stack.get_att("PlanQueue", "Arn"), body, "plan/DUE#03", TICK, {})]}


# ---------------------------------------------------------------------------------------------------
# SNS envelopes (Lambda's SNS event)


def sns_event(topic_arn: str, message: dict[str, Any], label: str, at: datetime) -> dict[str, Any]:
    message_id = _id(f"sns/{label}")
    subscription = f"{topic_arn}:{_id(f'subscription/{topic_arn}')}"
    signature = base64.b64encode(hashlib.sha512(label.encode()).digest() * 4).decode()
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic_arn,
                    "Subject": None,
                    "Message": json.dumps(message),
                    "Timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
                    "SignatureVersion": "1",
                    "Signature": signature,
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-"
                    + hashlib.md5(b"cert").hexdigest()  # a made-up certificate name
                    + ".pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
                    + subscription,
                    "MessageAttributes": {},
                },
            }
        ]
    }


def inbound_sms(body: str, keyword: str | None, label: str) -> dict[str, Any]:
    message: dict[str, Any] = {"originationNumber": "+12125550142", "destinationNumber": OUR_NUMBER}
    if keyword is not None:
        message["messageKeyword"] = keyword
    message |= {
        "messageBody": body,
        "inboundMessageId": _id(f"inbound/{label}"),
        "previousPublishedMessageId": _id("published/L-0001#D+7"),
    }
    return message


def eum_delivered() -> dict[str, Any]:
    sent = TICK + timedelta(minutes=5, seconds=11)
    return {
        "eventType": "TEXT_DELIVERED",
        "eventVersion": "1.0",
        "eventTimestamp": _ms(sent + timedelta(seconds=2)),
        "isFinal": True,
        "originationPhoneNumber": OUR_NUMBER,
        "destinationPhoneNumber": "+12125550142",
        "isoCountryCode": "US",
        "mcc": "310",
        "mnc": "260",
        "carrierName": "Example Carrier",
        "messageId": _id("eum/L-0001#D+7"),
        "messageRequestTimestamp": _ms(sent),
        "messageEncoding": "GSM",
        "messageType": "TRANSACTIONAL",
        "messageStatus": "DELIVERED",
        "messageStatusDescription": "Message has been accepted by phone",
        "totalMessageParts": 1,
        "totalMessagePrice": 0.00581,
        "totalCarrierFee": 0.003,
        "context": {"loan_id": "L-0001", "step": "D+7", "job_id": "L-0001#D+7"},
    }


# ---------------------------------------------------------------------------------------------------
# CloudWatch Logs subscription events (SNS delivery-status logs)


def logs_event(group: str, records: list[dict[str, Any]], label: str, at: datetime) -> dict[str, Any]:
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group,
        "logStream": _id(f"stream/{label}"),
        "subscriptionFilters": [f"dunning-local-ReceiptsFunction-{label.replace('/', '-')}"],
        "logEvents": [
            {
                # AWS sends a numeric string (moto an int).
                "id": str(37_000_000_000_000_000_000_000_000_000_000_000_000_000_000 + index),
                "timestamp": _ms(at) + index,
                "message": json.dumps(record),
            }
            for index, record in enumerate(records)
        ],
    }
    compressed = gzip.compress(json.dumps(data).encode(), mtime=0)
    return {"awslogs": {"data": base64.b64encode(compressed).decode()}}


def _log_groups(stack: LocalStack) -> dict[str, str]:
    return {
        lid: stack.ref(lid)
        for lid in (
            "SmsDeliveryLogGroup",
            "SmsDeliveryFailureLogGroup",
            "ApnsDeliveryLogGroup",
            "ApnsDeliveryFailureLogGroup",
            "SmsEventsLogGroup",
        )
    }


def sms_status(phone: str, label: str, ok: bool) -> dict[str, Any]:
    at = TICK + timedelta(minutes=5, seconds=11)
    notification = {"messageId": _id(f"published/{label}"), "timestamp": at.strftime("%Y-%m-%d %H:%M:%S.221")}
    if ok:
        delivery = {
            "phoneCarrier": "Example Carrier",
            "mnc": 260,
            "destination": phone,
            "priceInUSD": 0.00581,
            "smsType": "Transactional",
            "mcc": 310,
            "providerResponse": "Message has been accepted by phone carrier",
            "dwellTimeMs": 412,
            "dwellTimeMsUntilDeviceAck": 1877,
        }
        return {"notification": notification, "delivery": delivery, "status": "SUCCESS"}
    delivery = {
        "mnc": 0,
        "destination": phone,
        "priceInUSD": 0.0,
        "smsType": "Transactional",
        "mcc": 0,
        "providerResponse": "Unknown error attempting to reach phone",
        "dwellTimeMs": 1503,
    }
    return {"notification": notification, "delivery": delivery, "status": "FAILURE"}


def push_status(label: str, ok: bool) -> dict[str, Any]:
    at = TICK + timedelta(minutes=5, seconds=12)
    notification = {"timestamp": at.strftime("%Y-%m-%d %H:%M:%S.004"), "messageId": _id(f"published/{label}")}
    delivery: dict[str, Any] = {
        "statusCode": 200 if ok else 8,
        "dwellTimeMs": 95 if ok else 903,
        "token": hashlib.sha256(b"device-token/B-0003").hexdigest(),
        "attempts": 1,
        "providerResponse": ""
        if ok
        else "NotificationErrorResponse(command=8, status=InvalidToken, id=1, cause=null)",
        "destination": APNS_ENDPOINT,
    }
    return {"status": "SUCCESS" if ok else "FAILURE", "notification": notification, "delivery": delivery}


# ---------------------------------------------------------------------------------------------------
# DynamoDB stream events


def stream_record(
    stack: LocalStack,
    table: str,
    key: str,
    name: str,
    new: dict[str, Any] | None,
    old: dict[str, Any] | None,
    seq: int,
) -> dict[str, Any]:
    image = new or old or {}
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(TICK.timestamp()) - 3600 + seq,
        "Keys": {key: {"S": image[key]}},
    }
    if new is not None:
        dynamodb["NewImage"] = ddb_json(new)
    if old is not None:
        dynamodb["OldImage"] = ddb_json(old)
    size = len(json.dumps(dynamodb))
    dynamodb |= {"SequenceNumber": f"{seq:021d}", "SizeBytes": size, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    return {
        "eventID": hashlib.md5(f"{table}/{seq}".encode()).hexdigest(),  # an id, not security
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": DEFAULT_REGION,
        "dynamodb": dynamodb,
        # A real stream ARN ends in its creation time; handlers tell the tables apart by the table name.
        "eventSourceARN": f"arn:aws:dynamodb:{DEFAULT_REGION}:123456789012:table/{stack.tables[table]}"
        "/stream/2026-03-01T00:00:00.000",
    }


def loan_insert(stack: LocalStack) -> dict[str, Any]:
    return {
        "Records": [
            stream_record(stack, "LoansTable", "loan_id", "INSERT", loan, None, 100 + index)
            for index, loan in enumerate(LOANS)
        ]
    }


def loan_paid(stack: LocalStack) -> dict[str, Any]:
    old = LOANS[1]
    new = {**old, "status": "PAID", "amount_due": Decimal("0.00")}
    return {"Records": [stream_record(stack, "LoansTable", "loan_id", "MODIFY", new, old, 200)]}


def borrower_moved(stack: LocalStack) -> dict[str, Any]:
    old = BORROWERS[0]
    new = {**old, "time_zone": "America/Chicago", "address": {"country": "US", "region": "IL"}}
    return {"Records": [stream_record(stack, "BorrowersTable", "borrower_id", "MODIFY", new, old, 300)]}


# ---------------------------------------------------------------------------------------------------


def build(stack: LocalStack) -> dict[str, Any]:
    """Every file under events/ by relative path."""
    groups = _log_groups(stack)
    at = TICK + timedelta(minutes=5, seconds=12)
    inbound = stack.topics["InboundTopic"]
    replies_at = TICK + timedelta(minutes=20, seconds=5)
    files: dict[str, Callable[[], Any]] = {
        "planner/scheduled_tick.json": scheduled_tick,
        "planner/shard_task_sqs.json": lambda: shard_task(stack),
        "sender/sms_jobs_sqs.json": lambda: jobs_event(
            stack, "SmsQueue", [job(LOANS[0], "D+7", "sms", 7), job(LOANS[1], "D+1", "sms", 1)]
        ),
        "sender/push_jobs_sqs.json": lambda: jobs_event(
            stack, "PushQueue", [job(LOANS[2], "D+3", "push", 3)]
        ),
        "receipts/sms_success_logs.json": lambda: logs_event(
            groups["SmsDeliveryLogGroup"], [sms_status("+12125550142", "L-0001#D+7", True)], "sms-success", at
        ),
        "receipts/sms_failure_logs.json": lambda: logs_event(
            groups["SmsDeliveryFailureLogGroup"],
            [sms_status("+12125550143", "L-0002#D+1", False)],
            "sms-failure",
            at,
        ),
        "receipts/push_success_logs.json": lambda: logs_event(
            groups["ApnsDeliveryLogGroup"], [push_status("L-0003#D+3", True)], "push-success", at
        ),
        "receipts/push_failure_logs.json": lambda: logs_event(
            groups["ApnsDeliveryFailureLogGroup"], [push_status("L-0003#D-3", False)], "push-failure", at
        ),
        "receipts/eum_event_sns.json": lambda: sns_event(
            stack.topics["DeliveryEventsTopic"], eum_delivered(), "eum/L-0001#D+7", at
        ),
        "receipts/eum_event_logs.json": lambda: logs_event(
            groups["SmsEventsLogGroup"], [eum_delivered()], "eum-logs", at
        ),
        "inbound/stop_sns.json": lambda: sns_event(
            inbound, inbound_sms("stop", "STOP", "stop"), "stop", replies_at
        ),
        "inbound/help_sns.json": lambda: sns_event(
            inbound, inbound_sms("HELP", "HELP", "help"), "help", replies_at
        ),
        "inbound/start_sns.json": lambda: sns_event(
            inbound, inbound_sms("Start", "START", "start"), "start", replies_at
        ),
        "inbound/free_text_sns.json": lambda: sns_event(
            inbound,
            inbound_sms("I lost my job, can I pay next month?", None, "free-text"),
            "free-text",
            replies_at,
        ),
        "indexer/loan_insert_stream.json": lambda: loan_insert(stack),
        "indexer/loan_modify_paid_stream.json": lambda: loan_paid(stack),
        "indexer/borrower_modify_stream.json": lambda: borrower_moved(stack),
        "reconcile/daily_tick.json": daily_tick,
        "seed.json": seed,
        "env.json": lambda: env_json(stack),
    }
    return {path: make() for path, make in files.items()}


def env_json(stack: LocalStack) -> dict[str, dict[str, str]]:
    """`sam local invoke --env-vars`: every function pointed at moto_server seen from the container."""
    return {
        lid: stack.function_environment(lid, {"AWS_ENDPOINT_URL": DOCKER_ENDPOINT})
        for lid in stack.function_ids
    }


def render(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare instead of writing; exit 1 on a difference"
    )
    parser.add_argument("--out", type=Path, default=EVENTS_DIR)
    args = parser.parse_args(argv)

    with mock_aws():
        stack = build_local_stack(boto3.Session(region_name=DEFAULT_REGION))
        files = {path: render(document) for path, document in build(stack).items()}

    stale = []
    for path, text in files.items():
        target = args.out / path
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("out of date (run events/make_events.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
