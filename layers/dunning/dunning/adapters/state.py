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
- ``PHONE#<e164>`` / ``CONSENT``: ``sms_opted_out``, ``changed_at`` (the received time of the reply
  that last changed consent: an older reply is a no-op), ``source``, ``reason`` (``stop``,
  ``wrong_number``, ``start``, ``lender_consent``), ``last_inbound_id`` (a redelivery of it is a no-op) and
  ``confirmations`` (per inbound id: a confirmation SMS owed, claimed, sent, failed or ambiguous).
- ``CONFIRMATION_OWED`` / ``<e164>#<inbound_id>``: points the reconcile sweep at a confirmation still
  owed, written in the same transaction as the opt-out; deleted once it is SENT or FAILED (an AMBIGUOUS
  one keeps it: a receipt settles it, or the sweep sends it again after the receipt horizon).

A consent change is one ``TransactWriteItems``: the consent item, the pointer, and on the contact item of
every borrower with that number a version bump plus ``sms_block#<e164>`` (the ``changed_at`` of the
block, removed by an opt-in). The sender's claim stays one conditional write on the contact item's
version: a send decided on a read from before the change fails its claim and re-decides, and a read that
sees the bumped contact item sees the block on it, whatever the consent item's read returned.
The contact item also holds ``dispute#<loan_id>`` for a dispute reply awaiting verification.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from dunning.adapters.dynamo import (
    TRANSACT_LIMIT,
    Dynamo,
    Item,
    Key,
    WriteOp,
    is_conditional_failure,
    is_transaction_conflict,
)
from dunning.items import iso_utc, parse_iso_utc
from dunning.models import Channel, ContactState, SendRecord
from dunning.observability import mask_phone

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


CONFIRMATION_OWED_PK = "CONFIRMATION_OWED"
# A consent transaction carries the consent item and the pointer; the rest of its 100 items are contacts.
CONTACTS_PER_TRANSACTION = TRANSACT_LIMIT - 2
# Attribute-name prefixes on the contact item (one attribute per number or loan: a nested map entry
# cannot be set while the map itself may not exist, and these writes must not read first).
SMS_BLOCK_PREFIX = "sms_block#"
DISPUTE_PREFIX = "dispute#"


def sms_block_attribute(phone: str) -> str:
    return f"{SMS_BLOCK_PREFIX}{phone}"


def dispute_attribute(loan_id: str) -> str:
    return f"{DISPUTE_PREFIX}{loan_id}"


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


def sms_blocked(phone: str | None, contact: Mapping[str, Any], consent: Mapping[str, Any] | None) -> bool:
    """Whether texts to ``phone`` are blocked: opted out in the registry, or blocked on the contact item
    by a consent change the registry read does not show yet (reads of two items are not isolated from a
    transaction; an opt-in recorded later than the block lifts it)."""
    if bool((consent or {}).get("sms_opted_out", False)):
        return True
    if not phone:
        return False
    blocked_at = contact.get(sms_block_attribute(phone))
    if blocked_at is None:
        return False
    consent_at = (consent or {}).get("changed_at")
    return not consent_at or str(consent_at) <= str(blocked_at)


