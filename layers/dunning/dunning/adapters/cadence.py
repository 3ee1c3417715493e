"""The cadence items of the State table: each loan's next contact, behind the sparse due-index.

``LOAN#<loan_id>`` / ``CADENCE``: ``loan_id``, ``borrower_id``, ``phone`` (the number last seen, a read
hint), ``phone_facts`` (what parsing that number says, ``dunning.zones.phone_facts``: the planner
does not parse it again), ``home_shard`` (the loan's shard, kept while out of the index), and while
due ``due_shard`` + ``next_contact_at`` (the sparse GSI ``DueIndex``); ``last_rule``, ``last_reason``,
``updated_at``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from dunning.adapters.dynamo import Dynamo, Item, Key, WriteOp, is_conditional_failure
from dunning.adapters.state_keys import CADENCE, KEY_NAMES, cadence_key, loan_pk
from dunning.items import iso_utc

DUE_INDEX = "DueIndex"


def due_shard(loan_id: str, shard_count: int) -> str:
    """``DUE#nn`` from a stable hash of the loan id (crc32: the same in every process and release)."""
    return _shard_names(shard_count)[zlib.crc32(loan_id.encode("utf-8")) % shard_count]


def shard_names(shard_count: int) -> list[str]:
    return list(_shard_names(shard_count))


@cache
def _shard_names(shard_count: int) -> tuple[str, ...]:
    # Named once: every cadence item a planner writes names its shard.
    return tuple(f"DUE#{n:02d}" for n in range(shard_count))


def loan_id_of(cadence_or_index_item: Mapping[str, Any]) -> str:
    return str(cadence_or_index_item["pk"]).removeprefix("LOAN#")


@dataclass(frozen=True)
class DueEntry:
    """One loan found due in the index; ``borrower_id``/``phone``/``phone_facts`` only when the index
    projects them."""

    loan_id: str
    next_contact_at: str
    borrower_id: str | None = None
    phone: str | None = None
    phone_facts: str | None = None


@dataclass
class CadenceStore:
    """The cadence items and the due-index over them."""

    dynamo: Dynamo
    table: str
    # Only the functions that put loans into the index by hash need it (not the sender: see
    # ``replan_earlier``).
    shard_count: int | None = None

    def shards(self) -> list[str]:
        if self.shard_count is None:
            raise RuntimeError("this CadenceStore was built without SHARD_COUNT")
        return shard_names(self.shard_count)

    def shard_of(self, loan_id: str) -> str:
        if self.shard_count is None:
            raise RuntimeError("this CadenceStore was built without SHARD_COUNT")
        return due_shard(loan_id, self.shard_count)

    def cadences(self, loan_ids: Iterable[str]) -> dict[str, Item]:
        """The cadence items of these loans that exist, by loan id (one BatchGetItem)."""
        found = self.dynamo.batch_get({self.table: [cadence_key(i) for i in loan_ids]})
        return {loan_id_of(c): c for c in found.get(self.table, [])}

    def cadence_item(
        self,
        loan_id: str,
        borrower_id: str,
        *,
        next_contact_at: datetime | None,
        at: datetime,
        rule_id: str,
        reason: str,
        phone: str | None = None,
        phone_facts: str | None = None,
    ) -> Item:
        """The whole cadence item; ``next_contact_at=None`` takes the loan out of the due-index.

        ``phone_facts`` are stored only with the ``phone`` they describe."""
        item: Item = {
            "pk": loan_pk(loan_id),
            "sk": CADENCE,
            "loan_id": loan_id,
            "borrower_id": borrower_id,
            "last_rule": rule_id,
            "last_reason": reason[:500],
            "updated_at": iso_utc(at),
        }
        if phone:
            item["phone"] = phone
            if phone_facts:
                item["phone_facts"] = phone_facts
        # The shard stays on the item out of the index too, so anyone can put the loan back in.
        item["home_shard"] = self.shard_of(loan_id)
        if next_contact_at is not None:
            item["due_shard"] = item["home_shard"]
            item["next_contact_at"] = iso_utc(next_contact_at)
        return item

    def put_op(self, item: Item) -> WriteOp:
        return WriteOp.put(self.table, item, KEY_NAMES)

    def delete_cadence_op(self, loan_id: str) -> WriteOp:
        return WriteOp.delete(self.table, cadence_key(loan_id))

    def due_pages(
        self, shard: str, now: datetime, *, page_size: int, start_key: Key | None = None
    ) -> Iterator[tuple[list[DueEntry], Key | None]]:
        """Loans due in ``shard`` at ``now`` (``next_contact_at <= now``), page by page with the
        LastEvaluatedKey, so a planner running out of time can hand the rest on."""
        for items, last in self.dynamo.query_pages(
            TableName=self.table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_shard = :s AND next_contact_at <= :now",
            ExpressionAttributeValues={":s": shard, ":now": iso_utc(now)},
            Limit=page_size,
            ExclusiveStartKey=start_key,
        ):
            entries = [
                DueEntry(
                    loan_id=loan_id_of(i),
                    next_contact_at=str(i["next_contact_at"]),
                    borrower_id=str(i["borrower_id"]) if i.get("borrower_id") else None,
                    phone=str(i["phone"]) if i.get("phone") else None,
                    phone_facts=str(i["phone_facts"]) if i.get("phone_facts") else None,
                )
                for i in items
            ]
            yield entries, last

    def replan_earlier(self, loan_id: str, when: datetime, at: datetime, rule_id: str, reason: str) -> bool:
        """Move a loan's next contact back to ``when`` unless it is already due earlier.

        Used by the sender when a job could not be sent: the loan must be planned again at the earliest
        instant the engine gives, not at the later instant the planner moved it to. A loan whose
        cadence item is gone (deleted loan) is left alone.
        """
        try:
            self.dynamo.update(
                self.table,
                cadence_key(loan_id),
                update="SET due_shard = home_shard, next_contact_at = :n, "
                "last_rule = :r, last_reason = :why, updated_at = :at",
                values={
                    ":n": iso_utc(when),
                    ":r": rule_id,
                    ":why": reason[:500],
                    ":at": iso_utc(at),
                },
                condition="attribute_exists(home_shard) AND "
                "(attribute_not_exists(next_contact_at) OR next_contact_at > :n)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True
