"""The decision: may this borrower be contacted about this loan now, how, and if not, why not and until when.

``decide`` is the one place that answers "why was this borrower not contacted?". It is pure and
deterministic (no clock, no I/O) and checks, in this order, each with a stable rule id:

1. What does not expire → STOP (the loan leaves the due-index; a data change re-indexes it):
   ``status.paid`` / ``status.closed`` / ``status.charged_off`` / ``status.nothing_due``,
   ``flag.bankruptcy``, ``flag.deceased``, ``flag.cease_and_desist``, ``flag.attorney_represented``,
   ``flag.dispute`` (open, no end date), ``dispute.open`` (a dispute reply awaiting verification),
   ``jurisdiction.unknown`` (no rulebook for the loan's country),
   ``consent.none_usable`` (no channel of the strategy can be used: consent, opt-outs, contact points).
2. What expires → DEFER to the earliest instant at which *all* of them have stopped holding:
   ``flag.dispute`` / ``flag.promise_to_pay`` / ``flag.hardship`` (dated), ``pause.inbound``,
   ``cadence.not_due`` (next step not due yet, or the latest due step already sent),
   ``channel.unavailable`` (this step's channel cannot be used and no fallback can),
   ``cap.*`` (every cap of every applicable rulebook: those of the loan's jurisdiction, the address and
   the phone's region, ``dunning.jurisdictions``), ``window.quiet_hours`` / ``window.sunday`` /
   ``window.holiday`` (in every candidate zone). The checks are repeated from each candidate instant
   until none blocks, so ``not_before`` is exact: one microsecond earlier something still blocks.
   When nothing can ever clear: ``cadence.end`` (hand-off) or ``window.no_common_hours`` → STOP.
3. Otherwise → SEND the latest due cadence step (``cadence.step_due``, or ``channel.fallback`` when the
   strategy's fallback channel stands in). Earlier unsent steps are skipped, never sent in a burst.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Final

from babel import Locale, UnknownLocaleError

from dunning.caps import CapBlock, CapCounter, sends_of
from dunning.jurisdictions import Candidates, candidate_jurisdictions, unknown_country_hint
from dunning.models import (
    AppliedJurisdiction,
    Borrower,
    Channel,
    ContactState,
    Decision,
    DecisionKind,
    Loan,
    LoanStatus,
    PushEndpoint,
    trusted_given,
)
from dunning.rules import Policy, Rulebooks
from dunning.strategy import Strategies, Strategy
from dunning.zones import (
    PhoneInfo,
    Whereabouts,
    WindowTable,
    candidate_zones,
    day_start,
    fmt_local,
    fmt_utc,
    from_us,
    mask_phone,
    phone_info,
    to_us,
    window_table,
)

_SMS: Final = Channel.SMS
_PUSH: Final = Channel.PUSH
# The search for the earliest allowed instant moves forward every round; this bounds pathological data.
MAX_ROUNDS: Final = 64
# Dates are planned up to here: a hold or a due date beyond (or a due date before EARLIEST_YEAR) is
# treated as data that cannot be planned, never as a reason to compute with year-9999 dates.
EARLIEST_YEAR: Final = 1900
LATEST_YEAR: Final = 2200
LATEST: Final = to_us(datetime(LATEST_YEAR, 1, 1, tzinfo=UTC))

_STATUS_STOPS: Final = {
    LoanStatus.PAID: ("status.paid", "the loan is paid"),
    LoanStatus.CLOSED: ("status.closed", "the loan is closed"),
    LoanStatus.CHARGED_OFF: (
        "status.charged_off",
        "the loan is charged off; recovery is handled outside reminders",
    ),
}
_NO_FLAGS: Final = Loan.model_fields["flags"].default
_FLAG_STOPS: Final = (
    ("bankruptcy", "flag.bankruptcy", "a bankruptcy is recorded for the borrower"),
    ("deceased", "flag.deceased", "the borrower is recorded as deceased"),
    ("cease_and_desist", "flag.cease_and_desist", "the borrower asked the lender to stop contacting them"),
    ("attorney_represented", "flag.attorney_represented", "the borrower is represented by an attorney"),
)


@dataclass(slots=True)
class _Block:
    """One reason not to send at some instant, and the instant it stops holding (None: never)."""

    rule_id: str
    until: int | None
    text: Callable[[], str]
    cite: Callable[[], str | None]


@dataclass(slots=True)
class _Due:
    """The step to send at an instant: its index, the channel to use, and whether that is a fallback.

    Not frozen: a frozen dataclass sets each field through ``object.__setattr__``, and one is made at
    every instant searched; nothing changes one after it is made."""

    index: int
    channel: Channel
    fallback: bool


def decide(
    loan: Loan,
    borrower: Borrower,
    state: ContactState,
    now: datetime,
    rulebooks: Rulebooks,
    strategies: Strategies,
) -> Decision:
    """Decide SEND, DEFER (with the earliest allowed instant) or STOP for one loan at ``now``.

    Pure and deterministic. Never raises for data a validated ``Loan``/``Borrower`` can hold (bad phone,
    bad zone, unknown locale or jurisdiction give a decision saying so); raises ``ValueError`` only if
    ``now`` is naive.
    """
    now_us, stamp = _instant(now)
    phone = phone_info(borrower.phone) if borrower.phone else None
    # Which rulebooks apply (the loan's jurisdiction, the address and the phone's region), the candidate
    # zones, the strategy and their window table: the same for every loan of the same setting.
    setting = _setting(loan, borrower, phone, rulebooks, strategies)
    candidates = setting.candidates
    policy = candidates.policy
    out = _Outcome(loan, borrower, stamp, candidates.applied)

    # 1. What does not expire.
    stop = _permanent_stop(loan)
    if stop is not None:
        return out.stop(stop[0], stop[1], policy.citation(stop[0]))
    if loan.loan_id in state.disputed_loans:
        return out.stop(
            "dispute.open",
            "the borrower disputed this debt by reply: no collection message until verification is recorded",
            policy.citation("flag.dispute"),
        )
    if not policy.loan_country_covered:
        return out.stop(
            "jurisdiction.unknown",
            f"no rulebook covers the loan's jurisdiction {loan.jurisdiction} (rulebooks exist for "
            f"{', '.join(rulebooks.codes)}); nothing can be decided safely until the loan's data is fixed"
            + unknown_country_hint(candidates, loan.jurisdiction.split("-")[0]),
            policy.citation("jurisdiction.unknown"),
        )

    where = setting.where
    out.notes.extend(setting.notes)
    strategy = setting.strategy
    problems = _channel_problems(borrower, state, policy, phone)
    if not _any_usable(problems, strategy.channels):
        return _none_usable(out, borrower, policy, strategy, problems)

    # 2. What expires: find the earliest instant at which nothing blocks.
    case = _Case(loan, state, setting, problems)
    primary: _Block | None = None
    waited_for: list[str] = []
    at = now_us
    for _ in range(MAX_ROUNDS):
        block = case.first_block(at)
        if block is None:
            break
        if block.until is None or block.until >= LATEST:
            # Nothing can clear it (or not before the planning horizon): waiting would be pointless.
            return out.stop(block.rule_id, block.text(), block.cite())
        primary = primary or block
        if block.rule_id not in waited_for:
            waited_for.append(block.rule_id)
        # Every block's ``until`` is the earliest instant it alone allows, so jumping there skips nothing.
        at = block.until
    else:
        out.notes.append(f"the search for a free instant stopped after {MAX_ROUNDS} rounds; it resumes then")

    if primary is not None:
        return _deferred(out, primary, waited_for, at, where)

    # 3. Send the latest due step.
    due = case.last_due
    assert due is not None  # nothing blocks at ``now``, so a step is due
    return case.send(out, due, now_us)


# The last ``now`` decided at (the object itself, compared by identity), its microseconds and the UTC
# instant decisions are stamped with.
_LAST_NOW: tuple[object, int, datetime] = (None, 0, from_us(0))


def _instant(now: datetime) -> tuple[int, datetime]:
    """``now`` in microseconds and as the UTC instant a decision is stamped with; ``ValueError`` if it is
    naive. The tick's instant is asked for every loan of the tick: checked and converted once."""
    global _LAST_NOW
    last = _LAST_NOW
    if now is last[0]:
        return last[1], last[2]
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now_us = to_us(now)
    stamp = from_us(now_us)
    _LAST_NOW = (now, now_us, stamp)
    return now_us, stamp


