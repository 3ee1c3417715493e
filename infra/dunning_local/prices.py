"""The prices the demo's carrier charges and its cost estimate uses (USD), from the one price list.

``layers/dunning/dunning/data/prices.yaml`` is read by the demo, the benchmarks (bench/cost.py) and the
planner's spend guard alike; replace its SMS prices with your account's. Formula and sources:
docs/cost.md.
"""

from __future__ import annotations

from dunning.budget import load_prices

_PRICES = load_prices()
SMS_PRICE_PER_PART = {country: price.total for country, price in _PRICES.sms_per_part.items()}
PUSH_PRICE = _PRICES.infrastructure["sns_mobile_push_delivery"]  # SNS mobile push, per message
INFRA_PER_MESSAGE = _PRICES.infra_per_message  # Lambda + SQS + SNS + DynamoDB per message: docs/cost.md