def contact_state(
    borrower_id: str,
    contact: Mapping[str, Any] | None,
    consent: Mapping[str, Any] | None,
    phone: str | None = None,
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
        sms_opted_out=sms_blocked(phone, contact, consent),
        unusable=frozenset(str(p) for p in contact.get("unusable", set())),
        disputed_loans=frozenset(
            str(k).removeprefix(DISPUTE_PREFIX) for k in contact if str(k).startswith(DISPUTE_PREFIX)
        ),
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
        return contact_state(borrower_id, contact, consent, phone)

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

    # ---- disputes awaiting verification (on the contact item: a claim made before it re-decides) -------

    def open_dispute(
        self, borrower_id: str, loan_id: str, *, at: datetime, inbound_id: str, classification: str
    ) -> bool:
        """Record an open dispute of ``loan_id`` on its borrower's contact item; False if one is open.

        The engine stops collection messages for the loan until :meth:`close_dispute` records that
        verification was sent. The version bump makes a send claimed on an older read re-decide.
        """
        try:
            self.dynamo.update(
                self.table,
                contact_key(borrower_id),
                update="SET #d = :rec, #v = if_not_exists(#v, :zero) + :one",
                names={"#d": dispute_attribute(loan_id), "#v": "version"},
                values={
                    ":rec": {
                        "opened_at": iso_utc(at),
                        "inbound_id": inbound_id,
                        "classification": classification,
                    },
                    ":zero": 0,
                    ":one": 1,
                },
                condition="attribute_not_exists(#d)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def close_dispute(self, borrower_id: str, loan_id: str) -> Item | None:
        """Close an open dispute (verification was sent); returns its record, None if none was open."""
        name = dispute_attribute(loan_id)
        item = self.dynamo.get(self.table, contact_key(borrower_id)) or {}
        record = item.get(name)
        if record is None:
            return None
        try:
            self.dynamo.update(
                self.table,
                contact_key(borrower_id),
                update="REMOVE #d SET #v = if_not_exists(#v, :zero) + :one",
                names={"#d": name, "#v": "version"},
                values={":zero": 0, ":one": 1},
                condition="attribute_exists(#d)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return None
            raise
        return dict(record)

    # ---- the consent registry -------------------------------------------------------------------

    def record_consent(
        self,
        phone: str,
        *,
        opted_out: bool,
        at: datetime,
        source: str,
        reason: str,
        inbound_id: str,
        borrower_ids: Iterable[str],
        confirmation: Mapping[str, Any] | None = None,
        only_if_reason: str | None = None,
    ) -> ConsentChange:
        """Record an opt-out (or opt-in) of a number for every borrower who uses it.

        Ordered by the reply's received time ``at``: a change older than the one recorded is a no-op (an
        opt-in at the same second as the recorded change is too: in doubt, opted out), and a redelivered
        reply (its ``inbound_id`` is the last one recorded) does nothing. One transaction writes the
        consent item, ``confirmation`` as owed (only when the change is effective) with its pointer, and
        bumps and blocks (or unblocks) the contact items of up to 98 borrowers. More borrowers: the rest
        are blocked *before* the transaction (a block ahead of the registry is harmless: an opt-in
        recorded later lifts it) and unblocked after it. ``only_if_reason``: change nothing unless the
        recorded change has that reason (a lender's new consent lifts a wrong-number block, never a STOP).
        """
        contacts = sorted(set(borrower_ids))
        first, rest = contacts[:CONTACTS_PER_TRANSACTION], contacts[CONTACTS_PER_TRANSACTION:]
        stamp = iso_utc(at)
        blocked_ahead = False
        for _ in range(MAX_CONSENT_ATTEMPTS):
            current = self.dynamo.get(self.table, consent_key(phone)) or {}
            if current.get("last_inbound_id") == inbound_id:
                return ConsentChange(recorded=False, effective=False, why_not="redelivered")
            recorded_at = str(current.get("changed_at") or "")
            if recorded_at and (stamp < recorded_at or (stamp == recorded_at and not opted_out)):
                return ConsentChange(
                    recorded=False, effective=False, why_not="older than the recorded change"
                )
            if only_if_reason is not None and current.get("reason") != only_if_reason:
                return ConsentChange(recorded=False, effective=False, why_not=f"not a {only_if_reason} block")
            was = current.get("sms_opted_out")
            effective = was is None or bool(was) != opted_out
            if opted_out and rest and not blocked_ahead:
                self._mark_contacts(rest, phone, stamp)
                blocked_ahead = True
            owed = confirmation if effective and confirmation is not None else None
            actions = [
                self._consent_action(phone, current, opted_out, stamp, source, reason, inbound_id, owed)
            ]
            if owed is not None:
                pointer = {
                    "pk": CONFIRMATION_OWED_PK,
                    "sk": f"{phone}#{inbound_id}",
                    "phone": phone,
                    "inbound_id": inbound_id,
                    "owed_at": stamp,
                }
                actions.append({"Put": {"TableName": self.table, "Item": pointer}})
            actions += [self._contact_block_action(b, phone, stamp if opted_out else None) for b in first]
            try:
                self.dynamo.transact_write(actions)
            except ClientError as exc:
                if is_transaction_conflict(exc):
                    continue  # another reply or a claim got there first: read again
                raise
            if not opted_out and rest:
                self._mark_contacts(rest, phone, None)
            return ConsentChange(recorded=True, effective=effective)
        raise ClaimConflict(f"consent of {mask_phone(phone)} kept changing")

    def _consent_action(
        self,
        phone: str,
        current: Mapping[str, Any],
        opted_out: bool,
        stamp: str,
        source: str,
        reason: str,
        inbound_id: str,
        owed: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        revision = int(current.get("revision", 0))
        values: dict[str, Any] = {
            ":v": opted_out,
            ":at": stamp,
            ":src": source,
            ":why": reason,
            ":id": inbound_id,
            ":next": revision + 1,
        }
        update = "SET sms_opted_out = :v, changed_at = :at, #src = :src, reason = :why, "
        update += "last_inbound_id = :id, #r = :next"
        if owed is not None:
            kept = _recent_confirmations(current.get("confirmations") or {})
            kept[inbound_id] = {**owed, "status": CONFIRMATION_OWED, "owed_at": stamp}
            update += ", confirmations = :c"
            values[":c"] = kept
        condition = "attribute_not_exists(#r)"
        if current:
            condition = "#r = :read" if revision else "attribute_not_exists(#r)"
            if revision:
                values[":read"] = revision
        return {
            "Update": {
                "TableName": self.table,
                "Key": consent_key(phone),
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#src": "source", "#r": "revision"},
                "ExpressionAttributeValues": values,
            }
        }

    def _contact_block_action(self, borrower_id: str, phone: str, blocked_at: str | None) -> dict[str, Any]:
        values: dict[str, Any] = {":zero": 0, ":one": 1}
        update = "SET #v = if_not_exists(#v, :zero) + :one"
        if blocked_at is not None:
            update += ", #b = :at"
            values[":at"] = blocked_at
        else:
            update += " REMOVE #b"
        return {
            "Update": {
                "TableName": self.table,
                "Key": contact_key(borrower_id),
                "UpdateExpression": update,
                "ExpressionAttributeNames": {"#v": "version", "#b": sms_block_attribute(phone)},
                "ExpressionAttributeValues": values,
            }
        }

    def _mark_contacts(self, borrower_ids: Iterable[str], phone: str, blocked_at: str | None) -> None:
        """Block (or unblock) a number on contact items beyond the first transaction, one write each."""
        for borrower_id in borrower_ids:
            action = self._contact_block_action(borrower_id, phone, blocked_at)["Update"]
            self.dynamo.update(
                self.table,
                contact_key(borrower_id),
                update=action["UpdateExpression"],
                names=action["ExpressionAttributeNames"],
                values=action["ExpressionAttributeValues"],
            )

    # ---- confirmations owed (exactly one per effective opt-out) ----------------------------------

    def owed_confirmations(self) -> list[Item]:
        """The pointers of confirmations not settled yet (owed, or claimed by a sender that may have died)."""
        found: list[Item] = []
        for items, _ in self.dynamo.query_pages(
            TableName=self.table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": CONFIRMATION_OWED_PK},
        ):
            found.extend(items)
        return found

    def confirmation(self, phone: str, inbound_id: str) -> Item | None:
        """The confirmation entry of one reply on the consent item (None if none was owed)."""
        consent = self.dynamo.get(self.table, consent_key(phone)) or {}
        entry = (consent.get("confirmations") or {}).get(inbound_id)
        return dict(entry) if entry is not None else None

    def claim_confirmation(self, phone: str, inbound_id: str, at: datetime) -> Item | None:
        """Move an owed confirmation to CLAIMED (one caller wins); returns its entry, or None. The claim
        time is kept as ``claimed_at``: a delivery receipt stamped at or after it can prove the Publish."""
        return self._move_confirmation(
            phone, inbound_id, CONFIRMATION_OWED, CONFIRMATION_CLAIMED, at, {"claimed_at": iso_utc(at)}
        )

    def confirmations_of(self, phone: str) -> dict[str, Item]:
        """Every confirmation entry on a number's consent item, by inbound id (one GetItem)."""
        consent = self.dynamo.get(self.table, consent_key(phone)) or {}
        return {str(k): dict(v) for k, v in (consent.get("confirmations") or {}).items()}

    def note_other_reply(self, phone: str, message_id: str) -> int:
        """Record on every confirmation of ``phone`` still in doubt (CLAIMED or AMBIGUOUS) that
        ``message_id`` is another reply (a HELP answer), so its receipt is never taken for the
        confirmation's. ``message_id`` empty (the answer's own response was lost): the entry counts one
        more unknown other reply (``other_reply_unknown``). Returns entries marked.
        """
        marked = 0
        for inbound_id, entry in self.confirmations_of(phone).items():
            if entry.get("status") not in (CONFIRMATION_CLAIMED, CONFIRMATION_AMBIGUOUS):
                continue
            values: dict[str, Any] = {":c": CONFIRMATION_CLAIMED, ":a": CONFIRMATION_AMBIGUOUS}
            if message_id:
                update = "SET #c.#i.#o = list_append(if_not_exists(#c.#i.#o, :none), :id)"
                values.update({":none": [], ":id": [message_id]})
                names = {"#c": "confirmations", "#i": inbound_id, "#s": "status", "#o": "other_replies"}
            else:
                update = "SET #c.#i.#o = if_not_exists(#c.#i.#o, :zero) + :one"
                values.update({":zero": 0, ":one": 1})
                names = {"#c": "confirmations", "#i": inbound_id, "#s": "status", "#o": "other_reply_unknown"}
            try:
                self.dynamo.update(
                    self.table,
                    consent_key(phone),
                    update=update,
                    names=names,
                    values=values,
                    condition="#c.#i.#s IN (:c, :a)",
                )
            except ClientError as exc:
                if is_conditional_failure(exc):
                    continue  # settled meanwhile: nothing left to tell apart
                raise
            marked += 1
        return marked

    def note_confirmation_receipt(self, phone: str, inbound_id: str, message_id: str) -> None:
        """Keep an unknown-message receipt that may be a confirmation's (``receipts_seen``): with more such
        receipts than unknown other replies, one of them is the confirmation's."""
        try:
            self.dynamo.update(
                self.table,
                consent_key(phone),
                update="SET #c.#i.#o = list_append(if_not_exists(#c.#i.#o, :none), :id)",
                names={"#c": "confirmations", "#i": inbound_id, "#s": "status", "#o": "receipts_seen"},
                values={
                    ":none": [],
                    ":id": [message_id],
                    ":c": CONFIRMATION_CLAIMED,
                    ":a": CONFIRMATION_AMBIGUOUS,
                },
                condition="#c.#i.#s IN (:c, :a)",
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise

    def resolve_confirmation(
        self,
        phone: str,
        inbound_id: str,
        expected: str,
        status: str,
        at: datetime,
        *,
        message_id: str = "",
        code: str = "",
    ) -> bool:
        """Move a confirmation from ``expected`` (CLAIMED or AMBIGUOUS) to ``status`` if nobody moved it
        first; returns whether this call moved it. The pointer stays: the sweep drops it once it finds the
        entry settled (so the receipts function needs no delete on this table)."""
        extra = {"message_id": message_id, "code": code}
        return self._move_confirmation(phone, inbound_id, expected, status, at, extra) is not None

    def settle_confirmation(
        self, phone: str, inbound_id: str, status: str, at: datetime, *, message_id: str = "", code: str = ""
    ) -> None:
        """Record what became of a claimed confirmation: SENT, FAILED, AMBIGUOUS, or OWED again (not
        accepted, try later). The pointer goes once it is settled for good; an AMBIGUOUS one keeps it until
        a delivery receipt proves it went out or the receipt horizon passes without one."""
        extra = {"message_id": message_id, "code": code}
        self._move_confirmation(phone, inbound_id, CONFIRMATION_CLAIMED, status, at, extra)
        if status not in (CONFIRMATION_OWED, CONFIRMATION_AMBIGUOUS):
            self.dynamo.batch_write(
                [WriteOp.delete(self.table, {"pk": CONFIRMATION_OWED_PK, "sk": f"{phone}#{inbound_id}"})]
            )

    def _move_confirmation(
        self,
        phone: str,
        inbound_id: str,
        expected: str,
        status: str,
        at: datetime,
        extra: Mapping[str, str] | None = None,
    ) -> Item | None:
        names = {
            "#c": "confirmations",
            "#i": inbound_id,
            "#s": "status",
            "#r": "revision",
            "#t": "updated_at",
        }
        values: dict[str, Any] = {":from": expected, ":to": status, ":at": iso_utc(at), ":one": 1}
        update = "SET #c.#i.#s = :to, #c.#i.#t = :at, #r = #r + :one"
        for n, (name, value) in enumerate(sorted((extra or {}).items())):
            if value:
                names[f"#x{n}"] = name
                values[f":x{n}"] = value
                update += f", #c.#i.#x{n} = :x{n}"
        try:
            item = self.dynamo.update(
                self.table,
                consent_key(phone),
                update=update,
                names=names,
                values=values,
                condition="#c.#i.#s = :from",
                return_new=True,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return None
            raise
        return dict(((item or {}).get("confirmations") or {}).get(inbound_id) or {})


CONFIRMATION_OWED = "OWED"
CONFIRMATION_CLAIMED = "CLAIMED"
CONFIRMATION_SENT = "SENT"
CONFIRMATION_FAILED = "FAILED"
CONFIRMATION_AMBIGUOUS = "AMBIGUOUS"
# Consent changes of one number race only with each other and with claims: a handful of attempts.
MAX_CONSENT_ATTEMPTS = 6
# Settled confirmations kept on the consent item for the record (the ledger keeps every reply).
CONFIRMATIONS_KEPT = 20


def _recent_confirmations(entries: Mapping[str, Any]) -> dict[str, Any]:
    unsettled = {
        k: v
        for k, v in entries.items()
        if v.get("status") in (CONFIRMATION_OWED, CONFIRMATION_CLAIMED, CONFIRMATION_AMBIGUOUS)
    }
    settled = sorted(
        ((k, v) for k, v in entries.items() if k not in unsettled),
        key=lambda kv: str(kv[1].get("owed_at", "")),
    )
    return {**dict(settled[-CONFIRMATIONS_KEPT:]), **unsettled}


@dataclass(frozen=True)
class ConsentChange:
    """What :meth:`StateStore.record_consent` did."""

    recorded: bool  # this reply's change was written
    effective: bool  # the number's state flipped (or was set for the first time)
    # When not recorded: "redelivered", "older than the recorded change" or "not a <reason> block".
    why_not: str = ""
