"""In-memory fakes of the adapters, for unit tests of the services (the moto tests are the integration level).

Each fake satisfies a Protocol of ``dunning.ports`` and keeps the adapter's observable rules that the
services rely on: consent changes ordered by the reply's time and a redelivery ignored, an owed
confirmation claimed by one caller only, a pause never shortened, one open dispute per loan, a point
unusable at the threshold or at once when the failure is permanent. What the item looks like in
DynamoDB is the adapters' business and is tested on moto; the engine's view of a borrower is built with
the same pure function the ContactStore uses (``contact_state``), so a fake cannot drift from it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dunning.adapters.consent import (
    CONFIRMATION_AMBIGUOUS,
    CONFIRMATION_CLAIMED,
    CONFIRMATION_OWED,
    ConsentChange,
)
from dunning.adapters.contact import contact_state
from dunning.adapters.dynamo import Dynamo, Item, WriteOp
from dunning.adapters.ledger import Ledger
from dunning.adapters.messaging import FailureKind, PublishError, SmsOptions
from dunning.adapters.state_keys import dispute_attribute, sms_block_attribute
from dunning.items import iso_utc, iso_utc_precise
from dunning.models import ContactState
from dunning.receipt_matching import RECEIPT_WINDOW, announcement, receipt_line, withdrawal


@dataclass
class FakeLender:
    """The Loans and Borrowers tables as two dicts of items."""

    loans: dict[str, Item] = field(default_factory=dict)
    borrowers: dict[str, Item] = field(default_factory=dict)

    def get_loan(self, loan_id: str) -> Item | None:
        return self.loans.get(loan_id)

    def loan_ids_of_borrower(self, borrower_id: str) -> list[str]:
        return sorted(i for i, loan in self.loans.items() if loan.get("borrower_id") == borrower_id)

    def borrower_ids_with_phone(self, phone: str) -> list[str]:
        return sorted(i for i, b in self.borrowers.items() if b.get("phone") == phone)

    def get_many(
        self, loan_ids: Iterable[str] = (), borrower_ids: Iterable[str] = ()
    ) -> tuple[dict[str, Item], dict[str, Item]]:
        return (
            {i: self.loans[i] for i in loan_ids if i in self.loans},
            {i: self.borrowers[i] for i in borrower_ids if i in self.borrowers},
        )

    def scan_loans(self, segment: int, total_segments: int, page_size: int = 100) -> Iterator[list[Item]]:
        mine = [loan for n, loan in enumerate(self.loans.values()) if n % total_segments == segment]
        for start in range(0, len(mine), page_size):
            yield mine[start : start + page_size]


class FakeLedger(Ledger):
    """The Ledger with its items in a dict: the real op builders (one home for the item shapes), the
    storage in memory. Its Dynamo is never called (its client would only be made on first use)."""

    def __init__(self, retention_days: int = 400) -> None:
        super().__init__(Dynamo(), "Ledger", retention_days)
        self.items: dict[tuple[str, str], Item] = {}

    def put_new(self, op: WriteOp) -> bool:
        assert op.item is not None
        key = (str(op.key["pk"]), str(op.key["sk"]))
        if key in self.items:
            return False
        self.items[key] = dict(op.item)
        return True

    def put_unfinished(self, op: WriteOp) -> bool:
        assert op.item is not None
        key = (str(op.key["pk"]), str(op.key["sk"]))
        if self.items.get(key, {}).get("handled") is True:
            return False
        self.items[key] = dict(op.item)
        return True

    def write(self, ops: Iterable[WriteOp]) -> int:
        written = 0
        for op in ops:
            key = (str(op.key["pk"]), str(op.key["sk"]))
            if op.item is None:
                self.items.pop(key, None)
            else:
                self.items[key] = dict(op.item)
            written += 1
        return written

    def get_items(self, keys: Iterable[Mapping[str, Any]]) -> list[Item]:
        found = (self.items.get((str(k["pk"]), str(k["sk"]))) for k in keys)
        return [dict(i) for i in found if i is not None]

    def partition(self, pk: str) -> list[Item]:
        return [dict(item) for (p, _), item in sorted(self.items.items()) if p == pk]

    def of_type(self, kind: str) -> list[Item]:
        """Every item of one ``type`` (INBOUND, DISPUTE, DECISION, MESSAGE, …), in key order."""
        return [dict(item) for _, item in sorted(self.items.items()) if item.get("type") == kind]


@dataclass
class FakeStateStore:
    """The State table's cadence, contact and consent items as dicts: one fake for the three stores
    (CadenceStore, ContactStore, ConsentStore), with every method a service calls on any of them."""

    cadence: dict[str, Item] = field(default_factory=dict)
    contacts: dict[str, Item] = field(default_factory=dict)
    consents: dict[str, Item] = field(default_factory=dict)
    owed: dict[tuple[str, str], Item] = field(default_factory=dict)

    # ---- cadence ------------------------------------------------------------------------------------

    def replan_earlier(self, loan_id: str, when: datetime, at: datetime, rule_id: str, reason: str) -> bool:
        item = self.cadence.get(loan_id)
        if item is None:
            return False
        due = item.get("next_contact_at")
        if due is not None and str(due) <= iso_utc(when):
            return False
        item.update(next_contact_at=iso_utc(when), last_rule=rule_id, last_reason=reason[:500])
        return True

    # ---- contact items --------------------------------------------------------------------------

    def _contact(self, borrower_id: str) -> Item:
        return self.contacts.setdefault(borrower_id, {"version": 0})

    def _bump(self, borrower_id: str) -> Item:
        contact = self._contact(borrower_id)
        contact["version"] = int(contact.get("version", 0)) + 1
        return contact

    def read_contact(self, borrower_id: str, phone: str | None) -> ContactState:
        return contact_state(
            borrower_id, self.contacts.get(borrower_id), self.consents.get(phone or ""), phone
        )

    def pause(self, borrower_id: str, until: datetime) -> bool:
        current = self._contact(borrower_id).get("paused_until")
        if current is not None and str(current) >= iso_utc(until):
            return False
        self._bump(borrower_id)["paused_until"] = iso_utc(until)
        return True

    def open_dispute(
        self, borrower_id: str, loan_id: str, *, at: datetime, inbound_id: str, classification: str
    ) -> bool:
        if dispute_attribute(loan_id) in self._contact(borrower_id):
            return False
        record = {"opened_at": iso_utc(at), "inbound_id": inbound_id, "classification": classification}
        self._bump(borrower_id)[dispute_attribute(loan_id)] = record
        return True

    def record_hard_failure(
        self, borrower_id: str, point: str, *, threshold: int, permanent: bool = False
    ) -> bool:
        contact = self._contact(borrower_id)
        if point in contact.get("unusable", set()):
            return True
        failures = contact.setdefault("hard_failures", {})
        failures[point] = failures.get(point, 0) + 1
        unusable = permanent or failures[point] >= threshold
        if unusable:
            contact.setdefault("unusable", set()).add(point)
        self._bump(borrower_id)
        return unusable

    def reset_hard_failures(self, points: Iterable[tuple[str, str]]) -> int:
        reset = 0
        for borrower_id, point in dict.fromkeys(points):
            contact = self.contacts.get(borrower_id) or {}
            if point in contact.get("unusable", set()) or point not in contact.get("hard_failures", {}):
                continue
            del contact["hard_failures"][point]
            self._bump(borrower_id)
            reset += 1
        return reset

    # ---- the consent registry and its confirmations -------------------------------------------------

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
        current = self.consents.get(phone, {})
        stamp = iso_utc(at)
        if current.get("last_inbound_id") == inbound_id:
            return ConsentChange(recorded=False, effective=False, why_not="redelivered")
        recorded_at = str(current.get("changed_at") or "")
        # In doubt (the same second), opted out.
        if recorded_at and (stamp < recorded_at or (stamp == recorded_at and not opted_out)):
            return ConsentChange(recorded=False, effective=False, why_not="older than the recorded change")
        if only_if_reason is not None and current.get("reason") != only_if_reason:
            return ConsentChange(recorded=False, effective=False, why_not=f"not a {only_if_reason} block")
        was = current.get("sms_opted_out")
        effective = was is None or bool(was) != opted_out
        confirmations = dict(current.get("confirmations") or {})
        if effective and confirmation is not None:
            confirmations[inbound_id] = {**confirmation, "status": CONFIRMATION_OWED, "owed_at": stamp}
            self.owed[(phone, inbound_id)] = {"phone": phone, "inbound_id": inbound_id, "owed_at": stamp}
        self.consents[phone] = {
            **current,  # an update of the item, as the store's: the confirmation turn stays
            "sms_opted_out": opted_out,
            "changed_at": stamp,
            "source": source,
            "reason": reason,
            "last_inbound_id": inbound_id,
            "confirmations": confirmations,
        }
        for borrower_id in set(borrower_ids):
            contact = self._bump(borrower_id)
            if opted_out:
                contact[sms_block_attribute(phone)] = stamp
            else:
                contact.pop(sms_block_attribute(phone), None)
        return ConsentChange(recorded=True, effective=effective)

    def owed_confirmations(self) -> list[Item]:
        return [dict(pointer) for pointer in self.owed.values()]

    def confirmation(self, phone: str, inbound_id: str) -> Item | None:
        entry = (self.consents.get(phone, {}).get("confirmations") or {}).get(inbound_id)
        return dict(entry) if entry is not None else None

    def claim_confirmation(self, phone: str, inbound_id: str, at: datetime) -> Item | None:
        consent = self.consents.get(phone, {})
        holder, until = consent.get("confirming_by"), consent.get("confirming_until")
        if holder not in (None, inbound_id) and str(until) >= iso_utc_precise(at):
            return None  # another confirmation of the number holds its turn
        claimed = {"claimed_at": iso_utc_precise(at)}
        entry = self._move(phone, inbound_id, CONFIRMATION_OWED, CONFIRMATION_CLAIMED, at, claimed)
        if entry is not None:
            consent.update(confirming_by=inbound_id, confirming_until=iso_utc_precise(at + RECEIPT_WINDOW))
        return entry

    def _give_turn_back(self, phone: str) -> None:
        consent = self.consents.get(phone, {})
        consent.pop("confirming_by", None)
        consent.pop("confirming_until", None)

    def confirmations_of(self, phone: str) -> dict[str, Item]:
        return {k: dict(v) for k, v in (self.consents.get(phone, {}).get("confirmations") or {}).items()}

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
        extra = {k: v for k, v in (("message_id", message_id), ("code", code)) if v}
        return self._move(phone, inbound_id, expected, status, at, extra) is not None

    def note_other_reply(
        self,
        phone: str,
        reply: str,
        at: datetime,
        message_id: str = "",
        announced: Collection[str] = (),
    ) -> list[str]:
        announcing = not message_id and not announced
        marked: list[str] = []
        for inbound_id, entry in (self.consents.get(phone, {}).get("confirmations") or {}).items():
            if inbound_id == reply or entry.get("status") not in (
                CONFIRMATION_CLAIMED,
                CONFIRMATION_AMBIGUOUS,
            ):
                continue
            if not (message_id or announcing or inbound_id in announced):
                continue
            if message_id:
                entry["other_replies"] = [*entry.get("other_replies", []), message_id]
            line = (
                announcement(reply, at)
                if announcing
                else withdrawal(reply, at)
                if inbound_id in announced
                else None
            )
            if line is not None:
                entry["others_announced"] = [*entry.get("others_announced", []), line]
            marked.append(inbound_id)
        return marked

    def note_confirmation_receipt(
        self, phone: str, inbound_id: str, message_id: str, stamp: datetime
    ) -> None:
        entry = (self.consents.get(phone, {}).get("confirmations") or {}).get(inbound_id)
        if entry is not None and entry.get("status") in (CONFIRMATION_CLAIMED, CONFIRMATION_AMBIGUOUS):
            entry["receipts_at"] = [*entry.get("receipts_at", []), receipt_line(message_id, stamp)]

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
        extra = {k: v for k, v in (("message_id", message_id), ("code", code)) if v}
        if self._move(phone, inbound_id, CONFIRMATION_CLAIMED, status, at, extra) and give_turn_back:
            self._give_turn_back(phone)
        if status not in (CONFIRMATION_OWED, CONFIRMATION_AMBIGUOUS):
            self.owed.pop((phone, inbound_id), None)

    def _move(
        self, phone: str, inbound_id: str, expected: str, status: str, at: datetime, extra: Mapping[str, str]
    ) -> Item | None:
        entry = (self.consents.get(phone, {}).get("confirmations") or {}).get(inbound_id)
        if entry is None or entry.get("status") != expected:
            return None
        entry.update(status=status, updated_at=iso_utc(at), **extra)
        return dict(entry)


@dataclass(frozen=True)
class SentSms:
    phone: str
    text: str
    origination_identity: str | None


@dataclass
class FakeMessaging:
    """SNS Publish to phones: records what was accepted; ``refuse`` makes the next publishes fail."""

    sent: list[SentSms] = field(default_factory=list)
    refusals: list[FailureKind] = field(default_factory=list)

    def refuse(self, *kinds: FailureKind) -> None:
        """The next ``len(kinds)`` publishes fail with these kinds, in order."""
        self.refusals.extend(kinds)

    def send_sms(self, phone: str, text: str, options: SmsOptions) -> str:
        if self.refusals:
            kind = self.refusals.pop(0)
            raise PublishError(kind, f"Fake{kind.value.title()}", "refused by the fake")
        self.sent.append(SentSms(phone, text, options.origination_identity))
        return f"msg-{len(self.sent)}"


@dataclass
class FakeAttention:
    """The AttentionTopic: the events published, in order."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, event_type: str, detail: dict[str, Any]) -> str:
        self.events.append((event_type, detail))
        return f"attention-{len(self.events)}"

    def types(self) -> list[str]:
        return [event_type for event_type, _ in self.events]
