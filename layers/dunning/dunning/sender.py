"""The sender: turn a job into at most one message, re-checked at send time and claimed atomically.

For an SQS batch of jobs: one BatchGetItem reads every loan, borrower, contact item and consent item the
batch needs. Then, job by job:

1. expired (older than its TTL) → EXPIRED;
2. re-decide with the engine at the *current* time: the answer must still be SEND for the same step,
   otherwise SUPPRESSED with the engine's rule and reason, and the loan is planned again at the
   engine's earliest instant;
3. render (before claiming: a message that cannot be rendered is never claimed);
4. claim: a conditional UpdateItem on the borrower's contact item (version read + step not claimed)
   that also records the send for the caps, and drops the claims of loans that ended long ago (the
   batch's read includes the loans those claims name: ``dunning.adapters.contact.prunable_claims``). A
   lost race re-reads and re-decides; a step already claimed → AMBIGUOUS, never resent;
5. Publish, attempted exactly once (the client has no automatic retries: a retry after a lost
   response sends twice). Refused for now (throttled, not authorised) → the claim is released and the
   record reported as a batch item failure (SQS retries it later); a dead number or endpoint → FAILED,
   the point marked unusable, the claim released, and the engine asked again: if it now says SEND on
   another channel for the same step, that goes out; no answer, or one that may follow an acceptance (a
   timeout, a dropped connection, a 5xx) → AMBIGUOUS, claim kept (it may have gone out: never risk a
   second one).

All ledger items of the batch are written with BatchWriteItem at the end. A record that fails (to be
retried by SQS, and after the queue's maxReceiveCount moved to its DLQ) leaves a ``RETRY`` item saying
why. Nothing raises out of a batch: if the batch cannot be read, every record is retried; if its ledger
write fails, every record whose outcome was in it is retried (a step already claimed then becomes
AMBIGUOUS, never a second message).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from dunning import clock
from dunning.adapters.contact import ClaimConflict
from dunning.adapters.dynamo import Dynamo, WriteOp
from dunning.adapters.ledger import Ledger, Status
from dunning.adapters.lender import Lender
from dunning.adapters.messaging import FailureKind, Messaging, PublishError, SmsOptions
from dunning.adapters.reads import Snapshot, Subject, Wanted, read_snapshot
from dunning.adapters.state import StateStore
from dunning.event_shapes import records_of
from dunning.items import InvalidItem, iso_utc
from dunning.jobs import InvalidJob, Job, parse_job
from dunning.models import (
    Borrower,
    Channel,
    ContactState,
    Decision,
    DecisionKind,
    Loan,
    SendRecord,
    build_validators,
)
from dunning.observability import MetricsRecorder, PackageLogger, mask_contact_point, mask_text
from dunning.settings import SenderSettings

if TYPE_CHECKING:
    # Types only: the engine, the rules and the renderer are imported when the sender is built.
    from dunning.adapters.pacing import SendPacer
    from dunning.profile import LenderProfile
    from dunning.render import RenderedMessage
    from dunning.rules import Policy, Rulebooks
    from dunning.strategy import Strategies

    DecideFn = Callable[[Loan, Borrower, ContactState, datetime, Rulebooks, Strategies], Decision]

    class RenderFn(Protocol):
        """``dunning.render.render_message`` as the sender calls it."""

        def __call__(
            self,
            decision: Decision,
            loan: Loan,
            borrower: Borrower,
            *,
            required_content: frozenset[str],
            max_sms_segments: int,
            profile: LenderProfile | None = None,
            jurisdictions: tuple[str, ...] = (),
        ) -> RenderedMessage: ...


logger = PackageLogger(__name__)

# Claim races (two jobs of one borrower in flight at once) are re-decided this many times, then the
# record goes back to the queue to be tried later with fresh state.
MAX_CLAIM_ATTEMPTS = 3
# The sends list must cover the longest cap window of any loan of the borrower (a calendar month, a
# quarter); the applicable policy may ask for more.
MIN_SENDS_KEPT = timedelta(days=95)


class RetryLater(Exception):
    """Raised from a record handler: SQS should redeliver this record later (nothing was sent)."""


@dataclass
class Toolkit:
    """The pure parts the sender calls: the engine, the policy lookup and the renderer."""

    decide: DecideFn
    policy_for: Callable[[Loan, Borrower, Rulebooks], Policy]
    render_message: RenderFn
    sns_push_message: Callable[[RenderedMessage], str]
    render_errors: tuple[type[Exception], ...]
    rulebooks: Rulebooks
    strategies: Strategies
    profile: LenderProfile | None = None


@dataclass
class Sender:
    lender: Lender
    state: StateStore
    ledger: Ledger
    messaging: Messaging
    toolkit: Toolkit
    sms_options: SmsOptions
    job_ttl: timedelta
    clock: Callable[[], datetime]
    # Per-identity send pacing shared by concurrent senders (None: publish without waiting).
    pacer: SendPacer | None = None

    def process(self, event: Mapping[str, Any], context: Any, metrics: MetricsRecorder) -> dict[str, Any]:
        """Handle an SQS batch of jobs; returns the partial batch response."""
        # A wrong shape (not an object, Records not a list, null or string records) is logged and counted
        # by ``records_of``; the records that are objects are handled as usual.
        records = records_of(event, metrics)
        if not records:
            return {"batchItemFailures": []}
        metrics.count("Jobs", len(records))
        batch = _Batch(self, metrics)
        try:
            batch.prepare(records)
        except Exception as exc:
            # Nothing was claimed or sent yet: the whole batch is simply tried again later.
            logger.error("batch not read; every record retried", extra={"error": _describe(exc)})
            metrics.count("BatchRetried")
            return {"batchItemFailures": [{"itemIdentifier": str(r.get("messageId", ""))} for r in records]}
        # The partial batch response is built here rather than with Powertools' BatchProcessor, whose
        # import (the parser models of every event source) costs the sender's cold start ~60 ms.
        failures: list[dict[str, str]] = []
        try:
            for raw in records:
                record = SQSRecord(raw)
                try:
                    batch.handle(record)
                except Exception:
                    failures.append({"itemIdentifier": record.message_id})
        finally:
            # Whatever happened to individual records, what was sent must be in the ledger.
            unwritten = batch.flush()
        failing = {f["itemIdentifier"] for f in failures}
        failures += [{"itemIdentifier": m} for m in sorted(unwritten - failing)]
        return {"batchItemFailures": failures}


@dataclass(frozen=True)
class SQSRecord:
    """One record of an SQS event, read like Powertools' ``SQSRecord``."""

    raw_event: Mapping[str, Any]

    @property
    def message_id(self) -> str:
        return str(self.raw_event.get("messageId", ""))

    @property
    def body(self) -> str:
        return str(self.raw_event.get("body", ""))


