"""The write-unit candidates re-costed from a run's counts (bench/write_candidates.py), on a small run
whose every number is known."""

from __future__ import annotations

from typing import Any

import pytest

from bench import write_candidates


def _run(repeated: int = 0) -> dict[str, Any]:
    # 10 delivered messages: 10 claims, 10 SEND moves (cadence 1 + DueIndex 2 each), 4 last steps out of
    # the index (cadence 1 + delete 1), 10 MESSAGE items with their ByLoan entries, 10 receipts, 3 DECISIONs.
    return {
        "delivered": 10,
        "write_units": 10 + 14 + 20 + 4 + 10 + 10 + 10 + 3,
        "empty_polls": 5,
        "by_function": {"planner": {"dynamodb.Query": 7}},
        "ledger": {"repeated_decisions": repeated},
        "capacity": {
            "write_units": {
                "sender | StateTable contact | table put": 10,
                "planner | StateTable cadence | table replace": 14,
                "planner | StateTable cadence | index DueIndex move": 20,
                "planner | StateTable cadence | index DueIndex delete": 4,
                "sender | LedgerTable message | table put": 10,
                "sender | LedgerTable message | index ByLoan put": 10,
                "receipts | LedgerTable message | table replace": 10,
                "planner | LedgerTable decision | table put": 3,
            }
        },
    }


def test_each_candidate_changes_only_its_own_writes() -> None:
    saved = write_candidates.savings(_run(repeated=1))

    # A move becomes one slot put, a removal nothing; 2 pages read cost 2 cursor writes.
    assert saved["slots"] == 10 + 4 - 2
    assert saved["message partition"] == 10
    assert saved["defer on change"] == 1
    assert saved["receipt as an update"] == 0


def test_together_is_the_run_less_every_saving_and_what_is_left_adds_up_to_it() -> None:
    measured = write_candidates.measure(_run(repeated=1))

    assert measured["measured"] == 8.1
    assert measured["together"] == round((81 - 12 - 10 - 1) / 10, 3)
    assert sum(measured["left"].values()) == pytest.approx(measured["together"])
    assert measured["left"]["slot item"] == 1.0
    assert measured["left"]["slot cursor"] == 0.2
    assert "ByLoan entry" not in measured["left"]


def test_the_section_says_whether_all_candidates_reach_the_target() -> None:
    text = "\n".join(write_candidates.section(_run(), target=5))

    assert "| **all four together** | 2.20 | **5.90** |" in text
    assert "does not meet the 5 asked" in text
    assert "meets the 6 asked" in "\n".join(write_candidates.section(_run(), target=6))
