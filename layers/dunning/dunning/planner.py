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

A shard task waits on AWS more than it computes, so its requests overlap (:class:`_Lanes`): while the
engine decides page N on the invocation's thread, page N+1 is read (Query + BatchGetItem) on one worker
thread and page N-1's jobs are published and its items written on another, in page order. Each job's
PublishBatch still comes before the cadence write that moves its loan (both on the writing thread, one
after the other), so a crash at any point leaves every unpublished loan due.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from dunning import clock
from dunning.adapters.cadence import DueEntry
from dunning.adapters.dynamo import BATCH_WRITE_LIMIT, Dynamo, Key, WriteOp
from dunning.adapters.ledger import Ledger
from dunning.adapters.lender import Lender
from dunning.adapters.outbound import Outbound
from dunning.adapters.plan_queue import PlanQueue
from dunning.adapters.reads import MissingItem, Snapshot, Wanted, read_snapshot
from dunning.adapters.state import StateStore
from dunning.ids import attribute_id
from dunning.items import InvalidItem, iso_utc
from dunning.jobs import Job, job_from_decision
from dunning.models import Borrower, Channel, ContactState, Decision, DecisionKind, Loan, UtcDateTime
from dunning.observability import MetricsRecorder, PackageLogger
from dunning.settings import PlannerSettings

if TYPE_CHECKING:
    # Types only: the budget's code and the engine's data are imported when a shard task plans, not
    # with the handler.
    from dunning.adapters.budget_store import SpendLedger
    from dunning.budget import Prices, SendingPolicy
    from dunning.rules import Rulebooks
    from dunning.strategy import Strategies

    DecideFn = Callable[[Loan, Borrower, ContactState, datetime, Rulebooks, Strategies], Decision]
    from concurrent.futures import ThreadPoolExecutor

T = TypeVar("T")
Pages = Iterator[tuple[list[DueEntry], Key | None]]

logger = PackageLogger(__name__)

# Due loans per Query page. The due-index projects borrower_id and phone, so a page's loans, borrowers,
# contact and consent items are read in one round (up to 400 keys: four BatchGetItem requests); a
# larger page means fewer Query requests and fuller PublishBatch and BatchWriteItem requests, while a
# page still takes well under the deadline margin.
PAGE_SIZE = 100
# PublishBatch takes at most ten entries: jobs are carried from page to page until ten are ready.
PUBLISH_BATCH = 10
# A page's PublishBatch requests (about five) go out this many at a time.
PUBLISH_CONCURRENCY = 4
# Time kept back for the last page's writes and the continuation message when the deadline nears.
DEADLINE_MARGIN_MS = 20_000
# A deferral never lands inside the tick being planned (the same pass would read the loan again).
MIN_DEFERRAL = timedelta(minutes=1)
# An engine failure on one loan must not stop the shard; the loan is looked at again an hour later.
ENGINE_ERROR_RETRY = timedelta(hours=1)
DATA_INVALID = "data.invalid"
ENGINE_ERROR = "engine.error"
# Deferrals that wait for a window to open: their release is spread over the pacing span.
BUDGET_CITATION = "Lender sending policy (data/lender/sending.yaml): send budget and spend guard"


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
    # SENDs planned so far in this tick per origination identity (a continuation keeps the budget).
    used: dict[str, int] | None = None

    def message(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "shard": self.shard,
            "scheduled_time": iso_utc(self.scheduled_time),
            "continuation": self.continuation,
        }
        if self.used:
            body["used"] = self.used
        return body


@dataclass(frozen=True)
class _Send:
    """A SEND decided on a page, waiting for a full PublishBatch."""

    job: Job
    decision: Decision
    phone: str


@dataclass
class _Candidate:
    """A SEND the engine decided on a page, before the budgets say whether it goes out this tick."""

    entry: DueEntry
    loan: Loan
    borrower: Borrower
    decision: Decision


