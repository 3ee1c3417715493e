"""The daily reconcile sweep: repair what a missed stream record or a crash left behind.

- A parallel-capable Scan of Loans (one segment per invocation, or all of them in turn): an active loan
  with no cadence item (its INSERT never reached the indexer) is put into the due-index now; a paid,
  closed or charged-off loan still in the index is taken out, with a STOP in the ledger; a loan that
  breaks the item contract and has no cadence item gets a STOP ``data.invalid`` once. A loan id that
  cannot be a key part (``dunning.ids``) is recorded once under its digest and never used in a key.
- AMBIGUOUS jobs (claimed, outcome unknown) are resolved to SENT when a MESSAGE for the same loan and
  step exists (found through the ledger's ``ByLoan`` index); the others stay AMBIGUOUS, on record.
- STOP/START confirmations still owed (their reply's invocation died, or SNS refused them for now) are
  sent, once: :class:`dunning.inbound.Confirmer` claims each before publishing; one claimed by an
  invocation that died longer ago than ``CLAIM_TIMEOUT`` is recorded AMBIGUOUS (it may have gone out).
  A delivery receipt for its number settles it SENT (``dunning.receipts``); one CLAIMED or AMBIGUOUS
  with no receipt after CONFIRMATION_RECEIPT_HORIZON_MINUTES never reached SNS: it is owed and sent.
- Receipts that arrived before their MESSAGE was written are merged into it; a receipt whose MESSAGE
  still does not exist after :data:`EARLY_RECEIPT_WAIT` (a message not ours, or one whose sender died
  before its ledger write) stays a RECEIPT on its own and is no longer looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dunning import clock
from dunning.adapters.dynamo import Dynamo, WriteOp
from dunning.adapters.ledger import (
    AMBIGUOUS_PK,
    EARLY_RECEIPT_PK,
    MESSAGE_SK,
    RECEIPT_FIELDS,
    RECEIPT_SK,
    Ledger,
    Status,
    message_key,
    outcome_key,
    receipt_key,
)
from dunning.adapters.lender import Lender
from dunning.adapters.state import StateStore
from dunning.ids import attribute_id, id_problem, storable_id
from dunning.items import TERMINAL, InvalidItem, iso_utc, loan_from_item, parse_iso_utc, raw_status
from dunning.models import Decision, DecisionKind, UtcDateTime
from dunning.observability import MetricsRecorder, PackageLogger
from dunning.settings import ReconcileSettings

if TYPE_CHECKING:
    from dunning.inbound import Confirmer

logger = PackageLogger(__name__)

# A sender writes its MESSAGE items seconds after publishing, and receipts arrive up to 72 h after the
# send: a receipt with no MESSAGE after this long never gets one.
EARLY_RECEIPT_WAIT = timedelta(days=4)


class SweepRequest(BaseModel):
    """The schedule's input; ``segment``/``total_segments`` when the sweep is split across invocations."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    scheduled_time: UtcDateTime
    segment: int | None = Field(default=None, ge=0)
    total_segments: int = Field(default=1, ge=1, le=1000)

    @model_validator(mode="after")
    def _segment_in_range(self) -> SweepRequest:
        if self.segment is not None and self.segment >= self.total_segments:
            raise ValueError("segment must be below total_segments")
        return self


@dataclass
class SweepResult:
    scanned: int = 0
    reindexed: int = 0
    unindexed: int = 0
    invalid: int = 0
    ambiguous_resolved: int = 0
    ambiguous_open: int = 0
    early_receipts_merged: int = 0
    early_receipts_dropped: int = 0
    # Owed confirmations settled by the sweep, by status (SENT, OWED again, FAILED, AMBIGUOUS).
    confirmations: dict[str, int] = field(default_factory=dict)
    segments: list[int] = field(default_factory=list)