@dataclass(frozen=True, slots=True)
class _Setting:
    """What a decision takes from where the loan and the borrower are, not from who they are: the
    candidate jurisdictions and their policy, the candidate zones, the strategy, the window table, and
    the notes these add to every reason."""

    candidates: Candidates
    where: Whereabouts
    strategy: Strategy
    table: WindowTable
    notes: tuple[str, ...]


# Settings by everything they are computed from; a tick's loans share a few hundred. Cleared whole
# when full.
_SETTINGS: dict[tuple[object, ...], _Setting] = {}
_SETTINGS_MAX: Final = 8192


def _setting(
    loan: Loan, borrower: Borrower, phone: PhoneInfo | None, rulebooks: Rulebooks, strategies: Strategies
) -> _Setting:
    """``candidate_jurisdictions``, ``candidate_zones``, ``Strategies.select`` and ``window_table``
    for this loan and borrower, through a table keyed by exactly what they read."""
    valid = phone is not None and phone.valid
    address = borrower.address
    key = (
        loan.jurisdiction,
        loan.product,
        address.country if address is not None else None,
        address.region if address is not None else None,
        borrower.time_zone,
        borrower.locale,
        phone.regions if valid else (),  # type: ignore[union-attr]
        phone.zones if valid else (),  # type: ignore[union-attr]
        rulebooks,
        strategies,
    )
    found = _SETTINGS.get(key)
    if found is None:
        found = _new_setting(loan, borrower, rulebooks, strategies)
        if len(_SETTINGS) >= _SETTINGS_MAX:
            _SETTINGS.clear()
        _SETTINGS[key] = found
    return found


