"""The fault matrix: nothing lost, nothing sent twice, when AWS and the functions misbehave.

Every case runs the real handlers on moto (resources from template.yaml) with the fault injected where it
would happen in AWS: on moto's service side (``dunning_local.faults``: throttling, unprocessed batch
items), or by raising from an adapter at the instant a Lambda would die. SQS is driven as SQS drives the
sender: a record reported as a batch item failure (or every record of an invocation that died) becomes
visible again and is received again, its receive count growing, until the redrive policy moves it to the
dead-letter queue.

After every case the same checks run on what the run recorded and what SNS accepted:

- no (loan, cadence step) was accepted by SNS twice (each accepted publish is traced to the job the
  sender was handling at that instant);
- no MESSAGE falls outside a contact window in any candidate zone, and no cap is exceeded
  (``dunning_local.audit``'s oracles);
- every job the senders received is in a terminal recorded state (a MESSAGE, or an OUTCOME SENT /
  FAILED / SUPPRESSED / EXPIRED / AMBIGUOUS) or still in a queue (DLQ included), where it can be retried;
- no exception escaped a batch, except the simulated crashes themselves.

Cases already covered elsewhere are not repeated here: test_pipeline.py (the same tick twice, two
planners on one shard, a shard handed on at its deadline, each without faults), test_sender.py (one
throttled publish, a dead number with push fallback, a disabled endpoint with SMS fallback, expiry,
suppression, a redelivered job), test_receipts.py (unknown message id, a late older receipt). Here the
concurrency and continuation cases run *under* injected faults. Each case prints one ``MATRIX`` line
with its measured counts (``pytest -s tests/integration/test_faults.py``); docs/reliability.md
tabulates them.
"""

from __future__ import annotations

import functools
import json
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.sns.exceptions import SNSInvalidParameter
from moto.sns.models import SNSBackend
from pipeline_helpers import (
    INDEXED_AT,
    NY_PHONE,
    OUR_NUMBER,
    TICK,
    Harness,
    book,
    loan,
    run_concurrently,
    start_harness,
)

from dunning import zones
from dunning.adapters.ledger import Ledger
from dunning.adapters.messaging import Messaging
from dunning.items import borrower_from_item, loan_from_item, parse_iso_utc
from dunning.jurisdictions import policy_for
from dunning.models import Address, Borrower, Consent, Loan
from dunning.rules import load_rulebooks
from dunning_local import faults
from dunning_local import lambda_events as events
from dunning_local.audit import cap_violations, window_violation
from dunning_local.invoke import LambdaContext, batch_item_failures, job_ids, warm_function
from dunning_local.stack import LocalStack

TERMINAL = frozenset({"SENT", "DELIVERED", "FAILED", "SUPPRESSED", "EXPIRED", "AMBIGUOUS"})
MAX_RECEIVE_COUNT = 5  # the redrive policy of SmsQueue, PushQueue and PlanQueue in template.yaml
SEND_AT = TICK + timedelta(minutes=1)


class SimulatedCrash(BaseException):
    """The Lambda dies here (timeout, out of memory): nothing after this point runs, not even ``finally``
    blocks that write. A BaseException, so no ``except Exception`` in the product can swallow it."""


# ---- the job behind each publish -----------------------------------------------------------------

_current_job = threading.local()


@dataclass(frozen=True)
class Accepted:
    """A message SNS accepted: for which job (None for replies to borrowers), to which contact point."""

    job_id: str | None
    message_id: str
    contact_point: str


