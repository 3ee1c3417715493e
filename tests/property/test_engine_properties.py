"""Invariants of ``decide`` over random borrowers, zones, histories and instants (hypothesis).

The oracles are deliberately naive and separate from the engine: the contact hours of each jurisdiction
are a table in this file checked against ``datetime.astimezone``, caps are counted with plain loops, and
each profile lists the candidate zones a reader would expect (stated zone, the phone's area, the
address). Instants cluster around DST changes (US, EU) and public holidays.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo

import holidays
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunning.engine import decide, decide_without_history
from dunning.models import (
    Address,
    Borrower,
    Channel,
    Consent,
    ContactState,
    Decision,
    DecisionKind,
    Dispute,
    Loan,
    LoanFlags,
    PromiseToPay,
    PushEndpoint,
    SendRecord,
)
from dunning.rules import load_rulebooks
from dunning.strategy import load_strategies
from dunning.zones import _parse_phone as _parsed_phone
from dunning.zones import clear_phone_cache, phone_facts, phone_info_from_facts, remember_phone_facts

RULEBOOKS = load_rulebooks()
STRATEGIES = load_strategies()
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PUSH = PushEndpoint(arn="arn:aws:sns:us-east-1:123456789012:endpoint/GCM/dunning/prop", platform="GCM")
ALL = frozenset(Channel)
SMS, PUSH_ONLY = frozenset({Channel.SMS}), frozenset({Channel.PUSH})
DAY = timedelta(days=1)


@cache
def _us_zones() -> frozenset[str]:
    text = importlib.resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    return frozenset(line.split("\t")[2] for line in text.splitlines() if line.startswith("US\t"))


@dataclass(frozen=True)
class Profile:
    jurisdiction: str
    currency: str
    address: Address | None
    stated: str | None
    phone: str
    zones: frozenset[str]  # what the candidate zones must be, as a reader of the data would list them
    rulebooks: frozenset[str]  # jurisdictions whose hours and caps apply, lender included
    primary: str


# What a reader of the area code table would say (a few area codes, by hand).
PHONE_REGIONS = {
    "+1617": "US-MA",
    "+1212": "US-NY-NYC",
    "+1206": "US-WA",
    "+1310": "US-CA",
    "+1416": "CA-ON",
    "+1514": "CA-QC",
    "+1201": "US-NJ",
}


def _profile(
    jurisdiction: str, cur: str, address: Address | None, stated: str | None, phone: str, *zones: str
) -> Profile:
    books = {"lender", jurisdiction}
    if address is not None:
        books.add(address.country if address.region is None else f"{address.country}-{address.region}")
    # A number from a stricter place adds its rulebook unless the address is that place (RULES.md,
    # "Where the borrower lives").
    implied = PHONE_REGIONS.get(phone[:5])
    if implied is not None and (
        address is None or not implied.startswith(f"{address.country}-{address.region}")
    ):
        books.add(implied)
    books |= {j.split("-")[0] for j in list(books) if j != "lender"}  # a state implies its country
    known = {"US", "US-MA", "US-NY-NYC", "US-WA", "US-CA", "CN", "IN", "GB", "IE", "CA-ON", "CA-QC", "CA-BC"}
    return Profile(
        jurisdiction,
        cur,
        address,
        stated,
        phone,
        frozenset(zones),
        frozenset(books & (known | {"lender"})),
        zones[0],
    )


PROFILES = [
    _profile(
        "US",
        "USD",
        Address(country="US", region="NY"),
        "America/New_York",
        "+13105550142",
        "America/New_York",
        "America/Los_Angeles",
    ),
    _profile(
        "US",
        "USD",
        Address(country="US", region="MA"),
        "America/New_York",
        "+16175550142",
        "America/New_York",
    ),
    _profile(
        "US-NY-NYC",
        "USD",
        Address(country="US", region="NY"),
        "America/New_York",
        "+12125550142",
        "America/New_York",
    ),
    _profile(
        "US",
        "USD",
        Address(country="US", region="WA"),
        "America/Los_Angeles",
        "+12065550142",
        "America/Los_Angeles",
    ),
    _profile("GB", "GBP", Address(country="GB"), "Europe/London", "+447400123456", "Europe/London"),
    _profile(
        "IE", "EUR", Address(country="IE"), "Europe/Dublin", "+353850123456", "Europe/Dublin", "Europe/London"
    ),
    _profile("CN", "CNY", Address(country="CN"), "Asia/Shanghai", "+8613123456789", "Asia/Shanghai"),
    _profile("IN", "INR", Address(country="IN"), "Asia/Kolkata", "+918123456789", "Asia/Kolkata"),
    _profile(
        "CA-ON",
        "CAD",
        Address(country="CA", region="ON"),
        "America/Toronto",
        "+14165550142",
        "America/Toronto",
        "America/Winnipeg",
        "America/Atikokan",
    ),
    _profile(
        "CA-QC",
        "CAD",
        Address(country="CA", region="QC"),
        "America/Toronto",
        "+15145550142",
        "America/Toronto",
        "America/Halifax",
        "America/Blanc-Sablon",
    ),
    _profile("US", "USD", None, "Not/AZone", "+13105550142", "America/Los_Angeles"),
    # Phone-only evidence of a stricter place: Massachusetts by a Boston number, New York City by a
    # Manhattan number with a New Jersey address.
    _profile("US", "USD", None, "America/New_York", "+16175550142", "America/New_York"),
    _profile(
        "US",
        "USD",
        Address(country="US", region="NJ"),
        "America/New_York",
        "+12125550142",
        "America/New_York",
    ),
]
NOWHERE = Profile(
    "US", "USD", None, "Not/AZone", "+1555", frozenset(), frozenset({"US", "lender"}), "America/New_York"
)

# --- oracle: contact hours ----------------------------------------------------------------------------

EVERY_DAY = {d: (8 * 60, 21 * 60) for d in range(7)}
HOURS: dict[str, dict[int, tuple[int, int] | None]] = {
    "US": EVERY_DAY,
    "US-MA": EVERY_DAY,
    "US-WA": {d: (7 * 60 + 30, 21 * 60) for d in range(7)},
    "CN": {d: (8 * 60, 22 * 60) for d in range(7)},
    "IN": {d: (8 * 60, 19 * 60) for d in range(7)},
    "GB": EVERY_DAY,
    "IE": {**{d: (9 * 60, 21 * 60) for d in range(6)}, 6: None},
    "CA-ON": {**{d: (7 * 60, 21 * 60) for d in range(6)}, 6: (13 * 60, 17 * 60)},
    "CA-QC": {**{d: (8 * 60, 20 * 60) for d in range(6)}, 6: None},
    "lender": {d: (7 * 60, 22 * 60) for d in range(7)},
}
HOLIDAY_CLOSED = {
    "IE": ("IE", None, ("public",)),
    "CA-ON": ("CA", "ON", ("public",)),
    "CA-QC": ("CA", "QC", ("public", "optional")),
}


@cache
def _holidays(country: str, subdiv: str | None, categories: tuple[str, ...], year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdiv, categories=categories, years=year))


def oracle_allows(books: frozenset[str], zone: str, instant: datetime) -> bool:
    """Local wall-clock time inside every applicable jurisdiction's hours on that local date."""
    local = instant.astimezone(ZoneInfo(zone))
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    for book in books:
        calendar = HOLIDAY_CLOSED.get(book)
        if calendar and local.date() in _holidays(*calendar, local.year):
            return False
        table = HOURS.get(book)
        hours = table[local.weekday()] if table is not None else (0, 24 * 60)
        if hours is None or not hours[0] * 60 <= seconds < hours[1] * 60:
            return False
    return True


