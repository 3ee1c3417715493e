"""The report's pieces that need no browser: readable money, sections a summary may lack, later keys,
and the progress estimate."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from dunning_local import report, simulate


def _minimal() -> dict[str, Any]:
    """What any run's summary has: no timeline, samples, trail or jurisdictions."""
    return {
        "run": {
            "loans": 10,
            "borrowers": 9,
            "hours": 1,
            "tick_minutes": 15,
            "ticks": 4,
            "seed": 1,
            "fault_rate": 0.0,
            "start": "2026-03-02T05:00:00+00:00",
            "elapsed_seconds": 1.0,
            "invocations": {"planner": 4},
        },
        "sent": {"sms": 2},
        "delivery": {"DELIVERED": 2},
        "deferred": {"window.quiet_hours": 3},
        "stopped": {},
        "suppressed": {},
        "cap_hits": 0,
        "opt_outs": 0,
        "inbound": {},
        "local_hour_histogram": {"9": 2},
        "invariants": [{"name": "no send outside a contact window", "passed": True, "detail": "2 checked"}],
        "cost": {"sms_usd": 0.02, "push_usd": 0.0, "infra_usd": 0.00002, "total_usd": 0.02, "sms_parts": 2},
    }


@pytest.mark.parametrize(
    ("usd", "text"),
    [(1234.5, "$1,234.50"), (0.42, "$0.42"), (0.00003, "0.003¢"), (0, "$0.00"), (None, "—")],
)
def test_money_is_readable(usd: float | None, text: str) -> None:
    assert report.money(usd) == text


def test_a_summary_without_the_optional_sections_still_renders_its_sections() -> None:
    page = report.render_html(_minimal())

    sections = re.findall(r'<section id="([a-z]+)"', page)
    assert sections == ["invariants", "hours", "replies", "rules", "cost", "faults", "run"]


def test_the_page_loads_nothing_from_the_network() -> None:
    page = report.render_html(_minimal())

    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_keys_added_later_show_when_present() -> None:
    summary = _minimal() | {
        "sms_parts": {"mean": 1.5, "histogram": {"1": 3, "2": 3}},
        "peak_sends_per_minute": {"+18885550100": {"peak": 90, "limit": 60}},
        "spend_by_country": {"GB": {"sms": 3, "parts": 6, "usd": 0.252}},
    }

    page = report.render_html(summary)

    assert 'id="sms-parts"' in page
    assert "Mean 1.50 parts per SMS" in page
    assert 'id="peaks"' in page
    assert '<span class="over">90</span>' in page
    assert 'id="spend"' in page
    assert "$0.25" in page


def test_the_first_progress_estimate_waits_for_the_tick_rate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Seeding took 100 s; then ticks take 2 s each: the estimate must come from the ticks.
    clock = iter([100.0, 130.0, 132.0, 134.0])
    monkeypatch.setattr(simulate.time, "monotonic", lambda: next(clock))
    progress = simulate._Progress(10, quiet=False)
    at = datetime(2026, 3, 2, 5, tzinfo=UTC)

    progress.tick(at)
    first = capsys.readouterr().err
    progress.tick(at)
    progress.tick(at)
    third = capsys.readouterr().err.rsplit("\r", 1)[-1]

    assert "estimating" in first
    assert "~  14s left" in third
