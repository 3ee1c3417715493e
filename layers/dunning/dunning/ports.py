"""The seams between the services and the adapters: one small ``Protocol`` per role a service needs.

A service field typed with one of these accepts the DynamoDB/SNS adapter in production and the
in-memory fake of ``tests/fakes.py`` in unit tests; neither inherits from it (structural typing), so an
adapter can be split or merged without touching the services. A service takes the State table's store it
needs (the cadence, contact or consent store of ``dunning.adapters.state``). Each Protocol lists only the
methods some service calls, with the adapter's own signature; mypy checks the wiring where the services
are built.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dunning.adapters.consent import ConsentChange
    from dunning.adapters.dynamo import Item, WriteOp
    from dunning.adapters.messaging import SmsOptions


class LenderReader(Protocol):
    """The lender's Loans and Borrowers tables, read-only."""

    def get_loan(self, loan_id: str) -> Item | None: ...

    def loan_ids_of_borrower(self, borrower_id: str) -> list[str]: ...

    def borrower_ids_with_phone(self, phone: str) -> list[str]: ...

    def get_many(
        self, loan_ids: Iterable[str] = (), borrower_ids: Iterable[str] = ()
    ) -> tuple[dict[str, Item], dict[str, Item]]: ...

    def scan_loans(self, segment: int, total_segments: int, page_size: int = 100) -> Iterator[list[Item]]: ...


class LedgerWriter(Protocol):
    """The Ledger table as the reply and receipt services use it: op builders, writes, message reads."""

    def invalid_id_op(self, kind: str, stand_in: str, reason: str, at: datetime) -> WriteOp: ...

    def inbound_op(
        self, partition: str, inbound_id: str, fields: Mapping[str, Any], at: datetime
    ) -> WriteOp: ...

    def dispute_op(
        self, loan_id: str, borrower_id: str, inbound_id: str, at: datetime, *, closed_by: str = ""
    ) -> WriteOp: ...

    def receipt_op(self, message_id: str, fields: Mapping[str, Any], at: datetime) -> WriteOp: ...

    def merged_message_op(self, message: Mapping[str, Any], receipt: Mapping[str, Any]) -> WriteOp: ...

    def early_receipt_op(self, message_id: str, at: datetime) -> WriteOp: ...

    def put_unfinished(self, op: WriteOp) -> bool: ...

    def write(self, ops: Iterable[WriteOp]) -> int: ...

    def get_messages(self, message_ids: Iterable[str]) -> dict[str, Item]: ...


class SmsSender(Protocol):
    """SNS Publish to a phone number; raises ``dunning.adapters.messaging.PublishError``."""

    def send_sms(self, phone: str, text: str, options: SmsOptions) -> str: ...


class AttentionPublisher(Protocol):
    """The AttentionTopic: events for a person to act on."""

    def publish(self, event_type: str, detail: dict[str, Any]) -> str: ...


class CadenceReplanner(Protocol):
    """The cadence items: bring a loan's next plan forward (after a START, a closed dispute)."""

    def replan_earlier(
        self, loan_id: str, when: datetime, at: datetime, rule_id: str, reason: str
    ) -> bool: ...


class ContactWriter(Protocol):
    """The borrowers' contact items: pauses, disputes and dead-contact-point counters."""

    def pause(self, borrower_id: str, until: datetime) -> bool: ...

    def open_dispute(
        self, borrower_id: str, loan_id: str, *, at: datetime, inbound_id: str, classification: str
    ) -> bool: ...

    def record_hard_failure(
        self, borrower_id: str, point: str, *, threshold: int, permanent: bool = False
    ) -> bool: ...

    def reset_hard_failures(self, points: Iterable[tuple[str, str]]) -> int: ...


class ConsentRegistry(Protocol):
    """The per-number consent items and the confirmations owed for their changes."""

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
    ) -> ConsentChange: ...

    def owed_confirmations(self) -> list[Item]: ...

    def confirmation(self, phone: str, inbound_id: str) -> Item | None: ...

    def claim_confirmation(self, phone: str, inbound_id: str, at: datetime) -> Item | None: ...

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
    ) -> None: ...

    def confirmations_of(self, phone: str) -> dict[str, Item]: ...

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
    ) -> bool: ...

    def note_other_reply(
        self,
        phone: str,
        reply: str,
        at: datetime,
        message_id: str = "",
        announced: Collection[str] = (),
    ) -> list[str]: ...

    def note_confirmation_receipt(
        self, phone: str, inbound_id: str, message_id: str, stamp: datetime
    ) -> None: ...
