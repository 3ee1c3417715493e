"""The Loans/Borrowers item contract: what parses, what is refused, and how the refusal reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from dunning.items import (
    InvalidItem,
    ItemError,
    borrower_from_item,
    borrower_to_item,
    iso_utc,
    loan_from_item,
    loan_to_item,
    parse_iso_utc,
    raw_status,
)
from dunning.models import Channel, LoanStatus


def loan_item(**overrides: object) -> dict[str, object]:
    item: dict[str, object] = {
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "currency": "USD",
        "amount_due": Decimal("250.00"),
        "due_date": "2026-02-23",
        "status": "ACTIVE",
        "product": "installment",
        "jurisdiction": "US-NY",
    }
    item.update(overrides)
    return item


def borrower_item(**overrides: object) -> dict[str, object]:
    item: dict[str, object] = {
        "borrower_id": "B-1",
        "first_name": "Ada",
        "locale": "en-US",
        "time_zone": "America/New_York",
        "phone": "+12125550142",
        "address": {"country": "US", "region": "NY"},
        "consent": {"sms": True, "push": True},
        "opt_outs": {"push"},
        "push_endpoints": [
            {"arn": "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/ExampleApp/3f1a", "platform": "GCM"}
        ],
    }
    item.update(overrides)
    return item


def test_a_loan_item_as_the_resource_layer_gives_it_parses() -> None:
    loan = loan_from_item(
        loan_item(flags={"promise_to_pay": {"until": "2026-03-09", "grace_days": Decimal("2")}})
    )
    assert loan.amount_due == Decimal("250.00")
    assert loan.due_date == date(2026, 2, 23)
    assert loan.flags.promise_to_pay is not None
    assert loan.flags.promise_to_pay.grace_days == 2


def test_a_borrower_item_with_sets_and_lists_parses() -> None:
    borrower = borrower_from_item(borrower_item())
    assert borrower.opt_outs == frozenset({Channel.PUSH})
    assert borrower.push_endpoints[0].platform == "GCM"
    assert borrower.address is not None
    assert borrower.address.region == "NY"


def test_optional_attributes_may_be_absent_or_empty() -> None:
    loan = loan_from_item({k: v for k, v in loan_item().items() if k not in ("status", "product")})
    assert loan.status == LoanStatus.ACTIVE
    assert loan.product == "default"
    borrower = borrower_from_item({"borrower_id": "B-2", "time_zone": "", "phone": ""})
    assert borrower.time_zone is None
    assert borrower.phone is None
    assert borrower.locale == "en-US"


def test_the_lenders_own_attributes_are_ignored() -> None:
    loan = loan_from_item(loan_item(updated_at="2026-03-01T10:00:00Z", servicer_notes="call later"))
    assert loan.loan_id == "L-1"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (loan_item(amount_due=Decimal("-1")), "amount_due: Input should be greater than or equal to 0"),
        (loan_item(jurisdiction="New York"), "jurisdiction: String should match pattern"),
        (loan_item(due_date="next week"), "due_date:"),
        (loan_item(status="SETTLED"), "status: Input should be"),
        (loan_item(flag={"bankruptcy": True}), "flag: unknown attribute (did you mean 'flags'?)"),
        (loan_item(flags={"cease_desist": True}), "flags.cease_desist: unknown flag"),
        ({k: v for k, v in loan_item().items() if k != "currency"}, "currency: Field required"),
    ],
)
def test_a_bad_loan_item_is_refused_with_one_line_naming_the_field(item: dict, expected: str) -> None:
    with pytest.raises(InvalidItem) as caught:
        loan_from_item(item)
    message = str(caught.value)
    assert message.startswith("loan L-1: ") or message.startswith("loan ")
    assert expected in message
    assert "\n" not in message
    assert caught.value.kind == "loan"


def test_a_bad_borrower_item_names_the_field_and_never_echoes_the_value() -> None:
    with pytest.raises(ItemError) as caught:
        borrower_from_item(borrower_item(phone="+12125550142" * 4))
    assert "phone: String should have at most 32 characters" in str(caught.value)
    assert "5550142" not in str(caught.value)


def test_several_errors_are_counted_not_listed() -> None:
    with pytest.raises(InvalidItem, match=r"\(\+1 more\)"):
        loan_from_item(loan_item(currency="usd", amount_due=Decimal("-3")))


def test_status_is_readable_even_when_the_rest_is_not() -> None:
    assert raw_status(loan_item(status="PAID", currency="??")) == LoanStatus.PAID
    assert raw_status(loan_item(status="SETTLED")) is None
    assert raw_status({"loan_id": "L-1"}) == LoanStatus.ACTIVE
    assert raw_status(None) is None


def test_items_written_from_models_round_trip_through_dynamodb_types() -> None:
    loan = loan_from_item(loan_item(flags={"dispute": {"opened_on": "2026-02-25"}}))
    borrower = borrower_from_item(borrower_item())
    assert loan_from_item(through_dynamodb(loan_to_item(loan))) == loan
    assert borrower_from_item(through_dynamodb(borrower_to_item(borrower))) == borrower


def through_dynamodb(item: dict[str, object]) -> dict[str, object]:
    """The item as it comes back from DynamoDB (serialised to the wire format and back)."""
    serializer, deserializer = TypeSerializer(), TypeDeserializer()
    return {k: deserializer.deserialize(serializer.serialize(v)) for k, v in item.items()}


def test_timestamps_have_one_sortable_form() -> None:
    moment = datetime(2026, 3, 2, 9, 0, 7, 123456, tzinfo=timezone(timedelta(hours=-5)))
    assert iso_utc(moment) == "2026-03-02T14:00:07Z"
    assert parse_iso_utc("2026-03-02T14:00:07Z") == datetime(2026, 3, 2, 14, 0, 7, tzinfo=UTC)
    with pytest.raises(ValueError):
        iso_utc(datetime(2026, 3, 2, 14, 0))


@pytest.mark.parametrize("code", ["ZZZ", "XXX", "XTS", "DEM", "ABC"])
def test_a_currency_that_is_not_an_iso_4217_code_in_use_is_refused_without_echoing_it(code: str) -> None:
    with pytest.raises(InvalidItem) as caught:
        loan_from_item(loan_item(currency=code))
    assert caught.value.reason == "currency: Value error, not an ISO 4217 currency code in use"
    assert code not in str(caught.value)


@pytest.mark.parametrize("code", ["USD", "CNY", "GBP", "INR", "EUR", "CAD", "XOF", "JPY"])
def test_iso_4217_currencies_in_use_are_accepted(code: str) -> None:
    assert loan_from_item(loan_item(currency=code)).currency == code
