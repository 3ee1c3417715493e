"""The send job: what the planner publishes for a SEND decision and the sender consumes.

A job authorises nothing by itself; the sender re-decides at send time and claims the (loan, step)
atomically. The job says which step the planner meant, on which channel, and until when it is worth
sending (``expires_at``: after that the borrower's situation may have changed too much to trust it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dunning.items import summarise_validation_error
from dunning.models import (
    Channel,
    ContactState,
    Decision,
    DecisionKind,
    Id,
    UtcDateTime,
    is_model_id,
    trusted_whole,
)


class InvalidJob(ValueError):
    """A job body that is not a job: recorded and consumed, never retried."""


class Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: Annotated[str, Field(min_length=3, max_length=300)]
    loan_id: Id
    borrower_id: Id
    step: Annotated[str, Field(min_length=1, max_length=64)]
    channel: Channel
    template: Annotated[str, Field(min_length=1, max_length=128)]
    planned_at: UtcDateTime
    expires_at: UtcDateTime
    rule_id: Annotated[str, Field(min_length=1, max_length=128)]
    reason: Annotated[str, Field(max_length=1000)]
    # The number the planner saw, so the sender can read its consent item in the same BatchGetItem as
    # everything else; always re-checked against the borrower item read at send time.
    phone: Annotated[str, Field(max_length=32)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Job:
        if self.job_id != job_id_for(self.loan_id, self.step):
            raise ValueError("job_id must be <loan_id>#<step>")
        if self.expires_at <= self.planned_at:
            raise ValueError("expires_at must be after planned_at")
        return self

    @property
    def claim_key(self) -> str:
        return ContactState.claim_key(self.loan_id, self.step)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


def job_id_for(loan_id: str, step: str) -> str:
    """One job id per (loan, cadence step): the unit of at-most-once."""
    return f"{loan_id}#{step}"


def job_from_decision(decision: Decision, *, ttl: timedelta, phone: str | None = None) -> Job:
    """The job for a SEND decision, planned at the decision's instant and expiring ``ttl`` later."""
    if decision.kind != DecisionKind.SEND or decision.step is None or decision.channel is None:
        raise ValueError("only a SEND decision with a step and a channel becomes a job")
    # Every field, in the model's order (``trusted_whole``).
    values = {
        "job_id": job_id_for(decision.loan_id, decision.step),
        "loan_id": decision.loan_id,
        "borrower_id": decision.borrower_id,
        "step": decision.step,
        "channel": decision.channel,
        "template": decision.template or decision.step,
        "planned_at": decision.at,
        "expires_at": decision.at + ttl,
        "rule_id": decision.rule_id,
        "reason": decision.reason,
        "phone": phone,
    }
    if _valid_as_is(values):
        return trusted_whole(Job, values)
    return Job(**values)


def _valid_as_is(values: dict[str, Any]) -> bool:
    """Whether validating ``values`` as a Job would return them unchanged: exact types within every
    constraint, UTC instants in order. Else the Job is validated (and refused as always)."""
    job_id, loan_id, borrower_id = values["job_id"], values["loan_id"], values["borrower_id"]
    step, template, rule_id, reason = values["step"], values["template"], values["rule_id"], values["reason"]
    planned, expires, phone = values["planned_at"], values["expires_at"], values["phone"]
    return (
        type(job_id) is str
        and 3 <= len(job_id) <= 300
        and type(loan_id) is str
        and is_model_id(loan_id)
        and type(borrower_id) is str
        and is_model_id(borrower_id)
        and type(step) is str
        and 1 <= len(step) <= 64
        and type(values["channel"]) is Channel
        and type(template) is str
        and 1 <= len(template) <= 128
        and type(planned) is datetime
        and planned.tzinfo is UTC
        and type(expires) is datetime
        and expires.tzinfo is UTC
        and expires > planned
        and type(rule_id) is str
        and 1 <= len(rule_id) <= 128
        and type(reason) is str
        and len(reason) <= 1000
        and (phone is None or (type(phone) is str and len(phone) <= 32))
    )


def parse_job(body: str) -> Job:
    """Parse an SQS body into a :class:`Job`; raise :class:`InvalidJob` with a one-line reason."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise InvalidJob(f"body is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise InvalidJob("body is not a JSON object")
    try:
        return Job.model_validate(data)
    except ValidationError as exc:
        raise InvalidJob(summarise_validation_error(exc)) from None
