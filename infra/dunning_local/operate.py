"""Operator commands: ``dunning plan --dry-run`` and ``dunning explain``.

Both read the product's tables and write nothing. They run against a local stack (``--endpoint``, e.g.
moto_server after ``dunning seed``), against the tables a finished demo kept (``--from out/demo`` after
``dunning demo --keep``), or against a deployed stack when the table names are in the environment
(``LOANS_TABLE``, ``BORROWERS_TABLE``, ``STATE_TABLE``, ``LEDGER_TABLE``, ``SHARD_COUNT``: the stack
outputs) and the usual AWS credentials are set (:mod:`dunning_local.targets`).

The dry run decides every due loan as the planner would, then, borrower by borrower, applies what the
sender enforces within the tick: a send recorded for one loan counts against the caps of the borrower's
next loan, which is re-decided with it. So "would be contacted" is what the real tick sends, and each
loan held back that way is listed with the rule and the reason.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dunning.adapters.cadence import shard_names
from dunning.adapters.reads import Wanted, read_snapshot
from dunning.engine import decide
from dunning.explain import describe_jurisdictions, explain
from dunning.items import InvalidItem, iso_utc
from dunning.jurisdictions import policy_for
from dunning.models import ContactState, Decision, DecisionKind, SendRecord
from dunning.observability import mask_phone
from dunning.render import RenderError, render_under_policy
from dunning.rules import load_rulebooks
from dunning.strategy import load_strategies
from dunning_local.targets import Target, connect
from dunning_local.usage import UsageError

# -- plan --dry-run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanRow:
    """One due loan in a dry run: what the tick would do, the message it would send, and whether a send
    to the same borrower earlier in the tick changed the planner's answer (``held_in_tick``)."""

    decision: Decision
    rendered: Any = None
    planned: Decision | None = None

    @property
    def held_in_tick(self) -> bool:
        return self.planned is not None


def plan_at(target: Target, at: datetime) -> list[PlanRow]:
    """What a tick at ``at`` would do for every due loan, with the text of each send. Writes nothing."""
    rulebooks, strategies = load_rulebooks(), load_strategies()
    state_store, lender = target.adapters.state, target.adapters.lender
    subjects: list[Any] = []
    rows: list[PlanRow] = []
    for shard in shard_names(target.shard_count):
        for entries, _ in state_store.cadence.due_pages(shard, at, page_size=100):
            snapshot = read_snapshot(
                lender, state_store, [Wanted(e.loan_id, e.borrower_id, e.phone) for e in entries]
            )
            for entry in entries:
                try:
                    subjects.append(snapshot.subject(entry.loan_id))
                except InvalidItem as exc:
                    rows.append(PlanRow(_invalid(entry.loan_id, at, str(exc))))
    # The sender records each send on the borrower's contact item before the next job of that borrower
    # is decided: a borrower's loans are decided in turn, each seeing the sends before it.
    by_borrower: dict[str, list[Any]] = defaultdict(list)
    for subject in subjects:
        by_borrower[subject.borrower.borrower_id].append(subject)
    for group in by_borrower.values():
        state: ContactState = group[0].state
        for subject in sorted(group, key=lambda s: s.loan.loan_id):
            loan, borrower = subject.loan, subject.borrower
            planned = decide(loan, borrower, subject.state, at, rulebooks, strategies)
            decision = (
                planned
                if state is subject.state
                else decide(loan, borrower, state, at, rulebooks, strategies)
            )
            changed = planned if planned.kind == DecisionKind.SEND and decision != planned else None
            rendered: Any = None
            if decision.kind == DecisionKind.SEND and decision.channel is not None and decision.step:
                try:
                    rendered = render_under_policy(
                        decision, loan, borrower, policy_for(loan, borrower, rulebooks)
                    )
                except RenderError as exc:
                    rendered = exc
                if not isinstance(rendered, RenderError):
                    send = SendRecord(
                        at=at, channel=decision.channel, loan_id=loan.loan_id, step=decision.step
                    )
                    state = state.model_copy(
                        update={
                            "sends": (*state.sends, send),
                            "claims": state.claims | {ContactState.claim_key(loan.loan_id, decision.step)},
                        }
                    )
            rows.append(PlanRow(decision, rendered, changed))
    return rows


