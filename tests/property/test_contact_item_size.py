"""A borrower's whole life of loans through the real claim path: the contact item stays small.

Each example is one borrower with 200 loans, due a month or more apart, each reminded one to three
times (the first steps of the default strategy, claimed at their due instants) and then paid, closed or
charged off; up to two of them stay active for good. Every claim goes through the sender's read
(``read_snapshot(..., old_claims_over=...)``, consistent, on template.yaml's tables on moto) and
``ContactStore.claim``, which drops the claims of loans that ended long ago. Checked at every claim:

- the CONTACT item, measured by DynamoDB's rules (bench.capacity.item_size), stays under 1 KB;
- a claim dropped is one of a loan that ended, whose last send is older than the sends window;
- the claims of a loan still active are all there; at the end none of them can be claimed again.

A life is ~1,000 requests to moto (a read and a claim per reminder), so ``make test`` runs the densest
life the strategy allows (the largest item: its size is the bound docs/reliability.md states) and
``make soak`` adds SOAK_EXAMPLES random ones.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.capacity import item_size
from dunning.adapters.contact import ClaimConflict, claim_loan
from dunning.adapters.dynamo import Dynamo, to_wire
from dunning.adapters.lender import Lender
from dunning.adapters.reads import Wanted, read_snapshot
from dunning.adapters.state import StateStore
from dunning.items import loan_to_item
from dunning.models import Loan, LoanStatus
from dunning.sender import MIN_SENDS_KEPT
from dunning.strategy import Step, load_strategies
from dunning_local.stack import LocalStack

SOAK_EXAMPLES = int(os.environ.get("SOAK_EXAMPLES", "0"))
LOANS = 200
BUDGET_BYTES = 1024
FIRST_DUE = date(2026, 1, 5)
STRATEGIES = load_strategies()
STEPS: tuple[Step, ...] = STRATEGIES.get("default").steps
ENDINGS = (LoanStatus.PAID, LoanStatus.CLOSED, LoanStatus.CHARGED_OFF)
MAX_REMINDERS = 3
MIN_GAP_DAYS = 30


@dataclass(frozen=True)
class Life:
    """Per loan: days from the previous loan's due date, reminders sent, days from the last one to the
    loan's end and how it ended; ``forever``: the loans that never end."""

    gaps: tuple[int, ...]
    reminders: tuple[int, ...]
    ends_after: tuple[int, ...]
    endings: tuple[LoanStatus, ...]
    forever: frozenset[int]


