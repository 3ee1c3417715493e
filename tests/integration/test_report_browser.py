"""The HTML report of a small demo run, opened in a real browser (headless Chromium).

The page is checked as the browser built it (``--dump-dom``): the script ran to its end without an
error, every section is there, and the charts have their bars, lanes and points. Keys that other parts
of the product add to the summary (SMS parts, peak send rates, spend by country, the jurisdictions behind
a decision) are given fabricated values here, so the page is known to show them when they arrive.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from typing import Any

import pytest

from dunning_local import report
from dunning_local.simulate import DemoOptions, run_demo

SECTIONS = (
    "invariants",
    "timeline",
    "hours",
    "jurisdictions",
    "messages",
    "replies",
    "rules",
    "trail",
    "cost",
    "faults",
)


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class _Dom(HTMLParser):
    """Every element of the dumped DOM as (tag, attributes), and the text of each h2."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.headings: list[str] = []
        self._in_h2 = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self._in_h2 = tag == "h2" or self._in_h2

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.headings.append(data)
        self.text.append(data)

    def having(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def series(self) -> Counter[str]:
        return Counter(a["data-series"] for _, a in self.elements if "data-series" in a)


def _fabricated(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with the keys other parts of the product will add, as they will look."""
    trail = summary["explained_loan"]["trail"]
    trail[0]["jurisdictions"] = [
        {"code": "US", "source": "loan", "rulebook": "US"},
        {"code": "CA-ON", "source": "phone", "rulebook": None},
    ]
    return {
        **summary,
        "sms_parts": {"mean": 1.42, "histogram": {"1": 61, "2": 23, "3": 2}},
        "peak_sends_per_minute": {"+18885550100": {"peak": 180, "limit": 150}},
        "spend_by_country": {"ZZ": {"sms": 7, "parts": 9, "usd": 0.1234}},
    }


@pytest.fixture(scope="module")
def dom(tmp_path_factory: pytest.TempPathFactory) -> _Dom:
    browser = _browser()
    if browser is None:
        pytest.skip(
            "no Chromium found (chromium, chromium-browser, google-chrome): install Debian's `chromium` "
            "package to run the browser test of the HTML report (.ci/run does so when it runs as root)"
        )
    out = tmp_path_factory.mktemp("report")
    result = run_demo(DemoOptions(loans=120, hours=12, seed=5, quiet=True, out=out))
    assert result.summary.get("explained_loan"), "the run has a loan with a decision and a message"
    page = report.write_html(_fabricated(result.summary), out / "report.html")
    dumped = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    parsed = _Dom()
    parsed.feed(dumped)
    parsed.summary = result.summary  # type: ignore[attr-defined]
    return parsed


def test_the_script_ran_to_its_end_without_an_error(dom: _Dom) -> None:
    body = dom.having("body")[0]

    assert body.get("data-ready") == "1", "the report's script did not finish"
    assert "data-js-errors" not in body, body.get("data-js-errors")


@pytest.mark.parametrize("section", SECTIONS)
def test_every_section_is_there_with_its_heading(dom: _Dom, section: str) -> None:
    found = dom.having("section", id=section)

    assert len(found) == 1, f"section #{section}"


def test_the_local_hour_chart_has_a_bar_per_hour_and_a_lane_per_jurisdiction(dom: _Dom) -> None:
    windows = dom.summary["contact_windows"]  # type: ignore[attr-defined]

    assert dom.series()["hour"] == 24
    assert {a["data-jurisdiction"] for a in dom.having("rect", **{"class": "window"})} == {
        code for code, w in windows.items() if w["allowed"]
    }


def test_the_timeline_has_the_sends_of_every_tick(dom: _Dom) -> None:
    timeline = dom.summary["timeline"]  # type: ignore[attr-defined]
    sent_sms = sum(int(a["data-value"]) for _, a in dom.elements if a.get("data-series") == "sent-sms")

    assert sent_sms == sum(row["sent"]["sms"] for row in timeline)
    assert sent_sms == dom.summary["sent"]["sms"]  # type: ignore[attr-defined]


def test_the_timeline_shows_deferrals_by_rule_family(dom: _Dom) -> None:
    families = {s.removeprefix("deferred-") for s in dom.series() if s.startswith("deferred-")}

    assert families == {f for row in dom.summary["timeline"] for f in row["deferred"]}  # type: ignore[attr-defined]


def test_the_jurisdiction_table_has_a_row_per_jurisdiction(dom: _Dom) -> None:
    rows = [a for t, a in dom.elements if t == "td" and a.get("data-value") in dom.summary["jurisdictions"]]  # type: ignore[attr-defined]

    assert len(rows) == len(dom.summary["jurisdictions"])  # type: ignore[attr-defined]


def test_messages_are_shown_as_sms_bubbles_and_push_lock_screen_against_detail(dom: _Dom) -> None:
    samples = dom.summary["samples"]  # type: ignore[attr-defined]

    assert len(dom.having("figure", data_channel="sms")) == sum(s["channel"] == "sms" for s in samples)
    assert len(dom.having("figure", data_channel="push")) == sum(s["channel"] == "push" for s in samples)
    assert len(dom.having("div", **{"class": "lock"})) == len(dom.having("div", **{"class": "detail"}))


def test_the_explained_trail_shows_rules_citations_and_jurisdictions(dom: _Dom) -> None:
    trail = dom.summary["explained_loan"]["trail"]  # type: ignore[attr-defined]
    text = "".join(dom.text)

    assert len([a for t, a in dom.elements if t == "tr" and a.get("class", "").startswith("k-")]) == len(
        trail
    )
    assert all(e["rule_id"] in text for e in trail if e.get("rule_id"))
    assert all(e["citation"] in text for e in trail if e.get("citation"))
    assert "CA-ON from phone, no rulebook" in text


def test_keys_added_later_are_rendered(dom: _Dom) -> None:
    text = "".join(dom.text)

    assert dom.having("table", id="sms-parts"), "SMS parts histogram"
    assert dom.having("table", id="peaks"), "peak sends per minute"
    assert dom.having("span", **{"class": "over"}), "a peak over its limit is flagged"
    assert "ZZ" in text, "spend by country with readable money"
    assert "$0.12" in text, "spend by country with readable money"
