"""The AttentionTopic: events a person must act on (a free-text reply, a dispute sent by SMS)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


class Attention:
    def __init__(self, topic_arn: str, client: SNSClient | None = None) -> None:
        self.topic_arn = topic_arn
        self._client = client

    @property
    def client(self) -> SNSClient:
        if self._client is None:
            self._client = boto3.client("sns")
        return self._client

    def publish(self, event_type: str, detail: dict[str, Any]) -> str:
        response = self.client.publish(
            TopicArn=self.topic_arn,
            Subject=event_type[:100],
            Message=json.dumps({"type": event_type, **detail}, ensure_ascii=False, default=str),
            MessageAttributes={"type": {"DataType": "String", "StringValue": event_type}},
        )
        return response["MessageId"]