# --- oracle: caps -----------------------------------------------------------------------------------

# (limit, rolling period or None for a calendar month, scope, channels counted)
CAPS: dict[str, list[tuple[int, timedelta | None, str, frozenset[Channel]]]] = {
    "US": [(7, 7 * DAY, "debt", ALL)],
    "US-MA": [(2, 7 * DAY, "borrower", ALL), (2, 7 * DAY, "debt", ALL)],
    "US-NY-NYC": [(3, 7 * DAY, "borrower", ALL)],  # per consumer: docs/decisions.md D9
    "US-WA": [(3, 7 * DAY, "borrower", ALL)],
    "CN": [(3, DAY, "borrower", ALL)],
    "IE": [(3, None, "borrower", ALL)],
    "CA-ON": [(3, 7 * DAY, "borrower", ALL)],
    "lender": [
        (1, DAY, "borrower", SMS),
        (3, 7 * DAY, "borrower", SMS),
        (1, DAY, "borrower", PUSH_ONLY),
        (4, 7 * DAY, "borrower", ALL),
    ],
}


def oracle_caps_allow(
    profile: Profile, history: ContactState, loan_id: str, channel: Channel, instant: datetime
) -> bool:
    """One more contact on ``channel`` stays within every cap of every applicable jurisdiction."""
    for book in profile.rulebooks:
        for limit, period, scope, channels in CAPS.get(book, []):
            if channel not in channels:
                continue
            counted = [
                s
                for s in history.sends
                if s.channel in channels and (scope == "borrower" or s.loan_id == loan_id)
            ]
            if period is not None:
                if sum(1 for s in counted if instant - period < s.at <= instant) + 1 > limit:
                    return False
                continue
            for zone in profile.zones or {profile.primary}:
                tz = ZoneInfo(zone)
                month = (instant.astimezone(tz).year, instant.astimezone(tz).month)
                if (
                    sum(1 for s in counted if (s.at.astimezone(tz).year, s.at.astimezone(tz).month) == month)
                    + 1
                    > limit
                ):
                    return False
    return True