@dataclass
class Matrix:
    """A harness that delivers SQS like SQS, traces every accepted publish and checks the invariants."""

    harness: Harness
    accepted: list[Accepted] = field(default_factory=list)
    jobs_seen: set[str] = field(default_factory=set)
    redeliveries: int = 0
    crashes: int = 0
    escaped: list[BaseException] = field(default_factory=list)
    # Called before every invocation: a new invocation is a new process (a simulated crash is over).
    before_invoke: list[Callable[[], None]] = field(default_factory=list)

    @property
    def stack(self) -> LocalStack:
        return self.harness.stack

    # ---- delivery ------------------------------------------------------------------------------

    def deliver(
        self, queue: str, function: str, at: datetime, *, max_rounds: int = 12, batch_size: int = 10
    ) -> int:
        """Receive and hand batches to ``function`` until the queue is empty; failed records are made
        visible again (as their visibility timeout would). Returns how many invocations ran."""
        url = self.stack.queues[queue]
        arn = str(self.stack.get_att(queue, "Arn"))
        sqs = self.harness.sqs
        invocations = 0
        for _ in range(max_rounds):
            got: list[Any] = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=batch_size, AttributeNames=["All"], VisibilityTimeout=600
            ).get("Messages", [])
            if not got:
                return invocations
            self.jobs_seen |= job_ids(got)
            invocations += 1
            for hook in self.before_invoke:
                hook()
            try:
                failed = set(
                    batch_item_failures(self.harness.invoke(function, events.sqs_event(got, arn), at))
                )
            except SimulatedCrash:
                self.crashes += 1
                failed = {m["MessageId"] for m in got}
            except Exception as exc:  # counted against the case: nothing may escape a batch
                self.escaped.append(exc)
                failed = {m["MessageId"] for m in got}
            for message in got:
                if message["MessageId"] in failed:
                    self.redeliveries += 1
                    sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return invocations

    def tick(self, at: datetime, *, execution_id: str | None = None) -> None:
        self.harness.tick(at, execution_id=execution_id)
        self.deliver("PlanQueue", "PlannerFunction", at + timedelta(seconds=10), max_rounds=200, batch_size=1)

    def send(self, at: datetime = SEND_AT) -> None:
        for queue in ("SmsQueue", "PushQueue"):
            self.deliver(queue, "SenderFunction", at)

    def run_tick(self, at: datetime = TICK, send_at: datetime = SEND_AT) -> None:
        self.tick(at)
        self.send(send_at)

    def reconcile(self, at: datetime) -> dict[str, Any]:
        result: dict[str, Any] = self.harness.invoke(
            "ReconcileFunction", {"scheduled_time": events.iso_z(at)}, at
        )
        return result

    def receipts(self, records: list[tuple[str, dict[str, Any]]], at: datetime) -> Any:
        """Delivery-status log records (log group logical id, record) through the receipts function."""
        result = None
        for logical_id in sorted({g for g, _ in records}):
            group = str(self.stack.ref(logical_id))
            batch = [(at, r) for g, r in records if g == logical_id]
            result = self.harness.invoke("ReceiptsFunction", events.logs_subscription_event(group, batch), at)
        return result

    # ---- what came out -------------------------------------------------------------------------

    def queued(self) -> dict[str, list[dict[str, Any]]]:
        """What is left in every queue, DLQs included (read without changing anything else)."""
        left: dict[str, list[dict[str, Any]]] = {}
        for logical, url in self.stack.queues.items():
            got: list[Any] = self.harness.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=0
            ).get("Messages", [])
            if got:
                left[logical] = got
        return left

    def job_of(self, message: Mapping[str, Any]) -> str:
        body = json.loads(message["Body"])
        return f"{body['loan_id']}#{body['step']}"

    def check(self, *, crashes: int = 0) -> dict[str, Any]:
        """The four invariants; returns the measured counts of the case."""
        ledger = self.harness.ledger_items()
        messages = [i for i in ledger if i.get("type") == "MESSAGE"]
        outcomes = [i for i in ledger if i.get("type") == "OUTCOME"]

        # 1. No (loan, step) accepted twice by SNS; every accepted reminder on record.
        per_job = Counter(a.job_id for a in self.accepted if a.job_id)
        duplicates = {job: n for job, n in per_job.items() if n > 1}
        assert duplicates == {}, f"sent twice: {duplicates}"
        recorded = {str(m["message_id"]) for m in messages}
        ambiguous = {f"{o['loan_id']}#{o['step']}" for o in outcomes if o["status"] == "AMBIGUOUS"}
        unrecorded = [a for a in self.accepted if a.job_id and a.message_id not in recorded]
        assert all(a.job_id in ambiguous for a in unrecorded), "a publish with neither MESSAGE nor AMBIGUOUS"

        # 2. Windows and caps, recounted from the MESSAGE items.
        rulebooks = load_rulebooks()
        loans = {str(i["loan_id"]): loan_from_item(i) for i in self.harness.loans.scan()["Items"]}
        borrowers = {
            str(i["borrower_id"]): borrower_from_item(i) for i in self.harness.borrowers.scan()["Items"]
        }
        policy_of = {lid: policy_for(ln, borrowers[ln.borrower_id], rulebooks) for lid, ln in loans.items()}
        sends: dict[str, list[tuple[datetime, str, str]]] = {}
        primary: dict[str, str] = {}
        for m in messages:
            ln, who = loans[str(m["loan_id"])], borrowers[str(m["borrower_id"])]
            candidate = zones.candidate_zones(ln, who)
            primary[who.borrower_id] = candidate.primary
            at = parse_iso_utc(str(m["at"]))
            assert window_violation(at, policy_of[ln.loan_id], candidate.zones) is None, m["loan_id"]
            sends.setdefault(who.borrower_id, []).append((at, ln.loan_id, str(m["channel"])))
        for borrower_id, theirs in sends.items():
            assert cap_violations(theirs, policy_of, primary[borrower_id]) == [], borrower_id

        # 3. Every job terminal or still retryable in a queue.
        terminal = {f"{m['loan_id']}#{m['step']}" for m in messages} | {
            f"{o['loan_id']}#{o['step']}" for o in outcomes if o["status"] in TERMINAL
        }
        queued = self.queued()
        waiting = {self.job_of(m) for q in queued.values() for m in q}
        lost = sorted(self.jobs_seen - terminal - waiting)
        assert lost == [], f"jobs neither terminal nor queued: {lost}"

        # 4. Nothing escaped a batch but the crashes the case simulated.
        assert self.escaped == [], self.escaped
        assert self.crashes == crashes

        status = Counter(str(m["status"]) for m in messages) + Counter(str(o["status"]) for o in outcomes)
        return {
            "jobs": len(self.jobs_seen),
            "accepted": sum(per_job.values()),
            "duplicates": len(duplicates),
            "unrecorded": len(unrecorded),
            "status": dict(sorted(status.items())),
            "redelivered": self.redeliveries,
            "dlq": sum(len(v) for k, v in queued.items() if k.endswith("DLQ")),
            "queued": sum(len(v) for k, v in queued.items() if not k.endswith("DLQ")),
        }