def _new_setting(loan: Loan, borrower: Borrower, rulebooks: Rulebooks, strategies: Strategies) -> _Setting:
    """The setting of this loan and borrower, computed (``_setting`` without its table)."""
    candidates = candidate_jurisdictions(loan, borrower, rulebooks)
    where = candidate_zones(loan, borrower)
    notes = [*where.notes, *candidates.notes]
    if not _locale_known(borrower.locale):
        notes.append(f"borrower locale {borrower.locale!r} is not a known locale")
    return _Setting(
        candidates,
        where,
        strategies.select(loan),
        window_table(candidates.policy.windows, where.zones),
        tuple(notes),
    )


def _permanent_stop(loan: Loan) -> tuple[str, str] | None:
    if loan.status in _STATUS_STOPS:
        return _STATUS_STOPS[loan.status]
    flags = loan.flags
    if flags is not _NO_FLAGS:  # most loans have none: their flags are the model's default object
        for attribute, rule_id, reason in _FLAG_STOPS:
            if getattr(flags, attribute):
                return rule_id, reason
        dispute = flags.dispute
        if dispute is not None and dispute.until is None:
            return "flag.dispute", f"a dispute opened on {dispute.opened_on} is open with no end date"
    if loan.amount_due <= 0:
        return "status.nothing_due", "nothing is due on the loan"
    if not EARLIEST_YEAR <= loan.due_date.year < LATEST_YEAR - 1:
        return "data.due_date", f"the due date {loan.due_date} is outside the years the engine plans for"
    return None


@lru_cache(maxsize=512)
def _locale_known(tag: str) -> bool:
    try:
        Locale.parse(tag, sep="-")
    except (UnknownLocaleError, ValueError):
        return False
    return True


# The texts of a decision's rarer outcomes, apart from ``decide``: their comprehensions would make
# ``decide``'s locals cells, read more slowly on every decision.


def _none_usable(
    out: _Outcome, borrower: Borrower, policy: Policy, strategy: Strategy, problems: dict[Channel, list[str]]
) -> Decision:
    listed = "; ".join(f"{c.value}: {', '.join(problems[c])}" for c in sorted(strategy.channels))
    consent_refs = [
        policy.consent_citation(c) for c in sorted(strategy.channels) if _lacks_consent(c, borrower, policy)
    ]
    citation = "; ".join(r for r in consent_refs if r) or policy.citation("consent.none_usable")
    return out.stop(
        "consent.none_usable", f"no channel of strategy {strategy.name} can be used ({listed})", citation
    )


def _deferred(out: _Outcome, primary: _Block, waited_for: list[str], at: int, where: Whereabouts) -> Decision:
    others = [r for r in waited_for if r != primary.rule_id]
    reason = f"{primary.text()}. Earliest allowed: {fmt_local(at, where.primary)}"
    if others:
        reason += f" (also waited for: {', '.join(others)})"
    return out.defer(primary.rule_id, reason, primary.cite(), from_us(at))