def _per_loan(values: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(values, min_size=LOANS, max_size=LOANS).map(tuple)


lives = st.builds(
    Life,
    gaps=_per_loan(st.integers(MIN_GAP_DAYS, 60)),
    reminders=_per_loan(st.integers(1, MAX_REMINDERS)),
    ends_after=_per_loan(st.integers(0, 20)),
    endings=st.lists(st.sampled_from(ENDINGS), min_size=LOANS, max_size=LOANS).map(tuple),
    forever=st.frozensets(st.integers(0, LOANS - 1), max_size=2),
)
# The largest item these lives allow: loans as close as they come, each reminded as often as it can be
# (the sends window then holds four loans' sends), and two that never end (the first one's claims are
# carried all along). Fewer loans that never end leave as many claims waiting to be pruned instead.
DENSEST = Life(
    gaps=(MIN_GAP_DAYS,) * LOANS,
    reminders=(MAX_REMINDERS,) * LOANS,
    ends_after=(20,) * LOANS,
    endings=tuple(ENDINGS[n % len(ENDINGS)] for n in range(LOANS)),
    forever=frozenset({0, LOANS // 2}),
)


@dataclass(frozen=True, order=True)
class Event:
    at: datetime
    kind: str  # "claim" | "end"
    loan: int
    step: int = 0


def dues_of(life: Life) -> list[date]:
    return [FIRST_DUE + timedelta(days=sum(life.gaps[: n + 1])) for n in range(LOANS)]


def events_of(life: Life) -> list[Event]:
    events: list[Event] = []
    for n, due in enumerate(dues_of(life)):
        at = [
            datetime.combine(due + timedelta(days=s.offset_days), datetime.min.time(), UTC)
            + timedelta(hours=15)
            for s in STEPS[: life.reminders[n]]
        ]
        events += [Event(a, "claim", n, i) for i, a in enumerate(at)]
        if n not in life.forever:
            events.append(Event(at[-1] + timedelta(days=life.ends_after[n], hours=3), "end", n))
    return sorted(events)


class Borrower:
    """One borrower's loans and contact item on the stack's tables, and what the test knows of them."""

    numbers = itertools.count()

    def __init__(self, stack: LocalStack, session: boto3.Session) -> None:
        number = next(self.numbers)
        self.borrower_id = f"B-{number:06d}"
        self.prefix = f"L{number:02d}"
        dynamo = Dynamo()
        self.lender = Lender(dynamo, stack.tables["LoansTable"], stack.tables["BorrowersTable"])
        self.state = StateStore(dynamo, stack.tables["StateTable"])
        self.loans = session.resource("dynamodb").Table(stack.tables["LoansTable"])
        self.items: list[dict[str, object]] = []  # the loans as first written, active
        self.claimed: dict[str, datetime] = {}  # claim → when
        self.ended: set[str] = set()
        self.largest = 0

    def loan_id(self, n: int) -> str:
        return f"{self.prefix}-{n:04d}"

    def open(self, dues: list[date]) -> None:
        """Every loan into the Loans table, active (25 a request: the life is long enough as it is)."""
        self.items = [
            loan_to_item(
                Loan(
                    loan_id=self.loan_id(n),
                    borrower_id=self.borrower_id,
                    currency="USD",
                    amount_due=Decimal("120.00"),
                    due_date=due,
                    jurisdiction="US-NY",
                )
            )
            for n, due in enumerate(dues)
        ]
        with self.loans.batch_writer() as batch:
            for item in self.items:
                batch.put_item(Item=item)

    def end(self, n: int, status: LoanStatus) -> None:
        self.loans.put_item(Item={**self.items[n], "status": status.value})
        self.ended.add(self.loan_id(n))

    def claim(self, loan_id: str, step: Step, at: datetime) -> None:
        """The sender's read and claim; checks what the claim dropped and measures the item before it."""
        snap = read_snapshot(
            self.lender,
            self.state,
            [Wanted(loan_id, self.borrower_id)],
            consistent=True,
            old_claims_over=STRATEGIES.most_steps,
        )
        self.measure(snap.contacts.get(self.borrower_id))
        before = snap.contact_state(self.borrower_id, None)
        self.check_active_claims_kept(before.claims)
        after = self.state.contact.claim(
            before,
            loan_id=loan_id,
            step=step.name,
            channel=step.channel,
            at=at,
            keep_sends_for=MIN_SENDS_KEPT,
            ended_loans=snap.ended_loans(),
        )
        for dropped in sorted(before.claims - after.claims):
            assert claim_loan(dropped) in self.ended, f"{dropped}: its loan has not ended"
            last_send = max(w for c, w in self.claimed.items() if claim_loan(c) == claim_loan(dropped))
            assert last_send <= at - MIN_SENDS_KEPT, f"{dropped}: its loan was sent to on {last_send}"
        self.claimed[f"{loan_id}#{step.name}"] = at

    def measure(self, contact: dict[str, object] | None) -> None:
        self.measure_wire(to_wire(contact or {}))

    def measure_wire(self, contact: Mapping[str, Mapping[str, Any]]) -> None:
        self.largest = max(self.largest, item_size(contact))

    def check_active_claims_kept(self, claims: frozenset[str]) -> None:
        lost = {c for c in self.claimed if claim_loan(c) not in self.ended} - claims
        assert lost == set(), f"claims of active loans were dropped: {sorted(lost)}"

    def reclaim_active(self, at: datetime) -> None:
        """Every step claimed for a loan still active is refused a second time, even with every ended
        loan's claims prunable."""
        for claim in sorted(c for c in self.claimed if claim_loan(c) not in self.ended):
            loan_id, _, step = claim.partition("#")
            current = self.state.contact.read_contact(self.borrower_id, None)
            with pytest.raises(ClaimConflict):
                self.state.contact.claim(
                    current,
                    loan_id=loan_id,
                    step=step,
                    channel=STEPS[0].channel,
                    at=at,
                    keep_sends_for=MIN_SENDS_KEPT,
                    ended_loans=self.ended,
                )


def live(borrower: Borrower, life: Life) -> datetime:
    """Run a life; returns the instant of its last event."""
    borrower.open(dues_of(life))
    at = datetime.combine(FIRST_DUE, datetime.min.time(), UTC)
    for event in events_of(life):
        at = event.at
        if event.kind == "end":
            borrower.end(event.loan, life.endings[event.loan])
        else:
            borrower.claim(borrower.loan_id(event.loan), STEPS[event.step], at)
    return at


def check_life(stack: LocalStack, session: boto3.Session, life: Life) -> int:
    """Run a life on a new borrower; returns the largest size its contact item reached."""
    borrower = Borrower(stack, session)
    end = live(borrower, life)
    key = {"pk": {"S": f"BORROWER#{borrower.borrower_id}"}, "sk": {"S": "CONTACT"}}
    final = session.client("dynamodb").get_item(TableName=stack.tables["StateTable"], Key=key)["Item"]
    borrower.measure_wire(final)
    borrower.reclaim_active(end + timedelta(days=1))
    return borrower.largest


def test_the_densest_life_of_200_loans_keeps_the_contact_item_under_1_kb(
    stack: LocalStack, aws: boto3.Session
) -> None:
    largest = check_life(stack, aws, DENSEST)

    print(f"densest life of {LOANS} loans: largest contact item {largest} bytes")
    assert largest < BUDGET_BYTES, f"contact item reached {largest} bytes"


@pytest.mark.skipif(SOAK_EXAMPLES == 0, reason="make soak (SOAK_EXAMPLES=N) only")
def test_soak_random_lives_of_200_loans_keep_the_contact_item_under_1_kb(
    stack: LocalStack, aws: boto3.Session
) -> None:
    sizes: list[int] = []

    @settings(
        max_examples=SOAK_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(lives)
    def run(life: Life) -> None:
        sizes.append(check_life(stack, aws, life))
        assert sizes[-1] < BUDGET_BYTES, f"contact item reached {sizes[-1]} bytes"

    run()
    print(f"\nSOAK {len(sizes)} lives of {LOANS} loans: largest contact item {max(sizes)} bytes")