# --- generated cases ---------------------------------------------------------------------------------

BASES = [
    datetime(2026, 3, 8, 12, tzinfo=UTC),  # US spring forward
    datetime(2026, 3, 29, 12, tzinfo=UTC),  # EU spring forward
    datetime(2026, 10, 25, 12, tzinfo=UTC),  # EU fall back
    datetime(2026, 11, 1, 12, tzinfo=UTC),  # US fall back
    datetime(2026, 5, 18, 12, tzinfo=UTC),  # Victoria Day
    datetime(2026, 3, 17, 12, tzinfo=UTC),  # Saint Patrick's Day
    datetime(2026, 6, 24, 12, tzinfo=UTC),  # Fête nationale
    datetime(2026, 2, 1, 12, tzinfo=UTC),
]
# Hypothesis favours small integers; a sampled list keeps rare things rare.
RARELY = st.sampled_from([False] * 9 + [True])
STEPS = ["D-3", "D-1", "D+1", "D+3", "D+7", "D+14", "D+15", "D+30"]


@dataclass(frozen=True)
class Case:
    profile: Profile
    loan: Loan
    borrower: Borrower
    state: ContactState
    now: datetime


@st.composite
def cases(draw: st.DrawFn, profiles: list[Profile] = PROFILES) -> Case:
    profile = draw(st.sampled_from(profiles))
    now = draw(st.sampled_from(BASES)) + timedelta(
        minutes=draw(st.integers(-3 * 1440, 3 * 1440)),
        seconds=draw(st.integers(0, 59)),
        microseconds=draw(st.sampled_from([0, 0, 1, 999_999, 500_000])),
    )
    due = now.date() + timedelta(days=draw(st.integers(-35, 5)))
    flags = LoanFlags()
    if draw(RARELY):
        flags = LoanFlags(
            promise_to_pay=PromiseToPay(
                until=now.date() + timedelta(days=draw(st.integers(-3, 3))),
                grace_days=draw(st.integers(0, 2)),
            )
        )
    loan = Loan(
        loan_id="L-1",
        borrower_id="B-1",
        currency=profile.currency,
        amount_due=Decimal("99.00"),
        due_date=due,
        jurisdiction=profile.jurisdiction,
        product=draw(st.sampled_from(["default", "default", "bnpl"])),
        flags=flags,
    )
    borrower = Borrower(
        borrower_id="B-1",
        time_zone=profile.stated,
        address=profile.address,
        phone=profile.phone,
        push_endpoints=(PUSH,) if draw(st.booleans()) else (),
        consent=Consent(sms=draw(st.integers(0, 4)) > 0, push=draw(st.integers(0, 4)) > 0),
    )
    sends = tuple(
        SendRecord(
            at=now - timedelta(minutes=draw(st.integers(0, 40 * 1440)), seconds=draw(st.integers(0, 59))),
            channel=draw(st.sampled_from(list(Channel))),
            loan_id=draw(st.sampled_from(["L-1", "L-1", "L-2"])),
            step=draw(st.sampled_from(STEPS)),
        )
        for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3, 4, 6])))
    )
    claimed = frozenset(
        ContactState.claim_key("L-1", s) for s in draw(st.lists(st.sampled_from(STEPS), max_size=3))
    )
    paused = now + timedelta(minutes=draw(st.integers(1, 3000))) if draw(RARELY) else None
    state = ContactState(borrower_id="B-1", sends=sends, claims=claimed, paused_until=paused)
    return Case(profile, loan, borrower, state, now)


