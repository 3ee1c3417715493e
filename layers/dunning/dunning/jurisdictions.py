"""Candidate jurisdictions: every place whose rules apply to a borrower, why, and the policy they make.

As with time zones, a borrower may be in more than one place, and the rules of every plausible place
apply (strictest wins). The candidates are:

- ``loan``: the loan's ``jurisdiction``;
- ``address``: the borrower's address, ``country`` or ``country-region``;
- ``phone``: what the phone number implies (``dunning.zones.phone_regions``): the state or province of a
  North American area code (617 → ``US-MA``, 212/646/718/917/347/929/332 → ``US-NY-NYC``, 416 →
  ``CA-ON``), else the number's country. Whether it is added depends on the address and on the policy
  for the number's country in ``data/phone_policy.yaml`` (by default: when the address is missing or
  conflicts; a phone region never removes anything).

Each candidate brings every rulebook whose code is a segment prefix of it (``US-NY-NYC`` brings ``US``
and ``US-NY-NYC``). ``candidate_jurisdictions`` is the one function the engine, the sender's renderer
(through ``policy_for``) and the demo's audit use, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from dunning.models import AppliedJurisdiction, Borrower, JurisdictionSource, Loan, build_validators
from dunning.rules import Policy, Rulebooks, address_code
from dunning.zones import phone_info

# Every decision lists the jurisdictions it applied.
build_validators(AppliedJurisdiction)

Relation = Literal["missing", "agreeing", "conflicting"]

_ADDS: Final[dict[str, frozenset[Relation]]] = {
    "when_address_missing": frozenset({"missing"}),
    "when_address_missing_or_conflicting": frozenset({"missing", "conflicting"}),
    "always": frozenset({"missing", "conflicting", "agreeing"}),
}


@dataclass(frozen=True, slots=True)
class Candidates:
    """The jurisdictions that apply to one loan and borrower, the policy they merge into, and notes.

    ``applied`` lists each candidate with its source and the rulebook it brings (None: no rulebook of
    its own); the rulebooks named there are exactly those merged into ``policy`` (plus the lender's).
    ``phone_regions`` is everything the number implies, applied or not. ``notes`` explain a phone region
    the policy left out, for the decision's reason.
    """

    applied: tuple[AppliedJurisdiction, ...]
    policy: Policy
    phone_regions: tuple[str, ...]
    notes: tuple[str, ...]

    def codes(self, source: JurisdictionSource | None = None) -> tuple[str, ...]:
        """The candidate codes, optionally of one source only."""
        return tuple(j.code for j in self.applied if source is None or j.source == source)


def candidate_jurisdictions(loan: Loan, borrower: Borrower, rulebooks: Rulebooks) -> Candidates:
    """Every jurisdiction whose rules apply to this loan and borrower (see module doc), and their policy.

    Pure and cached; never raises for data a validated ``Loan``/``Borrower`` can hold (an invalid phone
    number implies nothing).
    """
    phone = phone_info(borrower.phone) if borrower.phone else None
    regions = phone.regions if phone is not None and phone.valid else ()
    return _candidates(loan.jurisdiction, address_code(borrower), regions, rulebooks)


def policy_for(loan: Loan, borrower: Borrower, rulebooks: Rulebooks) -> Policy:
    """The strictest merged policy of every rulebook that applies to this loan and borrower.

    The same policy the engine decides under: that of ``candidate_jurisdictions``.
    """
    return candidate_jurisdictions(loan, borrower, rulebooks).policy


def relation(phone_region: str, address: str | None) -> Relation:
    """How a phone region relates to the address code: missing (no address, or the address is less
    precise than the phone), agreeing (same place, or the phone is less precise), or conflicting."""
    if not address:
        return "missing"
    phone, where = phone_region.split("-"), address.split("-")
    if phone[: len(where)] == where:
        return "agreeing" if len(phone) == len(where) else "missing"
    if where[: len(phone)] == phone:
        return "agreeing"
    return "conflicting"


@lru_cache(maxsize=8192)
def _candidates(
    jurisdiction: str, address: str | None, regions: tuple[str, ...], rulebooks: Rulebooks
) -> Candidates:
    applied_phone: list[str] = []
    notes: list[str] = []
    for region in regions:
        how = relation(region, address)
        rule = rulebooks.phone_policy.for_country(region.split("-")[0])
        if how in _ADDS[rule.adds]:
            applied_phone.append(region)
        elif how == "conflicting":
            notes.append(
                f"the phone number's region {region} was not applied: for numbers of "
                f"{region.split('-')[0]} a phone region is added {rule.adds.replace('_', ' ')} "
                f"(address {address})"
            )
    phone = tuple(applied_phone)
    if not rulebooks.has_rulebook(jurisdiction):
        # A loan in a region without a rulebook of its own (a typo such as US-ZZ, or a state with no
        # stricter rules) falls back to its country's rulebook: say so, as for an invalid time zone.
        country = jurisdiction.split("-")[0]
        if country != jurisdiction and rulebooks.has_rulebook(country):
            notes.append(f"loan jurisdiction {jurisdiction} has no rulebook of its own: {country}'s applies")
    signals: list[tuple[str, JurisdictionSource]] = [(jurisdiction, "loan")]
    if address:
        signals.append((address, "address"))
    signals += [(region, "phone") for region in phone]
    return Candidates(
        _applied(signals, rulebooks),
        rulebooks.policy(jurisdiction, address, phone),
        regions,
        tuple(notes),
    )


def _applied(
    signals: list[tuple[str, JurisdictionSource]], rulebooks: Rulebooks
) -> tuple[AppliedJurisdiction, ...]:
    # Each signal is listed with the rulebook of its own code; a broader rulebook it brings (``US`` for
    # ``US-MA``) is listed once, under the first signal that brings it.
    items: list[AppliedJurisdiction] = []
    listed: set[str] = set()
    seen: set[tuple[str, str]] = set()
    for code, source in signals:
        parts = code.split("-")
        for n in range(1, len(parts)):
            broader = "-".join(parts[:n])
            if rulebooks.has_rulebook(broader) and broader not in listed:
                items.append(AppliedJurisdiction(code=broader, source=source, rulebook=broader))
                listed.add(broader)
                seen.add((broader, source))
        if (code, source) not in seen:
            rulebook = code if rulebooks.has_rulebook(code) else None
            items.append(AppliedJurisdiction(code=code, source=source, rulebook=rulebook))
            listed.add(code)
            seen.add((code, source))
    return tuple(items)


def unknown_country_hint(candidates: Candidates, country: str) -> str:
    """For a ``jurisdiction.unknown`` STOP: why a phone region of the loan's country does not help."""
    here = [j.code for j in candidates.applied if j.source == "phone" and j.code.split("-")[0] == country]
    if not here:
        return ""
    return (
        f"; the phone number suggests {', '.join(here)}, but a number only adds rules: it does not stand "
        "in for the loan's jurisdiction or the address"
    )
