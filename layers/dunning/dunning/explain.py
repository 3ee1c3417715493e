"""``explain``: everything the ledger knows about one loan, in time order ("why was this borrower not
contacted?", "what did we send, and did it arrive?").

Reads: the loan's own partition (DEFER/STOP decisions), the ``ByLoan`` index (messages with their
receipts, job outcomes, retries) and the borrower's partition (inbound replies). Each entry carries the
rule, the reason and the citation; messages their id, template, locale, segments, encoding, price and the
provider's response; replies the intent they were read as (their words stay in the ledger). Contact points
are masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dunning.observability import mask_contact_point, mask_phone

if TYPE_CHECKING:
    from dunning.adapters import Adapters
    from dunning.rules import Policy

_ORDER = {"DECISION": 0, "OUTCOME": 1, "MESSAGE": 1, "RETRY": 1, "RECEIPT": 2, "INBOUND": 3}
# The detail fields a trail line shows, in this order, under these names.
_DETAIL_LABELS = {
    "not_before": "not before",
    "message_id": "message id",
    "template": "template",
    "locale": "locale",
    "segments": "segments",
    "encoding": "encoding",
    "contact_point": "to",
    "planned_at": "planned at",
    "receipt_at": "receipt at",
    "receipt_source": "receipt from",
    "provider_response": "provider said",
    "carrier": "carrier",
    "dwell_ms": "dwell ms",
    "price_usd": "price USD",
    "receive_count": "attempt",
    "phone": "from",
    "paused_until": "paused until",
}


@dataclass(frozen=True)
class TrailEntry:
    """One record of a loan's history."""

    at: str
    kind: str  # DECISION, MESSAGE, OUTCOME, RECEIPT, RETRY, INBOUND
    status: str  # DEFER/STOP for decisions; SENT/DELIVERED/FAILED/SUPPRESSED/EXPIRED/AMBIGUOUS; intent
    rule_id: str = ""
    reason: str = ""
    step: str = ""
    channel: str = ""
    citation: str = ""
    # Which rulebooks applied and why (the loan's jurisdiction, the address, the phone number).
    jurisdictions: tuple[dict[str, Any], ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """A one-line summary for the CLI."""
        parts = [self.at, self.kind, self.status]
        parts += [p for p in (self.step, self.channel, self.rule_id) if p]
        text = "  ".join(parts)
        return f"{text}  {self.reason}" if self.reason else text

    def lines(self) -> list[str]:
        """The summary line, then the citation, the jurisdictions and every detail, one per line."""
        out = [self.line()]
        if self.citation:
            out.append(f"    citation: {self.citation}")
        if self.jurisdictions:
            out.append(f"    rulebooks: {describe_jurisdictions(self.jurisdictions)}")
        out += [
            f"    {_DETAIL_LABELS.get(k, k)}: {v}"
            for k, v in sorted(self.detail.items(), key=lambda kv: list(_DETAIL_LABELS).index(kv[0]))
        ]
        return out

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready values (``dunning explain --json``)."""
        out: dict[str, Any] = {"at": self.at, "kind": self.kind, "status": self.status}
        for name in ("rule_id", "reason", "step", "channel", "citation"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.jurisdictions:
            out["jurisdictions"] = [dict(j) for j in self.jurisdictions]
        out.update(self.detail)
        return out


def describe_jurisdictions(jurisdictions: tuple[Mapping[str, Any], ...] | list[Mapping[str, Any]]) -> str:
    """``US-NY (loan, rulebook US-NY); CA-ON (phone, no rulebook)``."""
    parts = []
    for j in jurisdictions:
        book = j.get("rulebook")
        parts.append(
            f"{j.get('code', '?')} ({j.get('source', '?')}, {'rulebook ' + book if book else 'no rulebook'})"
        )
    return "; ".join(parts)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _kept(values: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: _plain(v) for k, v in values.items() if k in _DETAIL_LABELS and v not in (None, "", False)}
    if isinstance(kept.get("price_usd"), float):
        kept["price_usd"] = round(kept["price_usd"], 6)  # a carrier's price, not float noise
    return kept


def _jurisdictions(item: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    raw = item.get("jurisdictions")
    if not isinstance(raw, list | tuple):
        return ()
    return tuple({k: _plain(v) for k, v in j.items()} for j in raw if isinstance(j, Mapping))


def _entry(item: Mapping[str, Any]) -> TrailEntry | None:
    kind = str(item.get("type", ""))
    at = str(item.get("at", ""))
    common: dict[str, Any] = {
        "rule_id": str(item.get("rule_id") or ""),
        "reason": str(item.get("reason") or ""),
        "step": str(item.get("step") or ""),
        "channel": str(item.get("channel") or ""),
        "citation": str(item.get("citation") or ""),
        "jurisdictions": _jurisdictions(item),
    }
    if kind == "DECISION":
        return TrailEntry(at, kind, str(item.get("decision", "")), **common, detail=_kept(item))
    if kind in ("MESSAGE", "OUTCOME", "RECEIPT"):
        detail = _kept(item)
        if detail.get("contact_point"):
            detail["contact_point"] = mask_contact_point(str(detail["contact_point"]))
        return TrailEntry(at, kind, str(item.get("status", "")), **common, detail=detail)
    if kind == "RETRY":
        return TrailEntry(at, kind, "RETRY", **common, detail=_kept(item))
    if kind == "INBOUND":
        detail = _kept(item)
        detail["phone"] = mask_phone(str(item.get("phone") or "")) or None
        # The reply's words stay in the ledger; the trail says what it was taken to mean.
        return TrailEntry(
            at, kind, str(item.get("intent", "")), detail={k: v for k, v in detail.items() if v}
        )
    return None


def _with_citation(entry: TrailEntry, policy: Policy | None) -> TrailEntry:
    """Messages and outcomes carry a rule id but not its citation: look it up in the loan's rulebooks."""
    if entry.citation or not entry.rule_id or policy is None:
        return entry
    citation = policy.citation(entry.rule_id)
    if not citation:
        return entry
    return TrailEntry(
        entry.at,
        entry.kind,
        entry.status,
        entry.rule_id,
        entry.reason,
        entry.step,
        entry.channel,
        citation,
        entry.jurisdictions,
        entry.detail,
    )


def _policy(adapters: Adapters, loan_id: str) -> Policy | None:
    """The loan's applicable rulebooks, or None when the loan or its borrower cannot be read."""
    from dunning.items import InvalidItem, borrower_from_item, loan_from_item
    from dunning.jurisdictions import policy_for
    from dunning.rules import load_rulebooks

    lender = adapters.lender
    loan_item = lender.get_loan(loan_id)
    if not loan_item:
        return None
    _, borrowers = lender.get_many(borrower_ids=[str(loan_item.get("borrower_id", ""))])
    borrower_item = next(iter(borrowers.values()), None)
    if not borrower_item:
        return None
    try:
        return policy_for(loan_from_item(loan_item), borrower_from_item(borrower_item), load_rulebooks())
    except (InvalidItem, ValueError):
        return None


def explain(loan_id: str, adapters: Adapters) -> list[TrailEntry]:
    """The loan's trail in time order: decisions, messages (with receipts), outcomes, retries, replies."""
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
    policy = _policy(adapters, loan_id) if items else None
    entries = [_with_citation(e, policy) for e in (_entry(i) for i in items.values()) if e is not None]
    return sorted(entries, key=lambda e: (e.at, _ORDER.get(e.kind, 9)))
