"""The project's State table: the cadence items behind the sparse due-index, each borrower's contact
item (caps, claims, pause, unusable points) and the consent registry of phone numbers.

Item shapes (docs/decisions.md D2):

- ``LOAN#<loan_id>`` / ``CADENCE``: ``loan_id``, ``borrower_id``, ``phone`` (the number last seen, a
  read hint), ``home_shard`` (the loan's shard, kept while out of the index), and while due
  ``due_shard`` + ``next_contact_at`` (the sparse GSI ``DueIndex``); ``last_rule``, ``last_reason``,
  ``updated_at``.
- ``BORROWER#<borrower_id>`` / ``CONTACT``: ``version``, ``sends``, ``claims``, ``paused_until``,
  ``unusable``, ``hard_failures``. Every change bumps ``version``, so a claim made on an older read
  fails and is re-decided: that is what makes caps and pauses exact under concurrency.
- ``PHONE#<e164>`` / ``CONSENT``: ``sms_opted_out``, ``changed_at``, ``source``, ``last_inbound_id``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from dunning.adapters.dynamo import Dynamo, Item, Key, WriteOp, is_conditional_failure
from dunning.items import iso_utc, parse_iso_utc
from dunning.models import Channel, ContactState, SendRecord

KEY_NAMES = ("pk", "sk")
CADENCE = "CADENCE"
CONTACT = "CONTACT"
CONSENT = "CONSENT"
DUE_INDEX = "DueIndex"
# Optimistic-lock retries: each retry re-reads, so more than a handful means a hot borrower and the
# SQS retry (later, with fresh state) is the better answer.
MAX_CONFLICT_RETRIES = 4


def due_shard(loan_id: str, shard_count: int) -> str:
    """``DUE#nn`` from a stable hash of the loan id (crc32: the same in every process and release)."""
    return f"DUE#{zlib.crc32(loan_id.encode('utf-8')) % shard_count:02d}"


def shard_names(shard_count: int) -> list[str]:
    return [f"DUE#{n:02d}" for n in range(shard_count)]


def loan_pk(loan_id: str) -> str:
    return f"LOAN#{loan_id}"


def cadence_key(loan_id: str) -> Key:
    return {"pk": loan_pk(loan_id), "sk": CADENCE}


def contact_key(borrower_id: str) -> Key:
    return {"pk": f"BORROWER#{borrower_id}", "sk": CONTACT}


def consent_key(phone: str) -> Key:
    return {"pk": f"PHONE#{phone}", "sk": CONSENT}


def loan_id_of(cadence_or_index_item: Mapping[str, Any]) -> str:
    return str(cadence_or_index_item["pk"]).removeprefix("LOAN#")


class ClaimConflict(Exception):
    """The contact item changed since it was read (or the step is already claimed): re-read, re-decide."""


@dataclass(frozen=True)
class DueEntry:
    """One loan found due in the index; ``borrower_id``/``phone`` only when the index projects them."""

    loan_id: str
    next_contact_at: str
    borrower_id: str | None = None
    phone: str | None = None


def contact_state(
    borrower_id: str, contact: Mapping[str, Any] | None, consent: Mapping[str, Any] | None
) -> ContactState:
    """The engine's view of a borrower: their contact item and the consent item of their phone."""
    contact = contact or {}
    sends = tuple(
        SendRecord(
            at=parse_iso_utc(str(s["at"])),
            channel=Channel(str(s["channel"])),
            loan_id=str(s["loan_id"]),
            step=str(s["step"]),
        )
        for s in contact.get("sends", [])
    )
    paused = contact.get("paused_until")
    return ContactState(
        borrower_id=borrower_id,
        version=int(contact.get("version", 0)),
        sends=sends,
        claims=frozenset(str(c) for c in contact.get("claims", set())),
        paused_until=parse_iso_utc(str(paused)) if paused else None,
        sms_opted_out=bool((consent or {}).get("sms_opted_out", False)),
        unusable=frozenset(str(p) for p in contact.get("unusable", set())),
    )


def _sends_value(sends: Iterable[SendRecord]) -> list[dict[str, str]]:
    return [
        {"at": iso_utc(s.at), "channel": s.channel.value, "loan_id": s.loan_id, "step": s.step} for s in sends
    ]


