"""The contact items of the State table: each borrower's caps, claims, pause, unusable points and
open disputes, read together with the consent item of their phone.

``BORROWER#<borrower_id>`` / ``CONTACT``: ``version``, ``sends``, ``claims``, ``paused_until``,
``unusable``, ``hard_failures``. Every change bumps ``version``, so a claim made on an older read fails
and is re-decided: that is what makes caps and pauses exact under concurrency. A claim also drops the
claims of loans that ended long ago (:func:`prunable_claims`), so the item does not grow with every loan
the borrower ever had. The item also holds
``sms_block#<e164>`` (written by a consent change, :mod:`dunning.adapters.consent`) and
``dispute#<loan_id>`` for a dispute reply awaiting verification.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from dunning.adapters.dynamo import Dynamo, Item, is_conditional_failure
from dunning.adapters.state_keys import (
    CONSENT,
    CONTACT,
    DISPUTE_PREFIX,
    consent_key,
    contact_key,
    dispute_attribute,
    sms_block_attribute,
)
from dunning.items import iso_utc, parse_iso_utc
from dunning.models import Channel, ContactState, SendRecord, is_model_id, trusted_whole

# Optimistic-lock retries: each retry re-reads, so more than a handful means a hot borrower and the
# SQS retry (later, with fresh state) is the better answer.
MAX_CONFLICT_RETRIES = 4


class ClaimConflict(Exception):
    """The contact item changed since it was read (or the step is already claimed): re-read, re-decide."""


def claim_loan(claim: str) -> str:
    """The loan id of a claim ``<loan_id>#<step>`` (an id cannot hold ``#``: :mod:`dunning.ids`)."""
    return claim.partition("#")[0]


def prunable_claims(
    claims: Iterable[str], sends: Iterable[SendRecord], ended_loans: Iterable[str], claiming: str
) -> frozenset[str]:
    """The claims a claim of loan ``claiming`` drops: those of ``ended_loans`` (read terminal or gone
    from the Loans table in the same batch), other than ``claiming``, with no send left in ``sends`` (the
    list the claim writes: their last send is older than the sends window, at least ``MIN_SENDS_KEPT``).

    No planner or sender can send such a (loan, step) again: the engine stops an ended loan before it
    looks at claims, and its jobs expired long ago (TTL at most a day). The claims of a loan still
    active are never dropped, whatever their age: they are what keeps its latest due step from going
    out twice.
    """
    ended = frozenset(ended_loans) - {claiming}
    if not ended:
        return frozenset()
    recent = {s.loan_id for s in sends}
    return frozenset(c for c in claims if (loan := claim_loan(c)) in ended and loan not in recent)


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


_CHANNELS = {c.value: c for c in Channel}


def _channel(text: str) -> Channel:
    # ``Channel(text)`` without the enum call for the two values there are (an unknown one raises).
    return _CHANNELS.get(text) or Channel(text)


def _disputed_loans(contact: Mapping[str, Any]) -> frozenset[str]:
    try:  # an item's attribute names are texts: no ``str`` of each (a contact item rarely holds one)
        marked = [k for k in contact if k.startswith(DISPUTE_PREFIX)]
    except (AttributeError, TypeError):
        marked = [k for k in map(str, contact) if k.startswith(DISPUTE_PREFIX)]
    return frozenset(k.removeprefix(DISPUTE_PREFIX) for k in marked) if marked else frozenset()


def contact_state(
    borrower_id: str,
    contact: Mapping[str, Any] | None,
    consent: Mapping[str, Any] | None,
    phone: str | None = None,
) -> ContactState:
    """The engine's view of a borrower: their contact item and the consent item of their phone.

    The values are parsed here (timestamps, channels, sets of strings), so the models are built
    without validating them again (``dunning.models.trusted``), except around an id outside the id
    alphabet, which the models refuse as before."""
    contact = contact or {}
    sends = []
    valid_id = None  # the last loan id found valid: a borrower's sends are mostly about one loan
    for s in contact.get("sends", []):
        # Every field, in the model's order (``trusted_whole``).
        send: dict[str, Any] = {
            "at": parse_iso_utc(str(s["at"])),
            "channel": _channel(str(s["channel"])),
            "loan_id": str(s["loan_id"]),
            "step": str(s["step"]),
        }
        loan_id = send["loan_id"]
        if loan_id == valid_id or is_model_id(loan_id):
            valid_id = loan_id
            sends.append(trusted_whole(SendRecord, send))
        else:
            sends.append(SendRecord(**send))
    paused = contact.get("paused_until")
    # Every field of ContactState, in its order (``trusted_whole``).
    values: dict[str, Any] = {
        "borrower_id": borrower_id,
        "version": int(contact.get("version", 0)),
        "sends": tuple(sends),
        "claims": frozenset(map(str, contact.get("claims", ()))),
        "paused_until": parse_iso_utc(str(paused)) if paused else None,
        "sms_opted_out": sms_blocked(phone, contact, consent),
        "unusable": frozenset(map(str, contact.get("unusable", ()))),
        "disputed_loans": _disputed_loans(contact),
    }
    return trusted_whole(ContactState, values) if is_model_id(borrower_id) else ContactState(**values)


