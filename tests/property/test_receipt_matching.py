"""Receipts of unknown id against the confirmations in doubt on one number (dunning.receipt_matching),
through ``settle_confirmation_by_receipt`` and the consent registry's own calls, on the in-memory fake
of tests/fakes.py (the same calls on moto run in tests/property/test_state_machine.py's replays).

The invariants: a confirmation settled by receipts truly reached SNS, and no two confirmations are
given one message id; when nothing but confirmations went out, each of them published, every one of
them is settled once the receipts are in, whatever their order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.adapters.consent import (
    CONFIRMATION_AMBIGUOUS,
    CONFIRMATION_CLAIMED,
    CONFIRMATION_FAILED,
    CONFIRMATION_SENT,
)
from dunning.adapters.messaging import FailureKind
from dunning.inbound import Confirmer, LenderContact
from dunning.items import parse_iso_utc
from dunning.observability import MetricsRecorder
from dunning.receipt_matching import PUBLISH_DEADLINE, RECEIPT_WINDOW
from dunning.receipts import settle_confirmation_by_receipt
from tests.fakes import FakeMessaging, FakeStateStore

PHONE = "+12025550142"
HOUR = timedelta(hours=1)
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)

# What became of one reply's Publish: its id known, SNS took it but the id was lost (a lost response or
# an invocation that died right after), SNS refused it, or the invocation died before it.
KNOWN, LOST, REFUSED, DIED = "known", "lost", "refused", "died"


@dataclass(frozen=True)
class Attempt:
    confirmation: bool  # a STOP/START confirmation, or a HELP answer
    gap_ms: int  # after the attempt before it (two at least: SNS stamps to the millisecond)
    outcome: str
    publish_ms: int  # its Publish's stamp after its claim or announcement


@dataclass(frozen=True)
class Published:
    key: str
    message_id: str
    stamp: datetime
    confirmation: bool


def _ms(moment: datetime) -> datetime:
    """SNS stamps its delivery-status log to the millisecond."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _run(attempts: list[Attempt], *, turns: bool = True) -> tuple[FakeStateStore, list[Published]]:
    """Each attempt as the inbound service makes it: a confirmation is owed, claimed (when its number's
    confirmation turn is free: a blocked one is claimed again once the turn runs out, as Lambda's retry
    does), announced on the others in doubt, published, then settled and told apart by id; a HELP answer
    is announced, published and told apart. ``turns=False``: entries as an older version wrote them,
    with no turn. Returns the registry and what SNS accepted."""
    state = FakeStateStore()
    published: list[Published] = []
    changes = 0
    at = T0
    for n, attempt in enumerate(attempts):
        at += timedelta(milliseconds=attempt.gap_ms, microseconds=n)
        key = f"in-{n}"
        if attempt.confirmation:
            # Consent is ordered to the second: each change a second apart, before any claim.
            state.record_consent(
                PHONE,
                opted_out=changes % 2 == 0,
                at=T0 - timedelta(seconds=len(attempts) - n),
                source="sms",
                reason="stop" if changes % 2 == 0 else "start",
                inbound_id=key,
                borrower_ids=["B-1"],
                confirmation={"intent": "stop"},
            )
            if state.claim_confirmation(PHONE, key, at) is None:
                at = parse_iso_utc(state.consents[PHONE]["confirming_until"]) + timedelta(milliseconds=1)
                assert state.claim_confirmation(PHONE, key, at) is not None
            if not turns:
                state.consents[PHONE].pop("confirming_by")
            changes += 1
        # One reply after another: each Publish is over before the next reply is handled.
        ends = at + timedelta(milliseconds=attempts[n + 1].gap_ms) if n + 1 < len(attempts) else at + HOUR
        stamp = _ms(min(at + timedelta(milliseconds=attempt.publish_ms), ends - timedelta(milliseconds=1)))
        announced = state.note_other_reply(PHONE, key, at)
        message_id = f"msg-{n}"
        if attempt.outcome in (KNOWN, LOST):
            published.append(Published(key, message_id, stamp, attempt.confirmation))
        if attempt.outcome == KNOWN:
            if attempt.confirmation:
                state.settle_confirmation(PHONE, key, CONFIRMATION_SENT, stamp, message_id=message_id)
            state.note_other_reply(PHONE, key, at, message_id, announced)
        elif attempt.outcome == REFUSED:
            state.note_other_reply(PHONE, key, at, "", announced)
            if attempt.confirmation:
                state.settle_confirmation(PHONE, key, CONFIRMATION_FAILED, stamp, code="Invalid")
        elif attempt.outcome == LOST and attempt.confirmation:
            state.settle_confirmation(PHONE, key, CONFIRMATION_AMBIGUOUS, stamp, code="timeout")
    return state, published


attempts = st.lists(
    st.builds(
        Attempt,
        confirmation=st.booleans(),
        gap_ms=st.sampled_from([2, 5, 40, 900, 20_000, 200_000, 400_000]),
        outcome=st.sampled_from([KNOWN, LOST, REFUSED, DIED]),
        publish_ms=st.integers(min_value=1, max_value=20_000),
    ),
    min_size=1,
    max_size=6,
)


