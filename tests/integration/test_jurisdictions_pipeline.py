"""Candidate jurisdictions through the real handlers on moto: what the ledger records and why.

A US loan whose borrower has only a Boston number (no address) is texted, and its MESSAGE says that
Massachusetts applied by phone; a Canadian loan with only a Toronto number is stopped, and its DECISION
says that Ontario was suggested by the phone. Numbers are fictional (555-01xx).
"""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from pipeline_helpers import INDEXED_AT, TICK, Harness, loan, start_harness

from dunning.models import Borrower, Consent
from dunning_local.stack import LocalStack


@pytest.fixture
def pipeline(stack: LocalStack, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> Harness:
    return start_harness(stack, aws, monkeypatch)


def test_ledger_records_the_jurisdictions_each_decision_applied(pipeline: Harness) -> None:
    borrowers = [
        Borrower(
            borrower_id="B-MA", time_zone="America/New_York", phone="+16175550177", consent=Consent(sms=True)
        ),
        Borrower(
            borrower_id="B-ON", time_zone="America/Toronto", phone="+14165550177", consent=Consent(sms=True)
        ),
    ]
    due = TICK.date() - timedelta(days=7)
    loans = [
        loan("L-MA", "B-MA", "US", due),
        loan("L-ON", "B-ON", "CA", due, currency="CAD"),
    ]
    pipeline.seed(loans, borrowers)
    pipeline.index(INDEXED_AT)

    pipeline.run_tick(TICK)

    message = pipeline.messages()["L-MA"]
    assert message["jurisdictions"] == [
        {"code": "US", "source": "loan", "rulebook": "US"},
        {"code": "US-MA", "source": "phone", "rulebook": "US-MA"},
    ]
    (stop,) = [d for d in pipeline.decisions("L-ON") if d.get("type") == "DECISION"]
    assert stop["rule_id"] == "jurisdiction.unknown"
    assert stop["jurisdictions"] == [
        {"code": "CA", "source": "loan", "rulebook": None},
        {"code": "CA-ON", "source": "phone", "rulebook": "CA-ON"},
    ]
