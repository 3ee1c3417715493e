"""The planner: on each tick, find the loans that are due and turn each into a job, a deferral or a stop.

A tick (the Scheduler's ``{"scheduled_time", "execution_id"}``) fans out one PlanQueue task per
due-index shard. A shard task Queries the shard for ``next_contact_at <= scheduled_time`` page by page,
reads everything a decision needs in one BatchGetItem round per page (the index projects each loan's
borrower and phone, so every key is known up front), decides each loan with the pure engine
at the *scheduled* time (a late or retried tick plans exactly the same tick), then:

- SEND  → a job on the OutboundTopic (PublishBatch); the loan's next contact moves to the next step's
  due instant or the job's expiry, whichever is later (out of the index after the last step);
- DEFER → next contact = the instant the reason stops holding; the decision goes to the ledger;
- STOP  → out of the due-index; the decision goes to the ledger.

Jobs are published ten at a time (carried over from page to page until a batch is full); cadence and
ledger items are written with BatchWriteItem. A shard that cannot finish before the Lambda
deadline hands the rest on as a continuation task instead of failing half way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dunning import clock
from dunning.adapters.dynamo import BATCH_WRITE_LIMIT, Dynamo, Key, WriteOp
from dunning.adapters.ledger import Ledger
from dunning.adapters.lender import Lender
from dunning.adapters.outbound import Outbound
from dunning.adapters.plan_queue import PlanQueue
from dunning.adapters.reads import MissingItem, Wanted, read_snapshot
from dunning.adapters.state import DueEntry, StateStore
from dunning.ids import attribute_id
from dunning.items import InvalidItem, iso_utc
from dunning.jobs import Job, job_from_decision
from dunning.models import Borrower, ContactState, Decision, DecisionKind, Loan, UtcDateTime
from dunning.observability import MetricsRecorder, PackageLogger
from dunning.settings import PlannerSettings

logger = PackageLogger(__name__)

DecideFn = Callable[[Loan, Borrower, ContactState, datetime, Any, Any], Decision]

# Due loans per Query page. The due-index projects borrower_id and phone, so a page's loans, borrowers,
# contact and consent items are read in one round (up to 400 keys: four BatchGetItem requests); a
# larger page means fewer Query requests and fuller PublishBatch and BatchWriteItem requests, while a
# page still takes well under the deadline margin.
PAGE_SIZE = 100
# PublishBatch takes at most ten entries: jobs are carried from page to page until ten are ready.
PUBLISH_BATCH = 10
# Time kept back for the last page's writes and the continuation message when the deadline nears.
DEADLINE_MARGIN_MS = 20_000
# A deferral never lands inside the tick being planned (the same pass would read the loan again).
MIN_DEFERRAL = timedelta(minutes=1)
# An engine failure on one loan must not stop the shard; the loan is looked at again an hour later.
ENGINE_ERROR_RETRY = timedelta(hours=1)
DATA_INVALID = "data.invalid"
ENGINE_ERROR = "engine.error"


class Tick(BaseModel):
    """The Scheduler's input after substitution."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    scheduled_time: UtcDateTime
    execution_id: str = ""


class ShardTask(BaseModel):
    """One PlanQueue message: plan ``shard`` as of ``scheduled_time``, from ``continuation`` if set."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    shard: str = Field(pattern=r"^DUE#\d{2}$")
    scheduled_time: UtcDateTime
    continuation: dict[str, Any] | None = None

    def message(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "scheduled_time": iso_utc(self.scheduled_time),
            "continuation": self.continuation,
        }


@dataclass(frozen=True)
class _Send:
    """A SEND decided on a page, waiting for a full PublishBatch."""

    job: Job
    decision: Decision
    phone: str


@dataclass
class _Pending:
    """What a shard task has decided but not yet published or written, carried from page to page so
    PublishBatch and BatchWriteItem requests go out full. A crash loses nothing: the loans are still
    due, and the retried task plans them again."""

    sends: list[_Send] = field(default_factory=list)
    writes: list[WriteOp] = field(default_factory=list)


@dataclass
class ShardResult:
    planned: int = 0
    deferred: int = 0
    stopped: int = 0
    invalid: int = 0
    publish_failed: int = 0
    pages: int = 0
    handed_on: bool = False
    jobs: list[Job] = field(default_factory=list)


def build_planner(settings: PlannerSettings) -> Planner:
    """The planner wired to AWS as the settings say (clients are created on first use)."""
    # The engine and its data (holidays, phone metadata, rulebooks) are imported here, not with the
    # module: a tick's fan-out never needs them, and the handler's cold import stays light.
    from dunning.engine import decide
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    dynamo = Dynamo()
    return Planner(
        lender=Lender(dynamo, settings.loans_table, settings.borrowers_table),
        state=StateStore(dynamo, settings.state_table, settings.shard_count),
        ledger=Ledger(dynamo, settings.ledger_table, settings.ledger_retention_days),
        outbound=Outbound(settings.outbound_topic_arn),
        plan_queue=PlanQueue(settings.plan_queue_url),
        decide=decide,
        rulebooks=load_rulebooks(),
        strategies=load_strategies(),
        job_ttl=timedelta(minutes=settings.job_ttl_minutes),
        clock=clock.now,
    )


def stop_decision(loan_id: str, borrower_id: str, at: datetime, rule_id: str, reason: str) -> Decision:
    """A STOP the planner makes itself (bad data, missing loan), recorded like the engine's."""
    return Decision(
        kind=DecisionKind.STOP,
        loan_id=loan_id,
        borrower_id=borrower_id,
        at=at,
        rule_id=rule_id,
        reason=reason,
    )


