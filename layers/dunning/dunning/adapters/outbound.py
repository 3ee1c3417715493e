"""The OutboundTopic: jobs from the planner, published ten at a time with a ``channel`` attribute.

The topic fans the jobs out to SmsQueue and PushQueue by subscription filter policy on ``channel``.
With ``concurrency`` above 1 the PublishBatch requests of one call go out that many at a time (a boto3
client is safe to share between threads); the call returns when all of them are answered.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import boto3

from dunning.jobs import Job

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from mypy_boto3_sns import SNSClient

PUBLISH_BATCH_LIMIT = 10
# Entries SNS reports as failed on its side (not ours) are retried this many times, then left for the
# next tick: the loan stays due because its cadence is only moved for published jobs.
MAX_ATTEMPTS = 3


class Outbound:
    def __init__(
        self,
        topic_arn: str,
        client: SNSClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: int = 1,
    ) -> None:
        self.topic_arn = topic_arn
        self._client = client
        self._sleep = sleep
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None

    @property
    def client(self) -> SNSClient:
        if self._client is None:
            self._client = boto3.client("sns")
        return self._client

    def publish(self, jobs: Sequence[Job]) -> tuple[list[Job], list[tuple[Job, str]]]:
        """PublishBatch the jobs, 10 per request; returns (published, [(job, error code)]).

        An error (not an entry SNS refused, which is returned as failed) is raised once every request
        of the call is over."""
        batches = [
            jobs[start : start + PUBLISH_BATCH_LIMIT] for start in range(0, len(jobs), PUBLISH_BATCH_LIMIT)
        ]
        if self.concurrency > 1 and len(batches) > 1:
            from concurrent.futures import wait

            running = [self._executor().submit(self._publish_batch, batch) for batch in batches]
            wait(running)
            results = [request.result() for request in running]
        else:
            results = [self._publish_batch(batch) for batch in batches]
        published = [job for done, _ in results for job in done]
        failed = [entry for _, refused in results for entry in refused]
        return published, failed

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="outbound")
        return self._pool

    def _publish_batch(self, jobs: Sequence[Job]) -> tuple[list[Job], list[tuple[Job, str]]]:
        """One PublishBatch of at most ten jobs, with its retries of the entries SNS failed on its side."""
        published: list[Job] = []
        failed: list[tuple[Job, str]] = []
        pending = {str(n): job for n, job in enumerate(jobs)}
        errors: dict[str, str] = {}
        for attempt in range(MAX_ATTEMPTS):
            response = self.client.publish_batch(
                TopicArn=self.topic_arn,
                PublishBatchRequestEntries=[
                    {
                        "Id": entry_id,
                        "Message": job.to_json(),
                        "MessageAttributes": {
                            "channel": {"DataType": "String", "StringValue": job.channel.value}
                        },
                    }
                    for entry_id, job in pending.items()
                ],
            )
            for ok in response.get("Successful", []):
                published.append(pending.pop(ok["Id"]))
            retry: dict[str, Job] = {}
            for bad in response.get("Failed", []):
                errors[bad["Id"]] = bad.get("Code", "Failed")
                if not bad.get("SenderFault", False):
                    retry[bad["Id"]] = pending[bad["Id"]]
            failed_for_good = {k: v for k, v in pending.items() if k not in retry}
            failed.extend((job, errors.get(k, "Failed")) for k, job in failed_for_good.items())
            pending = retry
            if not pending:
                break
            self._sleep(random.uniform(0, 0.1 * (2**attempt)))
        failed.extend((job, errors.get(k, "Failed")) for k, job in pending.items())
        return published, failed
