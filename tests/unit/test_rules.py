"""Rulebooks, the lender policy and strategies: validation at load, which rulebooks apply, strictest wins."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from engine_fixtures import (
    BOSTON_PHONE,
    RULEBOOKS,
    borrower,
    claims,
    copy_rulebooks,
    loan,
    run,
    sent,
    state,
    utc,
)

from dunning.jurisdictions import policy_for
from dunning.models import Address, Channel, DecisionKind
from dunning.rules import (
    DEFAULT_LENDER_POLICY,
    DEFAULT_RULEBOOKS_DIR,
    ENGINE_RULE_IDS,
    LenderPolicyFile,
    RulebookError,
    Span,
    load_rulebooks,
)
from dunning.strategy import DEFAULT_STRATEGIES_DIR, load_strategies

REQUIRED_CODES = {
    "US",
    "US-MA",
    "US-NY-NYC",
    "US-WA",
    "US-CA",
    "CN",
    "IN",
    "GB",
    "IE",
    "CA-ON",
    "CA-QC",
    "CA-BC",
}
CITED = "citation: abc, verified: true"
LENDER_HEADER = (
    "code: lender\nname: test lender\n"
    "opt_out_keywords: {keywords: [STOP], citation: test, verified: true}\n"
    "max_sms_segments: {limit: 3, citation: test, verified: true}\n"
)


def _rules_of(data: dict) -> list[dict]:
    """Every rule (anything with a citation) in a rulebook file."""
    found = []
    for key in ("window", "sunday", "holidays", "opt_out_keywords", "max_sms_segments"):
        if data.get(key):
            found.append(data[key])
    for key in ("caps", "content", "consent"):
        found.extend(data.get(key) or [])
    found.extend((data.get("citations") or {}).values())
    return found


# --- the packaged data ----------------------------------------------------------------------------------


def test_rulebooks_cover_every_required_jurisdiction() -> None:
    assert set(RULEBOOKS.codes) >= REQUIRED_CODES


@pytest.mark.parametrize(
    "path", sorted([*DEFAULT_RULEBOOKS_DIR.glob("*.yaml"), DEFAULT_LENDER_POLICY]), ids=str
)
def test_rules_every_rule_has_a_citation_and_a_verified_flag(path: Path) -> None:
    rules = _rules_of(yaml.safe_load(path.read_text(encoding="utf-8")))

    assert rules
    for rule in rules:
        assert len(rule["citation"]) > 5
        assert isinstance(rule["verified"], bool)


def test_rules_check_items_of_rules_md_are_unverified() -> None:
    assert RULEBOOKS.rulebook("US-WA").window is not None
    assert RULEBOOKS.rulebook("US-WA").window.verified is False  # 07:30 vs the AG's 08:00
    assert [c.verified for c in RULEBOOKS.rulebook("IE").caps] == [False]  # do unanswered attempts count?
    assert RULEBOOKS.rulebook("US-MA").caps[0].verified is True


def test_load_rulebooks_default_is_loaded_once() -> None:
    assert load_rulebooks() is load_rulebooks()
    assert load_strategies() is load_strategies()


# --- which rulebooks apply ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jurisdiction", "address", "expected"),
    [
        ("US", Address(country="US", region="MA"), ("US", "US-MA", "lender")),
        ("US-NY-NYC", Address(country="US", region="NY"), ("US", "US-NY-NYC", "lender")),
        ("US", Address(country="US", region="US-CA"), ("US", "US-CA", "lender")),
        ("US", None, ("US", "lender")),
        ("CA-ON", Address(country="CA", region="ON"), ("CA-ON", "lender")),
        ("GB", Address(country="IE"), ("GB", "IE", "lender")),
        ("FR", Address(country="FR"), ("lender",)),
    ],
)
def test_policy_for_applies_prefixes_of_loan_jurisdiction_and_address(
    jurisdiction: str, address: Address | None, expected: tuple[str, ...]
) -> None:
    # No phone: what a number adds is tested in test_jurisdictions.py.
    policy = policy_for(loan(jurisdiction=jurisdiction), borrower(address=address, phone=None), RULEBOOKS)

    assert policy.jurisdictions == expected
    assert policy.loan_country_covered is (jurisdiction != "FR")


def test_policy_merges_content_consent_keywords_and_segments_strictest() -> None:
    california = policy_for(loan(), borrower(address=Address(country="US", region="CA")), RULEBOOKS)
    nyc = policy_for(loan(jurisdiction="US-NY-NYC"), borrower(), RULEBOOKS)
    china = policy_for(
        loan(jurisdiction="CN"), borrower(address=Address(country="CN"), phone=None), RULEBOOKS
    )

    assert california.required_content == {"opt_out", "sender_identity", "licence_number"}
    assert china.required_content == {"cn_signature", "sender_identity"}
    assert nyc.consent_required == {Channel.SMS, Channel.PUSH}
    assert california.consent_required == {Channel.SMS}
    assert china.consent_required == frozenset()
    assert {"STOP", "REVOKE", "OPT OUT", "QUIT", "TD"} <= california.opt_out_keywords
    assert {"退订", "TD", "STOP"} <= china.opt_out_keywords
    assert california.max_sms_segments == 3
    assert "6 RCNY 5-77" in (nyc.consent_citation(Channel.PUSH) or "")


def test_policy_caps_all_apply_together() -> None:
    policy = policy_for(loan(), borrower(address=Address(country="US", region="MA")), RULEBOOKS)

    caps = {(c.ref.code, c.ref.rule_id) for c in policy.caps}
    assert {("US", "cap.debt_7d"), ("US-MA", "cap.borrower_7d"), ("US-MA", "cap.debt_7d")} <= caps
    assert {("lender", "cap.sms_1d"), ("lender", "cap.sms_7d"), ("lender", "cap.push_1d")} <= caps


def test_policy_windows_intersect_per_rulebook() -> None:
    policy = policy_for(loan(), borrower(), RULEBOOKS)
    monday = date(2026, 3, 9)

    spans = {w.code: w.day_rule(monday).span for w in policy.windows}
    assert spans == {"US": Span(8 * 60, 21 * 60), "lender": Span(7 * 60, 22 * 60)}


# --- strictest wins: a lender cannot loosen anything ----------------------------------------------------


def test_lender_window_wider_than_law_and_larger_cap_have_no_effect(tmp_path: Path) -> None:
    generous = (
        LENDER_HEADER
        + "window: {hours: '00:00-24:00', citation: generous, verified: true}\n"
        + "caps:\n  - {id: cap.sms_7d, limit: 100, period: 7d, scope: borrower, channels: [sms],\n"
        + "     citation: generous, verified: true}\n"
    )
    books = copy_rulebooks(tmp_path, lender=generous)
    lenient = load_rulebooks(books, tmp_path / "policy.yaml")
    ma = borrower(phone=BOSTON_PHONE, address=Address(country="US", region="MA"))
    history = state(sends=(sent(utc(2026, 3, 3, 15)), sent(utc(2026, 3, 6, 15))), claims=claims("D+1", "D+3"))

    capped = run(loan(), ma, history, at=utc(2026, 3, 9, 16), rulebooks=lenient)
    night = run(loan(), ma, at=utc(2026, 3, 10, 3), rulebooks=lenient)  # 23:00 in Boston

    assert (capped.kind, capped.rule_id, capped.not_before) == (
        DecisionKind.DEFER,
        "cap.borrower_7d",
        utc(2026, 3, 10, 15),
    )
    assert (night.kind, night.rule_id) == (DecisionKind.DEFER, "window.quiet_hours")


def test_lender_policy_is_rejected_if_it_tries_to_remove_a_rule(tmp_path: Path) -> None:
    books = copy_rulebooks(tmp_path, lender=LENDER_HEADER + "remove: [window.holiday]\n")

    with pytest.raises(RulebookError, match="can only add restrictions"):
        load_rulebooks(books, tmp_path / "policy.yaml")


def test_lender_policy_is_rejected_if_it_waives_consent(tmp_path: Path) -> None:
    text = LENDER_HEADER + "consent:\n  - {channel: sms, waive: true, citation: x, verified: true}\n"
    books = copy_rulebooks(tmp_path, lender=text)

    with pytest.raises(RulebookError, match=r"consent\[0\]\.waive"):
        load_rulebooks(books, tmp_path / "policy.yaml")


def test_lender_policy_must_set_sms_basics() -> None:
    with pytest.raises(Exception, match="opt_out_keywords"):
        LenderPolicyFile.model_validate(
            {
                "code": "lender",
                "name": "x",
                "max_sms_segments": {"limit": 2, "citation": "abc", "verified": True},
            }
        )


# --- a bad file fails loudly, naming the file ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "code: US\nname: x\nwindow: {hours: '21:00-08:00', citation: abc, verified: true}\n",
            "window.hours",
        ),
        ("code: US\nname: x\nwindow: {hours: '08:00-21:00', verified: true}\n", "window.citation"),
        ("code: US\nname: x\nwindow: {hours: '08:00-21:00', citation: abc}\n", "window.verified"),
        (
            "code: US\nname: x\ncaps:\n  - {id: cap.x, limit: 0, period: 7d, scope: debt, " + CITED + "}\n",
            "limit",
        ),
        (
            "code: US\nname: x\ncaps:\n  - {id: cap.x, limit: 2, period: 2w, scope: debt, " + CITED + "}\n",
            "period",
        ),
        (
            "code: US\nname: x\nholidays: {calendar: {country: ZZ}, citation: abc, verified: true}\n",
            "no calendar ZZ",
        ),
        ("code: US\nname: x\nsurprise: 1\n", "surprise"),
        (
            "code: US\nname: x\ncitations: {flag.made_up: {citation: abc, verified: true}}\n",
            "unknown rule ids",
        ),
        ("code: GB\nname: x\n", "must match the file name"),
        ("code: US\nname: [unclosed\n", "cannot read YAML"),
    ],
)
def test_bad_rulebook_is_rejected_with_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    books = copy_rulebooks(tmp_path, {"US.yaml": text})

    with pytest.raises(RulebookError) as error:
        load_rulebooks(books, tmp_path / "policy.yaml")

    assert "US.yaml" in str(error.value)
    assert message in str(error.value)


def test_engine_rule_ids_cited_by_the_lender_policy_cover_every_engine_rule() -> None:
    assert set(RULEBOOKS.lender.citations) == ENGINE_RULE_IDS


# --- strategies -------------------------------------------------------------------------------------------


def test_strategies_select_most_specific() -> None:
    strategies = load_strategies()

    assert strategies.select(loan()).name == "default"
    assert strategies.select(loan(jurisdiction="CN")).name == "cn"
    assert strategies.select(loan(jurisdiction="CN", product="bnpl")).name == "bnpl"  # product beats place
    assert [s.name for s in strategies.select(loan()).steps] == [
        "D-3",
        "D-1",
        "D+1",
        "D+3",
        "D+7",
        "D+15",
        "D+30",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: x\nsteps:\n  - {step: D+3, channel: sms, template: a}\n"
            "  - {step: D+1, channel: sms, template: a}\n",
            "increasing",
        ),
        ("name: x\nsteps:\n  - {step: D+03, channel: sms, template: a}\n", "steps.0.step"),
        ("name: x\nsteps:\n  - {step: D+1, channel: fax, template: a}\n", "steps.0.channel"),
        (
            "name: x\nfallback: {sms: sms}\nsteps:\n  - {step: D+1, channel: sms, template: a}\n",
            "falls back to itself",
        ),
        ("name: y\nsteps:\n  - {step: D+1, channel: sms, template: a}\n", "must match the file name"),
    ],
)
def test_bad_strategy_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    for path in DEFAULT_STRATEGIES_DIR.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "x.yaml").write_text(text, encoding="utf-8")

    with pytest.raises(RulebookError, match=message):
        load_strategies(tmp_path)


def test_strategies_need_exactly_one_default(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nsteps:\n  - {step: D+1, channel: sms, template: a}\n")
    (tmp_path / "b.yaml").write_text("name: b\nsteps:\n  - {step: D+1, channel: sms, template: a}\n")

    with pytest.raises(RulebookError, match="exactly one default"):
        load_strategies(tmp_path)


def test_every_strategy_template_exists_in_the_template_catalog() -> None:
    from dunning.render import load_templates

    known = set(load_templates().template_ids)
    strategies = load_strategies()

    for name in strategies.names:
        for step in strategies.get(name).steps:
            assert step.template in known, f"strategy {name} step {step.name}: no template {step.template!r}"


def test_docs_rules_md_lists_every_rulebook_and_cap() -> None:
    text = (Path(__file__).parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")

    for code in [*RULEBOOKS.codes, "lender"]:
        book = RULEBOOKS.lender if code == "lender" else RULEBOOKS.rulebook(code)
        heading = f"### {code} — "
        assert heading in text, (
            f"docs/rules.md has no section for rulebook {code}: add a '{heading}…' heading"
        )
        section = text.split(heading, 1)[1].split("###", 1)[0]
        for cap in book.caps:
            assert f"`{cap.id}`" in section, (code, cap.id)
