"""docs/scaling.md's 10-million-loan tick, scaled down and simulated with and without the send budget.

The real tick: ~4.3 million SMS jobs due at once, one origination identity sending 100 SMS a second,
JOB_TTL 60 minutes, a tick every 15 minutes. Scaled: ``sms_loans`` due SMS loans and the rate scaled by
the same factor (100/s x sms_loans / 4.3 M), so every ratio that decides what expires is the real one.

Both runs use the real handlers on moto: the indexer, the planner (its shard tasks from PlanQueue) and
the sender. The carrier's rate is modelled by the clock: job n of the queue reaches a sender at
``tick + n / rate`` (a sender cannot publish faster than its identity's rate), so a job still queued after
its TTL is EXPIRED by the sender exactly as in AWS. Counted from the ledger:

- without the budget: every due loan is planned in the first tick, most jobs wait past their TTL;
- with it: each tick plans ``rate x min(JOB_TTL, 15 min)`` SENDs, the rest DEFER with
  ``budget.throughput``; nothing expires.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3

from dunning import clock
from dunning.budget import SmsIdentity, load_sending_policy
from dunning.items import borrower_to_item, loan_to_item
from dunning.models import Address, Borrower, Consent, Loan
from dunning.observability import MetricsRecorder
from dunning.planner import Planner, Tick, build_planner
from dunning.settings import PlannerSettings
from dunning_local import lambda_events as ev
from dunning_local.invoke import warm_function
from dunning_local.simulate import LENDER_NUMBER, embedded_aws
from dunning_local.stack import LocalStack, build_local_stack

FULL_SMS_JOBS = 4_300_000  # docs/scaling.md: SMS jobs of a 10-million-loan tick
FULL_RATE = 100.0  # SMS a second, the identity of docs/scaling.md
TICK = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York: inside every window
TICK_EVERY = timedelta(minutes=15)
SHARDS = 16
# New York City numbers only (fictional 555-0100 to 555-0199 lines), so every borrower is inside the window.
NYC_AREA_CODES = ("212", "332", "347", "646", "718", "917", "929")


def index_stream(stack: LocalStack, indexer: Any, logical: str, at: datetime) -> None:
    """Every stream record of a table so far to the (warm) indexer, 100 a batch, as created at ``at``."""
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[stack.account_id][stack.region].get_table(stack.tables[logical])
    assert table.stream_shard is not None
    records = [r.to_json() for r in table.stream_shard.items]
    arn = str(table.describe()["TableDescription"]["LatestStreamArn"])
    for i in range(0, len(records), 100):
        batch = [
            {**r, "dynamodb": {**r["dynamodb"], "ApproximateCreationDateTime": at.timestamp()}}
            for r in records[i : i + 100]
        ]
        with contextlib.redirect_stdout(io.StringIO()):
            indexer(ev.dynamodb_stream_event(batch, arn), now=at)


def _book(count: int) -> tuple[list[Loan], list[Borrower]]:
    borrowers = [
        Borrower(
            borrower_id=f"B-{n:05d}",
            first_name="Ada",
            time_zone="America/New_York",
            phone=f"+1{NYC_AREA_CODES[n // 100 % len(NYC_AREA_CODES)]}555{100 + n % 100:04d}",
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True),
        )
        for n in range(count)
    ]
    loans = [
        Loan(
            loan_id=f"L-{n:05d}",
            borrower_id=f"B-{n:05d}",
            currency="USD",
            amount_due=Decimal("250.00"),
            due_date=date(2026, 3, 5),
            jurisdiction="US-NY",
        )
        for n in range(count)
    ]
    return loans, borrowers


class _Run:
    def __init__(self, session: boto3.Session, stack: LocalStack, rate: float, budgeted: bool) -> None:
        self.session, self.stack = session, stack
        self.sqs = session.client("sqs")
        boto3.setup_default_session(region_name=stack.region)
        overrides = {"SMS_ORIGINATION_IDENTITY": LENDER_NUMBER}
        with contextlib.redirect_stdout(io.StringIO()):
            self.indexer = warm_function(stack, "indexer", env_overrides=overrides)
            self.sender = warm_function(stack, "sender", env_overrides=overrides)
        environment = stack.function_environment("PlannerFunction")
        with contextlib.redirect_stdout(io.StringIO()):
            planner = build_planner(PlannerSettings.from_env(environment))
        policy = load_sending_policy().model_copy(
            update={"sms_identities": (SmsIdentity(id="us-scaled", rate_per_second=rate, countries=("US",)),)}
        )
        self.planner: Planner = dataclasses.replace(planner, sending=policy if budgeted else None)
        self.rate = rate
        self.metrics = MetricsRecorder()

    def seed(self, count: int) -> None:
        loans, borrowers = _book(count)
        resource = self.session.resource("dynamodb")
        for logical, items in (
            ("BorrowersTable", [borrower_to_item(b) for b in borrowers]),
            ("LoansTable", [loan_to_item(loan) for loan in loans]),
        ):
            with resource.Table(self.stack.tables[logical]).batch_writer() as writer:
                for item in items:
                    writer.put_item(Item=item)
        for logical in ("BorrowersTable", "LoansTable"):
            index_stream(self.stack, self.indexer, logical, TICK - timedelta(hours=2))

    def _drain(self, queue: str) -> list[dict[str, Any]]:
        url = self.stack.queues[queue]
        got_all: list[dict[str, Any]] = []
        while got := self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", []):
            got_all += [dict(m) for m in got]
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)],
            )
        return got_all

    def tick(self, at: datetime) -> int:
        """Plan a tick; the jobs reach the senders at the identity's rate. Returns the jobs planned."""
        with contextlib.redirect_stdout(io.StringIO()), clock.use(lambda: at + timedelta(seconds=5)):
            self.planner.fan_out(Tick(scheduled_time=at), self.metrics)
            while tasks := self._drain("PlanQueue"):
                records = [{"messageId": t["MessageId"], "body": t["Body"]} for t in tasks]
                self.planner.process_tasks(records, lambda: 100_000, self.metrics)
        jobs = self._drain("SmsQueue")
        arn = str(self.stack.get_att("SmsQueue", "Arn"))
        for start in range(0, len(jobs), 10):
            batch = jobs[start : start + 10]
            # The batch's last job leaves when the identity's rate lets it: n / rate after the tick.
            reach = at + timedelta(seconds=(start + len(batch)) / self.rate)
            with contextlib.redirect_stdout(io.StringIO()):
                self.sender(ev.sqs_event(batch, arn), now=reach)
        return len(jobs)

    def ledger(self) -> dict[str, Any]:
        client = self.session.client("dynamodb")
        messages: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        deferred: Counter[str] = Counter()
        for page in client.get_paginator("scan").paginate(TableName=self.stack.tables["LedgerTable"]):
            for item in page["Items"]:
                sk = item["sk"]["S"]
                if sk == "MESSAGE":
                    messages[item["status"]["S"]] += 1
                elif sk == "OUTCOME":
                    outcomes[item["status"]["S"]] += 1
                elif "#DECISION#" in sk and item["decision"]["S"] == "DEFER":
                    deferred[item["rule_id"]["S"]] += 1
        return {"messages": dict(messages), "outcomes": dict(outcomes), "deferred": dict(deferred)}


