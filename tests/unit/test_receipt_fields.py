"""The fields a delivery receipt writes are the ones the reconcile sweep merges (one list, in the ledger)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from dunning.adapters.ledger import RECEIPT_FIELDS
from dunning.receipts import PERMANENT, Receipt


def test_a_failed_receipt_writes_exactly_the_fields_the_sweep_merges() -> None:
    receipt = Receipt(
        message_id="m-1",
        delivered=False,
        at=datetime(2026, 3, 2, 15, 0, tzinfo=UTC),
        source="sns-sms",
        provider_response="Phone is currently unreachable",
        price_usd=Decimal("0.00645"),
        carrier="Example Carrier",
        dwell_ms=1200,
        failure_kind=PERMANENT,
    )
    assert tuple(receipt.fields()) == RECEIPT_FIELDS
