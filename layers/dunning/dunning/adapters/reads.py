"""The cross-table read behind every decision: loans, borrowers, contact items and consent items.

One BatchGetItem (100 keys a request) fetches everything whose key is known; a key learnt from what was
just read (the borrower of a loan, the phone of a borrower) is fetched in a further round. With the
hints the planner and the sender carry (borrower id and phone from the due-index or the job), the common
case is a single round; a stale hint (the borrower changed number) costs one more, never a wrong read.

The sender also reads the loans named by a contact item's *old* claims, those whose loan has no send left
in the item's ``sends`` list (claimed more than the sends window ago, at least ``MIN_SENDS_KEPT``), so
that its claim can prune the claims of the loans that ended (docs/reliability.md, "The contact item
stays small"). That is one more round, and only for a contact item holding more old claims than one loan
can have (``old_claims_over``): a borrower whose one old loan is still active (a handed-off loan) does
not cost a read on every send, and what waits to be pruned stays under one cadence's worth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from dunning.adapters.contact import claim_loan, contact_state
from dunning.adapters.dynamo import Item, UnprocessedError
from dunning.adapters.lender import Lender
from dunning.adapters.state import StateStore
from dunning.adapters.state_keys import CONSENT, CONTACT, consent_key, contact_key
from dunning.ids import is_valid_id
from dunning.items import TERMINAL, InvalidItem, borrower_from_item, loan_from_item, raw_status
from dunning.models import Borrower, ContactState, Loan, build_validators
from dunning.observability import PackageLogger

logger = PackageLogger(__name__)
# Every read validates its loan and borrower (the planner's and the sender's every record).
build_validators(Loan, Borrower)

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
    # Loans read only because a contact item's old claims name them (``read_snapshot(old_claims_over=)``).
    claimed_loans: set[str] = field(default_factory=set)

    def ended_loans(self) -> frozenset[str]:
        """Of the ``claimed_loans``, those that ended: a terminal status, or gone from the Loans table."""
        return frozenset(
            i for i in self.claimed_loans if i not in self.loans or raw_status(self.loans[i]) in TERMINAL
        )

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
        phone = borrower.phone  # as ``contact_state`` above, without its frame
        state = contact_state(
            borrower.borrower_id,
            self.contacts.get(borrower.borrower_id),
            self.consents.get(phone) if phone else None,
            phone,
        )
        # What the dataclass's ``__init__`` sets, set at once (``dynamo.WriteOp.put``): one per loan.
        subject = object.__new__(Subject)
        object.__setattr__(subject, "__dict__", {"loan": loan, "borrower": borrower, "state": state})
        return subject


def _phone_of(item: Item | None) -> str | None:
    phone = (item or {}).get("phone")
    return phone if isinstance(phone, str) and phone else None


def _old_claimed_loans(contact: Item, over: int) -> set[str]:
    """Loans a contact item holds claims of but no send of (claimed longer ago than its sends window),
    when it holds more than ``over`` such claims; else none."""
    sent = {str(s.get("loan_id")) for s in contact.get("sends", [])}
    old = [loan for c in contact.get("claims", set()) if (loan := claim_loan(str(c))) not in sent]
    return set(old) if len(old) > over else set()


def read_snapshot(
    lender: Lender,
    state: StateStore,
    wanted: Iterable[Wanted],
    *,
    consistent: bool = False,
    max_rounds: int = 4,
    old_claims_over: int | None = None,
) -> Snapshot:
    """Read the loans in ``wanted`` and everything a decision about them needs.

    ``consistent`` for the send-time re-check: a payment or an opt-out written a moment ago must be seen.
    ``old_claims_over``: also read the loans of the old claims of a contact item holding more of them than
    this (:meth:`Snapshot.ended_loans`); None: never.
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
    if old_claims_over is not None:
        _read_claimed_loans(lender, snap, asked_loans, old_claims_over, consistent=consistent)
    return snap


def _read_claimed_loans(
    lender: Lender, snap: Snapshot, asked: set[str], over: int, *, consistent: bool
) -> None:
    """One more round: the loans of the contact items' old claims, for the claim to prune the ended ones.

    Pruning can wait: if this read fails, nothing is pruned and the batch goes on (never retried for it).
    """
    loan_ids = set().union(*(_old_claimed_loans(c, over) for c in snap.contacts.values())) - asked
    loan_ids = {i for i in loan_ids if is_valid_id(i)}
    if not loan_ids:
        return
    try:
        found = lender.dynamo.batch_get(
            {lender.loans_table: [lender.loan_key(i) for i in sorted(loan_ids)]}, consistent=consistent
        )
    except (ClientError, UnprocessedError) as exc:
        logger.warning("claimed loans not read; no claim pruned", extra={"error": type(exc).__name__})
        return
    snap.rounds += 1
    snap.claimed_loans |= loan_ids
    for item in found.get(lender.loans_table, []):
        snap.loans[str(item["loan_id"])] = item
