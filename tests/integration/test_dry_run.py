"""``dunning plan --dry-run`` against the real tick, on the same seeded book and instant.

The dry run must count what the tick actually sends: within one tick the sender records each send on
the borrower's contact item before it decides the borrower's next job, so a second loan of a borrower
at a daily cap is held back. A dry run that decided every loan on its own over-counted those.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from dunning.adapters import Adapters
from dunning.models import DecisionKind
from dunning_local.audit import table_items
from dunning_local.embedded import embedded_aws
from dunning_local.operate import PlanRow, plan_at
from dunning_local.simulate import DemoOptions, Simulation
from dunning_local.stack import build_local_stack
from dunning_local.targets import Target

AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _sends(rows: list[PlanRow]) -> Counter[tuple[str, str]]:
    return Counter(
        (r.decision.borrower_id, r.decision.channel.value if r.decision.channel else "?")
        for r in rows
        if r.decision.kind == DecisionKind.SEND
    )


@pytest.fixture(scope="module")
def dry_and_real(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[PlanRow], list[dict]]:
    """A 500-loan book seeded at 05:00; the dry run at 15:00 (which must write nothing), then the real
    tick at 15:00."""
    options = DemoOptions(loans=500, hours=1, seed=7, quiet=True, out=tmp_path_factory.mktemp("dry"))
    with embedded_aws() as session:
        stack = build_local_stack(session, parameters={"ShardCount": options.shards})
        sim = Simulation(session, stack, options)
        sim.seed()
        tables = stack.tables
        target = Target(
            Adapters.for_tables(
                loans_table=tables["LoansTable"],
                borrowers_table=tables["BorrowersTable"],
                state_table=tables["StateTable"],
                ledger_table=tables["LedgerTable"],
            ),
            options.shards,
            "embedded",
        )
        before = len(table_items(stack.account_id, stack.region, tables["LedgerTable"]))
        rows = plan_at(target, AT)
        after = len(table_items(stack.account_id, stack.region, tables["LedgerTable"]))
        sim.tick(AT)
        ledger = table_items(stack.account_id, stack.region, tables["LedgerTable"])
    assert before == after, "the dry run wrote to the ledger"
    return rows, [i for i in ledger if i.get("type") == "MESSAGE"]


def test_the_dry_run_contacts_as_many_as_the_real_tick_sends(
    dry_and_real: tuple[list[PlanRow], list[dict]],
) -> None:
    rows, messages = dry_and_real

    assert sum(_sends(rows).values()) == len(messages)


def test_the_dry_run_contacts_the_same_borrowers_on_the_same_channels(
    dry_and_real: tuple[list[PlanRow], list[dict]],
) -> None:
    rows, messages = dry_and_real
    real = Counter((str(m["borrower_id"]), str(m["channel"])) for m in messages)

    assert _sends(rows) == real


def test_loans_held_back_within_the_tick_say_which_cap_and_what_was_planned(
    dry_and_real: tuple[list[PlanRow], list[dict]],
) -> None:
    rows, _ = dry_and_real
    held = [r for r in rows if r.held_in_tick]

    assert held, "the seeded book has borrowers with two loans due at 15:00"
    assert all(r.decision.kind != DecisionKind.SEND for r in held), "held back means not sent"
    assert all(r.planned is not None and r.planned.kind == DecisionKind.SEND for r in held)
    assert all(r.decision.rule_id and r.decision.reason for r in held), "each says why"
