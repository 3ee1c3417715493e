"""The Ledger table: every decision, message, outcome, receipt and inbound reply, kept until TTL.

Item shapes (docs/decisions.md D2; statuses in docs/pipeline.md):

- ``LOAN#<loan_id>`` / ``<at>#DECISION#<rule_id>``: a DEFER or STOP decision.
- ``MSG#<provider_message_id>`` / ``MESSAGE``: a published message and, once known, its receipt.
- ``MSG#<provider_message_id>`` / ``RECEIPT``: a receipt whose MESSAGE item was not there.
- ``JOB#<loan_id>#<step>`` / ``OUTCOME``: a job that ended without a provider message.
- ``JOB#<loan_id>#<step>`` / ``RETRY``: why the job's last delivery failed (it is still in a queue or
  its DLQ).
- ``BORROWER#<borrower_id>`` / ``<at>#INBOUND#<inbound_id>``: an inbound reply and what was done
  (``PHONE#<e164>`` as the partition when no borrower has that number).
- ``LOAN#<loan_id>`` / ``<at>#DISPUTE#<inbound_id>`` (and ``…#DISPUTE_CLOSED#…``): a dispute opened by a
  reply, and its closing once verification was sent.
- ``AMBIGUOUS`` / ``<loan_id>#<step>``: an unresolved AMBIGUOUS job, for the reconcile sweep to find
  without scanning the ledger; deleted when resolved.
- ``EARLY_RECEIPT`` / ``<provider_message_id>``: a RECEIPT kept because its MESSAGE was not written
  (yet), for the reconcile sweep to merge once it is; deleted when merged or given up.

Every item carries ``at`` and ``expires_at`` (epoch seconds, the table's TTL attribute); items about a
loan outside its ``LOAN#`` partition carry ``loan_id`` so the ``ByLoan`` index finds them (decisions are
in that partition and stay out of the index).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from dunning.adapters.dynamo import Dynamo, Item, Key, WriteOp
from dunning.items import iso_utc
from dunning.models import Channel, Decision, DecisionKind

KEY_NAMES = ("pk", "sk")
BY_LOAN = "ByLoan"
AMBIGUOUS_PK = "AMBIGUOUS"
EARLY_RECEIPT_PK = "EARLY_RECEIPT"
MESSAGE_SK = "MESSAGE"
RECEIPT_SK = "RECEIPT"
# What a receipt adds to a MESSAGE item (``dunning.receipts.Receipt.fields``); the reconcile sweep merges
# these from a RECEIPT item that came before its MESSAGE.
RECEIPT_FIELDS = (
    "status",
    "provider_response",
    "price_usd",
    "carrier",
    "dwell_ms",
    "receipt_at",
    "receipt_source",
    "hard_failure",
    "failure_kind",
)


class Status:
    """Ledger statuses: the terminal state of every job and the delivery state of every message."""

    SENT = "SENT"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    SUPPRESSED = "SUPPRESSED"
    EXPIRED = "EXPIRED"
    AMBIGUOUS = "AMBIGUOUS"


def message_key(message_id: str) -> Key:
    return {"pk": f"MSG#{message_id}", "sk": MESSAGE_SK}


def receipt_key(message_id: str) -> Key:
    return {"pk": f"MSG#{message_id}", "sk": RECEIPT_SK}


def outcome_key(loan_id: str, step: str) -> Key:
    return {"pk": f"JOB#{loan_id}#{step}", "sk": "OUTCOME"}


# Recent instants' TTLs: a tick writes every ledger item of its decisions at the tick's instant.
_EXPIRES: dict[tuple[datetime, int], int] = {}


# Enum members' values without the enum's ``value`` property (a Python call) on every decision.
_VALUES: dict[Enum, str] = {m: m.value for e in (DecisionKind, Channel) for m in e}


def _clean(item: Mapping[str, Any]) -> Item:
    # DynamoDB rejects empty sets and there is no point storing None or "" attributes.
    return {k: v for k, v in item.items() if v is not None and v != ""}


@dataclass
class Ledger:
    dynamo: Dynamo
    table: str
    retention_days: int

    def expires_at(self, at: datetime) -> int:
        key = (at, self.retention_days)
        found = _EXPIRES.get(key)
        if found is None:
            found = int((at + timedelta(days=self.retention_days)).timestamp())
            if len(_EXPIRES) >= 1024:
                _EXPIRES.clear()
            _EXPIRES[key] = found
        return found

    def _put(self, item: Mapping[str, Any], at: datetime) -> WriteOp:
        full = _clean({**item, "at": iso_utc(at), "expires_at": self.expires_at(at)})
        return WriteOp.put(self.table, full, KEY_NAMES)

    def decision_op(self, decision: Decision, *, at: datetime | None = None) -> WriteOp:
        """A DEFER/STOP decision under the loan, keyed by instant and rule (a replayed tick rewrites it)."""
        when = at or decision.at
        stamp = iso_utc(when)
        # The item ``_put`` makes, built in one dict: every DEFER and STOP of a tick writes one.
        item = _clean(
            {
                "pk": f"LOAN#{decision.loan_id}",
                "sk": f"{stamp}#DECISION#{decision.rule_id}",
                "type": "DECISION",
                # No ``loan_id``: the item is in the loan's own partition, where explain reads it, so
                # keeping it out of ByLoan saves an index write on every DEFER and STOP.
                "borrower_id": decision.borrower_id,
                "decision": _VALUES[decision.kind],
                "rule_id": decision.rule_id,
                "reason": decision.reason,
                "citation": decision.citation,
                "step": decision.step,
                "channel": _VALUES[decision.channel] if decision.channel else None,
                "not_before": iso_utc(decision.not_before) if decision.not_before else None,
                # Which jurisdictions applied and why: [{code, source, rulebook}] (None when empty).
                "jurisdictions": decision.jurisdictions_record() or None,
                "at": stamp,
                "expires_at": self.expires_at(when),
            }
        )
        return WriteOp.put(self.table, item, KEY_NAMES)

    def invalid_id_op(self, kind: str, stand_in: str, reason: str, at: datetime) -> WriteOp:
        """A STOP ``data.invalid`` for a loan or borrower whose id cannot be a key part, under the id's
        stand-in (``dunning.ids.storable_id``): ``LOAN#~sha256:…`` or ``BORROWER#~sha256:…``."""
        return self._put(
            {
                "pk": f"{kind.upper()}#{stand_in}",
                "sk": f"{iso_utc(at)}#DECISION#data.invalid",
                "type": "DECISION",
                "decision": "STOP",
                "rule_id": "data.invalid",
                "reason": reason,
            },
            at,
        )

    def message_op(self, message_id: str, fields: Mapping[str, Any], at: datetime) -> WriteOp:
        """The MESSAGE item of a published message (status SENT until a receipt says otherwise)."""
        return self._put(
            {**message_key(message_id), "type": "MESSAGE", "message_id": message_id, **fields}, at
        )

    def outcome_op(self, loan_id: str, step: str, fields: Mapping[str, Any], at: datetime) -> WriteOp:
        """The OUTCOME item of a job that ended without a provider message (SUPPRESSED, EXPIRED, …)."""
        return self._put(
            {**outcome_key(loan_id, step), "type": "OUTCOME", "loan_id": loan_id, "step": step, **fields}, at
        )

    def receipt_op(self, message_id: str, fields: Mapping[str, Any], at: datetime) -> WriteOp:
        """A receipt for a message the ledger does not know (yet): kept, not lost."""
        return self._put(
            {**receipt_key(message_id), "type": "RECEIPT", "message_id": message_id, **fields}, at
        )

    def merged_message_op(self, message: Mapping[str, Any], receipt: Mapping[str, Any]) -> WriteOp:
        """The MESSAGE item with the receipt's fields merged in; keeps the original ``at`` and TTL."""
        merged = _clean({**message, **receipt})
        return WriteOp.put(self.table, merged, KEY_NAMES)

    def inbound_op(self, partition: str, inbound_id: str, fields: Mapping[str, Any], at: datetime) -> WriteOp:
        return self._put(
            {"pk": partition, "sk": f"{iso_utc(at)}#INBOUND#{inbound_id}", "type": "INBOUND", **fields}, at
        )

    def dispute_op(
        self, loan_id: str, borrower_id: str, inbound_id: str, at: datetime, *, closed_by: str = ""
    ) -> WriteOp:
        """A dispute opened by a reply (or, with ``closed_by``, closed once verification was sent), in the
        loan's partition next to its decisions."""
        kind = "DISPUTE_CLOSED" if closed_by else "DISPUTE"
        return self._put(
            {
                "pk": f"LOAN#{loan_id}",
                "sk": f"{iso_utc(at)}#{kind}#{inbound_id}",
                "type": kind,
                "borrower_id": borrower_id,
                "inbound_id": inbound_id,
                "closed_by": closed_by or None,
            },
            at,
        )

    def invalid_job_op(self, sqs_message_id: str, reason: str, at: datetime) -> WriteOp:
        """A queue message that was not a job: recorded (without its body) and consumed."""
        return self._put(
            {"pk": f"SQS#{sqs_message_id}", "sk": "INVALID_JOB", "type": "INVALID_JOB", "reason": reason}, at
        )

    def retry_op(self, loan_id: str, step: str, *, reason: str, receive_count: int, at: datetime) -> WriteOp:
        """Why a job's record is being retried (the latest attempt): what a job in a DLQ failed on.

        Not an outcome: the job is still in a queue. Overwritten by each attempt, kept after the job ends.
        """
        return self._put(
            {
                "pk": f"JOB#{loan_id}#{step}",
                "sk": "RETRY",
                "type": "RETRY",
                "loan_id": loan_id,
                "step": step,
                "reason": reason,
                "receive_count": receive_count,
            },
            at,
        )

    def ambiguous_op(self, loan_id: str, step: str, at: datetime) -> WriteOp:
        return self._put(
            {
                "pk": AMBIGUOUS_PK,
                "sk": f"{loan_id}#{step}",
                "type": "AMBIGUOUS_POINTER",
                "loan_id_ref": loan_id,
                "step": step,
            },
            at,
        )

    def early_receipt_op(self, message_id: str, at: datetime) -> WriteOp:
        """Points the sweep at a RECEIPT that arrived before its MESSAGE (or for a message not ours)."""
        return self._put(
            {"pk": EARLY_RECEIPT_PK, "sk": message_id, "type": "RECEIPT_POINTER", "message_ref": message_id},
            at,
        )

    def put_new(self, op: WriteOp) -> bool:
        """Write one item only if it is not there yet: the gate that makes a redelivery a no-op."""
        assert op.item is not None
        return self.dynamo.put_new(self.table, op.item, "pk")

    def put_unfinished(self, op: WriteOp) -> bool:
        """Write one item unless it is there with ``handled`` true: the gate that makes a redelivery of
        finished work a no-op, while work that died half way (a throttle, a timeout) is done again."""
        assert op.item is not None
        return self.dynamo.put_if(
            self.table,
            op.item,
            "attribute_not_exists(#k) OR #h = :no",
            names={"#k": "pk", "#h": "handled"},
            values={":no": False},
        )

    def delete_op(self, key: Key) -> WriteOp:
        return WriteOp.delete(self.table, key)

    def write(self, ops: Iterable[WriteOp]) -> int:
        return self.dynamo.batch_write(list(ops))

    def get_items(self, keys: Iterable[Key]) -> list[Item]:
        return self.dynamo.batch_get({self.table: list(keys)}).get(self.table, [])

    def get_messages(self, message_ids: Iterable[str]) -> dict[str, Item]:
        """MESSAGE items by provider message id (one BatchGetItem per 100 ids)."""
        items = self.get_items(message_key(i) for i in message_ids)
        return {str(i["message_id"]): i for i in items if i.get("sk") == MESSAGE_SK}

    def keys_for_loan(self, loan_id: str) -> list[Key]:
        """Keys of every ledger item about a loan (GSI ``ByLoan``, in time order)."""
        keys: list[Key] = []
        for items, _ in self.dynamo.query_pages(
            TableName=self.table,
            IndexName=BY_LOAN,
            KeyConditionExpression="loan_id = :l",
            ExpressionAttributeValues={":l": loan_id},
        ):
            keys.extend({"pk": i["pk"], "sk": i["sk"]} for i in items)
        return keys

    def partition(self, pk: str) -> list[Item]:
        """Every item of one partition (a loan's decisions, a borrower's inbound replies)."""
        found: list[Item] = []
        for items, _ in self.dynamo.query_pages(
            TableName=self.table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": pk}
        ):
            found.extend(items)
        return found

    def ambiguous_pointers(self) -> list[Item]:
        return self.partition(AMBIGUOUS_PK)

    def early_receipt_pointers(self) -> list[Item]:
        return self.partition(EARLY_RECEIPT_PK)
