"""Operator commands: ``dunning plan --dry-run`` and ``dunning explain``.

Both read the product's tables and write nothing. They run against a local stack (``--endpoint``, e.g.
moto_server after ``dunning seed``), against the tables a finished demo kept (``--from out/demo`` after
``dunning demo --keep``), or against a deployed stack when the table names are in the environment
(``LOANS_TABLE``, ``BORROWERS_TABLE``, ``STATE_TABLE``, ``LEDGER_TABLE``, ``SHARD_COUNT``: the stack
outputs) and the usual AWS credentials are set.

The dry run decides every due loan as the planner would, then, borrower by borrower, applies what the
sender enforces within the tick: a send recorded for one loan counts against the caps of the borrower's
next loan, which is re-decided with it. So "would be contacted" is what the real tick sends, and each
loan held back that way is listed with the rule and the reason.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dunning.adapters import Adapters
from dunning.adapters.reads import Wanted, read_snapshot
from dunning.adapters.state import shard_names
from dunning.engine import decide
from dunning.explain import describe_jurisdictions, explain
from dunning.items import InvalidItem, iso_utc
from dunning.models import ContactState, Decision, DecisionKind, SendRecord
from dunning.observability import mask_phone
from dunning.render import RenderError, render_message
from dunning.rules import load_rulebooks, policy_for
from dunning.strategy import load_strategies
from dunning_local.usage import UsageError

_TABLE_VARIABLES = ("LOANS_TABLE", "BORROWERS_TABLE", "STATE_TABLE", "LEDGER_TABLE")
KEPT_TABLES = ("LoansTable", "BorrowersTable", "StateTable", "LedgerTable")
KEPT_FILE = "kept-tables.json.gz"


@dataclass(frozen=True)
class Target:
    """The tables a command reads, and where they are (for messages)."""

    adapters: Adapters
    shard_count: int
    where: str


def _local_credentials(endpoint: str | None = None) -> None:
    """Fake credentials for moto, unless real ones are set: local commands need no AWS account."""
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def require_seeded(dynamodb: Any, endpoint: str) -> None:
    """Refuse to run on a moto_server that holds no seeded Dunning stack, before creating anything."""
    from botocore.exceptions import EndpointConnectionError

    from dunning_local.stack import DEFAULT_PREFIX

    try:
        names = [n for page in dynamodb.get_paginator("list_tables").paginate() for n in page["TableNames"]]
    except EndpointConnectionError as exc:
        raise UsageError(
            f"cannot reach {endpoint}: start it with `.venv/bin/moto_server -p 5000`, then "
            f"`dunning seed --endpoint {endpoint}`"
        ) from exc
    loans = f"{DEFAULT_PREFIX}-LoansTable"
    empty = loans not in names or not dynamodb.scan(TableName=loans, Limit=1, Select="COUNT")["Count"]
    if empty:
        raise UsageError(
            f"no seeded Dunning stack on {endpoint}: seed first with `dunning seed --endpoint {endpoint}`"
        )


def _adapters(tables: dict[str, str]) -> Adapters:
    return Adapters.for_tables(
        loans_table=tables["LoansTable"],
        borrowers_table=tables["BorrowersTable"],
        state_table=tables["StateTable"],
        ledger_table=tables["LedgerTable"],
    )


@contextmanager
def connect(endpoint: str | None, kept: str | Path | None = None) -> Iterator[Target]:
    """Adapters over the demo tables kept in ``kept``, the stack at ``endpoint`` (local), or the tables
    named in the environment (a deployed stack), in that order of preference."""
    if kept:
        with _kept_tables(Path(kept)) as target:
            yield target
        return
    if endpoint:
        _local_credentials(endpoint)
        from dunning_local.stack import build_local_stack, local_clients

        clients = local_clients(endpoint)
        require_seeded(clients["dynamodb"], endpoint)
        stack = build_local_stack(clients)
        yield Target(_adapters(stack.tables), int(stack.parameters.get("ShardCount", 16)), endpoint)
        return
    missing = [v for v in _TABLE_VARIABLES if not os.environ.get(v)]
    if missing:
        raise UsageError(
            "no stack to read: pass --from out/demo (after `dunning demo --keep`), --endpoint "
            f"http://127.0.0.1:5000 (moto_server) or set {', '.join(missing)} to the deployed stack's "
            "table names"
        )
    tables = {
        "LoansTable": os.environ["LOANS_TABLE"],
        "BorrowersTable": os.environ["BORROWERS_TABLE"],
        "StateTable": os.environ["STATE_TABLE"],
        "LedgerTable": os.environ["LEDGER_TABLE"],
    }
    yield Target(_adapters(tables), int(os.environ.get("SHARD_COUNT", "16")), "AWS")


# -- a finished demo's tables, kept for exploring ------------------------------------------------------


def keep_tables(session: Any, tables: dict[str, str], shard_count: int, out: Path) -> Path:
    """Write the four tables of a finished run to ``out`` (``dunning demo --keep``)."""
    client = session.client("dynamodb")
    document: dict[str, Any] = {"shard_count": shard_count, "tables": {}}
    for logical in KEPT_TABLES:
        items = [
            i
            for page in client.get_paginator("scan").paginate(TableName=tables[logical])
            for i in page["Items"]
        ]
        document["tables"][logical] = items
    path = out / KEPT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(document, fh, separators=(",", ":"))
    return path


@contextmanager
def _kept_tables(folder: Path) -> Iterator[Target]:
    path = folder / KEPT_FILE if folder.is_dir() else folder
    if not path.is_file():
        raise UsageError(f"no kept demo tables at {path}: run `dunning demo --keep --out {folder}` first")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            document = json.load(fh)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a kept demo ({exc})") from exc
    from dunning_local.embedded import embedded_aws
    from dunning_local.stack import build_local_stack

    with embedded_aws() as session:
        stack = build_local_stack(session, parameters={"ShardCount": int(document["shard_count"])})
        client = session.client("dynamodb")
        for logical, items in document["tables"].items():
            name = stack.tables[logical]
            for i in range(0, len(items), 25):
                client.batch_write_item(
                    RequestItems={name: [{"PutRequest": {"Item": it}} for it in items[i : i + 25]]}
                )
        yield Target(_adapters(stack.tables), int(document["shard_count"]), str(path))


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
        for entries, _ in state_store.due_pages(shard, at, page_size=100):
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
                policy = policy_for(loan, borrower, rulebooks)
                try:
                    rendered = render_message(
                        decision,
                        loan,
                        borrower,
                        required_content=policy.required_content,
                        max_sms_segments=policy.max_sms_segments,
                        jurisdictions=policy.jurisdictions,
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
