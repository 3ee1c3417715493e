"""The PlannerFunction's settings: the tables it reads, the queue and topic it feeds, its schedule."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import Field

from dunning.settings import FunctionSettings, ShardCount, TableName, TopicArn


class PlannerSettings(FunctionSettings):
    loans_table: TableName
    borrowers_table: TableName
    outbound_topic_arn: TopicArn
    plan_queue_url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    shard_count: ShardCount
    job_ttl_minutes: Annotated[int, Field(ge=5, le=24 * 60)]
    # The tick's schedule expression: the send budget of a tick is what can go out before the next one.
    planner_schedule: Annotated[str, Field(pattern=r"^(rate\(\d+ (minute|minutes|hour|hours)\)|cron\(.+\))$")]

    @property
    def tick_interval(self) -> timedelta | None:
        """Time between ticks for a ``rate(...)`` schedule; None for a cron one (the job TTL then bounds)."""
        match = re.match(r"^rate\((\d+) (minute|hour)s?\)$", self.planner_schedule)
        if match is None:
            return None
        count = int(match.group(1))
        return timedelta(minutes=count) if match.group(2) == "minute" else timedelta(hours=count)
