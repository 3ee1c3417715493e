"""Operator commands: ``dunning plan --dry-run`` and ``dunning explain``.

Both read the product's tables and write nothing. They run against a local stack (``--endpoint``, e.g.
moto_server after ``dunning seed``) or against a deployed stack when the table names are in the
environment (``LOANS_TABLE``, ``BORROWERS_TABLE``, ``STATE_TABLE``, ``LEDGER_TABLE``, ``SHARD_COUNT``:
the stack outputs) and the usual AWS credentials are set.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dunning.adapters import Adapters
from dunning.adapters.reads import Wanted, read_snapshot
from dunning.adapters.state import shard_names
from dunning.engine import decide
from dunning.items import InvalidItem, iso_utc
from dunning.models import Decision, DecisionKind
from dunning.observability import mask_phone
from dunning.render import RenderError, render_message
from dunning.rules import load_rulebooks, policy_for
from dunning.strategy import load_strategies

_TABLE_VARIABLES = ("LOANS_TABLE", "BORROWERS_TABLE", "STATE_TABLE", "LEDGER_TABLE")


@dataclass(frozen=True)
class Target:
    adapters: Adapters
    shard_count: int
    where: str


def connect(endpoint: str | None) -> Target:
    """Adapters over the stack at ``endpoint`` (local), or over the tables named in the environment."""
    from dunning_local.cli import UsageError

    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            os.environ.setdefault(name, value)
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        from botocore.exceptions import EndpointConnectionError

        from dunning_local.stack import build_local_stack, local_clients

        try:
            stack = build_local_stack(local_clients(endpoint))
        except EndpointConnectionError as exc:
            raise UsageError(
                f"cannot reach {endpoint}: start it with `.venv/bin/moto_server -p 5000` and seed it with "
                f"`dunning seed --endpoint {endpoint}`"
            ) from exc
        tables = stack.tables
        adapters = Adapters.for_tables(
            loans_table=tables["LoansTable"],
            borrowers_table=tables["BorrowersTable"],
            state_table=tables["StateTable"],
            ledger_table=tables["LedgerTable"],
        )
        return Target(adapters, int(stack.parameters.get("ShardCount", 16)), endpoint)
    missing = [v for v in _TABLE_VARIABLES if not os.environ.get(v)]
    if missing:
        raise UsageError(
            "no stack to read: pass --endpoint http://127.0.0.1:5000 (moto_server) or set "
            f"{', '.join(missing)} to the deployed stack's table names"
        )
    adapters = Adapters.for_tables(
        loans_table=os.environ["LOANS_TABLE"],
        borrowers_table=os.environ["BORROWERS_TABLE"],
        state_table=os.environ["STATE_TABLE"],
        ledger_table=os.environ["LEDGER_TABLE"],
    )
    return Target(adapters, int(os.environ.get("SHARD_COUNT", "16")), "AWS")


def plan_at(target: Target, at: datetime) -> list[tuple[Decision, Any]]:
    """What a tick at ``at`` would decide for every due loan, with the text of each SEND. Writes nothing."""
    rulebooks, strategies = load_rulebooks(), load_strategies()
    state, lender = target.adapters.state, target.adapters.lender
    out: list[tuple[Decision, Any]] = []
    for shard in shard_names(target.shard_count):
        for entries, _ in state.due_pages(shard, at, page_size=100):
            snapshot = read_snapshot(
                lender, state, [Wanted(e.loan_id, e.borrower_id, e.phone) for e in entries]
            )
            for entry in entries:
                try:
                    subject = snapshot.subject(entry.loan_id)
                except InvalidItem as exc:
                    out.append((_invalid(entry.loan_id, at, str(exc)), None))
                    continue
                decision = decide(subject.loan, subject.borrower, subject.state, at, rulebooks, strategies)
                rendered: Any = None
                if decision.kind == DecisionKind.SEND:
                    policy = policy_for(subject.loan, subject.borrower, rulebooks)
                    try:
                        rendered = render_message(
                            decision,
                            subject.loan,
                            subject.borrower,
                            required_content=policy.required_content,
                            max_sms_segments=policy.max_sms_segments,
                            jurisdictions=policy.jurisdictions,
                        )
                    except RenderError as exc:
                        rendered = exc
                out.append((decision, rendered))
    return out


def _invalid(loan_id: str, at: datetime, reason: str) -> Decision:
    return Decision(
        kind=DecisionKind.STOP, loan_id=loan_id, borrower_id="?", at=at, rule_id="data.invalid", reason=reason
    )


def plan_dry_run(*, endpoint: str | None, at: datetime, limit: int) -> int:
    """Print who a tick at ``at`` would contact (channel, text) and who not (rule, reason)."""
    target = connect(endpoint)
    rows = plan_at(target, at)
    kinds = Counter(d.kind.value for d, _ in rows)
    print(f"Tick {iso_utc(at)} on {target.where} — dry run: nothing is written and nothing is sent.")
    print(
        f"{len(rows)} loan(s) due: {kinds.get('SEND', 0)} would be contacted, "
        f"{kinds.get('DEFER', 0)} held back, {kinds.get('STOP', 0)} stopped."
    )
    for kind, title in (("SEND", "Would send"), ("DEFER", "Held back"), ("STOP", "Stopped")):
        chosen = [(d, r) for d, r in rows if d.kind.value == kind]
        if not chosen:
            continue
        print(f"\n{title} ({len(chosen)}):")
        for decision, rendered in chosen[:limit]:
            print("  " + _row(decision, rendered))
        if len(chosen) > limit:
            print(f"  … and {len(chosen) - limit} more (--limit)")
    return 0


def _row(decision: Decision, rendered: Any) -> str:
    head = f"{decision.loan_id:<10} {decision.borrower_id:<9}"
    if decision.kind == DecisionKind.SEND:
        channel = decision.channel.value if decision.channel else "?"
        if isinstance(rendered, RenderError):
            return f"{head} {channel:<4} {decision.step:<5} NOT RENDERABLE: {rendered}"
        text = rendered.text if rendered is not None and rendered.text else getattr(rendered, "detail", "")
        text = " ".join(str(text).split())
        return f"{head} {channel:<4} {decision.step:<5} {rendered.locale if rendered else ''}: {text}"
    until = f" until {iso_utc(decision.not_before)}" if decision.not_before else ""
    return f"{head} {decision.rule_id}{until} — {mask_phone_in(decision.reason)}"


def mask_phone_in(text: str) -> str:
    """Reasons name zones and rules, not numbers; mask any E.164 number that slipped in."""
    import re

    return re.sub(r"\+\d{8,15}", lambda m: mask_phone(m.group(0)), text)


def explain_loan(*, endpoint: str | None, loan_id: str) -> int:
    """Print a loan's full trail: decisions, messages, receipts, outcomes and replies, in order."""
    from dunning.explain import explain
    from dunning_local.cli import UsageError

    target = connect(endpoint)
    trail = explain(loan_id, target.adapters)
    if not trail:
        raise UsageError(
            f"no records for loan {loan_id} on {target.where} (is the id right? has a tick run?)"
        )
    print(f"Loan {loan_id} — {len(trail)} record(s), oldest first:")
    for entry in trail:
        print("  " + mask_phone_in(entry.line()))
    return 0