def report(case: str, measured: Mapping[str, Any], faults_counted: Mapping[str, int] | None = None) -> None:
    row = dict(measured)
    if faults_counted:
        row["faults"] = dict(sorted(faults_counted.items()))
    print(f"\nMATRIX {case}: {json.dumps(row, sort_keys=True)}")


@pytest.fixture
def matrix(stack: LocalStack, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[Matrix]:
    harness = start_harness(stack, aws, monkeypatch)
    m = Matrix(harness)
    # Trace each publish SNS accepts to the job the sender was handling (the sender is in-process).
    from dunning import sender

    handle = sender._Batch.handle

    def traced_handle(batch: Any, record: Any) -> None:
        try:
            body = json.loads(record.body)
            _current_job.value = f"{body['loan_id']}#{body['step']}"
        except (ValueError, KeyError, TypeError):
            _current_job.value = None
        try:
            handle(batch, record)
        finally:
            _current_job.value = None

    monkeypatch.setattr(sender._Batch, "handle", traced_handle)
    publish = SNSBackend.publish

    def traced_publish(backend: Any, message: str, arn: str | None = None, *args: Any, **kwargs: Any) -> Any:
        message_id = publish(backend, message, arn, *args, **kwargs)
        target = kwargs.get("phone_number") or arn or ""
        if kwargs.get("phone_number") or ":endpoint/" in str(arn):
            m.accepted.append(Accepted(getattr(_current_job, "value", None), message_id, str(target)))
        return message_id

    monkeypatch.setattr(SNSBackend, "publish", traced_publish)
    yield m


def more_borrowers(count: int, *, first: int = 50) -> tuple[list[Loan], list[Borrower]]:
    """New York borrowers with their own fictional numbers (212-555-01nn), each a loan due for D+7."""
    borrowers = [
        Borrower(
            borrower_id=f"B-{n:02d}",
            first_name="Sam",
            time_zone="America/New_York",
            phone=f"+1212555{100 + n:04d}",
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True),
        )
        for n in range(first, first + count)
    ]
    loans = [
        loan(f"L-{n:02d}", f"B-{n:02d}", "US-NY", date(2026, 2, 23)) for n in range(first, first + count)
    ]
    return loans, borrowers


def seeded(matrix: Matrix, aws: boto3.Session, extra: int = 12) -> dict[str, str]:
    """The shared book (NY, MA, CN, GB, ON, paid) plus ``extra`` New York borrowers, indexed."""
    loans, borrowers, endpoints = book(aws)
    more_loans, more = more_borrowers(extra)
    matrix.harness.seed(loans + more_loans, borrowers + more)
    matrix.harness.index(INDEXED_AT)
    return endpoints


# ---- the sender dies ------------------------------------------------------------------------------