def _any_usable(problems: dict[Channel, list[str]], channels: frozenset[Channel]) -> bool:
    # A loop, not ``any()`` over a generator: asked for every loan, at a sixth of the cost (timeit).
    for channel in channels:  # noqa: SIM110
        if not problems[channel]:
            return True
    return False


def _lacks_consent(channel: Channel, borrower: Borrower, policy: Policy) -> bool:
    if channel not in policy.consent_required:
        return False
    return not (borrower.consent.sms if channel is Channel.SMS else borrower.consent.push)


def _all_marked(
    endpoints: tuple[PushEndpoint, ...], invalid: frozenset[str], unusable: frozenset[str]
) -> bool:
    # Apart from ``_channel_problems``: the generator would make its locals cells.
    return all(e.arn in invalid or e.arn in unusable for e in endpoints)


def _channel_problems(
    borrower: Borrower, state: ContactState, policy: Policy, phone: PhoneInfo | None
) -> dict[Channel, list[str]]:
    """Why each channel cannot be used (an empty list: usable)."""
    invalid, unusable = borrower.invalid_contacts, state.unusable
    sms: list[str] = []
    if borrower.phone is None or phone is None:
        sms.append("no phone number")
    elif not phone.valid:
        sms.append(phone.problem or "invalid phone number")
    elif (invalid or unusable) and {borrower.phone, phone.e164} & (invalid | unusable):
        sms.append(f"number {mask_phone(borrower.phone)} is marked unusable")
    if _SMS in borrower.opt_outs:
        sms.append("the borrower opted out of texts")
    if state.sms_opted_out:
        sms.append("the number is opted out in the consent registry")
    required = policy.consent_required
    if _SMS in required and not borrower.consent.sms:  # _lacks_consent, inline
        sms.append("no prior consent to texts")
    push: list[str] = []
    if not borrower.push_endpoints:
        push.append("no push endpoint")
    elif (invalid or unusable) and _all_marked(borrower.push_endpoints, invalid, unusable):
        push.append("every push endpoint is marked unusable")
    if _PUSH in borrower.opt_outs:
        push.append("the borrower opted out of push")
    if _PUSH in required and not borrower.consent.push:
        push.append("no prior consent to electronic messages (push)")
    return {_SMS: sms, _PUSH: push}


def decide_without_history(
    loan: Loan, borrower: Borrower, at: datetime, rulebooks: Rulebooks, strategies: Strategies
) -> Decision:
    """Decide as if nothing had been sent, claimed, paused or disputed: the indexer's first look.

    Every block the contact history can add (caps, claimed steps, pauses, disputes) only comes later,
    so a DEFER's ``not_before`` here is a lower bound of the real earliest instant: indexing a loan
    there never looks too late, and spares the planner a night-time ``window.*`` or
    ``cadence.not_due`` DEFER that records nothing anyone needs.
    """
    return decide(loan, borrower, ContactState(borrower_id=borrower.borrower_id), at, rulebooks, strategies)


@lru_cache(maxsize=1 << 15)
def _due_instants(strategy: Strategy, zone_name: str, due_date: date) -> tuple[int, ...]:
    # A step falls due when its local date begins in the borrower's primary zone.
    return tuple(day_start(zone_name, due_date + timedelta(days=s.offset_days)) for s in strategy.steps)


@lru_cache(maxsize=1 << 15)
def _step_due_text(strategy: Strategy, index: int, zone_name: str, due_date: date) -> str:
    # The start of a SEND's reason: the same for every loan of the strategy, zone and due date.
    step = strategy.steps[index]
    step_day = due_date + timedelta(days=step.offset_days)
    return (
        f"step {step.name} of strategy {strategy.name} is due (since {step_day} in "
        f"{zone_name}; due date {due_date})"
    )


def _unclaimed_before(strategy: Strategy, index: int, claims: frozenset[str], prefix: str) -> tuple[str, ...]:
    """The names of the steps before ``index`` not claimed (``prefix`` + name not in ``claims``)."""
    if not claims:
        return _step_names(strategy, index)
    return tuple([s.name for s in strategy.steps[:index] if prefix + s.name not in claims])


