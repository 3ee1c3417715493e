"""Shared drivers of the real handlers on moto: the pipeline harness and a small multi-jurisdiction book.

:class:`Harness` drives the handlers as the AWS event sources would (stream records to the indexer, a
Scheduler tick and PlanQueue tasks to the planner, SQS batches to the sender, Logs subscription events to
receipts) and records every AWS request they make. :func:`book` is a handful of loans in several
jurisdictions, each due for a different step at :data:`TICK`. Used by test_pipeline.py and the fault
matrix (test_faults.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto.sns.models import sns_backends

from dunning import clock
from dunning.items import borrower_to_item, loan_to_item
from dunning.models import Address, Borrower, Consent, Loan, LoanStatus, PushEndpoint
from dunning_local import lambda_events as events
from dunning_local.cfn import load_template
from dunning_local.invoke import batch_item_failures, invoke
from dunning_local.stack import LocalStack

ACCOUNT, REGION = "123456789012", "us-east-1"
TICK = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # a Monday: 09:00 in New York, 22:00 in Shanghai
# When the book is indexed: inside the window (08:30 in New York), so the indexer's first look puts every
# loan whose window is open due at once, as a 15-minute tick schedule would find it at TICK.
INDEXED_AT = TICK - timedelta(minutes=30)
OUR_NUMBER = "+12125550101"
NY_PHONE = "+12125550142"
MA_PHONE = "+16175550123"
CN_PHONE = "+8613123456789"
GB_PHONE = "+447700900123"


# Batch operations are authorised by their single-item action.
IAM_ACTION = {
    "PublishBatch": "Publish",
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
}

# TransactWriteItems is authorised per item by these actions.
TRANSACT_ACTION = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def resources_of(service: str, params: Mapping[str, Any]) -> list[str]:
    """The resource ARNs an API call acts on, as IAM evaluates them."""
    here = f"{REGION}:{ACCOUNT}"
    if service == "dynamodb":
        # A transaction names its tables item by item.
        in_transaction = [next(iter(i.values()))["TableName"] for i in params.get("TransactItems", [])]
        tables = list(params.get("RequestItems", {})) or in_transaction or [params["TableName"]]
        index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""
        return [f"arn:aws:dynamodb:{here}:table/{t}{index}" for t in tables]
    if service == "sns":
        if params.get("PhoneNumber"):
            return ["*"]  # a phone number has no ARN: only a "*" grant allows it
        return [str(params.get("TopicArn") or params.get("TargetArn"))]
    if service == "sqs":
        return [f"arn:aws:sqs:{here}:{str(params['QueueUrl']).rsplit('/', 1)[1]}"]
    return [f"{service}:*"]


class Harness:
    """Drives the handlers like the AWS event sources would, and records what they asked AWS to do."""

    def __init__(self, stack: LocalStack, session: boto3.Session) -> None:
        self.stack = stack
        dynamodb = session.resource("dynamodb")
        self.loans = dynamodb.Table(stack.tables["LoansTable"])
        self.borrowers = dynamodb.Table(stack.tables["BorrowersTable"])
        self.state = dynamodb.Table(stack.tables["StateTable"])
        self.ledger = dynamodb.Table(stack.tables["LedgerTable"])
        self.sqs = session.client("sqs")
        self.sns = session.client("sns")
        # botocore now addresses DynamoDB Streams per account (<account>.streams-ddb...), which moto does
        # not route; the classic endpoint reaches moto's streams backend.
        self.streams = session.client(
            "dynamodbstreams", endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
        )
        self._stream_positions: dict[str, str] = {}
        self.function = ""
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.published: list[dict[str, Any]] = []
        # (function, IAM action, resource ARN) of every call: what each function's role must allow.
        self.grants_used: set[tuple[str, str, str]] = set()
        # Environment overrides for every invocation (LOG_LEVEL=DEBUG, say).
        self.env: dict[str, str] = {}
        self._lock = threading.Lock()

    # ---- the handlers' own AWS requests ------------------------------------------------------------

    def record_requests(self, session: boto3.Session) -> None:
        """Count every request of clients made from ``session`` (the handlers' default session)."""

        def count(model: Any, **_: Any) -> None:
            with self._lock:
                self.requests[(self.function, model.service_model.service_name, model.name)] += 1

        def capture(params: dict[str, Any], **_: Any) -> None:
            with self._lock:
                self.published.append(json.loads(json.dumps(params, default=str)))

        def grants(params: dict[str, Any], model: Any, **_: Any) -> None:
            service = model.service_model.service_name
            action = f"{service}:{IAM_ACTION.get(model.name, model.name)}"
            with self._lock:
                if model.name == "TransactWriteItems":
                    # Authorised item by item, by the action each item performs.
                    for item in params.get("TransactItems", []):
                        ((kind, request),) = item.items()
                        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{request['TableName']}"
                        self.grants_used.add((self.function, f"dynamodb:{TRANSACT_ACTION[kind]}", arn))
                    return
                for arn in resources_of(service, params):
                    self.grants_used.add((self.function, action, arn))

        session.events.register("before-call.*.*", count)
        session.events.register("provide-client-params.sns.Publish", capture)
        session.events.register("provide-client-params.*.*", grants)

    def requests_of(self, function: str | None = None) -> Counter[str]:
        out: Counter[str] = Counter()
        for (fn, service, operation), n in self.requests.items():
            if function is None or fn == function:
                out[f"{service}.{operation}"] += n
        return out

    def invoke(self, function: str, event: Mapping[str, Any], at: datetime) -> Any:
        self.function = function
        return invoke(function, event, self.stack, now=at, env_overrides=self.env)

    # ---- the lender writes -------------------------------------------------------------------------

    def seed(self, loans: list[Loan], borrowers: list[Borrower]) -> None:
        for borrower in borrowers:
            self.borrowers.put_item(Item=borrower_to_item(borrower))
        for loan in loans:
            self.loans.put_item(Item=loan_to_item(loan))

    def stream_records(self, logical_id: str) -> list[dict[str, Any]]:
        arn = self.loans.latest_stream_arn if logical_id == "LoansTable" else self.borrowers.latest_stream_arn
        records: list[dict[str, Any]] = []
        shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        for shard in shards:
            key = f"{arn}/{shard['ShardId']}"
            iterator = (
                self._stream_positions.get(key)
                or self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            response = self.streams.get_records(ShardIterator=iterator)
            records.extend(response["Records"])
            self._stream_positions[key] = response["NextShardIterator"]
        return records

    def index(self, at: datetime) -> None:
        """Feed the new stream records of both tables to the indexer, as written at ``at``."""
        for logical_id in ("LoansTable", "BorrowersTable"):
            records = self.stream_records(logical_id)
            if not records:
                continue
            for record in records:
                # Records carry the wall-clock time moto wrote them; the scenario runs in its own time.
                record["dynamodb"]["ApproximateCreationDateTime"] = at.timestamp()
            arn = (
                self.loans.latest_stream_arn
                if logical_id == "LoansTable"
                else self.borrowers.latest_stream_arn
            )
            result = self.invoke("IndexerFunction", events.dynamodb_stream_event(records, arn), at)
            assert batch_item_failures(result) == []

    # ---- queues --------------------------------------------------------------------------------------

    def drain(self, logical_id: str) -> list[dict[str, Any]]:
        url = self.stack.queues[logical_id]
        messages: list[dict[str, Any]] = []
        while True:
            got: list[Any] = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                return messages
            messages.extend(got)
            for message in got:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def tick(self, at: datetime, *, execution_id: str | None = None) -> None:
        self.invoke("PlannerFunction", events.scheduler_input(at, execution_id), at + timedelta(seconds=5))

    def plan(self, at: datetime) -> int:
        """Run every shard task (and continuation) on PlanQueue; returns how many tasks ran."""
        ran = 0
        while tasks := self.drain("PlanQueue"):
            for task in tasks:
                event = events.sqs_event([task], self.stack.get_att("PlanQueue", "Arn"))
                assert batch_item_failures(self.invoke("PlannerFunction", event, at)) == []
                ran += 1
        return ran

    def jobs(self) -> dict[str, list[dict[str, Any]]]:
        return {"SmsQueue": self.drain("SmsQueue"), "PushQueue": self.drain("PushQueue")}

    def send(self, jobs: dict[str, list[dict[str, Any]]], at: datetime) -> list[str]:
        """The sender on each queue's messages, ten at a time; returns the batch item failures."""
        failures: list[str] = []
        for queue, messages in jobs.items():
            for start in range(0, len(messages), 10):
                event = events.sqs_event(messages[start : start + 10], self.stack.get_att(queue, "Arn"))
                failures += batch_item_failures(self.invoke("SenderFunction", event, at))
        return failures

    def run_tick(self, at: datetime, send_at: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        self.tick(at)
        self.plan(at + timedelta(seconds=10))
        jobs = self.jobs()
        assert self.send(jobs, send_at or at + timedelta(minutes=1)) == []
        return jobs

    # ---- what came out -------------------------------------------------------------------------------

    @staticmethod
    def sms() -> list[tuple[str, str]]:
        return list(sns_backends[ACCOUNT][REGION].sms_messages.values())

    def sms_to(self, phone: str) -> list[str]:
        return [text for number, text in self.sms() if number == phone]

    @staticmethod
    def pushes(endpoint_arn: str) -> list[dict[str, Any]]:
        endpoint = sns_backends[ACCOUNT][REGION].platform_endpoints[endpoint_arn]
        return [json.loads(m) for m in endpoint.messages.values()]

    def sms_attributes(self, phone: str) -> list[dict[str, Any]]:
        return [p.get("MessageAttributes", {}) for p in self.published if p.get("PhoneNumber") == phone]

    def ledger_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self.ledger.scan(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def messages(self) -> dict[str, dict[str, Any]]:
        """MESSAGE items by loan id."""
        return {str(i["loan_id"]): i for i in self.ledger_items() if i["sk"] == "MESSAGE"}

    def outcomes(self) -> list[dict[str, Any]]:
        return [i for i in self.ledger_items() if i["sk"] == "OUTCOME"]

    def decisions(self, loan_id: str) -> list[dict[str, Any]]:
        return [i for i in self.ledger_items() if i["pk"] == f"LOAN#{loan_id}"]

    def cadence(self, loan_id: str) -> dict[str, Any]:
        return self.state.get_item(Key={"pk": f"LOAN#{loan_id}", "sk": "CADENCE"}).get("Item", {})


def start_harness(stack: LocalStack, session: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """A harness whose handlers get a fresh default boto3 session, so their requests can be counted."""
    harness = Harness(stack, session)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session(region_name=REGION)
    assert boto3.DEFAULT_SESSION is not None
    harness.record_requests(boto3.DEFAULT_SESSION)
    return harness


# The template's default FCM application: the sender's role may publish to its endpoints and no others.
FCM_APP_NAME = str(load_template()["Parameters"]["FcmAppName"]["Default"])


def gcm_endpoint(session: boto3.Session, token: str) -> str:
    sns = session.client("sns")
    app = sns.create_platform_application(
        Name=FCM_APP_NAME, Platform="GCM", Attributes={"PlatformCredential": "x"}
    )
    return sns.create_platform_endpoint(PlatformApplicationArn=app["PlatformApplicationArn"], Token=token)[
        "EndpointArn"
    ]


def loan(loan_id: str, borrower_id: str, jurisdiction: str, due: date, **kw: Any) -> Loan:
    return Loan(
        loan_id=loan_id,
        borrower_id=borrower_id,
        currency=kw.pop("currency", "USD"),
        amount_due=kw.pop("amount_due", Decimal("250.00")),
        due_date=due,
        jurisdiction=jurisdiction,
        **kw,
    )


def book(session: boto3.Session) -> tuple[list[Loan], list[Borrower], dict[str, str]]:
    """Loans in several jurisdictions, due for different steps at TICK."""
    endpoints = {"GB": gcm_endpoint(session, "token-gb-0001"), "ON": gcm_endpoint(session, "token-on-0002")}
    borrowers = [
        Borrower(
            borrower_id="B-NY",
            first_name="Ada",
            time_zone="America/New_York",
            phone=NY_PHONE,
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True),
        ),
        Borrower(
            borrower_id="B-MA",
            first_name="Grace",
            time_zone="America/New_York",
            phone=MA_PHONE,
            address=Address(country="US", region="MA"),
            consent=Consent(sms=True),
        ),
        Borrower(
            borrower_id="B-CN",
            first_name="Lin",
            locale="zh-CN",
            time_zone="Asia/Shanghai",
            phone=CN_PHONE,
            address=Address(country="CN"),
            consent=Consent(sms=True, push=False),
        ),
        Borrower(
            borrower_id="B-GB",
            first_name="Alan",
            locale="en-GB",
            time_zone="Europe/London",
            address=Address(country="GB"),
            consent=Consent(push=True),
            push_endpoints=(PushEndpoint(arn=endpoints["GB"], platform="GCM"),),
        ),
        Borrower(
            borrower_id="B-ON",
            first_name="Mary",
            locale="en-CA",
            time_zone="America/Toronto",
            address=Address(country="CA", region="ON"),
            consent=Consent(push=True),
            push_endpoints=(PushEndpoint(arn=endpoints["ON"], platform="GCM"),),
        ),
        Borrower(
            borrower_id="B-PAID",
            first_name="Paid",
            time_zone="America/New_York",
            phone="+12125550143",
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True),
        ),
    ]
    loans = [
        loan("L-NY", "B-NY", "US-NY", date(2026, 2, 23)),  # D+7: a text
        loan("L-MA", "B-MA", "US-MA", date(2026, 3, 1)),  # D+1: a text
        loan("L-CN", "B-CN", "CN", date(2026, 3, 1), currency="CNY"),  # 22:00 in Shanghai: deferred
        loan("L-GB", "B-GB", "GB", date(2026, 2, 27), currency="GBP"),  # D+3: a push
        loan("L-ON", "B-ON", "CA-ON", date(2026, 2, 27), currency="CAD"),  # D+3: a push
        loan("L-PAID", "B-PAID", "US-NY", date(2026, 2, 23), status=LoanStatus.PAID),
    ]
    return loans, borrowers, endpoints


def inbound_event(pipeline: Harness, body: str, at: datetime, inbound_id: str) -> dict[str, Any]:
    message = events.inbound_sms(NY_PHONE, OUR_NUMBER, body, inbound_id=inbound_id)
    return events.sns_event(str(pipeline.stack.topics["InboundTopic"]), message, at)


def run_concurrently(
    calls: list[Callable[[], Any]],
    *,
    at: datetime,
    environment: Mapping[str, str],
    hold_at: str | None = None,
) -> list[BaseException]:
    """Run handler calls in threads at once (two Lambdas on the same work); returns what they raised.

    ``hold_at`` (a botocore event name, e.g. ``before-call.dynamodb.BatchWriteItem``) makes every thread
    wait there (the first time) until all of them have arrived: each has read before any writes, the worst
    interleaving.

    The handlers set the environment and the clock process-wide and put back what they found when they
    return: ``environment`` (the function's, ``warm_function(...).environment``) is installed for the
    whole run, so a thread that finishes first cannot take a variable away from one still running. The
    process's own environment is put back afterwards.
    """
    barrier = threading.Barrier(len(calls), timeout=30)
    held: set[str] = set()

    def hold(**_: Any) -> None:
        # Once per thread: a thread that retries its write (unprocessed items) must not wait again.
        name = threading.current_thread().name
        if name.startswith("concurrent-") and name not in held:
            held.add(name)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()

    session = boto3.DEFAULT_SESSION
    if hold_at is not None:
        assert session is not None
        session.events.register(hold_at, hold)
    errors: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            call()
        except BaseException as exc:  # surfaced to the caller
            errors.append(exc)

    saved_environment = dict(os.environ)
    threads = [
        threading.Thread(target=run, args=(call,), name=f"concurrent-{n}") for n, call in enumerate(calls)
    ]
    os.environ.update(environment)
    try:
        with clock.use(lambda: at):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
        if hold_at is not None and session is not None:
            session.events.unregister(hold_at, hold)
    return errors
