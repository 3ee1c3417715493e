"""Opt-outs, replies and at-most-once under the orderings and faults a hostile user would try (issue 10).

Each test drives the real handlers on moto through the fault matrix's harness (test_faults.py: SQS
delivered like SQS, every publish SNS accepts traced to its job, the same four invariants checked after
every case) and prints one ``MATRIX`` line for docs/reliability.md. Each is a named regression test of
one break: it fails on the code before the fix.

- Break 1: a START processed after a later STOP (delayed, or redelivered) must not opt back in.
- Break 2: an opt-out written between the sender's read and its claim must stop that send.
- Break 3: a Publish whose response is lost must not be sent twice.
- Break 4: a STOP confirmation must be sent exactly once, even when the invocation dies or SNS refuses.
- A wrong-number reply stops texts to that number for every borrower on it, until a new consent.
- A dispute reply suppresses collection for that debt until verification is recorded.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from moto.sns.exceptions import InternalError, SNSException
from moto.sns.models import SNSBackend
from pipeline_helpers import NY_PHONE, OUR_NUMBER, TICK, loan
from test_faults import SEND_AT, Matrix, SimulatedCrash, report, seeded
from test_faults import matrix as matrix  # the fault matrix's fixture, used through ``world``
from test_pipeline import role_allows

from bench.capacity import item_size
from dunning import inbound
from dunning.adapters import Adapters
from dunning.adapters.contact import ContactStore
from dunning.adapters.dynamo import to_wire
from dunning.models import Address, Borrower, Consent
from dunning_local import faults
from dunning_local import lambda_events as events

STOP_AT = TICK - timedelta(minutes=30)


def reply_event(
    m: Matrix, body: str, at: datetime, inbound_id: str, *, phone: str = NY_PHONE, previous: str = ""
) -> dict[str, Any]:
    payload = json.loads(events.inbound_sms(phone, OUR_NUMBER, body, inbound_id=inbound_id))
    payload["previousPublishedMessageId"] = previous
    message = json.dumps(payload, ensure_ascii=False)
    return events.sns_event(str(m.stack.topics["InboundTopic"]), message, at)


def reply(m: Matrix, body: str, at: datetime, inbound_id: str, **kw: Any) -> Any:
    """Deliver one reply to the InboundFunction (received at ``at``, handled a few seconds later)."""
    return m.harness.invoke("InboundFunction", reply_event(m, body, at, inbound_id, **kw), at)


def consent_item(m: Matrix, phone: str = NY_PHONE) -> dict[str, Any]:
    item: dict[str, Any] = m.harness.state.get_item(Key={"pk": f"PHONE#{phone}", "sk": "CONSENT"})["Item"]
    return item


def confirmations(m: Matrix, phone: str = NY_PHONE) -> list[str]:
    return [t for t in m.harness.sms_to(phone) if "unsubscribed" in t]


# The functions whose calls these replies and sweeps change (the sender's are test_pipeline.py's).
CHECKED_ROLES = frozenset({"InboundFunction", "ReconcileFunction", "IndexerFunction"})


def calls_not_allowed(m: Matrix) -> list[tuple[str, str, str]]:
    """Every (function, action, resource) the inbound, reconcile and indexer functions used that their
    role in template.yaml denies."""
    used = (g for g in m.harness.grants_used if g[0] in CHECKED_ROLES)
    return sorted(g for g in used if not role_allows(m.stack, *g))


def reminders(m: Matrix, loan_id: str) -> list[str]:
    return [a.message_id for a in m.accepted if a.job_id and a.job_id.startswith(f"{loan_id}#")]


@pytest.fixture
def world(request: pytest.FixtureRequest) -> Matrix:
    """The fault matrix's harness (test_faults.py), with its acceptance tracing and invariant checks."""
    m: Matrix = request.getfixturevalue("matrix")
    return m