@lru_cache(maxsize=1024)
def _step_names(strategy: Strategy, until: int) -> tuple[str, ...]:
    # The steps before ``until``: those a SEND skips when none was claimed.
    return tuple(s.name for s in strategy.steps[:until])


@lru_cache(maxsize=1024)
def _step_citation(strategy: Strategy, index: int) -> str:
    return f"strategy {strategy.name}, step {strategy.steps[index].name}"


@lru_cache(maxsize=1 << 15)
def _date_start_everywhere(zones: tuple[str, ...], day: date) -> int:
    # A promise "until a date" holds until that date has passed wherever the borrower may be.
    return max(day_start(z, day) for z in zones)


class _Outcome:
    """Builds the Decision for one loan at one instant, adding data notes to every reason."""

    __slots__ = ("at", "borrower", "jurisdictions", "loan", "notes")

    def __init__(
        self, loan: Loan, borrower: Borrower, at: datetime, jurisdictions: tuple[AppliedJurisdiction, ...]
    ) -> None:
        self.loan, self.borrower, self.at = loan, borrower, at
        self.jurisdictions = jurisdictions
        self.notes: list[str] = []

    def _make(
        self,
        kind: DecisionKind,
        rule_id: str,
        reason: str,
        citation: str | None,
        given: frozenset[str],
        **extra: object,
    ) -> Decision:
        if self.notes:
            reason = f"{reason}. Note: {'; '.join(self.notes)}"
        # Every value is the engine's own, of its field's type (``at`` an aware UTC datetime): built
        # as validation of the ``given`` fields would build it, without validating
        # (``dunning.models.trusted_given``), every field in the model's order.
        values: dict[str, object] = {
            "kind": kind,
            "loan_id": self.loan.loan_id,
            "borrower_id": self.borrower.borrower_id,
            "at": self.at,
            "rule_id": rule_id,
            "reason": reason,
            "citation": citation,
            "channel": None,
            "step": None,
            "template": None,
            "not_before": None,
            "follow_up_at": None,
            "skipped_steps": (),
            "jurisdictions": self.jurisdictions,
        }
        if extra:
            values.update(extra)
        return trusted_given(Decision, values, given)

    def stop(self, rule_id: str, reason: str, citation: str | None) -> Decision:
        return self._make(DecisionKind.STOP, rule_id, reason, citation, _STOP_FIELDS)

    def defer(self, rule_id: str, reason: str, citation: str | None, not_before: datetime) -> Decision:
        return self._make(DecisionKind.DEFER, rule_id, reason, citation, _DEFER_FIELDS, not_before=not_before)

    def send(
        self,
        rule_id: str,
        reason: str,
        citation: str | None,
        *,
        channel: Channel,
        step: str,
        template: str,
        follow_up_at: datetime | None,
        skipped_steps: tuple[str, ...],
    ) -> Decision:
        return self._make(
            DecisionKind.SEND,
            rule_id,
            reason,
            citation,
            _SEND_FIELDS,
            channel=channel,
            step=step,
            template=template,
            follow_up_at=follow_up_at,
            skipped_steps=skipped_steps,
        )


# The fields each kind of decision sets (the others keep their defaults).
_STOP_FIELDS: Final = frozenset(
    {"kind", "loan_id", "borrower_id", "at", "rule_id", "reason", "citation", "jurisdictions"}
)
_DEFER_FIELDS: Final = _STOP_FIELDS | {"not_before"}
_SEND_FIELDS: Final = _STOP_FIELDS | {"channel", "step", "template", "follow_up_at", "skipped_steps"}


