"""A small lender's world on moto for the state-machine test: the real handlers, a clock, faults, oracles.

:class:`World` is built once per test (template.yaml's stack on in-process moto, every function loaded
warm) and :meth:`World.reset` empties it between schedules, so one schedule costs its steps, not a stack.
It drives the handlers as their event sources would (Scheduler tick and PlanQueue tasks to the planner,
SQS batches to the sender, SNS notifications to inbound, Logs subscription events to receipts, stream
records to the indexer), injects one fault into the next invocation of a function when asked (a crash or
a throttle before its k-th AWS call, a Publish whose response is lost after SNS accepted it), and runs a
reply and a send interleaved AWS call by AWS call.

What SNS accepted is read from moto's backend (a wrapper around ``SNSBackend.publish``), each message
traced to the function and the job being handled at that instant; the oracles in
test_state_machine.py judge those, never the product's ledger alone.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ReadTimeoutError

from dunning import clock
from dunning.items import borrower_to_item, loan_to_item
from dunning.models import Address, Borrower, Consent, Loan
from dunning_local import lambda_events as events
from dunning_local.invoke import LambdaContext, WarmFunction, batch_item_failures, warm_function
from dunning_local.pacer_clock import PacerClock, simulated_pacing
from dunning_local.stack import LocalStack

ACCOUNT, REGION = "123456789012", "us-east-1"
# Monday 2026-03-02 13:00Z: 08:00 in New York and Boston, the first hour the lender may text.
T0 = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
OUR_NUMBER = "+12125550101"
SHARED_PHONE = "+12125550142"  # Ana and Ben, one household
CY_PHONE = "+16175550123"
PHONES = (SHARED_PHONE, CY_PHONE)
SHARDS = 2
SMS_LOG_GROUP = f"sns/{REGION}/{ACCOUNT}/DirectPublishToPhoneNumber"
MAX_RECEIVE_COUNT = 5  # SmsQueue's redrive policy in template.yaml
ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first attempt and two retries
FUNCTIONS = (
    "PlannerFunction",
    "SenderFunction",
    "InboundFunction",
    "ReceiptsFunction",
    "ReconcileFunction",
    "IndexerFunction",
)


class SimulatedCrash(BaseException):
    """The Lambda dies here (timeout, out of memory). A BaseException: no ``except Exception`` in the
    product may swallow it, and every later AWS call of the dead invocation dies too."""


def borrowers() -> list[Borrower]:
    """Three borrowers, two of them sharing one phone; New York and Massachusetts."""

    def person(borrower_id: str, name: str, phone: str, region: str) -> Borrower:
        return Borrower(
            borrower_id=borrower_id,
            first_name=name,
            time_zone="America/New_York",
            phone=phone,
            address=Address(country="US", region=region),
            consent=Consent(sms=True),
        )

    return [
        person("B-ANA", "Ana", SHARED_PHONE, "NY"),
        person("B-BEN", "Ben", SHARED_PHONE, "NY"),
        person("B-CY", "Cy", CY_PHONE, "MA"),
    ]


def loans() -> list[Loan]:
    """Four loans due for different cadence steps on T0's day (two of Ana's compete for her daily cap)."""

    def loan(loan_id: str, borrower_id: str, jurisdiction: str, due: date) -> Loan:
        return Loan(
            loan_id=loan_id,
            borrower_id=borrower_id,
            currency="USD",
            amount_due=Decimal("120.00"),
            due_date=due,
            jurisdiction=jurisdiction,
        )

    return [
        loan("L-ANA-1", "B-ANA", "US-NY", date(2026, 3, 1)),  # D+1: a text
        loan("L-ANA-2", "B-ANA", "US-NY", date(2026, 2, 23)),  # D+7: a text, same borrower
        loan("L-BEN-1", "B-BEN", "US-NY", date(2026, 3, 3)),  # D-1: a text to the shared phone
        loan("L-CY-1", "B-CY", "US-MA", date(2026, 3, 1)),  # D+1 under Massachusetts' caps
    ]


@dataclass(frozen=True)
class Accepted:
    """A message SNS accepted (moto's backend said yes), with what was running when it did."""

    message_id: str
    phone: str
    text: str
    function: str
    job_id: str | None
    at: datetime
    # The oracle's view of the number's consent at that instant (see World.opted_out).
    opted_out: bool


@dataclass(frozen=True)
class Reply:
    """A borrower's text as SNS delivers it to the inbound function."""

    phone: str
    body: str
    received_at: datetime
    inbound_id: str


@dataclass
class Fault:
    """One fault for the next invocation of ``function``: ``kind`` is ``crash`` (the invocation dies
    before its ``at_call``-th AWS call, or after its last one if it makes fewer), ``throttle`` (that call
    is answered with a throttling error, as after botocore's retries), or ``lose`` (the ``at_call``-th
    Publish is accepted by SNS and its response lost: the client sees a read timeout)."""

    function: str
    kind: str
    at_call: int


@dataclass
class _Invocation:
    function: str
    fault: Fault | None
    calls: int = 0
    publishes: int = 0
    dead: bool = False
    fired: bool = False


@dataclass
class World:
    """The stack, the warm functions, the simulated clock and everything observed."""

    session: boto3.Session
    stack: LocalStack
    functions: dict[str, WarmFunction] = field(default_factory=dict)
    now: datetime = T0
    accepted: list[Accepted] = field(default_factory=list)
    replies_done: list[Reply] = field(default_factory=list)  # inbound invocations that returned
    replies_sent: list[Reply] = field(default_factory=list)  # every reply delivered at least once
    pending_async: list[tuple[Reply, int]] = field(default_factory=list)  # (reply, attempts so far)
    async_dlq: list[Reply] = field(default_factory=list)
    jobs_seen: dict[str, str] = field(default_factory=dict)  # job id -> body
    opt_out_transitions: dict[str, int] = field(default_factory=dict)
    crashes: int = 0
    escaped: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    stream_positions: dict[str, int] = field(default_factory=dict)
    reply_seq: int = 0
    receipted: set[str] = field(default_factory=set)  # message ids SNS's delivery-status log reported
    # Observability of the run itself (steps, checks) for the soak report.
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pacer_clock = PacerClock()
        self._last_reading = T0
        self._reading_lock = threading.Lock()
        self.sqs = self.session.client("sqs")
        dynamodb = self.session.resource("dynamodb")
        self.loans_table = dynamodb.Table(self.stack.tables["LoansTable"])
        self.borrowers_table = dynamodb.Table(self.stack.tables["BorrowersTable"])
        self._local = threading.local()
        self._baton: _Baton | None = None
        self._seeded: dict[str, Any] | None = None

    def reading(self) -> datetime:
        """The clock the functions read (and SNS stamps with): the simulated instant, a millisecond later
        at each reading, as time moves on within a step in Lambda: what happens later reads later."""
        with self._reading_lock:
            self._last_reading = max(self.now, self._last_reading + timedelta(milliseconds=1))
            return self._last_reading

    # ---- set-up ------------------------------------------------------------------------------------

    def install(self) -> None:
        """Hook the handlers' default session and moto's SNS, and load every function warm."""
        from moto.sns.models import SNSBackend

        session = boto3.DEFAULT_SESSION
        assert session is not None
        session.events.register("before-call.*.*", self._before_call)
        original = SNSBackend.publish
        world = self

        def publish(backend: Any, message: str, arn: str | None = None, *args: Any, **kwargs: Any) -> Any:
            message_id = original(backend, message, arn, *args, **kwargs)
            phone = kwargs.get("phone_number")
            if phone:
                world._accepted(str(message_id), str(phone), message)
                invocation = world._invocation()
                if invocation is not None and invocation.fault is not None:
                    fault = invocation.fault
                    invocation.publishes += 1
                    if fault.kind == "lose" and not invocation.fired and invocation.publishes > fault.at_call:
                        invocation.fired = True
                        raise ReadTimeoutError(endpoint_url=f"https://sns.{REGION}.amazonaws.com/")
            return message_id

        self._patches = contextlib.ExitStack()
        from unittest import mock

        from dunning.adapters.dynamo import Dynamo

        self._patches.enter_context(mock.patch.object(SNSBackend, "publish", publish))
        # The product's own batch backoff costs no wall time here (simulated time).
        self._patches.enter_context(mock.patch.object(Dynamo, "_backoff", lambda self, attempt: None))
        # The sender's pacer asks for send tokens by the wall clock's second, so how many token requests
        # a send makes (and so which AWS call a "crash before call k" fault hits) would depend on when
        # a second happens to end: schedules would not replay. Here it runs on simulated time.
        self._patches.enter_context(simulated_pacing(self.pacer_clock))
        self._trace_jobs()
        overrides = {
            "SHARD_COUNT": str(SHARDS),
            "SMS_ORIGINATION_IDENTITY": OUR_NUMBER,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "LOG_LEVEL": "CRITICAL",
        }
        self.functions = {
            name: warm_function(self.stack, name, env_overrides=overrides) for name in FUNCTIONS
        }

    def close(self) -> None:
        self._patches.close()

    def _trace_jobs(self) -> None:
        """Know which job the sender is handling when SNS accepts a message (the sender is in-process)."""
        from unittest import mock

        from dunning import sender

        handle = sender._Batch.handle
        world = self

        def traced(batch: Any, record: Any) -> None:
            try:
                body = json.loads(record.body)
                world._local.job = f"{body['loan_id']}#{body['step']}"
            except (ValueError, KeyError, TypeError):
                world._local.job = None
            try:
                handle(batch, record)
            finally:
                world._local.job = None

        self._patches.enter_context(mock.patch.object(sender._Batch, "handle", traced))

    def reset(self) -> None:
        """Empty every table, queue and SNS log, then seed the book and index it (a fresh schedule)."""
        self.pacer_clock.restart()
        from moto.dynamodb.models import dynamodb_backends
        from moto.sns.models import sns_backends
        from moto.sqs.models import sqs_backends

        ddb = dynamodb_backends[ACCOUNT][REGION]
        for queue in sqs_backends[ACCOUNT][REGION].queues.values():
            with queue._messages_lock:
                queue._messages.clear()
        sns_backends[ACCOUNT][REGION].sms_messages.clear()
        self.now = T0
        self._last_reading = T0
        self.accepted, self.replies_done, self.replies_sent = [], [], []
        self.pending_async, self.async_dlq, self.faults, self.escaped = [], [], [], []
        self.jobs_seen, self.opt_out_transitions = {}, {}
        self.crashes, self.reply_seq = 0, 0
        self.receipted = set()
        self.log = []
        if self._seeded is None:
            for name in self.stack.tables.values():
                ddb.get_table(name).items.clear()
            for borrower in borrowers():
                self.borrowers_table.put_item(Item=borrower_to_item(borrower))
            for loan in loans():
                self.loans_table.put_item(Item=loan_to_item(loan))
            self._skip_streams()
            # A lender's first load is a bulk import (no stream records): the reconcile sweep indexes it.
            self.call("ReconcileFunction", {"scheduled_time": events.iso_z(self.now)})
            # Every later schedule starts from this seeded, indexed state (a copy of moto's tables).
            self._seeded = {
                name: copy.deepcopy(ddb.get_table(name).items) for name in self.stack.tables.values()
            }
        else:
            for name, items in self._seeded.items():
                ddb.get_table(name).items = copy.deepcopy(items)
            self._skip_streams()

    # ---- AWS calls of the handlers -----------------------------------------------------------------

    def _invocation(self) -> _Invocation | None:
        return getattr(self._local, "invocation", None)

    def _before_call(self, model: Any, **_: Any) -> Any:
        baton = self._baton
        if baton is not None:
            baton.before_call()
        invocation = self._invocation()
        if invocation is None:
            return None
        if invocation.dead:
            raise SimulatedCrash("the process is gone")
        if invocation.function == "SenderFunction" and model.name != "Publish":
            # What the registry held as the sender's last call before a Publish (its claim) went out: an
            # opt-out recorded after that cannot stop that message, one recorded before it must.
            self._local.registry = {phone: self.consent_opted_out(phone) for phone in PHONES}
        index = invocation.calls
        invocation.calls += 1
        fault = invocation.fault
        if fault is None or invocation.fired or index != fault.at_call:
            return None
        if fault.kind == "crash":
            invocation.fired = invocation.dead = True
            raise SimulatedCrash(f"{invocation.function} before call {index} ({model.name})")
        if fault.kind == "throttle":
            invocation.fired = True
            service = model.service_model.service_name
            code = {"dynamodb": "ThrottlingException", "sns": "Throttling"}.get(
                service, "ThrottlingException"
            )
            response = AWSResponse(f"https://{service}.{REGION}.amazonaws.com/", 400, HTTPHeaders(), None)
            parsed = {
                "Error": {"Code": code, "Message": "Rate exceeded"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            return response, parsed
        return None

    def _accepted(self, message_id: str, phone: str, text: str) -> None:
        invocation = self._invocation()
        self.accepted.append(
            Accepted(
                message_id=message_id,
                phone=phone,
                text=text,
                function=invocation.function if invocation else "(test)",
                job_id=getattr(self._local, "job", None),
                at=self.reading(),
                opted_out=self.opted_out(phone, getattr(self._local, "registry", {}).get(phone)),
            )
        )

    # ---- the oracle's consent ------------------------------------------------------------------------

    def opted_out(self, phone: str, registry: bool | None = None) -> bool:
        """Whether ``phone`` is opted out by the replies received so far, ordered by their own received
        time: the latest STOP or START wins, whatever order they were delivered in, and a redelivery
        changes nothing. A reply counts as received once an inbound invocation of it has returned, or
        from the moment the registry shows what it asked for while it is still being handled (an
        invocation that died after writing it, or one interleaved with a send). ``registry`` is the
        registry's state to judge by (by default, now)."""
        from dunning.inbound import Intent, classify

        if registry is None:
            registry = self.consent_opted_out(phone)
        received = [r for r in self.replies_done if r.phone == phone]
        received += [
            r
            for r in self.replies_sent
            if r.phone == phone
            and r not in self.replies_done
            and classify(r.body) in (Intent.STOP, Intent.START)
            and (classify(r.body) == Intent.STOP) == registry
        ]
        consent = [r for r in received if classify(r.body) in (Intent.STOP, Intent.START)]
        if not consent:
            return False
        # At the same received instant a STOP wins over a START (the safe reading).
        latest = max(consent, key=lambda r: (r.received_at, classify(r.body) == Intent.STOP))
        return classify(latest.body) == Intent.STOP

    def consent_opted_out(self, phone: str) -> bool:
        """The registry's own record (moto's table, read directly): used to count effective opt-outs."""
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends[ACCOUNT][REGION].get_table(self.stack.tables["StateTable"])
        for item in table.all_items():
            attrs = item.to_json()["Attributes"]
            if attrs.get("pk", {}).get("S") == f"PHONE#{phone}" and attrs.get("sk", {}).get("S") == "CONSENT":
                return bool(attrs.get("sms_opted_out", {}).get("BOOL", False))
        return False

    @contextlib.contextmanager
    def watching_consent(self) -> Iterator[None]:
        """Count every change of a number's registry entry to opted-out made inside the block."""
        before = {phone: self.consent_opted_out(phone) for phone in PHONES}
        try:
            yield
        finally:
            for phone in PHONES:
                if not before[phone] and self.consent_opted_out(phone):
                    self.opt_out_transitions[phone] = self.opt_out_transitions.get(phone, 0) + 1

    # ---- invoking ----------------------------------------------------------------------------------

    def arm(self, fault: Fault) -> None:
        self.faults.append(fault)

    def _take_fault(self, function: str) -> Fault | None:
        for n, fault in enumerate(self.faults):
            if fault.function == function:
                return self.faults.pop(n)
        return None

    def call(
        self, function: str, event: Any, *, faults: bool = True, asynchronous: bool = False
    ) -> tuple[bool, Any]:
        """Invoke ``function`` at the current time; (False, None) if it crashed or raised.

        An asynchronous invocation (schedules, inbound, receipts) reports an infrastructure failure by
        raising (Lambda retries it); a batch handler (SQS, streams) must never raise: that is recorded."""
        fault = self._take_fault(function) if faults else None
        invocation = _Invocation(function, fault)
        self._local.invocation = invocation
        self._local.registry = {}
        try:
            with contextlib.redirect_stdout(_NULL):
                result = self.functions[function](event, now=self.reading)
        except SimulatedCrash:
            self.crashes += 1
            return False, None
        except Exception as exc:
            if not asynchronous:  # a batch handler must never raise: counted against the run
                self.escaped.append(f"{function}: {exc.__class__.__name__}: {exc}")
            return False, None
        finally:
            self._local.invocation = None
        if fault is not None and fault.kind == "crash" and not invocation.fired:
            # It dies after its last AWS call, before answering: the work is done, the answer is lost.
            self.crashes += 1
            return False, None
        return True, result

    # ---- the event sources ---------------------------------------------------------------------------

    def tick(self) -> None:
        """The Scheduler's 15-minute tick at ``now``, then every shard task on PlanQueue."""
        event = events.scheduler_input(self.now)
        if not self.call("PlannerFunction", event, asynchronous=True)[0]:
            self.call("PlannerFunction", event, asynchronous=True)  # Lambda's retry
        self.deliver("PlanQueue", "PlannerFunction", batch_size=1, rounds=40)

    def deliver(self, queue: str, function: str, *, batch_size: int = 10, rounds: int = 1) -> int:
        """Receive up to ``batch_size`` visible messages and hand them to ``function`` as SQS does; a failed
        record is visible again at once (its receive count grows; after five, the DLQ). Repeated
        ``rounds`` times or until the queue is empty; returns the invocations made."""
        url = self.stack.queues[queue]
        arn = str(self.stack.get_att(queue, "Arn"))
        made = 0
        for _ in range(rounds):
            got: list[Any] = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=batch_size, AttributeNames=["All"], VisibilityTimeout=900
            ).get("Messages", [])
            if not got:
                break
            if function == "SenderFunction":
                for message in got:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        body = json.loads(message["Body"])
                        self.jobs_seen[f"{body['loan_id']}#{body['step']}"] = message["Body"]
            ok, result = self.call(function, events.sqs_event(got, arn))
            made += 1
            failed = {m["MessageId"] for m in got} if not ok else set(batch_item_failures(result))
            for message in got:
                if message["MessageId"] in failed:
                    self.sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return made

    def duplicate_job(self, job_id: str, queue: str = "SmsQueue") -> None:
        """The same job published again (SNS delivers to SQS at least once)."""
        self.sqs.send_message(QueueUrl=self.stack.queues[queue], MessageBody=self.jobs_seen[job_id])

    def new_reply(self, phone: str, body: str, received_at: datetime) -> Reply:
        self.reply_seq += 1
        return Reply(phone, body, received_at, f"in-{self.reply_seq:04d}")

    def reply_event(self, reply: Reply) -> dict[str, Any]:
        message = events.inbound_sms(reply.phone, OUR_NUMBER, reply.body, inbound_id=reply.inbound_id)
        return events.sns_event(str(self.stack.topics["InboundTopic"]), message, reply.received_at)

    def deliver_reply(self, reply: Reply, *, attempts: int = 0, faults: bool = True) -> None:
        """An asynchronous invocation of inbound; a failed one is retried by Lambda later (twice)."""
        if reply not in self.replies_sent:
            self.replies_sent.append(reply)
        with self.watching_consent():
            ok, _ = self.call("InboundFunction", self.reply_event(reply), faults=faults, asynchronous=True)
        if ok:
            self.replies_done.append(reply)
        elif attempts + 1 < ASYNC_ATTEMPTS:
            self.pending_async.append((reply, attempts + 1))
        else:
            self.async_dlq.append(reply)

    def retry_async(self, *, faults: bool = True) -> None:
        if self.pending_async:
            reply, attempts = self.pending_async.pop(0)
            self.deliver_reply(reply, attempts=attempts, faults=faults)

    def receipt(self, message: Accepted, *, success: bool, at: datetime) -> None:
        record = events.sms_delivery_record(
            message.message_id, message.phone, at, success=success, price=0.00581
        )
        group = SMS_LOG_GROUP + ("" if success else "/Failure")
        event = events.logs_subscription_event(group, [(at, record)])
        if not self.call("ReceiptsFunction", event, asynchronous=True)[0]:
            self.call("ReceiptsFunction", event, asynchronous=True)  # Lambda's retry

    def delivery_logs(self, *, before: datetime | None = None) -> int:
        """SNS's own delivery-status log for every accepted message not reported yet (published before
        ``before``, default all): SUCCESS, stamped with the publish time as SNS stamps it, in one Logs
        subscription event. The stack logs 100 % of SMS deliveries and the logs arrive within minutes,
        so a clock step of a tick brings them. Returns the receipts delivered."""
        due = [m for m in self.accepted if m.message_id not in self.receipted]
        due = [m for m in due if before is None or m.at < before]
        if not due:
            return 0
        records = [
            (m.at, events.sms_delivery_record(m.message_id, m.phone, m.at, success=True, price=0.00581))
            for m in due
        ]
        event = events.logs_subscription_event(SMS_LOG_GROUP, records)
        if not self.call("ReceiptsFunction", event, faults=False, asynchronous=True)[0]:
            self.call("ReceiptsFunction", event, faults=False, asynchronous=True)  # Lambda's retry
        self.receipted.update(m.message_id for m in due)
        return len(due)

    def reconcile(self, *, faults: bool = True) -> None:
        event = {"scheduled_time": events.iso_z(self.now)}
        if not self.call("ReconcileFunction", event, faults=faults, asynchronous=True)[0]:
            self.call("ReconcileFunction", event, asynchronous=True)  # Lambda's retry

    def pay(self, loan_id: str) -> None:
        self.loans_table.update_item(
            Key={"loan_id": loan_id},
            UpdateExpression="SET #s = :paid",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":paid": "PAID"},
        )
        self.pump_streams()

    def _stream_tables(self) -> dict[str, Any]:
        from moto.dynamodb.models import dynamodb_backends

        backend = dynamodb_backends[ACCOUNT][REGION]
        return {name: backend.get_table(self.stack.tables[name]) for name in ("LoansTable", "BorrowersTable")}

    def _skip_streams(self) -> None:
        for name, table in self._stream_tables().items():
            self.stream_positions[name] = len(table.stream_shard.items) if table.stream_shard else 0

    def pump_streams(self) -> None:
        """New Loans/Borrowers stream records to the indexer, as its event source mapping would."""
        for name, table in self._stream_tables().items():
            shard = table.stream_shard
            if shard is None:
                continue
            records = [r.to_json() for r in shard.items[self.stream_positions.get(name, 0) :]]
            self.stream_positions[name] = len(shard.items)
            if not records:
                continue
            for record in records:
                record["dynamodb"]["ApproximateCreationDateTime"] = self.now.timestamp()
            arn = table.describe()["TableDescription"]["LatestStreamArn"]
            for _ in range(3):  # a failed stream batch is retried by the event source mapping
                ok, result = self.call("IndexerFunction", events.dynamodb_stream_event(records, arn))
                if ok and not batch_item_failures(result):
                    break

    def queued(self, queue: str) -> list[dict[str, Any]]:
        """Every message of a queue, visible or not (read from moto, changing nothing)."""
        from moto.sqs.models import sqs_backends

        name = self.stack.queues[queue].rsplit("/", 1)[1]
        found = sqs_backends[ACCOUNT][REGION].queues[name]
        return [{"Body": m.body} for m in found._messages]

    # ---- a reply and a send, interleaved call by call ------------------------------------------------

    def race(self, reply: Reply, sender_calls: int, inbound_calls: int) -> None:
        """The sender takes one batch from SmsQueue and runs its first ``sender_calls`` AWS calls; then the
        inbound function handles ``reply`` for ``inbound_calls`` calls; then the sender runs to its end,
        then the reply. One thread runs at a time (a baton passed at each AWS call), each with its own
        function's environment, both at the same instant."""
        url = self.stack.queues["SmsQueue"]
        arn = str(self.stack.get_att("SmsQueue", "Arn"))
        got: list[Any] = self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=900
        ).get("Messages", [])
        if not got:
            self.deliver_reply(reply)
            return
        for message in got:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                body = json.loads(message["Body"])
                self.jobs_seen[f"{body['loan_id']}#{body['step']}"] = message["Body"]
        if reply not in self.replies_sent:
            self.replies_sent.append(reply)
        baton = _Baton(["sender", "inbound"], {"sender": sender_calls, "inbound": inbound_calls})
        outcome: dict[str, tuple[bool, Any]] = {}

        def run(name: str, function: str, event: Any) -> None:
            warm = self.functions[function]
            invocation = _Invocation(function, None)
            self._local.invocation = invocation
            self._local.registry = {}
            baton.start(name, lambda: os.environ.update(warm.environment))
            try:
                context = LambdaContext(
                    warm.function_name, warm.memory_mb, warm.function_arn, warm.timeout_seconds
                )
                outcome[name] = (True, warm.handler(event, context))
            except Exception as exc:
                if function == "SenderFunction":
                    self.escaped.append(f"{function}: {exc.__class__.__name__}: {exc}")
                outcome[name] = (False, None)
            finally:
                self._local.invocation = None
                baton.finish(name)

        saved = dict(os.environ)
        self._baton = baton
        threads = [
            threading.Thread(target=run, args=("sender", "SenderFunction", events.sqs_event(got, arn))),
            threading.Thread(target=run, args=("inbound", "InboundFunction", self.reply_event(reply))),
        ]
        try:
            # stdout is process-wide: silenced here for both threads, not in each (they would race).
            with self.watching_consent(), clock.use(self.reading), contextlib.redirect_stdout(_NULL):
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(120)
        finally:
            self._baton = None
            os.environ.clear()
            os.environ.update(saved)
        ok, result = outcome.get("sender", (False, None))
        failed = {m["MessageId"] for m in got} if not ok else set(batch_item_failures(result))
        for message in got:
            if message["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if outcome.get("inbound", (False, None))[0]:
            self.replies_done.append(reply)
        else:
            self.pending_async.append((reply, 1))


class _Baton:
    """Cooperative scheduling of handler threads: only the holder runs; at each AWS call the holder checks
    its quota of calls for the current turn and hands over when it is used up."""

    def __init__(self, order: list[str], quota: dict[str, int]) -> None:
        self.order = order  # turns: the first runs its quota, then the next ..., then each to its end
        self.quota = dict(quota)
        self.turn = 0
        self.finished: set[str] = set()
        self.condition = threading.Condition()
        self.names: dict[int, str] = {}
        self.entered: dict[str, Callable[[], None]] = {}
        self.used: dict[str, int] = {name: 0 for name in order}

    def _holder(self) -> str:
        # Turns 0..n-1 are the quota turns; after them, whoever is first in order and not finished.
        if self.turn < len(self.order):
            return self.order[self.turn]
        return next((n for n in self.order if n not in self.finished), "")

    def _advance(self) -> None:
        while self.turn < len(self.order) and (
            self.order[self.turn] in self.finished
            or self.used[self.order[self.turn]] >= self.quota[self.order[self.turn]]
        ):
            self.turn += 1

    def _wait_for(self, name: str) -> None:
        while self._holder() != name:
            if not self.condition.wait(timeout=60):
                raise RuntimeError("interleaving stuck")
        self.entered[name]()

    def start(self, name: str, enter: Callable[[], None]) -> None:
        self.names[threading.get_ident()] = name
        self.entered[name] = enter
        with self.condition:
            self._wait_for(name)

    def before_call(self) -> None:
        name = self.names.get(threading.get_ident())
        if name is None:
            return
        with self.condition:
            self.used[name] += 1
            if (
                self.turn < len(self.order)
                and self.order[self.turn] == name
                and self.used[name] > self.quota[name]
            ):
                self.turn += 1
                self._advance()
                self.condition.notify_all()
            self._wait_for(name)

    def finish(self, name: str) -> None:
        with self.condition:
            self.finished.add(name)
            self._advance()
            self.condition.notify_all()


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


_NULL: Any = _Null()


def later(at: datetime, minutes: int) -> datetime:
    return at + timedelta(minutes=minutes)