@pytest.fixture
def attention(world: Matrix, aws: boto3.Session) -> Callable[[], list[dict[str, Any]]]:
    """The events raised on the AttentionTopic (an SQS queue subscribed to it), drained on each call."""
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="attention-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=world.stack.topics["AttentionTopic"], Protocol="sqs", Endpoint=arn)

    def drain() -> list[dict[str, Any]]:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(json.loads(message["Body"])["Message"]) for message in got]

    return drain


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """What the functions log, formatted as their log handler formats it."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            service = logging.getLogger("dunning")
            formatter = service.handlers[0].formatter if service.handlers else None
            lines.append(formatter.format(record) if formatter else record.getMessage())

    handler = Collect()
    logging.getLogger("dunning").addHandler(handler)
    yield lines
    logging.getLogger("dunning").removeHandler(handler)


# ---- break 1: a START processed after a later STOP --------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["a START received before the STOP, delivered after it", "a START redelivered after a later STOP"],
)
def test_a_start_processed_after_a_later_stop_does_not_opt_back_in(
    world: Matrix, aws: boto3.Session, case: str
) -> None:
    seeded(world, aws, extra=0)
    start_at = STOP_AT - timedelta(minutes=10)
    if case.startswith("a START redelivered"):
        reply(world, "START", start_at, "in-start")
        reply(world, "STOP", STOP_AT, "in-stop")
        # SNS delivers the START notification again, after the STOP.
        world.harness.invoke(
            "InboundFunction",
            reply_event(world, "START", start_at, "in-start"),
            STOP_AT + timedelta(minutes=5),
        )
    else:
        reply(world, "STOP", STOP_AT, "in-stop")
        world.harness.invoke(
            "InboundFunction",
            reply_event(world, "START", start_at, "in-start"),
            STOP_AT + timedelta(minutes=5),
        )
    consent = consent_item(world)
    assert consent["sms_opted_out"] is True
    assert consent["last_inbound_id"] == "in-stop"
    world.run_tick()
    assert reminders(world, "L-NY") == []
    assert len(confirmations(world)) == 1
    assert world.harness.sms_to(NY_PHONE)[-1] == confirmations(world)[0]  # nothing after the STOP
    measured = world.check()
    report(f"break 1: {case}", {**measured, "reminders_after_stop": 0})


# ---- break 2: an opt-out between the sender's read and its claim ----------------------------------


def crash_after_the_consent_write(session: boto3.Session, armed: threading.Event) -> Callable[[], None]:
    """While ``armed``, the invocation dies at its first State-table write after the one that wrote the
    consent item (a Lambda timing out right after recording the opt-out). Returns the unregister."""
    wrote_consent = {"done": False}

    def before(params: dict[str, Any], model: Any, **_: Any) -> None:
        if not armed.is_set() or model.name not in ("UpdateItem", "PutItem", "TransactWriteItems"):
            return
        if wrote_consent["done"]:
            raise SimulatedCrash("the inbound function died after writing the opt-out")
        request = json.dumps(params, default=str)
        if "PHONE#" in request and "CONSENT" in request:
            wrote_consent["done"] = True

    session.events.register("before-call.dynamodb.*", before)
    return lambda: session.events.unregister("before-call.dynamodb.*", before)


def test_an_opt_out_written_between_the_senders_read_and_its_claim_stops_that_send(
    world: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(world, aws, extra=0)
    world.tick(TICK)
    claim = ContactStore.claim
    armed = threading.Event()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    unregister = crash_after_the_consent_write(session, armed)
    crashed: list[str] = []

    def stop_arrives_first(self: ContactStore, state: Any, **kw: Any) -> Any:
        # The sender has read the contact and consent items; the STOP is written before its claim.
        if kw.get("loan_id") == "L-NY" and not crashed:
            armed.set()
            try:
                reply(world, "STOP", SEND_AT - timedelta(seconds=1), "in-stop")
            except SimulatedCrash as exc:
                crashed.append(str(exc))
            finally:
                armed.clear()
        return claim(self, state, **kw)

    monkeypatch.setattr(ContactStore, "claim", stop_arrives_first)
    world.send()
    unregister()
    assert crashed, "the opt-out was written and its invocation died"
    assert consent_item(world)["sms_opted_out"] is True
    assert reminders(world, "L-NY") == []
    outcome = world.harness.ledger.get_item(Key={"pk": "JOB#L-NY#D+7", "sk": "OUTCOME"})["Item"]
    assert outcome["status"] == "SUPPRESSED"
    assert outcome["rule_id"] == "consent.none_usable"
    # Lambda retries the STOP: the confirmation owed is sent then, once.
    reply(world, "STOP", SEND_AT - timedelta(seconds=1), "in-stop")
    assert len(confirmations(world)) == 1
    measured = world.check()
    report("break 2: an opt-out written between the sender's read and its claim", measured)


# ---- break 3: a Publish whose response is lost ------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Exception\\(SNSException\\)")
@pytest.mark.filterwarnings("ignore:Exception\\(InternalError\\)")
@pytest.mark.parametrize(
    "case",
    [
        "read timeout after SNS accepted",
        "read timeout after SNS accepted, later attempts throttled",
        "HTTP 500 after SNS accepted",
    ],
)
def test_a_publish_whose_response_is_lost_is_never_sent_twice(
    world: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    seeded(world, aws, extra=0)
    world.tick(TICK)
    publish = SNSBackend.publish  # the world's traced publish: acceptances are counted
    attempts = {"n": 0}

    def lossy(backend: Any, message: str, arn: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("phone_number") != NY_PHONE:
            return publish(backend, message, arn, *args, **kwargs)
        attempts["n"] += 1
        if attempts["n"] == 1:
            publish(backend, message, arn, *args, **kwargs)  # SNS accepted it; the answer never arrives
            if case.startswith("HTTP 500"):
                raise InternalError("Request could not be completed")
            raise ReadTimeoutError(endpoint_url="https://sns.us-east-1.amazonaws.com/")
        if "throttled" in case and attempts["n"] <= 3:
            raise SNSException("Throttling", "Rate exceeded")
        return publish(backend, message, arn, *args, **kwargs)

    monkeypatch.setattr(SNSBackend, "publish", lossy)
    world.send()
    world.send(SEND_AT + timedelta(minutes=5))  # anything SQS still holds is delivered again
    assert len(reminders(world, "L-NY")) == 1
    assert attempts["n"] == 1  # attempted once per claim, never re-published
    outcome = world.harness.ledger.get_item(Key={"pk": "JOB#L-NY#D+7", "sk": "OUTCOME"})["Item"]
    assert outcome["status"] == "AMBIGUOUS"
    contact = world.harness.state.get_item(Key={"pk": "BORROWER#B-NY", "sk": "CONTACT"})["Item"]
    claims: Any = contact["claims"]
    assert "L-NY#D+7" in claims  # the claim is kept
    # The sweep cannot tell (there is no message id): it stays AMBIGUOUS, on record, never re-sent.
    swept = world.reconcile(TICK + timedelta(hours=14))
    assert swept["ambiguous_open"] == 1
    assert swept["ambiguous_resolved"] == 0
    measured = world.check()
    report(f"break 3: {case}", {**measured, "publish_attempts": attempts["n"]})


# ---- break 4: a STOP confirmation can be lost ------------------------------------------------------


def test_a_stop_whose_invocation_dies_after_the_opt_out_is_confirmed_once_by_the_retry(
    world: Matrix, aws: boto3.Session
) -> None:
    seeded(world, aws, extra=0)
    session = boto3.DEFAULT_SESSION
    assert session is not None
    armed = threading.Event()
    armed.set()
    unregister = crash_after_the_consent_write(session, armed)
    with pytest.raises(SimulatedCrash):
        reply(world, "STOP", STOP_AT, "in-stop")
    unregister()
    assert consent_item(world)["sms_opted_out"] is True
    assert confirmations(world) == []
    # Lambda retries the event (twice at most); the confirmation is sent by the first retry only.
    reply(world, "STOP", STOP_AT, "in-stop")
    reply(world, "STOP", STOP_AT, "in-stop")
    assert len(confirmations(world)) == 1
    entry = consent_item(world)["confirmations"]["in-stop"]
    assert entry["status"] == "SENT"
    report("break 4: the STOP invocation dies right after the opt-out is written", {"confirmations": 1})


@pytest.mark.filterwarnings("ignore:Exception\\(SNSException\\)")
def test_a_throttled_stop_confirmation_is_sent_once_by_the_retry(world: Matrix, aws: boto3.Session) -> None:
    seeded(world, aws, extra=0)
    # The invocation fails (after recording everything) so that Lambda retries the event.
    with (
        faults.injected(1.0, seed=11, operations={faults.SNS_PUBLISH}) as stats,
        pytest.raises(Exception, match="confirmation"),
    ):
        reply(world, "STOP", STOP_AT, "in-stop")
    assert consent_item(world)["sms_opted_out"] is True
    assert confirmations(world) == []
    assert consent_item(world)["confirmations"]["in-stop"]["status"] == "OWED"
    reply(world, "STOP", STOP_AT, "in-stop")
    reply(world, "STOP", STOP_AT + timedelta(minutes=1), "in-stop-again")  # a second STOP: no confirmation
    assert len(confirmations(world)) == 1
    report("break 4: the STOP confirmation throttled, then retried", {"confirmations": 1}, stats.counts)


def test_a_stop_confirmation_with_no_answer_is_recorded_ambiguous_and_not_resent(
    world: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(world, aws, extra=0)
    publish = SNSBackend.publish

    def timeout(backend: Any, message: str, arn: str | None = None, *args: Any, **kwargs: Any) -> Any:
        publish(backend, message, arn, *args, **kwargs)
        raise ReadTimeoutError(endpoint_url="https://sns.us-east-1.amazonaws.com/")

    monkeypatch.setattr(SNSBackend, "publish", timeout)
    reply(world, "STOP", STOP_AT, "in-stop")
    monkeypatch.setattr(SNSBackend, "publish", publish)
    reply(world, "STOP", STOP_AT, "in-stop")  # a redelivery
    assert len(confirmations(world)) == 1
    assert consent_item(world)["confirmations"]["in-stop"]["status"] == "AMBIGUOUS"


# ---- replies: a wrong number ------------------------------------------------------------------------


def test_a_wrong_number_reply_stops_texts_to_that_number_for_every_borrower_until_a_new_consent(
    world: Matrix,
    aws: boto3.Session,
    attention: Callable[[], list[dict[str, Any]]],
    log_lines: list[str],
) -> None:
    seeded(world, aws, extra=0)
    # A second borrower uses the New York number (a relative, or the number's next subscriber).
    other = Borrower(
        borrower_id="B-NY2",
        first_name="Bo",
        time_zone="America/New_York",
        phone=NY_PHONE,
        address=Address(country="US", region="NY"),
        consent=Consent(sms=True),
    )
    world.harness.seed([loan("L-NY2", "B-NY2", "US-NY", date(2026, 3, 1))], [other])
    world.harness.index(TICK - timedelta(hours=1))
    reply(world, "Wrong number", STOP_AT, "in-wrong")
    consent = consent_item(world)
    assert consent["sms_opted_out"] is True
    assert consent["reason"] == "wrong_number"
    (event,) = attention()
    assert event["type"] == "inbound.wrong_number"
    assert event["borrower_ids"] == ["B-NY", "B-NY2"]
    world.run_tick()
    assert reminders(world, "L-NY") == []
    assert reminders(world, "L-NY2") == []
    assert world.harness.sms_to(NY_PHONE) == []  # no text back to someone who is not the borrower
    assert not any(NY_PHONE in line for line in log_lines)
    # A later pause-like lapse does not lift it: eight days on, still nothing.
    world.run_tick(TICK + timedelta(days=8), TICK + timedelta(days=8, minutes=1))
    assert reminders(world, "L-NY") == []
    # Only a new consent does: START from the number re-plans both loans.
    reply(world, "START", TICK + timedelta(days=8, hours=1), "in-start")
    world.run_tick(TICK + timedelta(days=8, hours=1), TICK + timedelta(days=8, hours=1, minutes=1))
    assert len(reminders(world, "L-NY")) == 1
    measured = world.check()
    assert calls_not_allowed(world) == []
    report("reply: wrong number (two borrowers on the number), then START", measured)


def test_a_wrong_number_written_between_the_senders_read_and_its_claim_stops_that_send(
    world: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(world, aws, extra=0)
    world.tick(TICK)
    claim = ContactStore.claim
    done: list[bool] = []

    def reply_arrives_first(self: ContactStore, state: Any, **kw: Any) -> Any:
        if kw.get("loan_id") == "L-NY" and not done:
            done.append(True)
            reply(world, "Wrong number", SEND_AT - timedelta(seconds=1), "in-wrong")
        return claim(self, state, **kw)

    monkeypatch.setattr(ContactStore, "claim", reply_arrives_first)
    world.send()
    assert done
    assert reminders(world, "L-NY") == []
    world.check()


# ---- replies: a dispute -------------------------------------------------------------------------------


def test_a_dispute_reply_suppresses_that_debt_until_verification_is_recorded(
    world: Matrix,
    aws: boto3.Session,
    attention: Callable[[], list[dict[str, Any]]],
    log_lines: list[str],
) -> None:
    seeded(world, aws, extra=0)
    # The borrower has a second loan, not disputed.
    world.harness.seed([loan("L-NY-B", "B-NY", "US-NY", date(2026, 2, 28))], [])
    world.harness.index(TICK - timedelta(hours=1))
    world.run_tick()
    first = world.harness.messages()["L-NY"]
    body = "I dispute this debt"
    reply(world, body, TICK + timedelta(hours=1), "in-dispute", previous=str(first["message_id"]))
    contact = world.harness.state.get_item(Key={"pk": "BORROWER#B-NY", "sk": "CONTACT"})["Item"]
    assert contact["dispute#L-NY"]["classification"] == "DISPUTE"
    assert "dispute#L-NY-B" not in contact
    (event,) = attention()
    assert event["type"] == "inbound.dispute"
    assert event["loan_ids"] == ["L-NY"]
    assert not any(body in line for line in log_lines)
    # Nine days later (past any 7-day pause) the disputed debt is still not collected; the other is.
    later = TICK + timedelta(days=9)
    world.run_tick(later, later + timedelta(minutes=1))
    assert len(reminders(world, "L-NY")) == 1  # only the one before the dispute
    assert len(reminders(world, "L-NY-B")) >= 1
    stops = [d for d in world.harness.decisions("L-NY") if d.get("rule_id") == "dispute.open"]
    assert stops
    # Verification sent: the operator closes the dispute, and collection may resume.
    adapters = Adapters.for_tables(
        loans_table=world.stack.tables["LoansTable"],
        borrowers_table=world.stack.tables["BorrowersTable"],
        state_table=world.stack.tables["StateTable"],
        ledger_table=world.stack.tables["LedgerTable"],
    )
    # A day and an hour on: the other loan's text at ``later`` holds the borrower's one-a-day cap till then.
    closed_at = later + timedelta(days=1, hours=1)
    assert inbound.close_dispute(adapters, "L-NY", at=closed_at, verification="validation notice mailed")
    assert not inbound.close_dispute(adapters, "L-NY", at=closed_at, verification="again")
    world.run_tick(closed_at, closed_at + timedelta(minutes=1))
    assert len(reminders(world, "L-NY")) == 2
    measured = world.check()
    assert calls_not_allowed(world) == []
    report("reply: dispute of one debt (by previousPublishedMessageId)", measured)


def test_a_dispute_reply_with_no_message_reference_covers_the_borrowers_open_loans(
    world: Matrix, aws: boto3.Session
) -> None:
    seeded(world, aws, extra=0)
    world.harness.seed([loan("L-NY-B", "B-NY", "US-NY", date(2026, 2, 28))], [])
    world.harness.index(TICK - timedelta(hours=1))
    reply(world, "I dispute this debt", STOP_AT, "in-dispute")
    contact = world.harness.state.get_item(Key={"pk": "BORROWER#B-NY", "sk": "CONTACT"})["Item"]
    assert sorted(k for k in contact if k.startswith("dispute#")) == ["dispute#L-NY", "dispute#L-NY-B"]
    world.run_tick()
    assert reminders(world, "L-NY") == []
    assert reminders(world, "L-NY-B") == []
    world.check()


@pytest.mark.filterwarnings("ignore:Exception\\(SNSException\\)")
def test_an_owed_confirmation_is_completed_once_by_the_reconcile_sweep(
    world: Matrix, aws: boto3.Session
) -> None:
    seeded(world, aws, extra=0)
    with (
        faults.injected(1.0, seed=12, operations={faults.SNS_PUBLISH}),
        pytest.raises(inbound.ConfirmationOwed),
    ):
        reply(world, "STOP", STOP_AT, "in-stop")
    # Lambda's retries ran out (the event is in the AsyncDLQ): the daily sweep sends what is owed.
    swept = world.reconcile(STOP_AT + timedelta(hours=1))
    assert swept["confirmations"] == {"SENT": 1}
    assert len(confirmations(world)) == 1
    assert world.reconcile(STOP_AT + timedelta(hours=2))["confirmations"] == {}
    assert len(confirmations(world)) == 1
    assert calls_not_allowed(world) == []
    report(
        "break 4: the STOP confirmation owed after Lambda's retries, sent by the sweep", {"confirmations": 1}
    )


def test_a_confirmation_claimed_by_an_invocation_that_died_is_recorded_ambiguous_by_the_sweep(
    world: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(world, aws, extra=0)
    from dunning.adapters.messaging import Messaging

    send_sms = Messaging.send_sms

    def dies(self: Messaging, *args: Any, **kwargs: Any) -> str:
        raise SimulatedCrash("the inbound function died while publishing the confirmation")

    monkeypatch.setattr(Messaging, "send_sms", dies)
    with pytest.raises(SimulatedCrash):
        reply(world, "STOP", STOP_AT, "in-stop")
    monkeypatch.setattr(Messaging, "send_sms", send_sms)
    # Too recent to judge: the claim holder may still be publishing.
    assert world.reconcile(STOP_AT + timedelta(minutes=5))["confirmations"] == {}
    # Later it may or may not have gone out: recorded, and not sent while a receipt may still prove it.
    assert world.reconcile(STOP_AT + timedelta(minutes=30))["confirmations"] == {"AMBIGUOUS": 1}
    reply(world, "STOP", STOP_AT, "in-stop")
    assert confirmations(world) == []
    assert consent_item(world)["confirmations"]["in-stop"]["status"] == "AMBIGUOUS"


# ---- break 4: the doubt settled by SNS's own receipts ----------------------------------------------

# CONFIRMATION_RECEIPT_HORIZON_MINUTES's default in template.yaml.
HORIZON = timedelta(minutes=60)


def confirmation_receipt(world: Matrix, message_id: str, stamp: datetime, phone: str = NY_PHONE) -> Any:
    """The SMS delivery-status log record SNS writes for a message (stamped with its publish time)."""
    record = events.sms_delivery_record(message_id, phone, stamp, success=True, price=0.00581)
    return world.receipts([("SmsDeliveryLogGroup", record)], stamp + timedelta(minutes=2))


def reply_messages(world: Matrix, phone: str = NY_PHONE) -> list[str]:
    """The message ids SNS accepted for replies (not reminders) to ``phone``."""
    return [a.message_id for a in world.accepted if a.job_id is None and a.contact_point == phone]


def test_a_confirmation_claimed_by_an_invocation_that_died_before_publishing_is_sent_once_after_the_horizon(
    world: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(world, aws, extra=0)
    from dunning.adapters.messaging import Messaging

    send_sms = Messaging.send_sms

    def dies(self: Messaging, *args: Any, **kwargs: Any) -> str:
        raise SimulatedCrash("the inbound function died between the claim and the Publish")

    monkeypatch.setattr(Messaging, "send_sms", dies)
    with pytest.raises(SimulatedCrash):
        reply(world, "STOP", STOP_AT, "in-stop")
    monkeypatch.setattr(Messaging, "send_sms", send_sms)
    reply(world, "STOP", STOP_AT, "in-stop")  # Lambda's retry finds it claimed: sends nothing
    assert confirmations(world) == []
    assert world.reconcile(STOP_AT + timedelta(minutes=20))["confirmations"] == {"AMBIGUOUS": 1}
    # No receipt within the horizon: it never reached SNS, so the sweep sends it, once.
    swept = world.reconcile(STOP_AT + HORIZON + timedelta(minutes=1))
    assert swept["confirmations"] == {"SENT": 1}
    assert len(confirmations(world)) == 1
    assert world.reconcile(STOP_AT + 3 * HORIZON)["confirmations"] == {}
    assert len(confirmations(world)) == 1
    entry = consent_item(world)["confirmations"]["in-stop"]
    assert entry["status"] == "SENT"
    assert entry["message_id"] == reply_messages(world)[-1]
    assert calls_not_allowed(world) == []
    report(
        "break 4: the invocation dies after claiming the confirmation, before the Publish",
        {"confirmations": 1},
    )


def test_a_confirmation_whose_publish_response_was_lost_is_proven_by_its_receipt_and_not_resent(
    world: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(world, aws, extra=0)
    publish = SNSBackend.publish

    def timeout(backend: Any, message: str, arn: str | None = None, *args: Any, **kwargs: Any) -> Any:
        publish(backend, message, arn, *args, **kwargs)
        raise ReadTimeoutError(endpoint_url="https://sns.us-east-1.amazonaws.com/")

    monkeypatch.setattr(SNSBackend, "publish", timeout)
    reply(world, "STOP", STOP_AT, "in-stop")
    monkeypatch.setattr(SNSBackend, "publish", publish)
    assert consent_item(world)["confirmations"]["in-stop"]["status"] == "AMBIGUOUS"
    (accepted,) = reply_messages(world)
    claimed_at = datetime.fromisoformat(consent_item(world)["confirmations"]["in-stop"]["claimed_at"])
    confirmation_receipt(world, accepted, claimed_at)
    entry = consent_item(world)["confirmations"]["in-stop"]
    assert entry["status"] == "SENT"
    assert entry["message_id"] == accepted
    # Past the horizon: the sweep finds it settled (and drops its pointer), sends nothing.
    assert world.reconcile(STOP_AT + 3 * HORIZON)["confirmations"] == {"SENT": 1}
    assert world.reconcile(STOP_AT + 4 * HORIZON)["confirmations"] == {}
    confirmation_receipt(world, accepted, claimed_at)  # the receipt delivered twice
    assert len(confirmations(world)) == 1
    assert consent_item(world)["confirmations"]["in-stop"]["message_id"] == accepted
    report("break 4: the confirmation's Publish response lost, its receipt arrives", {"confirmations": 1})


def test_the_receipt_of_a_help_answer_is_not_taken_for_a_confirmation_in_doubt(
    world: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(world, aws, extra=0)
    from dunning.adapters.messaging import Messaging

    send_sms = Messaging.send_sms

    def dies(self: Messaging, *args: Any, **kwargs: Any) -> str:
        raise SimulatedCrash("the inbound function died between the claim and the Publish")

    monkeypatch.setattr(Messaging, "send_sms", dies)
    with pytest.raises(SimulatedCrash):
        reply(world, "STOP", STOP_AT, "in-stop")
    monkeypatch.setattr(Messaging, "send_sms", send_sms)
    # No confirmation came, so the borrower asks for HELP a minute later; the answer goes out.
    reply(world, "HELP", STOP_AT + timedelta(minutes=1), "in-help")
    (help_answer,) = reply_messages(world)
    confirmation_receipt(world, help_answer, STOP_AT + timedelta(minutes=1))
    assert consent_item(world)["confirmations"]["in-stop"]["status"] == "CLAIMED"
    assert world.reconcile(STOP_AT + HORIZON + timedelta(minutes=1))["confirmations"] == {"SENT": 1}
    assert len(confirmations(world)) == 1


@pytest.mark.parametrize(
    "case", ["a number with no consent item", "a confirmation already sent", "a receipt older than the claim"]
)
def test_a_receipt_for_an_unknown_message_settles_no_confirmation_it_cannot_prove(
    world: Matrix, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    seeded(world, aws, extra=0)
    phone = NY_PHONE
    if case == "a number with no consent item":
        phone = "+12025550142"
    elif case == "a confirmation already sent":
        reply(world, "STOP", STOP_AT, "in-stop")
    else:
        from dunning.adapters.messaging import Messaging

        def dies(self: Messaging, *args: Any, **kwargs: Any) -> str:
            raise SimulatedCrash("the inbound function died between the claim and the Publish")

        monkeypatch.setattr(Messaging, "send_sms", dies)
        with pytest.raises(SimulatedCrash):
            reply(world, "STOP", STOP_AT, "in-stop")
    before = world.harness.state.get_item(Key={"pk": f"PHONE#{phone}", "sk": "CONSENT"}).get("Item")
    assert confirmation_receipt(world, "not-ours-0002", STOP_AT - timedelta(minutes=5), phone) == {
        "receipts": 1
    }
    after = world.harness.state.get_item(Key={"pk": f"PHONE#{phone}", "sk": "CONSENT"}).get("Item")
    assert after == before


# ---- what closing the claim race costs (docs/benchmarks.md) -----------------------------------------


@pytest.mark.parametrize("sharing", [1, 3, 120])
def test_the_claim_race_is_paid_for_by_the_opt_out_not_the_send(
    world: Matrix, aws: boto3.Session, sharing: int
) -> None:
    seeded(world, aws, extra=0)
    others = [
        Borrower(
            borrower_id=f"B-SH{n:03d}",
            time_zone="America/New_York",
            phone=NY_PHONE,
            consent=Consent(sms=True),
        )
        for n in range(sharing - 1)
    ]
    world.harness.seed([], others)
    world.harness.index(TICK - timedelta(hours=1))
    transacted: list[int] = []

    def count_items(params: dict[str, Any], **_: Any) -> None:
        transacted.append(len(params["TransactItems"]))

    session = boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("provide-client-params.dynamodb.TransactWriteItems", count_items)
    before = world.harness.requests_of("InboundFunction")
    reply(world, "STOP", STOP_AT, "in-stop")
    session.events.unregister("provide-client-params.dynamodb.TransactWriteItems", count_items)
    stop = world.harness.requests_of("InboundFunction") - before
    # Every item written is under 1 KB: one unit a plain write, two a transactional one.
    sizes = [item_size(to_wire(i)) for i in world.harness.state.scan()["Items"]]
    assert max(sizes) < 1024
    plain_writes = stop["dynamodb.UpdateItem"] + stop["dynamodb.BatchWriteItem"] + stop["dynamodb.PutItem"]
    opt_out_units = 2 * sum(transacted) + plain_writes
    # The sends: one conditional UpdateItem of the borrower's contact item per claim, never a transaction
    # (the sender's other UpdateItems are the pacing buckets, RATE#<identity>, counted apart).
    contact_updates: list[str] = []

    def count_contact_updates(params: dict[str, Any], **_: Any) -> None:
        if str(params["Key"]["pk"]["S"]).startswith("BORROWER#"):
            contact_updates.append(str(params["Key"]["pk"]["S"]))

    session.events.register("provide-client-params.dynamodb.UpdateItem", count_contact_updates)
    world.send()
    world.run_tick()
    session.events.unregister("provide-client-params.dynamodb.UpdateItem", count_contact_updates)
    sender = world.harness.requests_of("SenderFunction")
    assert sender["dynamodb.TransactWriteItems"] == 0
    sent = len([a for a in world.accepted if a.job_id])
    assert sent > 0
    assert len(contact_updates) == sent
    # One transaction: the consent item, the confirmation pointer and up to 98 contact items; the rest of
    # the borrowers one UpdateItem each (plus the confirmation's claim and settlement).
    assert transacted == [2 + min(sharing, 98)]
    assert stop["dynamodb.UpdateItem"] == 2 + max(0, sharing - 98)
    print(
        f"\nBENCH opt-out shared by {sharing}: requests {dict(sorted(stop.items()))}, "
        f"transaction items {sum(transacted)}, write units {opt_out_units}; "
        f"sends {sent}: claim UpdateItems {len(contact_updates)} (1 unit each)"
    )


def test_a_number_shared_by_more_borrowers_than_one_transaction_holds_is_blocked_and_unblocked_for_all(
    world: Matrix, aws: boto3.Session
) -> None:
    seeded(world, aws, extra=0)
    sharing = [
        Borrower(
            borrower_id=f"B-SH{n:03d}",
            time_zone="America/New_York",
            phone=NY_PHONE,
            consent=Consent(sms=True),
        )
        for n in range(130)
    ]
    world.harness.seed([], sharing)
    everyone = {"B-NY"} | {b.borrower_id for b in sharing}

    def blocked() -> set[str]:
        contacts = world.harness.state.scan()["Items"]
        return {
            str(c["pk"]).removeprefix("BORROWER#")
            for c in contacts
            if c["sk"] == "CONTACT" and f"sms_block#{NY_PHONE}" in c
        }

    reply(world, "STOP", STOP_AT, "in-stop")
    assert blocked() == everyone
    reply(world, "START", STOP_AT + timedelta(minutes=5), "in-start")
    assert blocked() == set()
    assert consent_item(world)["sms_opted_out"] is False


@pytest.mark.parametrize("reply_body", ["Wrong number", "STOP"])
def test_a_new_consent_from_the_lender_lifts_a_wrong_number_block_but_never_a_stop(
    world: Matrix, aws: boto3.Session, reply_body: str
) -> None:
    seeded(world, aws, extra=0)
    reply(world, reply_body, STOP_AT, "in-reply")
    # The lender records the number's consent as withdrawn, then (the borrower confirmed the number and
    # consented again) as given.
    for sms, minutes in ((False, 10), (True, 20)):
        world.harness.borrowers.update_item(
            Key={"borrower_id": "B-NY"},
            UpdateExpression="SET consent = :c",
            ExpressionAttributeValues={":c": {"sms": sms}},
        )
        world.harness.index(STOP_AT + timedelta(minutes=minutes))
    world.run_tick()
    if reply_body == "STOP":
        assert consent_item(world)["sms_opted_out"] is True
        assert reminders(world, "L-NY") == []
    else:
        assert consent_item(world)["sms_opted_out"] is False
        assert consent_item(world)["reason"] == "lender_consent"
        assert len(reminders(world, "L-NY")) == 1
    assert calls_not_allowed(world) == []
    measured = world.check()
    report(f"reply: {reply_body}, then the lender records SMS consent again", measured)
