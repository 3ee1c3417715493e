"""Strategies: the cadence of reminders (steps by days past due → channel + template), as validated data.

A strategy file (``data/strategies/<name>.yaml``) lists steps such as ``D-3`` (three days before the due
date) or ``D+7`` (seven days after), each with a channel and a template id, and which channel may stand
in when a step's channel cannot be used. After the last step the loan is handed off.

Selection: a strategy may name ``products`` and/or ``jurisdictions`` (segment prefixes, ``CN`` matches
``CN`` and ``CN-GD``). The most specific match wins: a product match beats a jurisdiction match, a
longer jurisdiction beats a shorter one, and the one strategy with no criteria is the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dunning.models import Channel, JurisdictionCode, Loan
from dunning.rules import DATA_DIR, RulebookError, validate_file

DEFAULT_STRATEGIES_DIR: Final = DATA_DIR / "strategies"
_STEP_RE: Final = re.compile(r"^D(0|[+-][1-9]\d{0,2})$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepFile(_Strict):
    step: Annotated[str, Field(pattern=_STEP_RE.pattern)]
    channel: Channel
    template: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class StrategyFile(_Strict):
    """One strategy as written in ``data/strategies/<name>.yaml``."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_\-]*$", max_length=64)]
    description: str = ""
    products: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()
    jurisdictions: tuple[JurisdictionCode, ...] = ()
    # Which channel stands in when a step's own channel cannot be used, e.g. {push: sms}.
    fallback: dict[Channel, Channel] = {}
    steps: Annotated[tuple[StepFile, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _ordered(self) -> StrategyFile:
        offsets = [step_offset(s.step) for s in self.steps]
        if offsets != sorted(set(offsets)):
            raise ValueError(
                f"steps must be in increasing day order without repeats, got {[s.step for s in self.steps]}"
            )
        for source, target in self.fallback.items():
            if source == target:
                raise ValueError(f"fallback {source.value} → {target.value} falls back to itself")
        return self


def step_offset(name: str) -> int:
    """Days relative to the due date: ``"D-3"`` → -3, ``"D+7"`` → 7, ``"D0"`` → 0."""
    return int(name[1:])


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    offset_days: int
    channel: Channel
    template: str


@dataclass(frozen=True, eq=False)
class Strategy:
    """A cadence: ordered steps, the allowed channel fallbacks, and which loans it is for."""

    name: str
    steps: tuple[Step, ...]
    fallback: tuple[tuple[Channel, Channel], ...]
    products: frozenset[str]
    jurisdictions: tuple[str, ...]
    # Every channel this strategy may use (steps and fallbacks).
    channels: frozenset[Channel]
    # ``fallback`` as a dict, for the engine's every decision.
    _fallbacks: dict[Channel, Channel] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        fallbacks: dict[Channel, Channel] = {}
        for source, target in self.fallback:
            fallbacks.setdefault(source, target)
        object.__setattr__(self, "_fallbacks", fallbacks)

    def fallback_for(self, channel: Channel) -> Channel | None:
        """The channel allowed to stand in for ``channel``, if any."""
        return self._fallbacks.get(channel)

    def specificity(self, loan: Loan) -> tuple[bool, int] | None:
        """How closely this strategy matches a loan (higher is closer), None if it does not match."""
        if self.products and loan.product not in self.products:
            return None
        depth = 0
        if self.jurisdictions:
            parts = loan.jurisdiction.split("-")
            matching = [
                len(j.split("-")) for j in self.jurisdictions if parts[: len(j.split("-"))] == j.split("-")
            ]
            if not matching:
                return None
            depth = max(matching)
        return bool(self.products), depth


def _compile(spec: StrategyFile) -> Strategy:
    return Strategy(
        name=spec.name,
        steps=tuple(Step(s.step, step_offset(s.step), s.channel, s.template) for s in spec.steps),
        fallback=tuple(sorted(spec.fallback.items())),
        products=frozenset(spec.products),
        jurisdictions=spec.jurisdictions,
        channels=frozenset(s.channel for s in spec.steps) | frozenset(spec.fallback.values()),
    )


class Strategies:
    """All strategies, validated; picks the one for a loan (memoised per product and jurisdiction)."""

    def __init__(self, strategies: list[Strategy]) -> None:
        self._all = sorted(strategies, key=lambda s: s.name)
        defaults = [s.name for s in self._all if not s.products and not s.jurisdictions]
        if len(defaults) != 1:
            raise RulebookError(
                f"exactly one default strategy (no products, no jurisdictions) needed, got {defaults}"
            )
        keys = [(s.products, frozenset(s.jurisdictions)) for s in self._all]
        clashes = sorted({s.name for s, k in zip(self._all, keys, strict=True) if keys.count(k) > 1})
        if clashes:
            raise RulebookError(f"strategies {clashes} match the same loans; make one more specific")
        self._chosen: dict[tuple[str, str], Strategy] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """Strategy names, sorted."""
        return tuple(s.name for s in self._all)

    @property
    def most_steps(self) -> int:
        """The number of steps of the longest cadence: the most claims one loan can hold."""
        return max(len(s.steps) for s in self._all)

    def get(self, name: str) -> Strategy:
        """One strategy by name (KeyError if unknown)."""
        for strategy in self._all:
            if strategy.name == name:
                return strategy
        raise KeyError(name)

    def select(self, loan: Loan) -> Strategy:
        """The most specific strategy matching the loan's product and jurisdiction."""
        key = (loan.product, loan.jurisdiction)
        found = self._chosen.get(key)
        if found is None:
            scored = [(score, s) for s in self._all if (score := s.specificity(loan)) is not None]
            # Most specific first; the name breaks ties so the choice never depends on file order.
            best = min(scored, key=lambda pair: (not pair[0][0], -pair[0][1], pair[1].name))
            found = self._chosen[key] = best[1]
        return found


def _load(directory: Path) -> Strategies:
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise RulebookError(f"{directory}: no strategy files (*.yaml)")
    specs = [validate_file(path, StrategyFile) for path in files]
    for path, spec in zip(files, specs, strict=True):
        if spec.name != path.stem:
            raise RulebookError(f"{path}: name {spec.name!r} must match the file name ({path.stem}.yaml)")
    return Strategies([_compile(spec) for spec in specs])


@cache
def _default_strategies() -> Strategies:
    return _load(DEFAULT_STRATEGIES_DIR)


def load_strategies(directory: Path | None = None) -> Strategies:
    """Load and validate every strategy; the packaged default is loaded once.

    Raises ``RulebookError`` (a ``ValueError``) naming the file on any invalid strategy.
    """
    return _default_strategies() if directory is None else _load(directory)