class Outcome(Enum):
    """Where one decide → claim → publish pass left a job."""

    SENT = "sent"  # published; its ledger item is recorded
    RETRY = "retry"  # nothing went out and the claim is released: SQS delivers the record again
    DONE = "done"  # a terminal outcome (suppressed, failed, ambiguous) is recorded: stop here
    REDECIDE = "redecide"  # the contact item changed (a lost claim race, a dead point): decide again


@dataclass
class _Batch:
    sender: Sender
    metrics: MetricsRecorder
    recorder: _Recorder = field(init=False)
    jobs: dict[str, Job | InvalidJob] = field(default_factory=dict)
    snapshot: Snapshot = field(default_factory=Snapshot)
    states: dict[str, ContactState] = field(default_factory=dict)
    seen_jobs: set[str] = field(default_factory=set)
    # SQS message ids of the records whose outcome is among the recorder's writes.
    writers: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.recorder = _Recorder(self.sender.ledger, self.metrics)

    # ---- before the records: parse every job, read everything in one go -------------------------

    def prepare(self, records: list[Mapping[str, Any]]) -> None:
        wanted: list[Wanted] = []
        for record in records:
            message_id = str(record.get("messageId", ""))
            try:
                job = parse_job(str(record.get("body", "")))
            except InvalidJob as exc:
                self.jobs[message_id] = exc
                continue
            self.jobs[message_id] = job
            wanted.append(Wanted(job.loan_id, job.borrower_id, job.phone))
        if wanted:
            # With the loans of a contact item's old claims when it holds more than one loan can: the
            # claim prunes those of the loans that ended.
            self.snapshot = read_snapshot(
                self.sender.lender,
                self.sender.state,
                wanted,
                consistent=True,
                old_claims_over=self.sender.toolkit.strategies.most_steps,
            )

    def flush(self) -> set[str]:
        """Write the batch's ledger items; returns the records to retry if that failed."""
        writes = self.recorder.writes
        if not writes:
            return set()
        try:
            self.sender.ledger.write(writes)
        except Exception as exc:
            # The messages that went out are claimed, so their retried records end AMBIGUOUS, never
            # sent again. Their provider message ids are in the "message sent" log lines.
            logger.error(
                "ledger write failed; the records are retried",
                extra={"error": _describe(exc), "items": len(writes), "records": len(self.writers)},
            )
            self.metrics.count("LedgerWriteFailed")
            return set(self.writers)
        finally:
            self.recorder.writes = []
        return set()

    # ---- one record ---------------------------------------------------------------------------------

    def handle(self, record: SQSRecord) -> None:
        before = len(self.recorder.writes)
        try:
            self._handle(record)
        except Exception as exc:
            self.recorder.retried(record, self.jobs.get(record.message_id), exc, self.sender.clock)
            raise
        finally:
            if len(self.recorder.writes) > before:
                self.writers.add(record.message_id)

    def _handle(self, record: SQSRecord) -> None:
        parsed = self.jobs.get(record.message_id)
        now = self.sender.clock()
        if parsed is None or isinstance(parsed, InvalidJob):
            reason = str(parsed) if parsed is not None else "record not seen when the batch was prepared"
            self.recorder.invalid_job(record.message_id, reason, now)
            return
        job = parsed
        if job.job_id in self.seen_jobs:
            # The same job twice in one batch: the first one's outcome is this one's too.
            self.metrics.count("DuplicateJob")
            return
        self.seen_jobs.add(job.job_id)
        expires_at = min(job.expires_at, job.planned_at + self.sender.job_ttl)
        if now >= expires_at:
            self.recorder.outcome(
                job, Status.EXPIRED, now, rule_id="job.expired", reason="job older than its TTL"
            )
            self.metrics.count("Expired")
            return
        try:
            subject = self.snapshot.subject(job.loan_id)
        except InvalidItem as exc:
            self.recorder.outcome(job, Status.SUPPRESSED, now, rule_id="data.invalid", reason=str(exc))
            self.metrics.count("InvalidItem")
            self.metrics.count("Suppressed", rule="data.invalid")
            return
        _Delivery(self, job, subject, now).run()

    def state_of(self, subject: Subject) -> ContactState:
        # Claims made earlier in this batch changed the contact item: use what we wrote, not the snapshot.
        return self.states.get(subject.borrower.borrower_id, subject.state)

    def still_to_send(self, channel: Channel) -> int:
        # This job and the batch's jobs not handled yet: the pacer takes their tokens in one request.
        waiting = (j for j in self.jobs.values() if isinstance(j, Job) and j.job_id not in self.seen_jobs)
        return 1 + sum(1 for j in waiting if j.channel == channel)


