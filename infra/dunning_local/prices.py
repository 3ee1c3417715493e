"""Illustrative prices the demo's carrier charges and its cost estimate uses (USD).

Per-part SMS prices are AWS End User Messaging list price + a typical carrier fee; replace them with your
account's prices. Formula and sources: docs/cost.md.
"""

from __future__ import annotations

SMS_PRICE_PER_PART = {
    "US": 0.00581 + 0.00302,
    "CA": 0.00575 + 0.0025,
    "CN": 0.0250,
    "IN": 0.0032,
    "GB": 0.0420,
    "IE": 0.0730,
}
PUSH_PRICE = 0.50 / 1_000_000  # SNS mobile push, per message after the free tier
INFRA_PER_MESSAGE = 0.0000103  # Lambda + SQS + SNS requests + DynamoDB units per message: docs/cost.md
