"""One settings model per function, read from the environment the template gives it.

Every variable is required: a missing or misspelt one fails the first invocation with a message naming
it, instead of a default quietly sending from the wrong number or keeping the ledger for the wrong time.
Where "nothing" is a legitimate value (no origination identity, no price cap) the template says so with
an empty string, explicitly. docs/contract-resources.md lists the variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ShardCount = Annotated[int, Field(ge=1, le=100)]
# The template's bounds (its default, 800 days, keeps the ledger beyond two years of disputes).
RetentionDays = Annotated[int, Field(ge=30, le=3650)]
TableName = Annotated[str, Field(min_length=3, max_length=255)]
TopicArn = Annotated[str, Field(pattern=r"^arn:aws[a-z\-]*:sns:[a-z0-9\-]+:\d{12}:[A-Za-z0-9_\-.]+$")]


class SettingsError(RuntimeError):
    """The function's environment does not satisfy its settings model."""


class _Settings(BaseModel):
    # defer_build: a function validates one of these models; the others are never built, which keeps
    # their schema generation out of every handler's cold import.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    state_table: TableName
    ledger_table: TableName
    ledger_retention_days: RetentionDays

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Validate the environment; raise :class:`SettingsError` naming every bad or missing variable."""
        env = os.environ if environ is None else environ
        wanted = {name: env[name.upper()] for name in cls.model_fields if name.upper() in env}
        try:
            return cls.model_validate(wanted)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
            )
            raise SettingsError(f"{cls.__name__} is invalid: {problems}") from None


class _Ticked(_Settings):
    # The planner's schedule expression: the send budget of a tick is what can go out before the next
    # one, and the indexer looks at a loan as the planner's next tick will see it.
    planner_schedule: Annotated[str, Field(pattern=r"^(rate\(\d+ (minute|minutes|hour|hours)\)|cron\(.+\))$")]

    @property
    def tick_interval(self) -> timedelta | None:
        """Time between ticks for a ``rate(...)`` schedule; None for a cron one (the job TTL then bounds)."""
        match = re.match(r"^rate\((\d+) (minute|hour)s?\)$", self.planner_schedule)
        if match is None:
            return None
        count = int(match.group(1))
        return timedelta(minutes=count) if match.group(2) == "minute" else timedelta(hours=count)


class IndexerSettings(_Ticked):
    loans_table: TableName
    borrowers_table: TableName
    shard_count: ShardCount


class PlannerSettings(_Ticked):
    loans_table: TableName
    borrowers_table: TableName
    outbound_topic_arn: TopicArn
    plan_queue_url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    shard_count: ShardCount
    job_ttl_minutes: Annotated[int, Field(ge=5, le=24 * 60)]


class SenderSettings(_Settings):
    loans_table: TableName
    borrowers_table: TableName
    job_ttl_minutes: Annotated[int, Field(ge=5, le=24 * 60)]
    # "" = the account's default origination identity.
    sms_origination_identity: Annotated[str, Field(max_length=64)]
    # "" = no per-message price cap.
    sms_max_price_usd: Annotated[str, Field(max_length=16)]

    @field_validator("sms_max_price_usd")
    @classmethod
    def _price(cls, value: str) -> str:
        if value and not (Decimal(value) > 0 if value.replace(".", "", 1).isdigit() else False):
            raise ValueError("must be empty or a positive decimal number of US dollars")
        return value


class ReceiptsSettings(_Settings):
    delivery_events_topic_arn: TopicArn
    # Comma-separated log group names; kept as given, read through ``log_groups``.
    receipt_log_groups: Annotated[str, Field(min_length=1)]
    hard_failure_threshold: Annotated[int, Field(ge=1, le=20)]

    @property
    def log_groups(self) -> frozenset[str]:
        return frozenset(g.strip() for g in self.receipt_log_groups.split(",") if g.strip())


class InboundSettings(_Settings):
    # Loans: a START re-plans the borrower's loans (an opt-out had taken them out of the due-index).
    loans_table: TableName
    borrowers_table: TableName
    sms_origination_identity: Annotated[str, Field(max_length=64)]
    inbound_pause_days: Annotated[int, Field(ge=0, le=90)]  # 0 = no pause
    attention_topic_arn: TopicArn
    inbound_topic_arn: TopicArn


class ReconcileSettings(_Settings):
    loans_table: TableName
    shard_count: ShardCount
    # The sweep sends the STOP/START confirmations still owed, from the same number as the replies.
    sms_origination_identity: Annotated[str, Field(max_length=64)] = ""
    # A confirmation in doubt with no delivery receipt after this long never reached SNS: sent again.
    # Above the 15-minute claim timeout; SNS delivery-status logs arrive within minutes.
    confirmation_receipt_horizon_minutes: Annotated[int, Field(ge=20, le=24 * 60)] = 60