@dataclass
class _Delivery:
    """One job at send time: decided again, rendered, claimed and published, or recorded why not.

    A lost claim race or a dead contact point changes the contact item: the job is then decided again
    (a fallback channel for the same step may go out), at most ``MAX_CLAIM_ATTEMPTS`` times.
    """

    batch: _Batch
    job: Job
    subject: Subject
    now: datetime
    failed_channels: set[Channel] = field(default_factory=set)

    def run(self) -> None:
        state = self.batch.state_of(self.subject)
        for _ in range(MAX_CLAIM_ATTEMPTS):
            if self._attempt(state) is not Outcome.REDECIDE:
                return
            state = self.batch.states[self.subject.borrower.borrower_id]
        raise RetryLater(f"{self.job.job_id}: contact item kept changing")

    def _attempt(self, state: ContactState) -> Outcome:
        """Decide, render, claim and publish once; a dead channel joins ``failed_channels``."""
        batch, job, now = self.batch, self.job, self.now
        sender, toolkit = batch.sender, batch.sender.toolkit
        loan, borrower = self.subject.loan, self.subject.borrower
        if job.claim_key in state.claims:
            batch.recorder.ambiguous(job, now, "step already claimed: a redelivered or duplicate job")
            return Outcome.DONE
        decision = toolkit.decide(loan, borrower, state, now, toolkit.rulebooks, toolkit.strategies)
        if (
            decision.kind != DecisionKind.SEND
            or decision.step != job.step
            or decision.channel in self.failed_channels
        ):
            if not self.failed_channels:  # after a failure (recorded already) there is no fallback
                self._suppress(decision)
            return Outcome.DONE
        channel = decision.channel or job.channel
        contact_point = _contact_point(borrower, state, channel)
        if contact_point is None:
            self._suppress(decision, rule_id="channel.unavailable", reason=f"no usable {channel} contact")
            return Outcome.DONE
        policy = toolkit.policy_for(loan, borrower, toolkit.rulebooks)
        message = self._render(decision, policy, channel)
        if message is None:
            return Outcome.DONE
        if sender.pacer is not None:
            # The send token is taken before the claim, so that the claim is the sender's last write
            # before Publish: an opt-out that lands while a sender waits for its turn (up to
            # SENDER_MAX_WAIT_SECONDS) changes the contact item's version and fails the claim.
            try:
                sender.pacer.pace(channel, loan.jurisdiction, demand=batch.still_to_send(channel))
            except PublishError as error:
                # Nothing is claimed yet: SQS simply delivers the job again later.
                batch.metrics.count("Throttled", channel=channel.value)
                raise RetryLater(f"{job.job_id}: {error.code}") from error
        keep = _sends_kept_for(policy)
        try:
            claimed = sender.state.contact.claim(
                state,
                loan_id=job.loan_id,
                step=job.step,
                channel=channel,
                at=now,
                keep_sends_for=keep,
                ended_loans=batch.snapshot.ended_loans(),
            )
        except ClaimConflict:
            batch.metrics.count("ClaimConflict")
            state = sender.state.contact.read_contact(borrower.borrower_id, borrower.phone)
            batch.states[borrower.borrower_id] = state
            return Outcome.REDECIDE
        batch.states[borrower.borrower_id] = claimed
        step = _ClaimedStep(batch, job, decision, borrower, claimed, channel, contact_point, now)
        outcome = step.publish(message)
        if outcome is Outcome.REDECIDE:
            self.failed_channels.add(channel)
        return outcome

    def _render(self, decision: Decision, policy: Policy, channel: Channel) -> _Message | None:
        """The message and, for a push, its SNS JSON; None (recorded FAILED) when it cannot be rendered."""
        toolkit, job = self.batch.sender.toolkit, self.job
        try:
            rendered = toolkit.render_message(
                decision,
                self.subject.loan,
                self.subject.borrower,
                required_content=policy.required_content,
                max_sms_segments=policy.max_sms_segments,
                profile=toolkit.profile,
                jurisdictions=tuple(policy.jurisdictions),
            )
            push_json = toolkit.sns_push_message(rendered) if channel == Channel.PUSH else None
        except toolkit.render_errors as exc:
            logger.error("message not rendered", extra={"job_id": job.job_id, "error": str(exc)})
            self.batch.recorder.outcome(
                job,
                Status.FAILED,
                self.now,
                rule_id=_render_rule_id(exc),
                reason=str(exc)[:500],
                channel=channel,
            )
            self.batch.metrics.count("RenderFailed")
            return None
        return _Message(rendered, push_json)

    def _suppress(self, decision: Decision, *, rule_id: str | None = None, reason: str | None = None) -> None:
        job, now = self.job, self.now
        rule = rule_id or decision.rule_id
        self.batch.recorder.suppressed(job, decision, now, rule_id=rule, reason=reason or decision.reason)
        # Plan the loan again at the engine's earliest instant, not at the later one the planner set.
        when: datetime | None = None
        if decision.kind == DecisionKind.DEFER and decision.not_before is not None:
            when = decision.not_before
        elif decision.kind == DecisionKind.SEND:
            when = now
        if when is not None:
            self.batch.sender.state.cadence.replan_earlier(
                job.loan_id, when, now, rule, reason or decision.reason
            )


