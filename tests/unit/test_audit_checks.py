"""The demo's audit, one invariant at a time, on a hand-made run: each ``check_*`` passes a clean run and
names what broke in a bad one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine_fixtures import RULEBOOKS, borrower, loan, wall

from dunning.items import iso_utc
from dunning.jurisdictions import candidate_jurisdictions
from dunning_local.audit import RunRecords, check_caps, check_no_duplicates, check_windows, cost


def _message(
    at: datetime, *, step: str = "D+1", message_id: str = "m-1", channel: str = "sms"
) -> dict[str, Any]:
    return {
        "type": "MESSAGE",
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "at": iso_utc(at),
        "step": step,
        "channel": "sms",
        "message_id": message_id,
        "status": "DELIVERED",
    }


def _records(*messages: dict[str, Any]) -> RunRecords:
    the_loan, the_borrower = loan(), borrower()
    return RunRecords(
        messages=list(messages),
        outcomes=[],
        decisions=[],
        inbound=[],
        receipts_only=[],
        state=[],
        loans={"L-1": the_loan},
        borrowers={"B-1": the_borrower},
        candidates={"L-1": candidate_jurisdictions(the_loan, the_borrower, RULEBOOKS)},
        sms_bodies={m["message_id"]: "Reminder. Reply STOP to opt out." for m in messages},
        sms_phones={m["message_id"]: "+15185550142" for m in messages},
        push_ids=set(),
    )


def test_a_send_at_ten_in_the_morning_passes_the_window_check() -> None:
    result = check_windows(_records(_message(wall("America/New_York", 2026, 3, 10, 10))))

    assert result["passed"] is True


def test_a_send_at_three_in_the_morning_fails_the_window_check_and_names_the_loan() -> None:
    result = check_windows(_records(_message(wall("America/New_York", 2026, 3, 10, 3))))

    assert result["passed"] is False
    assert "L-1 D+1" in result["detail"]


def test_the_same_step_sent_twice_fails_the_duplicate_check() -> None:
    at = wall("America/New_York", 2026, 3, 10, 10)

    result = check_no_duplicates(_records(_message(at), _message(at, message_id="m-2")))

    assert result["passed"] is False
    assert "L-1 D+1 sent 2 times" in result["detail"]


def test_one_send_a_day_passes_the_cap_check() -> None:
    result = check_caps(_records(_message(wall("America/New_York", 2026, 3, 10, 10))))

    assert result["passed"] is True


def test_eight_texts_in_one_morning_fail_the_cap_check() -> None:
    messages = [
        _message(wall("America/New_York", 2026, 3, 10, 9, 5 * n), step=f"S{n}", message_id=f"m-{n}")
        for n in range(8)
    ]

    result = check_caps(_records(*messages))

    assert result["passed"] is False


def test_cost_counts_each_sms_part_at_the_listed_price() -> None:
    from dunning.budget import load_prices

    result = cost(_records(_message(wall("America/New_York", 2026, 3, 10, 10))))

    assert result["sms_parts"] == 1
    assert result["sms_usd"] == round(load_prices().sms_part("US"), 4)
