"""AWS requests and DynamoDB capacity units per delivered message, end to end, on moto.

A lean driver of the real handlers (``dunning_local.invoke.warm_function``) over template.yaml's
resources: a generated book (``dunning_local.portfolio``) is written to the lender's tables, its stream
records are indexed (reported apart: a one-off per loan, not a per-message cost), then every 15-minute
tick runs as in AWS: the Scheduler's input to the planner, one PlanQueue task per shard (batch size 1),
the jobs from SmsQueue and PushQueue to the sender ten at a time, and the carrier's delivery-status log
records back to the receipts function a hundred at a time. No payments or replies happen during the run:
what is measured is the cost of the reminders themselves.

Every request the handlers make goes through one boto3 session whose events a :class:`bench.meter.Meter`
counts and prices. Requests the driver makes in AWS's place (the event source mappings' ReceiveMessage
and DeleteMessageBatch, the carrier) use another session and are not counted; the ones AWS would make
are modelled in :mod:`bench.cost`.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from bench import baseline
from bench.meter import Meter, describe_tables
from dunning_local import lambda_events as ev
from dunning_local import portfolio, throughput_stats
from dunning_local.invoke import WarmFunction, receive_batches, settle_batch, warm_function
from dunning_local.prices import sms_part_price
from dunning_local.simulate import LENDER_NUMBER, embedded_aws
from dunning_local.stack import LocalStack, build_local_stack

PIPELINE = ("planner", "sender", "receipts")
SENDER_BATCH = 10  # template.yaml: SmsQueue/PushQueue event sources, BatchSize 10
RECEIPT_BATCH = 100  # log events per subscription delivery (CloudWatch Logs batches them)
# The carrier's price on each delivery record: the book's numbers are US ones (data/prices.yaml).
_US_SMS_PART = sms_part_price("US")


@dataclass(frozen=True)
class RunOptions:
    loans: int = 2800
    hours: int = 12
    shards: int = 8
    seed: int = 11
    tick_minutes: int = 15
    # Monday 05:00 UTC: the first windows to open are Asia's, the last California's, all inside 12 hours.
    start: datetime = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)


def metered_default_session(stack: LocalStack, driver: boto3.Session) -> Meter:
    """A fresh boto3 default session (the handlers' clients come from it) with a meter on it."""
    boto3.setup_default_session(region_name=stack.region)
    assert boto3.DEFAULT_SESSION is not None
    tables = describe_tables(driver.client("dynamodb"), stack.tables)
    return Meter(tables, stack.account_id, stack.region).attach(boto3.DEFAULT_SESSION)


class LogBytes(io.TextIOBase):
    """A stdout that counts the UTF-8 bytes written, by the meter's current label, and keeps nothing."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.by_label: Counter[str] = Counter()

    def write(self, text: str) -> int:
        self.by_label[self.meter.label] += len(text.encode("utf-8"))
        return len(text)


class Pipeline:
    """The stack, the warm functions, the simulated carrier, and the meter on the handlers' session."""

    def __init__(self, session: boto3.Session, stack: LocalStack, options: RunOptions) -> None:
        self.session = session
        self.stack = stack
        self.options = options
        self.sqs = session.client("sqs")
        self.sns = session.client("sns")
        self.meter = metered_default_session(stack, session)
        # Log level and metrics as the template sets them: their CloudWatch Logs bytes are a cost too.
        overrides = {"SHARD_COUNT": str(options.shards), "SMS_ORIGINATION_IDENTITY": LENDER_NUMBER}
        # The handlers' loggers bind to sys.stdout when they are created: from here on, everything the
        # functions print (JSON logs, EMF metrics) is counted by the function that printed it.
        self.stdout = LogBytes(self.meter)
        with contextlib.redirect_stdout(self.stdout):
            self.functions: dict[str, WarmFunction] = {
                name: warm_function(stack, name, env_overrides=overrides) for name in ("indexer", *PIPELINE)
            }
        self.invocations: Counter[str] = Counter()
        self.wall_seconds: defaultdict[str, float] = defaultdict(float)
        self.delivery_log_bytes = 0
        self.delivery_log_records = 0
        self.book = portfolio.Portfolio()
        self._stream_positions: dict[str, int] = {}
        self._sms_seen = 0
        self._push_seen: dict[str, int] = {}
        self.batch_failures = 0

    # ---- plumbing -------------------------------------------------------------------------------

    def call(self, name: str, event: Any, at: datetime) -> Any:
        self.meter.label = name
        self.invocations[name] += 1
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(self.stdout):
                return self.functions[name](event, now=at)
        finally:
            self.wall_seconds[name] += time.perf_counter() - started
            self.meter.label = ""

    def seed(self, at: datetime) -> None:
        """Write the book as the lender would (push endpoints created first, uncounted) and index it."""
        o = self.options
        self.book = portfolio.generate(o.loans, seed=o.seed, as_of=o.start.date())
        names = {"GCM": str(self.stack.ref("FcmAppName")), "APNS": str(self.stack.ref("ApnsAppName"))}
        portfolio.register_push_endpoints(self.book, self.sns, names)
        resource = self.session.resource("dynamodb")
        # Borrowers first and indexed before the loans exist, as a lender's onboarding would go (a new
        # borrower's record then finds no loans to re-plan; moto's ByBorrower query is slow on a full
        # table and would dominate the run).
        for logical, items in (("BorrowersTable", self.book.borrowers), ("LoansTable", self.book.loans)):
            with resource.Table(self.stack.tables[logical]).batch_writer() as batch:
                for item in items:
                    batch.put_item(Item=item)
            self.index(at)

    def index(self, at: datetime) -> None:
        """The new stream records to the indexer, 100 a batch (the template's BatchSize)."""
        from moto.dynamodb.models import dynamodb_backends

        backend = dynamodb_backends[self.stack.account_id][self.stack.region]
        for logical in ("BorrowersTable", "LoansTable"):
            table = backend.get_table(self.stack.tables[logical])
            shard = table.stream_shard
            if shard is None:
                continue
            start = self._stream_positions.get(logical, 0)
            records = [r.to_json() for r in shard.items[start:]]
            self._stream_positions[logical] = len(shard.items)
            arn = str(table.describe()["TableDescription"]["LatestStreamArn"])
            for i in range(0, len(records), 100):
                batch = [
                    {**r, "dynamodb": {**r["dynamodb"], "ApproximateCreationDateTime": at.timestamp()}}
                    for r in records[i : i + 100]
                ]
                self.call("indexer", ev.dynamodb_stream_event(batch, arn), at)

    def drain(self, queue: str, function: str, at: datetime, batch_size: int) -> int:
        """Everything visible on ``queue`` to ``function`` in batches, as the event source mapping would."""
        url, arn = self.stack.queues[queue], str(self.stack.get_att(queue, "Arn"))
        handled = 0
        for got in receive_batches(self.sqs, url, batch_size):
            failed = settle_batch(self.sqs, url, got, self.call(function, ev.sqs_event(got, arn), at))
            self.batch_failures += len(failed)
            handled += len(got)
        return handled

    def carrier(self, at: datetime) -> None:
        """Delivery-status log records for everything published since the last call."""
        from moto.sns.models import sns_backends

        backend = sns_backends[self.stack.account_id][self.stack.region]
        region, account = self.stack.region, self.stack.account_id
        by_group: dict[str, list[tuple[datetime, dict[str, Any]]]] = defaultdict(list)
        sms = list(backend.sms_messages.items())[self._sms_seen :]
        self._sms_seen += len(sms)
        for message_id, (phone, _text) in sms:
            ok = phone not in self.book.unreachable
            group = f"sns/{region}/{account}/DirectPublishToPhoneNumber" + ("" if ok else "/Failure")
            by_group[group].append(
                (at, ev.sms_delivery_record(message_id, phone, at, success=ok, price=_US_SMS_PART))
            )
        for endpoint in backend.platform_endpoints.values():
            seen = self._push_seen.get(endpoint.arn, 0)
            new = list(endpoint.messages)[seen:]
            self._push_seen[endpoint.arn] = seen + len(new)
            app = endpoint.application
            group = f"sns/{region}/{account}/app/{app.platform}/{app.name}"
            by_group[group] += [(at, ev.push_delivery_record(m, endpoint.arn, at, success=True)) for m in new]
        for group, records in by_group.items():
            # What SNS writes to CloudWatch Logs per message (ingestion is priced by the byte).
            self.delivery_log_records += len(records)
            self.delivery_log_bytes += sum(len(json.dumps(r)) for _, r in records)
            for i in range(0, len(records), RECEIPT_BATCH):
                self.call("receipts", ev.logs_subscription_event(group, records[i : i + RECEIPT_BATCH]), at)

    def tick(self, t: datetime) -> None:
        self.call("planner", ev.scheduler_input(t), t)
        self.drain("PlanQueue", "planner", t, batch_size=1)
        send_at = t + timedelta(minutes=2)
        self.drain("SmsQueue", "sender", send_at, SENDER_BATCH)
        self.drain("PushQueue", "sender", send_at, SENDER_BATCH)
        self.carrier(t + timedelta(minutes=5))

    # ---- what came out --------------------------------------------------------------------------

    def ledger_summary(self) -> dict[str, Any]:
        """Statuses of messages, outcomes and decisions, read from the ledger (uncounted)."""
        client = self.session.client("dynamodb")
        statuses: Counter[str] = Counter()
        channels: Counter[str] = Counter()
        segments: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        decisions: Counter[str] = Counter()
        budget: Counter[str] = Counter()
        country = {str(i["loan_id"]): str(i["jurisdiction"]).split("-")[0] for i in self.book.loans}
        sends: list[tuple[str, str, str]] = []
        sms: list[tuple[str, int]] = []
        # Each loan's DECISION items (sort key, rule, not_before): a repeat is the same rule and not_before
        # as the loan's previous decision (what "a DEFER only when it changes" would not write).
        trail: defaultdict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for page in client.get_paginator("scan").paginate(TableName=self.stack.tables["LedgerTable"]):
            for item in page["Items"]:
                sk = item["sk"]["S"]
                status = item.get("status", {}).get("S", "")
                if sk == "MESSAGE":
                    statuses[status] += 1
                    channel = item["channel"]["S"]
                    where = country.get(item["loan_id"]["S"], "US")
                    sends.append((item["at"]["S"], channel, where))
                    if channel == "sms":
                        sms.append((where, int(item.get("segments", {}).get("N", "1"))))
                    if status == "DELIVERED":
                        channels[channel] += 1
                        if channel == "sms":
                            segments[item.get("segments", {}).get("N", "1")] += 1
                elif sk == "OUTCOME":
                    outcomes[f"{status}: {item.get('rule_id', {}).get('S', '')}"] += 1
                elif "#DECISION#" in sk:
                    decisions[item["decision"]["S"]] += 1
                    trail[item["pk"]["S"]].append(
                        (sk, item.get("rule_id", {}).get("S", ""), item.get("not_before", {}).get("S", ""))
                    )
                    rule = item.get("rule_id", {}).get("S", "")
                    if rule.startswith("budget."):
                        budget[rule] += 1
        return {
            "messages": dict(statuses),
            "delivered_by_channel": dict(channels),
            "sms_segments": {k: segments[k] for k in sorted(segments)},
            "sms_parts": throughput_stats.sms_parts(int(k) for k, n in segments.items() for _ in range(n)),
            "budget_deferrals": dict(budget),
            "peak_sends_per_minute": throughput_stats.peak_sends_per_minute(sends),
            "spend_by_country": throughput_stats.spend_by_country(sms),
            "outcomes": dict(outcomes),
            "decisions": dict(decisions),
            "repeated_decisions": sum(
                earlier[1:] == later[1:]
                for items in trail.values()
                for earlier, later in zip(sorted(items), sorted(items)[1:], strict=False)
            ),
        }


def _by_operation(meter: Meter, labels: tuple[str, ...]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for (label, service, operation), n in meter.requests.items():
        if label in labels:
            counts[f"{service}.{operation}"] += n
    return dict(counts.most_common())


def _by_function(meter: Meter, labels: tuple[str, ...]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for label in labels:
        counts: Counter[str] = Counter()
        for (fn, service, operation), n in meter.requests.items():
            if fn == label:
                counts[f"{service}.{operation}"] += n
        out[label] = dict(counts.most_common())
    return out


def capacity_breakdown(meter: Meter, labels: tuple[str, ...]) -> dict[str, Any]:
    """Write units by (table, item kind, where) and read units by (table, index, operation)."""
    writes: Counter[str] = Counter()
    for (label, table, kind, where, what), units in meter.write_units.items():
        if label in labels:
            target = "table" if where == "table" else f"index {where}"
            writes[f"{label} | {table} {kind} | {target} {what}"] += units
    reads: defaultdict[str, float] = defaultdict(float)
    for (label, table, index, operation), read in meter.read_units.items():
        if label in labels:
            reads[f"{label} | {table}{'/' + index if index else ''} {operation}"] += read
    return {
        "write_units": dict(writes.most_common()),
        "read_units": {k: round(v, 1) for k, v in sorted(reads.items(), key=lambda kv: -kv[1])},
    }


def run(
    options: RunOptions | None = None, *, progress: bool = False, with_baseline: bool = True
) -> dict[str, Any]:
    """Index a generated book, run the ticks, and return requests and capacity units per message;
    then the naive baseline (:mod:`bench.baseline`) on the same book and ticks."""
    o = options or RunOptions()
    started = time.monotonic()
    with embedded_aws() as session:
        stack = build_local_stack(session, parameters={"ShardCount": o.shards})
        pipeline = Pipeline(session, stack, o)
        # The book is written and indexed during the tick interval before the first tick: the planner
        # ticks from the moment the stack exists, so a book an hour old with no tick on it never occurs.
        pipeline.seed(o.start - timedelta(minutes=o.tick_minutes))
        if progress:
            print(
                f"  pipeline: {o.loans} loans written and indexed, {time.monotonic() - started:.0f}s",
                flush=True,
            )
        indexing = {
            "requests": pipeline.meter.total_requests(["indexer"]),
            "by_operation": _by_operation(pipeline.meter, ("indexer",)),
            "write_units": pipeline.meter.total_write_units(["indexer"]),
            "read_units": round(pipeline.meter.total_read_units(["indexer"]), 1),
        }
        ticks = o.hours * 60 // o.tick_minutes
        for k in range(ticks):
            pipeline.tick(o.start + timedelta(minutes=k * o.tick_minutes))
            if progress and (k < 4 or (k + 1) % 8 == 0):
                print(f"  pipeline: tick {k + 1}/{ticks}, {time.monotonic() - started:.0f}s", flush=True)
        ledger = pipeline.ledger_summary()
        meter = pipeline.meter
        delivered = ledger["messages"].get("DELIVERED", 0)
        sent = sum(ledger["messages"].values())
        requests = meter.total_requests(PIPELINE)
        wcu = meter.total_write_units(PIPELINE)
        rcu = meter.total_read_units(PIPELINE)
        budget_requests = sum(
            n
            for (label, _table, kind, _op), n in meter.item_writes.items()
            if label in PIPELINE and kind in ("send-rate tokens", "spend reservation")
        )
        largest = {f"{t} {k}": size for (t, k), size in sorted(meter.largest.items())}
        result = {
            "options": {**asdict(o), "start": o.start.isoformat()},
            "book": {"loans": len(pipeline.book.loans), "borrowers": len(pipeline.book.borrowers)},
            "ticks": ticks,
            "ledger": ledger,
            "delivered": delivered,
            "published": sent,
            "requests": requests,
            "requests_per_delivered": round(requests / max(delivered, 1), 3),
            # The send budget's shared counters (issue 11): a conditional ADD each, not batchable.
            "budget_requests": budget_requests,
            "budget_requests_per_delivered": round(budget_requests / max(delivered, 1), 3),
            # Polls of shards with nothing due: per tick, not per message.
            "empty_polls": sum(meter.empty_queries[label] for label in PIPELINE),
            "write_units": wcu,
            "write_units_per_delivered": round(wcu / max(delivered, 1), 3),
            "read_units": round(rcu, 1),
            "read_units_per_delivered": round(rcu / max(delivered, 1), 3),
            "by_operation": _by_operation(meter, PIPELINE),
            "by_function": _by_function(meter, PIPELINE),
            "capacity": capacity_breakdown(meter, PIPELINE),
            "item_writes": {
                f"{label} | {table} {kind} {op}": n
                for (label, table, kind, op), n in meter.item_writes.most_common()
                if label in PIPELINE
            },
            "largest_item_bytes": largest,
            # What the run left stored, by item kind: (items, mean bytes), for the storage cost.
            "stored_items": {
                f"{t} {k}": [len(sizes), round(sum(sizes.values()) / max(len(sizes), 1))]
                for (t, k), sizes in sorted(meter.stored.items())
            },
            "invocations": dict(pipeline.invocations),
            "lambda": {
                label: {
                    "invocations": pipeline.invocations[label],
                    "wall_s": round(pipeline.wall_seconds[label], 2),
                    "in_aws_calls_s": round(meter.aws_seconds[label], 2),
                    "own_s": round(pipeline.wall_seconds[label] - meter.aws_seconds[label], 2),
                    "log_bytes": pipeline.stdout.by_label[label],
                }
                for label in PIPELINE
            },
            "delivery_status_logs": {
                "records": pipeline.delivery_log_records,
                "bytes": pipeline.delivery_log_bytes,
            },
            "batch_item_failures": pipeline.batch_failures,
            "indexing": indexing,
            "seconds": round(time.monotonic() - started, 1),
        }
        if with_baseline:
            result["baseline"] = baseline.run(
                session,
                stack,
                start=o.start,
                ticks=ticks,
                tick_minutes=o.tick_minutes,
                unreachable=pipeline.book.unreachable,
            )
    return result


def main() -> None:
    print(json.dumps(run(RunOptions(loans=400, hours=12), progress=True), indent=2, default=str))


if __name__ == "__main__":
    main()
