"""Lambda event payloads in the exact shapes AWS delivers them, built from local resources.

The local runner and the demo drive the real handlers with these: SQS batches drained from moto's
queues, DynamoDB stream records read from moto's streams, CloudWatch Logs subscription events
(base64 of gzip of JSON), SNS notifications, and the EventBridge Scheduler input.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"


def iso_z(instant: datetime) -> str:
    """``2026-03-02T14:00:00Z``: the form the Scheduler substitutes for <aws.scheduler.scheduled-time>."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduler_input(scheduled_time: datetime, execution_id: str | None = None) -> dict[str, Any]:
    """The planner's schedule Input after the Scheduler's substitutions."""
    return {
        "scheduled_time": iso_z(scheduled_time),
        "execution_id": execution_id or str(uuid.uuid5(uuid.NAMESPACE_URL, iso_z(scheduled_time))),
    }


def sqs_event(messages: Iterable[Mapping[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event source batch from ``receive_message`` results (with attributes requested)."""
    records = []
    for m in messages:
        attrs = {
            k: {
                "stringValue": v.get("StringValue"),
                "dataType": v.get("DataType", "String"),
                "stringListValues": [],
                "binaryListValues": [],
            }
            for k, v in (m.get("MessageAttributes") or {}).items()
        }
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": str(
                        (m.get("Attributes") or {}).get("ApproximateReceiveCount", "1")
                    ),
                    "SentTimestamp": str((m.get("Attributes") or {}).get("SentTimestamp", "0")),
                    "SenderId": ACCOUNT,
                    "ApproximateFirstReceiveTimestamp": str(
                        (m.get("Attributes") or {}).get("ApproximateFirstReceiveTimestamp", "0")
                    ),
                },
                "messageAttributes": attrs,
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def dynamodb_stream_event(records: Iterable[Mapping[str, Any]], stream_arn: str) -> dict[str, Any]:
    """A DynamoDB stream event from ``dynamodbstreams.get_records`` records."""
    out = []
    for r in records:
        dynamodb = dict(r["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = created.timestamp()
        out.append(
            {
                "eventID": r.get("eventID") or uuid.uuid4().hex,
                "eventName": r["eventName"],
                "eventVersion": r.get("eventVersion", "1.1"),
                "eventSource": "aws:dynamodb",
                "awsRegion": r.get("awsRegion", REGION),
                "dynamodb": dynamodb,
                "eventSourceARN": stream_arn,
            }
        )
    return {"Records": out}


def logs_subscription_event(
    log_group: str, messages: Iterable[tuple[datetime, Mapping[str, Any]]], *, log_stream: str = "stream"
) -> dict[str, Any]:
    """A CloudWatch Logs subscription event: ``{"awslogs": {"data": base64(gzip(json))}}``."""
    events = [
        {
            "id": str(abs(hash((log_group, iso_z(at), json.dumps(msg, sort_keys=True)))) % 10**56).zfill(56),
            "timestamp": int(at.timestamp() * 1000),
            "message": json.dumps(msg),
        }
        for at, msg in messages
    ]
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": ["dunning-receipts"],
        "logEvents": events,
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()}}


def sms_delivery_record(
    message_id: str, destination: str, at: datetime, *, success: bool, price: float
) -> dict[str, Any]:
    """One SNS SMS delivery-status log record (shape of DirectPublishToPhoneNumber[/Failure])."""
    delivery: dict[str, Any] = {
        "destination": destination,
        "priceInUSD": price if success else 0.0,
        "smsType": "Transactional",
        "dwellTimeMs": 412,
    }
    if success:
        delivery |= {
            "phoneCarrier": "Example Carrier",
            "mcc": 310,
            "mnc": 260,
            "providerResponse": "Message has been accepted by phone carrier",
            "dwellTimeMsUntilDeviceAck": 1877,
        }
    else:
        delivery |= {"mcc": 0, "mnc": 0, "providerResponse": "Unknown error attempting to reach phone"}
    return {
        # SNS stamps its SMS delivery-status log with the publish time, to the millisecond.
        "notification": {
            "messageId": message_id,
            "timestamp": at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}",
        },
        "delivery": delivery,
        "status": "SUCCESS" if success else "FAILURE",
    }


def push_delivery_record(
    message_id: str, endpoint_arn: str, at: datetime, *, success: bool
) -> dict[str, Any]:
    """One SNS mobile push delivery-status log record."""
    return {
        "status": "SUCCESS" if success else "FAILURE",
        "notification": {"timestamp": at.strftime("%Y-%m-%d %H:%M:%S.000"), "messageId": message_id},
        "delivery": {
            "statusCode": 200 if success else 8,
            "dwellTimeMs": 903,
            "attempts": 1,
            "providerResponse": '{"sent":true}'
            if success
            else "NotificationErrorResponse(command=8, status=InvalidToken, id=1, cause=null)",
            "destination": endpoint_arn,
        },
    }


def sns_event(topic_arn: str, message: str, at: datetime, *, subject: str | None = None) -> dict[str, Any]:
    """An SNS notification event as Lambda receives it (one record)."""
    message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, topic_arn + message + iso_z(at)))
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic_arn}:{uuid.uuid5(uuid.NAMESPACE_URL, topic_arn)}",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic_arn,
                    "Subject": subject,
                    "Message": message,
                    "Timestamp": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "SignatureVersion": "1",
                    "Signature": base64.b64encode(hashlib.sha256(message.encode()).digest()).decode(),
                    "SigningCertUrl": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-example.pem",
                    "UnsubscribeUrl": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {},
                },
            }
        ]
    }


def inbound_sms(origination: str, destination: str, body: str, *, inbound_id: str, keyword: str = "") -> str:
    """The two-way SMS payload SNS delivers to the inbound topic."""
    return json.dumps(
        {
            "originationNumber": origination,
            "destinationNumber": destination,
            "messageKeyword": keyword or body.strip().split(" ")[0].upper()[:20],
            "messageBody": body,
            "inboundMessageId": inbound_id,
            "previousPublishedMessageId": "",
        },
        ensure_ascii=False,
    )