@dataclass(frozen=True)
class _Message:
    """A rendered message and, for a push, the SNS JSON that carries it."""

    rendered: RenderedMessage
    push_json: str | None

    @property
    def text(self) -> str:
        return self.rendered.text or ""


@dataclass(frozen=True)
class _ClaimedStep:
    """A job whose step is claimed on ``channel``: published exactly once, or its claim undone."""

    batch: _Batch
    job: Job
    decision: Decision
    borrower: Borrower
    claimed: ContactState
    channel: Channel
    contact_point: str
    now: datetime

    def publish(self, message: _Message) -> Outcome:
        """SENT, or where the failure leaves the job (RETRY is raised as ``RetryLater``)."""
        sender, channel, contact_point = self.batch.sender, self.channel, self.contact_point
        try:
            if channel == Channel.SMS:
                message_id = sender.messaging.send_sms(contact_point, message.text, sender.sms_options)
            else:
                message_id = sender.messaging.send_push(contact_point, message.push_json or "")
        except PublishError as error:
            outcome = self._failed(error)
            if outcome is Outcome.RETRY:
                raise RetryLater(f"{self.job.job_id}: {error.code}") from error
            return outcome
        counted = _failures_counted(self.batch.snapshot, self.job.borrower_id, contact_point)
        self.batch.recorder.sent(self, message_id, message.rendered, failures_counted=counted)
        return Outcome.SENT

    def _failed(self, error: PublishError) -> Outcome:
        """Undo the claim of a message that did not go out; REDECIDE leaves the fresh state in ``states``."""
        batch, job, borrower, channel, now = self.batch, self.job, self.borrower, self.channel, self.now
        state_store, recorder = batch.sender.state, batch.recorder
        masked = mask_contact_point(self.contact_point)
        log = {"job_id": job.job_id, "channel": channel.value, "code": error.code, "contact": masked}
        if error.kind == FailureKind.UNKNOWN:
            logger.error("publish outcome unknown: job recorded AMBIGUOUS", extra=log)
            recorder.ambiguous(job, now, f"publish outcome unknown ({error.code})", channel=channel)
            return Outcome.DONE
        unusable = self.contact_point if error.kind == FailureKind.CONTACT_POINT else None
        released = state_store.contact.release(
            self.claimed, loan_id=job.loan_id, step=job.step, phone=borrower.phone, unusable_point=unusable
        )
        if error.kind == FailureKind.RETRYABLE:
            if not released:
                logger.error("throttled and the claim could not be released: AMBIGUOUS", extra=log)
                recorder.ambiguous(
                    job, now, f"throttled ({error.code}) and claim not released", channel=channel
                )
                return Outcome.DONE
            logger.warning("publish throttled: claim released, record retried later", extra=log)
            batch.metrics.count("Throttled", channel=channel.value)
            batch.states.pop(borrower.borrower_id, None)
            return Outcome.RETRY
        logger.warning("publish failed for good", extra=log)
        recorder.outcome(
            job,
            Status.FAILED,
            now,
            rule_id=f"publish.{error.kind.value}",
            reason=f"{error.code}: {error.detail}"[:500],
            channel=channel,
            contact_point=self.contact_point,
        )
        batch.metrics.count("Failed", channel=channel.value)
        if not released or error.kind == FailureKind.REJECTED:
            return Outcome.DONE
        fresh = state_store.contact.read_contact(borrower.borrower_id, borrower.phone)
        batch.states[borrower.borrower_id] = fresh
        return Outcome.REDECIDE


