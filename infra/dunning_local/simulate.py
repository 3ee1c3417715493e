"""The demo: a realistic collections run through the real handlers on embedded AWS (moto).

One run = build the stack from template.yaml, seed a synthetic book (``portfolio``), then for every
simulated tick: payments land (Loans stream → indexer), borrowers reply (inbound), the Scheduler tick
fans out to the planner's shards, jobs flow SNS → SQS → sender → SNS, and the carrier's delivery-status
logs come back through the Logs subscription → receipts. At the end the run's own records (ledger,
published messages, queues) are checked against the invariants and reported (``report``).

Simulated time is real for the product: every handler sees the tick's instant through ``dunning.clock``
and the Scheduler's ``scheduled_time``. Only AWS's own clocks (moto's timestamps) run on the wall clock.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from dunning_local import lambda_events as ev
from dunning_local import portfolio, report
from dunning_local.carrier import LENDER_NUMBER, Carrier
from dunning_local.embedded import embedded_aws
from dunning_local.invoke import WarmFunction, job_ids, receive_batches, settle_batch, warm_function
from dunning_local.stack import DEFAULT_REGION, LocalStack, build_local_stack
from dunning_local.usage import UsageError, parse_at

__all__ = [
    "LENDER_NUMBER",
    "DemoOptions",
    "DemoResult",
    "Simulation",
    "embedded_aws",
    "run_demo",
]

FUNCTIONS = ("indexer", "planner", "sender", "receipts", "inbound", "reconcile")


@dataclass(frozen=True)
class DemoOptions:
    loans: int = 5000
    hours: int = 72
    seed: int = 7
    fault_rate: float = 0.0
    tick_minutes: int = 15
    shards: int = 2
    start: datetime = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    out: Path = Path("out/demo")
    quiet: bool = False
    # Write the run's tables to ``out`` for ``dunning explain --from`` and ``plan --dry-run --from``.
    keep: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        if args.loans < 1 or args.hours < 1 or args.tick_minutes < 1 or args.shards < 1:
            raise UsageError("--loans, --hours, --tick-minutes and --shards must be positive")
        if not 0 <= args.fault_rate <= 0.5:
            raise UsageError("--fault-rate must be between 0 and 0.5")
        return cls(
            args.loans,
            args.hours,
            args.seed,
            args.fault_rate,
            args.tick_minutes,
            args.shards,
            parse_at(args.start, "--start"),
            Path(args.out),
            args.quiet,
            bool(getattr(args, "keep", False)),
        )


@dataclass
class DemoResult:
    summary: dict[str, Any]
    passed: bool
    html_path: Path
    json_path: Path


@dataclass
class Simulation:
    """The simulated world around one local stack: its borrowers, their phones, the carrier."""

    session: boto3.Session
    stack: LocalStack
    options: DemoOptions
    book: portfolio.Portfolio = field(init=False)
    functions: dict[str, WarmFunction] = field(init=False)
    carrier: Carrier = field(init=False)
    jobs_seen: set[str] = field(default_factory=set)
    stream_positions: dict[str, int] = field(default_factory=dict)
    retry_later: list[tuple[str, str]] = field(default_factory=list)
    invocations: Counter[str] = field(default_factory=Counter)
    endpoint_owner: dict[str, str] = field(default_factory=dict)
    # In-process moto: stream records and the SMS log can be read back (payments, receipts, replies).
    embedded: bool = True

    def __post_init__(self) -> None:
        self.carrier = Carrier(
            self.stack, random.Random(self.options.seed), self.call, lambda: self.book, self.embedded
        )
        self.ddb = self.session.client("dynamodb")
        self.sqs = self.session.client("sqs")
        self.sns = self.session.client("sns")
        overrides = {
            "SHARD_COUNT": str(self.options.shards),
            "SMS_ORIGINATION_IDENTITY": LENDER_NUMBER,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "LOG_LEVEL": "WARNING",
            # The template declares AWS_ENDPOINT_URL (empty = AWS); on moto_server it is the server.
            "AWS_ENDPOINT_URL": os.environ.get("AWS_ENDPOINT_URL", ""),
        }
        # The functions' own output (JSON logs, EMF metrics) goes to a file, as it would go to CloudWatch.
        self.options.out.mkdir(parents=True, exist_ok=True)
        self.function_log = (self.options.out / "functions.log").open("w", encoding="utf-8")
        with redirect_stdout(self.function_log):
            self.functions = {
                name: warm_function(self.stack, name, env_overrides=overrides) for name in FUNCTIONS
            }
        self.tables = self.stack.tables
        self.queues = self.stack.queues
        self.topics = self.stack.topics

    # -- set-up -----------------------------------------------------------------------------------
    def seed(self) -> None:
        """Create the push apps and endpoints, then write borrowers and loans as the lender would."""
        self.book = portfolio.generate(
            self.options.loans, seed=self.options.seed, as_of=self.options.start.date()
        )
        names = {"GCM": str(self.stack.ref("FcmAppName")), "APNS": str(self.stack.ref("ApnsAppName"))}
        self.endpoint_owner.update(portfolio.register_push_endpoints(self.book, self.sns, names))
        resource = self.session.resource("dynamodb")
        for logical, items in (("BorrowersTable", self.book.borrowers), ("LoansTable", self.book.loans)):
            with resource.Table(self.tables[logical]).batch_writer() as batch:
                for item in items:
                    batch.put_item(Item=item)
        # A lender's first load is a bulk import (DynamoDB import from S3 emits no stream records):
        # the reconcile sweep indexes the book, and the streams carry only what changes afterwards.
        self.skip_streams()
        self.call("reconcile", ev.scheduler_input(self.options.start), self.options.start)

    # -- plumbing ---------------------------------------------------------------------------------
    def call(self, name: str, event: Any, at: datetime) -> Any:
        self.invocations[name] += 1
        with redirect_stdout(self.function_log):
            return self.functions[name](event, now=at)

    def _stream_shards(self) -> dict[str, Any]:
        from moto.dynamodb.models import dynamodb_backends

        backend = dynamodb_backends[self.stack.account_id][self.stack.region]
        return {
            logical: backend.get_table(self.tables[logical]) for logical in ("BorrowersTable", "LoansTable")
        }

    def skip_streams(self) -> None:
        if not self.embedded:
            return
        for logical, table in self._stream_shards().items():
            self.stream_positions[logical] = len(table.stream_shard.items) if table.stream_shard else 0

    def pump_streams(self, at: datetime) -> None:
        """Deliver new Loans/Borrowers stream records to the indexer, as the event source mapping would."""
        if not self.embedded:
            return
        for logical, table in self._stream_shards().items():
            shard = table.stream_shard
            if shard is None:
                continue
            start = self.stream_positions.get(logical, 0)
            records = [r.to_json() for r in shard.items[start:]]
            self.stream_positions[logical] = len(shard.items)
            for i in range(0, len(records), 100):
                batch = [
                    {**r, "dynamodb": {**r["dynamodb"], "ApproximateCreationDateTime": at.timestamp()}}
                    for r in records[i : i + 100]
                ]
                arn = str(
                    table.latest_stream_label and table.describe()["TableDescription"]["LatestStreamArn"]
                )
                self.call("indexer", ev.dynamodb_stream_event(batch, arn), at)

    def drain(
        self,
        queue_logical: str,
        function: str,
        at: datetime,
        batch_size: int = 10,
        after_each: Callable[[], None] | None = None,
    ) -> int:
        """Receive everything visible on a queue in batches and invoke ``function``; delete what succeeded.

        ``after_each`` runs after every invocation: the senders consume while the planners produce, as
        their event source mappings would.
        """
        url = self.queues[queue_logical]
        arn = str(self.stack.get_att(queue_logical, "Arn"))
        handled = 0
        for got in receive_batches(self.sqs, url, batch_size):
            if function == "sender":
                self.jobs_seen |= job_ids(got)
            failed = settle_batch(self.sqs, url, got, self.call(function, ev.sqs_event(got, arn), at))
            # Failed records stay invisible until the next tick, as SQS's visibility timeout would do.
            self.retry_later += [(url, m["ReceiptHandle"]) for m in got if m["MessageId"] in failed]
            handled += len(got)
            if after_each is not None:
                after_each()
        return handled

    def release_retries(self) -> None:
        for url, handle in self.retry_later:
            self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
        self.retry_later.clear()

    def pay(self, loan_ids: list[str]) -> None:
        from botocore.config import Config

        # The lender's own system, not the product under test: it retries a throttled write until it
        # lands (injected faults hit every table, and 4 throttles in a row at 30 % are not rare).
        retrying = Config(retries={"max_attempts": 12, "mode": "standard"})
        table = self.session.resource("dynamodb", config=retrying).Table(self.tables["LoansTable"])
        for loan_id in loan_ids:
            table.update_item(
                Key={"loan_id": loan_id},
                UpdateExpression="SET #s = :paid",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":paid": "PAID"},
            )

    # -- the run ----------------------------------------------------------------------------------
    def tick(self, t: datetime, paid: list[tuple[datetime, str]] | None = None) -> list[tuple[datetime, str]]:
        """One Scheduler tick at ``t``, as AWS would run it: payments due by ``t`` land, replies arrive,
        retries come back, the planner fans out and the senders consume while it produces, the carrier
        reports. Returns the payments still to come (``paid``: (instant, loan_id), any order)."""
        o = self.options
        paid = list(paid or [])
        before = [loan for at, loan in paid if at <= t]
        paid = [(at, loan) for at, loan in paid if at > t]
        self.pay(before)
        self.pump_streams(t)
        self.carrier.deliver_replies(t)
        self.release_retries()
        # Payments that land between a planner's pass and the sender's: the sender must notice.
        during = [loan for at, loan in paid if at <= t + timedelta(minutes=1)]
        paid = [(at, loan) for at, loan in paid if at > t + timedelta(minutes=1)]
        send_at = t + timedelta(minutes=2)

        def send() -> None:
            if during:
                self.pay(during)
                self.pump_streams(send_at - timedelta(minutes=1))
                during.clear()
            self.drain("SmsQueue", "sender", send_at)
            self.drain("PushQueue", "sender", send_at)

        self.call("planner", ev.scheduler_input(t), t)
        self.drain("PlanQueue", "planner", t, batch_size=1, after_each=send)
        send()
        self.carrier.report(t + timedelta(minutes=5))
        if t.hour == 4 and t.minute < o.tick_minutes:
            self.call("reconcile", ev.scheduler_input(t), t)
        return paid

    def run(self) -> None:
        o = self.options
        ticks = o.hours * 60 // o.tick_minutes
        paid = (
            portfolio.payments(self.book, seed=o.seed, share=0.10, start=o.start, hours=o.hours)
            if self.embedded
            else []
        )
        progress = _Progress(ticks, quiet=o.quiet)
        for k in range(ticks):
            t = o.start + timedelta(minutes=k * o.tick_minutes)
            paid = self.tick(t, paid)
            progress.tick(t)
        end = o.start + timedelta(minutes=ticks * o.tick_minutes)
        # Let the last jobs and receipts settle, as the next tick would.
        self.release_retries()
        self.drain("SmsQueue", "sender", end)
        self.drain("PushQueue", "sender", end)
        self.carrier.report(end)
        self.carrier.report(end + timedelta(minutes=15))
        progress.done()


class _Progress:
    """A progress bar whose estimate comes from the recent tick rate.

    Ticks differ a lot (the first one plans the whole due book; night ticks in most zones plan little),
    so the estimate uses the last few ticks, and says nothing until two ticks have run.
    """

    WINDOW = 8

    def __init__(self, total: int, *, quiet: bool) -> None:
        self.total, self.quiet = total, quiet
        self.done_ticks = 0
        self.started = time.monotonic()
        self.stamps: list[float] = [self.started]

    def tick(self, at: datetime) -> None:
        self.done_ticks += 1
        now = time.monotonic()
        self.stamps = [*self.stamps[-self.WINDOW :], now]
        if self.quiet:
            return
        width = 40
        filled = int(width * self.done_ticks / self.total)
        elapsed = now - self.started
        if self.done_ticks < 2:
            eta = "estimating…"
        else:
            recent = self.stamps[1:] if len(self.stamps) > 2 else self.stamps
            rate = (recent[-1] - recent[0]) / max(len(recent) - 1, 1)
            eta = f"~{rate * (self.total - self.done_ticks):4.0f}s left"
        sys.stderr.write(
            f"\r  [{'█' * filled}{'·' * (width - filled)}] tick {self.done_ticks}/{self.total} "
            f"{at:%a %d %b %H:%M}Z {elapsed:5.0f}s elapsed, {eta} "
        )
        sys.stderr.flush()

    def done(self) -> None:
        if not self.quiet:
            sys.stderr.write("\n")


@contextmanager
def _quiet_functions() -> Iterator[None]:
    """Powertools warns on every invocation that emits no metric (metrics are off in the simulation):
    noise for a terminal, where the functions' own output does not belong anyway."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        yield


