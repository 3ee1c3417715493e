"""The PlannerFunction's settings: the tables it reads, the queue and topic it feeds, its schedule."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dunning.settings import ShardCount, TableName, TopicArn
from dunning.settings.ticked import TickedSettings


class PlannerSettings(TickedSettings):
    loans_table: TableName
    borrowers_table: TableName
    outbound_topic_arn: TopicArn
    plan_queue_url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    shard_count: ShardCount
    job_ttl_minutes: Annotated[int, Field(ge=5, le=24 * 60)]
