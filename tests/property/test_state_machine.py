"""The product's promises, checked after every step of random schedules over the real handlers on moto.

A hypothesis ``RuleBasedStateMachine`` drives a small book (three borrowers, two sharing one phone, four
loans in New York and Massachusetts; stateful_world.py) through random orders of: a planner tick (the
clock moves by 15 minutes or less), a sender run over what SmsQueue holds, a job published twice, a
Publish whose response is lost after SNS accepted it, a crash or a throttle before any AWS call of the
next invocation, STOP / START / HELP / free-text replies (also late, with an older received time, and
delivered twice), a STOP that lands between a sender's read and its claim (the two functions interleaved
AWS call by AWS call), delivery receipts (early, late, twice), the reconcile sweep and a payment. Each
clock step also brings SNS's delivery-status log of every message accepted before it (the stack logs
100 % of SMS deliveries, within minutes).

After every step each invariant is a named check whose message says which fact broke:

- ``no_reminder_after_opt_out``: no reminder SNS accepted for a number whose latest STOP/START, by the
  replies' own received time, was a STOP;
- ``one_message_per_step``: at most one message SNS accepted per (loan, cadence step);
- ``confirmations``: never more STOP confirmations for a number than times its registry entry turned to
  opted-out; exactly as many once the queues have drained, SNS's delivery-status logs of everything it
  accepted have arrived and reconcile ran before and after the confirmation receipt horizon;
- ``caps``: no cap of the applicable policies exceeded by what SNS accepted;
- ``nothing_escaped``: no handler raised out of its invocation (simulated crashes aside);
- ``jobs_terminal`` (after the drain that ends every schedule): every job a sender received has a MESSAGE
  or a terminal OUTCOME, or sits in a dead-letter queue with its RETRY reason.

What SNS accepted is read from moto's backend, each message traced to the function and the job running
when it was accepted. ``make test`` runs a bounded, derandomized number of schedules; ``make soak`` runs
SOAK_EXAMPLES of them (random seeds) and prints how many schedules and checks it made.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from stateful_world import (
    CY_PHONE,
    PHONES,
    SHARDS,
    SHARED_PHONE,
    Fault,
    World,
    borrowers,
    loans,
)

from dunning import zones
from dunning.inbound import Intent, lender_contact, reply_text
from dunning.jurisdictions import policy_for
from dunning.rules import load_rulebooks
from dunning.settings import ReconcileSettings
from dunning_local.audit import cap_violations, table_items
from dunning_local.stack import LocalStack, build_local_stack

SOAK_EXAMPLES = int(os.environ.get("SOAK_EXAMPLES", "0"))
CI_EXAMPLES = int(os.environ.get("STATE_MACHINE_EXAMPLES", "100"))
STEPS = int(os.environ.get("STATE_MACHINE_STEPS", "25"))
# Reconcile's CONFIRMATION_RECEIPT_HORIZON_MINUTES as the stack deploys it (its default).
RECEIPT_HORIZON = timedelta(
    minutes=int(ReconcileSettings.model_fields["confirmation_receipt_horizon_minutes"].default)
)
TERMINAL = frozenset({"SENT", "DELIVERED", "FAILED", "SUPPRESSED", "EXPIRED", "AMBIGUOUS"})

# make test: a fixed, derandomized set of schedules (cannot flake); make soak: fresh random ones.
CI = settings(
    max_examples=CI_EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
SOAK = settings(
    max_examples=SOAK_EXAMPLES or 1,
    stateful_step_count=STEPS,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Tally:
    """What a run explored: schedules (hypothesis examples), steps and invariant checks made."""

    schedules: int = 0
    steps: int = 0
    checks: int = 0
    failed: Counter[str] | None = None


TALLY = Tally()
WORLD: World | None = None

_PROFILE = lender_contact()
STOP_CONFIRMATIONS = frozenset(
    text for chinese in (False, True) if (text := reply_text(Intent.STOP, _PROFILE, chinese=chinese))
)
LOAN_OWNER = {loan.loan_id: loan.borrower_id for loan in loans()}
REPLIES = {
    "STOP": "STOP",
    "START": "START",
    "HELP": "HELP",
    "free text": "paid it yesterday, thanks",
}

faults_of = {
    function: st.one_of(
        st.none(),
        st.builds(
            Fault,
            function=st.just(function),
            kind=st.sampled_from(["crash", "throttle"]),
            at_call=st.integers(min_value=0, max_value=9),
        ),
    )
    for function in ("SenderFunction", "InboundFunction", "ReconcileFunction", "ReceiptsFunction")
}


def check(name: str, ok: bool, message: str) -> None:
    """One named invariant check, counted for the soak report."""
    TALLY.checks += 1
    assert ok, f"[{name}] {message}"


class DunningMachine(RuleBasedStateMachine):
    """Random schedules of the pipeline's events and faults; the invariants after every step."""

    def __init__(self) -> None:
        super().__init__()
        assert WORLD is not None
        self.world = WORLD
        self.world.reset()
        self.receipts_sent: list[tuple[int, bool, Any]] = []
        TALLY.schedules += 1

    # ---- time and the planner -----------------------------------------------------------------------

    @rule(minutes=st.integers(min_value=1, max_value=15))
    def tick(self, minutes: int) -> None:
        """The clock moves on (bringing SNS's delivery-status logs of what it accepted before); the
        Scheduler's tick plans every shard."""
        before = self.world.now
        self.world.now += timedelta(minutes=minutes)
        self.world.delivery_logs(before=before + timedelta(seconds=1))
        self.world.tick()
        self._step(f"tick +{minutes} min -> {self.world.now:%H:%M}Z")

    # ---- the sender ---------------------------------------------------------------------------------

    @rule(batch=st.integers(min_value=1, max_value=10), fault=faults_of["SenderFunction"])
    def run_sender(self, batch: int, fault: Fault | None) -> None:
        """A sender invocation over up to ``batch`` jobs, the next one dying or throttled if asked."""
        if fault is not None:
            self.world.arm(fault)
        self.world.deliver("SmsQueue", "SenderFunction", batch_size=batch)
        self.world.deliver("PushQueue", "SenderFunction", batch_size=batch)
        self.world.faults.clear()
        self._step(f"sender batch={batch} fault={fault}")

    @precondition(lambda self: bool(self.world.jobs_seen))
    @rule(data=st.data())
    def duplicate_job(self, data: st.DataObject) -> None:
        """A job the sender already saw is delivered again (SNS to SQS is at least once)."""
        job_id = data.draw(st.sampled_from(sorted(self.world.jobs_seen)), label="job")
        self.world.duplicate_job(job_id)
        self._step(f"duplicate job {job_id}")

    @rule(publish=st.integers(min_value=0, max_value=1))
    def lose_publish_response(self, publish: int) -> None:
        """SNS accepts the sender's ``publish``-th message, and the response never reaches the client."""
        self.world.arm(Fault("SenderFunction", "lose", publish))
        self.world.deliver("SmsQueue", "SenderFunction")
        self.world.faults.clear()
        self._step(f"sender, publish #{publish} response lost")

    # ---- borrowers' replies -------------------------------------------------------------------------

    @rule(
        phone=st.sampled_from(PHONES),
        kind=st.sampled_from(sorted(REPLIES)),
        late_minutes=st.sampled_from([0, 0, 0, 5, 30, 90, 240]),
        fault=faults_of["InboundFunction"],
        lose_confirmation=st.booleans(),
    )
    def reply(
        self, phone: str, kind: str, late_minutes: int, fault: Fault | None, lose_confirmation: bool
    ) -> None:
        """A borrower texts us; ``late_minutes`` > 0: delivered late, with its older received time."""
        world = self.world
        if fault is not None:
            world.arm(fault)
        elif lose_confirmation:
            world.arm(Fault("InboundFunction", "lose", 0))
        reply = world.new_reply(phone, REPLIES[kind], world.now - timedelta(minutes=late_minutes))
        world.deliver_reply(reply)
        world.faults.clear()
        self._step(f"reply {kind} from {phone} received {reply.received_at:%H:%M}Z fault={fault}")

    @precondition(lambda self: bool(self.world.replies_sent))
    @rule(data=st.data())
    def redeliver_reply(self, data: st.DataObject) -> None:
        """A reply delivered again (SNS redelivers), with its original id and received time."""
        reply = data.draw(st.sampled_from(self.world.replies_sent), label="reply")
        self.world.deliver_reply(reply)
        self._step(f"redeliver {reply.body!r} of {reply.received_at:%H:%M}Z ({reply.inbound_id})")

    @precondition(lambda self: bool(self.world.pending_async))
    @rule()
    def lambda_retries_a_failed_reply(self) -> None:
        """Lambda's own retry of an asynchronous invocation that failed."""
        self.world.retry_async()
        self._step("async retry of a reply")

    @rule(
        phone=st.sampled_from(PHONES),
        sender_calls=st.integers(min_value=1, max_value=3),
        inbound_calls=st.integers(min_value=1, max_value=6),
    )
    def stop_during_a_send(self, phone: str, sender_calls: int, inbound_calls: int) -> None:
        """A STOP handled while a sender runs: the sender makes ``sender_calls`` AWS calls (its read),
        the STOP ``inbound_calls``, then the sender finishes, then the STOP."""
        reply = self.world.new_reply(phone, "STOP", self.world.now)
        self.world.race(reply, sender_calls, inbound_calls)
        self._step(f"STOP from {phone} during a send (sender {sender_calls} calls, inbound {inbound_calls})")

    # ---- receipts, reconcile, payments --------------------------------------------------------------

    @precondition(lambda self: bool(self.world.accepted))
    @rule(
        data=st.data(),
        success=st.booleans(),
        fault=faults_of["ReceiptsFunction"],
    )
    def receipt(self, data: st.DataObject, success: bool, fault: Fault | None) -> None:
        """The carrier reports on a message SNS accepted (possibly before its MESSAGE is written: a
        sender that died after publishing, or late: any number of steps after it). Stamped as SNS stamps
        its SMS delivery-status log: with the publish time."""
        index = data.draw(st.integers(min_value=0, max_value=len(self.world.accepted) - 1), label="message")
        message = self.world.accepted[index]
        at = message.at
        if fault is not None:
            self.world.arm(fault)
        self.world.receipt(message, success=success, at=at)
        self.world.faults.clear()
        self.receipts_sent.append((index, success, at))
        self._step(f"receipt {'DELIVERED' if success else 'FAILED'} for message {index} at {at:%H:%M}Z")

    @precondition(lambda self: bool(self.receipts_sent))
    @rule(data=st.data())
    def repeat_receipt(self, data: st.DataObject) -> None:
        """A receipt delivered twice."""
        index, success, at = data.draw(st.sampled_from(self.receipts_sent), label="receipt")
        self.world.receipt(self.world.accepted[index], success=success, at=at)
        self._step(f"receipt for message {index} again")

    @rule(fault=faults_of["ReconcileFunction"])
    def reconcile(self, fault: Fault | None) -> None:
        if fault is not None:
            self.world.arm(fault)
        self.world.reconcile()
        self.world.faults.clear()
        self._step(f"reconcile fault={fault}")

    @rule(loan_id=st.sampled_from(sorted(LOAN_OWNER)))
    def pay(self, loan_id: str) -> None:
        """The lender marks a loan paid; the stream reaches the indexer."""
        self.world.pay(loan_id)
        self._step(f"pay {loan_id}")

    def _step(self, description: str) -> None:
        TALLY.steps += 1
        self.world.log.append(description)

    # ---- invariants after every step -----------------------------------------------------------------

    @invariant()
    def no_reminder_after_opt_out(self) -> None:
        for message in self.world.accepted:
            if message.function != "SenderFunction":
                continue
            check(
                "no_reminder_after_opt_out",
                not message.opted_out,
                f"reminder {message.job_id} accepted by SNS for {message.phone} at {message.at:%H:%M}Z, "
                f"when the latest STOP/START received from that number (by received time) was a STOP",
            )

    @invariant()
    def one_message_per_step(self) -> None:
        reminders = [m for m in self.world.accepted if m.function == "SenderFunction"]
        for message in reminders:
            check(
                "one_message_per_step",
                message.job_id is not None,
                f"SNS accepted a sender message ({message.message_id}) not traceable to a job",
            )
        per_step = Counter(m.job_id for m in reminders)
        for job_id, count in sorted(per_step.items(), key=str):
            check(
                "one_message_per_step",
                count <= 1,
                f"SNS accepted {count} messages for (loan, step) {job_id}",
            )

    @invariant()
    def confirmations(self) -> None:
        for phone in PHONES:
            sent = self._confirmations(phone)
            effective = self.world.opt_out_transitions.get(phone, 0)
            check(
                "confirmations",
                sent <= effective,
                f"{sent} STOP confirmations accepted by SNS for {phone}, "
                f"for {effective} effective opt-out(s) of that number",
            )

    @invariant()
    def caps(self) -> None:
        rulebooks = load_rulebooks()
        loan_of = {loan.loan_id: loan for loan in loans()}
        borrower_of = {b.borrower_id: b for b in borrowers()}
        policy_of = {
            loan_id: policy_for(loan, borrower_of[loan.borrower_id], rulebooks)
            for loan_id, loan in loan_of.items()
        }
        sends: dict[str, list[Any]] = {}
        for message in self.world.accepted:
            if message.function != "SenderFunction" or message.job_id is None:
                continue
            loan_id = message.job_id.split("#", 1)[0]
            sends.setdefault(LOAN_OWNER[loan_id], []).append((message.at, loan_id, "sms"))
        for borrower_id, theirs in sorted(sends.items()):
            loan = next(ln for ln in loan_of.values() if ln.borrower_id == borrower_id)
            primary = zones.candidate_zones(loan, borrower_of[borrower_id]).primary
            violations = cap_violations(theirs, policy_of, primary)
            check("caps", violations == [], f"caps exceeded for {borrower_id}: {violations}")

    @invariant()
    def nothing_escaped(self) -> None:
        check("nothing_escaped", self.world.escaped == [], f"a handler raised: {self.world.escaped}")

    # ---- the end of every schedule: drain, reconcile, final checks ---------------------------------

    def teardown(self) -> None:
        world = self.world
        world.faults.clear()
        while world.pending_async:
            world.retry_async(faults=False)
        for _ in range(3):
            world.deliver("SmsQueue", "SenderFunction", rounds=20)
            world.deliver("PushQueue", "SenderFunction", rounds=20)
        # The product has its chance: SNS's delivery logs of everything it accepted arrive, and reconcile
        # runs before and after the confirmation receipt horizon (what no receipt proved is sent then).
        world.delivery_logs()
        world.reconcile(faults=False)
        world.now += RECEIPT_HORIZON + timedelta(minutes=1)
        world.reconcile(faults=False)
        world.delivery_logs()
        self.no_reminder_after_opt_out()
        self.one_message_per_step()
        self.caps()
        self.nothing_escaped()
        for phone in PHONES:
            sent = self._confirmations(phone)
            effective = world.opt_out_transitions.get(phone, 0)
            check(
                "confirmations",
                sent == effective,
                f"after the drain and reconcile: {sent} STOP confirmation(s) accepted by SNS for {phone}, "
                f"for {effective} effective opt-out(s) of that number",
            )
        self._jobs_terminal()

    def _jobs_terminal(self) -> None:
        world = self.world
        ledger = table_items("123456789012", "us-east-1", world.stack.tables["LedgerTable"])
        terminal = {f"{i['loan_id']}#{i['step']}" for i in ledger if i.get("type") == "MESSAGE"}
        terminal |= {
            f"{i['loan_id']}#{i['step']}"
            for i in ledger
            if i.get("type") == "OUTCOME" and str(i.get("status")) in TERMINAL
        }
        retry = {f"{i['loan_id']}#{i['step']}" for i in ledger if i.get("sk") == "RETRY" and "loan_id" in i}
        dead = set()
        for queue in ("SmsDLQ", "PushDLQ"):
            for message in world.queued(queue):
                job = _job_of(message["Body"])
                if job is not None:
                    dead.add(job)
        waiting = {
            job
            for queue in ("SmsQueue", "PushQueue")
            for m in world.queued(queue)
            if (job := _job_of(m["Body"]))
        }
        for job_id in sorted(world.jobs_seen):
            check(
                "jobs_terminal",
                job_id not in waiting,
                f"job {job_id} still in its queue after the drain",
            )
            check(
                "jobs_terminal",
                job_id in terminal or (job_id in dead and job_id in retry),
                f"job {job_id} has no MESSAGE or terminal OUTCOME, and is not in a DLQ with its RETRY reason",
            )

    def _confirmations(self, phone: str) -> int:
        return sum(
            1
            for m in self.world.accepted
            if m.phone == phone and m.function != "SenderFunction" and m.text in STOP_CONFIRMATIONS
        )