def run_demo(options: DemoOptions) -> DemoResult:
    """Seed, simulate and report; the result says whether every invariant held."""
    started = time.monotonic()
    with embedded_aws() as session, _quiet_functions():
        if not options.quiet:
            print(
                f"Building the stack from template.yaml on embedded AWS and seeding {options.loans:,} loans…",
                file=sys.stderr,
            )
        stack = build_local_stack(session, parameters={"ShardCount": options.shards})
        sim = Simulation(session, stack, options)
        sim.seed()
        from dunning_local.faults import injected
        from dunning_local.pacer_clock import simulated_pacing

        # Faults hit the simulated period, not the set-up: AWS throttles and drops, the product copes.
        # The send pacer runs on simulated time too, so the same seed replays the same run.
        with injected(options.fault_rate, options.seed) as faults, simulated_pacing():
            sim.run()
        from dunning_local import digest
        from dunning_local.audit import summarise

        summary = summarise(sim, elapsed=time.monotonic() - started)
        summary["faults"] = {"injected": faults.total, "by_kind": dict(sorted(faults.counts.items()))}
        summary.update(digest.build(sim, summary))
        summary["explained_loan"] = _explained_loan(sim, summary)
        kept = None
        if options.keep:
            from dunning_local.targets import keep_tables

            kept = keep_tables(session, stack.tables, options.shards, options.out)
        summary["run"]["elapsed_seconds"] = round(time.monotonic() - started, 1)
    html_path = report.write_html(summary, options.out / "report.html")
    json_path = report.write_json(summary, options.out / "summary.json")
    (options.out / "local-hours.svg").write_text(report.hours_svg(summary), encoding="utf-8")
    passed = all(inv["passed"] for inv in summary["invariants"])
    print(report.terminal(summary))
    print(f"\nHTML report:  {html_path.resolve()}\nJSON summary: {json_path.resolve()}")
    if kept is not None:
        print(f"Tables kept:  {kept.resolve()} — explore them:")
        for loan in summary.get("interesting_loans", []):
            print(f"  dunning explain {loan['loan_id']} --from {options.out}    # {loan['why']}")
        start = options.start + timedelta(hours=options.hours)
        print(f"  dunning plan --dry-run --at {start:%Y-%m-%dT%H:%M:%SZ} --from {options.out}")
    elif summary.get("interesting_loans"):
        print("To explore a loan's whole trail afterwards, run the demo with --keep.")
    print(
        "All invariants PASS" if passed else "Some invariants FAILED",
        file=sys.stderr if not passed else sys.stdout,
    )
    return DemoResult(summary, passed, html_path, json_path)