def _deliver(state: FakeStateStore, receipts: list[Published]) -> None:
    for receipt in receipts:
        settle_confirmation_by_receipt(
            state, PHONE, receipt.message_id, receipt.stamp, receipt.stamp + timedelta(seconds=30)
        )


@settings(max_examples=400, deadline=None)
@given(attempts=attempts, turns=st.booleans(), data=st.data())
def test_a_confirmation_settled_by_receipts_reached_sns_and_has_its_own_id(
    attempts: list[Attempt], turns: bool, data: st.DataObject
) -> None:
    state, published = _run(attempts, turns=turns)
    order = data.draw(st.permutations(published), label="receipts")
    again = data.draw(st.lists(st.sampled_from(published), max_size=3), label="again") if published else []
    _deliver(state, [*order, *again])
    entries = state.confirmations_of(PHONE)
    reached = {p.key for p in published if p.confirmation}
    settled = {k: e for k, e in entries.items() if e.get("code") == "receipt"}
    assert set(settled) <= reached, f"settled by receipts but never published: {set(settled) - reached}"
    ids = [e.get("message_id") for e in entries.values() if e.get("status") == CONFIRMATION_SENT]
    assert len(ids) == len(set(ids)), f"one message id given to two confirmations: {ids}"


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.sampled_from([2, 40, 900, 20_000, 200_000]), min_size=1, max_size=5),
    publish=st.lists(st.integers(min_value=1, max_value=20_000), min_size=5, max_size=5),
    lost=st.lists(st.booleans(), min_size=5, max_size=5),
    data=st.data(),
)
def test_confirmations_that_all_published_are_all_settled_whatever_the_receipts_order(
    gaps: list[int], publish: list[int], lost: list[bool], data: st.DataObject
) -> None:
    runs = [Attempt(True, gap, LOST if lost[n] else KNOWN, publish[n]) for n, gap in enumerate(gaps)]
    state, published = _run(runs)
    _deliver(state, data.draw(st.permutations(published), label="receipts"))
    entries = state.confirmations_of(PHONE)
    unsettled = {k: e["status"] for k, e in entries.items() if e["status"] != CONFIRMATION_SENT}
    assert unsettled == {}
    truth = {p.key: p.message_id for p in published}
    taken = {k: e.get("message_id") for k, e in entries.items()}
    # Each receipt is the one a matching gives: with windows that overlap, two confirmations may swap
    # ids, never share one.
    assert sorted(map(str, taken.values())) == sorted(truth.values())


def _two_in_doubt_then(receipts: list[str], *, turns: bool) -> dict[str, str]:
    """A START confirmation whose response was lost, then a STOP confirmation a second later whose
    invocation died after its Publish; the receipts in the order given."""
    runs = [Attempt(True, 1, LOST, 300), Attempt(True, 1_000, LOST, 300)]
    state, published = _run(runs, turns=turns)
    by_id = {p.message_id: p for p in published}
    _deliver(state, [by_id[i] for i in receipts])
    entries = state.confirmations_of(PHONE)
    return {k: f"{e['status']} {e.get('message_id', '')}".strip() for k, e in entries.items()}


def test_the_later_confirmations_receipt_is_not_taken_for_the_earlier_ones() -> None:
    # Without turns (entries of an older version) both windows hold the STOP's receipt: alone, it proves
    # neither (greedy settlement gave it to the START's entry, and the STOP's confirmation was sent again
    # after the horizon); with the START's, both are proven.
    assert _two_in_doubt_then(["msg-1"], turns=False) == {"in-0": "AMBIGUOUS", "in-1": "AMBIGUOUS"}
    assert _two_in_doubt_then(["msg-1", "msg-0"], turns=False) == {
        "in-0": "SENT msg-0",
        "in-1": "SENT msg-1",
    }
    assert _two_in_doubt_then(["msg-0", "msg-1"], turns=False) == {
        "in-0": "SENT msg-0",
        "in-1": "SENT msg-1",
    }
    # With turns the STOP's confirmation waits for the START's window to run out: its receipt fits its
    # own window only, and proves it alone.
    assert _two_in_doubt_then(["msg-1"], turns=True) == {"in-0": "AMBIGUOUS", "in-1": "SENT msg-1"}


def test_a_help_answered_twice_is_two_replies_that_may_explain_receipts() -> None:
    # A confirmation claimed and dead before its Publish; a HELP answer whose invocation died after its
    # Publish, then Lambda's retry answering again and noting the second answer's id.
    state, _ = _run([Attempt(True, 1, DIED, 1)])
    first_at = T0 + timedelta(seconds=2)
    state.note_other_reply(PHONE, "help-1", first_at)
    second_at = first_at + timedelta(seconds=1)
    announced = state.note_other_reply(PHONE, "help-1", second_at)
    state.note_other_reply(PHONE, "help-1", second_at, "answer-2", announced)
    # The first answer's receipt: it may be that answer's, so the confirmation stays in doubt.
    first = _ms(first_at + timedelta(milliseconds=200))
    assert settle_confirmation_by_receipt(state, PHONE, "answer-1", first, first) == []
    # The second answer's receipt is known: nothing.
    assert settle_confirmation_by_receipt(state, PHONE, "answer-2", second_at, second_at) == []
    assert state.confirmations_of(PHONE)["in-0"]["status"] == CONFIRMATION_CLAIMED