@dataclass
class Planner:
    lender: Lender
    state: StateStore
    ledger: Ledger
    outbound: Outbound
    plan_queue: PlanQueue
    decide: DecideFn
    rulebooks: Any
    strategies: Any
    job_ttl: timedelta
    clock: Callable[[], datetime]
    page_size: int = PAGE_SIZE
    deadline_margin_ms: int = DEADLINE_MARGIN_MS

    def fan_out(self, tick: Tick, metrics: MetricsRecorder) -> int:
        """One PlanQueue task per shard (SendMessageBatch, 10 a request). Returns the number of tasks."""
        tasks = [
            ShardTask(shard=shard, scheduled_time=tick.scheduled_time).message()
            for shard in self.state.shards()
        ]
        self.plan_queue.send(tasks)
        metrics.count("ShardTasks", len(tasks))
        return len(tasks)

    def plan_shard(
        self, task: ShardTask, remaining_ms: Callable[[], int], metrics: MetricsRecorder
    ) -> ShardResult:
        """Plan one shard as of the task's scheduled time, handing on a continuation near the deadline."""
        now = task.scheduled_time
        metrics.observe("PlannerLagSeconds", max(0.0, (self.clock() - now).total_seconds()))
        result = ShardResult()
        metrics.count("ShardsPlanned")
        pages = self.state.due_pages(task.shard, now, page_size=self.page_size, start_key=task.continuation)
        pending = _Pending()
        for entries, last_key in pages:
            result.pages += 1
            if entries:
                self._plan_page(entries, now, result, metrics, pending)
                self._flush(pending, now, result, metrics, full_only=True)
            if last_key is not None and remaining_ms() < self.deadline_margin_ms:
                self._flush(pending, now, result, metrics, full_only=False)
                self._hand_on(task, last_key)
                result.handed_on = True
                metrics.count("PlannerContinuations")
                break
        else:
            self._flush(pending, now, result, metrics, full_only=False)
        logger.info(
            "shard planned",
            extra={
                "shard": task.shard,
                "scheduled_time": iso_utc(now),
                "planned": result.planned,
                "deferred": result.deferred,
                "stopped": result.stopped,
                "invalid": result.invalid,
                "pages": result.pages,
                "handed_on": result.handed_on,
            },
        )
        return result

    def process_tasks(
        self,
        records: list[dict[str, Any]],
        remaining_ms: Callable[[], int],
        metrics: MetricsRecorder,
        on_task: Callable[[str], None] = lambda correlation_id: None,
    ) -> list[str]:
        """Plan the shard task of each PlanQueue record; returns the message ids to retry.

        A body that is not a shard task is logged, counted and consumed (retrying cannot fix it).
        """
        failures: list[str] = []
        for record in records:
            message_id = str(record.get("messageId", ""))
            try:
                task = ShardTask.model_validate_json(str(record.get("body", "")))
            except ValueError as exc:
                logger.error(
                    "not a shard task; consumed", extra={"sqs_message_id": message_id, "error": str(exc)}
                )
                metrics.count("InvalidTask")
                continue
            on_task(f"{task.shard}@{iso_utc(task.scheduled_time)}")
            try:
                self.plan_shard(task, remaining_ms, metrics)
            except Exception:
                logger.exception("shard task failed; SQS retries it", extra={"shard": task.shard})
                failures.append(message_id)
        return failures

    def _hand_on(self, task: ShardTask, last_key: Key) -> None:
        continuation = ShardTask(shard=task.shard, scheduled_time=task.scheduled_time, continuation=last_key)
        self.plan_queue.send([continuation.message()])

    def _plan_page(
        self,
        entries: list[DueEntry],
        now: datetime,
        result: ShardResult,
        metrics: MetricsRecorder,
        pending: _Pending,
    ) -> None:
        """Decide a page: SEND jobs and DEFER/STOP writes join ``pending``."""
        snapshot = read_snapshot(
            self.lender,
            self.state,
            [Wanted(e.loan_id, e.borrower_id, e.phone) for e in entries],
        )
        writes = pending.writes
        for entry in entries:
            try:
                subject = snapshot.subject(entry.loan_id)
            except InvalidItem as exc:
                loan_item = snapshot.loans.get(entry.loan_id) or {}
                borrower_id = attribute_id(loan_item.get("borrower_id") or entry.borrower_id)
                decision = stop_decision(entry.loan_id, borrower_id, now, DATA_INVALID, str(exc))
                if isinstance(exc, MissingItem) and exc.kind == "loan":
                    writes.append(self.state.delete_cadence_op(entry.loan_id))
                else:
                    writes.append(self._cadence(decision, None, now))
                writes.append(self.ledger.decision_op(decision))
                metrics.count("InvalidItem")
                metrics.count("Suppressed", rule=DATA_INVALID)
                logger.warning(
                    "invalid item: loan stopped", extra={"loan_id": entry.loan_id, "reason": str(exc)}
                )
                result.invalid += 1
                continue
            loan, borrower = subject.loan, subject.borrower
            try:
                decision = self.decide(loan, borrower, subject.state, now, self.rulebooks, self.strategies)
            except Exception:
                logger.exception(
                    "engine failed on a loan; looked at again later", extra={"loan_id": loan.loan_id}
                )
                metrics.count("EngineError")
                decision = Decision(
                    kind=DecisionKind.DEFER,
                    loan_id=loan.loan_id,
                    borrower_id=loan.borrower_id,
                    at=now,
                    rule_id=ENGINE_ERROR,
                    reason="the decision engine failed on this loan; retried later",
                    not_before=now + ENGINE_ERROR_RETRY,
                )
            if decision.kind == DecisionKind.SEND:
                job = job_from_decision(decision, ttl=self.job_ttl, phone=borrower.phone)
                pending.sends.append(_Send(job, decision, borrower.phone or ""))
            elif decision.kind == DecisionKind.DEFER:
                not_before = decision.not_before or now + ENGINE_ERROR_RETRY
                writes.append(
                    self._cadence(decision, max(not_before, now + MIN_DEFERRAL), now, borrower.phone)
                )
                writes.append(self.ledger.decision_op(decision))
                metrics.count("Deferred", rule=decision.rule_id)
                result.deferred += 1
            else:
                writes.append(self._cadence(decision, None, now, borrower.phone))
                writes.append(self.ledger.decision_op(decision))
                metrics.count("Suppressed", rule=decision.rule_id)
                result.stopped += 1

    def _flush(
        self,
        pending: _Pending,
        now: datetime,
        result: ShardResult,
        metrics: MetricsRecorder,
        *,
        full_only: bool,
    ) -> None:
        """Publish the pending jobs and write the pending items: only full requests (ten jobs, 25
        items) when ``full_only``, everything otherwise.

        A crash between a PublishBatch and the cadence writes of its jobs leaves those loans due: the
        retried task plans them again, and the second job for a step is never sent (the sender finds
        the step claimed and records it AMBIGUOUS, which the daily sweep resolves to SENT).
        """
        sends = pending.sends
        ready = len(sends) - len(sends) % PUBLISH_BATCH if full_only else len(sends)
        pending.writes += self._publish_ops(sends[:ready], now, result, metrics)
        del sends[:ready]
        writes = pending.writes
        ready = len(writes) - len(writes) % BATCH_WRITE_LIMIT if full_only else len(writes)
        if ready:
            self.ledger.dynamo.batch_write(writes[:ready])
            del writes[:ready]

    def _publish_ops(
        self, sends: list[_Send], now: datetime, result: ShardResult, metrics: MetricsRecorder
    ) -> list[WriteOp]:
        """PublishBatch ``sends``; the cadence writes of those that were published."""
        if not sends:
            return []
        writes: list[WriteOp] = []
        published, failed = self.outbound.publish([send.job for send in sends])
        by_id = {send.job.job_id: send for send in sends}
        for job in published:
            send = by_id[job.job_id]
            follow_up = send.decision.follow_up_at
            next_at = max(follow_up, job.expires_at) if follow_up is not None else None
            writes.append(self._cadence(send.decision, next_at, now, send.phone))
            metrics.count("Planned")
            result.planned += 1
            result.jobs.append(job)
        for job, code in failed:
            # The cadence is left as it is: the loan is still due and the next tick plans it again.
            logger.error("job not published", extra={"job_id": job.job_id, "code": code})
            metrics.count("PublishFailed")
            result.publish_failed += 1
        return writes

    def _cadence(
        self, decision: Decision, next_at: datetime | None, now: datetime, phone: str | None = None
    ) -> WriteOp:
        item = self.state.cadence_item(
            decision.loan_id,
            decision.borrower_id,
            next_contact_at=next_at,
            at=now,
            rule_id=decision.rule_id,
            reason=decision.reason,
            phone=phone,
        )
        return self.state.put_op(item)