def _explained_loan(sim: Simulation, summary: dict[str, Any]) -> dict[str, Any] | None:
    """One loan's whole trail for the report: an interesting one whose trail shows a message."""
    from dunning_local.digest import explained_trail

    candidates = [(x["loan_id"], x["why"]) for x in summary.get("interesting_loans", [])]
    candidates += [
        (s["loan_id"], "a message as sent") for s in summary.get("samples", []) if s.get("loan_id")
    ]
    for loan_id, why in candidates[:12]:
        trail = explained_trail(sim, str(loan_id))
        if any(e["kind"] == "MESSAGE" for e in trail) and any(e["kind"] == "DECISION" for e in trail):
            return {"loan_id": loan_id, "why": why, "trail": trail}
    return None


@contextmanager
def _server_aws(endpoint: str | None) -> Iterator[boto3.Session]:
    """AWS at ``endpoint`` (moto_server), with fake credentials unless real ones are set."""
    if not endpoint:
        raise UsageError(
            "seed and simulate need a running endpoint: start `.venv/bin/moto_server -p 5000` and pass "
            "--endpoint http://127.0.0.1:5000 (or use `dunning demo`, which embeds AWS)"
        )
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)
    yield boto3.Session(region_name=DEFAULT_REGION)


def _server_stack(session: boto3.Session, options: DemoOptions) -> LocalStack:
    from botocore.exceptions import EndpointConnectionError

    try:
        return build_local_stack(session, parameters={"ShardCount": options.shards})
    except EndpointConnectionError as exc:
        raise UsageError(f"cannot reach {exc.kwargs.get('endpoint_url')}: is moto_server running?") from exc