@dataclass
class _Recorder:
    """The batch's ledger entries, built here and written together when the batch ends."""

    ledger: Ledger
    metrics: MetricsRecorder
    writes: list[WriteOp] = field(default_factory=list)

    def sent(
        self,
        step: _ClaimedStep,
        message_id: str,
        rendered: RenderedMessage,
        *,
        failures_counted: bool | None,
    ) -> None:
        job, decision, channel, contact_point = step.job, step.decision, step.channel, step.contact_point
        now = step.now
        fields = {
            "job_id": job.job_id,
            "loan_id": job.loan_id,
            "borrower_id": job.borrower_id,
            "step": job.step,
            "channel": channel.value,
            "contact_point": contact_point,
            "status": Status.SENT,
            "template": decision.template or job.template,
            "rule_id": decision.rule_id,
            "reason": decision.reason,
            "jurisdictions": decision.jurisdictions_record() or None,
            "locale": rendered.locale,
            "segments": rendered.segments,
            "encoding": rendered.encoding,
            "planned_at": iso_utc(job.planned_at),
            # Failures were counted against this point when it was sent: its DELIVERED receipt resets
            # them (receipts read contact items only for such messages, not for every delivery).
            "failures_counted": failures_counted,
        }
        self.writes.append(self.ledger.message_op(message_id, fields, now))
        self.metrics.count("Sent", channel=channel.value)
        if channel != job.channel:
            self.metrics.count("FallbackSent", channel=channel.value)
        logger.info(
            "message sent",
            extra={
                "job_id": job.job_id,
                "channel": channel.value,
                "message_id": message_id,
                "contact": mask_contact_point(contact_point),
            },
        )

    def outcome(
        self,
        job: Job,
        status: str,
        now: datetime,
        *,
        rule_id: str,
        reason: str,
        channel: Channel | None = None,
        contact_point: str | None = None,
        jurisdictions: list[dict[str, str | None]] | None = None,
    ) -> None:
        fields = {
            "job_id": job.job_id,
            "borrower_id": job.borrower_id,
            "channel": (channel or job.channel).value,
            "status": status,
            "rule_id": rule_id,
            "reason": reason,
            "contact_point": contact_point,
            "planned_at": iso_utc(job.planned_at),
            "jurisdictions": jurisdictions or None,
        }
        self.writes.append(self.ledger.outcome_op(job.loan_id, job.step, fields, now))

    def ambiguous(self, job: Job, now: datetime, reason: str, *, channel: Channel | None = None) -> None:
        self.outcome(job, Status.AMBIGUOUS, now, rule_id="claim.exists", reason=reason, channel=channel)
        self.writes.append(self.ledger.ambiguous_op(job.loan_id, job.step, now))
        self.metrics.count("Ambiguous")

    def suppressed(self, job: Job, decision: Decision, now: datetime, *, rule_id: str, reason: str) -> None:
        self.outcome(
            job,
            Status.SUPPRESSED,
            now,
            rule_id=rule_id,
            reason=reason,
            jurisdictions=decision.jurisdictions_record(),
        )
        self.metrics.count("Suppressed", rule=rule_id)
        logger.info("job suppressed at send time", extra={"job_id": job.job_id, "rule_id": rule_id})

    def invalid_job(self, message_id: str, reason: str, now: datetime) -> None:
        logger.error("invalid job consumed", extra={"sqs_message_id": message_id, "reason": reason})
        self.writes.append(self.ledger.invalid_job_op(message_id, reason, now))
        self.metrics.count("InvalidJob")

    def retried(
        self, record: SQSRecord, job: Job | InvalidJob | None, exc: Exception, clock: Callable[[], datetime]
    ) -> None:
        """A record SQS will deliver again (and after maxReceiveCount move to the DLQ): say why."""
        count = str(record.raw_event.get("attributes", {}).get("ApproximateReceiveCount", ""))
        receive_count = int(count) if count.isdigit() else 0
        reason = _describe(exc)
        log: dict[str, str | int] = {
            "sqs_message_id": record.message_id,
            "receive_count": receive_count,
            "reason": reason,
        }
        if isinstance(job, Job):
            log["job_id"] = job.job_id
            self.writes.append(
                self.ledger.retry_op(
                    job.loan_id, job.step, reason=reason, receive_count=receive_count, at=clock()
                )
            )
        if isinstance(exc, RetryLater):
            logger.warning("record retried later", extra=log)
        elif isinstance(exc, ClientError):
            # AWS said no (throttled past the retries, access denied): the reason says it all.
            logger.error("record failed; SQS retries it", extra=log)
        else:
            logger.exception("record failed; SQS retries it", extra=log)
        self.metrics.count("RecordRetried")


