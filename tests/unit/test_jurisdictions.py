"""Candidate jurisdictions: what a phone number implies, when it adds a rulebook, and what decisions record.

Phone numbers are fictional (555-01xx, libphonenumber example numbers).
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from engine_fixtures import (
    BOSTON_PHONE,
    NYC_PHONE,
    RULEBOOKS,
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

from dunning.jurisdictions import candidate_jurisdictions, policy_for, relation
from dunning.models import Address, Borrower, Channel, Consent, DecisionKind
from dunning.rules import DATA_DIR, RulebookError, load_rulebooks
from dunning.zones import phone_regions
from dunning_local import area_codes

SEND, DEFER, STOP = DecisionKind.SEND, DecisionKind.DEFER, DecisionKind.STOP
NJ_PHONE = "+12015550142"


def applied(loan_kw: dict[str, str], **borrower_kw: object) -> list[tuple[str, str, str | None]]:
    """(code, source, rulebook) of every candidate jurisdiction, in order."""
    found = candidate_jurisdictions(loan(**loan_kw), borrower(**borrower_kw), RULEBOOKS)
    return [(j.code, j.source, j.rulebook) for j in found.applied]


# --- what a number implies -------------------------------------------------------------------------------


@pytest.mark.parametrize("area_code", ["212", "646", "718", "917", "347", "929", "332"])
def test_phone_regions_new_york_city_area_codes_imply_nyc(area_code: str) -> None:
    assert phone_regions(f"+1{area_code}5550142") == ("US-NY-NYC",)


@pytest.mark.parametrize(
    ("number", "regions"),
    [
        (BOSTON_PHONE, ("US-MA",)),
        (TORONTO_PHONE, ("CA-ON",)),
        (NJ_PHONE, ("US-NJ",)),
        ("+15185550142", ("US-NY",)),  # upstate New York: the state, not the city
        ("+12065550142", ("US-WA",)),
        ("+13105550142", ("US-CA",)),
        ("+19025550142", ("CA-NS", "CA-PE")),  # one area code, two provinces: both
        ("+18005550142", ("US",)),  # toll-free: no geography, the country only
        ("+18765550142", ("JM",)),  # NANP outside the US and Canada: the country
        ("+447400123456", ("GB",)),
        ("+8613123456789", ("CN",)),
        ("+1555", ()),  # invalid: implies nothing
    ],
)
def test_phone_regions_by_area_code_or_country(number: str, regions: tuple[str, ...]) -> None:
    assert phone_regions(number) == regions


def test_phone_regions_of_a_555_01xx_number_are_those_of_its_area_code() -> None:
    # The table is keyed by area code only, so fictional numbers map like assigned ones.
    assert phone_regions("+16175550142") == ("US-MA",)
    assert phone_regions("+16175550199") == ("US-MA",)


def test_area_code_table_is_what_the_installed_phonenumbers_geocoder_gives() -> None:
    # Fails when a phonenumbers upgrade changes the data: regenerate with python -m dunning_local.area_codes.
    assert area_codes.main(["--check"]) == 0


def test_area_code_table_nyc_overrides_are_new_york_state_in_the_geocoder() -> None:
    table = area_codes.from_geocoder()

    for area_code in ("212", "646", "718", "917", "347", "929", "332"):
        assert table[area_code] == ["US-NY"], area_code


# --- when a phone region adds its rulebook ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "phone_region", "expected"),
    [
        (None, "US-MA", "missing"),
        ("US", "US-MA", "missing"),  # the address is less precise than the number
        ("US-NY", "US-NY-NYC", "missing"),
        ("US-MA", "US-MA", "agreeing"),
        ("US-MA", "US", "agreeing"),  # the number is less precise (toll-free)
        ("US-NJ", "US-NY-NYC", "conflicting"),
        ("GB", "US-MA", "conflicting"),
    ],
)
def test_relation_of_phone_region_to_address(address: str | None, phone_region: str, expected: str) -> None:
    assert relation(phone_region, address) == expected


def test_candidates_phone_only_boston_number_adds_massachusetts() -> None:
    assert applied({}, address=None, phone=BOSTON_PHONE) == [
        ("US", "loan", "US"),
        ("US-MA", "phone", "US-MA"),
    ]


def test_candidates_new_jersey_address_and_manhattan_number_both_apply() -> None:
    found = applied({}, address=Address(country="US", region="NJ"), phone=NYC_PHONE)

    assert found == [("US", "loan", "US"), ("US-NJ", "address", None), ("US-NY-NYC", "phone", "US-NY-NYC")]


def test_candidates_moved_borrower_gets_both_rulebooks() -> None:
    # A current Massachusetts address, a Seattle number: both states' caps apply (strictest wins).
    policy = policy_for(
        loan(), borrower(address=Address(country="US", region="MA"), phone="+12065550142"), RULEBOOKS
    )

    assert policy.jurisdictions == ("US", "US-MA", "US-WA", "lender")


def test_candidates_agreeing_phone_region_adds_nothing_and_is_not_listed() -> None:
    found = applied({}, address=Address(country="US", region="MA"), phone=BOSTON_PHONE)

    assert found == [("US", "loan", "US"), ("US-MA", "address", "US-MA")]


def test_candidates_nyc_loan_lists_the_federal_rulebook_it_brings() -> None:
    found = applied({"jurisdiction": "US-NY-NYC"}, address=None, phone=None)

    assert found == [("US", "loan", "US"), ("US-NY-NYC", "loan", "US-NY-NYC")]


def test_candidates_foreign_number_brings_its_country_rulebook() -> None:
    found = applied({}, address=Address(country="US", region="NY"), phone="+8613123456789")

    assert ("CN", "phone", "CN") in found


def test_candidates_rulebooks_listed_are_exactly_those_merged() -> None:
    for phone in (BOSTON_PHONE, NYC_PHONE, NJ_PHONE, TORONTO_PHONE, "+447400123456", None):
        for address in (None, Address(country="US", region="NJ"), Address(country="CA", region="QC")):
            found = candidate_jurisdictions(loan(), borrower(address=address, phone=phone), RULEBOOKS)
            named = {j.rulebook for j in found.applied if j.rulebook}
            assert named == set(found.policy.jurisdictions) - {"lender"}, (phone, address)


def _phone_policy(tmp_path: Path, adds: str) -> Path:
    path = tmp_path / "phone_policy.yaml"
    path.write_text(f"default: {{adds: {adds}, citation: test policy, verified: true}}\n", encoding="utf-8")
    return path


def test_phone_policy_when_address_missing_ignores_a_conflicting_number_and_says_so(tmp_path: Path) -> None:
    books = copy_rulebooks(tmp_path)
    rulebooks = load_rulebooks(
        books, tmp_path / "policy.yaml", _phone_policy(tmp_path, "when_address_missing")
    )
    nj_with_nyc_number = borrower(address=Address(country="US", region="NJ"), phone=NYC_PHONE)

    found = candidate_jurisdictions(loan(), nj_with_nyc_number, rulebooks)
    missing = candidate_jurisdictions(loan(), borrower(address=None, phone=NYC_PHONE), rulebooks)

    assert "US-NY-NYC" not in found.policy.jurisdictions
    assert "region US-NY-NYC was not applied" in found.notes[0]
    assert "US-NY-NYC" in missing.policy.jurisdictions
    decision = run(loan(), nj_with_nyc_number, at=utc(2026, 3, 9, 16), rulebooks=rulebooks)
    assert "region US-NY-NYC was not applied" in decision.reason


def test_phone_policy_always_records_an_agreeing_phone_region(tmp_path: Path) -> None:
    books = copy_rulebooks(tmp_path)
    rulebooks = load_rulebooks(books, tmp_path / "policy.yaml", _phone_policy(tmp_path, "always"))

    found = candidate_jurisdictions(
        loan(), borrower(address=Address(country="US", region="MA"), phone=BOSTON_PHONE), rulebooks
    )

    assert [(j.code, j.source) for j in found.applied] == [
        ("US", "loan"),
        ("US-MA", "address"),
        ("US-MA", "phone"),
    ]


def test_phone_policy_file_rejects_a_mode_that_would_remove_rules(tmp_path: Path) -> None:
    books = copy_rulebooks(tmp_path)

    with pytest.raises(RulebookError, match=r"phone_policy\.yaml: default\.adds"):
        load_rulebooks(books, tmp_path / "policy.yaml", _phone_policy(tmp_path, "never"))


# --- decisions ---------------------------------------------------------------------------------------------


def test_us_ma_by_phone_third_text_in_7_days_defers() -> None:
    boston_no_address = borrower(address=None, phone=BOSTON_PHONE)
    history = state(
        sends=(sent(utc(2026, 3, 3, 15), step="D+1"), sent(utc(2026, 3, 6, 15), step="D+3")),
        claims=claims("D+1", "D+3"),
    )

    decision = run(loan(), boston_no_address, history, at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.rule_id) == (DEFER, "cap.borrower_7d")
    assert decision.not_before == utc(2026, 3, 10, 15)
    assert "940 CMR 7.04(1)(f)" in (decision.citation or "")
    assert [(j.code, j.source) for j in decision.jurisdictions] == [("US", "loan"), ("US-MA", "phone")]


def test_us_ma_by_phone_makes_the_difference_against_the_same_history_with_a_new_jersey_number() -> None:
    history = state(
        sends=(sent(utc(2026, 3, 3, 15), step="D+1"), sent(utc(2026, 3, 6, 15), step="D+3")),
        claims=claims("D+1", "D+3"),
    )

    boston = run(loan(), borrower(address=None, phone=BOSTON_PHONE), history, at=utc(2026, 3, 9, 16))
    new_jersey = run(loan(), borrower(address=None, phone=NJ_PHONE), history, at=utc(2026, 3, 9, 16))

    assert boston.kind is DEFER
    assert (new_jersey.kind, new_jersey.channel) == (SEND, Channel.SMS)
    assert [(j.code, j.rulebook) for j in new_jersey.jurisdictions] == [("US", "US"), ("US-NJ", None)]


def test_nyc_cap_counts_every_loan_of_the_consumer() -> None:
    # 6 RCNY 5-77, read per consumer (docs/decisions.md D9): contacts about another loan count too.
    nyc_loan = loan(jurisdiction="US-NY-NYC")
    other_loans = state(
        sends=tuple(
            sent(utc(2026, 3, day, 15), Channel.PUSH, loan_id="L-2", step=f"D+{day}") for day in (4, 6, 7)
        )
    )

    decision = run(nyc_loan, borrower(), other_loans, at=utc(2026, 3, 9, 16))

    assert (decision.kind, decision.rule_id) == (DEFER, "cap.borrower_7d")
    assert decision.citation
    assert decision.citation.startswith("US-NY-NYC: 6 RCNY 5-77")
    assert decision.not_before == utc(2026, 3, 11, 15)


def test_phone_region_never_makes_an_uncovered_loan_decidable() -> None:
    decision = run(
        loan(jurisdiction="CA", currency="CAD"),
        borrower(address=None, phone=TORONTO_PHONE, time_zone="America/Toronto"),
        at=utc(2026, 3, 9, 16),
    )

    assert (decision.kind, decision.rule_id) == (STOP, "jurisdiction.unknown")
    assert "the phone number suggests CA-ON" in decision.reason
    assert ("CA-ON", "phone", "CA-ON") in [(j.code, j.source, j.rulebook) for j in decision.jurisdictions]


def test_ontario_number_with_quebec_address_applies_both_provinces() -> None:
    # Family Day (16 February 2026) is a statutory holiday in Ontario, not in Quebec.
    qc_loan = loan(jurisdiction="CA-QC", currency="CAD", due_date=date(2026, 2, 9))
    at = wall("America/Toronto", 2026, 2, 16, 10, 0)

    def quebec(phone: str) -> Borrower:
        return borrower(address=Address(country="CA", region="QC"), phone=phone, time_zone="America/Toronto")

    toronto_number = run(qc_loan, quebec(TORONTO_PHONE), at=at)
    montreal_number = run(qc_loan, quebec("+15145550142"), at=at)

    assert (toronto_number.kind, toronto_number.rule_id) == (DEFER, "window.holiday")
    assert "Family Day" in toronto_number.reason
    assert (toronto_number.citation or "").startswith("CA-ON:")
    assert [j.code for j in toronto_number.jurisdictions] == ["CA-QC", "CA-QC", "CA-ON"]
    assert montreal_number.kind is SEND


def test_decision_json_shows_a_jurisdiction_without_rulebook_as_null() -> None:
    decision = run(loan(), borrower(address=None, phone=NJ_PHONE), at=utc(2026, 3, 9, 16))

    data = json.loads(decision.model_dump_json(exclude_none=True))

    assert data["jurisdictions"][1] == {"code": "US-NJ", "source": "phone", "rulebook": None}
    assert decision.jurisdictions_record()[1] == {"code": "US-NJ", "source": "phone", "rulebook": None}


def test_every_engine_decision_records_the_loan_jurisdiction_first() -> None:
    for at in (utc(2026, 2, 1), utc(2026, 3, 3, 15), utc(2026, 3, 3, 3)):
        decision = run(at=at)
        assert decision.jurisdictions[0].source == "loan"


def test_a_week_later_the_massachusetts_cap_has_room_again() -> None:
    history = state(sends=(sent(utc(2026, 3, 3, 15), step="D+1"), sent(utc(2026, 3, 6, 15), step="D+3")))
    boston = borrower(address=None, phone=BOSTON_PHONE, consent=Consent(sms=True, push=True))

    later = run(loan(), boston, history, at=utc(2026, 3, 3, 15) + timedelta(days=7))

    assert later.kind is SEND


def test_area_code_table_entries_are_jurisdiction_codes_and_overrides_replace_known_area_codes() -> None:
    data = yaml.safe_load((DATA_DIR / "nanp_area_codes.yaml").read_text(encoding="utf-8"))
    code = re.compile(r"^(US|CA)(-[A-Z]{2,3}){1,2}$")

    for table in ("area_codes", "overrides"):
        for area_code, regions in data[table].items():
            assert re.fullmatch(r"[2-9]\d\d", area_code), area_code
            assert regions, (area_code, regions)
            assert all(code.match(r) for r in regions), (area_code, regions)
    assert set(data["overrides"]) <= set(data["area_codes"])


def test_a_loan_in_a_region_without_a_rulebook_says_it_fell_back_to_the_country() -> None:
    decision = run(loan(jurisdiction="US-ZZ"), borrower(address=None, phone=NJ_PHONE), at=utc(2026, 3, 9, 16))

    assert ("US", "loan", "US") in [(j.code, j.source, j.rulebook) for j in decision.jurisdictions]
    assert ("US-ZZ", "loan", None) in [(j.code, j.source, j.rulebook) for j in decision.jurisdictions]
    assert "loan jurisdiction US-ZZ has no rulebook of its own: US's applies" in decision.reason