def seed_command(options: DemoOptions, endpoint: str | None) -> int:
    """Create the stack on moto_server, write a synthetic book and index it (the reconcile sweep)."""
    with _server_aws(endpoint) as session:
        sim = Simulation(session, _server_stack(session, options), options, embedded=False)
        sim.seed()
        print(
            f"Seeded {len(sim.book.loans):,} loans and {len(sim.book.borrowers):,} borrowers on {endpoint}; "
            f"next: dunning simulate --endpoint {endpoint} --hours N, dunning plan --dry-run --at TIME"
        )
    return 0


def simulate_command(options: DemoOptions, endpoint: str | None) -> int:
    """Run ticks (planner -> senders) against a seeded moto_server stack.

    On a server, moto's stream records and SMS log cannot be read back, so payments, delivery receipts
    and borrower replies are left out; ``dunning demo`` simulates those on embedded AWS.
    """
    from dunning_local.targets import require_seeded

    with _server_aws(endpoint) as session, _quiet_functions():
        require_seeded(session.client("dynamodb"), str(endpoint))
        sim = Simulation(session, _server_stack(session, options), options, embedded=False)
        started = time.monotonic()
        sim.run()
        summary = _server_summary(sim, time.monotonic() - started)
    json_path = report.write_json(summary, options.out / "summary.json")
    print(report.terminal_counts(summary))
    print(
        f"\nJSON summary: {json_path.resolve()}\nFunction logs: {(options.out / 'functions.log').resolve()}\n"
        f"Explain a loan: dunning explain LOAN_ID --endpoint {endpoint}"
    )
    return 0