def _contact_point(borrower: Borrower, state: ContactState, channel: Channel) -> str | None:
    """The borrower's first usable point on ``channel``, or None."""
    unusable = state.unusable | borrower.invalid_contacts
    if channel == Channel.SMS:
        return borrower.phone if borrower.phone and borrower.phone not in unusable else None
    for endpoint in borrower.push_endpoints:
        if endpoint.arn not in unusable:
            return endpoint.arn
    return None


def _render_rule_id(exc: Exception) -> str:
    """The ledger's rule id for a message that could not be rendered."""
    from dunning.render import RenderError  # loaded already: the toolkit's renderer lives there

    return exc.rule_id if isinstance(exc, RenderError) else "render.error"


def _failures_counted(snapshot: Snapshot, borrower_id: str, contact_point: str) -> bool | None:
    """True when the borrower's contact item, as read for this batch, counts failures of the point."""
    counted = (snapshot.contacts.get(borrower_id) or {}).get("hard_failures") or {}
    return True if contact_point in counted else None


def _describe(exc: BaseException) -> str:
    """``Type: message`` for the ledger and the logs, numbers masked, bounded."""
    text = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
    return mask_text(text)[:500]


def _sends_kept_for(policy: Policy) -> timedelta:
    longest = MIN_SENDS_KEPT
    for cap in policy.caps:
        window = timedelta(microseconds=cap.period_us) if cap.period_us else timedelta(days=31)
        longest = max(longest, window)
    return longest