def _decide(case: Case, at: datetime) -> Decision:
    return decide(case.loan, case.borrower, case.state, at, RULEBOOKS, STRATEGIES)


def _check_send(case: Case, decision: Decision, at: datetime) -> None:
    """Everything a SEND at ``at`` must satisfy, checked by the oracles."""
    assert decision.channel is not None
    assert decision.step is not None
    zones = case.profile.zones or _us_zones()
    for zone in zones:
        assert oracle_allows(case.profile.rulebooks, zone, at), f"SEND outside the window in {zone} at {at}"
    assert oracle_caps_allow(case.profile, case.state, case.loan.loan_id, decision.channel, at), (
        "SEND over a cap"
    )
    assert at >= (case.state.paused_until or at)
    promise = case.loan.flags.promise_to_pay
    if promise is not None:
        last_held = promise.until + timedelta(days=promise.grace_days)
        assert all(at.astimezone(ZoneInfo(z)).date() > last_held for z in zones)
    local_day = at.astimezone(ZoneInfo(case.profile.primary)).date()
    assert case.loan.due_date + timedelta(days=int(decision.step[1:])) <= local_day
    assert ContactState.claim_key(case.loan.loan_id, decision.step) not in case.state.claims


# --- properties ---------------------------------------------------------------------------------------


@SETTINGS
@given(cases())
def test_no_send_outside_a_window_or_over_a_cap(case: Case) -> None:
    decision = _decide(case, case.now)

    assert decision.rule_id
    assert decision.reason
    if decision.kind is DecisionKind.SEND:
        _check_send(case, decision, case.now)


@SETTINGS
@given(cases())
def test_defer_not_before_is_the_earliest_allowed_instant(case: Case) -> None:
    decision = _decide(case, case.now)
    if decision.kind is not DecisionKind.DEFER:
        return
    not_before = decision.not_before
    assert not_before is not None
    assert not_before > case.now

    just_before = _decide(case, max(case.now, not_before - timedelta(minutes=1)))
    at_it = _decide(case, not_before)

    assert just_before.kind is DecisionKind.DEFER, just_before.reason
    assert at_it.kind is DecisionKind.SEND, at_it.reason
    _check_send(case, at_it, not_before)