def _server_summary(sim: Simulation, elapsed: float) -> dict[str, Any]:
    """Counts from the ledger on the server (no carrier or borrowers there: receipts and replies are the
    demo's)."""
    o = sim.options
    ledger = [
        {k: next(iter(v.values())) for k, v in item.items()}
        for page in sim.ddb.get_paginator("scan").paginate(TableName=sim.tables["LedgerTable"])
        for item in page["Items"]
    ]
    sent = Counter(str(i.get("channel")) for i in ledger if i.get("type") == "MESSAGE")
    decisions = [i for i in ledger if i.get("type") == "DECISION"]
    outcomes = [i for i in ledger if i.get("type") == "OUTCOME"]
    return {
        "run": {
            "hours": o.hours,
            "tick_minutes": o.tick_minutes,
            "ticks": o.hours * 60 // o.tick_minutes,
            "start": o.start.isoformat(),
            "elapsed_seconds": round(elapsed, 1),
            "invocations": dict(sim.invocations),
        },
        "sent": dict(sent),
        "deferred": dict(Counter(str(d["rule_id"]) for d in decisions if d.get("decision") == "DEFER")),
        "stopped": dict(Counter(str(d["rule_id"]) for d in decisions if d.get("decision") == "STOP")),
        "suppressed": dict(Counter(f"{str(x['status']).lower()}: {x.get('rule_id', '?')}" for x in outcomes)),
    }