def simulate(sms_loans: int, *, budgeted: bool, ticks: int) -> dict[str, Any]:
    """One scaled tick sequence on a fresh embedded stack."""
    rate = FULL_RATE * sms_loans / FULL_SMS_JOBS
    with embedded_aws() as session:
        stack = build_local_stack(session, parameters={"ShardCount": SHARDS})
        run = _Run(session, stack, rate, budgeted)
        run.seed(sms_loans)
        planned = [run.tick(TICK + k * TICK_EVERY) for k in range(ticks)]
        ledger = run.ledger()
    return {
        "budgeted": budgeted,
        "rate_per_second": round(rate, 5),
        "tick_budget": math.floor(rate * min(run.planner.job_ttl, TICK_EVERY).total_seconds()),
        "job_ttl_minutes": int(run.planner.job_ttl.total_seconds() // 60),
        "planned_per_tick": planned,
        "sent": sum(ledger["messages"].values()),
        "expired": ledger["outcomes"].get("EXPIRED", 0),
        "deferred_budget_throughput": ledger["deferred"].get("budget.throughput", 0),
        "ledger": ledger,
    }


def run(sms_loans: int = 600, ticks: int = 3) -> dict[str, Any]:
    """The scaled 10-million tick without and with the send budget."""
    started = time.monotonic()
    without = simulate(sms_loans, budgeted=False, ticks=1)
    with_budget = simulate(sms_loans, budgeted=True, ticks=ticks)
    return {
        "sms_loans": sms_loans,
        "scale": f"1 : {FULL_SMS_JOBS / sms_loans:,.0f}",
        "without_budget": without,
        "with_budget": with_budget,
        "seconds": round(time.monotonic() - started, 1),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
