"""The naive design the product is measured against: one request per item, every tick.

What a first version of a reminder job typically does every 15 minutes:

- Scan the whole Loans table (1 MB pages);
- for each active loan: GetItem its borrower, GetItem the borrower's cap counter, decide (the same
  engine as the product, so both decide alike);
- for a SEND: render, Publish, then write the counter back (read-then-write, no condition: two runs at
  once can both send) and PutItem a ledger record;
- for each delivery receipt: one UpdateItem of the ledger record.

It writes nothing for a deferral or a stop (no decision trail), reads no consent registry and does no
send-time re-check, so it is cheaper than it should be; the ratio is still large because it reads the
whole book every tick.

It runs on the same generated book and the same ticks as the product, against moto's DynamoDB backend in
this process. Its calls go to the backend directly rather than through botocore: being one request per
item, each call is exactly one request (counted here), and with several hundred thousand GetItems per
run botocore's serialisation alone would take minutes. Capacity units come from the same rules and item
sizes as the product's (:mod:`bench.capacity`).
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from bench.capacity import item_size, item_write, read_units
from dunning.adapters.contact import contact_state
from dunning.items import InvalidItem, borrower_from_item, iso_utc, loan_from_item
from dunning.models import Borrower, Channel, ContactState, DecisionKind, Loan, LoanStatus
from dunning_local.stack import LocalStack

SCAN_PAGE_BYTES = 1024 * 1024  # a Scan page stops at 1 MB of items read
COUNTERS, LEDGER = "NaiveCounters", "NaiveLedger"
_serialize, _deserialize = TypeSerializer().serialize, TypeDeserializer().deserialize


def _wire(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serialize(v) for k, v in item.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserialize(v) for k, v in item.items()}


@dataclass
class NaiveAws:
    """Counted, priced calls on moto's backends: the baseline's AWS."""

    account: str
    region: str
    requests: Counter[str] = field(default_factory=Counter)
    read_units: float = 0.0
    write_units: int = 0

    def __post_init__(self) -> None:
        from moto.dynamodb.models import dynamodb_backends
        from moto.sns.models import sns_backends

        self.ddb = dynamodb_backends[self.account][self.region]
        self.sns = sns_backends[self.account][self.region]

    def scan(self, table: str) -> list[dict[str, Any]]:
        """Every item of ``table``, counted as the 1 MB Scan pages AWS would return."""
        found, _, _ = self.ddb.scan(table, {}, None, None, None, {}, {}, None, False, None, (None, None))  # type: ignore[arg-type]
        items = [dict(i.to_json()["Attributes"]) for i in found]
        page = 0
        for item in items:
            size = item_size(item)
            if page and page + size > SCAN_PAGE_BYTES:
                self._scan_page(page)
                page = 0
            page += size
        self._scan_page(page)
        return items

    def _scan_page(self, size: int) -> None:
        self.requests["dynamodb.Scan"] += 1
        self.read_units += read_units(size, consistent=False)

    def get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        self.requests["dynamodb.GetItem"] += 1
        found = self.ddb.get_item(table, _wire(key))
        item = dict(found.to_json()["Attributes"]) if found is not None else None
        self.read_units += read_units(item_size(item), consistent=False)
        return item

    def put(self, table: str, item: dict[str, Any], key: str, operation: str = "PutItem") -> None:
        self.requests[f"dynamodb.{operation}"] += 1
        wire = _wire(item)
        before = self.ddb.get_item(table, {key: wire[key]})
        old = dict(before.to_json()["Attributes"]) if before is not None else None
        self.ddb.put_item(table, wire)
        self.write_units += item_write(old, wire, table_keys=(key,)).total

    def publish(self, *, phone: str | None = None, arn: str | None = None, text: str) -> str:
        self.requests["sns.Publish"] += 1
        if phone:
            return self.sns.publish(text, arn=None, phone_number=phone)
        return str(uuid.uuid4())  # a push: moto would only store it on the endpoint


@dataclass
class Toolkit:
    """The product's engine, policies and renderer, as the sender uses them."""

    decide: Any
    policy_for: Any
    render_under_policy: Any
    sns_push_message: Any
    render_errors: tuple[type[Exception], ...]
    rulebooks: Any
    strategies: Any
    profile: Any

    @classmethod
    def load(cls) -> Toolkit:
        from dunning.engine import decide
        from dunning.jurisdictions import policy_for
        from dunning.render import RenderError, load_profile, render_under_policy, sns_push_message
        from dunning.rules import load_rulebooks
        from dunning.strategy import load_strategies

        return cls(
            decide,
            policy_for,
            render_under_policy,
            sns_push_message,
            (RenderError, ValueError),
            load_rulebooks(),
            load_strategies(),
            load_profile(),
        )


