"""Scenarios for ``dunning.engine.decide``: one per rulebook rule, cadence, channels, flags and bad data.

Each test is named after the rule it shows. Times are given as wall-clock time in the borrower's zone
where that is what the rule is about, and the expected instants are spelled out in UTC.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from engine_fixtures import (
    BOSTON_PHONE,
    CN_PHONE,
    GB_PHONE,
    IE_PHONE,
    IN_PHONE,
    LOS_ANGELES_PHONE,
    TORONTO_PHONE,
    borrower,
    claims,
    copy_rulebooks,
    loan,
    run,
    sent,
    state,
    utc,
    wall,
)
from pydantic import ValidationError

from dunning.models import (
    Address,
    Borrower,
    Channel,
    Consent,
    DecisionKind,
    Dispute,
    Loan,
    LoanFlags,
    LoanStatus,
    PromiseToPay,
)
from dunning.rules import load_rulebooks
from dunning.zones import to_us, wall_to_us, whereabouts

SEND, DEFER, STOP = DecisionKind.SEND, DecisionKind.DEFER, DecisionKind.STOP
MINUTE = timedelta(minutes=1)


# --- US federal and states ---------------------------------------------------------------------------


def test_us_ma_cap_borrower_7d_defers_until_the_older_text_leaves_the_window() -> None:
    ma = borrower(phone=BOSTON_PHONE, address=Address(country="US", region="MA"))
    history = state(
        sends=(sent(utc(2026, 3, 3, 15), step="D+1"), sent(utc(2026, 3, 6, 15), step="D+3")),
        claims=claims("D+1", "D+3"),
    )

    decision = run(loan(), ma, history, at=utc(2026, 3, 9, 16))

    assert decision.kind is DEFER
    assert decision.rule_id == "cap.borrower_7d"
    assert decision.not_before == utc(2026, 3, 10, 15)  # the 03-03 text + 7 days
    assert "940 CMR 7.04(1)(f)" in (decision.citation or "")
    assert "2 contact(s) in the last 7d" in decision.reason
    assert run(loan(), ma, history, at=utc(2026, 3, 10, 15) - MINUTE).kind is DEFER
    after = run(loan(), ma, history, at=utc(2026, 3, 10, 15))
    assert (after.kind, after.step, after.channel) == (SEND, "D+7", Channel.SMS)


def test_us_nyc_consent_without_electronic_consent_no_sms_or_push() -> None:
    nyc_loan = loan(jurisdiction="US-NY-NYC")
    no_consent = borrower(consent=Consent(sms=False, push=False))

    decision = run(nyc_loan, no_consent, at=utc(2026, 3, 9, 16))

    assert decision.kind is STOP
    assert decision.rule_id == "consent.none_usable"
    assert "no prior consent to texts" in decision.reason
    assert "no prior consent to electronic messages (push)" in decision.reason
    assert "6 RCNY 5-77" in (decision.citation or "")


def test_us_nyc_consent_for_push_only_sends_push_in_place_of_sms() -> None:
    decision = run(
        loan(jurisdiction="US-NY-NYC"), borrower(consent=Consent(push=True)), at=utc(2026, 3, 9, 16)
    )

    assert (decision.kind, decision.rule_id, decision.channel) == (SEND, "channel.fallback", Channel.PUSH)


def test_us_consent_sms_needs_tcpa_consent_but_push_does_not() -> None:
    push_only = borrower(consent=Consent(sms=False, push=False))

    decision = run(loan(), push_only, at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.channel) == (SEND, Channel.PUSH)
    assert "no prior consent to texts" in decision.reason


def test_us_window_stated_new_york_with_los_angeles_phone_gives_the_intersection() -> None:
    split = borrower(phone=LOS_ANGELES_PHONE)

    early = run(loan(), split, at=wall("America/New_York", 2026, 3, 10, 8, 30))
    late = run(loan(), split, at=wall("America/New_York", 2026, 3, 10, 21, 30))
    inside = run(loan(), split, at=wall("America/New_York", 2026, 3, 10, 16, 0))

    assert (early.kind, early.rule_id) == (DEFER, "window.quiet_hours")
    assert early.not_before == utc(2026, 3, 10, 15)  # 11:00 New York = 08:00 Los Angeles
    assert "America/Los_Angeles" in early.reason
    assert "05:30" in early.reason
    assert (late.kind, late.not_before) == (DEFER, utc(2026, 3, 11, 15))  # after 21:00 New York
    assert inside.kind is SEND


def test_us_window_spring_forward_0230_new_york_starts_at_the_transition(tmp_path: Path) -> None:
    # A window starting at 02:30 on 2026-03-08, a wall time New York skips: it opens at the jump (03:00 EDT).
    us = "code: US\nname: test\nwindow:\n  hours: '02:30-21:00'\n  citation: test window\n  verified: true\n"
    lender = (
        "code: lender\nname: test lender\n"
        "opt_out_keywords: {keywords: [STOP], citation: test, verified: true}\n"
        "max_sms_segments: {limit: 3, citation: test, verified: true}\n"
    )
    books = copy_rulebooks(tmp_path, {"US.yaml": us}, lender)
    rulebooks = load_rulebooks(books, tmp_path / "policy.yaml")
    ny = borrower(push_endpoints=())
    due = loan(due_date=date(2026, 3, 1))

    decision = run(due, ny, at=utc(2026, 3, 8, 6), rulebooks=rulebooks)  # 01:00 EST

    assert (decision.kind, decision.rule_id) == (DEFER, "window.quiet_hours")
    assert decision.not_before == utc(2026, 3, 8, 7)  # 03:00 EDT, the first instant after 02:30 exists
    assert run(due, ny, at=utc(2026, 3, 8, 7) - MINUTE, rulebooks=rulebooks).kind is DEFER
    assert run(due, ny, at=utc(2026, 3, 8, 7), rulebooks=rulebooks).kind is SEND


def test_us_window_on_spring_forward_night_defers_to_0800_daylight_time() -> None:
    # 01:30 EST on 2026-03-08; 02:30 does not exist that night. 08:00 is already EDT (12:00 UTC).
    decision = run(loan(due_date=date(2026, 3, 1)), at=utc(2026, 3, 8, 6, 30))

    assert (decision.kind, decision.rule_id) == (DEFER, "window.quiet_hours")
    assert decision.not_before == utc(2026, 3, 8, 12)


def test_zones_dst_edges_start_later_and_end_earlier() -> None:
    spring = date(2026, 3, 8)
    assert wall_to_us("America/New_York", spring, 150, True) == wall_to_us(
        "America/New_York", spring, 150, False
    )
    assert wall_to_us("America/New_York", spring, 150, True) == to_us(utc(2026, 3, 8, 7))
    autumn = date(2026, 11, 1)  # 01:30 happens twice in Los Angeles
    assert wall_to_us("America/Los_Angeles", autumn, 90, True) == to_us(utc(2026, 11, 1, 9, 30))
    assert wall_to_us("America/Los_Angeles", autumn, 90, False) == to_us(utc(2026, 11, 1, 8, 30))


def test_us_wa_window_unverified_0730_start_is_overridden_by_federal_0800() -> None:
    wa = borrower(
        phone="+12065550142", time_zone="America/Los_Angeles", address=Address(country="US", region="WA")
    )

    decision = run(loan(), wa, at=wall("America/Los_Angeles", 2026, 3, 10, 7, 45))

    assert (decision.kind, decision.rule_id) == (DEFER, "window.quiet_hours")
    assert decision.not_before == wall("America/Los_Angeles", 2026, 3, 10, 8, 0)


def test_us_window_quiet_hours_cites_reg_f_not_the_wider_lender_window() -> None:
    decision = run(at=wall("America/New_York", 2026, 3, 10, 7, 30))

    assert decision.rule_id == "window.quiet_hours"
    assert (decision.citation or "").startswith("US: 12 CFR 1006.6(b)(1)(i)")


# --- China, India, UK, Ireland -------------------------------------------------------------------------


def _cn() -> tuple[Loan, Borrower]:
    return (
        loan(jurisdiction="CN", currency="CNY"),
        borrower(time_zone="Asia/Shanghai", phone=CN_PHONE, address=Address(country="CN"), locale="zh-CN"),
    )


def test_cn_window_allows_a_text_at_2130_local() -> None:
    cn_loan, cn_borrower = _cn()

    decision = run(cn_loan, cn_borrower, at=wall("Asia/Shanghai", 2026, 3, 9, 21, 30))

    assert (decision.kind, decision.channel, decision.step) == (SEND, Channel.SMS, "D+7")
    assert decision.citation == "strategy cn, step D+7"


def test_cn_window_after_2200_defers_to_0800_beijing_time_next_morning() -> None:
    cn_loan, cn_borrower = _cn()

    decision = run(cn_loan, cn_borrower, at=wall("Asia/Shanghai", 2026, 3, 9, 22, 5))

    assert (decision.kind, decision.rule_id) == (DEFER, "window.quiet_hours")
    # China keeps one legal time: a CN address means Asia/Shanghai, not every zone tzdata lists
    # (Asia/Urumqi would push the morning to 10:00 Beijing time for no legal reason).
    assert decision.not_before == wall("Asia/Shanghai", 2026, 3, 10, 8, 0)


def test_in_window_defers_1930_to_0800_next_day() -> None:
    india = borrower(time_zone="Asia/Kolkata", phone=IN_PHONE, address=Address(country="IN"))

    decision = run(
        loan(jurisdiction="IN", currency="INR"), india, at=wall("Asia/Kolkata", 2026, 3, 9, 19, 30)
    )

    assert (decision.kind, decision.rule_id) == (DEFER, "window.quiet_hours")
    assert decision.not_before == wall("Asia/Kolkata", 2026, 3, 10, 8, 0)
    assert "RBI" in (decision.citation or "")
    assert "after IN contact hours 08:00–19:00" in decision.reason


def test_gb_window_defers_an_evening_text_to_0800() -> None:
    uk = borrower(time_zone="Europe/London", phone=GB_PHONE, address=Address(country="GB"))

    decision = run(loan(jurisdiction="GB", currency="GBP"), uk, at=wall("Europe/London", 2026, 3, 10, 21, 15))

    assert decision.not_before == wall("Europe/London", 2026, 3, 11, 8, 0)
    assert "CONC 7.9" in (decision.citation or "")


def _ireland() -> tuple[Loan, Borrower]:
    return (
        loan(jurisdiction="IE", currency="EUR", due_date=date(2026, 3, 1)),
        borrower(time_zone="Europe/Dublin", phone=IE_PHONE, address=Address(country="IE")),
    )


def test_ie_sunday_defers_to_monday_0900() -> None:
    ie_loan, ie_borrower = _ireland()

    decision = run(ie_loan, ie_borrower, at=wall("Europe/Dublin", 2026, 3, 8, 12, 0))

    assert (decision.kind, decision.rule_id) == (DEFER, "window.sunday")
    assert decision.not_before == wall("Europe/Dublin", 2026, 3, 9, 9, 0)
    assert "s.46" in (decision.citation or "")


def test_ie_holiday_saint_patricks_day_defers_to_the_next_day() -> None:
    ie_loan, ie_borrower = _ireland()

    decision = run(ie_loan, ie_borrower, at=wall("Europe/Dublin", 2026, 3, 17, 11, 0))

    assert (decision.kind, decision.rule_id) == (DEFER, "window.holiday")
    assert "Saint Patrick's Day" in decision.reason
    assert decision.not_before == wall("Europe/Dublin", 2026, 3, 18, 9, 0)


def test_ie_cap_borrower_month_waits_for_the_next_calendar_month() -> None:
    ie_loan, ie_borrower = _ireland()
    march = state(
        sends=(
            sent(utc(2026, 3, 2, 10), step="D+1"),
            sent(utc(2026, 3, 9, 10), Channel.PUSH, step="D+7"),
            sent(utc(2026, 3, 16, 10), step="D+15"),
        ),
        claims=claims("D+1", "D+7"),
    )

    decision = run(ie_loan, ie_borrower, march, at=utc(2026, 3, 25, 10))

    assert (decision.kind, decision.rule_id) == (DEFER, "cap.borrower_month")
    # 1 April 00:00 Irish Summer Time is 31 March 23:00 UTC; Wednesday's window opens at 09:00.
    assert decision.not_before == wall("Europe/Dublin", 2026, 4, 1, 9, 0)
    assert "[unverified]" in (decision.citation or "")


# --- Canada ------------------------------------------------------------------------------------------------


def test_ca_on_statutory_holiday_defers() -> None:
    ontario = borrower(
        time_zone="America/Toronto", phone=TORONTO_PHONE, address=Address(country="CA", region="ON")
    )
    on_loan = loan(jurisdiction="CA-ON", currency="CAD", due_date=date(2026, 5, 10))

    decision = run(on_loan, ontario, at=wall("America/Toronto", 2026, 5, 18, 10, 0))  # Victoria Day

    assert (decision.kind, decision.rule_id) == (DEFER, "window.holiday")
    assert "Victoria Day" in decision.reason
    # North-western Ontario keeps Central time: 07:00 there is 08:00 in Toronto.
    assert decision.not_before == utc(2026, 5, 19, 12)


def test_ca_bc_window_sunday_only_in_the_afternoon_in_every_bc_zone() -> None:
    bc = borrower(
        time_zone="America/Vancouver", phone="+16045550142", address=Address(country="CA", region="BC")
    )

    decision = run(
        loan(jurisdiction="CA-BC", currency="CAD"), bc, at=wall("America/Vancouver", 2026, 3, 8, 10, 0)
    )

    assert (decision.kind, decision.rule_id) == (DEFER, "window.sunday")
    assert decision.not_before == wall("America/Vancouver", 2026, 3, 8, 13, 0)


def test_ca_qc_window_sunday_closed_until_monday() -> None:
    qc = borrower(
        time_zone="America/Toronto", phone="+15145550142", address=Address(country="CA", region="QC")
    )

    decision = run(
        loan(jurisdiction="CA-QC", currency="CAD"), qc, at=wall("America/Toronto", 2026, 3, 15, 14, 0)
    )

    assert (decision.kind, decision.rule_id) == (DEFER, "window.sunday")
    # Monday 08:00 in the Atlantic-time part of Quebec is 07:00 in Montreal; 08:00 Montreal is the later.
    assert decision.not_before == wall("America/Toronto", 2026, 3, 16, 8, 0)


# --- flags and status ------------------------------------------------------------------------------------


def test_status_paid_stops() -> None:
    decision = run(loan(status=LoanStatus.PAID), at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.rule_id) == (STOP, "status.paid")
    assert decision.citation
    assert "CP-1" in decision.citation


@pytest.mark.parametrize(
    ("flags", "rule_id"),
    [
        (LoanFlags(bankruptcy=True), "flag.bankruptcy"),
        (LoanFlags(deceased=True), "flag.deceased"),
        (LoanFlags(cease_and_desist=True), "flag.cease_and_desist"),
        (LoanFlags(attorney_represented=True), "flag.attorney_represented"),
        (LoanFlags(dispute=Dispute(opened_on=date(2026, 3, 3))), "flag.dispute"),
    ],
)
def test_flags_that_do_not_expire_stop(flags: LoanFlags, rule_id: str) -> None:
    decision = run(loan(flags=flags), at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.rule_id) == (STOP, rule_id)
    assert decision.citation


def test_flag_promise_to_pay_defers_until_promise_and_grace_have_passed() -> None:
    promise = LoanFlags(promise_to_pay=PromiseToPay(until=date(2026, 3, 12), grace_days=2))

    decision = run(loan(flags=promise), at=utc(2026, 3, 10, 15))

    assert (decision.kind, decision.rule_id) == (DEFER, "flag.promise_to_pay")
    # Promise until the 12th + 2 days of grace: reminders from the 15th, once the window opens.
    assert decision.not_before == wall("America/New_York", 2026, 3, 15, 8, 0)
    assert "window.quiet_hours" in decision.reason


def test_flag_dispute_with_end_date_and_hardship_defer() -> None:
    disputed = run(
        loan(flags=LoanFlags(dispute=Dispute(opened_on=date(2026, 3, 3), until=date(2026, 3, 20)))),
        at=utc(2026, 3, 9, 16),
    )
    hardship = run(loan(flags=LoanFlags(hardship_until=date(2026, 3, 31))), at=utc(2026, 3, 9, 16))

    assert (disputed.rule_id, disputed.not_before) == (
        "flag.dispute",
        wall("America/New_York", 2026, 3, 21, 8),
    )
    assert (hardship.rule_id, hardship.not_before) == (
        "flag.hardship",
        wall("America/New_York", 2026, 4, 1, 8),
    )


def test_pause_inbound_defers_until_the_pause_ends() -> None:
    paused = state(paused_until=utc(2026, 3, 9, 18, 30))

    decision = run(loan(), borrower(), paused, at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.rule_id, decision.not_before) == (
        DEFER,
        "pause.inbound",
        utc(2026, 3, 9, 18, 30),
    )


def test_opted_out_of_every_channel_stops() -> None:
    decision = run(loan(), borrower(), state(sms_opted_out=True), at=utc(2026, 3, 9, 16))
    both = run(loan(), borrower(opt_outs=frozenset(Channel)), at=utc(2026, 3, 9, 16))

    assert decision.kind is SEND
    assert decision.channel is Channel.PUSH  # push still works
    assert (both.kind, both.rule_id) == (STOP, "consent.none_usable")
    assert "opted out of texts" in both.reason
    assert "opted out of push" in both.reason


# --- cadence ----------------------------------------------------------------------------------------------


def test_cadence_not_due_before_the_first_step() -> None:
    decision = run(at=utc(2026, 2, 20, 15))

    assert (decision.kind, decision.rule_id) == (DEFER, "cadence.not_due")
    assert decision.not_before == wall("America/New_York", 2026, 2, 27, 8, 0)  # D-3, in the window


def test_cadence_not_due_when_the_latest_due_step_was_already_sent() -> None:
    decision = run(loan(), borrower(), state(claims=claims("D+7")), at=utc(2026, 3, 10, 15))

    assert (decision.kind, decision.rule_id) == (DEFER, "cadence.not_due")
    assert decision.not_before == wall("America/New_York", 2026, 3, 17, 8, 0)  # D+15


def test_cadence_catch_up_after_20_days_deferral_sends_only_the_latest_step() -> None:
    decision = run(loan(), borrower(), state(claims=claims("D-3", "D-1")), at=utc(2026, 3, 22, 15))

    assert (decision.kind, decision.step) == (SEND, "D+15")
    assert decision.skipped_steps == ("D+1", "D+3", "D+7")
    # D+30 falls due at local midnight; the loan is looked at again when the window opens that day.
    assert decision.follow_up_at == wall("America/New_York", 2026, 4, 1, 8, 0)
    assert decision.template == "overdue"


def test_cadence_end_after_the_last_step_hands_off() -> None:
    decision = run(loan(), borrower(), state(claims=claims("D+30")), at=utc(2026, 4, 10, 15))

    assert (decision.kind, decision.rule_id) == (STOP, "cadence.end")


def test_cadence_send_sets_follow_up_to_the_next_step() -> None:
    decision = run(at=utc(2026, 3, 3, 15))

    assert (decision.kind, decision.step, decision.rule_id) == (SEND, "D+1", "cadence.step_due")
    assert decision.follow_up_at == wall("America/New_York", 2026, 3, 5, 8, 0)


def test_cap_sms_7d_on_a_text_step_waits_only_until_the_next_push_step() -> None:
    # Three texts about another loan fill the lender's 3-per-7-days text cap until 7 March, but the
    # D+3 step is a push, which that cap does not count: the earliest contact is D+3 in the window.
    texts = state(sends=tuple(sent(utc(2026, 2, day, 15), loan_id="L-2") for day in (26, 27, 28)))

    decision = run(loan(), borrower(), texts, at=utc(2026, 3, 3, 16))

    assert (decision.kind, decision.rule_id) == (DEFER, "cap.sms_7d")
    assert decision.not_before == wall("America/New_York", 2026, 3, 5, 8, 0)
    at_it = run(loan(), borrower(), texts, at=wall("America/New_York", 2026, 3, 5, 8, 0))
    assert (at_it.kind, at_it.step, at_it.channel) == (SEND, "D+3", Channel.PUSH)


def test_channel_fallback_push_to_sms() -> None:
    no_app = borrower(push_endpoints=())

    decision = run(loan(), no_app, at=utc(2026, 3, 5, 15))  # D+3 is a push step

    assert (decision.kind, decision.rule_id, decision.step, decision.channel) == (
        SEND,
        "channel.fallback",
        "D+3",
        Channel.SMS,
    )
    assert "no push endpoint" in decision.reason


def test_channel_unavailable_when_the_strategy_allows_no_fallback() -> None:
    # The CN strategy never lets a text stand in for a push.
    cn_loan, cn_borrower = _cn()
    no_app = cn_borrower.model_copy(update={"push_endpoints": ()})

    decision = run(cn_loan, no_app, at=wall("Asia/Shanghai", 2026, 3, 5, 12, 0))  # D+3 is push

    assert (decision.kind, decision.rule_id) == (DEFER, "channel.unavailable")
    assert decision.not_before == wall("Asia/Shanghai", 2026, 3, 9, 8, 0)  # D+7 (SMS), Beijing time


def test_product_bnpl_uses_its_own_cadence() -> None:
    decision = run(loan(product="bnpl"), at=utc(2026, 3, 3, 15))

    assert (decision.step, decision.channel, decision.citation) == (
        "D+1",
        Channel.PUSH,
        "strategy bnpl, step D+1",
    )


# --- bad data ---------------------------------------------------------------------------------------------


def test_bad_phone_makes_sms_unusable_and_push_stands_in() -> None:
    decision = run(loan(), borrower(phone="+1555"), at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.channel) == (SEND, Channel.PUSH)
    assert "is not a valid number" in decision.reason


def test_bad_phone_without_push_stops_with_the_reason() -> None:
    decision = run(loan(), borrower(phone="2125550142", push_endpoints=()), at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.rule_id) == (STOP, "consent.none_usable")
    assert "is not an E.164 number" in decision.reason
    assert "2125550142" not in decision.reason  # phone numbers are masked


def test_unknown_zone_is_ignored_and_recorded() -> None:
    decision = run(loan(), borrower(time_zone="Mars/Olympus_Mons"), at=utc(2026, 3, 9, 16))

    assert decision.kind is SEND
    assert "'Mars/Olympus_Mons' is not a valid IANA zone" in decision.reason


def test_no_location_signal_uses_every_zone_of_the_country() -> None:
    nowhere = borrower(time_zone="Nowhere/Land", phone="+1555", address=None)
    where = whereabouts("Nowhere/Land", (), None, None, "US")

    decision = run(loan(), nowhere, at=wall("America/New_York", 2026, 3, 10, 10, 0))

    assert "Pacific/Honolulu" in where.zones
    assert "America/New_York" in where.zones
    assert (decision.kind, decision.rule_id) == (DEFER, "window.quiet_hours")
    assert decision.not_before == wall("Pacific/Honolulu", 2026, 3, 10, 8, 0)


def test_unknown_locale_is_recorded() -> None:
    decision = run(loan(), borrower(locale="xx-YY"), at=utc(2026, 3, 9, 16))

    assert decision.kind is SEND
    assert "locale 'xx-YY' is not a known locale" in decision.reason


def test_jurisdiction_unknown_stops() -> None:
    french = run(loan(jurisdiction="FR", currency="EUR"), at=utc(2026, 3, 9, 16))
    alberta = run(
        loan(jurisdiction="CA", currency="CAD"),
        borrower(address=Address(country="CA", region="AB"), time_zone="America/Edmonton"),
        at=utc(2026, 3, 9, 16),
    )

    assert (french.kind, french.rule_id) == (STOP, "jurisdiction.unknown")
    assert "FR" in french.reason
    assert (alberta.kind, alberta.rule_id) == (STOP, "jurisdiction.unknown")


def test_window_no_common_hours_stops_when_zones_never_overlap() -> None:
    # 08:00-19:00 in Kolkata (02:30-13:30 UTC) and in Phoenix (15:00-02:00 UTC, no DST) never meet.
    split = borrower(time_zone="Asia/Kolkata", phone="+16025550142", address=Address(country="IN"))

    decision = run(loan(jurisdiction="IN", currency="INR"), split, at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.rule_id) == (STOP, "window.no_common_hours")
    assert "America/Phoenix (phone)" in decision.reason


def test_window_rare_overlap_is_found_months_ahead() -> None:
    # Kolkata and Los Angeles share half an hour only while Los Angeles is on standard time.
    split = borrower(time_zone="Asia/Kolkata", phone=LOS_ANGELES_PHONE, address=Address(country="IN"))

    decision = run(loan(jurisdiction="IN", currency="INR"), split, at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.not_before) == (DEFER, utc(2026, 11, 2, 2, 30))


def test_negative_amount_is_a_validation_error_with_a_clear_message() -> None:
    with pytest.raises(ValidationError) as error:
        loan(amount_due=Decimal("-5.00"))

    assert "amount_due" in str(error.value)
    assert "greater than or equal to 0" in str(error.value)


def test_nothing_due_stops() -> None:
    decision = run(loan(amount_due=Decimal("0")), at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.rule_id) == (STOP, "status.nothing_due")


def test_dates_beyond_the_planning_horizon_stop_instead_of_deferring() -> None:
    forever = run(loan(flags=LoanFlags(hardship_until=date(9999, 12, 31))), at=utc(2026, 3, 9, 16))
    ancient = run(loan(due_date=date(1, 1, 1)), at=utc(2026, 3, 9, 16))

    assert (forever.kind, forever.rule_id) == (STOP, "flag.hardship")
    assert (ancient.kind, ancient.rule_id) == (STOP, "data.due_date")


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        run(at=datetime(2026, 3, 9, 16))


def test_decide_is_deterministic() -> None:
    history = state(sends=(sent(utc(2026, 3, 8, 15)),), claims=claims("D+3"))

    assert run(loan(), borrower(), history, at=utc(2026, 3, 9, 16)) == run(
        loan(), borrower(), history, at=utc(2026, 3, 9, 16)
    )


def test_every_decision_carries_rule_reason_and_citation() -> None:
    for at in (utc(2026, 2, 1), utc(2026, 3, 3, 15), utc(2026, 3, 3, 3), utc(2026, 5, 1, 15)):
        decision = run(at=at)
        assert decision.rule_id
        assert decision.reason
        assert decision.citation
