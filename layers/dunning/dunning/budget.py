"""The lender's sending budget as data: rates per origination identity, pacing, spend and segment budgets.

Reads ``data/lender/sending.yaml`` and the one price list ``data/prices.yaml`` (which the demo and the
benchmarks read too) and answers the planner's, the engine's, the sender's and the renderer's questions:
which identity carries a message and at what rate, how many SENDs one shard may plan in one tick, who
goes first, when inside a window a borrower's reminder is released, what an SMS is estimated to cost and
how many parts a message may take. Pure: no AWS calls.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dunning import yamlio
from dunning.models import Channel

DATA_DIR: Final = Path(__file__).parent / "data"
DEFAULT_SENDING_PATH: Final = DATA_DIR / "lender" / "sending.yaml"
DEFAULT_PRICES_PATH: Final = DATA_DIR / "prices.yaml"

THROUGHPUT_RULE: Final = "budget.throughput"
SPEND_RULE: Final = "budget.spend"
PACING_RULE: Final = "window.pacing"
PUSH_IDENTITY: Final = "push"
DEFAULT_IDENTITY: Final = "default"

Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
Rate = Annotated[float, Field(gt=0, le=100_000)]
PriorityKey = Literal["budget_deferred", "earlier_step", "pre_due", "oldest"]


class BudgetError(ValueError):
    """The sending policy or the price list on disk is invalid (fails at load, not at send)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SmsIdentity(_Frozen):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
    rate_per_second: Rate
    countries: Annotated[tuple[Country, ...], Field(min_length=1)]


class SpendLimit(_Frozen):
    daily: Annotated[float, Field(gt=0)]
    monthly: Annotated[float, Field(gt=0)]


class SpendPolicy(_Frozen):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    warn_at_percent: Annotated[float, Field(gt=0, le=100)]
    parts_per_sms: Annotated[int, Field(ge=1, le=10)]
    budgets: dict[Country, SpendLimit]
    default: SpendLimit

    def limit_for(self, country: str) -> SpendLimit:
        """The day's and the month's budget for one destination country."""
        return self.budgets.get(country, self.default)


class SegmentBudget(_Frozen):
    parts: Annotated[int, Field(ge=1, le=10)]
    ucs2_with_licence_parts: Annotated[int, Field(ge=1, le=10)]


class SendingPolicy(_Frozen):
    """``data/lender/sending.yaml``: throughput, priority, pacing, spend and segment budgets."""

    sms_identities: tuple[SmsIdentity, ...]
    default_sms_rate_per_second: Rate
    push_rate_per_second: Rate
    priority: Annotated[tuple[PriorityKey, ...], Field(min_length=1)]
    pacing_span_minutes: Annotated[int, Field(ge=0, le=12 * 60)]
    spend: SpendPolicy
    sms_segment_budget: SegmentBudget

    @model_validator(mode="after")
    def _one_identity_per_country(self) -> SendingPolicy:
        seen: dict[str, str] = {}
        for identity in self.sms_identities:
            if identity.id in (PUSH_IDENTITY, DEFAULT_IDENTITY):
                raise ValueError(f"identity id {identity.id!r} is reserved")
            for country in identity.countries:
                if country in seen:
                    raise ValueError(f"{country} is served by both {seen[country]} and {identity.id}")
                seen[country] = identity.id
        if len(set(self.priority)) != len(self.priority):
            raise ValueError("priority keys must not repeat")
        return self

    def identity_for(self, channel: Channel, country: str) -> tuple[str, float]:
        """The origination identity (``push`` for push) that carries a message, and its rate per second."""
        if channel == Channel.PUSH:
            return PUSH_IDENTITY, self.push_rate_per_second
        for identity in self.sms_identities:
            if country in identity.countries:
                return identity.id, identity.rate_per_second
        return DEFAULT_IDENTITY, self.default_sms_rate_per_second

    def rates(self) -> dict[str, float]:
        """Every identity's rate per second, push and the default identity included."""
        found = {i.id: i.rate_per_second for i in self.sms_identities}
        found[DEFAULT_IDENTITY] = self.default_sms_rate_per_second
        found[PUSH_IDENTITY] = self.push_rate_per_second
        return found

    def sms_parts_budget(self, *, ucs2: bool, licence: bool) -> int:
        """The parts one SMS may take: the budget, or the UCS-2-with-licence allowance."""
        budget = self.sms_segment_budget
        return budget.ucs2_with_licence_parts if ucs2 and licence else budget.parts


class SmsPrice(_Frozen):
    base: Annotated[float, Field(ge=0)]
    carrier_fee: Annotated[float, Field(ge=0)]

    @property
    def total(self) -> float:
        return self.base + self.carrier_fee


