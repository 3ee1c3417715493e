"""The consent registry of the State table: each phone number's SMS consent, the confirmations owed for
its changes, and the pointers that lead the reconcile sweep to those still owed.

- ``PHONE#<e164>`` / ``CONSENT``: ``sms_opted_out``, ``changed_at`` (the received time of the reply that
  last changed consent: an older reply is a no-op), ``source``, ``reason`` (``stop``, ``wrong_number``,
  ``start``, ``lender_consent``), ``last_inbound_id`` (a redelivery of it is a no-op) and
  ``confirmations`` (per inbound id: a confirmation SMS owed, claimed, sent, failed or ambiguous).
- ``CONFIRMATION_OWED`` / ``<e164>#<inbound_id>``: points the reconcile sweep at a confirmation still
  owed, written in the same transaction as the opt-out; deleted once it is SENT or FAILED (an AMBIGUOUS
  one keeps it: a receipt settles it, or the sweep sends it again after the receipt horizon).

A consent change is one ``TransactWriteItems``: the consent item, the pointer, and on the contact item of
every borrower with that number a version bump plus ``sms_block#<e164>`` (the ``changed_at`` of the
block, removed by an opt-in). The sender's claim stays one conditional write on the contact item's
version: a send decided on a read from before the change fails its claim and re-decides, and a read that
sees the bumped contact item sees the block on it, whatever the consent item's read returned.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from dunning.adapters.contact import ClaimConflict, sms_block_action
from dunning.adapters.dynamo import (
    TRANSACT_LIMIT,
    Dynamo,
    Item,
    WriteOp,
    is_conditional_failure,
    is_transaction_conflict,
)
from dunning.adapters.state_keys import (
    CONFIRMATION_OWED_PK,
    confirmation_pointer_key,
    consent_key,
    contact_key,
)
from dunning.items import iso_utc, iso_utc_precise
from dunning.observability import mask_phone

CONFIRMATION_OWED = "OWED"
CONFIRMATION_CLAIMED = "CLAIMED"
CONFIRMATION_SENT = "SENT"
CONFIRMATION_FAILED = "FAILED"
CONFIRMATION_AMBIGUOUS = "AMBIGUOUS"
# Consent changes of one number race only with each other and with claims: a handful of attempts.
MAX_CONSENT_ATTEMPTS = 6
# Settled confirmations kept on the consent item for the record (the ledger keeps every reply).
CONFIRMATIONS_KEPT = 20
# A consent transaction carries the consent item and the pointer; the rest of its 100 items are contacts.
CONTACTS_PER_TRANSACTION = TRANSACT_LIMIT - 2


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
    """What :meth:`ConsentStore.record_consent` did."""

    recorded: bool  # this reply's change was written
    effective: bool  # the number's state flipped (or was set for the first time)
    # When not recorded: "redelivered", "older than the recorded change" or "not a <reason> block".
    why_not: str = ""


@dataclass
class ConfirmationEvidence:
    """What the receipts function weighs for the confirmations in doubt on a number
    (dunning.receipt_matching): the other replies announced and told apart on them, and the receipts of
    unknown id stamped in their windows."""

    dynamo: Dynamo
    table: str

    def confirmations_of(self, phone: str) -> dict[str, Item]:
        """Every confirmation entry on a number's consent item, by inbound id (one GetItem)."""
        consent = self.dynamo.get(self.table, consent_key(phone)) or {}
        return {str(k): dict(v) for k, v in (consent.get("confirmations") or {}).items()}

    def note_other_reply(
        self,
        phone: str,
        reply: str,
        at: datetime,
        message_id: str = "",
        announced: Collection[str] = (),
    ) -> list[str]:
        """Tell another reply to ``phone`` (a HELP answer, or a confirmation: ``reply`` is its inbound
        id) apart from the confirmations still in doubt (CLAIMED or AMBIGUOUS) on the number, so that
        its receipt is never taken for theirs (dunning.receipt_matching):

        - before its Publish (no ``message_id``, nothing ``announced``): announced on every such entry
          (``others_announced`` gains ``+ <reply> <at>``: the invocation may die right after the
          Publish, and its receipt must then count as possibly this reply's). Returns those entries'
          inbound ids: the ``announced`` of the next call;
        - after it, with its id: the id is added to every such entry's ``other_replies``, and the
          entries ``announced`` withdraw that announcement (``- <reply> <at>``: the reply is known now);
        - when SNS did not take it (no ``message_id``, ``announced`` given): withdrawn.

        An answer whose outcome is unknown (a lost response) stays announced. A confirmation's own
        entry is never told of itself.
        """
        # Imported here: the indexer, which only records consent, never loads the receipt matching.
        from dunning.receipt_matching import announcement, withdrawal

        announcing = not message_id and not announced
        marked: list[str] = []
        for inbound_id, entry in self.confirmations_of(phone).items():
            if inbound_id == reply or entry.get("status") not in (
                CONFIRMATION_CLAIMED,
                CONFIRMATION_AMBIGUOUS,
            ):
                continue
            lines = (
                [announcement(reply, at)]
                if announcing
                else [withdrawal(reply, at)]
                if inbound_id in announced
                else []
            )
            if not (message_id or lines):
                continue
            # The revision moves too: a consent change that read the item before this write rewrites
            # the confirmations it read, so it must fail and read again rather than drop this line.
            names = {"#c": "confirmations", "#i": inbound_id, "#s": "status", "#r": "revision"}
            values: dict[str, Any] = {
                ":c": CONFIRMATION_CLAIMED,
                ":a": CONFIRMATION_AMBIGUOUS,
                ":none": [],
                ":one": 1,
            }
            parts: list[str] = ["#r = #r + :one"]
            if message_id:
                parts.append("#c.#i.#o = list_append(if_not_exists(#c.#i.#o, :none), :id)")
                names["#o"] = "other_replies"
                values[":id"] = [message_id]
            if lines:
                parts.append("#c.#i.#n = list_append(if_not_exists(#c.#i.#n, :none), :line)")
                names["#n"] = "others_announced"
                values[":line"] = lines
            try:
                self.dynamo.update(
                    self.table,
                    consent_key(phone),
                    update="SET " + ", ".join(parts),
                    names=names,
                    values=values,
                    condition="#c.#i.#s IN (:c, :a)",
                )
            except ClientError as exc:
                if is_conditional_failure(exc):
                    continue  # settled meanwhile: nothing left to tell apart
                raise
            marked.append(inbound_id)
        return marked

    def note_confirmation_receipt(
        self, phone: str, inbound_id: str, message_id: str, stamp: datetime
    ) -> None:
        """Keep a receipt of unknown id, stamped in the entry's window, on the entry (``receipts_at``):
        with the receipts after it, it may prove this or another confirmation in doubt sent."""
        from dunning.receipt_matching import receipt_line

        try:
            self.dynamo.update(
                self.table,
                consent_key(phone),
                update="SET #c.#i.#o = list_append(if_not_exists(#c.#i.#o, :none), :line), #r = #r + :one",
                names={
                    "#c": "confirmations",
                    "#i": inbound_id,
                    "#s": "status",
                    "#o": "receipts_at",
                    "#r": "revision",
                },
                values={
                    ":none": [],
                    ":one": 1,
                    ":line": [receipt_line(message_id, stamp)],
                    ":c": CONFIRMATION_CLAIMED,
                    ":a": CONFIRMATION_AMBIGUOUS,
                },
                condition="#c.#i.#s IN (:c, :a)",
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise


@dataclass
class ConfirmationRecords(ConfirmationEvidence):
    """The confirmations owed for consent changes, kept on the number's consent item: exactly one per
    effective opt-out (owed → claimed → sent, failed or ambiguous, settled by a receipt or re-sent)."""

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
        time is kept as ``claimed_at``, to the microsecond: a delivery receipt stamped at or after it can
        prove the Publish, one stamped before it (another reply published a moment earlier) cannot.

        In the same write the claim takes the number's confirmation turn (``confirming_by``,
        ``confirming_until``: :data:`dunning.receipt_matching.RECEIPT_WINDOW` after the claim), and it
        fails while another confirmation of the number holds it: two confirmations in doubt on one number
        never have overlapping receipt windows, so a receipt can only ever be one of them. The holder
        gives the turn back once its outcome is known (:meth:`settle_confirmation`); one whose outcome is
        unknown keeps it until it runs out. None then too: the entry is still OWED."""
        return self._move_confirmation(
            phone,
            inbound_id,
            CONFIRMATION_OWED,
            CONFIRMATION_CLAIMED,
            at,
            {"claimed_at": iso_utc_precise(at)},
            turn="take",
        )

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
        self,
        phone: str,
        inbound_id: str,
        status: str,
        at: datetime,
        *,
        message_id: str = "",
        code: str = "",
        give_turn_back: bool = False,
    ) -> None:
        """Record what became of a claimed confirmation: SENT, FAILED, AMBIGUOUS, or OWED again (not
        accepted, try later). The pointer goes once it is settled for good. ``give_turn_back``: in the
        same write the number's confirmation turn is freed (the claim holder says so when the outcome is
        known well within the turn, so that no other confirmation can hold it yet)."""
        extra = {"message_id": message_id, "code": code}
        turn = "give" if give_turn_back else ""
        self._move_confirmation(phone, inbound_id, CONFIRMATION_CLAIMED, status, at, extra, turn=turn)
        if status not in (CONFIRMATION_OWED, CONFIRMATION_AMBIGUOUS):
            self.dynamo.batch_write([WriteOp.delete(self.table, confirmation_pointer_key(phone, inbound_id))])

    def _move_confirmation(
        self,
        phone: str,
        inbound_id: str,
        expected: str,
        status: str,
        at: datetime,
        extra: Mapping[str, str] | None = None,
        *,
        turn: str = "",
    ) -> Item | None:
        """One conditional UpdateItem moving an entry from ``expected`` to ``status``; ``turn``: "take"
        the number's confirmation turn in it (only if nobody else holds it), or "give" it back."""
        from dunning.receipt_matching import RECEIPT_WINDOW

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
        condition = "#c.#i.#s = :from"
        if turn:
            names.update({"#cu": "confirming_until", "#cb": "confirming_by"})
        if turn == "take":
            update += ", #cu = :until, #cb = :me"
            condition += " AND (attribute_not_exists(#cu) OR #cu < :now OR #cb = :me)"
            values.update(
                {
                    ":until": iso_utc_precise(at + RECEIPT_WINDOW),
                    ":now": iso_utc_precise(at),
                    ":me": inbound_id,
                }
            )
        elif turn == "give":
            update += " REMOVE #cu, #cb"
        try:
            item = self.dynamo.update(
                self.table,
                consent_key(phone),
                update=update,
                names=names,
                values=values,
                condition=condition,
                return_new=True,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return None
            raise
        return dict(((item or {}).get("confirmations") or {}).get(inbound_id) or {})


@dataclass
class ConsentStore(ConfirmationRecords):
    """The consent items of phone numbers; the confirmations owed for their changes are the base
    class's (the same item, the other half of its life)."""

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
                    **confirmation_pointer_key(phone, inbound_id),
                    "phone": phone,
                    "inbound_id": inbound_id,
                    "owed_at": stamp,
                }
                actions.append({"Put": {"TableName": self.table, "Item": pointer}})
            actions += [sms_block_action(self.table, b, phone, stamp if opted_out else None) for b in first]
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

    def _mark_contacts(self, borrower_ids: Iterable[str], phone: str, blocked_at: str | None) -> None:
        """Block (or unblock) a number on contact items beyond the first transaction, one write each."""
        for borrower_id in borrower_ids:
            action = sms_block_action(self.table, borrower_id, phone, blocked_at)["Update"]
            self.dynamo.update(
                self.table,
                contact_key(borrower_id),
                update=action["UpdateExpression"],
                names=action["ExpressionAttributeNames"],
                values=action["ExpressionAttributeValues"],
            )