def _job_of(body: str) -> str | None:
    import json

    try:
        data = json.loads(body)
        return f"{data['loan_id']}#{data['step']}"
    except (ValueError, KeyError, TypeError):
        return None


@pytest.fixture
def world(stack_small: LocalStack, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session(region_name="us-east-1")
    built = World(aws, stack_small)
    built.install()
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def stack_small(aws: boto3.Session) -> LocalStack:
    """template.yaml's resources with two due-index shards (a tick is two planner tasks, not sixteen)."""
    return build_local_stack(aws, parameters={"ShardCount": SHARDS})


def _run(world: World, run_settings: settings) -> float:
    global WORLD
    WORLD = world
    TALLY.schedules = TALLY.steps = TALLY.checks = 0
    started = time.monotonic()
    try:
        run_state_machine_as_test(DunningMachine, settings=run_settings)
    finally:
        WORLD = None
        # Printed on failure too: how far the run got (including hypothesis's shrinking replays).
        print(
            f"\nexplored {TALLY.schedules} schedules ({TALLY.steps} steps) and made {TALLY.checks} "
            f"invariant checks in {time.monotonic() - started:.0f} s"
        )
    return time.monotonic() - started


def test_every_invariant_holds_in_random_schedules(world: World) -> None:
    """A bounded, derandomized set of schedules (``make test``); each invariant is checked every step."""
    elapsed = _run(world, CI)
    print(
        f"\nSTATE MACHINE explored {TALLY.schedules} schedules, {TALLY.steps} steps, "
        f"{TALLY.checks} invariant checks in {elapsed:.0f} s"
    )
    assert TALLY.schedules >= 1


# ---- the shortest schedules the machine found on the code before issue 10's fixes, replayed ---------


def _replay(world: World, schedule: Any) -> list[str]:
    """Run ``schedule(machine)`` on a fresh schedule, then the drain; the broken invariants' messages."""
    global WORLD
    WORLD = world
    try:
        machine = DunningMachine()
        schedule(machine)
        machine.teardown()
    except AssertionError as exc:
        return [str(exc).splitlines()[0]]
    finally:
        WORLD = None
    return []


def test_found_a_publish_whose_response_is_lost_is_not_sent_again(world: World) -> None:
    """Break 3: botocore's retries re-published inside the same claim (two texts for L-ANA-1#D+1)."""

    def schedule(m: DunningMachine) -> None:
        m.tick(1)
        m.lose_publish_response(0)

    assert _replay(world, schedule) == []


def test_found_a_start_redelivered_or_late_after_a_stop_changes_nothing(world: World) -> None:
    """Break 1: a START delivered again after a later STOP, or a START older than the STOP delivered
    after it, re-opted the number in and the next tick sent a reminder."""

    def redelivered(m: DunningMachine) -> None:
        m.reply(SHARED_PHONE, "START", 0, None, False)
        m.tick(5)
        m.reply(SHARED_PHONE, "STOP", 0, None, False)
        m.world.deliver_reply(m.world.replies_sent[0])
        m.tick(15)
        m.run_sender(10, None)

    def late(m: DunningMachine) -> None:
        m.reply(SHARED_PHONE, "STOP", 0, None, False)
        m.reply(SHARED_PHONE, "START", 30, None, False)
        m.tick(15)
        m.run_sender(10, None)

    assert _replay(world, redelivered) == []
    assert _replay(world, late) == []


def test_found_a_stop_between_a_senders_read_and_its_claim_stops_the_send(world: World) -> None:
    """Break 2: the sender read the contact and consent items, the STOP was written, the claim (on the
    contact item's version only) still succeeded and the text went out; for every point the STOP can
    reach before the sender continues. The sender is stopped after its read (1 call) and after taking
    its send token (2 calls): a token taken between the claim and the Publish once let a STOP land
    after the claim (found by make soak on the number that no one shares)."""
    broken = {}
    for phone in PHONES:
        for sender_calls in (1, 2):
            for inbound_calls in range(1, 9):

                def schedule(
                    m: DunningMachine, p: str = phone, s: int = sender_calls, n: int = inbound_calls
                ) -> None:
                    m.tick(1)
                    m.stop_during_a_send(p, s, n)

                failures = _replay(world, schedule)
                if failures:
                    broken[(phone, sender_calls, inbound_calls)] = failures
    assert broken == {}


def test_found_a_stop_whose_invocation_dies_is_confirmed_exactly_once(world: World) -> None:
    """Break 4: the inbound invocation of a STOP dies before any of its AWS calls (or is throttled
    there); Lambda retries it and reconcile runs: one confirmation, whatever call it died at."""
    broken = {}
    for phone in PHONES:
        for kind in ("crash", "throttle"):
            for at_call in range(0, 10):

                def schedule(m: DunningMachine, p: str = phone, k: str = kind, n: int = at_call) -> None:
                    m.reply(p, "STOP", 0, Fault("InboundFunction", k, n), False)
                    if m.world.pending_async:
                        m.lambda_retries_a_failed_reply()
                    m.tick(15)
                    m.tick(15)

                failures = _replay(world, schedule)
                if failures:
                    broken[(phone, kind, at_call)] = failures
    assert broken == {}


def test_found_a_help_answer_in_doubt_before_a_stop_is_not_taken_for_its_confirmation(world: World) -> None:
    """Found by make soak: a HELP answer whose Publish response was lost (its message id unknown), then a
    STOP whose invocation dies after claiming its confirmation, before publishing it. The HELP answer's
    delivery receipt, stamped before the claim, must not settle the confirmation: one confirmation still
    goes out (reconcile sends it after the receipt horizon)."""
    broken = {}
    for at_call in range(0, 10):

        def schedule(m: DunningMachine, n: int = at_call) -> None:
            m.reply(SHARED_PHONE, "HELP", 0, None, True)
            answer = m.world.accepted[0]
            m.world.receipt(answer, success=True, at=answer.at)
            m.reply(SHARED_PHONE, "STOP", 0, Fault("InboundFunction", "crash", n), False)
            m.world.receipt(answer, success=True, at=answer.at)
            if m.world.pending_async:
                m.lambda_retries_a_failed_reply()
            m.tick(15)
            m.tick(15)

        failures = _replay(world, schedule)
        if failures:
            broken[at_call] = failures
    assert broken == {}


def test_found_a_help_answer_whose_invocation_dies_is_not_taken_for_a_confirmation(world: World) -> None:
    """Found by make soak: a STOP whose invocation dies after claiming its confirmation (before
    publishing it), then a HELP answered while that confirmation is in doubt, whose invocation dies
    after the answer's Publish (before it could note the answer's id). That answer's receipt, stamped
    after the claim, must not settle the confirmation: one confirmation still goes out."""
    broken = {}
    for at_call in range(0, 8):

        def schedule(m: DunningMachine, n: int = at_call) -> None:
            m.reply(CY_PHONE, "STOP", 0, Fault("InboundFunction", "crash", 5), False)
            m.reply(CY_PHONE, "HELP", 0, Fault("InboundFunction", "crash", n), False)

        failures = _replay(world, schedule)
        if failures:
            broken[at_call] = failures
    assert broken == {}


def test_found_a_later_confirmation_in_doubt_is_not_taken_for_an_earlier_ones(world: World) -> None:
    """Found by make soak: a STOP whose invocation dies after claiming its confirmation (before
    publishing it), then a later START whose confirmation's Publish response is lost. The START
    confirmation's receipt, stamped after the STOP's claim, must not settle the STOP's confirmation."""

    def schedule(m: DunningMachine) -> None:
        m.reply(SHARED_PHONE, "STOP", 90, Fault("InboundFunction", "crash", 6), False)
        m.reply(SHARED_PHONE, "START", 0, None, True)

    assert _replay(world, schedule) == []


def test_found_two_confirmations_in_doubt_on_one_number_are_each_settled_by_their_own_receipt(
    world: World,
) -> None:
    """Found by make soak: a START whose confirmation's Publish response is lost, then a STOP whose
    invocation dies at any of its calls (after its confirmation's Publish among them), Lambda's retry and
    reconcile. Two confirmations in doubt on one number and their receipts: the STOP's receipt must not
    settle the START's entry (greedy settlement did), or the STOP's confirmation goes out twice."""
    broken = {}
    for at_call in range(0, 12):

        def schedule(m: DunningMachine, n: int = at_call) -> None:
            m.reply(SHARED_PHONE, "STOP", 0, None, False)
            m.tick(1)
            m.reply(SHARED_PHONE, "START", 0, None, True)
            m.reply(SHARED_PHONE, "STOP", 0, Fault("InboundFunction", "crash", n), False)
            if m.world.pending_async:
                m.lambda_retries_a_failed_reply()
            m.tick(15)
            m.tick(15)

        failures = _replay(world, schedule)
        if failures:
            broken[at_call] = failures
    assert broken == {}


def test_found_a_receipt_that_fits_two_confirmations_never_has_to_be_guessed(world: World) -> None:
    """Found by make soak: a START (the number's first consent) whose invocation dies at any of its calls
    (after claiming its confirmation, before or after its Publish, among them), then a STOP whose
    confirmation's Publish response is lost. Had both been claimed within one receipt window, the STOP's
    receipt would fit both and prove neither, and the STOP confirmation would go out again after the
    horizon. A confirmation now waits for its number's turn: the STOP's is sent once the START's window
    has run out (Lambda's retry or the sweep), so every receipt fits one confirmation only."""
    broken = {}
    for at_call in range(0, 12):

        def schedule(m: DunningMachine, n: int = at_call) -> None:
            m.reply(CY_PHONE, "START", 0, Fault("InboundFunction", "crash", n), False)
            m.reply(CY_PHONE, "STOP", 0, None, True)

        failures = _replay(world, schedule)
        if failures:
            broken[at_call] = failures
    assert broken == {}


@pytest.mark.skipif(SOAK_EXAMPLES == 0, reason="make soak (SOAK_EXAMPLES=N) only")
def test_soak_every_invariant_holds_in_many_schedules(world: World) -> None:
    """``make soak``: SOAK_EXAMPLES random schedules; prints what it explored and how many checks it made."""
    elapsed = _run(world, SOAK)
    print(
        f"\nSOAK explored {TALLY.schedules} schedules ({TALLY.steps} steps) and made {TALLY.checks} "
        f"invariant checks in {elapsed:.0f} s"
    )
    assert TALLY.schedules >= SOAK_EXAMPLES


_ = (CY_PHONE, SHARED_PHONE)
