"""Stored phone facts (dunning.zones.phone_facts): the planner takes them instead of parsing a number
only when they are of this release's version and about that very number; otherwise it parses."""

from __future__ import annotations

import pytest

from dunning.adapters.cadence import CadenceStore
from dunning.zones import (
    _parse_phone,
    clear_phone_cache,
    phone_facts,
    phone_facts_version,
    phone_info,
    phone_info_from_facts,
    remember_phone_facts,
)

NY = "+12125550142"
MA = "+16175550123"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_phone_cache()


def test_facts_give_what_parsing_gives() -> None:
    for number in (NY, MA, "+441212345678", "+8613123456789", "+1555", "not a number"):
        facts = phone_facts(number)
        assert facts.startswith(phone_facts_version() + "|")
        assert phone_info_from_facts(number, facts) == _parse_phone(number)


def test_remembered_facts_are_answered_without_parsing() -> None:
    # Facts claiming a Massachusetts number's zones for the New York number: only the remembered facts
    # can make phone_info say so, which shows the number was not parsed.
    doctored = phone_facts(NY).replace("America/New_York", "America/Chicago")
    clear_phone_cache()
    assert remember_phone_facts(NY, doctored)
    assert phone_info(NY).zones == ("America/Chicago",)


def test_facts_of_another_number_or_version_are_not_used() -> None:
    facts = phone_facts(NY)
    stale = facts.replace(phone_facts_version(), "1/0.0.0/00000000")
    clear_phone_cache()
    assert not remember_phone_facts(MA, facts)  # the borrower's number changed since it was indexed
    assert not remember_phone_facts(NY, stale)  # another phonenumbers release or area-code table
    assert not remember_phone_facts(NY, "garbage")
    assert phone_info(NY) == _parse_phone(NY)
    assert phone_info(MA) == _parse_phone(MA)


def test_a_known_number_is_not_overwritten() -> None:
    phone_info(NY)
    assert not remember_phone_facts(NY, phone_facts(NY).replace("America/New_York", "America/Chicago"))
    assert phone_info(NY).zones == ("America/New_York",)


def test_the_cadence_item_keeps_facts_only_with_their_number() -> None:
    store = CadenceStore(None, "State", 8)  # type: ignore[arg-type]
    from datetime import UTC, datetime

    at = datetime(2026, 3, 2, 14, tzinfo=UTC)
    item = store.cadence_item(
        "L-1", "B-1", next_contact_at=at, at=at, rule_id="r", reason="x", phone=NY, phone_facts="f"
    )
    assert item["phone_facts"] == "f"
    bare = store.cadence_item(
        "L-1", "B-1", next_contact_at=at, at=at, rule_id="r", reason="x", phone_facts="f"
    )
    assert "phone_facts" not in bare
