"""The reply and receipt services on the in-memory fakes of tests/fakes.py: the rules, in milliseconds.

The same scenarios end to end on moto (the handlers, the template's tables and topics) are in
tests/integration/test_inbound.py, test_consent_races.py and test_receipts.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from dunning.adapters.consent import CONFIRMATION_AMBIGUOUS, CONFIRMATION_SENT
from dunning.adapters.messaging import FailureKind
from dunning.inbound import CLAIM_TIMEOUT, ConfirmationOwed, InboundService, Intent, LenderContact, reply_text
from dunning.observability import MetricsRecorder
from dunning.receipts import PERMANENT, REPEATED, Receipt, ReceiptsService
from dunning_local import lambda_events as ev
from tests.fakes import FakeAttention, FakeLedger, FakeLender, FakeMessaging, FakeStateStore

INBOUND_TOPIC = "arn:aws:sns:us-east-1:123456789012:dunning-inbound"
OUR_NUMBER = "+18885550100"
PHONE = "+12025550142"
STOP_AT = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 23:00 in New York
LENDER = LenderContact(name="Example Lending", help_phone="+1 202 555 0100", help_url="https://example.com")


@dataclass
class Replies:
    """The inbound service on fakes: one borrower (two with ``shared``) on PHONE, one active loan each."""

    lender: FakeLender = field(default_factory=FakeLender)
    state: FakeStateStore = field(default_factory=FakeStateStore)
    ledger: FakeLedger = field(default_factory=FakeLedger)
    messaging: FakeMessaging = field(default_factory=FakeMessaging)
    attention: FakeAttention = field(default_factory=FakeAttention)
    metrics: MetricsRecorder = field(default_factory=MetricsRecorder)

    def __post_init__(self) -> None:
        self.service = InboundService(
            lender=self.lender,
            cadence=self.state,
            contacts=self.state,
            consents=self.state,
            ledger=self.ledger,
            messaging=self.messaging,
            attention=self.attention,
            profile=LENDER,
            inbound_topic_arn=INBOUND_TOPIC,
            origination_identity=OUR_NUMBER,
            pause=timedelta(days=3),
            clock=lambda: STOP_AT,
        )

    def borrower(self, borrower_id: str, loan_id: str) -> None:
        self.lender.borrowers[borrower_id] = {"borrower_id": borrower_id, "phone": PHONE}
        self.lender.loans[loan_id] = {"loan_id": loan_id, "borrower_id": borrower_id, "status": "ACTIVE"}
        # Taken out of the due-index by the opt-out: due far ahead until something re-plans it.
        self.state.cadence[loan_id] = {"next_contact_at": "2026-04-01T00:00:00Z"}

    def reply(self, body: str, at: datetime, inbound_id: str) -> int:
        payload = ev.inbound_sms(PHONE, OUR_NUMBER, body, inbound_id=inbound_id)
        return self.service.process(ev.sns_event(INBOUND_TOPIC, payload, at), self.metrics)

    def opted_out(self, borrower_id: str) -> bool:
        return self.state.read_contact(borrower_id, PHONE).sms_opted_out


@pytest.fixture
def replies() -> Replies:
    world = Replies()
    world.borrower("B-1", "L-1")
    return world


def test_a_stop_then_a_start_leave_the_number_opted_in_and_each_is_confirmed_once(replies: Replies) -> None:
    replies.reply("STOP", STOP_AT, "in-stop")
    assert replies.opted_out("B-1")
    replies.reply("START", STOP_AT + timedelta(minutes=5), "in-start")
    assert not replies.opted_out("B-1")
    confirmations = [reply_text(i, LENDER, chinese=False) for i in (Intent.STOP, Intent.START)]
    assert [s.text for s in replies.messaging.sent] == confirmations
    # The opt-out had taken the loan out of the due-index: the START plans it again now.
    assert replies.state.cadence["L-1"]["next_contact_at"] == "2026-03-02T04:05:00Z"


def test_a_start_that_arrives_after_a_later_stop_changes_nothing(replies: Replies) -> None:
    replies.reply("STOP", STOP_AT + timedelta(minutes=5), "in-stop")
    replies.reply("START", STOP_AT, "in-start-delayed")
    assert replies.opted_out("B-1")
    assert len(replies.messaging.sent) == 1
    assert replies.metrics.total("ConsentChangeIgnored") == 1
    assert replies.state.cadence["L-1"]["next_contact_at"] == "2026-04-01T00:00:00Z"


def test_a_redelivered_stop_sends_no_second_confirmation(replies: Replies) -> None:
    replies.reply("STOP", STOP_AT, "in-stop")
    replies.reply("STOP", STOP_AT, "in-stop")
    assert len(replies.messaging.sent) == 1
    assert len(replies.ledger.of_type("INBOUND")) == 1


def test_a_confirmation_sns_refuses_for_now_is_sent_by_the_retry_and_only_once(replies: Replies) -> None:
    replies.messaging.refuse(FailureKind.RETRYABLE)
    with pytest.raises(ConfirmationOwed):
        replies.reply("STOP", STOP_AT, "in-stop")
    assert replies.opted_out("B-1")
    assert replies.messaging.sent == []
    replies.reply("STOP", STOP_AT, "in-stop")  # Lambda retries the event
    assert len(replies.messaging.sent) == 1
    assert replies.state.confirmation(PHONE, "in-stop") is not None
    assert (replies.state.confirmation(PHONE, "in-stop") or {})["status"] == CONFIRMATION_SENT
    assert replies.state.owed_confirmations() == []


def test_a_confirmation_sns_may_have_taken_is_recorded_ambiguous_and_never_sent_again(
    replies: Replies,
) -> None:
    replies.messaging.refuse(FailureKind.UNKNOWN)
    replies.reply("STOP", STOP_AT, "in-stop")
    replies.reply("STOP", STOP_AT, "in-stop")
    assert replies.messaging.sent == []
    assert (replies.state.confirmation(PHONE, "in-stop") or {})["status"] == CONFIRMATION_AMBIGUOUS


def test_the_sweep_records_a_dead_claim_ambiguous_then_sends_it_once_past_the_receipt_horizon(
    replies: Replies,
) -> None:
    replies.state.record_consent(
        PHONE,
        opted_out=True,
        at=STOP_AT,
        source="sms-reply",
        reason="stop",
        inbound_id="in-stop",
        borrower_ids=["B-1"],
        confirmation={"intent": "STOP", "chinese": False, "origin": OUR_NUMBER},
    )
    assert replies.state.claim_confirmation(PHONE, "in-stop", STOP_AT) is not None  # then the holder died
    sweep = replies.service.confirmer.sweep
    assert sweep(STOP_AT + timedelta(minutes=5), replies.metrics) == {}
    assert sweep(STOP_AT + CLAIM_TIMEOUT + timedelta(minutes=1), replies.metrics) == {"AMBIGUOUS": 1}
    assert replies.messaging.sent == []
    assert len(replies.state.owed_confirmations()) == 1  # kept: a receipt may still prove it went out
    horizon = replies.service.confirmer.receipt_horizon
    assert sweep(STOP_AT + horizon + timedelta(minutes=1), replies.metrics) == {"SENT": 1}
    assert len(replies.messaging.sent) == 1
    assert replies.state.owed_confirmations() == []
    assert sweep(STOP_AT + 3 * horizon, replies.metrics) == {}
    assert len(replies.messaging.sent) == 1


def test_a_wrong_number_blocks_every_borrower_on_it_and_texts_nobody(replies: Replies) -> None:
    replies.borrower("B-2", "L-2")
    replies.reply("wrong number, this isn't Ana's phone", STOP_AT, "in-wrong")
    assert replies.opted_out("B-1")
    assert replies.opted_out("B-2")
    assert replies.messaging.sent == []
    assert replies.attention.types() == ["inbound.wrong_number"]


def test_a_dispute_stops_collection_on_the_borrowers_active_loans_and_tells_a_person(
    replies: Replies,
) -> None:
    replies.lender.loans["L-PAID"] = {"loan_id": "L-PAID", "borrower_id": "B-1", "status": "PAID"}
    replies.reply("I don't owe this", STOP_AT, "in-dispute")
    assert replies.state.read_contact("B-1", PHONE).disputed_loans == {"L-1"}
    assert [d["pk"] for d in replies.ledger.of_type("DISPUTE")] == ["LOAN#L-1"]
    assert replies.attention.types() == ["inbound.dispute"]
    assert not replies.opted_out("B-1")


def test_free_text_pauses_the_borrower_without_a_reply(replies: Replies) -> None:
    replies.reply("paid", STOP_AT, "in-paid")
    assert replies.state.read_contact("B-1", PHONE).paused_until == STOP_AT + timedelta(days=3)
    assert replies.messaging.sent == []
    assert replies.attention.types() == ["inbound.free_text"]


def test_help_is_answered_with_the_lenders_contacts_and_changes_no_consent(replies: Replies) -> None:
    replies.reply("HELP", STOP_AT, "in-help")
    assert [s.text for s in replies.messaging.sent] == [reply_text(Intent.HELP, LENDER, chinese=False)]
    assert replies.state.consents == {}


# ---- receipts ---------------------------------------------------------------------------------------

SENT_AT = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


@dataclass
class Receipts:
    """The receipts service on fakes, with a MESSAGE in the ledger per sent message."""

    state: FakeStateStore = field(default_factory=FakeStateStore)
    ledger: FakeLedger = field(default_factory=FakeLedger)
    metrics: MetricsRecorder = field(default_factory=MetricsRecorder)

    def __post_init__(self) -> None:
        self.service = ReceiptsService(
            state=self.state,
            ledger=self.ledger,
            log_groups=frozenset(),
            delivery_events_topic_arn="",
            hard_failure_threshold=3,
        )

    def sent(self, message_id: str, *, counted: bool = False) -> None:
        fields: dict[str, object] = {
            "borrower_id": "B-1",
            "contact_point": PHONE,
            "channel": "sms",
            "status": "SENT",
        }
        if counted:
            fields["failures_counted"] = True
        self.ledger.write([self.ledger.message_op(message_id, fields, SENT_AT)])

    def receipt(self, message_id: str, minutes: int, *, failure: str | None) -> None:
        at = SENT_AT + timedelta(minutes=minutes)
        one = Receipt(message_id, failure is None, at, "sns-sms", failure_kind=failure)
        self.service.apply([one], self.metrics)

    def unusable(self) -> frozenset[str]:
        return self.state.read_contact("B-1", PHONE).unusable


def test_a_permanent_failure_marks_the_number_unusable_at_once() -> None:
    receipts = Receipts()
    receipts.sent("m-1")
    receipts.receipt("m-1", 1, failure=PERMANENT)
    assert receipts.unusable() == {PHONE}
    assert receipts.metrics.total("ContactPointUnusable") == 1


def test_repeated_failures_mark_the_number_unusable_at_the_threshold_only() -> None:
    receipts = Receipts()
    for n in range(3):
        receipts.sent(f"m-{n}")
        receipts.receipt(f"m-{n}", 1, failure=REPEATED)
        assert (PHONE in receipts.unusable()) == (n == 2), f"after failure {n + 1}"


def test_a_delivery_after_counted_failures_resets_the_count() -> None:
    receipts = Receipts()
    for n in range(2):
        receipts.sent(f"m-{n}")
        receipts.receipt(f"m-{n}", 1, failure=REPEATED)
    receipts.sent("m-ok", counted=True)
    receipts.receipt("m-ok", 2, failure=None)
    receipts.sent("m-late")
    receipts.receipt("m-late", 3, failure=REPEATED)
    assert receipts.unusable() == frozenset()
    assert receipts.metrics.total("HardFailuresReset") == 1


def test_a_receipt_for_an_unknown_message_is_kept_for_the_sweep() -> None:
    receipts = Receipts()
    receipts.receipt("m-unknown", 1, failure=None)
    assert [r["message_id"] for r in receipts.ledger.of_type("RECEIPT")] == ["m-unknown"]
    assert [p["sk"] for p in receipts.ledger.of_type("RECEIPT_POINTER")] == ["m-unknown"]