def _invalid(loan_id: str, at: datetime, reason: str) -> Decision:
    return Decision(
        kind=DecisionKind.STOP, loan_id=loan_id, borrower_id="?", at=at, rule_id="data.invalid", reason=reason
    )


def plan_dry_run(*, endpoint: str | None, at: datetime, limit: int, kept: str | None = None) -> int:
    """Print who a tick at ``at`` would contact (channel, text) and who not (rule, reason)."""
    with connect(endpoint, kept) as target:
        rows = plan_at(target, at)
    sends = [r for r in rows if r.decision.kind == DecisionKind.SEND]
    held = [r for r in rows if r.held_in_tick]
    kinds = Counter(r.decision.kind.value for r in rows)
    print(f"Tick {iso_utc(at)} on {target.where} — dry run: nothing is written and nothing is sent.")
    print(
        f"{len(rows)} loan(s) due: {len(sends)} would be contacted, {kinds.get('DEFER', 0)} held back "
        f"({len(held)} of them by a send to the same borrower earlier in this tick), "
        f"{kinds.get('STOP', 0)} stopped."
    )
    sections = (
        ("Would send", sends),
        ("Held back within the tick (the planner would send; the sender's caps would not)", held),
        ("Held back", [r for r in rows if r.decision.kind == DecisionKind.DEFER and not r.held_in_tick]),
        ("Stopped", [r for r in rows if r.decision.kind == DecisionKind.STOP]),
    )
    for title, chosen in sections:
        if not chosen:
            continue
        print(f"\n{title} ({len(chosen)}):")
        for row in chosen[:limit]:
            print("  " + _row(row))
            jurisdictions = getattr(row.decision, "jurisdictions", None)
            if jurisdictions:
                print("      rulebooks: " + describe_jurisdictions([_as_mapping(j) for j in jurisdictions]))
        if len(chosen) > limit:
            print(f"  … and {len(chosen) - limit} more (--limit)")
    return 0


def _as_mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    return dict(dump()) if callable(dump) else {"code": str(value)}


def _row(row: PlanRow) -> str:
    decision, rendered = row.decision, row.rendered
    head = f"{decision.loan_id:<10} {decision.borrower_id:<9}"
    if decision.kind == DecisionKind.SEND:
        channel = decision.channel.value if decision.channel else "?"
        if isinstance(rendered, RenderError):
            return f"{head} {channel:<4} {decision.step:<5} NOT RENDERABLE: {rendered}"
        text = rendered.text if rendered is not None and rendered.text else getattr(rendered, "detail", "")
        text = " ".join(str(text).split())
        return f"{head} {channel:<4} {decision.step:<5} {rendered.locale if rendered else ''}: {text}"
    until = f" until {iso_utc(decision.not_before)}" if decision.not_before else ""
    planned = ""
    if row.planned is not None:
        channel = row.planned.channel.value if row.planned.channel else "?"
        planned = f" (planned: {channel} {row.planned.step})"
    return f"{head} {decision.rule_id}{until}{planned} — {mask_phone_in(decision.reason)}"


def mask_phone_in(text: str) -> str:
    """Reasons name zones and rules, not numbers; mask any E.164 number that slipped in."""
    return re.sub(r"\+\d{8,15}", lambda m: mask_phone(m.group(0)), text)


# -- explain -------------------------------------------------------------------------------------------


def explain_loan(
    *, endpoint: str | None, loan_id: str, as_json: bool = False, kept: str | None = None
) -> int:
    """Print a loan's full trail: decisions, messages, receipts, outcomes and replies, in order."""
    with connect(endpoint, kept) as target:
        trail = explain(loan_id, target.adapters)
    if not trail:
        raise UsageError(
            f"no records for loan {loan_id} on {target.where} (is the id right? has a tick run?)"
        )
    if as_json:
        document = {"loan_id": loan_id, "source": target.where, "trail": [e.as_dict() for e in trail]}
        print(mask_phone_in(json.dumps(document, indent=2, ensure_ascii=False)))
        return 0
    print(f"Loan {loan_id} — {len(trail)} record(s), oldest first:")
    for entry in trail:
        for line in entry.lines():
            print("  " + mask_phone_in(line))
    return 0
