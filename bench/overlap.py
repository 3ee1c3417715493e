"""One planner shard task run sequentially and overlapped on the same book, with a fixed latency per request.

moto answers in process with no latency, so a shard task on moto is all CPU and overlapping its I/O would
show nothing. :class:`Latency` gives every request the planner makes a fixed delay: a ``before-send``
handler registered *first* on the session the planner's clients come from (boto3's default session), so it
runs before moto's own ``before-send`` handler (``moto.core.botocore_stubber``) answers the request.
botocore emits ``before-send`` once per HTTP attempt (a retried attempt waits again, as it would in AWS);
the handler sleeps, which releases the GIL as a socket wait does, so another thread's request or the
engine's decisions go on meanwhile. It also counts the requests by service and operation.

moto itself is not free: it builds every answer in this process, under the same GIL as the planner, and
it costs about four times the planner's own CPU (its DynamoDB response serialiser, SNS's fan-out to the
queues). No thread can overlap that, and in AWS it happens on AWS's side. So the part measures twice:

- **live**: every request answered by moto (the requests really happen);
- **replayed**: moto's answers to the first live sequential run are recorded (:class:`Moto`, keyed by
  URL, request body and how many times that body was seen in the run) and handed back to the later runs
  without running moto again: the same answers, the same latency, and in the process only what a Lambda
  does (the planner, botocore). A request not recorded goes to moto and is counted as a miss (0 when the
  runs ask the same things, which they do: same book, same tick, deterministic bodies).

The book (``dunning_local.portfolio``, the same generator as bench/requests.py) is seeded once, in one
shard, and indexed. Each run plans the shard as of the same tick with a freshly built planner
(``Planner.overlap`` off, then on); before each run the State and Ledger tables are put back as they were
after seeding and the queues emptied, uncounted (the driver's session has no latency), so every run plans
exactly the same loans. Reported per mode: loans per second (the best of ``rounds`` alternating runs),
the ratio, the process's CPU seconds and moto's share of them, and the requests per 100 loans.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import boto3

from dunning import clock
from dunning.observability import MetricsRecorder
from dunning.planner import PUBLISH_CONCURRENCY, ShardResult, ShardTask, build_planner
from dunning.settings import PlannerSettings
from dunning_local import portfolio
from dunning_local.embedded import embedded_aws
from dunning_local.invoke import warm_function
from dunning_local.simulate import LENDER_NUMBER
from dunning_local.stack import LocalStack, build_local_stack

# Monday 11:00 in New York (08:00 in California): the book's usual mix of SENDs, deferrals and stops.
TICK = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
SHARD = "DUE#00"
# Typical in-region latencies (docs/scaling.md assumes 12 ms for DynamoDB, 30 ms for SNS).
DYNAMODB_MS = 10.0
MESSAGING_MS = 25.0


@dataclass
class Latency:
    """A fixed delay per request: ``dynamodb_ms`` for DynamoDB, ``messaging_ms`` for SNS and SQS."""

    dynamodb_ms: float = DYNAMODB_MS
    messaging_ms: float = MESSAGING_MS
    requests: Counter[str] = field(default_factory=Counter)
    slept: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, session: boto3.Session) -> Latency:
        """Register the delay on ``session`` (clients created afterwards get it); returns self."""
        for service, ms in (
            ("dynamodb", self.dynamodb_ms),
            ("sns", self.messaging_ms),
            ("sqs", self.messaging_ms),
        ):
            session.events.register_first(f"before-send.{service}", self._delay(service, ms / 1000))
        return self

    def _delay(self, service: str, seconds: float) -> Any:
        def handler(event_name: str = "", **_: Any) -> None:
            operation = event_name.rsplit(".", 1)[-1]
            with self._lock:
                self.requests[f"{service}.{operation}"] += 1
                self.slept += seconds
            time.sleep(seconds)

        return handler

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.slept = 0.0


Answer = tuple[int, Any, Any]  # moto's (status, headers, body)


@dataclass
class Moto:
    """moto's request handler (``BotocoreStubber.process_request``) wrapped: the thread CPU it spends
    is summed, and in ``record`` / ``replay`` mode its answers are kept / handed back. Off (``mode`` None)
    it is moto as usual, uncounted: the driver's own requests (seeding, restoring the tables)."""

    mode: str | None = None
    cpu_seconds: float = 0.0
    misses: int = 0
    answers: dict[tuple[str, bytes, int], Answer] = field(default_factory=dict)
    seen: Counter[tuple[str, bytes]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def patched(self) -> Iterator[Moto]:
        from moto.core.botocore_stubber import BotocoreStubber

        original = BotocoreStubber.process_request

        def process_request(stubber: Any, request: Any) -> Answer | None:
            return self.handle(lambda: original(stubber, request), request)

        with mock.patch.object(BotocoreStubber, "process_request", process_request):
            yield self

    def start(self, mode: str | None) -> None:
        with self._lock:
            self.mode, self.cpu_seconds, self.misses = mode, 0.0, 0
            self.seen.clear()

    def handle(self, answer: Callable[[], Answer | None], request: Any) -> Answer | None:
        if self.mode is None:
            return answer()
        body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
        key = (str(request.url), body)
        with self._lock:
            occurrence = self.seen[key]
            self.seen[key] += 1
            if self.mode == "replay":
                recorded = self.answers.get((*key, occurrence))
                if recorded is not None:
                    return recorded
                self.misses += 1
        cpu = time.thread_time()
        found = answer()
        with self._lock:
            self.cpu_seconds += time.thread_time() - cpu
            if self.mode == "record" and found is not None:
                self.answers[(*key, occurrence)] = found
        return found


class Book:
    """A generated book seeded in one shard of an embedded stack, and its tables' state after seeding."""

    def __init__(self, session: boto3.Session, stack: LocalStack, loans: int, seed: int) -> None:
        self.session, self.stack = session, stack
        self.client: Any = session.client("dynamodb")
        overrides = {"SHARD_COUNT": "1", "SMS_ORIGINATION_IDENTITY": LENDER_NUMBER}
        with contextlib.redirect_stdout(io.StringIO()):
            self.indexer = warm_function(stack, "indexer", env_overrides=overrides)
        book = portfolio.generate(loans, seed=seed, as_of=TICK.date())
        names = {"GCM": str(stack.ref("FcmAppName")), "APNS": str(stack.ref("ApnsAppName"))}
        portfolio.register_push_endpoints(book, session.client("sns"), names)
        resource = session.resource("dynamodb")
        at = TICK - timedelta(hours=2)
        for logical, items in (("BorrowersTable", book.borrowers), ("LoansTable", book.loans)):
            with resource.Table(stack.tables[logical]).batch_writer() as batch:
                for item in items:
                    batch.put_item(Item=item)
            self._index(logical, at)
        self.saved = {logical: self._scan(logical) for logical in ("StateTable", "LedgerTable")}
        # The indexer puts a loan in the due-index at the first instant it could be sent: those the tick
        # finds due are the ones whose time has come by then.
        tick = TICK.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.due = sum(
            1
            for item in self.saved["StateTable"]
            if "due_shard" in item and item["next_contact_at"]["S"] <= tick
        )

    def _index(self, logical: str, at: datetime) -> None:
        from bench.budget_tick import index_stream

        index_stream(self.stack, self.indexer, logical, at)

    def _scan(self, logical: str) -> list[dict[str, Any]]:
        pages = self.client.get_paginator("scan").paginate(TableName=self.stack.tables[logical])
        return [item for page in pages for item in page["Items"]]

    def restore(self) -> None:
        """The State and Ledger tables as they were after seeding, the queues empty."""
        for logical, saved in self.saved.items():
            name = self.stack.tables[logical]
            schema = self.client.describe_table(TableName=name)["Table"]["KeySchema"]
            keys = [k["AttributeName"] for k in schema]
            gone = [{"DeleteRequest": {"Key": {k: i[k] for k in keys}}} for i in self._scan(logical)]
            back = [{"PutRequest": {"Item": i}} for i in saved]
            for requests in (gone, back):
                for start in range(0, len(requests), 25):
                    self.client.batch_write_item(RequestItems={name: requests[start : start + 25]})
        self._empty_queues()

    def _empty_queues(self) -> None:
        """The queues emptied in moto's backend (moto's SendMessage costs time in the queue's length, and
        PurgeQueue through the API is allowed once a minute)."""
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[self.stack.account_id][self.stack.region]
        for url in self.stack.queues.values():
            queue = backend.get_queue(url.rsplit("/", 1)[-1])
            queue.last_purged_at = None
            backend.purge_queue(queue.name)


@dataclass(frozen=True)
class Run:
    overlap: bool
    seconds: float
    cpu_seconds: float
    moto_cpu_seconds: float
    slept: float
    misses: int
    result: ShardResult
    requests: dict[str, int]

    @property
    def loans(self) -> int:
        r = self.result
        return r.planned + r.deferred + r.stopped + r.invalid + r.publish_failed

    @property
    def loans_per_s(self) -> float:
        return self.loans / self.seconds if self.seconds else 0.0


def plan_once(book: Book, latency: Latency, moto: Moto, *, overlap: bool, mode: str, page_size: int) -> Run:
    """A fresh planner (new clients, with the latency) plans the whole shard once; ``mode`` is moto's
    (``live``, ``record`` or ``replay``)."""
    moto.start(None)
    book.restore()
    environment = book.stack.function_environment("PlannerFunction")
    environment["SHARD_COUNT"] = "1"
    with contextlib.redirect_stdout(io.StringIO()):
        planner = build_planner(PlannerSettings.from_env(environment))
    planner.page_size = page_size
    # Sequential: every request one after the other, as before the planner overlapped them.
    planner.overlap = overlap
    planner.outbound.concurrency = PUBLISH_CONCURRENCY if overlap else 1
    task = ShardTask(shard=SHARD, scheduled_time=TICK)
    with contextlib.redirect_stdout(io.StringIO()), clock.use(lambda: TICK + timedelta(seconds=5)):
        # Clients are created on first use: made here, so their creation is not timed.
        _ = planner.state.dynamo.client, planner.outbound.client
        latency.reset()
        moto.start(mode)
        cpu, started = time.process_time(), time.perf_counter()
        result = planner.plan_shard(task, lambda: 900_000, MetricsRecorder())
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        moto_cpu, misses = moto.cpu_seconds, moto.misses
        moto.start(None)
    return Run(overlap, seconds, cpu, moto_cpu, latency.slept, misses, result, dict(latency.requests))


def _summary(run: Run) -> dict[str, Any]:
    r = run.result
    per_100 = 100 / max(run.loans, 1)
    return {
        "loans": run.loans,
        "seconds": round(run.seconds, 3),
        "loans_per_s": round(run.loans_per_s, 1),
        "cpu_seconds": round(run.cpu_seconds, 3),
        "moto_cpu_seconds": round(run.moto_cpu_seconds, 3),
        "latency_seconds": round(run.slept, 3),
        "replay_misses": run.misses,
        "planned": r.planned,
        "deferred": r.deferred,
        "stopped": r.stopped,
        "invalid": r.invalid,
        "publish_failed": r.publish_failed,
        "pages": r.pages,
        "requests": dict(sorted(run.requests.items())),
        "requests_per_100_loans": {k: round(n * per_100, 2) for k, n in sorted(run.requests.items())},
    }


def _compare(runs: dict[bool, list[Run]]) -> dict[str, Any]:
    best = {mode: max(found, key=lambda r: r.loans_per_s) for mode, found in runs.items()}
    sequential, overlapped = best[False], best[True]
    ratio = overlapped.loans_per_s / sequential.loans_per_s if sequential.loans_per_s else 0.0
    return {
        "sequential": _summary(sequential),
        "overlapped": _summary(overlapped),
        "all_loans_per_s": {
            "sequential": [round(r.loans_per_s, 1) for r in runs[False]],
            "overlapped": [round(r.loans_per_s, 1) for r in runs[True]],
        },
        "ratio": round(ratio, 2),
        # No thread overlaps CPU under the GIL: the sequential run's time over its CPU time bounds the ratio.
        "cpu_bound_ratio": round(sequential.seconds / sequential.cpu_seconds, 2)
        if sequential.cpu_seconds
        else 0.0,
    }


def run(
    loans: int = 1500,
    *,
    rounds: int = 2,
    seed: int = 11,
    page_size: int = 100,
    dynamodb_ms: float = DYNAMODB_MS,
    messaging_ms: float = MESSAGING_MS,
) -> dict[str, Any]:
    """The same shard task sequentially and overlapped, ``rounds`` times each (alternating), on live moto
    and on moto's recorded answers."""
    started = time.monotonic()
    with embedded_aws() as session, Moto().patched() as moto:
        stack = build_local_stack(session, parameters={"ShardCount": 1})
        book = Book(session, stack, loans, seed)
        boto3.setup_default_session(region_name=stack.region)
        assert boto3.DEFAULT_SESSION is not None
        latency = Latency(dynamodb_ms, messaging_ms).attach(boto3.DEFAULT_SESSION)
        measured: dict[str, dict[bool, list[Run]]] = {
            "live": {False: [], True: []},
            "replayed": {False: [], True: []},
        }
        for n in range(rounds):
            for overlap in (False, True):
                mode = "record" if n == 0 and not overlap else "live"
                measured["live"][overlap].append(
                    plan_once(book, latency, moto, overlap=overlap, mode=mode, page_size=page_size)
                )
        for _ in range(rounds):
            for overlap in (False, True):
                measured["replayed"][overlap].append(
                    plan_once(book, latency, moto, overlap=overlap, mode="replay", page_size=page_size)
                )
    return {
        "loans_in_book": loans,
        "due": book.due,
        "shard": SHARD,
        "tick": TICK.isoformat(),
        "page_size": page_size,
        "latency_ms": {"dynamodb": dynamodb_ms, "sns_sqs": messaging_ms},
        "rounds": rounds,
        "live": _compare(measured["live"]),
        "replayed": _compare(measured["replayed"]),
        "seconds": round(time.monotonic() - started, 1),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
