"""Candidate jurisdictions are monotone: a phone region that adds a rulebook never loosens a decision.

Each case is a borrower decided twice, with two fictional numbers of the same time zone (so the
candidate zones, the channels and the history are the same): the first number's region brings no
rulebook beyond the loan's and the address's (a New Jersey or upstate New York number, or one of the
loan's own province), the second one does (Boston, New York City, Washington, California, Quebec,
Ontario). Adding rules only restricts: a DEFER or STOP never becomes a SEND, and a DEFER is never moved
earlier. The one way a SEND can still appear is documented and checked: a rulebook that requires
consent the borrower has not given makes that channel unusable, so the step goes out on the strategy's
fallback channel (``channel.fallback``), whose caps may have room where the first channel's were full.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunning.engine import decide
from dunning.jurisdictions import candidate_jurisdictions, relation
from dunning.models import (
    Address,
    Borrower,
    Channel,
    Consent,
    ContactState,
    Decision,
    DecisionKind,
    Loan,
    PushEndpoint,
    SendRecord,
)
from dunning.rules import address_code, load_rulebooks
from dunning.strategy import load_strategies
from dunning.zones import phone_info

RULEBOOKS = load_rulebooks()
STRATEGIES = load_strategies()
PUSH = PushEndpoint(arn="arn:aws:sns:us-east-1:123456789012:endpoint/GCM/dunning/prop", platform="GCM")
STEPS = ("D-3", "D-1", "D+1", "D+3", "D+7", "D+15", "D+30")


@dataclass(frozen=True)
class Group:
    """Loans, addresses and numbers that share one time zone."""

    zone: str
    country: str
    currency: str
    loans: tuple[str, ...]
    addresses: tuple[str | None, ...]
    base: tuple[str, ...]  # area codes whose region adds no rulebook (for these loans and addresses)
    extra: tuple[str, ...]  # area codes whose region adds one


GROUPS = (
    Group(
        "America/New_York",
        "US",
        "USD",
        ("US", "US-MA", "US-NY-NYC"),
        (None, "NY", "NJ"),
        ("201", "203", "518", "302"),
        ("617", "212", "718", "917"),
    ),
    Group("America/Los_Angeles", "US", "USD", ("US", "US-WA"), (None, "CA"), ("503", "702"), ("206", "310")),
    Group("America/Toronto", "CA", "CAD", ("CA-ON",), (None, "ON"), ("416", "613"), ("514", "819")),
    Group("America/Toronto", "CA", "CAD", ("CA-QC",), (None, "QC"), ("514", "819"), ("416", "905")),
)


@dataclass(frozen=True)
class Case:
    loan: Loan
    base: Borrower
    extended: Borrower
    state: ContactState
    at: datetime


@st.composite
def cases(draw: st.DrawFn) -> Case:
    group = draw(st.sampled_from(GROUPS))
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 365 * 24 * 60)))
    due = at.date() - timedelta(days=draw(st.integers(-5, 40)))
    loan = Loan(
        loan_id="L-1",
        borrower_id="B-1",
        currency=group.currency,
        amount_due=Decimal("120.50"),
        due_date=due,
        jurisdiction=draw(st.sampled_from(group.loans)),
        product=draw(st.sampled_from(["default", "bnpl"])),
    )
    region = draw(st.sampled_from(group.addresses))
    suffix = draw(st.integers(100, 199))

    def borrower(area_code: str) -> Borrower:
        return Borrower(
            borrower_id="B-1",
            time_zone=draw_zone,
            address=Address(country=group.country, region=region) if region else None,
            phone=f"+1{area_code}5550{suffix}",
            push_endpoints=(PUSH,) if has_push else (),
            consent=consent,
            opt_outs=opt_outs,
        )

    draw_zone = draw(st.sampled_from([group.zone, None]))
    has_push = draw(st.booleans())
    consent = Consent(sms=draw(st.booleans()), push=draw(st.booleans()))
    opt_outs = draw(st.frozensets(st.sampled_from(list(Channel)), max_size=1))
    sends = tuple(
        SendRecord(
            at=at - timedelta(minutes=draw(st.integers(1, 10 * 24 * 60))),
            channel=draw(st.sampled_from(list(Channel))),
            loan_id=draw(st.sampled_from(["L-1", "L-2"])),
            step=draw(st.sampled_from(STEPS)),
        )
        for _ in range(draw(st.integers(0, 6)))
    )
    claimed = draw(st.frozensets(st.sampled_from(STEPS), max_size=4))
    state = ContactState(borrower_id="B-1", sends=sends, claims=frozenset(f"L-1#{s}" for s in claimed))
    base = borrower(draw(st.sampled_from(group.base)))
    extended = borrower(draw(st.sampled_from(group.extra)))
    return Case(loan, base, extended, state, at)


def _decide(case: Case, who: Borrower) -> Decision:
    return decide(case.loan, who, case.state, case.at, RULEBOOKS, STRATEGIES)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_adding_a_candidate_jurisdiction_never_turns_a_defer_or_stop_into_a_send(case: Case) -> None:
    small = candidate_jurisdictions(case.loan, case.base, RULEBOOKS)
    big = candidate_jurisdictions(case.loan, case.extended, RULEBOOKS)
    # The setting: same zones, and the second number only adds rulebooks (or none, when its region is
    # the address's).
    assert phone_info(case.base.phone or "").zones == phone_info(case.extended.phone or "").zones
    assert set(small.policy.jurisdictions) <= set(big.policy.jurisdictions)

    before, after = _decide(case, case.base), _decide(case, case.extended)

    if before.kind is DecisionKind.SEND:
        return
    new_consent = big.policy.consent_required - small.policy.consent_required
    switched = any(
        not (case.base.consent.sms if c is Channel.SMS else case.base.consent.push) for c in new_consent
    )
    if switched and after.kind is DecisionKind.SEND:
        # The only way out: the added rulebook's consent rule moved the step to the fallback channel.
        assert after.rule_id == "channel.fallback", (before, after)
        return
    assert after.kind is not DecisionKind.SEND, (before, after)
    if before.kind is DecisionKind.DEFER and after.kind is DecisionKind.DEFER and not switched:
        assert before.not_before is not None
        assert after.not_before is not None
        assert after.not_before >= before.not_before, (before, after)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_decision_records_the_phone_region_that_was_added(case: Case) -> None:
    decision = _decide(case, case.extended)
    phone = [j for j in decision.jurisdictions if j.source == "phone"]

    address = address_code(case.extended)
    implied = phone_info(case.extended.phone or "").regions
    assert [j.code for j in phone] == [r for r in implied if relation(r, address) != "agreeing"]
    assert all(j.rulebook == j.code for j in phone)
    assert decision.jurisdictions[0].source == "loan"


def test_the_groups_numbers_share_their_zone() -> None:
    for group in GROUPS:
        for area_code in (*group.base, *group.extra):
            assert phone_info(f"+1{area_code}5550142").zones == (group.zone,), area_code


def test_monotone_example_a_boston_number_defers_what_a_new_jersey_number_sends() -> None:
    at = datetime(2026, 3, 9, 16, tzinfo=UTC)
    loan = Loan(
        loan_id="L-1",
        borrower_id="B-1",
        currency="USD",
        amount_due=Decimal("50.00"),
        due_date=date(2026, 3, 2),
        jurisdiction="US",
    )
    texts = ContactState(
        borrower_id="B-1",
        sends=tuple(
            SendRecord(at=at - timedelta(days=d), channel=Channel.SMS, loan_id="L-1", step="D+1")
            for d in (2, 5)
        ),
    )

    def who(phone: str) -> Borrower:
        return Borrower(
            borrower_id="B-1", time_zone="America/New_York", phone=phone, consent=Consent(sms=True)
        )

    new_jersey = decide(loan, who("+12015550142"), texts, at, RULEBOOKS, STRATEGIES)
    boston = decide(loan, who("+16175550142"), texts, at, RULEBOOKS, STRATEGIES)

    assert new_jersey.kind is DecisionKind.SEND
    assert (boston.kind, boston.rule_id) == (DecisionKind.DEFER, "cap.borrower_7d")


def test_the_one_exception_a_consent_rule_moves_the_step_to_its_fallback_channel() -> None:
    # New York City requires consent to push; without it the D+3 push step goes out as a text. The
    # push the borrower got two hours ago fills the lender's 1-push-per-day cap, which the text does not
    # count: every rule of every applicable rulebook still holds for that SEND.
    at = datetime(2026, 3, 5, 16, tzinfo=UTC)
    loan = Loan(
        loan_id="L-1",
        borrower_id="B-1",
        currency="USD",
        amount_due=Decimal("50.00"),
        due_date=date(2026, 3, 2),
        jurisdiction="US",
    )
    pushed = ContactState(
        borrower_id="B-1",
        sends=(SendRecord(at=at - timedelta(hours=2), channel=Channel.PUSH, loan_id="L-2", step="D+1"),),
    )

    def who(phone: str) -> Borrower:
        return Borrower(
            borrower_id="B-1",
            time_zone="America/New_York",
            phone=phone,
            push_endpoints=(PUSH,),
            consent=Consent(sms=True, push=False),
        )

    new_jersey = decide(loan, who("+12015550142"), pushed, at, RULEBOOKS, STRATEGIES)
    manhattan = decide(loan, who("+12125550142"), pushed, at, RULEBOOKS, STRATEGIES)

    assert (new_jersey.kind, new_jersey.rule_id) == (DecisionKind.DEFER, "cap.push_1d")
    assert (manhattan.kind, manhattan.rule_id, manhattan.channel) == (
        DecisionKind.SEND,
        "channel.fallback",
        Channel.SMS,
    )