class Prices(_Frozen):
    """``data/prices.yaml``: the one price list of the demo, the benchmarks and the spend guard."""

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    sources: dict[str, Annotated[str, Field(pattern=r"^https://\S+$")]]
    sms_per_part: dict[Country, SmsPrice]
    sms_per_part_unlisted: Annotated[float, Field(gt=0)]
    infrastructure: dict[str, Annotated[float, Field(ge=0)]]
    infra_per_message: Annotated[float, Field(ge=0)]

    def sms_part(self, country: str) -> float:
        """Price of one SMS part to a destination country (the unlisted price if it has none)."""
        price = self.sms_per_part.get(country)
        return price.total if price is not None else self.sms_per_part_unlisted


def _read(path: Path) -> object:
    import yaml  # only when the policy is first loaded: not on a handler's cold import

    try:
        with path.open(encoding="utf-8") as handle:
            return yamlio.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise BudgetError(f"{path}: {exc}") from exc


def _load_sending(path: Path) -> SendingPolicy:
    try:
        return SendingPolicy.model_validate(_read(path))
    except ValidationError as exc:
        raise BudgetError(f"{path}: {exc}") from exc


def _load_prices(path: Path) -> Prices:
    try:
        return Prices.model_validate(_read(path))
    except ValidationError as exc:
        raise BudgetError(f"{path}: {exc}") from exc


@cache
def _default_sending() -> SendingPolicy:
    return _load_sending(DEFAULT_SENDING_PATH)


@cache
def _default_prices() -> Prices:
    return _load_prices(DEFAULT_PRICES_PATH)


def load_sending_policy(path: Path | None = None) -> SendingPolicy:
    """The lender's sending policy; the packaged default is loaded once and cached."""
    return _default_sending() if path is None else _load_sending(path)


def load_prices(path: Path | None = None) -> Prices:
    """The price list; the packaged default is loaded once and cached."""
    return _default_prices() if path is None else _load_prices(path)


def tick_budget(
    rate_per_second: float,
    job_ttl: timedelta,
    tick_interval: timedelta,
    shards: int,
    shard_index: int,
    tick_number: int = 0,
) -> int:
    """SENDs one shard may plan for one identity in one tick: ``rate x min(JOB_TTL, tick)``, split.

    The identity's whole-tick budget is split so the shards' budgets add up to it exactly, never to
    more. The ``remainder`` extra sends go to different shards from tick to tick, so a shard whose even
    share rounds down to nothing still gets its turn.
    """
    if shards < 1 or not 0 <= shard_index < shards:
        raise ValueError("shard_index must be in [0, shards)")
    horizon = min(job_ttl, tick_interval).total_seconds()
    whole = math.floor(rate_per_second * horizon)
    share, remainder = divmod(whole, shards)
    return share + (1 if (shard_index - tick_number * remainder) % shards < remainder else 0)


def pacing_fraction(borrower_id: str) -> float:
    """A stable per-borrower fraction in [0, 1): where in the pacing span their reminder is released."""
    digest = hashlib.blake2b(borrower_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# Deferrals that end when a contact window opens: released over the pacing span, not all at the opening.
PACED_RULES = frozenset({"window.quiet_hours", "window.sunday", "window.holiday"})


def paced_release(
    opens: datetime, borrower_id: str, span_minutes: int, sendable: Callable[[datetime], bool]
) -> datetime:
    """When a loan that may first be sent at ``opens`` (a window opening) is looked at: ``opens`` plus
    this borrower's place in the pacing span, if ``sendable`` then (still inside the window); else
    ``opens`` itself. Spreads each window opening's releases over the span, never outside the window."""
    if not span_minutes:
        return opens
    paced = opens + timedelta(seconds=int(pacing_fraction(borrower_id) * span_minutes * 60))
    try:
        return paced if sendable(paced) else opens
    except Exception:
        return opens


@dataclass(frozen=True)
class Candidate:
    """What the priority policy looks at for one SEND the planner wants to make."""

    step_offset_days: int
    next_contact_at: str
    held_back: bool


def priority_key(policy: SendingPolicy, candidate: Candidate) -> tuple[object, ...]:
    """Sort key of a SEND candidate under the policy's priority order (smaller goes first)."""
    values: dict[str, object] = {
        "budget_deferred": 0 if candidate.held_back else 1,
        "earlier_step": candidate.step_offset_days,
        "pre_due": 0 if candidate.step_offset_days < 0 else 1,
        "oldest": candidate.next_contact_at,
    }
    return tuple(values[key] for key in policy.priority)


def step_offset_days(step: str | None) -> int:
    """``D-3`` → -3, ``D+7`` → 7 (0 for anything else)."""
    if step and len(step) > 2 and step[0] == "D" and step[1] in "+-":
        try:
            return int(step[1:])
        except ValueError:
            return 0
    return 0
