"""Builders for engine and rulebook tests: loans, borrowers, states and instants with readable defaults.

Phone numbers are fictional (US 555-01xx, libphonenumber example numbers).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dunning.engine import decide
from dunning.models import (
    Address,
    Borrower,
    Channel,
    Consent,
    ContactState,
    Decision,
    Loan,
    PushEndpoint,
    SendRecord,
)
from dunning.rules import DEFAULT_LENDER_POLICY, DEFAULT_RULEBOOKS_DIR, Rulebooks, load_rulebooks
from dunning.strategy import Strategies, load_strategies

RULEBOOKS = load_rulebooks()
STRATEGIES = load_strategies()

# Upstate New York (518): the default borrower is under federal rules only; NYC_PHONE brings New York
# City's rulebook (its area codes are a reason to believe the borrower is there).
NEW_YORK_PHONE = "+15185550142"
NYC_PHONE = "+12125550142"
BOSTON_PHONE = "+16175550142"
LOS_ANGELES_PHONE = "+13105550142"
TORONTO_PHONE = "+14165550142"
CN_PHONE = "+8613123456789"
IN_PHONE = "+918123456789"
GB_PHONE = "+447400123456"
IE_PHONE = "+353850123456"
PUSH = PushEndpoint(arn="arn:aws:sns:us-east-1:123456789012:endpoint/GCM/dunning/0a1b2c3d", platform="GCM")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """An aware UTC instant."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def wall(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An aware instant given as wall-clock time in a zone (fold=0)."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


def loan(**overrides: Any) -> Loan:
    """A US loan due 2026-03-02 unless overridden."""
    fields: dict[str, Any] = {
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "currency": "USD",
        "amount_due": Decimal("120.50"),
        "due_date": date(2026, 3, 2),
        "jurisdiction": "US",
    }
    fields.update(overrides)
    return Loan(**fields)


def borrower(**overrides: Any) -> Borrower:
    """A New York borrower with a New York phone, SMS and push consent and one push endpoint."""
    fields: dict[str, Any] = {
        "borrower_id": "B-1",
        "first_name": "Alex",
        "time_zone": "America/New_York",
        "address": Address(country="US", region="NY"),
        "phone": NEW_YORK_PHONE,
        "push_endpoints": (PUSH,),
        "consent": Consent(sms=True, push=True),
    }
    fields.update(overrides)
    return Borrower(**fields)


def state(**overrides: Any) -> ContactState:
    """An empty contact state for borrower B-1."""
    fields: dict[str, Any] = {"borrower_id": "B-1"}
    fields.update(overrides)
    return ContactState(**fields)


def sent(at: datetime, channel: Channel = Channel.SMS, loan_id: str = "L-1", step: str = "D+1") -> SendRecord:
    """One past send."""
    return SendRecord(at=at, channel=channel, loan_id=loan_id, step=step)


def claims(*steps: str, loan_id: str = "L-1") -> frozenset[str]:
    """Claim keys for steps of one loan."""
    return frozenset(ContactState.claim_key(loan_id, s) for s in steps)


def run(
    the_loan: Loan | None = None,
    the_borrower: Borrower | None = None,
    the_state: ContactState | None = None,
    *,
    at: datetime,
    rulebooks: Rulebooks | None = None,
    strategies: Strategies | None = None,
) -> Decision:
    """``decide`` with the defaults above and the packaged rulebooks and strategies."""
    return decide(
        the_loan or loan(),
        the_borrower or borrower(),
        the_state or state(),
        at,
        rulebooks or RULEBOOKS,
        strategies or STRATEGIES,
    )


def copy_rulebooks(target: Path, replace: dict[str, str] | None = None, lender: str | None = None) -> Path:
    """Copy the packaged rulebooks to ``target/rulebooks`` (some files replaced) and the lender policy."""
    books = target / "rulebooks"
    books.mkdir(parents=True, exist_ok=True)
    for path in DEFAULT_RULEBOOKS_DIR.glob("*.yaml"):
        (books / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    for name, text in (replace or {}).items():
        (books / name).write_text(text, encoding="utf-8")
    policy = target / "policy.yaml"
    policy.write_text(lender if lender is not None else DEFAULT_LENDER_POLICY.read_text(encoding="utf-8"))
    return books