@SETTINGS
@given(cases())
def test_a_send_follows_up_at_the_next_steps_first_allowed_instant(case: Case) -> None:
    """The follow-up of a SEND is no artefact: it is inside the window in every candidate zone, never
    before the next step falls due, and the loan looked at then (this step claimed) is never deferred
    for a window. Nothing allowed is skipped: a minute earlier, the window was closed or the step not due."""
    decision = _decide(case, case.now)
    if decision.kind is not DecisionKind.SEND or decision.follow_up_at is None:
        return
    follow_up = decision.follow_up_at
    assert decision.step is not None
    zones = case.profile.zones or _us_zones()
    sent = ContactState.claim_key(case.loan.loan_id, decision.step)
    after = case.state.model_copy(update={"claims": case.state.claims | {sent}})

    later = decide(case.loan, case.borrower, after, follow_up, RULEBOOKS, STRATEGIES)
    minute_before = decide(
        case.loan, case.borrower, after, follow_up - timedelta(minutes=1), RULEBOOKS, STRATEGIES
    )

    for zone in zones:
        assert oracle_allows(case.profile.rulebooks, zone, follow_up), (
            f"follow-up outside the window in {zone}"
        )
    assert not later.rule_id.startswith("window."), later.reason
    assert minute_before.kind is not DecisionKind.SEND or minute_before.step != later.step


@SETTINGS
@given(cases(profiles=[*PROFILES, NOWHERE]))
def test_decide_is_deterministic(case: Case) -> None:
    assert _decide(case, case.now) == _decide(case, case.now)


@settings(max_examples=60, deadline=None)
@given(cases(profiles=[NOWHERE]))
def test_no_location_means_every_zone_of_the_country(case: Case) -> None:
    decision = _decide(case, case.now)
    if decision.kind is DecisionKind.SEND:
        for zone in _us_zones():
            assert oracle_allows(frozenset({"US", "lender"}), zone, case.now), zone


ENDPOINT = PushEndpoint(arn="arn:aws:sns:us-east-1:123456789012:endpoint/GCM/dunning/any", platform="GCM")


@SETTINGS
@given(
    jurisdiction=st.from_regex(r"\A[A-Z]{2}(-[A-Z0-9]{1,4}){0,2}\Z")
    | st.sampled_from(["US", "US-MA", "CN", "IE"]),
    due=st.dates(),
    zone=st.none() | st.text(max_size=64) | st.sampled_from(["America/New_York", "UTC", "Etc/GMT+12"]),
    phone=st.none() | st.text(max_size=32) | st.sampled_from(["+12125550142", "+8613123456789"]),
    country=st.from_regex(r"\A[A-Z]{2}\Z"),
    region=st.none() | st.text(max_size=8),
    locale=st.from_regex(r"\A[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}\Z"),
    now=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2150, 1, 1), timezones=st.just(UTC)),
    until=st.dates(),
    paused=st.none() | st.datetimes(timezones=st.just(UTC)),
    sent_at=st.lists(st.datetimes(timezones=st.just(UTC)), max_size=3),
)
def test_decide_never_raises_on_data_a_valid_model_can_hold(
    jurisdiction: str,
    due: date,
    zone: str | None,
    phone: str | None,
    country: str,
    region: str | None,
    locale: str,
    now: datetime,
    until: date,
    paused: datetime | None,
    sent_at: list[datetime],
) -> None:
    loan = Loan(
        loan_id="L-1",
        borrower_id="B-1",
        currency="USD",
        amount_due=Decimal("1.00"),
        due_date=due,
        jurisdiction=jurisdiction,
        flags=LoanFlags(promise_to_pay=PromiseToPay(until=until, grace_days=60), hardship_until=until),
    )
    borrower = Borrower(
        borrower_id="B-1",
        time_zone=zone,
        phone=phone,
        address=Address(country=country, region=region),
        locale=locale,
        consent=Consent(sms=True, push=True),
        push_endpoints=(ENDPOINT,),
    )
    sends = tuple(SendRecord(at=at, channel=Channel.SMS, loan_id="L-1", step="D+1") for at in sent_at)
    state = ContactState(borrower_id="B-1", paused_until=paused, sends=sends)

    decision = decide(loan, borrower, state, now, RULEBOOKS, STRATEGIES)

    assert decision.rule_id
    assert decision.reason