class _Case:
    """Everything about one loan that the time-based checks need, computed once per decision."""

    __slots__ = (
        "caps",
        "claim_prefix",
        "claims",
        "due",
        "holds",
        "last_due",
        "loan",
        "policy",
        "problems",
        "route",
        "strategy",
        "table",
        "where",
    )

    def __init__(
        self, loan: Loan, state: ContactState, setting: _Setting, problems: dict[Channel, list[str]]
    ) -> None:
        policy, where, strategy = setting.candidates.policy, setting.where, setting.strategy
        self.loan, self.policy, self.where, self.strategy = loan, policy, where, strategy
        self.problems = problems
        self.caps = CapCounter(policy.caps, sends_of(state) if state.sends else (), loan.loan_id, where.zones)
        self.table: WindowTable = setting.table
        self.due = _due_instants(strategy, where.primary, loan.due_date)
        self.claims = state.claims
        self.claim_prefix = ContactState.claim_key(loan.loan_id, "")
        self.route: dict[Channel, tuple[Channel | None, bool]] = {}
        self.holds = self._holds(loan, state)
        # The step ``first_block`` found due when nothing blocked (the SEND's step).
        self.last_due: _Due | None = None

    def _route(self, wanted: Channel) -> tuple[Channel | None, bool]:
        # The channel a step meant for ``wanted`` goes out on, and whether that is the fallback.
        if not self.problems[wanted]:
            return wanted, False
        substitute = self.strategy.fallback_for(wanted)
        if substitute is not None and not self.problems[substitute]:
            return substitute, True
        return None, False

    def _engine_block(self, rule_id: str, until: int | None, text: Callable[[], str]) -> _Block:
        # The policy, not ``self``: a hold kept on ``self.holds`` would make a cycle for the collector.
        policy = self.policy
        return _Block(rule_id, until, text, lambda: policy.citation(rule_id))

    def _holds(self, loan: Loan, state: ContactState) -> list[_Block]:
        zones, flags = self.where.zones, loan.flags
        holds: list[_Block] = []
        if (
            flags.dispute is None
            and flags.promise_to_pay is None
            and flags.hardship_until is None
            and state.paused_until is None
        ):
            return holds

        def until_after(day: date, days: int = 0) -> int:
            # The instant the day after ``day`` (+ ``days``) has begun everywhere; dates beyond the
            # planning horizon hold for good.
            if day.year >= LATEST_YEAR - 1:
                return LATEST
            return _date_start_everywhere(zones, day + timedelta(days=days + 1))

        def hold(rule_id: str, until: int, text: str) -> None:
            holds.append(self._engine_block(rule_id, until, lambda: text))

        dispute = flags.dispute
        if dispute is not None and dispute.until is not None:
            hold(
                "flag.dispute",
                until_after(dispute.until),
                f"a dispute opened on {dispute.opened_on} is open until {dispute.until}",
            )
        if flags.promise_to_pay is not None:
            promise = flags.promise_to_pay
            hold(
                "flag.promise_to_pay",
                until_after(promise.until, promise.grace_days),
                f"the borrower promised to pay by {promise.until} ({promise.grace_days} day(s) of grace)",
            )
        if flags.hardship_until is not None:
            hold(
                "flag.hardship",
                until_after(flags.hardship_until),
                f"hardship arrangement until {flags.hardship_until}",
            )
        if state.paused_until is not None:
            paused = to_us(state.paused_until)
            hold(
                "pause.inbound",
                paused,
                f"contact is paused after the borrower's reply until {fmt_utc(paused)}",
            )
        return holds

    def cadence(self, at: int) -> _Block | _Due:
        """The step to send at ``at`` (the latest due one), or why there is none and until when."""
        # The blocks' texts are built by the methods below: closures here would make every local of
        # this hot function a cell.
        index = bisect_right(self.due, at) - 1
        if index < 0:
            return self._first_not_due()
        step = self.strategy.steps[index]
        claims = self.claims  # is the step claimed (sent, or being sent) for this loan?
        if claims and self.claim_prefix + step.name in claims:
            return self._already_sent(index)
        route = self.route.get(step.channel)
        if route is None:
            route = self.route[step.channel] = self._route(step.channel)
        channel, fallback = route
        if channel is not None:
            return _Due(index, channel, fallback)
        return self._unusable(index)

    def _first_not_due(self) -> _Block:
        steps, due, zone_name = self.strategy.steps, self.due, self.where.primary
        return self._engine_block(
            "cadence.not_due",
            due[0],
            lambda: f"the first step {steps[0].name} falls due {fmt_local(due[0], zone_name)}",
        )

    def _next_step(self, index: int) -> str:
        steps, due = self.strategy.steps, self.due
        return (
            f"the next step {steps[index + 1].name} falls due {fmt_local(due[index + 1], self.where.primary)}"
        )

    def _already_sent(self, index: int) -> _Block:
        steps, due = self.strategy.steps, self.due
        step, last = steps[index], index == len(steps) - 1
        if last:
            return self._engine_block(
                "cadence.end",
                None,
                lambda: f"strategy {self.strategy.name} is complete (its last step {step.name} was sent)",
            )
        return self._engine_block(
            "cadence.not_due",
            due[index + 1],
            lambda: f"step {step.name} was already sent; {self._next_step(index)}",
        )

    def _unusable(self, index: int) -> _Block:
        steps, due = self.strategy.steps, self.due
        step, last = steps[index], index == len(steps) - 1

        def unusable() -> str:
            why = ", ".join(self.problems[step.channel])
            return f"step {step.name} needs {step.channel.value} ({why}) and no allowed fallback can be used"

        if last:
            return self._engine_block("cadence.end", None, lambda: f"{unusable()}; it was the last step")
        return self._engine_block(
            "channel.unavailable", due[index + 1], lambda: f"{unusable()}; {self._next_step(index)}"
        )

    def first_block(self, at: int) -> _Block | None:
        """The first reason (in reporting order) not to send at ``at``, or None if nothing blocks."""
        for hold in self.holds:
            if hold.until is None or at < hold.until:
                return hold
        step = self.cadence(at)
        if isinstance(step, _Block):
            return step
        caps = self.caps.blocks(step.channel, at)
        if caps:
            return self._cap_block(step, caps)
        if not self.table.allows(at):
            return self._window_block(at)
        self.last_due = step
        return None

    def _cap_block(self, step: _Due, caps: list[CapBlock]) -> _Block:
        # Report the first cap (law before lender); wait for the one that frees up last, or for the
        # next step if that comes first: it may go out on a channel these caps do not count. (Not in
        # ``first_block``: the text's closure would make its locals cells.)
        until = max(c.until for c in caps)
        if step.index + 1 < len(self.due):
            until = min(until, self.due[step.index + 1])
        cap = caps[0].cap.ref
        return _Block(cap.rule_id, until, lambda: "; ".join(c.describe() for c in caps), cap.cite)

    def _window_block(self, at: int) -> _Block:
        opens = self.table.next_allowed(at)
        zones = self.where.label
        if opens is None:
            return self._engine_block(
                "window.no_common_hours",
                None,
                lambda: f"no instant in the next year is inside the hours of every candidate zone ({zones})",
            )
        table = self.table
        block = table.blocking(at)
        assert block is not None
        ref = block.ref
        return _Block(
            ref.rule_id if ref else "window.quiet_hours",
            opens,
            lambda: f"{table.blocking_text(at)} (candidate zones: {zones})",
            lambda: ref.cite() if ref else None,
        )

    def follow_up(self, index: int) -> int:
        """When to look at the loan again for step ``index``: the first instant, from its due instant
        (local midnight), that is inside the contact window in every candidate zone.

        Only the windows, which do not depend on what is sent meanwhile: a cap or a hold is found then
        and deferred as usual. Looking at the loan at midnight would only record a ``window.*`` DEFER
        that nobody needs (three write units for the cadence move and one for the decision).
        """
        due = self.due[index]
        if self.table.allows(due):
            return due
        opens = self.table.next_allowed(due)
        return due if opens is None else opens

    def send(self, out: _Outcome, due: _Due, at: int) -> Decision:
        """The SEND decision for the step that is due at ``at``."""
        steps = self.strategy.steps
        step = steps[due.index]
        skipped = _unclaimed_before(self.strategy, due.index, self.claims, self.claim_prefix)
        follow_up = from_us(self.follow_up(due.index + 1)) if due.index + 1 < len(steps) else None
        reason = _step_due_text(self.strategy, due.index, self.where.primary, self.loan.due_date)
        if due.fallback:
            why = ", ".join(self.problems[step.channel])
            reason += f"; {step.channel.value} cannot be used ({why}), so {due.channel.value} stands in"
        reason += (
            f"; inside contact hours in every candidate zone ({self.table.local_times(at)}); within all caps"
        )
        if skipped:
            reason += f"; catch-up: earlier unsent step(s) {', '.join(skipped)} are skipped"
        return out.send(
            "channel.fallback" if due.fallback else "cadence.step_due",
            reason,
            _step_citation(self.strategy, due.index),
            channel=due.channel,
            step=step.name,
            template=step.template,
            follow_up_at=follow_up,
            skipped_steps=skipped,
        )