@dataclass
class Reconciler:
    lender: Lender
    state: StateStore
    ledger: Ledger
    clock: Callable[[], datetime]
    confirmer: Confirmer | None = None

    def run(self, request: SweepRequest, metrics: MetricsRecorder) -> SweepResult:
        """Sweep the requested segment (or every segment in turn), then resolve AMBIGUOUS jobs once."""
        result = SweepResult()
        segments = [request.segment] if request.segment is not None else list(range(request.total_segments))
        for segment in segments:
            self.sweep_segment(segment, request.total_segments, request.scheduled_time, result, metrics)
        # Ambiguous jobs and early receipts are few and global: the invocation holding segment 0 does them.
        if request.segment in (None, 0):
            self.resolve_ambiguous(request.scheduled_time, result, metrics)
            self.merge_early_receipts(request.scheduled_time, result, metrics)
            if self.confirmer is not None:
                # The confirmer's own clock: a claim's age is measured against when the sweep runs.
                result.confirmations = self.confirmer.sweep(self.clock(), metrics)
        logger.info("reconcile sweep done", extra=result.__dict__)
        return result

    def sweep_segment(
        self, segment: int, total: int, now: datetime, result: SweepResult, metrics: MetricsRecorder
    ) -> None:
        result.segments.append(segment)
        metrics.count("SegmentsSwept")
        for page in self.lender.scan_loans(segment, total):
            result.scanned += len(page)
            metrics.count("LoansScanned", len(page))
            # A loan id that cannot be a key is looked up (and recorded) under its stand-in.
            loan_ids = [storable_id(i["loan_id"]) for i in page if isinstance(i.get("loan_id"), str)]
            cadences = self.state.cadence.cadences(loan_ids)
            writes: list[WriteOp] = []
            for item in page:
                loan_id = item.get("loan_id")
                if not isinstance(loan_id, str):
                    continue
                cadence = cadences.get(storable_id(loan_id))
                writes.extend(self._check(item, loan_id, cadence, now, result, metrics))
            if writes:
                self.ledger.write(writes)

    def _check(
        self,
        item: dict[str, Any],
        loan_id: str,
        cadence: dict[str, Any] | None,
        now: datetime,
        result: SweepResult,
        metrics: MetricsRecorder,
    ) -> list[WriteOp]:
        borrower_id = attribute_id(item.get("borrower_id"))
        problem = id_problem(loan_id)
        if problem is not None:
            if cadence is not None:
                return []  # recorded by an earlier sweep or by the indexer
            stand_in = storable_id(loan_id)
            result.invalid += 1
            metrics.count("InvalidItem")
            logger.warning("invalid loan id", extra={"loan_id": stand_in, "reason": f"loan_id: {problem}"})
            return self._out(
                stand_in, borrower_id, now, "data.invalid", f"loan {stand_in}: loan_id: {problem}"
            )
        status = raw_status(item)
        in_index = cadence is not None and "due_shard" in cadence
        if status in TERMINAL:
            if not in_index:
                return []
            assert status is not None
            rule = f"status.{status.value.lower()}"
            reason = f"loan is {status.value} but was still in the due-index (found by the daily sweep)"
            result.unindexed += 1
            metrics.count("Unindexed")
            return self._out(loan_id, borrower_id, now, rule, reason, phone=(cadence or {}).get("phone"))
        if cadence is not None:
            return []
        try:
            loan_from_item(item)
        except InvalidItem as exc:
            result.invalid += 1
            metrics.count("InvalidItem")
            return self._out(loan_id, borrower_id, now, "data.invalid", str(exc))
        result.reindexed += 1
        metrics.count("Reindexed")
        logger.info("active loan without a cadence item re-indexed", extra={"loan_id": loan_id})
        cadence_item = self.state.cadence.cadence_item(
            loan_id,
            borrower_id,
            next_contact_at=now,
            at=now,
            rule_id="reconcile.reindexed",
            reason="active loan had no cadence item (a missed stream record)",
        )
        return [self.state.cadence.put_op(cadence_item)]

    def _out(
        self, loan_id: str, borrower_id: str, now: datetime, rule: str, reason: str, phone: object = None
    ) -> list[WriteOp]:
        cadence_item = self.state.cadence.cadence_item(
            loan_id,
            borrower_id,
            next_contact_at=None,
            at=now,
            rule_id=rule,
            reason=reason,
            phone=phone if isinstance(phone, str) else None,
        )
        stop = Decision(
            kind=DecisionKind.STOP,
            loan_id=loan_id,
            borrower_id=borrower_id,
            at=now,
            rule_id=rule,
            reason=reason,
        )
        return [self.state.cadence.put_op(cadence_item), self.ledger.decision_op(stop)]

    def resolve_ambiguous(self, now: datetime, result: SweepResult, metrics: MetricsRecorder) -> None:
        """AMBIGUOUS → SENT where the ledger holds a MESSAGE for the same loan and step."""
        writes: list[WriteOp] = []
        for pointer in self.ledger.ambiguous_pointers():
            loan_id, step = str(pointer.get("loan_id_ref", "")), str(pointer.get("step", ""))
            if not loan_id or not step:
                continue
            message_keys = [k for k in self.ledger.keys_for_loan(loan_id) if str(k["pk"]).startswith("MSG#")]
            messages = [
                m
                for m in self.ledger.get_items(message_keys)
                if m.get("sk") == MESSAGE_SK and m.get("step") == step
            ]
            if not messages:
                result.ambiguous_open += 1
                continue
            message = min(messages, key=lambda m: str(m.get("at", "")))
            outcome = self.ledger.get_items([outcome_key(loan_id, step)])
            base = outcome[0] if outcome else {}
            fields = {
                k: v
                for k, v in base.items()
                if k not in ("pk", "sk", "type", "loan_id", "step", "at", "expires_at")
            }
            fields.update(
                {
                    "status": Status.SENT,
                    "message_id": message.get("message_id"),
                    "resolved_at": iso_utc(now),
                    "resolved_by": "reconcile",
                    "previous_status": Status.AMBIGUOUS,
                }
            )
            writes.append(self.ledger.outcome_op(loan_id, step, fields, now))
            writes.append(self.ledger.delete_op({"pk": AMBIGUOUS_PK, "sk": f"{loan_id}#{step}"}))
            result.ambiguous_resolved += 1
            metrics.count("AmbiguousResolved")
        if writes:
            self.ledger.write(writes)

    def merge_early_receipts(self, now: datetime, result: SweepResult, metrics: MetricsRecorder) -> None:
        """Merge each RECEIPT that came before its MESSAGE into the MESSAGE, now that it is written."""
        pointers = self.ledger.early_receipt_pointers()
        if not pointers:
            return
        ids = [str(p["sk"]) for p in pointers]
        found = self.ledger.get_items([message_key(i) for i in ids] + [receipt_key(i) for i in ids])
        messages = {str(i["pk"]): i for i in found if i.get("sk") == MESSAGE_SK}
        receipts = {str(i["pk"]): i for i in found if i.get("sk") == RECEIPT_SK}
        writes: list[WriteOp] = []
        for pointer, message_id in zip(pointers, ids, strict=True):
            message, receipt = messages.get(f"MSG#{message_id}"), receipts.get(f"MSG#{message_id}")
            if message is None and receipt is not None:
                if parse_iso_utc(str(pointer["at"])) > now - EARLY_RECEIPT_WAIT:
                    continue  # its MESSAGE may still come
                result.early_receipts_dropped += 1
                metrics.count("EarlyReceiptsDropped")
            elif message is not None and receipt is not None:
                newer = str(receipt.get("receipt_at", "")) > str(message.get("receipt_at", ""))
                if newer:
                    fields = {k: receipt[k] for k in RECEIPT_FIELDS if k in receipt}
                    writes.append(self.ledger.merged_message_op(message, fields))
                result.early_receipts_merged += 1
                metrics.count("EarlyReceiptsMerged")
            writes.append(self.ledger.delete_op({"pk": EARLY_RECEIPT_PK, "sk": message_id}))
        if writes:
            self.ledger.write(writes)


def build_reconciler(settings: ReconcileSettings) -> Reconciler:
    """The reconcile sweep wired to AWS as the settings say (clients are created on first use)."""
    from dunning.adapters.messaging import Messaging
    from dunning.inbound import Confirmer, lender_contact

    dynamo = Dynamo()
    state = StateStore(dynamo, settings.state_table, settings.shard_count)
    return Reconciler(
        lender=Lender(dynamo, settings.loans_table, borrowers_table=""),
        state=state,
        ledger=Ledger(dynamo, settings.ledger_table, settings.ledger_retention_days),
        clock=clock.now,
        confirmer=Confirmer(
            state.consent,
            Messaging(),
            lender_contact(),
            settings.sms_origination_identity,
            clock.now,
            receipt_horizon=timedelta(minutes=settings.confirmation_receipt_horizon_minutes),
        ),
    )