def test_an_entry_kept_by_an_older_version_counts_its_unknown_replies_and_receipts() -> None:
    # Entries written before announcements were kept per reply: a count, and the receipts without stamps.
    stamp = T0 + timedelta(seconds=1)
    state, _ = _run([Attempt(True, 1, LOST, 100)])
    state.consents[PHONE]["confirmations"]["in-0"]["other_reply_unknown"] = 1
    # One receipt for two possible sources (the confirmation, one answer of unknown time): not proven.
    assert settle_confirmation_by_receipt(state, PHONE, "new-1", stamp, stamp) == []
    # A second receipt in its window: one of the two must be the confirmation's.
    assert settle_confirmation_by_receipt(state, PHONE, "new-2", stamp, stamp) == ["in-0"]

    state, _ = _run([Attempt(True, 1, LOST, 100)])
    entry = state.consents[PHONE]["confirmations"]["in-0"]
    entry["other_reply_unknown"] = 1
    entry["receipts_seen"] = ["old-1"]
    assert settle_confirmation_by_receipt(state, PHONE, "new-1", stamp, stamp) == ["in-0"]


# ---- the number's confirmation turn and the publish deadline, through the Confirmer ------------------


class Clock:
    """A clock the test moves; every reading is a microsecond later than the one before."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        self.at += timedelta(microseconds=1)
        return self.at


def _confirmer(state: FakeStateStore, messaging: FakeMessaging, clock: Clock) -> Confirmer:
    lender = LenderContact(
        name="Example Lending", help_phone="+1 202 555 0100", help_url="https://example.com"
    )
    return Confirmer(state, messaging, lender, "+18885550100", clock)


def _owe(state: FakeStateStore, inbound_id: str, opted_out: bool, at: datetime) -> None:
    state.record_consent(
        PHONE,
        opted_out=opted_out,
        at=at,
        source="sms",
        reason="stop" if opted_out else "start",
        inbound_id=inbound_id,
        borrower_ids=["B-1"],
        confirmation={"intent": "STOP" if opted_out else "START"},
    )


def test_a_confirmation_waits_while_another_of_its_number_is_in_doubt_within_its_window() -> None:
    state, messaging, clock = FakeStateStore(), FakeMessaging(), Clock(T0)
    confirmer = _confirmer(state, messaging, clock)
    _owe(state, "start", False, T0 - timedelta(seconds=2))
    messaging.refuse(FailureKind.UNKNOWN)  # the START confirmation's response is lost
    assert confirmer.complete(PHONE, "start", MetricsRecorder()) == CONFIRMATION_AMBIGUOUS
    _owe(state, "stop", True, T0 - timedelta(seconds=1))
    # The START's confirmation holds the number's turn: the STOP's waits (Lambda's retry comes later).
    assert confirmer.complete(PHONE, "stop", MetricsRecorder()) == "OWED"
    assert messaging.sent == []
    clock.at = T0 + RECEIPT_WINDOW + timedelta(seconds=1)
    assert confirmer.complete(PHONE, "stop", MetricsRecorder()) == CONFIRMATION_SENT
    assert len(messaging.sent) == 1


def test_a_confirmation_whose_outcome_is_known_gives_the_turn_back_at_once() -> None:
    state, messaging, clock = FakeStateStore(), FakeMessaging(), Clock(T0)
    confirmer = _confirmer(state, messaging, clock)
    _owe(state, "start", False, T0 - timedelta(seconds=2))
    assert confirmer.complete(PHONE, "start", MetricsRecorder()) == CONFIRMATION_SENT
    _owe(state, "stop", True, T0 - timedelta(seconds=1))
    assert confirmer.complete(PHONE, "stop", MetricsRecorder()) == CONFIRMATION_SENT
    assert len(messaging.sent) == 2


def test_a_confirmation_not_published_within_the_deadline_of_its_claim_is_owed_again() -> None:
    state, messaging = FakeStateStore(), FakeMessaging()
    readings = iter([T0, T0 + PUBLISH_DEADLINE + timedelta(seconds=1)])
    later = T0 + timedelta(minutes=5)
    confirmer = _confirmer(state, messaging, Clock(later))
    confirmer.clock = lambda: next(readings, later)
    _owe(state, "stop", True, T0 - timedelta(seconds=1))
    # Slow writes between the claim and the Publish: its receipt could miss its window, so no Publish.
    assert confirmer.complete(PHONE, "stop", MetricsRecorder()) == "OWED"
    assert messaging.sent == []
    assert state.confirmation(PHONE, "stop")["code"] == "late"  # type: ignore[index]
    assert confirmer.complete(PHONE, "stop", MetricsRecorder()) == CONFIRMATION_SENT