@dataclass
class _TickBudget:
    """SENDs one shard task may still plan per identity this tick (``budget.tick_budget``)."""

    limits: dict[str, int]
    used: dict[str, int]

    def take(self, identity: str) -> bool:
        if self.used.get(identity, 0) >= self.limits[identity]:
            return False
        self.used[identity] = self.used.get(identity, 0) + 1
        return True

    def give_back(self, identity: str) -> None:
        self.used[identity] -= 1


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
    from dunning.adapters.budget_store import SpendLedger
    from dunning.budget import load_prices, load_sending_policy
    from dunning.engine import decide
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    dynamo = Dynamo()
    return Planner(
        lender=Lender(dynamo, settings.loans_table, settings.borrowers_table),
        state=StateStore(dynamo, settings.state_table, settings.shard_count),
        ledger=Ledger(dynamo, settings.ledger_table, settings.ledger_retention_days),
        outbound=Outbound(settings.outbound_topic_arn, concurrency=PUBLISH_CONCURRENCY),
        plan_queue=PlanQueue(settings.plan_queue_url),
        decide=decide,
        rulebooks=load_rulebooks(),
        strategies=load_strategies(),
        job_ttl=timedelta(minutes=settings.job_ttl_minutes),
        clock=clock.now,
        sending=load_sending_policy(),
        prices=load_prices(),
        spend=SpendLedger(dynamo, settings.state_table),
        tick_interval=settings.tick_interval,
    )


def is_window_opening(rule_id: str) -> bool:
    """Whether a DEFER of this rule ends when a contact window opens (its release is paced)."""
    from dunning.budget import PACED_RULES

    return rule_id in PACED_RULES


def _country(loan: Loan) -> str:
    return loan.jurisdiction.split("-")[0]


def _throughput_reason(identity: str, budget: _TickBudget) -> str:
    return (
        f"origination identity {identity} has no send budget left this tick "
        f"({budget.limits[identity]} for this shard: rate x min(job TTL, time to the next tick), split "
        "across shards)"
    )


def _next_day(at: datetime) -> datetime:
    return datetime.combine(at.date() + timedelta(days=1), time.min, tzinfo=UTC)