# Numbers of every kind the engine meets: fictional North American lines of any area code (valid or
# not), libphonenumber's example numbers, Ofcom's drama ranges, and text that is no number at all.
_NUMBERS = (
    st.builds(lambda npa, line: f"+1{npa}5550{line}", st.integers(200, 999), st.integers(100, 199))
    | st.builds(
        lambda block, line: f"+44{block}{line:03d}",
        st.sampled_from(["2079460", "1134960"]),
        st.integers(0, 999),
    )
    | st.sampled_from(["+8613123456789", "+918123456789", "+353850123456", "+1555", "12125550142"])
    | st.text(max_size=20)
)


@SETTINGS
@given(cases(profiles=[*PROFILES, NOWHERE]), _NUMBERS)
def test_decide_with_stored_phone_facts_is_decide_with_parsing(case: Case, number: str) -> None:
    # The planner hands the engine the facts the indexer stored (dunning.zones.phone_facts) instead of
    # parsing the number: whatever the number, the decision must be the same.
    borrower = case.borrower.model_copy(update={"phone": number or None})
    clear_phone_cache()
    parsed = decide(case.loan, borrower, case.state, case.now, RULEBOOKS, STRATEGIES)
    facts = phone_facts(number) if number else None
    clear_phone_cache()
    if facts is not None:
        # Refused only for a valid number stored in another form than its E.164 one (then parsed).
        taken = remember_phone_facts(number, facts)
        assert taken or _parsed_phone(number).e164 not in (None, number)
        assert not taken or phone_info_from_facts(number, facts) == _parsed_phone(number)
    assert decide(case.loan, borrower, case.state, case.now, RULEBOOKS, STRATEGIES) == parsed


@st.composite
def histories(draw: st.DrawFn) -> Case:
    """A case with what can stop a loan drawn often (flags, missing consent, no push endpoint) and a
    contact history that adds everything a history can: sends, claims, a pause, an opt-out of the
    number, unusable contact points, a dispute by reply."""
    case = draw(cases(profiles=[*PROFILES, NOWHERE]))
    flag = draw(st.sampled_from(["", "", "", "cease_and_desist", "bankruptcy", "deceased", "dispute"]))
    flags = case.loan.flags
    if flag == "dispute":
        flags = flags.model_copy(update={"dispute": Dispute(opened_on=case.now.date() - DAY)})
    elif flag:
        flags = flags.model_copy(update={flag: True})
    loan = case.loan.model_copy(update={"flags": flags})
    borrower = case.borrower.model_copy(
        update={"consent": Consent(sms=draw(st.booleans()), push=draw(st.booleans()))}
    )
    state = case.state.model_copy(
        update={
            "sms_opted_out": draw(RARELY),
            "unusable": frozenset({case.profile.phone})
            if draw(RARELY) and case.profile.phone
            else frozenset(),
            "disputed_loans": frozenset({"L-1"}) if draw(RARELY) else frozenset(),
        }
    )
    return Case(case.profile, loan, borrower, state, case.now)


@SETTINGS
@given(histories())
def test_a_stop_without_history_is_a_stop_with_any_history(case: Case) -> None:
    """What lets the indexer record a first look's STOP instead of indexing the loan (dunning.indexer
    ``FirstLook``): whatever has been sent, claimed, paused, opted out or disputed since, the planner
    would stop the loan too. Said the other way round: a loan the planner would send or defer is never
    stopped at its first look."""
    first = decide_without_history(case.loan, case.borrower, case.now, RULEBOOKS, STRATEGIES)
    planned = _decide(case, case.now)

    assert planned.kind is DecisionKind.STOP or first.kind is not DecisionKind.STOP, (
        f"stopped at first look ({first.rule_id}: {first.reason}) but the planner says "
        f"{planned.kind} {planned.rule_id}"
    )
