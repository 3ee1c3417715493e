"""The ReceiptsFunction's settings: where delivery receipts come from and when a number counts as failing."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dunning.settings import FunctionSettings, TopicArn


class ReceiptsSettings(FunctionSettings):
    delivery_events_topic_arn: TopicArn
    # Comma-separated log group names; kept as given, read through ``log_groups``.
    receipt_log_groups: Annotated[str, Field(min_length=1)]
    hard_failure_threshold: Annotated[int, Field(ge=1, le=20)]

    @property
    def log_groups(self) -> frozenset[str]:
        return frozenset(g.strip() for g in self.receipt_log_groups.split(",") if g.strip())