def crash_once(matrix: Matrix, monkeypatch: pytest.MonkeyPatch, cls: type, name: str, *, after: int) -> None:
    """Make ``cls.name`` kill the invocation on its ``after+1``-th call. The dead invocation writes
    nothing more (its batch's ledger write is lost too); the next invocation is a new process."""
    original = getattr(cls, name)
    write = Ledger.write
    state = {"calls": 0, "crashed": False, "dead": False}

    def crashing(self: Any, *args: Any, **kwargs: Any) -> Any:
        state["calls"] += 1
        if not state["crashed"] and state["calls"] > after:
            state["crashed"] = state["dead"] = True
            raise SimulatedCrash(f"{cls.__name__}.{name}")
        return original(self, *args, **kwargs)

    def dead_write(self: Any, ops: Any) -> int:
        if state["dead"]:
            raise SimulatedCrash("the process is gone")
        return write(self, ops)

    monkeypatch.setattr(cls, name, crashing)
    if name != "write":
        monkeypatch.setattr(Ledger, "write", dead_write)
    matrix.before_invoke.append(lambda: state.update(dead=False))


@pytest.mark.parametrize(
    ("case", "target", "after"),
    [
        # The third text of the batch: two went out, the third was claimed and never published.
        ("crash after the claim, before the publish", "send_sms", 2),
        # Every text of the batch went out; the batch's ledger write never happened.
        ("crash after the publish, before the ledger write", "write", 0),
    ],
)
def test_a_sender_that_dies_mid_batch_never_sends_a_step_twice(
    matrix: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch, case: str, target: str, after: int
) -> None:
    seeded(matrix, aws)
    cls: type = Messaging if target == "send_sms" else Ledger
    crash_once(matrix, monkeypatch, cls, target, after=after)
    matrix.tick(TICK)
    # The first SMS batch dies; SQS redelivers its records (to a fresh, cold handler) with the rest.
    matrix.send()
    measured = matrix.check(crashes=1)

    outcomes = {f"{o['loan_id']}#{o['step']}": o for o in matrix.harness.outcomes()}
    ambiguous = sorted(job for job, o in outcomes.items() if o["status"] == "AMBIGUOUS")
    sent_in_crash = [a.job_id for a in matrix.accepted if a.job_id in ambiguous]
    if target == "send_sms":
        # Two published before the crash and one claimed but never published: all three AMBIGUOUS
        # (the redelivered handler cannot tell them apart), none sent again.
        assert len(ambiguous) == 3
        assert len(sent_in_crash) == 2
    else:
        # All ten of the batch were published, none recorded: all AMBIGUOUS, none sent again.
        assert len(ambiguous) == 10
        assert len(sent_in_crash) == 10
    assert all(outcomes[j]["rule_id"] == "claim.exists" for j in ambiguous)
    # The sweep keeps them AMBIGUOUS: no MESSAGE says which step went out (the runbook's case).
    swept = matrix.reconcile(TICK + timedelta(hours=14))
    assert swept["ambiguous_open"] == len(ambiguous)
    assert swept["ambiguous_resolved"] == 0
    report(case, measured)


# ---- SNS refuses --------------------------------------------------------------------------------


def test_sns_throttling_is_retried_by_sqs_not_botocore_and_sent_once(
    matrix: Matrix, aws: boto3.Session
) -> None:
    seeded(matrix, aws)
    matrix.tick(TICK)
    # Every Publish is throttled on the first delivery: each is attempted once (no automatic retries on
    # the Publish client: a retry after a lost response would send twice), then the sender releases the
    # claim and reports the record for SQS to retry.
    with faults.injected(1.0, seed=1, operations={faults.SNS_PUBLISH}) as stats:
        matrix.deliver("SmsQueue", "SenderFunction", SEND_AT, max_rounds=1)
    throttled_attempts = stats.counts[f"{faults.SNS_PUBLISH}:Throttling"]
    assert matrix.accepted == []
    assert throttled_attempts == 10
    contacts = [i for i in matrix.harness.state.scan()["Items"] if i["sk"] == "CONTACT"]
    assert all(not c.get("claims") for c in contacts)  # every claim released
    # The next delivery gets through.
    matrix.send(SEND_AT + timedelta(minutes=2))
    measured = matrix.check()
    assert measured["accepted"] == 16
    assert measured["redelivered"] == 10
    report("SNS throttled on every attempt of the first delivery", measured, stats.counts)


def test_sns_throttled_on_every_delivery_ends_in_the_dlq_with_the_reason(
    matrix: Matrix, aws: boto3.Session
) -> None:
    seeded(matrix, aws, extra=0)
    matrix.tick(TICK)
    with faults.injected(1.0, seed=2, operations={faults.SNS_PUBLISH}) as stats:
        matrix.send()
    measured = matrix.check()
    dlq = matrix.queued()
    assert sorted(matrix.job_of(m) for m in dlq["SmsDLQ"]) == ["L-MA#D+1", "L-NY#D+7"]
    assert measured["accepted"] == 0
    assert measured["dlq"] == 4  # two texts, two pushes
    retry = matrix.harness.ledger.get_item(Key={"pk": "JOB#L-NY#D+7", "sk": "RETRY"})["Item"]
    assert retry["receive_count"] == MAX_RECEIVE_COUNT
    assert "Throttling" in str(retry["reason"])
    report("SNS throttled on every delivery (to the DLQ)", measured, stats.counts)


