"""The cross-table read behind every decision: loans, borrowers, contact items and consent items.

One BatchGetItem (100 keys a request) fetches everything whose key is known; a key learnt from what was
just read (the borrower of a loan, the phone of a borrower) is fetched in a further round. With the
hints the planner and the sender carry (borrower id and phone from the due-index or the job), the common
case is a single round; a stale hint (the borrower changed number) costs one more, never a wrong read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dunning.adapters.contact import contact_state
from dunning.adapters.dynamo import Item
from dunning.adapters.lender import Lender
from dunning.adapters.state import StateStore
from dunning.adapters.state_keys import CONSENT, CONTACT, consent_key, contact_key
from dunning.ids import is_valid_id
from dunning.items import InvalidItem, borrower_from_item, loan_from_item
from dunning.models import Borrower, ContactState, Loan

# The Borrowers contract's bound on ``phone`` (E.164 is at most 16 characters).
MAX_PHONE_LENGTH = 32


@dataclass(frozen=True)
class Wanted:
    """A loan to read, with what is already believed about its borrower (hints, may be stale)."""

    loan_id: str
    borrower_id: str | None = None
    phone: str | None = None


class MissingItem(InvalidItem):
    """The loan (or its borrower) is not in the lender's table: deleted, or not written yet."""


@dataclass(frozen=True)
class Subject:
    """Everything one decision needs, parsed."""

    loan: Loan
    borrower: Borrower
    state: ContactState


@dataclass
class Snapshot:
    """Raw items by id; parsing (and rejecting) them is the caller's job (:mod:`dunning.items`)."""

    loans: dict[str, Item] = field(default_factory=dict)
    borrowers: dict[str, Item] = field(default_factory=dict)
    contacts: dict[str, Item] = field(default_factory=dict)
    consents: dict[str, Item] = field(default_factory=dict)
    rounds: int = 0

    def contact_state(self, borrower_id: str, phone: str | None) -> ContactState:
        return contact_state(
            borrower_id, self.contacts.get(borrower_id), self.consents.get(phone) if phone else None, phone
        )

    def subject(self, loan_id: str) -> Subject:
        """The parsed loan, borrower and contact state; raises :class:`InvalidItem` (or
        :class:`MissingItem`) naming what is wrong."""
        loan_item = self.loans.get(loan_id)
        if loan_item is None:
            raise MissingItem("loan", loan_id, "not found in the Loans table")
        loan = loan_from_item(loan_item)
        borrower_item = self.borrowers.get(loan.borrower_id)
        if borrower_item is None:
            raise MissingItem("borrower", loan.borrower_id, "not found in the Borrowers table")
        borrower = borrower_from_item(borrower_item)
        return Subject(loan, borrower, self.contact_state(borrower.borrower_id, borrower.phone))


def _phone_of(item: Item | None) -> str | None:
    phone = (item or {}).get("phone")
    return phone if isinstance(phone, str) and phone else None


def read_snapshot(
    lender: Lender,
    state: StateStore,
    wanted: Iterable[Wanted],
    *,
    consistent: bool = False,
    max_rounds: int = 4,
) -> Snapshot:
    """Read the loans in ``wanted`` and everything a decision about them needs.

    ``consistent`` for the send-time re-check: a payment or an opt-out written a moment ago must be seen.
    """
    wanted = list(wanted)
    snap = Snapshot()
    asked_loans: set[str] = set()
    asked_borrowers: set[str] = set()
    asked_phones: set[str] = set()
    dynamo = lender.dynamo
    for _ in range(max_rounds):
        loan_ids = {w.loan_id for w in wanted} - asked_loans
        borrower_ids = {w.borrower_id for w in wanted if w.borrower_id}
        borrower_ids |= {
            str(i["borrower_id"]) for i in snap.loans.values() if isinstance(i.get("borrower_id"), str)
        }
        borrower_ids -= asked_borrowers
        phones = {w.phone for w in wanted if w.phone}
        phones |= {p for p in (_phone_of(i) for i in snap.borrowers.values()) if p}
        phones -= asked_phones
        # An id or number that cannot be a key part is not fetched (DynamoDB would refuse the whole
        # request): its loan then reads as invalid and is recorded data.invalid, alone.
        loan_ids = {i for i in loan_ids if is_valid_id(i)}
        borrower_ids = {i for i in borrower_ids if is_valid_id(i)}
        phones = {p for p in phones if len(p) <= MAX_PHONE_LENGTH}
        if not (loan_ids or borrower_ids or phones):
            break
        found = dynamo.batch_get(
            {
                lender.loans_table: [lender.loan_key(i) for i in sorted(loan_ids)],
                lender.borrowers_table: [lender.borrower_key(i) for i in sorted(borrower_ids)],
                state.table: [contact_key(i) for i in sorted(borrower_ids)]
                + [consent_key(p) for p in sorted(phones)],
            },
            consistent=consistent,
        )
        snap.rounds += 1
        asked_loans |= loan_ids
        asked_borrowers |= borrower_ids
        asked_phones |= phones
        for item in found.get(lender.loans_table, []):
            snap.loans[str(item["loan_id"])] = item
        for item in found.get(lender.borrowers_table, []):
            snap.borrowers[str(item["borrower_id"])] = item
        for item in found.get(state.table, []):
            pk = str(item["pk"])
            if item.get("sk") == CONTACT:
                snap.contacts[pk.removeprefix("BORROWER#")] = item
            elif item.get("sk") == CONSENT:
                snap.consents[pk.removeprefix("PHONE#")] = item
    return snap
