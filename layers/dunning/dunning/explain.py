"""``explain``: everything the ledger knows about one loan, in time order ("why was this borrower not
contacted?", "what did we send, and did it arrive?").

Reads: the loan's own partition (DEFER/STOP decisions), the ``ByLoan`` index (messages with their
receipts, job outcomes) and the borrower's partition (inbound replies). Contact points are masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dunning.observability import mask_contact_point, mask_phone

if TYPE_CHECKING:
    from dunning.adapters import Adapters

_ORDER = {"DECISION": 0, "OUTCOME": 1, "MESSAGE": 1, "RECEIPT": 2, "INBOUND": 3}


@dataclass(frozen=True)
class TrailEntry:
    """One line of a loan's history."""

    at: str
    kind: str  # DECISION, MESSAGE, OUTCOME, RECEIPT, INBOUND
    status: str  # DEFER/STOP for decisions; SENT/DELIVERED/FAILED/SUPPRESSED/EXPIRED/AMBIGUOUS; intent
    rule_id: str = ""
    reason: str = ""
    step: str = ""
    channel: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """A one-line rendering for the CLI."""
        parts = [self.at, self.kind, self.status]
        parts += [p for p in (self.step, self.channel, self.rule_id) if p]
        text = "  ".join(parts)
        return f"{text}  {self.reason}" if self.reason else text


def _entry(item: Mapping[str, Any]) -> TrailEntry | None:
    kind = str(item.get("type", ""))
    at = str(item.get("at", ""))
    if kind == "DECISION":
        detail = {"not_before": item.get("not_before"), "citation": item.get("citation")}
        return TrailEntry(
            at,
            kind,
            str(item.get("decision", "")),
            str(item.get("rule_id", "")),
            str(item.get("reason", "")),
            str(item.get("step") or ""),
            str(item.get("channel") or ""),
            {k: v for k, v in detail.items() if v},
        )
    if kind in ("MESSAGE", "OUTCOME", "RECEIPT"):
        detail = {
            "message_id": item.get("message_id"),
            "contact_point": mask_contact_point(str(item.get("contact_point") or "")) or None,
            "provider_response": item.get("provider_response"),
            "receipt_at": item.get("receipt_at"),
            "price_usd": str(item["price_usd"]) if item.get("price_usd") is not None else None,
            "template": item.get("template"),
            "segments": int(item["segments"]) if item.get("segments") is not None else None,
        }
        return TrailEntry(
            at,
            kind,
            str(item.get("status", "")),
            str(item.get("rule_id") or ""),
            str(item.get("reason") or ""),
            str(item.get("step") or ""),
            str(item.get("channel") or ""),
            {k: v for k, v in detail.items() if v},
        )
    if kind == "INBOUND":
        detail = {"phone": mask_phone(str(item.get("phone") or "")), "paused_until": item.get("paused_until")}
        # The reply's words stay in the ledger; the trail says what it was taken to mean.
        return TrailEntry(
            at, kind, str(item.get("intent", "")), detail={k: v for k, v in detail.items() if v}
        )
    return None


def explain(loan_id: str, adapters: Adapters) -> list[TrailEntry]:
    """The loan's trail in time order: decisions, messages (with receipts), outcomes, inbound replies."""
    ledger = adapters.ledger
    items: dict[tuple[str, str], Mapping[str, Any]] = {}
    for item in ledger.partition(f"LOAN#{loan_id}"):
        items[(str(item["pk"]), str(item["sk"]))] = item
    keys = [k for k in ledger.keys_for_loan(loan_id) if (str(k["pk"]), str(k["sk"])) not in items]
    for item in ledger.get_items(keys):
        items[(str(item["pk"]), str(item["sk"]))] = item
    borrower_ids = {str(i["borrower_id"]) for i in items.values() if i.get("borrower_id")}
    if not borrower_ids:
        loan = adapters.lender.get_loan(loan_id)
        if loan and loan.get("borrower_id"):
            borrower_ids.add(str(loan["borrower_id"]))
    for borrower_id in sorted(borrower_ids):
        for item in ledger.partition(f"BORROWER#{borrower_id}"):
            if item.get("type") == "INBOUND":
                items[(str(item["pk"]), str(item["sk"]))] = item
    entries = [e for e in (_entry(i) for i in items.values()) if e is not None]
    return sorted(entries, key=lambda e: (e.at, _ORDER.get(e.kind, 9)))