@dataclass
class NaiveReminders:
    """The baseline's planner+sender in one loop, and its receipts."""

    aws: NaiveAws
    stack: LocalStack
    unreachable: set[str]
    toolkit: Toolkit = field(default_factory=Toolkit.load)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (message id, contact point)
    outcomes: Counter[str] = field(default_factory=Counter)

    def tick(self, now: datetime) -> None:
        loans_table = self.stack.tables["LoansTable"]
        borrowers_table = self.stack.tables["BorrowersTable"]
        for loan_item in self.aws.scan(loans_table):
            try:
                loan = loan_from_item(_plain(loan_item))
            except InvalidItem:
                continue
            if loan.status != LoanStatus.ACTIVE:
                continue
            borrower_item = self.aws.get(borrowers_table, {"borrower_id": loan.borrower_id})
            counter = self.aws.get(COUNTERS, {"borrower_id": loan.borrower_id})
            if borrower_item is None:
                continue
            try:
                borrower = borrower_from_item(_plain(borrower_item))
            except InvalidItem:
                continue
            state = contact_state(borrower.borrower_id, _plain(counter) if counter else None, None)
            self._decide(loan, borrower, state, now)

    def _decide(self, loan: Loan, borrower: Borrower, state: ContactState, now: datetime) -> None:
        t = self.toolkit
        decision = t.decide(loan, borrower, state, now, t.rulebooks, t.strategies)
        self.outcomes[decision.kind.value] += 1
        if decision.kind != DecisionKind.SEND or decision.channel is None or decision.step is None:
            return
        point = (
            borrower.phone
            if decision.channel == Channel.SMS
            else next((e.arn for e in borrower.push_endpoints), None)
        )
        if not point:
            return
        policy = t.policy_for(loan, borrower, t.rulebooks)
        try:
            rendered = t.render_under_policy(decision, loan, borrower, policy, profile=t.profile)
        except t.render_errors:
            self.outcomes["render_error"] += 1
            return
        if decision.channel == Channel.SMS:
            message_id = self.aws.publish(phone=point, text=rendered.text)
        else:
            message_id = self.aws.publish(arn=point, text=t.sns_push_message(rendered))
        sends = [
            {"at": iso_utc(s.at), "channel": s.channel.value, "loan_id": s.loan_id, "step": s.step}
            for s in state.sends
            if s.at > now - timedelta(days=95)
        ]
        sends.append({"at": iso_utc(now), "channel": decision.channel.value, "loan_id": loan.loan_id})
        sends[-1]["step"] = decision.step
        claims = set(state.claims) | {ContactState.claim_key(loan.loan_id, decision.step)}
        self.aws.put(
            COUNTERS,
            {"borrower_id": borrower.borrower_id, "sends": sends, "claims": claims, "version": 0},
            "borrower_id",
        )
        self.aws.put(
            LEDGER,
            {
                "message_id": message_id,
                "loan_id": loan.loan_id,
                "borrower_id": borrower.borrower_id,
                "step": decision.step,
                "channel": decision.channel.value,
                "contact_point": point,
                "status": "SENT",
                "at": iso_utc(now),
            },
            "message_id",
        )
        self.sent.append((message_id, point))

    def receipts(self, at: datetime) -> int:
        """One UpdateItem per receipt (status and provider response); returns the number delivered."""
        delivered = 0
        for message_id, point in self.sent:
            ok = point not in self.unreachable
            delivered += ok
            self._update(
                message_id,
                {
                    "status": "DELIVERED" if ok else "FAILED",
                    "receipt_at": iso_utc(at),
                    "provider_response": "Message has been accepted by phone carrier"
                    if ok
                    else "unreachable",
                },
            )
        self.sent.clear()
        return delivered

    def _update(self, message_id: str, fields: dict[str, Any]) -> None:
        # An UpdateItem costs by the larger of the item before and after, like the put it amounts to.
        found = self.aws.ddb.get_item(LEDGER, {"message_id": {"S": message_id}})
        current = _plain(dict(found.to_json()["Attributes"])) if found is not None else {}
        self.aws.put(LEDGER, {**current, "message_id": message_id, **fields}, "message_id", "UpdateItem")


def create_tables(session: boto3.Session) -> None:
    client = session.client("dynamodb")
    for name, key in ((COUNTERS, "borrower_id"), (LEDGER, "message_id")):
        client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def run(
    session: boto3.Session,
    stack: LocalStack,
    *,
    start: datetime,
    ticks: int,
    tick_minutes: int,
    unreachable: set[str],
) -> dict[str, Any]:
    """The naive design over the book already in the stack's Loans and Borrowers tables."""
    started = time.monotonic()
    create_tables(session)
    aws = NaiveAws(stack.account_id, stack.region)
    naive = NaiveReminders(aws, stack, unreachable)
    delivered = 0
    for k in range(ticks):
        t = start + timedelta(minutes=k * tick_minutes)
        naive.tick(t)
        delivered += naive.receipts(t + timedelta(minutes=5))
    requests = sum(aws.requests.values())
    per = max(delivered, 1)
    return {
        "delivered": delivered,
        "decisions": dict(naive.outcomes),
        "requests": requests,
        "requests_per_delivered": round(requests / per, 2),
        "by_operation": dict(aws.requests.most_common()),
        "read_units": round(aws.read_units, 1),
        "read_units_per_delivered": round(aws.read_units / per, 2),
        "write_units": aws.write_units,
        "write_units_per_delivered": round(aws.write_units / per, 2),
        "scan_pages_per_tick": math.ceil(aws.requests["dynamodb.Scan"] / max(ticks, 1)),
        "seconds": round(time.monotonic() - started, 1),
    }
