"""The prices the demo's carrier charges and its cost estimate uses (USD), from the one price list.

``layers/dunning/dunning/data/prices.yaml`` is read by the demo, the benchmarks (bench/cost.py) and the
planner's spend guard alike; replace its SMS prices with your account's. Formula and sources:
docs/cost.md. Nothing here holds a price of its own: a destination the list does not name is priced at
its ``sms_per_part_unlisted``, as the spend guard prices it.
"""

from __future__ import annotations

from dunning.budget import load_prices

_PRICES = load_prices()
PUSH_PRICE = _PRICES.infrastructure["sns_mobile_push_delivery"]  # SNS mobile push, per message
INFRA_PER_MESSAGE = _PRICES.infra_per_message  # Lambda + SQS + SNS + DynamoDB per message: docs/cost.md


def sms_part_price(country: str) -> float:
    """The price of one SMS part to a destination country (the list's unlisted price if it has none)."""
    return _PRICES.sms_part(country)