def build_sender(settings: SenderSettings) -> Sender:
    """The sender wired to AWS as the settings say (clients are created on first use)."""
    from dunning.adapters.budget_store import RateLimiter
    from dunning.adapters.pacing import SENDER_MAX_WAIT_SECONDS, SendPacer
    from dunning.budget import load_sending_policy
    from dunning.engine import decide
    from dunning.jurisdictions import policy_for
    from dunning.profile import load_profile
    from dunning.render import RenderError, render_message, sns_push_message
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    build_validators(SendRecord)  # every send's claim records one
    dynamo = Dynamo()
    return Sender(
        lender=Lender(dynamo, settings.loans_table, settings.borrowers_table),
        state=StateStore(dynamo, settings.state_table),
        ledger=Ledger(dynamo, settings.ledger_table, settings.ledger_retention_days),
        messaging=Messaging(),
        toolkit=Toolkit(
            decide=decide,
            policy_for=policy_for,
            render_message=render_message,
            sns_push_message=sns_push_message,
            render_errors=(RenderError, ValueError),
            rulebooks=load_rulebooks(),
            strategies=load_strategies(),
            profile=load_profile(),
        ),
        sms_options=SmsOptions(settings.sms_origination_identity, settings.sms_max_price_usd),
        job_ttl=timedelta(minutes=settings.job_ttl_minutes),
        clock=clock.now,
        pacer=SendPacer(
            RateLimiter(dynamo, settings.state_table, max_wait=SENDER_MAX_WAIT_SECONDS), load_sending_policy()
        ),
    )
