"""One segment by default: every template in every locale fits the lender's segment budget for any
borrower's values, keeps every required disclosure, and gives up the first name before any meaning."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunning.budget import load_sending_policy
from dunning.lint import lint_templates, load_lint_policy
from dunning.models import Borrower, Channel, Decision, DecisionKind, Loan
from dunning.render import (
    RenderedMessage,
    RenderError,
    first_name_for_message,
    load_profile,
    load_templates,
    render_message,
)
from dunning.sms import gsm_transliterate

CATALOG = load_templates()
PROFILE = load_profile()
SENDING = load_sending_policy()
LINT = load_lint_policy()
# (jurisdiction, currency, required content, locales): the lint's sample jurisdictions.
JURISDICTIONS = [
    (j.code, j.currency, frozenset(j.required_content), j.locales or CATALOG.locales)
    for j in LINT.sample_jurisdictions
]
CASES = [(code, cur, req, loc) for code, cur, req, locales in JURISDICTIONS for loc in locales]


def _render(
    template: str,
    locale: str,
    jurisdiction: str,
    currency: str,
    required: frozenset[str],
    amount: Decimal,
    name: str,
) -> RenderedMessage:
    loan = Loan(
        loan_id="L-1",
        borrower_id="B-1",
        currency=currency,
        amount_due=amount,
        due_date=date(2026, 12, 31),
        jurisdiction=jurisdiction,
    )
    borrower = Borrower(borrower_id="B-1", first_name=name, locale=locale)
    decision = Decision(
        kind=DecisionKind.SEND,
        loan_id="L-1",
        borrower_id="B-1",
        at=datetime(2026, 12, 28, 15, tzinfo=UTC),
        rule_id="cadence.step_due",
        reason="test",
        channel=Channel.SMS,
        step="D-3",
        template=template,
    )
    return render_message(
        decision,
        loan,
        borrower,
        required_content=required,
        max_sms_segments=3,
        profile=PROFILE,
        catalog=CATALOG,
        jurisdictions=(jurisdiction,),
    )


def _budget(message: RenderedMessage, required: frozenset[str]) -> int:
    return SENDING.sms_parts_budget(ucs2=message.encoding == "UCS-2", licence="licence_number" in required)


def _assert_disclosures(
    message: RenderedMessage, required: frozenset[str], locale: str, jurisdiction: str
) -> None:
    text = message.text or ""
    fold = gsm_transliterate if CATALOG.locale(locale).sms_transliterate else (lambda t: t)
    assert fold(CATALOG.locale(locale).phrases.opt_out_sms) in text, "opt-out notice"
    lender = PROFILE.resolved(locale, jurisdiction)
    assert any(fold(n) in text for n in (lender.name, lender.short_name, PROFILE.cn_signature or "-")), (
        "identity"
    )
    if "licence_number" in required:
        for licence in PROFILE.licences_for((jurisdiction,)):
            assert licence in text, "licence line"
    if "cn_signature" in required:
        assert text.startswith(f"【{PROFILE.cn_signature}】"), "signature"
    assert lender.pay_url in text, "the way to pay"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(CASES),
    template=st.sampled_from(CATALOG.template_ids),
    amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999999.99"), places=2),
    name=st.text(max_size=40),
)
def test_every_template_fits_its_budget_with_every_disclosure(
    case: tuple[str, str, frozenset[str], str], template: str, amount: Decimal, name: str
) -> None:
    jurisdiction, currency, required, locale = case
    message = _render(template, locale, jurisdiction, currency, required, amount, name)
    assert message.segments is not None
    assert message.segments <= _budget(message, required)
    _assert_disclosures(message, required, locale, jurisdiction)


@pytest.mark.parametrize(("jurisdiction", "currency", "required", "locale"), CASES)
@pytest.mark.parametrize("template", CATALOG.template_ids)
def test_worst_case_values_fit_one_segment_unless_a_licence_forces_ucs2_to_two(
    jurisdiction: str, currency: str, required: frozenset[str], locale: str, template: str
) -> None:
    worst_name = "Maximiliana Josephine Lu"  # 24 characters: the longest first name a message prints
    message = _render(template, locale, jurisdiction, currency, required, Decimal("9999999.99"), worst_name)
    expected = 2 if message.encoding == "UCS-2" and "licence_number" in required else 1
    assert message.segments is not None
    assert message.segments <= expected
    _assert_disclosures(message, required, locale, jurisdiction)


def test_the_first_name_goes_before_the_meaning() -> None:
    # A name that pushes the richer en-US variant over one part: the same variant is sent without it.
    required = frozenset({"opt_out", "sender_identity"})
    long_name = "Maximiliana Josephine Lu"
    assert first_name_for_message(long_name) == long_name
    with_long = _render("pre_due", "en-US", "US", "USD", required, Decimal("1234.50"), long_name)
    nameless = _render("pre_due", "en-US", "US", "USD", required, Decimal("1234.50"), "")
    short = _render("pre_due", "en-US", "US", "USD", required, Decimal("1234.50"), "Alex")
    assert with_long.text == nameless.text
    assert "Alex" in (short.text or "")
    assert "help (212) 555-0142" in (with_long.text or ""), "the richer variant's help line is kept"


def test_a_message_no_variant_fits_is_render_too_long() -> None:
    required = frozenset({"opt_out", "sender_identity"})
    with pytest.raises(RenderError) as caught:
        render_message(
            Decision(
                kind=DecisionKind.SEND,
                loan_id="L-1",
                borrower_id="B-1",
                at=datetime(2026, 12, 28, 15, tzinfo=UTC),
                rule_id="cadence.step_due",
                reason="test",
                channel=Channel.SMS,
                step="D-3",
                template="pre_due",
            ),
            Loan(
                loan_id="L-1",
                borrower_id="B-1",
                currency="USD",
                amount_due=Decimal("1.00"),
                due_date=date(2026, 12, 31),
                jurisdiction="US",
            ),
            Borrower(borrower_id="B-1", first_name="", locale="zh-CN"),
            required_content=required,
            max_sms_segments=3,
            segment_budget=1,
            profile=PROFILE.model_copy(update={"pay_url": "https://example.com/" + "p" * 60}),
            catalog=CATALOG,
        )
    assert caught.value.rule_id == "render.too_long"
    assert "no SMS variant fits" in str(caught.value)


def test_the_packaged_templates_pass_the_lint_under_the_one_segment_budget() -> None:
    assert SENDING.sms_segment_budget.parts == 1
    assert lint_templates() == []
