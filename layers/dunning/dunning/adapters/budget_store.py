"""Shared counters on the state table: estimated SMS spend per country and sends per identity per second.

Both are conditional ``ADD``s, so concurrent planners and senders never push a counter past its limit:

- spend (``pk = SPEND#<country>``, ``sk = M#<month>``, the month's total and one attribute per day):
  the planner reserves a page's estimated cost in one request; a reservation that would cross the
  day's or the month's budget is cut to what fits;
- rate (``pk = RATE#<identity>``, ``sk = <epoch second>``): a sender takes one token of the current
  second before it publishes, and waits for the next second when the bucket is full. Items expire
  through the table's TTL (``expires_at``) a few minutes later.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from botocore.exceptions import ClientError

from dunning.adapters.dynamo import Dynamo, is_conditional_failure

# Rate buckets live this long after their second (DynamoDB TTL deletes them within a day or two).
RATE_ITEM_SECONDS = 300
# A sender waits at most this long for a token before the job is retried through SQS instead.
MAX_WAIT_SECONDS = 30.0
# Spend reservations race other shards at most this many times before giving up on the page.
MAX_RESERVE_ATTEMPTS = 5
_CENTS = Decimal("0.000001")


@dataclass(frozen=True)
class Reservation:
    """What a spend reservation obtained: how many sends fit, and the day's/month's use after it."""

    granted: int
    day_percent: float
    month_percent: float


@dataclass
class SpendLedger:
    """Estimated SMS spend per destination country, per UTC day and month, in one item per country and
    month (``month`` and one attribute per day), so a reservation is a single conditional ADD."""

    dynamo: Dynamo
    table: str

    def spent(self, country: str, at: datetime) -> tuple[Decimal, Decimal]:
        """The day's and the month's estimated spend so far."""
        day, month = spend_period_keys(at)
        item = self.dynamo.get(self.table, {"pk": f"SPEND#{country}", "sk": f"M#{month}"}) or {}
        return Decimal(str(item.get(f"d{day}", 0))), Decimal(str(item.get("month", 0)))

    def reserve(
        self, country: str, count: int, unit_cost: float, at: datetime, daily: float, monthly: float
    ) -> Reservation:
        """Reserve the estimated cost of up to ``count`` sends; returns how many fit both budgets."""
        unit = Decimal(str(unit_cost)).quantize(_CENTS, rounding="ROUND_CEILING")
        limits = (Decimal(str(daily)), Decimal(str(monthly)))
        granted = count
        for _ in range(MAX_RESERVE_ATTEMPTS):
            # Optimistic first: the usual page fits, and one conditional ADD is all it costs.
            if granted > 0:
                totals = self._add(country, at, unit * granted, limits)
                if totals is not None:
                    return Reservation(
                        granted, _percent(totals[0], limits[0]), _percent(totals[1], limits[1])
                    )
            spent = self.spent(country, at)
            fits = [
                math.floor((limit - used) / unit) if unit > 0 else count
                for limit, used in zip(limits, spent, strict=True)
            ]
            granted = max(0, min(count, *fits))
            if granted == 0:
                return Reservation(0, _percent(spent[0], limits[0]), _percent(spent[1], limits[1]))
        return Reservation(0, 100.0, 100.0)

    def _add(
        self, country: str, at: datetime, amount: Decimal, limits: tuple[Decimal, Decimal]
    ) -> tuple[Decimal, Decimal] | None:
        """ADD ``amount`` to the day and the month unless either would pass its limit; the new totals."""
        day, month = spend_period_keys(at)
        try:
            item = self.dynamo.update(
                self.table,
                {"pk": f"SPEND#{country}", "sk": f"M#{month}"},
                update="ADD #day :a, #month :a",
                names={"#day": f"d{day}", "#month": "month"},
                values={":a": amount, ":dmax": limits[0] - amount, ":mmax": limits[1] - amount},
                condition="(attribute_not_exists(#day) OR #day <= :dmax) AND "
                "(attribute_not_exists(#month) OR #month <= :mmax)",
                return_new=True,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return None
            raise
        item = item or {}
        return Decimal(str(item.get(f"d{day}", amount))), Decimal(str(item.get("month", amount)))


def spend_period_keys(at: datetime) -> tuple[str, str]:
    """The day and the month a spend falls in (UTC): ``2026-03-02``, ``2026-03``."""
    return at.strftime("%Y-%m-%d"), at.strftime("%Y-%m")


def _percent(used: Decimal, limit: Decimal) -> float:
    return float(used / limit * 100) if limit > 0 else 100.0


class RateLimitTimeout(Exception):
    """No token could be taken within the wait limit (the identity is saturated)."""


@dataclass
class RateLimiter:
    """Per-identity send pacing shared by every concurrent sender: a token bucket per second.

    ``acquire`` adds what it asks for to the count of the current epoch second (``ADD n :k``, no
    condition) and reads the count back: the adds are applied one at a time, so each sees what was asked
    before it, and it is granted what the second had left, ``min(k, rate - (n - k))``. So in every second,
    across all senders, at most ``rate`` publishes start for the identity (fractional rates round down,
    at least 1), and one write grants what there is: a conditional write refused because the bucket was
    fuller than asked would cost a write unit all the same, and ask again. When nothing is left it sleeps
    to the next second and asks that one.
    """

    dynamo: Dynamo
    table: str
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    max_wait: float = MAX_WAIT_SECONDS
    waited: float = field(default=0.0, init=False)

    def acquire(self, identity: str, rate_per_second: float, *, tokens: int = 1) -> tuple[int, int]:
        """Take up to ``tokens`` tokens of one second for ``identity``: (epoch second, tokens taken, >= 1)."""
        per_second = max(1, math.floor(rate_per_second))
        started = self.clock()
        want = max(1, min(tokens, per_second))
        while True:
            now = self.clock()
            second = int(now)
            counted = self.dynamo.update(
                self.table,
                {"pk": f"RATE#{identity}", "sk": f"{second:012d}"},
                update="ADD n :k SET expires_at = if_not_exists(expires_at, :exp)",
                values={":k": want, ":exp": second + RATE_ITEM_SECONDS},
                return_new=True,
            )
            if counted is None:
                raise RuntimeError(f"the send-rate bucket of {identity} did not return its count")
            asked_before = int(counted["n"]) - want
            granted = min(want, per_second - asked_before)
            if granted > 0:
                return second, granted
            if now - started >= self.max_wait:
                raise RateLimitTimeout(f"no send token for {identity} within {self.max_wait:.0f} s")
            pause = second + 1 - self.clock()
            if pause > 0:
                self.waited += pause
                self.sleep(pause)