def test_sns_throttling_at_five_percent_is_absorbed(matrix: Matrix, aws: boto3.Session) -> None:
    seeded(matrix, aws, extra=40)
    with faults.injected(0.05, seed=3, operations={faults.SNS_PUBLISH}) as stats:
        matrix.run_tick()
    measured = matrix.check()
    assert stats.total > 0
    assert measured["accepted"] == 44
    assert measured["dlq"] == 0
    report("SNS throttled at 5 % of publishes", measured, stats.counts)


@pytest.mark.parametrize("case", ["invalid number", "endpoint disabled"])
def test_a_permanent_sns_error_fails_the_job_once_and_marks_the_point(
    matrix: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    endpoints = seeded(matrix, aws, extra=0)
    if case == "endpoint disabled":
        matrix.harness.sns.set_endpoint_attributes(
            EndpointArn=endpoints["GB"], Attributes={"Enabled": "false"}
        )
        point, job = endpoints["GB"], "L-GB#D+3"
    else:
        publish = SNSBackend.publish

        def refuse(backend: Any, message: str, arn: str | None = None, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("phone_number") == NY_PHONE:
                raise SNSInvalidParameter(f"Invalid parameter: PhoneNumber Reason: {NY_PHONE} is not valid")
            return publish(backend, message, arn, *args, **kwargs)

        monkeypatch.setattr(SNSBackend, "publish", refuse)
        point, job = NY_PHONE, "L-NY#D+7"
    matrix.run_tick()
    # Redelivering the batches changes nothing: a FAILED step is not tried again.
    matrix.send(SEND_AT + timedelta(minutes=5))
    measured = matrix.check()
    outcome = matrix.harness.ledger.get_item(Key={"pk": f"JOB#{job}", "sk": "OUTCOME"})["Item"]
    assert outcome["status"] == "FAILED"
    assert outcome["rule_id"] == "publish.contact_point"
    borrower = "B-GB" if job.startswith("L-GB") else "B-NY"
    contact = matrix.harness.state.get_item(Key={"pk": f"BORROWER#{borrower}", "sk": "CONTACT"})["Item"]
    unusable: Any = contact["unusable"]
    assert point in unusable
    assert job not in {a.job_id for a in matrix.accepted}  # the borrower has no other channel
    report(f"SNS permanent error: {case}", measured)


# ---- DynamoDB refuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "operations", "table"),
    [
        ("DynamoDB throttles the claim (UpdateItem)", {faults.DDB_UPDATE_ITEM}, "StateTable"),
        ("DynamoDB throttles the ledger write (BatchWriteItem)", {faults.DDB_BATCH_WRITE}, "LedgerTable"),
    ],
)
def test_dynamodb_throttling_in_the_sender_loses_and_duplicates_nothing(
    matrix: Matrix, aws: boto3.Session, case: str, operations: set[str], table: str
) -> None:
    seeded(matrix, aws)
    matrix.tick(TICK)
    # Throttled on every attempt during the first delivery of the texts.
    tables = {matrix.stack.tables[table]}
    with faults.injected(1.0, seed=4, operations=operations, tables=tables) as stats:
        matrix.deliver("SmsQueue", "SenderFunction", SEND_AT, max_rounds=1)
    first = len(matrix.accepted)
    matrix.send(SEND_AT + timedelta(minutes=2))
    measured = matrix.check()
    ambiguous = measured["status"].get("AMBIGUOUS", 0)
    if table == "StateTable":
        # No claim, no publish: the records went back to the queue and were sent on the next delivery.
        assert first == 0
        assert measured["accepted"] == 16
        assert ambiguous == 0
    else:
        # The texts went out but their MESSAGE items could not be written (some were: a throttled
        # BatchWriteItem may have applied part of the request): the records are retried and recorded
        # AMBIGUOUS (claimed), never sent again. The sweep resolves those whose MESSAGE exists.
        assert first == 10
        assert measured["accepted"] == 16
        assert ambiguous == 10
        swept = matrix.reconcile(TICK + timedelta(hours=14))
        assert swept["ambiguous_open"] == measured["unrecorded"]
        assert swept["ambiguous_resolved"] == ambiguous - measured["unrecorded"]
        measured["resolved_by_sweep"] = swept["ambiguous_resolved"]
    report(case, measured, stats.counts)


def test_unprocessed_batch_items_and_keys_are_retried_until_done(matrix: Matrix, aws: boto3.Session) -> None:
    loans, borrowers, _ = book(aws)
    more_loans, more = more_borrowers(30)
    matrix.harness.seed(loans + more_loans, borrowers + more)
    with faults.injected(0.3, seed=5, operations={faults.DDB_BATCH_WRITE, faults.DDB_BATCH_GET}) as stats:
        matrix.harness.index(INDEXED_AT)
        matrix.run_tick()
    measured = matrix.check()
    assert stats.counts[f"{faults.DDB_BATCH_WRITE}:UnprocessedItems"] > 0
    assert stats.counts[f"{faults.DDB_BATCH_GET}:UnprocessedKeys"] > 0
    assert measured["accepted"] == 34
    assert measured["dlq"] == 0
    report("BatchWriteItem / BatchGetItem faults at 30 % (unprocessed or throttled)", measured, stats.counts)


# ---- at-least-once delivery and concurrency, under faults ---------------------------------------


def test_the_same_tick_twice_under_faults_sends_each_step_once(matrix: Matrix, aws: boto3.Session) -> None:
    seeded(matrix, aws, extra=20)
    with faults.injected(0.05, seed=6) as stats:
        matrix.tick(TICK, execution_id="first")
        matrix.tick(TICK, execution_id="again")
        matrix.send()
        matrix.send(SEND_AT + timedelta(minutes=5))
    measured = matrix.check()
    assert measured["accepted"] == 24
    report("the same tick delivered twice, 5 % faults", measured, stats.counts)


def test_two_planners_on_one_shard_under_faults_send_each_step_once(
    matrix: Matrix, aws: boto3.Session
) -> None:
    seeded(matrix, aws, extra=20)
    matrix.harness.tick(TICK)
    tasks = matrix.harness.drain("PlanQueue")
    arn = matrix.stack.get_att("PlanQueue", "Arn")
    from dunning_local.invoke import invoke

    calls: list[Callable[[], Any]] = [
        functools.partial(invoke, "PlannerFunction", events.sqs_event([task], arn), matrix.stack)
        for task in tasks
        for _ in range(2)
    ]
    environment = warm_function(matrix.stack, "PlannerFunction").environment
    with faults.injected(0.2, seed=7, operations={faults.DDB_BATCH_WRITE, faults.DDB_BATCH_GET}) as stats:
        for start in range(0, len(calls), 2):
            errors = run_concurrently(
                calls[start : start + 2],
                at=TICK + timedelta(seconds=10),
                environment=environment,
                hold_at="before-call.dynamodb.BatchWriteItem",
            )
            assert errors == []
        matrix.send()
    measured = matrix.check()
    assert measured["accepted"] == 24
    report("two planners on every shard at once, 20 % unprocessed batches", measured, stats.counts)


def one_full_shard(matrix: Matrix) -> None:
    """60 New York loans that all fall in one shard (of 16), each borrower with a number of their own,
    seeded and indexed."""
    ids = [i for i in (f"L-{n:04d}" for n in range(1200)) if zlib.crc32(i.encode()) % 16 == 0][:60]
    numbers = [f"+1{area}555{n:04d}" for area in (212, 646, 718) for n in range(100, 200)]
    borrowers = [
        Borrower(
            borrower_id=f"B{i}",
            time_zone="America/New_York",
            phone=numbers[k],
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True),
        )
        for k, i in enumerate(ids)
    ]
    matrix.harness.seed([loan(i, f"B{i}", "US-NY", date(2026, 2, 23)) for i in ids], borrowers)
    matrix.harness.index(INDEXED_AT)


