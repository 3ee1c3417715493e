"""The sender: turn a job into at most one message, re-checked at send time and claimed atomically.

For an SQS batch of jobs: one BatchGetItem reads every loan, borrower, contact item and consent item the
batch needs. Then, job by job:

1. expired (older than its TTL) → EXPIRED;
2. re-decide with the engine at the *current* time: the answer must still be SEND for the same step,
   otherwise SUPPRESSED with the engine's rule and reason, and the loan is planned again at the
   engine's earliest instant;
3. render (before claiming: a message that cannot be rendered is never claimed);
4. claim: a conditional UpdateItem on the borrower's contact item (version read + step not claimed)
   that also records the send for the caps. A lost race re-reads and re-decides; a step already
   claimed → AMBIGUOUS, never resent;
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
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from dunning import clock
from dunning.adapters.dynamo import Dynamo, WriteOp
from dunning.adapters.ledger import Ledger, Status
from dunning.adapters.lender import Lender
from dunning.adapters.messaging import FailureKind, Messaging, PublishError, SmsOptions
from dunning.adapters.reads import Snapshot, Subject, Wanted, read_snapshot
from dunning.adapters.state import ClaimConflict, StateStore
from dunning.event_shapes import records_of
from dunning.items import InvalidItem, iso_utc
from dunning.jobs import InvalidJob, Job, parse_job
from dunning.models import Borrower, Channel, ContactState, Decision, DecisionKind, Loan
from dunning.observability import MetricsRecorder, PackageLogger, mask_contact_point, mask_text
from dunning.settings import SenderSettings

if TYPE_CHECKING:
    from dunning.adapters.pacing import SendPacer

logger = PackageLogger(__name__)

DecideFn = Callable[[Loan, Borrower, ContactState, datetime, Any, Any], Decision]
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
    policy_for: Callable[[Loan, Borrower, Any], Any]
    render_message: Callable[..., Any]
    sns_push_message: Callable[[Any], str]
    render_errors: tuple[type[Exception], ...]
    rulebooks: Any
    strategies: Any
    profile: Any = None


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


@dataclass
class _Batch:
    sender: Sender
    metrics: MetricsRecorder
    jobs: dict[str, Job | InvalidJob] = field(default_factory=dict)
    snapshot: Snapshot = field(default_factory=Snapshot)
    states: dict[str, ContactState] = field(default_factory=dict)
    seen_jobs: set[str] = field(default_factory=set)
    writes: list[WriteOp] = field(default_factory=list)
    # SQS message ids of the records whose outcome is among ``writes``.
    writers: set[str] = field(default_factory=set)

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
            self.snapshot = read_snapshot(self.sender.lender, self.sender.state, wanted, consistent=True)

    def flush(self) -> set[str]:
        """Write the batch's ledger items; returns the records to retry if that failed."""
        if not self.writes:
            return set()
        try:
            self.sender.ledger.write(self.writes)
        except Exception as exc:
            # The messages that went out are claimed, so their retried records end AMBIGUOUS, never
            # sent again. Their provider message ids are in the "message sent" log lines.
            logger.error(
                "ledger write failed; the records are retried",
                extra={"error": _describe(exc), "items": len(self.writes), "records": len(self.writers)},
            )
            self.metrics.count("LedgerWriteFailed")
            return set(self.writers)
        finally:
            self.writes = []
        return set()

    # ---- one record ---------------------------------------------------------------------------------

    def handle(self, record: SQSRecord) -> None:
        before = len(self.writes)
        try:
            self._handle(record)
        except Exception as exc:
            self._failed(record, exc)
            raise
        finally:
            if len(self.writes) > before:
                self.writers.add(record.message_id)

    def _failed(self, record: SQSRecord, exc: Exception) -> None:
        """A record SQS will deliver again (and after maxReceiveCount move to the DLQ): say why."""
        job = self.jobs.get(record.message_id)
        count = str(record.raw_event.get("attributes", {}).get("ApproximateReceiveCount", ""))
        receive_count = int(count) if count.isdigit() else 0
        reason = _describe(exc)
        log = {"sqs_message_id": record.message_id, "receive_count": receive_count, "reason": reason}
        if isinstance(job, Job):
            log["job_id"] = job.job_id
            self.writes.append(
                self.sender.ledger.retry_op(
                    job.loan_id, job.step, reason=reason, receive_count=receive_count, at=self.sender.clock()
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

    def _handle(self, record: SQSRecord) -> None:
        parsed = self.jobs.get(record.message_id)
        now = self.sender.clock()
        if parsed is None or isinstance(parsed, InvalidJob):
            reason = str(parsed) if parsed is not None else "record not seen when the batch was prepared"
            logger.error(
                "invalid job consumed", extra={"sqs_message_id": record.message_id, "reason": reason}
            )
            self.writes.append(self.sender.ledger.invalid_job_op(record.message_id, reason, now))
            self.metrics.count("InvalidJob")
            return
        job = parsed
        if job.job_id in self.seen_jobs:
            # The same job twice in one batch: the first one's outcome is this one's too.
            self.metrics.count("DuplicateJob")
            return
        self.seen_jobs.add(job.job_id)
        expires_at = min(job.expires_at, job.planned_at + self.sender.job_ttl)
        if now >= expires_at:
            self._outcome(job, Status.EXPIRED, now, rule_id="job.expired", reason="job older than its TTL")
            self.metrics.count("Expired")
            return
        try:
            subject = self.snapshot.subject(job.loan_id)
        except InvalidItem as exc:
            self._outcome(job, Status.SUPPRESSED, now, rule_id="data.invalid", reason=str(exc))
            self.metrics.count("InvalidItem")
            self.metrics.count("Suppressed", rule="data.invalid")
            return
        self._send(job, subject, now)

    def _state(self, subject: Subject) -> ContactState:
        # Claims made earlier in this batch changed the contact item: use what we wrote, not the snapshot.
        return self.states.get(subject.borrower.borrower_id, subject.state)

    def _send(self, job: Job, subject: Subject, now: datetime) -> None:
        sender, toolkit = self.sender, self.sender.toolkit
        loan, borrower = subject.loan, subject.borrower
        state = self._state(subject)
        failed_channels: set[Channel] = set()
        for _ in range(MAX_CLAIM_ATTEMPTS):
            if job.claim_key in state.claims:
                self._ambiguous(job, now, "step already claimed: a redelivered or duplicate job")
                return
            decision = toolkit.decide(loan, borrower, state, now, toolkit.rulebooks, toolkit.strategies)
            if (
                decision.kind != DecisionKind.SEND
                or decision.step != job.step
                or decision.channel in failed_channels
            ):
                if failed_channels:
                    return  # the failure is recorded; no fallback channel for this step
                self._suppress(job, decision, now)
                return
            channel = decision.channel or job.channel
            contact_point = self._contact_point(borrower, state, channel)
            if contact_point is None:
                self._suppress(
                    job, decision, now, rule_id="channel.unavailable", reason=f"no usable {channel} contact"
                )
                return
            policy = toolkit.policy_for(loan, borrower, toolkit.rulebooks)
            try:
                rendered = toolkit.render_message(
                    decision,
                    loan,
                    borrower,
                    required_content=policy.required_content,
                    max_sms_segments=policy.max_sms_segments,
                    profile=toolkit.profile,
                    jurisdictions=tuple(policy.jurisdictions),
                )
                push_json = toolkit.sns_push_message(rendered) if channel == Channel.PUSH else None
            except toolkit.render_errors as exc:
                logger.error("message not rendered", extra={"job_id": job.job_id, "error": str(exc)})
                self._outcome(
                    job,
                    Status.FAILED,
                    now,
                    rule_id=getattr(exc, "rule_id", "render.error"),
                    reason=str(exc)[:500],
                    channel=channel,
                )
                self.metrics.count("RenderFailed")
                return
            keep = _sends_kept_for(policy)
            try:
                claimed = sender.state.claim(
                    state, loan_id=job.loan_id, step=job.step, channel=channel, at=now, keep_sends_for=keep
                )
            except ClaimConflict:
                self.metrics.count("ClaimConflict")
                state = sender.state.read_contact(borrower.borrower_id, borrower.phone)
                self.states[borrower.borrower_id] = state
                continue
            self.states[borrower.borrower_id] = claimed
            try:
                if sender.pacer is not None:
                    sender.pacer.pace(channel, loan.jurisdiction, demand=self._still_to_send(channel))
                if channel == Channel.SMS:
                    message_id = sender.messaging.send_sms(contact_point, rendered.text, sender.sms_options)
                else:
                    message_id = sender.messaging.send_push(contact_point, push_json or "")
            except PublishError as error:
                try:
                    state = self._publish_failed(job, borrower, claimed, channel, contact_point, error, now)
                except _Done:
                    return
                failed_channels.add(channel)
                continue
            self._sent(job, decision, channel, contact_point, message_id, rendered, now)
            return
        raise RetryLater(f"{job.job_id}: contact item kept changing")

    def _still_to_send(self, channel: Channel) -> int:
        # This job and the batch's jobs not handled yet: the pacer takes their tokens in one request.
        waiting = (j for j in self.jobs.values() if isinstance(j, Job) and j.job_id not in self.seen_jobs)
        return 1 + sum(1 for j in waiting if j.channel == channel)

    def _contact_point(self, borrower: Borrower, state: ContactState, channel: Channel) -> str | None:
        unusable = state.unusable | borrower.invalid_contacts
        if channel == Channel.SMS:
            return borrower.phone if borrower.phone and borrower.phone not in unusable else None
        for endpoint in borrower.push_endpoints:
            if endpoint.arn not in unusable:
                return endpoint.arn
        return None

    def _publish_failed(
        self,
        job: Job,
        borrower: Borrower,
        claimed: ContactState,
        channel: Channel,
        contact_point: str,
        error: PublishError,
        now: datetime,
    ) -> ContactState:
        """Undo the claim of a message that did not go out; returns the state to re-decide with."""
        state_store = self.sender.state
        masked = mask_contact_point(contact_point)
        log = {"job_id": job.job_id, "channel": channel.value, "code": error.code, "contact": masked}
        if error.kind == FailureKind.UNKNOWN:
            logger.error("publish outcome unknown: job recorded AMBIGUOUS", extra=log)
            self._ambiguous(job, now, f"publish outcome unknown ({error.code})", channel=channel)
            raise _Done
        unusable = contact_point if error.kind == FailureKind.CONTACT_POINT else None
        released = state_store.release(
            claimed, loan_id=job.loan_id, step=job.step, phone=borrower.phone, unusable_point=unusable
        )
        if error.kind == FailureKind.RETRYABLE:
            if not released:
                logger.error("throttled and the claim could not be released: AMBIGUOUS", extra=log)
                self._ambiguous(job, now, f"throttled ({error.code}) and claim not released", channel=channel)
                raise _Done
            logger.warning("publish throttled: claim released, record retried later", extra=log)
            self.metrics.count("Throttled", channel=channel.value)
            self.states.pop(borrower.borrower_id, None)
            raise RetryLater(f"{job.job_id}: {error.code}")
        logger.warning("publish failed for good", extra=log)
        self._outcome(
            job,
            Status.FAILED,
            now,
            rule_id=f"publish.{error.kind.value}",
            reason=f"{error.code}: {error.detail}"[:500],
            channel=channel,
            contact_point=contact_point,
        )
        self.metrics.count("Failed", channel=channel.value)
        if not released or error.kind == FailureKind.REJECTED:
            raise _Done
        fresh = state_store.read_contact(borrower.borrower_id, borrower.phone)
        self.states[borrower.borrower_id] = fresh
        return fresh

    # ---- ledger entries ---------------------------------------------------------------------------------

    def _sent(
        self,
        job: Job,
        decision: Decision,
        channel: Channel,
        contact_point: str,
        message_id: str,
        rendered: Any,
        now: datetime,
    ) -> None:
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
            "locale": getattr(rendered, "locale", None),
            "segments": getattr(rendered, "segments", None),
            "encoding": getattr(rendered, "encoding", None),
            "planned_at": iso_utc(job.planned_at),
            # Failures were counted against this point when it was sent: its DELIVERED receipt resets
            # them (receipts read contact items only for such messages, not for every delivery).
            "failures_counted": _failures_counted(self.snapshot, job.borrower_id, contact_point),
        }
        self.writes.append(self.sender.ledger.message_op(message_id, fields, now))
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

    def _outcome(
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
        self.writes.append(self.sender.ledger.outcome_op(job.loan_id, job.step, fields, now))

    def _ambiguous(self, job: Job, now: datetime, reason: str, *, channel: Channel | None = None) -> None:
        self._outcome(job, Status.AMBIGUOUS, now, rule_id="claim.exists", reason=reason, channel=channel)
        self.writes.append(self.sender.ledger.ambiguous_op(job.loan_id, job.step, now))
        self.metrics.count("Ambiguous")

    def _suppress(
        self,
        job: Job,
        decision: Decision,
        now: datetime,
        *,
        rule_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        rule = rule_id or decision.rule_id
        self._outcome(
            job,
            Status.SUPPRESSED,
            now,
            rule_id=rule,
            reason=reason or decision.reason,
            jurisdictions=decision.jurisdictions_record(),
        )
        self.metrics.count("Suppressed", rule=rule)
        logger.info("job suppressed at send time", extra={"job_id": job.job_id, "rule_id": rule})
        # Plan the loan again at the engine's earliest instant, not at the later one the planner set.
        when: datetime | None = None
        if decision.kind == DecisionKind.DEFER and decision.not_before is not None:
            when = decision.not_before
        elif decision.kind == DecisionKind.SEND:
            when = now
        if when is not None:
            self.sender.state.replan_earlier(job.loan_id, when, now, rule, reason or decision.reason)


class _Done(Exception):
    """Internal: the job reached a recorded terminal state inside a helper; stop processing it."""


def _failures_counted(snapshot: Snapshot, borrower_id: str, contact_point: str) -> bool | None:
    """True when the borrower's contact item, as read for this batch, counts failures of the point."""
    counted = (snapshot.contacts.get(borrower_id) or {}).get("hard_failures") or {}
    return True if contact_point in counted else None


def _describe(exc: BaseException) -> str:
    """``Type: message`` for the ledger and the logs, numbers masked, bounded."""
    text = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
    return mask_text(text)[:500]


def _sends_kept_for(policy: Any) -> timedelta:
    longest = MIN_SENDS_KEPT
    for cap in getattr(policy, "caps", ()):
        period_us = getattr(cap, "period_us", None)
        window = timedelta(microseconds=period_us) if period_us else timedelta(days=31)
        longest = max(longest, window)
    return longest


def build_sender(settings: SenderSettings) -> Sender:
    """The sender wired to AWS as the settings say (clients are created on first use)."""
    from dunning.adapters.budget_store import RateLimiter
    from dunning.adapters.pacing import SENDER_MAX_WAIT_SECONDS, SendPacer
    from dunning.budget import load_sending_policy
    from dunning.engine import decide
    from dunning.render import RenderError, load_profile, render_message, sns_push_message
    from dunning.rules import load_rulebooks, policy_for
    from dunning.strategy import load_strategies

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