def _sends_value(sends: Iterable[SendRecord]) -> list[dict[str, str]]:
    return [
        {"at": iso_utc(s.at), "channel": s.channel.value, "loan_id": s.loan_id, "step": s.step} for s in sends
    ]


def sms_block_action(table: str, borrower_id: str, phone: str, blocked_at: str | None) -> dict[str, Any]:
    """The TransactWriteItems action that blocks (or, with ``blocked_at=None``, unblocks) texts to
    ``phone`` on a borrower's contact item, bumping its version so that a claim on an older read fails."""
    values: dict[str, Any] = {":zero": 0, ":one": 1}
    update = "SET #v = if_not_exists(#v, :zero) + :one"
    if blocked_at is not None:
        update += ", #b = :at"
        values[":at"] = blocked_at
    else:
        update += " REMOVE #b"
    return {
        "Update": {
            "TableName": table,
            "Key": contact_key(borrower_id),
            "UpdateExpression": update,
            "ExpressionAttributeNames": {"#v": "version", "#b": sms_block_attribute(phone)},
            "ExpressionAttributeValues": values,
        }
    }


@dataclass
class ContactStore:
    """The contact items: claims of sends under the caps, pauses, unusable points and disputes."""

    dynamo: Dynamo
    table: str

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
        ended_loans: Iterable[str] = (),
    ) -> ContactState:
        """Record the send of (loan, step) if the contact item is still the one ``state`` was read from.

        Conditional on the version read and on the step not being claimed already; the sends list is
        rewritten with the new send, pruned to the longest cap window, and the claims of ``ended_loans``
        that :func:`prunable_claims` allows are dropped in the same write. Raises :class:`ClaimConflict`.
        """
        claim = ContactState.claim_key(loan_id, step)
        new_send = SendRecord(at=at, channel=channel, loan_id=loan_id, step=step)
        kept = (*(s for s in state.sends if s.at > at - keep_sends_for), new_send)
        dropped = prunable_claims(state.claims, kept, ended_loans, loan_id)
        claims = (state.claims - dropped) | {claim}
        condition = "attribute_not_exists(#v)" if state.version == 0 else "#v = :read"
        values: dict[str, Any] = {":next": state.version + 1, ":sends": _sends_value(kept), ":c": {claim}}
        # Pruning rewrites the whole set (one path may not be both added to and deleted from in one
        # update): exact, since the write is conditional on the version the claims were read at.
        update = "SET #v = :next, sends = :sends ADD claims :c"
        if dropped:
            update = "SET #v = :next, sends = :sends, claims = :c"
            values[":c"] = set(claims)
        if state.version:
            values[":read"] = state.version
        values[":claim"] = claim
        try:
            self.dynamo.update(
                self.table,
                contact_key(state.borrower_id),
                update=update,
                names={"#v": "version"},
                values=values,
                condition=f"{condition} AND NOT contains(claims, :claim)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise ClaimConflict(claim) from None
            raise
        return state.model_copy(update={"version": state.version + 1, "sends": kept, "claims": claims})

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
            values: dict[str, Any] = {
                ":next": current.version + 1,
                ":sends": _sends_value(sends),
                ":c": {claim},
            }
            update = "SET #v = :next, sends = :sends DELETE claims :c"
            if unusable_point:
                update += " ADD unusable :p"
                values[":p"] = {unusable_point}
            if self._update_at_version(current.borrower_id, current.version, update, values):
                return True
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
            if self._update_at_version(borrower_id, version, update, values):
                return unusable
        raise ClaimConflict(f"contact item of {borrower_id} kept changing")

    def _update_at_version(self, borrower_id: str, version: int, update: str, values: dict[str, Any]) -> bool:
        """Apply ``update`` if the contact item is still at the ``version`` read (0: an item not written
        yet); False when it changed since, for the caller to read again."""
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
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

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

    # Disputes awaiting verification live on the contact item: a claim made before one opens re-decides.

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
