"""The send budget on moto: the planner never plans more than an identity can send before its jobs
expire, loans held back for budget are never starved, the spend guard defers before a country's budget
is crossed, window releases are paced, and concurrent senders keep to an identity's rate."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
from pipeline_helpers import INDEXED_AT, Harness, loan, run_concurrently, start_harness

from dunning import clock
from dunning.adapters.budget_store import RateLimiter
from dunning.adapters.cadence import due_shard
from dunning.adapters.dynamo import Dynamo
from dunning.adapters.pacing import SendPacer
from dunning.budget import SmsIdentity, SpendLimit, SpendPolicy, load_sending_policy
from dunning.models import Address, Borrower, Channel, Consent, Loan
from dunning.observability import MetricsRecorder
from dunning.planner import Planner, Tick, build_planner
from dunning.sender import build_sender
from dunning.settings import PlannerSettings, SenderSettings
from dunning_local import lambda_events as events
from dunning_local.stack import LocalStack

NEW_YORK = ZoneInfo("America/New_York")
TICK = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York
TICK_EVERY = timedelta(minutes=15)


@pytest.fixture
def atomic_updates() -> Any:
    """DynamoDB applies a conditional UpdateItem atomically; moto, called from several threads, does not
    (two threads can both pass the same condition). Each UpdateItem is made one request at a time, as
    the service makes it per item, so the test sees the product's concurrency, not moto's."""
    session = boto3.DEFAULT_SESSION
    assert session is not None
    lock = threading.Lock()

    def take(**_: Any) -> None:
        lock.acquire()

    def give(**_: Any) -> None:
        lock.release()

    session.events.register("before-call.dynamodb.UpdateItem", take)
    session.events.register("after-call.dynamodb.UpdateItem", give)
    yield
    session.events.unregister("before-call.dynamodb.UpdateItem", take)
    session.events.unregister("after-call.dynamodb.UpdateItem", give)


@pytest.fixture
def pipeline(stack: LocalStack, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> Harness:
    return start_harness(stack, aws, monkeypatch)


def _book(count: int, *, due: date = date(2026, 3, 5)) -> tuple[list[Loan], list[Borrower]]:
    """``count`` New York borrowers with text consent, each with a loan whose D-3 step is due on 2 March."""
    borrowers = [
        Borrower(
            borrower_id=f"B-{n:03d}",
            first_name="Ada",
            time_zone="America/New_York",
            phone=f"+1212555{n % 100:04d}" if n < 100 else f"+1646555{n % 100:04d}",
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True),
        )
        for n in range(count)
    ]
    loans = [loan(f"L-{n:03d}", f"B-{n:03d}", "US-NY", due) for n in range(count)]
    return loans, borrowers


def _planner(pipeline: Harness, rate: float, **spend: Any) -> Planner:
    settings = PlannerSettings.from_env(pipeline.stack.function_environment("PlannerFunction"))
    planner = build_planner(settings)
    policy = load_sending_policy()
    update: dict[str, Any] = {
        "sms_identities": (SmsIdentity(id="us-test", rate_per_second=rate, countries=("US",)),)
    }
    if spend:
        update["spend"] = SpendPolicy(
            currency="USD",
            warn_at_percent=80,
            parts_per_sms=1,
            budgets={"US": SpendLimit(**spend)},
            default=policy.spend.default,
        )
    return dataclasses.replace(planner, sending=policy.model_copy(update=update))


def _tick(pipeline: Harness, planner: Planner, at: datetime, metrics: MetricsRecorder) -> None:
    """Fan a tick out and plan every shard task (the jobs wait on SmsQueue)."""
    with clock.use(lambda: at + timedelta(seconds=5)):
        planner.fan_out(Tick(scheduled_time=at), metrics)
        while tasks := pipeline.drain("PlanQueue"):
            records = [{"messageId": t["MessageId"], "body": t["Body"]} for t in tasks]
            assert planner.process_tasks(records, lambda: 100_000, metrics) == []


def _loan_id(message: dict[str, Any]) -> str:
    return str(json.loads(message["Body"])["loan_id"])


@pytest.mark.parametrize(("count", "rate"), [(30, 0.01), (25, 0.02)])
def test_the_tick_budget_is_never_exceeded_and_no_loan_starves(
    pipeline: Harness, count: int, rate: float
) -> None:
    loans, borrowers = _book(count)
    pipeline.seed(loans, borrowers)
    pipeline.index(INDEXED_AT)
    planner = _planner(pipeline, rate)
    budget = math.floor(rate * min(planner.job_ttl, TICK_EVERY).total_seconds())  # the whole tick's
    assert budget >= 1

    # Each shard gets its share of the budget (the remainder rotating over the shards from tick to
    # tick): the fullest shard bounds how many ticks it takes.
    shards = len(planner.state.cadence.shards())
    fullest = max(Counter(due_shard(loan_.loan_id, shards) for loan_ in loans).values())
    bound = math.ceil(fullest * shards / budget)
    first_sent: dict[str, int] = {}
    for n in range(bound + 1):
        at = TICK + n * TICK_EVERY
        metrics = MetricsRecorder()
        _tick(pipeline, planner, at, metrics)
        jobs = pipeline.jobs()
        # Never more SENDs in a tick than the identity can send before the next one (all shards).
        assert len(jobs["SmsQueue"]) <= budget, n
        assert pipeline.send(jobs, at + timedelta(minutes=1)) == []
        for job in jobs["SmsQueue"]:
            first_sent.setdefault(_loan_id(job), n)
        waiting = count - len(first_sent)
        # Over the budget: DEFERred with budget.throughput (as many as are still waiting).
        assert metrics.total("Deferred", rule="budget.throughput") == waiting, n
    # Every loan got its reminder: held back at most as many ticks as the budget needs to reach it.
    assert sorted(first_sent) == sorted(loan.loan_id for loan in loans)
    assert max(first_sent.values()) <= bound
    deferred = [
        d for d in pipeline.decisions("L-000") + pipeline.decisions("L-029") if d["decision"] == "DEFER"
    ]
    assert all(d["rule_id"] == "budget.throughput" for d in deferred)


def test_the_spend_guard_defers_before_the_country_budget_is_crossed(pipeline: Harness) -> None:
    loans, borrowers = _book(12)
    pipeline.seed(loans, borrowers)
    pipeline.index(INDEXED_AT)
    # US parts cost 0.00883 USD: a 0.05 USD day fits five texts.
    planner = _planner(pipeline, 20, daily=0.05, monthly=10)
    metrics = MetricsRecorder()

    _tick(pipeline, planner, TICK, metrics)
    jobs = pipeline.jobs()

    assert len(jobs["SmsQueue"]) == 5
    assert metrics.total("Deferred", rule="budget.spend") == 7
    assert metrics.total("SpendBudgetWarning", country="US") >= 1
    assert max(v for name, _, v in metrics.values if name == "SpendBudgetUsedPercent") >= 80
    held = [
        d
        for loan_ in loans
        for d in pipeline.decisions(loan_.loan_id)
        if d["decision"] == "DEFER" and d["rule_id"] == "budget.spend"
    ]
    assert len(held) == 7
    assert {d["not_before"] for d in held} == {"2026-03-03T00:00:00Z"}  # the next UTC day


def test_window_releases_are_paced_inside_the_window(pipeline: Harness) -> None:
    loans, borrowers = _book(40)
    pipeline.seed(loans, borrowers)
    night = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 03:00 in New York: quiet hours
    pipeline.index(night - timedelta(hours=1))
    planner = _planner(pipeline, 20)
    span = timedelta(minutes=planner.sending.pacing_span_minutes if planner.sending else 0)

    _tick(pipeline, planner, night, MetricsRecorder())

    opens = datetime(2026, 3, 2, 8, 0, tzinfo=NEW_YORK)  # the strictest window: 08:00 (Reg F)
    released = [datetime.fromisoformat(pipeline.cadence(loan_.loan_id)["next_contact_at"]) for loan_ in loans]
    assert all(opens <= at < opens + span for at in released)
    per_minute = Counter(at.replace(second=0) for at in released)
    # Spread, not a burst: 40 releases over the span, never more than a few in the same minute.
    assert len(per_minute) >= 30
    assert max(per_minute.values()) <= 3
    # Each released loan is sendable at its instant (inside the window), and not before the opening.
    later = sorted(released)[-1]
    _tick(pipeline, planner, later + timedelta(seconds=1), MetricsRecorder())
    assert len(pipeline.jobs()["SmsQueue"]) == len(loans)


def test_concurrent_senders_keep_to_the_identitys_rate(pipeline: Harness, atomic_updates: None) -> None:
    loans, borrowers = _book(24)
    pipeline.seed(loans, borrowers)
    pipeline.index(INDEXED_AT)
    _tick(pipeline, _planner(pipeline, 20), TICK, MetricsRecorder())
    jobs = pipeline.jobs()["SmsQueue"]
    assert len(jobs) == 24

    environment = pipeline.stack.function_environment("SenderFunction")
    settings = SenderSettings.from_env(environment)
    rate = 5
    policy = load_sending_policy().model_copy(
        update={"sms_identities": (SmsIdentity(id="us-test", rate_per_second=rate, countries=("US",)),)}
    )
    # Each publish is counted in the second of the token it spent, and that second is checked against
    # the clock when the pacer let the publish go: wall-clock timestamps of the HTTP calls would measure
    # the test's thread scheduling on a busy host, not the pacer.
    spent: list[tuple[int, int]] = []
    lock = threading.Lock()

    class RecordingPacer(SendPacer):
        def pace(self, channel: Channel, jurisdiction: str, *, demand: int = 1) -> str:
            identity = super().pace(channel, jurisdiction, demand=demand)
            with lock:
                spent.append((self._held[identity][0], int(self.limiter.clock())))
            return identity

    arn = pipeline.stack.get_att("SmsQueue", "Arn")
    calls = []
    for start in range(0, len(jobs), 6):  # four senders at once, six jobs each
        sender = dataclasses.replace(
            build_sender(settings),
            pacer=RecordingPacer(RateLimiter(Dynamo(), settings.state_table), policy),
        )
        event = events.sqs_event(jobs[start : start + 6], arn)
        calls.append(lambda sender=sender, event=event: sender.process(event, None, MetricsRecorder()))
    errors = run_concurrently(calls, at=TICK + timedelta(minutes=1), environment=environment)

    assert errors == []
    assert len(spent) == 24
    per_token_second = Counter(token_second for token_second, _ in spent)
    assert max(per_token_second.values()) <= rate, per_token_second
    assert [(t, w) for t, w in spent if t != w] == []
    assert len(pipeline.sms()) == 24


def test_a_token_bucket_shared_by_threads_never_passes_the_rate(
    pipeline: Harness, atomic_updates: None
) -> None:
    table = str(pipeline.stack.ref("StateTable"))
    taken: list[int] = []
    lock = threading.Lock()

    def take(n: int) -> None:
        limiter = RateLimiter(Dynamo(), table)
        for _ in range(n):
            second, granted = limiter.acquire("us-test", 4, tokens=2)
            with lock:
                taken.extend([second] * granted)

    threads = [threading.Thread(target=take, args=(6,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(taken) >= 18
    assert max(Counter(taken).values()) <= 4


def test_a_token_bucket_grants_what_the_second_has_left_in_one_write(pipeline: Harness) -> None:
    table = str(pipeline.stack.ref("StateTable"))
    now = [1_800_000_000.25]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(Dynamo(), table, clock=lambda: now[0], sleep=sleep)
    state = boto3.resource("dynamodb").Table(table)

    def asked(second: int) -> int:
        item = state.get_item(Key={"pk": "RATE#us-test", "sk": f"{second:012d}"}).get("Item", {})
        return int(item.get("n", 0))

    assert limiter.acquire("us-test", 4, tokens=3) == (1_800_000_000, 3)
    # One token left in this second: granted in the same write that asked for three, none refused.
    assert limiter.acquire("us-test", 4, tokens=3) == (1_800_000_000, 1)
    assert asked(1_800_000_000) == 6
    # Nothing left: the write that finds the second spent is the only one, then the next second's.
    assert limiter.acquire("us-test", 4, tokens=2) == (1_800_000_001, 2)
    assert asked(1_800_000_000) == 8
    assert asked(1_800_000_001) == 2
    assert limiter.waited == 0.75


def test_a_sent_step_is_looked_at_again_when_the_next_step_may_go_out(pipeline: Harness) -> None:
    """After a SEND the cadence waits for the next step's first allowed instant (spread over the pacing
    span), not the local midnight it falls due: no ``window.*`` DEFER is recorded in between."""
    loans, borrowers = _book(20)
    pipeline.seed(loans, borrowers)
    pipeline.index(TICK - timedelta(hours=1))
    planner = _planner(pipeline, 20)
    span = timedelta(minutes=planner.sending.pacing_span_minutes if planner.sending else 0)

    _tick(pipeline, planner, TICK, MetricsRecorder())  # D-3 goes out at 10:00 in New York

    opens = datetime(2026, 3, 4, 8, 0, tzinfo=NEW_YORK)  # D-1 falls due on 4 March; the window opens at 08:00
    follow_ups = [
        datetime.fromisoformat(pipeline.cadence(loan_.loan_id)["next_contact_at"]) for loan_ in loans
    ]
    assert len(pipeline.jobs()["SmsQueue"]) == len(loans)
    assert min(follow_ups) >= opens
    assert max(follow_ups) < opens + span
    midnight = datetime(2026, 3, 4, 0, 0, tzinfo=NEW_YORK)
    _tick(pipeline, planner, midnight + timedelta(minutes=1), MetricsRecorder())
    recorded = [d["rule_id"] for loan_ in loans for d in pipeline.decisions(loan_.loan_id)]
    assert [r for r in recorded if r.startswith("window.")] == []