@dataclass
class StateStore:
    dynamo: Dynamo
    table: str
    # Only the functions that put loans into the index by hash need it (not the sender: see
    # ``replan_earlier``).
    shard_count: int | None = None

    def shards(self) -> list[str]:
        if self.shard_count is None:
            raise RuntimeError("this StateStore was built without SHARD_COUNT")
        return shard_names(self.shard_count)

    def shard_of(self, loan_id: str) -> str:
        if self.shard_count is None:
            raise RuntimeError("this StateStore was built without SHARD_COUNT")
        return due_shard(loan_id, self.shard_count)

    # ---- cadence and the due-index -------------------------------------------------------------

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
    ) -> Item:
        """The whole cadence item; ``next_contact_at=None`` takes the loan out of the due-index."""
        item: Item = {
            **cadence_key(loan_id),
            "loan_id": loan_id,
            "borrower_id": borrower_id,
            "last_rule": rule_id,
            "last_reason": reason[:500],
            "updated_at": iso_utc(at),
        }
        if phone:
            item["phone"] = phone
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

    # ---- contact items: caps, claims, pause, unusable points ------------------------------------

    def read_contact(self, borrower_id: str, phone: str | None) -> ContactState:
        """A consistent read of the borrower's contact item and their phone's consent item (one request)."""
        keys = [contact_key(borrower_id)] + ([consent_key(phone)] if phone else [])
        found = self.dynamo.batch_get({self.table: keys}, consistent=True).get(self.table, [])
        contact = next((i for i in found if i["sk"] == CONTACT), None)
        consent = next((i for i in found if i["sk"] == CONSENT), None)
        return contact_state(borrower_id, contact, consent)

    def claim(
        self,
        state: ContactState,
        *,
        loan_id: str,
        step: str,
        channel: Channel,
        at: datetime,
        keep_sends_for: timedelta,
    ) -> ContactState:
        """Record the send of (loan, step) if the contact item is still the one ``state`` was read from.

        Conditional on the version read and on the step not being claimed already; the sends list is
        rewritten with the new send, pruned to the longest cap window. Raises :class:`ClaimConflict`.
        """
        claim = ContactState.claim_key(loan_id, step)
        new_send = SendRecord(at=at, channel=channel, loan_id=loan_id, step=step)
        kept = (*(s for s in state.sends if s.at > at - keep_sends_for), new_send)
        condition = "attribute_not_exists(#v)" if state.version == 0 else "#v = :read"
        values: dict[str, Any] = {":next": state.version + 1, ":sends": _sends_value(kept), ":c": {claim}}
        if state.version:
            values[":read"] = state.version
        values[":claim"] = claim
        try:
            self.dynamo.update(
                self.table,
                contact_key(state.borrower_id),
                update="SET #v = :next, sends = :sends ADD claims :c",
                names={"#v": "version"},
                values=values,
                condition=f"{condition} AND NOT contains(claims, :claim)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise ClaimConflict(claim) from None
            raise
        return state.model_copy(
            update={"version": state.version + 1, "sends": kept, "claims": state.claims | {claim}}
        )

    def release(
        self,
        state: ContactState,
        *,
        loan_id: str,
        step: str,
        phone: str | None,
        unusable_point: str | None = None,
    ) -> bool:
        """Undo a claim whose message was not sent (and optionally mark a contact point unusable).

        Version-checked like the claim; on a conflict the item is re-read and the release retried a few
        times. Returns False if it could not be done: the caller then records the job AMBIGUOUS.
        """
        claim = ContactState.claim_key(loan_id, step)
        current = state
        for _ in range(MAX_CONFLICT_RETRIES):
            sends = tuple(s for s in current.sends if not (s.loan_id == loan_id and s.step == step))
            names = {"#v": "version"}
            values: dict[str, Any] = {
                ":next": current.version + 1,
                ":sends": _sends_value(sends),
                ":c": {claim},
            }
            update = "SET #v = :next, sends = :sends DELETE claims :c"
            if unusable_point:
                update += " ADD unusable :p"
                values[":p"] = {unusable_point}
            if current.version:
                values[":read"] = current.version
            try:
                self.dynamo.update(
                    self.table,
                    contact_key(current.borrower_id),
                    update=update,
                    names=names,
                    values=values,
                    condition="#v = :read" if current.version else "attribute_not_exists(#v)",
                )
                return True
            except ClientError as exc:
                if not is_conditional_failure(exc):
                    raise
            current = self.read_contact(current.borrower_id, phone)
        return False

    def record_hard_failure(
        self, borrower_id: str, point: str, *, threshold: int, permanent: bool = False
    ) -> bool:
        """Count a hard delivery failure of a contact point; mark it unusable at ``threshold``, or at once
        when ``permanent`` (an invalid number, a dead token).

        Returns True when the point is (now) unusable. Only marking a point unusable changes what the
        engine decides, but every change bumps the version: the count is a read-modify-write under it.
        """
        for _ in range(MAX_CONFLICT_RETRIES):
            item = self.dynamo.get(self.table, contact_key(borrower_id)) or {}
            if point in item.get("unusable", set()):
                return True
            failures = {str(k): int(v) for k, v in (item.get("hard_failures") or {}).items()}
            failures[point] = failures.get(point, 0) + 1
            unusable = permanent or failures[point] >= threshold
            version = int(item.get("version", 0))
            update = "SET #v = :next, hard_failures = :f"
            values: dict[str, Any] = {":next": version + 1, ":f": failures}
            if unusable:
                update += " ADD unusable :p"
                values[":p"] = {point}
            if version:
                values[":read"] = version
            try:
                self.dynamo.update(
                    self.table,
                    contact_key(borrower_id),
                    update=update,
                    names={"#v": "version"},
                    values=values,
                    condition="#v = :read" if version else "attribute_not_exists(#v)",
                )
                return unusable
            except ClientError as exc:
                if not is_conditional_failure(exc):
                    raise
        raise ClaimConflict(f"contact item of {borrower_id} kept changing")

    def reset_hard_failures(self, points: Iterable[tuple[str, str]]) -> int:
        """A DELIVERED receipt: forget the failures counted against these (borrower, contact point) pairs.

        One BatchGetItem for all of them; an UpdateItem only where a count exists (rare), version-checked
        like :meth:`record_hard_failure` (a lost race leaves the count for the next delivery to reset).
        A point already unusable stays so. Returns how many counts were reset.
        """
        wanted = list(dict.fromkeys(points))
        if not wanted:
            return 0
        keys = [contact_key(b) for b in dict.fromkeys(b for b, _ in wanted)]
        found = self.dynamo.batch_get({self.table: keys}).get(self.table, [])
        contacts = {str(i["pk"]).removeprefix("BORROWER#"): i for i in found}
        reset = 0
        for borrower_id, point in wanted:
            item = contacts.get(borrower_id) or {}
            if point not in (item.get("hard_failures") or {}) or point in item.get("unusable", set()):
                continue
            version = int(item.get("version", 0))
            try:
                self.dynamo.update(
                    self.table,
                    contact_key(borrower_id),
                    update="SET #v = :next REMOVE hard_failures.#p",
                    names={"#v": "version", "#p": point},
                    values={":next": version + 1, ":read": version},
                    condition="#v = :read",
                )
            except ClientError as exc:
                if not is_conditional_failure(exc):
                    raise
                continue
            item["version"] = version + 1
            reset += 1
        return reset

    def pause(self, borrower_id: str, until: datetime) -> bool:
        """Pause automated reminders to a borrower until ``until`` (never shortens a longer pause)."""
        try:
            self.dynamo.update(
                self.table,
                contact_key(borrower_id),
                update="SET paused_until = :u, #v = if_not_exists(#v, :zero) + :one",
                names={"#v": "version"},
                values={":u": iso_utc(until), ":zero": 0, ":one": 1},
                condition="attribute_not_exists(paused_until) OR paused_until < :u",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def touch(self, borrower_id: str) -> None:
        """Bump the contact item's version so any claim made on an older read fails and re-decides
        (an opt-out must win over a send that was decided a moment before it)."""
        self.dynamo.update(
            self.table,
            contact_key(borrower_id),
            update="SET #v = if_not_exists(#v, :zero) + :one",
            names={"#v": "version"},
            values={":zero": 0, ":one": 1},
        )

    # ---- the consent registry -------------------------------------------------------------------

    def set_sms_opt_out(
        self, phone: str, opted_out: bool, *, at: datetime, source: str, inbound_id: str
    ) -> bool:
        """Record an opt-out (or opt-in) for a number across all loans.

        Returns True only when this call changed the state (a first START also counts), so a redelivered
        STOP or a second one does not trigger a second confirmation.
        """
        previous = "sms_opted_out = :no" if opted_out else "sms_opted_out = :yes"
        condition = f"attribute_not_exists(sms_opted_out) OR {previous}"
        try:
            self.dynamo.update(
                self.table,
                consent_key(phone),
                update="SET sms_opted_out = :v, changed_at = :at, #src = :src, last_inbound_id = :id",
                names={"#src": "source"},
                values={
                    ":v": opted_out,
                    ":at": iso_utc(at),
                    ":src": source,
                    ":id": inbound_id,
                    ":no" if opted_out else ":yes": not opted_out,
                },
                condition=condition,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True