def _next_month(at: datetime) -> datetime:
    first = at.date().replace(day=1)
    return datetime.combine((first + timedelta(days=32)).replace(day=1), time.min, tzinfo=UTC)


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
    rulebooks: Rulebooks
    strategies: Strategies
    job_ttl: timedelta
    clock: Callable[[], datetime]
    page_size: int = PAGE_SIZE
    deadline_margin_ms: int = DEADLINE_MARGIN_MS
    # The lender's sending policy (throughput, priority, pacing, spend); None plans without budgets.
    sending: SendingPolicy | None = None
    prices: Prices | None = None
    spend: SpendLedger | None = None
    # Time to the next tick (None: unknown, the job TTL alone bounds a tick's budget).
    tick_interval: timedelta | None = None
    # Read the next page and flush the last one on worker threads while a page is decided (_Lanes);
    # False runs them on the invocation's thread, one after the other (the outbound's own concurrency,
    # PublishBatch requests of one flush at once, is the Outbound's).
    overlap: bool = True

    def fan_out(self, tick: Tick, metrics: MetricsRecorder) -> int:
        """One PlanQueue task per shard (SendMessageBatch, 10 a request). Returns the number of tasks."""
        tasks = [
            ShardTask(shard=shard, scheduled_time=tick.scheduled_time).message()
            for shard in self.state.cadence.shards()
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
        pages = self.state.cadence.due_pages(
            task.shard, now, page_size=self.page_size, start_key=task.continuation
        )
        # The outbox publishes and writes on a worker thread: it counts into a recorder of its own,
        # merged when the task is over.
        outbox = _Outbox(self, now, result, MetricsRecorder())
        budget = self._tick_budget(task)
        admission = _Admission(self, now, result, metrics, outbox, budget)
        page_planner = _PagePlanner(self, now, result, metrics, outbox, admission)
        self._create_clients()
        lanes = _Lanes(self.overlap)
        try:
            last_key = self._plan_pages(pages, page_planner, lanes, remaining_ms)
        finally:
            lanes.close()
            metrics.merge(outbox.metrics)
        if last_key is not None:
            self._hand_on(task, last_key, budget)
            result.handed_on = True
            metrics.count("PlannerContinuations")
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

    def _plan_pages(
        self, pages: Pages, page_planner: _PagePlanner, lanes: _Lanes, remaining_ms: Callable[[], int]
    ) -> Key | None:
        """Plan the pages one by one, reading the next while this one is decided and the one before is
        published and written. Returns the key to hand the rest on from when the deadline is near (None:
        the shard is done); everything decided is published and written when it returns."""
        outbox = page_planner.outbox
        reading = lanes.run(functools.partial(page_planner.read, pages))
        while (page := reading.result()) is not None:
            page_planner.result.pages += 1
            # Checked before the page is decided, so the next page is not read for nothing.
            out_of_time = page.last_key is not None and remaining_ms() < self.deadline_margin_ms
            if page.last_key is not None and not out_of_time:
                reading = lanes.run(functools.partial(page_planner.read, pages))
            if page.entries:
                page_planner.plan(page.entries, page.snapshot)
            if page.last_key is None or out_of_time:
                lanes.flush(outbox.take(full_only=False))
                lanes.wait_flushed()
                return page.last_key
            lanes.flush(outbox.take(full_only=True))
        lanes.flush(outbox.take(full_only=False))
        lanes.wait_flushed()
        return None

    def _create_clients(self) -> None:
        """The AWS clients the worker threads use, created on this thread first: a client is safe to
        share between threads, creating one from the shared boto3 session is not."""
        for dynamo in (self.lender.dynamo, self.state.dynamo, self.ledger.dynamo):
            _ = dynamo.client
        _ = self.outbound.client

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

    def _hand_on(self, task: ShardTask, last_key: Key, budget: _TickBudget | None = None) -> None:
        continuation = ShardTask(
            shard=task.shard,
            scheduled_time=task.scheduled_time,
            continuation=last_key,
            used=dict(budget.used) if budget is not None else None,
        )
        self.plan_queue.send([continuation.message()])

    def _tick_budget(self, task: ShardTask) -> _TickBudget | None:
        """This shard's share of each identity's tick budget, minus what earlier parts of the task used."""
        if self.sending is None:
            return None
        from dunning.budget import tick_budget

        shards = len(self.state.cadence.shards())
        index = int(task.shard.split("#")[1])
        interval = self.tick_interval or self.job_ttl
        tick_number = int(task.scheduled_time.timestamp() // interval.total_seconds())
        limits = {
            identity: tick_budget(rate, self.job_ttl, interval, shards, index % shards, tick_number)
            for identity, rate in self.sending.rates().items()
        }
        return _TickBudget(limits, dict(task.used or {}))


@dataclass
class _Pass:
    """One shard task being planned: the planner it runs for, the tick instant, its counts and metrics."""

    planner: Planner
    now: datetime
    result: ShardResult
    metrics: MetricsRecorder

    @property
    def state(self) -> StateStore:
        return self.planner.state

    @property
    def ledger(self) -> Ledger:
        return self.planner.ledger


class _Page(NamedTuple):
    """A page of due loans, the key after it (None: the last page) and everything deciding them needs."""

    entries: list[DueEntry]
    last_key: Key | None
    snapshot: Snapshot


class _Lanes:
    """Where a shard task's requests run. Overlapped, on two worker threads: the next page's reads, and
    the outbox's flushes (one at a time, in the order they were handed over); the caller's thread decides.
    Sequential (``overlap`` off): everything on the caller's thread, as it is handed over.

    An error in the work (an exception, or a BaseException such as a simulated crash) is raised on the
    caller's thread by ``Future.result`` or :meth:`wait_flushed`, never lost; :meth:`close` waits for
    whatever still runs, so a task never leaves a PublishBatch or BatchWriteItem behind it."""

    def __init__(self, overlap: bool) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._flushing: Future[None] | None = None
        if overlap:
            from concurrent.futures import ThreadPoolExecutor

            # Named after the invocation's thread, so its logs and hooks can tell whose work it is.
            prefix = f"{threading.current_thread().name}-planner"
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix=prefix)

    def run(self, work: Callable[[], T]) -> Future[T]:
        """Start ``work`` (at once, on this thread, when sequential)."""
        if self._pool is not None:
            return self._pool.submit(work)
        done: Future[T] = Future()
        try:
            done.set_result(work())
        except Exception as exc:
            done.set_exception(exc)
        return done

    def flush(self, work: Callable[[], None]) -> None:
        """Start ``work`` once the previous flush is over (raising its error here, if it failed)."""
        self.wait_flushed()
        self._flushing = self.run(work)

    def wait_flushed(self) -> None:
        flushing, self._flushing = self._flushing, None
        if flushing is not None:
            flushing.result()

    def close(self) -> None:
        """Wait for the worker threads. A flush still unawaited here means the task is already failing
        with another error: this one is logged with it rather than hidden."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        flushing, self._flushing = self._flushing, None
        error = flushing.exception() if flushing is not None else None
        if error is not None:
            logger.error("flush failed in a failing shard task", extra={"error": repr(error)})


@dataclass
class _Outbox(_Pass):
    """What a shard task has decided but not yet published or written, carried from page to page so
    PublishBatch and BatchWriteItem requests go out full. A crash loses nothing: the loans are still
    due, and the retried task plans them again.

    The planning thread fills ``sends`` and ``writes`` and hands them over with :meth:`take`; the flush
    it returns runs on the writing thread, which alone touches ``unwritten`` and counts into
    ``metrics`` (the outbox's own recorder)."""

    sends: list[_Send] = field(default_factory=list)
    writes: list[WriteOp] = field(default_factory=list)
    unwritten: list[WriteOp] = field(default_factory=list)

    def take(self, *, full_only: bool) -> Callable[[], None]:
        """The jobs ready to publish (whole PublishBatches only when ``full_only``, the rest stays for
        the next page) and every write decided so far, as the flush that publishes and writes them."""
        sends = self.sends
        ready = len(sends) - len(sends) % PUBLISH_BATCH if full_only else len(sends)
        batch, writes = sends[:ready], list(self.writes)
        del sends[:ready]
        self.writes.clear()
        return functools.partial(self.flush, batch, writes, full_only=full_only)

    def flush(self, sends: list[_Send], writes: list[WriteOp], *, full_only: bool) -> None:
        """Publish ``sends``, then write ``writes`` and the cadence items of the published jobs together
        with what earlier flushes left: only full requests (25 items) when ``full_only``, everything
        otherwise.

        A crash between a PublishBatch and the cadence writes of its jobs leaves those loans due: the
        retried task plans them again, and the second job for a step is never sent (the sender finds
        the step claimed and records it AMBIGUOUS, which the daily sweep resolves to SENT).
        """
        self.unwritten += writes
        self.unwritten += self._publish_ops(sends)
        unwritten = self.unwritten
        ready = len(unwritten) - len(unwritten) % BATCH_WRITE_LIMIT if full_only else len(unwritten)
        if ready:
            self.ledger.dynamo.batch_write(unwritten[:ready])
            del unwritten[:ready]

    def _publish_ops(self, sends: list[_Send]) -> list[WriteOp]:
        """PublishBatch ``sends``; the cadence writes of those that were published."""
        if not sends:
            return []
        result, metrics = self.result, self.metrics
        writes: list[WriteOp] = []
        published, failed = self.planner.outbound.publish([send.job for send in sends])
        by_id = {send.job.job_id: send for send in sends}
        for job in published:
            send = by_id[job.job_id]
            follow_up = send.decision.follow_up_at
            next_at = max(follow_up, job.expires_at) if follow_up is not None else None
            writes.append(self.cadence(send.decision, next_at, send.phone))
            metrics.count("Planned")
            result.planned += 1
            result.jobs.append(job)
        for job, code in failed:
            # The cadence is left as it is: the loan is still due and the next tick plans it again.
            logger.error("job not published", extra={"job_id": job.job_id, "code": code})
            metrics.count("PublishFailed")
            result.publish_failed += 1
        return writes

    def cadence(self, decision: Decision, next_at: datetime | None, phone: str | None = None) -> WriteOp:
        """The cadence item ``decision`` leaves the loan with: next contact at ``next_at`` (None: out of
        the due-index)."""
        from dunning.zones import phone_facts  # loaded with the engine by then

        item = self.state.cadence.cadence_item(
            decision.loan_id,
            decision.borrower_id,
            next_contact_at=next_at,
            at=self.now,
            rule_id=decision.rule_id,
            reason=decision.reason,
            phone=phone,
            # Kept on the item the planner rewrites: the next tick does not parse the number either.
            phone_facts=phone_facts(phone) if phone else None,
        )
        return self.state.cadence.put_op(item)


@dataclass
class _Admission(_Pass):
    """The tick's budgets applied to a page's SENDs: throughput per identity, then estimated SMS spend."""

    outbox: _Outbox
    budget: _TickBudget | None

    def admit(self, candidates: list[_Candidate]) -> None:
        """The page's SENDs in priority order: jobs within the budgets, ``budget.*`` deferrals beyond."""
        sending, budget, now = self.planner.sending, self.budget, self.now
        if sending is None or budget is None:
            for c in candidates:
                job = job_from_decision(c.decision, ttl=self.planner.job_ttl, phone=c.borrower.phone)
                self.outbox.sends.append(_Send(job, c.decision, c.borrower.phone or ""))
            return
        from dunning.budget import Candidate, priority_key, step_offset_days

        previous_tick = iso_utc(now - (self.planner.tick_interval or self.planner.job_ttl))

        def key(c: _Candidate) -> tuple[object, ...]:
            held_back = c.entry.next_contact_at < previous_tick
            offset = step_offset_days(c.decision.step)
            return priority_key(sending, Candidate(offset, c.entry.next_contact_at, held_back))

        admitted: list[tuple[_Candidate, str]] = []
        for c in sorted(candidates, key=key):
            channel = c.decision.channel or Channel.SMS
            identity, _ = sending.identity_for(channel, _country(c.loan))
            if budget.take(identity):
                admitted.append((c, identity))
            else:
                self._defer(c, "budget.throughput", _throughput_reason(identity, budget))
        for c, _identity in self._within_spend(admitted, budget):
            job = job_from_decision(c.decision, ttl=self.planner.job_ttl, phone=c.borrower.phone)
            self.outbox.sends.append(_Send(job, c.decision, c.borrower.phone or ""))

    def _within_spend(
        self, admitted: list[tuple[_Candidate, str]], budget: _TickBudget
    ) -> list[tuple[_Candidate, str]]:
        """The admitted SENDs whose estimated SMS cost fits the country's day and month budgets."""
        sending, prices, spend = self.planner.sending, self.planner.prices, self.planner.spend
        now, metrics = self.now, self.metrics
        if sending is None or prices is None or spend is None:
            return admitted
        by_country: dict[str, list[tuple[_Candidate, str]]] = {}
        kept: list[tuple[_Candidate, str]] = []
        for c, identity in admitted:
            if c.decision.channel == Channel.SMS:
                by_country.setdefault(_country(c.loan), []).append((c, identity))
            else:
                kept.append((c, identity))
        policy = sending.spend
        for country, group in by_country.items():
            limit = policy.limit_for(country)
            unit = policy.parts_per_sms * prices.sms_part(country)
            reservation = spend.reserve(country, len(group), unit, now, limit.daily, limit.monthly)
            used = max(reservation.day_percent, reservation.month_percent)
            metrics.observe("SpendBudgetUsedPercent", used, unit="Percent")
            if used >= policy.warn_at_percent:
                metrics.count("SpendBudgetWarning", country=country)
                logger.warning(
                    "estimated SMS spend near its budget",
                    extra={
                        "country": country,
                        "day_percent": round(reservation.day_percent, 1),
                        "month_percent": round(reservation.month_percent, 1),
                    },
                )
            kept.extend(group[: reservation.granted])
            month_full = reservation.month_percent >= reservation.day_percent
            for c, identity in group[reservation.granted :]:
                budget.give_back(identity)
                reason = (
                    f"the estimated SMS spend to {country} would cross its "
                    f"{'monthly' if month_full else 'daily'} budget "
                    f"({limit.monthly if month_full else limit.daily:g} {policy.currency})"
                )
                not_before = _next_month(now) if month_full else _next_day(now)
                self._defer(c, "budget.spend", reason, not_before)
        return kept

    def _defer(self, c: _Candidate, rule_id: str, reason: str, not_before: datetime | None = None) -> None:
        """Record a ``budget.*`` DEFER. A throughput deferral keeps the loan's place in the due-index
        (its next_contact_at, already behind this pass), so the next tick reads it before anything
        that fell due after it: a loan held back for budget is never overtaken, and cannot starve."""
        now = self.now
        tick = now + (self.planner.tick_interval or self.planner.job_ttl)
        decision = Decision(
            kind=DecisionKind.DEFER,
            loan_id=c.loan.loan_id,
            borrower_id=c.loan.borrower_id,
            at=now,
            rule_id=rule_id,
            reason=f"{reason}; step {c.decision.step} goes out at a later tick",
            citation=BUDGET_CITATION,
            not_before=not_before or tick,
        )
        if not_before is None:
            next_at = datetime.fromisoformat(c.entry.next_contact_at.replace("Z", "+00:00"))
        else:
            next_at = not_before
        self.outbox.writes.append(self.outbox.cadence(decision, next_at, c.borrower.phone))
        self.outbox.writes.append(self.ledger.decision_op(decision))
        self.metrics.count("Deferred", rule=rule_id)
        self.result.deferred += 1


def _remember_phone_facts(entries: list[DueEntry]) -> None:
    """The phone facts the indexer stored with each number: the engine does not parse those numbers.
    Facts of another version, or of a number the borrower no longer has, are never used (parsed)."""
    from dunning.zones import remember_phone_facts

    for e in entries:
        if e.phone and e.phone_facts:
            remember_phone_facts(e.phone, e.phone_facts)


@dataclass
class _PagePlanner(_Pass):
    """Decides a page of due loans with the engine: DEFER and STOP go to the outbox, SENDs are admitted."""

    outbox: _Outbox
    admission: _Admission

    @property
    def rulebooks(self) -> Rulebooks:
        return self.planner.rulebooks

    @property
    def strategies(self) -> Strategies:
        return self.planner.strategies

    def read(self, pages: Pages) -> _Page | None:
        """The next page of due loans and everything deciding them needs (None: no page left). Runs on
        the reading thread: it only reads."""
        found = next(pages, None)
        if found is None:
            return None
        entries, last_key = found
        snapshot = read_snapshot(
            self.planner.lender,
            self.state,
            [Wanted(e.loan_id, e.borrower_id, e.phone) for e in entries],
        )
        return _Page(entries, last_key, snapshot)

    def plan(self, entries: list[DueEntry], snapshot: Snapshot) -> None:
        """Decide a page: DEFER/STOP writes join the outbox, SENDs go to the admission."""
        now, result, metrics = self.now, self.result, self.metrics
        _remember_phone_facts(entries)
        writes = self.outbox.writes
        candidates: list[_Candidate] = []
        for entry in entries:
            try:
                subject = snapshot.subject(entry.loan_id)
            except InvalidItem as exc:
                loan_item = snapshot.loans.get(entry.loan_id) or {}
                borrower_id = attribute_id(loan_item.get("borrower_id") or entry.borrower_id)
                decision = stop_decision(entry.loan_id, borrower_id, now, DATA_INVALID, str(exc))
                if isinstance(exc, MissingItem) and exc.kind == "loan":
                    writes.append(self.state.cadence.delete_cadence_op(entry.loan_id))
                else:
                    writes.append(self.outbox.cadence(decision, None))
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
                decision = self.planner.decide(
                    loan, borrower, subject.state, now, self.rulebooks, self.strategies
                )
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
                decision = self._paced_follow_up(loan, borrower, subject.state, decision)
                candidates.append(_Candidate(entry, loan, borrower, decision))
            elif decision.kind == DecisionKind.DEFER:
                not_before = max(decision.not_before or now + ENGINE_ERROR_RETRY, now + MIN_DEFERRAL)
                if is_window_opening(decision.rule_id):
                    not_before = self._paced(loan, borrower, subject.state, not_before)
                writes.append(self.outbox.cadence(decision, not_before, borrower.phone))
                writes.append(self.ledger.decision_op(decision))
                metrics.count("Deferred", rule=decision.rule_id)
                result.deferred += 1
            else:
                writes.append(self.outbox.cadence(decision, None, borrower.phone))
                writes.append(self.ledger.decision_op(decision))
                metrics.count("Suppressed", rule=decision.rule_id)
                result.stopped += 1
        self.admission.admit(candidates)

    def _paced_follow_up(
        self, loan: Loan, borrower: Borrower, state: ContactState, decision: Decision
    ) -> Decision:
        """A SEND whose follow-up (the next step's first allowed instant: a window opening) is spread
        over the pacing span like any loan waiting for a window, judged with this step claimed."""
        follow_up, step = decision.follow_up_at, decision.step
        if follow_up is None or step is None:
            return decision
        sent = state.model_copy(
            update={"claims": state.claims | {ContactState.claim_key(loan.loan_id, step)}}
        )
        paced = self._paced(loan, borrower, sent, follow_up)
        return decision if paced == follow_up else decision.model_copy(update={"follow_up_at": paced})

    def _paced(self, loan: Loan, borrower: Borrower, state: ContactState, opens: datetime) -> datetime:
        """When a loan waiting for a window is planned: the opening plus this borrower's place in the
        pacing span, if the engine allows a SEND then (inside the window); else the opening itself."""
        sending = self.planner.sending
        if sending is None or not sending.pacing_span_minutes:
            return opens
        from dunning.budget import paced_release

        def sendable(at: datetime) -> bool:
            later = self.planner.decide(loan, borrower, state, at, self.rulebooks, self.strategies)
            return later.kind == DecisionKind.SEND

        return paced_release(opens, borrower.borrower_id, sending.pacing_span_minutes, sendable)
