"""bench/planner_path.py: the realistic tick's book (distinct fictional numbers, one instant), the
planner's path over it in process, and its rows in docs/benchmarks.md (bench/report.py)."""

from __future__ import annotations

import re
from typing import Any

from bench import planner_path, report

_GB_DRAMA = re.compile(r"\+44(" + "|".join(planner_path._GB_DRAMA) + r")\d{3}")


def _is_fictional(number: str) -> bool:
    return bool(re.fullmatch(r"\+1\d{3}5550[1]\d{2}", number) or _GB_DRAMA.fullmatch(number))


def test_every_borrower_has_a_fictional_number_of_their_own() -> None:
    book = planner_path.generate(400)
    numbers = [e.phone for e in book["entries"] if e.phone]
    assert len(numbers) == len(set(numbers))
    assert len(numbers) > 380
    assert [n for n in numbers if not _is_fictional(n)] == []
    assert any(n.startswith("+44") for n in numbers)


def test_the_path_plans_every_loan_the_same_with_stored_facts() -> None:
    from dunning.zones import clear_phone_cache

    book = planner_path.generate(300, facts=True)
    assert all(e.phone_facts for e in book["entries"] if e.phone)
    clear_phone_cache()
    with_facts = planner_path._plan(book)
    bare = dict(
        book, entries=[planner_path.Entry(e.loan_id, e.borrower_id, e.phone, None) for e in book["entries"]]
    )
    clear_phone_cache()
    assert planner_path._plan(bare) == with_facts
    kinds = with_facts[0]
    assert sum(kinds.values()) == 300
    assert set(kinds) <= {"SEND", "DEFER", "STOP"}
    assert kinds["SEND"] > 0


def _run(loans_per_cpu_s: int) -> dict[str, Any]:
    return {
        "loans_per_cpu_s": loans_per_cpu_s,
        "us_per_loan": round(1e6 / loans_per_cpu_s, 1),
        "kinds": {"SEND": 5, "DEFER": 4, "STOP": 1},
        "profile": {"shares": {"decide": 0.5, "phonenumbers (own time)": 0.2}, "top_own": []},
    }


def _results() -> dict[str, Any]:
    planner = {
        "loans": 40_000,
        "distinct_numbers": 39_000,
        "tick": "2026-03-02T14:00:00+00:00",
        "parse": _run(8_000),
        "facts": _run(21_000),
    }
    return {"planner": planner}


def test_the_target_is_judged_on_the_stored_facts_run() -> None:
    [target] = report.targets(_results())
    assert target["measured"] == 21_000
    assert target["met"] is True


def test_the_report_shows_both_runs_and_the_profile() -> None:
    lines = report.planner_section(_results())
    assert "| the number only (parsed) | **8,000** | 125.0 | {'SEND': 5, 'DEFER': 4, 'STOP': 1} |" in lines
    assert (
        "| the number and its stored facts | **21,000** | 47.6 | {'SEND': 5, 'DEFER': 4, 'STOP': 1} |"
        in lines
    )
    assert "| phonenumbers (own time) | 20% | 20% |" in lines


def test_the_summary_table_has_a_row_per_run() -> None:
    results = _results()
    results["targets"] = report.targets(results)
    rows = [line for line in report._table(results) if "planner's whole CPU path" in line]
    assert len(rows) == 2
    assert rows[0].endswith("| 8,000 |  |  | >= 20,000 | **no** |")
    assert rows[1].endswith("| 21,000 |  |  | >= 20,000 | yes |")
