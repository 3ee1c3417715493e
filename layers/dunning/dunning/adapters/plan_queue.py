"""The PlanQueue: one shard task per shard per tick, and the continuations of unfinished shards."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SEND_BATCH_LIMIT = 10


class PlanQueue:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = boto3.client("sqs")
        return self._client

    def send(self, tasks: Sequence[dict[str, Any]]) -> int:
        """SendMessageBatch the tasks, 10 per request; raises if any entry is refused (the tick is then
        retried by the Scheduler, and a shard planned twice is harmless). Returns the request count."""
        requests = 0
        for start in range(0, len(tasks), SEND_BATCH_LIMIT):
            chunk = tasks[start : start + SEND_BATCH_LIMIT]
            response = self.client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(n), "MessageBody": json.dumps(task, separators=(",", ":"))}
                    for n, task in enumerate(chunk)
                ],
            )
            requests += 1
            if response.get("Failed"):
                codes = sorted({f.get("Code", "?") for f in response["Failed"]})
                raise RuntimeError(f"PlanQueue refused {len(response['Failed'])} task(s): {codes}")
        return requests