def test_a_planner_out_of_time_mid_shard_hands_on_under_faults(
    matrix: Matrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 60 loans in one shard, read in pages of 25: the planner has no time left after each page.
    one_full_shard(matrix)
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: 0)
    from dunning import planner

    build = planner.build_planner

    def small_pages(settings: Any) -> planner.Planner:
        built = build(settings)
        built.page_size = 25
        return built

    monkeypatch.setattr(planner, "build_planner", small_pages)
    with faults.injected(0.1, seed=8) as stats:
        matrix.harness.tick(TICK)
        tasks = matrix.deliver(
            "PlanQueue", "PlannerFunction", TICK + timedelta(seconds=10), max_rounds=200, batch_size=1
        )
        matrix.send()
    measured = matrix.check()
    # 16 shard tasks and at least the two continuations of the full shard (more if a task was retried).
    assert tasks >= 18
    assert measured["accepted"] == 60
    assert measured["jobs"] == 60
    report(
        "planner out of time after every page (continuations), 10 % faults",
        {**measured, "planner_tasks": tasks},
        stats.counts,
    )


def test_an_overlapped_planner_crashing_in_its_writer_and_out_of_time_plans_each_loan_once(
    matrix: Matrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 60 loans in one shard, pages of 10: the planner reads the next page and publishes and writes the last
    # one on its worker threads. Its first task dies in the writing thread, in the BatchWriteItem after its
    # second page's PublishBatch (the jobs of that batch are out, their cadence is not written); every
    # task after it runs out of time after its third page and hands the rest on.
    one_full_shard(matrix)
    from dunning import planner
    from dunning.adapters.dynamo import Dynamo

    calls = Counter[str]()

    def three_pages(self: Any) -> int:
        calls["remaining"] += 1
        return 0 if calls["remaining"] % 3 == 0 else 900_000

    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", three_pages)
    build = planner.build_planner

    def small_pages(settings: Any) -> planner.Planner:
        built = build(settings)
        built.page_size = 10
        return built

    monkeypatch.setattr(planner, "build_planner", small_pages)
    batch_write = Dynamo.batch_write
    writers: set[str] = set()

    def dies_once(self: Dynamo, ops: Any) -> Any:
        name = threading.current_thread().name
        if "-planner_" in name:
            writers.add(name)
            calls["planner writes"] += 1
            if calls["planner writes"] == 2:
                raise SimulatedCrash("the planner dies in its writing thread")
        return batch_write(self, ops)

    monkeypatch.setattr(Dynamo, "batch_write", dies_once)
    with faults.injected(0.1, seed=9) as stats:
        matrix.harness.tick(TICK)
        tasks = matrix.deliver(
            "PlanQueue", "PlannerFunction", TICK + timedelta(seconds=10), max_rounds=200, batch_size=1
        )
        matrix.send()
    measured = matrix.check(crashes=1)
    # The writes ran on the planner's worker threads, not the invocation's.
    assert writers != set()
    # 16 shard tasks, the retried one and the continuations of the full shard.
    assert tasks >= 18
    # Every loan's step accepted by SNS exactly once (check() found no duplicate), none missing.
    assert measured["accepted"] == 60
    assert measured["jobs"] == 60
    report(
        "overlapped planner: crash in the writing thread, out of time every third page, 10 % faults",
        {**measured, "planner_tasks": tasks},
        stats.counts,
    )


# ---- a poison message ---------------------------------------------------------------------------


def test_a_poison_job_goes_to_the_dlq_after_max_receives_with_its_reason(
    matrix: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(matrix, aws, extra=4)
    from dunning import engine

    decide = engine.decide

    def broken_for_one_loan(loan: Loan, *args: Any) -> Any:
        if loan.loan_id == "L-NY":
            raise RuntimeError("the engine cannot handle this loan")
        return decide(loan, *args)

    matrix.tick(TICK)  # the planner decides with the real engine
    monkeypatch.setattr(engine, "decide", broken_for_one_loan)
    matrix.send()
    measured = matrix.check()
    dlq = matrix.queued()["SmsDLQ"]
    assert [matrix.job_of(m) for m in dlq] == ["L-NY#D+7"]
    assert int(dlq[0]["Attributes"]["ApproximateReceiveCount"]) >= MAX_RECEIVE_COUNT
    retry = matrix.harness.ledger.get_item(Key={"pk": "JOB#L-NY#D+7", "sk": "RETRY"})["Item"]
    assert retry["receive_count"] == MAX_RECEIVE_COUNT
    assert retry["reason"] == "RuntimeError: the engine cannot handle this loan"
    # The rest of its batches went out once each.
    assert measured["accepted"] == 7
    assert measured["dlq"] == 1
    report("a poison job (the sender fails on it every time)", measured)


# ---- receipts out of order ----------------------------------------------------------------------


def test_a_receipt_before_its_message_is_written_reaches_it(
    matrix: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(matrix, aws, extra=0)
    matrix.tick(TICK)
    write = Ledger.write
    early: list[str] = []

    def receipts_first(self: Ledger, ops: Any) -> int:
        # The carrier is faster than the sender: the receipts are in before the batch's ledger write.
        ops = list(ops)
        fresh = [a for a in matrix.accepted if a.message_id not in early and a.job_id]
        if fresh and any(op.key.get("sk") == "MESSAGE" for op in ops):
            early.extend(a.message_id for a in fresh)
            records = [
                (
                    "SmsDeliveryLogGroup",
                    events.sms_delivery_record(
                        a.message_id, a.contact_point, SEND_AT, success=True, price=0.00581
                    ),
                )
                for a in fresh
                if a.contact_point.startswith("+")
            ]
            if records:
                matrix.receipts(records, SEND_AT)
        return write(self, ops)

    monkeypatch.setattr(Ledger, "write", receipts_first)
    matrix.deliver("SmsQueue", "SenderFunction", SEND_AT)
    monkeypatch.setattr(Ledger, "write", write)
    matrix.deliver("PushQueue", "SenderFunction", SEND_AT)
    messages = matrix.harness.messages()
    assert {messages[k]["status"] for k in ("L-NY", "L-MA")} == {"SENT"}
    kept = [i for i in matrix.harness.ledger_items() if i.get("type") == "RECEIPT"]
    assert len(kept) == 2
    # The daily sweep brings each early receipt to its message.
    swept = matrix.reconcile(TICK + timedelta(hours=14))
    assert swept["early_receipts_merged"] == 2
    messages = matrix.harness.messages()
    assert {messages[k]["status"] for k in ("L-NY", "L-MA")} == {"DELIVERED"}
    assert messages["L-NY"]["carrier"] == "Example Carrier"
    measured = matrix.check()
    report("a receipt before its MESSAGE is written", {**measured, "merged_by_sweep": 2})


def test_a_receipt_72_hours_late_and_one_for_an_unknown_id(matrix: Matrix, aws: boto3.Session) -> None:
    seeded(matrix, aws, extra=0)
    matrix.run_tick()
    message = matrix.harness.messages()["L-NY"]
    late = SEND_AT + timedelta(hours=72)
    records = [
        (
            "SmsDeliveryFailureLogGroup",
            events.sms_delivery_record(str(message["message_id"]), NY_PHONE, late, success=False, price=0),
        ),
        (
            "SmsDeliveryLogGroup",
            events.sms_delivery_record("not-ours-0001", OUR_NUMBER, late, success=True, price=0),
        ),
    ]
    assert matrix.receipts(records, late + timedelta(minutes=1)) == {"receipts": 1}
    message = matrix.harness.messages()["L-NY"]
    assert message["status"] == "FAILED"
    assert message["receipt_at"] == events.iso_z(late)
    assert message["at"] < events.iso_z(TICK + timedelta(minutes=5))  # the send time is kept
    unknown = matrix.harness.ledger.get_item(Key={"pk": "MSG#not-ours-0001", "sk": "RECEIPT"})["Item"]
    assert unknown["status"] == "DELIVERED"
    # The sweep merges nothing into a message that does not exist, and lets the pointer go after 4 days.
    assert matrix.reconcile(late + timedelta(hours=2))["early_receipts_merged"] == 0
    assert matrix.reconcile(late + timedelta(days=5))["early_receipts_dropped"] == 1
    measured = matrix.check()
    report("a receipt 72 h late; a receipt for an unknown id", measured)


# ---- inbound under faults -----------------------------------------------------------------------


def test_a_free_text_reply_retried_after_a_throttle_still_pauses_and_alerts(
    matrix: Matrix, aws: boto3.Session
) -> None:
    seeded(matrix, aws, extra=0)
    sqs = aws.client("sqs")
    inbox = sqs.create_queue(QueueName="attention-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws.client("sns").subscribe(
        TopicArn=matrix.stack.topics["AttentionTopic"], Protocol="sqs", Endpoint=inbox_arn
    )
    at = TICK + timedelta(minutes=30)
    payload = events.inbound_sms(NY_PHONE, OUR_NUMBER, "I lost my job, can we talk?", inbound_id="in-free-1")
    event = events.sns_event(str(matrix.stack.topics["InboundTopic"]), payload, at)
    state_table = {matrix.stack.tables["StateTable"]}
    # The pause (UpdateItem on the contact item) is throttled past botocore's retries: the invocation
    # fails and Lambda retries the event.
    with (
        faults.injected(1.0, seed=9, operations={faults.DDB_UPDATE_ITEM}, tables=state_table) as stats,
        pytest.raises(Exception, match=r"ProvisionedThroughputExceeded|Throttling"),
    ):
        matrix.harness.invoke("InboundFunction", event, at)
    matrix.harness.invoke("InboundFunction", event, at + timedelta(minutes=1))
    contact = matrix.harness.state.get_item(Key={"pk": "BORROWER#B-NY", "sk": "CONTACT"})["Item"]
    assert contact["paused_until"] == events.iso_z(at + timedelta(days=7))
    alerts = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
    assert len(alerts) == 1
    # A third delivery (the retry of a retry) does nothing more.
    matrix.harness.invoke("InboundFunction", event, at + timedelta(minutes=2))
    assert sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", []) == []
    report(
        "a free-text reply whose pause is throttled, then retried",
        {"alerts": 1, "paused": True},
        stats.counts,
    )
