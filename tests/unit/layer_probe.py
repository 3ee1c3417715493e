"""What the product computes with Babel and phonenumbers, as JSON: run once on the built layer and once
on the full packages of the virtual environment, the two must agree (tests/unit/test_layer_build.py).

Every template x channel is rendered for a borrower of every locale Babel lists (the pruned ones included:
their borrowers get the default template and its formats), every locale's "known" answer is recorded, the
template lint runs, and the example number of each supported country is parsed and mapped to time zones.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

CURRENCIES = ("USD", "CAD", "CNY", "GBP", "EUR", "INR", "MXN")
COUNTRIES = ("US", "CA", "CN", "GB", "IE", "IN", "MX")


def probe() -> dict[str, Any]:
    """Renders, locale answers, lint findings and phone facts, keyed so that two runs compare."""
    import babel
    import phonenumbers
    from babel import Locale, UnknownLocaleError
    from babel.localedata import locale_identifiers

    from dunning.lint import lint_templates
    from dunning.models import Borrower, Channel, Decision, DecisionKind, Loan
    from dunning.render import RenderError, load_templates, render_message
    from dunning.zones import phone_info

    catalog = load_templates()
    renders: dict[str, str] = {}
    known: dict[str, bool] = {}
    for index, identifier in enumerate(sorted(locale_identifiers())):
        tag = identifier.replace("_", "-")
        try:
            Locale.parse(tag, sep="-")
            known[tag] = True
        except (UnknownLocaleError, ValueError):
            known[tag] = False
        currency = CURRENCIES[index % len(CURRENCIES)]
        loan = Loan(
            loan_id="PROBE-LOAN-1",
            borrower_id="PROBE-BORROWER-1",
            currency=currency,
            amount_due=Decimal("1234.56"),
            due_date=date(2026, 3, 2),
            jurisdiction="US",
        )
        try:
            borrower = Borrower(borrower_id="PROBE-BORROWER-1", first_name="Alex", locale=tag)
        except ValueError:
            continue  # a tag the Borrower model refuses never reaches the renderer
        for template_id in catalog.template_ids:
            for channel in (Channel.SMS, Channel.PUSH):
                decision = Decision(
                    kind=DecisionKind.SEND,
                    loan_id=loan.loan_id,
                    borrower_id=borrower.borrower_id,
                    at=datetime(2026, 3, 2, 15, tzinfo=UTC),
                    rule_id="probe",
                    reason="probe",
                    channel=channel,
                    step="D+1",
                    template=template_id,
                )
                try:
                    message = render_message(
                        decision,
                        loan,
                        borrower,
                        required_content=frozenset({"opt_out", "sender_identity"}),
                        max_sms_segments=10,
                        catalog=catalog,
                    )
                    text = json.dumps(message.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
                except RenderError as exc:
                    text = f"RenderError {exc.kind}: {exc}"
                renders[f"{tag}/{template_id}/{channel}"] = text
    phones = {}
    for country in COUNTRIES:
        example = phonenumbers.example_number(country)
        assert example is not None
        number = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        info = phone_info(number)
        phones[country] = [info.valid, info.e164, list(info.zones)]
    return {
        "babel": babel.__file__,
        "renders": renders,
        "known": known,
        "lint": sorted(str(problem) for problem in lint_templates()),
        "phones": phones,
    }


if __name__ == "__main__":
    json.dump(probe(), sys.stdout, ensure_ascii=False)
