"""The planner's short ways give what the long ways give, on random valid, unusual and invalid input.

- ``items.loan_from_item`` / ``borrower_from_item`` validate an item of contract attributes as it is;
  ``validated_loan`` / ``validated_borrower`` pick and convert it first (the way every item went before).
  Same model (field for field, fields set included) or the same error, whatever the item.
- ``models.trusted`` builds the models the engine and the contact state make without validating them;
  validating the same values gives the same instances (``contact_state`` with ids of any kind, and
  ``decide`` over random books).
- The whole path of bench/planner_path.py (items → decisions → jobs, cadence and ledger items, or the
  recorded error of an invalid item) is the same both ways over a book with broken items in it.
- The engine's tables and guards (settings per loan and borrower, a loan without flags, skipped steps
  without claims, the window table's answers, the tick's instant and instants parsed and converted
  once) against the
  computation each stands for; caps counted by bisection against counting every send; jobs built
  without validation against validating them (near every constraint); policies merged once per set of
  rulebooks against a policy merged alone; ``Rulebooks.applicable`` against testing every rulebook.
  Loosening a guard of any of these makes a test here fail.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from unittest import mock

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import dunning.adapters.contact as contact_module
import dunning.adapters.reads as reads_module
import dunning.caps as caps_module
import dunning.engine as engine_module
import dunning.items as items_module
import dunning.jobs as jobs_module
import dunning.jurisdictions as jurisdictions_module
from dunning.adapters.contact import contact_state
from dunning.caps import CapCounter, Sent, sends_of
from dunning.items import (
    borrower_from_item,
    loan_from_item,
    validated_borrower,
    validated_loan,
)
from dunning.models import Channel, ContactState, is_model_id
from dunning.rules import Cap, Rulebooks, RuleRef
from dunning.zones import WindowTable, day_start

# ---- comparing results exactly --------------------------------------------------------------------


def shape(value: Any) -> Any:
    """A value with everything equality forgets: types, field order, fields set, Decimal exponents."""
    if isinstance(value, BaseModel):
        return (
            type(value).__name__,
            sorted(value.model_fields_set),
            [(k, shape(v)) for k, v in value.__dict__.items()],
            value.__pydantic_extra__,
            value.__pydantic_private__,
        )
    if isinstance(value, tuple | list):
        return (type(value).__name__, [shape(v) for v in value])
    if isinstance(value, frozenset | set):
        return (type(value).__name__, sorted(repr(shape(v)) for v in value))
    if isinstance(value, dict):
        return ("dict", [(k, shape(v)) for k, v in value.items()])
    if isinstance(value, datetime):
        return ("datetime", repr(value), repr(value.tzinfo))
    return (type(value).__name__, repr(value))


def outcome(parse: Callable[[Any], Any], item: Any) -> Any:
    try:
        return ("ok", shape(parse(item)))
    except Exception as exc:  # the same exception, whatever it is (a TypeError included)
        return ("raised", type(exc).__name__, str(exc))


def validating(model: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    """``trusted`` (and ``trusted_whole``) the long way."""
    return model.model_validate(values)


def validating_given(model: type[BaseModel], values: dict[str, Any], given: frozenset[str]) -> BaseModel:
    """``trusted_given`` the long way: only the given fields are validated, the others are defaults."""
    return model.model_validate({k: v for k, v in values.items() if k in given})


class Forgetful(dict):  # type: ignore[type-arg]
    """A cache that keeps nothing: every lookup misses, so every value is computed."""

    def get(self, key: Any, default: Any = None) -> Any:
        return default

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def counted_blocks(self: CapCounter, channel: Channel, us: int) -> list[Any]:
    """``CapCounter.blocks`` counting every send of a rolling window (as before the bisection)."""
    found: list[Any] = []
    for cap in self.caps:
        if channel not in cap.channels:
            continue
        times = [
            s.at
            for s in self.sends
            if s.channel in cap.channels and (cap.scope == "borrower" or s.loan_id == self.loan_id)
        ]
        if len(times) < cap.limit:
            continue
        if cap.period_us is not None:
            inside = [t for t in times if t > us - cap.period_us]
            if len(inside) >= cap.limit:
                oldest = inside[len(inside) - cap.limit]
                found.append(caps_module.CapBlock(cap, len(inside), oldest + cap.period_us, oldest=oldest))
            continue
        worst = None
        for zone_name in self.zones:
            month = caps_module._month(us, zone_name)
            count = sum(1 for t in times if caps_module._month(t, zone_name) == month)
            if count >= cap.limit:
                until = caps_module._month_start_after(us, zone_name)
                if worst is None or until > worst.until:
                    worst = caps_module.CapBlock(cap, count, until, zone=zone_name)
        if worst is not None:
            found.append(worst)
    return found


def every_rulebook(
    self: Rulebooks, jurisdiction: str, address: str | None, phone: tuple[str, ...] = ()
) -> Any:
    """``Rulebooks.applicable`` testing every rulebook's code against every target."""
    targets = [t.split("-") for t in (jurisdiction, address, *phone) if t]
    codes = [c for c in self.codes if any(t[: len(c.split("-"))] == c.split("-") for t in targets)]
    return tuple(sorted(codes, key=lambda c: (len(c.split("-")), c)))


def merged_alone(self: Rulebooks, jurisdiction: str, address: str | None, phone: tuple[str, ...] = ()) -> Any:
    """``Rulebooks.policy`` merged for this key alone, remembering nothing."""
    codes = self.applicable(jurisdiction, address, phone)
    country = jurisdiction.split("-")[0]
    covered = any(c.split("-")[0] == country for c in self.applicable(jurisdiction, address))
    return self._merge(codes, covered)


def every_stop(loan: Any) -> tuple[str, str] | None:
    """``engine._permanent_stop`` looking at every flag of every loan."""
    if loan.status in engine_module._STATUS_STOPS:
        return engine_module._STATUS_STOPS[loan.status]
    for attribute, rule_id, reason in engine_module._FLAG_STOPS:
        if getattr(loan.flags, attribute):
            return rule_id, reason
    dispute = loan.flags.dispute
    if dispute is not None and dispute.until is None:
        return "flag.dispute", f"a dispute opened on {dispute.opened_on} is open with no end date"
    if loan.amount_due <= 0:
        return "status.nothing_due", "nothing is due on the loan"
    if not engine_module.EARLIEST_YEAR <= loan.due_date.year < engine_module.LATEST_YEAR - 1:
        return "data.due_date", f"the due date {loan.due_date} is outside the years the engine plans for"
    return None


def converted(now: datetime) -> tuple[int, datetime]:
    """``engine._instant`` converting every ``now`` it is given."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now_us = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return now_us, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_us)


def uncached(function: Any) -> Any:
    """The function an ``lru_cache`` wraps."""
    return function.__wrapped__


@contextmanager
def long_ways() -> Iterator[None]:
    """Every short way of the planner's path replaced by the long way it stands for."""
    patches = [
        mock.patch.object(reads_module, "loan_from_item", validated_loan),
        mock.patch.object(reads_module, "borrower_from_item", validated_borrower),
        mock.patch.object(contact_module, "trusted_whole", validating),
        mock.patch.object(engine_module, "trusted_given", validating_given),
        mock.patch.object(
            engine_module,
            "_setting",
            lambda loan, borrower, phone, rulebooks, strategies: engine_module._new_setting(
                loan, borrower, rulebooks, strategies
            ),
        ),
        mock.patch.object(engine_module, "_permanent_stop", every_stop),
        mock.patch.object(
            engine_module,
            "_unclaimed_before",
            lambda strategy, index, claims, prefix: tuple(
                s.name for s in strategy.steps[:index] if prefix + s.name not in claims
            ),
        ),
        mock.patch.object(engine_module, "_step_due_text", uncached(engine_module._step_due_text)),
        mock.patch.object(engine_module, "_step_citation", uncached(engine_module._step_citation)),
        mock.patch.object(WindowTable, "allows", WindowTable.allows_at),
        mock.patch.object(WindowTable, "next_allowed", WindowTable.next_allowed_at),
        mock.patch.object(engine_module, "_instant", converted),
        mock.patch.object(jobs_module, "_valid_as_is", lambda values: False),
        mock.patch.object(items_module, "_PARSED", Forgetful()),
        mock.patch.object(caps_module, "_SENT_US", Forgetful()),
        mock.patch.object(caps_module, "_CAP_NAMES", Forgetful()),
        mock.patch.object(CapCounter, "blocks", counted_blocks),
        mock.patch.object(jurisdictions_module, "_candidates", uncached(jurisdictions_module._candidates)),
        mock.patch.object(Rulebooks, "applicable", every_rulebook),
        mock.patch.object(Rulebooks, "policy", merged_alone),
    ]
    with ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


# ---- random items -------------------------------------------------------------------------------

numbers = st.one_of(
    st.decimals(min_value=-10, max_value=10**10, places=2, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=-10, max_value=10**10, places=0, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-5, max_value=10**10),
    st.sampled_from(
        [
            Decimal("-0"),
            Decimal("-0.00"),
            Decimal("0.00"),
            Decimal("5E+1"),
            Decimal("1.0"),
            Decimal("12.345"),
            Decimal("1000000000"),
            Decimal("1000000000.01"),
            Decimal("NaN"),
            Decimal("Infinity"),
            Decimal(1),
            Decimal(0),
            Decimal(86400),
            True,
            False,
        ]
    ),
)
# What DynamoDB numbers look like to the items' parsers, the edges first.
amounts = st.one_of(
    st.sampled_from(
        [Decimal("-0"), Decimal("-0.00"), Decimal("0"), Decimal("100"), Decimal("1E+2"), Decimal("0.001")]
    ),
    numbers,
)
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "L-1\n", "B_2", "x" * 129, "漢字", "null", "true", "2026-03-02", "12.00"]),
)
junk = st.one_of(st.none(), numbers, texts, st.lists(texts, max_size=2), st.frozensets(texts, max_size=2))
ids = st.one_of(st.sampled_from(["L-1", "B.2", "a:b_c-9", "x" * 128]), texts)
dates = st.one_of(
    st.dates(min_value=date(1899, 1, 1), max_value=date(2200, 1, 1)).map(date.isoformat),
    st.sampled_from(["2026-02-30", "2026-03-02T00:00:00", "2026-03-02T10:00:00Z", "20260302", "0000-01-01"]),
    st.sampled_from([Decimal(0), Decimal(86400), 86400, Decimal("-0"), date(2026, 3, 2)]),
    junk,
)


def maybe(value: st.SearchStrategy[Any], other: st.SearchStrategy[Any] = junk) -> st.SearchStrategy[Any]:
    """Mostly ``value``, sometimes anything."""
    return st.one_of(value, value, value, other)


def record(fields: dict[str, st.SearchStrategy[Any]], extra: list[str]) -> st.SearchStrategy[Any]:
    """Dicts of some of ``fields`` (each drawn or left out), sometimes with an attribute from ``extra``."""
    base = st.fixed_dictionaries({}, optional=fields)
    strange = st.dictionaries(st.sampled_from(extra), junk, max_size=1) if extra else st.just({})
    return st.tuples(base, st.one_of(st.just({}), st.just({}), strange)).map(lambda p: {**p[0], **p[1]})


@st.composite
def changed(
    draw: st.DrawFn, valid: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]], extra: list[str]
) -> dict[str, Any]:
    """A valid item with up to three attributes redrawn, dropped or added (an unknown one)."""
    item = dict(valid)
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        if draw(st.integers(0, 5)) == 0:
            item.pop(name, None)
        else:
            item[name] = draw(fields[name])
    if draw(st.integers(0, 5)) == 0:
        item[draw(st.sampled_from(extra))] = draw(junk)
    return item


bools = maybe(st.booleans(), st.one_of(numbers, st.sampled_from(["true", "yes", 1, 0, None])))
flags = record(
    {
        "dispute": maybe(record({"opened_on": maybe(dates), "until": maybe(dates)}, ["reason"])),
        "promise_to_pay": maybe(
            record({"until": maybe(dates), "grace_days": maybe(st.integers(0, 60).map(Decimal))}, [])
        ),
        "hardship_until": maybe(dates),
        "cease_and_desist": bools,
        "bankruptcy": bools,
        "deceased": bools,
        "attorney_represented": bools,
    },
    ["ceasee_and_desist", "other"],
)
loan_fields: dict[str, st.SearchStrategy[Any]] = {
    "loan_id": maybe(ids),
    "borrower_id": maybe(ids),
    "currency": maybe(st.sampled_from(["USD", "GBP", "CAD", "XXX", "usd", "EURO"])),
    "amount_due": maybe(numbers),
    "due_date": maybe(dates),
    "status": maybe(st.sampled_from(["ACTIVE", "PAID", "CLOSED", "CHARGED_OFF", "paid"])),
    "product": maybe(st.sampled_from(["default", "bnpl", "x" * 65])),
    "jurisdiction": maybe(st.sampled_from(["US", "US-NY-NYC", "CA-ON", "GB", "us", "US\n", "USA"])),
    "flags": maybe(flags),
}
VALID_LOAN = {
    "loan_id": "L-1",
    "borrower_id": "B-1",
    "currency": "USD",
    "amount_due": Decimal("250.00"),
    "due_date": "2026-02-23",
    "jurisdiction": "US-NY",
}
loan_items = changed(
    VALID_LOAN,
    loan_fields,
    ["flag", "amount_dues", "notes", "lender_ref"],
)
arns = st.sampled_from(
    [
        "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/dunning/1",
        "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/dunning/" + "x" * 500,
        "arn:aws:sns:us-east-1:12345678901:endpoint/GCM/1",
        "not-an-arn",
    ]
)
borrower_fields: dict[str, st.SearchStrategy[Any]] = {
    "borrower_id": maybe(ids),
    "first_name": maybe(texts),
    "locale": maybe(st.sampled_from(["en-US", "fr-CA", "zh-Hans-CN", "EN_us", "e"])),
    "time_zone": maybe(st.sampled_from(["America/New_York", "Nowhere/Invalid", "", "x" * 65])),
    "address": maybe(
        st.one_of(
            st.just(""),
            record(
                {"country": maybe(st.sampled_from(["US", "GB", "us"])), "region": maybe(texts)},
                ["zip"],
            ),
        )
    ),
    "phone": maybe(st.sampled_from(["+12125550142", "", "+1" + "2" * 40, "tel:+1212"])),
    "push_endpoints": maybe(
        st.lists(
            record(
                {"arn": maybe(arns), "platform": maybe(st.sampled_from(["GCM", "APNS", "WNS"]))},
                ["token"],
            ),
            max_size=2,
        )
    ),
    "consent": maybe(record({"sms": bools, "push": bools}, ["email"])),
    "opt_outs": maybe(st.sets(st.sampled_from(["sms", "push", "fax"]), min_size=1, max_size=2)),
    "invalid_contacts": maybe(st.sets(texts, min_size=1, max_size=2)),
}
borrower_items = changed(
    {
        "borrower_id": "B-1",
        "first_name": "Ada",
        "time_zone": "America/New_York",
        "phone": "+12125550142",
        "address": {"country": "US", "region": "NY"},
        "consent": {"sms": True},
    },
    borrower_fields,
    ["optouts", "consents", "nickname"],
)


@settings(max_examples=1500, deadline=None)
@example({**VALID_LOAN, "amount_due": Decimal("-0")})
@example({**VALID_LOAN, "flags": {"promise_to_pay": {"until": "2026-03-01", "grace_days": Decimal(2)}}})
@given(loan_items)
def test_a_loan_item_parses_the_same_both_ways(item: dict[str, Any]) -> None:
    assert outcome(loan_from_item, item) == outcome(validated_loan, item)


@settings(max_examples=1500, deadline=None)
@example({"borrower_id": "B-1", "time_zone": "", "phone": ""})
@given(borrower_items)
def test_a_borrower_item_parses_the_same_both_ways(item: dict[str, Any]) -> None:
    assert outcome(borrower_from_item, item) == outcome(validated_borrower, item)


def test_the_id_check_is_the_models() -> None:
    for value in ["L-1", "a:b_c.9", "x" * 128]:
        assert is_model_id(value)
    for value in ["", "L-1\n", "L#1", "x" * 129, "漢字", "L 1"]:
        assert not is_model_id(value)


# ---- contact state ----------------------------------------------------------------------------------

instants = st.one_of(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 6, 1), timezones=st.just(UTC)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
    ),
    st.sampled_from(["2026-03-02T09:00:00+05:00", "2026-03-02T09:00:00.123456Z"]),
)
sends = st.fixed_dictionaries(
    {
        "at": instants,
        "channel": st.sampled_from(["sms", "push"]),
        "loan_id": maybe(ids, st.sampled_from(["L#1", "", "x" * 200])),
        "step": st.sampled_from(["D-3", "D+1", "D+7"]),
    }
)
contacts = st.fixed_dictionaries(
    {},
    optional={
        "version": st.integers(0, 50).map(Decimal),
        "sends": st.lists(sends, max_size=4),
        "claims": st.sets(st.sampled_from(["L-1#D-3", "L-2#D+1", "L-1#D+7"]), min_size=1),
        "paused_until": instants,
        "unusable": st.sets(st.sampled_from(["+12125550142", "arn:x"]), min_size=1),
        "dispute#L-1": st.just("2026-03-01T00:00:00Z"),
        "sms_block#+12125550142": st.just("2026-03-01T00:00:00Z"),
    },
)


@settings(max_examples=400, deadline=None)
@given(
    maybe(ids, st.sampled_from(["B#1", ""])),
    st.one_of(st.none(), contacts),
    st.one_of(st.none(), st.fixed_dictionaries({}, optional={"sms_opted_out": st.booleans()})),
    st.sampled_from([None, "+12125550142"]),
)
def test_the_contact_state_is_the_same_both_ways(
    borrower_id: Any, contact: dict[str, Any] | None, consent: dict[str, Any] | None, phone: str | None
) -> None:
    if not isinstance(borrower_id, str):
        borrower_id = str(borrower_id)
    short = outcome(lambda c: contact_state(borrower_id, c, consent, phone), contact)
    with long_ways():
        long = outcome(lambda c: contact_state(borrower_id, c, consent, phone), contact)
    assert short == long


# ---- decisions and the planner's whole path ------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32))
def test_decisions_are_the_same_both_ways(seed: int) -> None:
    from bench.decisions import generate
    from dunning.engine import decide
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    rulebooks, strategies = load_rulebooks(), load_strategies()
    cases = generate(40, seed=seed)
    short = [shape(decide(*case, rulebooks, strategies)) for case in cases]
    with long_ways():
        long = [shape(decide(*case, rulebooks, strategies)) for case in cases]
    assert short == long


def _broken(book: dict[str, Any], seed: int) -> dict[str, Any]:
    """The book with some items broken as lenders break them (and some made unusual but valid)."""
    rng = random.Random(seed)
    loans, borrowers = dict(book["loans"]), dict(book["borrowers"])
    for loan_id in rng.sample(sorted(loans), k=len(loans) // 5):
        item = dict(loans[loan_id])
        name, value = rng.choice(
            [
                ("amount_due", Decimal("-0")),
                ("amount_due", Decimal("12.345")),
                ("amount_due", Decimal(100)),
                ("amount_due", "12.00"),
                ("due_date", "2026-02-30"),
                ("due_date", Decimal(86400)),
                ("flag", {"cease_and_desist": True}),
                ("lender_ref", "ours"),
                ("flags", {"bankruptcy": Decimal(1)}),
                ("flags", {"promise_to_pay": {"until": "2026-03-10", "grace_days": Decimal(2)}}),
                ("currency", "XXX"),
                ("jurisdiction", "US\n"),
            ]
        )
        item[name] = value
        loans[loan_id] = item
    for borrower_id in rng.sample(sorted(borrowers), k=len(borrowers) // 5):
        item = dict(borrowers[borrower_id])
        name, value = rng.choice(
            [
                ("time_zone", ""),
                ("phone", ""),
                ("address", ""),
                ("locale", "EN_us"),
                ("opt_outs", {"sms", "fax"}),
                ("opt_outs", {"push"}),
                ("consent", {"sms": "yes"}),
                ("consents", {"sms": True}),
                ("nickname", "Al"),
                ("push_endpoints", [{"arn": "not-an-arn", "platform": "GCM"}]),
            ]
        )
        item[name] = value
        borrowers[borrower_id] = item
    return dict(book, loans=loans, borrowers=borrowers)


def _path(book: dict[str, Any]) -> list[Any]:
    """bench/planner_path.py's loop, keeping everything it makes: each loan's decision, job JSON and
    write items, or the error its items raised."""
    from bench.planner_path import TICK, _cadence
    from dunning.adapters.cadence import CadenceStore
    from dunning.adapters.ledger import Ledger
    from dunning.adapters.reads import Snapshot
    from dunning.engine import decide
    from dunning.jobs import job_from_decision
    from dunning.models import DecisionKind
    from dunning.rules import load_rulebooks
    from dunning.strategy import load_strategies

    rulebooks, strategies = load_rulebooks(), load_strategies()
    snapshot = Snapshot(book["loans"], book["borrowers"], book["contacts"], book["consents"])
    cadence, ledger = CadenceStore(None, "State", 8), Ledger(None, "Ledger", 400)  # type: ignore[arg-type]
    out: list[Any] = []
    for entry in book["entries"]:
        try:
            subject = snapshot.subject(entry.loan_id)
        except Exception as exc:
            out.append(("raised", type(exc).__name__, str(exc)))
            continue
        decision = decide(subject.loan, subject.borrower, subject.state, TICK, rulebooks, strategies)
        phone = subject.borrower.phone
        made: list[Any] = [shape(decision), shape(subject.state)]
        if decision.kind == DecisionKind.SEND:
            made.append(job_from_decision(decision, ttl=timedelta(minutes=30), phone=phone).to_json())
        else:
            made.append(ledger.decision_op(decision))
        made.append(_cadence(cadence, decision, decision.not_before, phone))
        out.append(made)
    return out


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32))
def test_the_planner_path_is_the_same_both_ways(seed: int) -> None:
    from bench.planner_path import generate

    book = _broken(generate(150, seed=seed), seed)
    short = _path(book)
    with long_ways():
        long = _path(book)
    assert short == long
    assert any(isinstance(r, tuple) for r in short)
    assert any(isinstance(r, list) for r in short)


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.sampled_from(
            ["+12125550142", "+441212345678", "+8613123456789", "+33612345678", "+1555", "+1-212-555-0142"]
        ),
        st.text(alphabet="+0123456789", min_size=1, max_size=16),
    )
)
def test_remembered_phone_facts_are_the_text_they_would_be_made_into(raw: str) -> None:
    from dunning.zones import clear_phone_cache, phone_facts, remember_phone_facts

    clear_phone_cache()
    made = phone_facts(raw)
    clear_phone_cache()
    remember_phone_facts(raw, made)
    assert phone_facts(raw) == made
    clear_phone_cache()


# ---- jobs -------------------------------------------------------------------------------------------

TICK_AT = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
# A valid SEND's fields, and for each a few values near or past its constraint (types included).
job_edges: dict[str, st.SearchStrategy[Any]] = {
    "loan_id": st.sampled_from(["L#1", "", "x" * 128, "x" * 129, "L-1\n"]),
    "borrower_id": st.sampled_from(["B 1", "x" * 128, "x" * 129, ""]),
    "at": st.sampled_from(
        [TICK_AT.astimezone(timezone(timedelta(hours=-5))), TICK_AT.replace(tzinfo=None), TICK_AT]
    ),
    "rule_id": st.sampled_from(["", "r" * 128, "r" * 129]),
    "reason": st.sampled_from(["", "r" * 1000, "r" * 1001]),
    "channel": st.sampled_from([Channel.PUSH, "sms"]),
    "step": st.sampled_from(["", "s" * 64, "s" * 65, "D+1"]),
    "template": st.sampled_from([None, "", "t" * 128, "t" * 129]),
}


@st.composite
def send_decisions(draw: st.DrawFn) -> Any:
    """SEND decisions as the engine makes them, with up to two fields at or past an edge (built without
    validation, as no engine makes them)."""
    from dunning.models import Decision, DecisionKind

    values: dict[str, Any] = {
        "kind": DecisionKind.SEND,
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "at": TICK_AT,
        "rule_id": "cadence.step_due",
        "reason": "due",
        "channel": Channel.SMS,
        "step": "D+1",
        "template": None,
    }
    for name in draw(st.lists(st.sampled_from(sorted(job_edges)), max_size=2, unique=True)):
        values[name] = draw(job_edges[name])
    return Decision.model_construct(**values)


@settings(max_examples=800, deadline=None)
@given(
    send_decisions(),
    st.one_of(
        st.just(timedelta(minutes=30)),
        st.sampled_from([timedelta(0), timedelta(seconds=-1), timedelta(microseconds=1)]),
    ),
    st.sampled_from([None, "+12125550142", "", "+1" + "2" * 31, "+1" + "2" * 30]),
)
def test_a_job_is_the_same_both_ways(decision: Any, ttl: timedelta, phone: str | None) -> None:
    from dunning.jobs import job_from_decision

    def job(d: Any) -> Any:
        made = job_from_decision(d, ttl=ttl, phone=phone)
        return shape(made), made.to_json()

    short = outcome(job, decision)
    with long_ways():
        long = outcome(job, decision)
    assert short == long


# ---- caps ---------------------------------------------------------------------------------------------

HOUR_US = 3_600_000_000
BASE_US = 1_772_400_000_000_000  # 2026-03-01 21:20 UTC
cap_periods = st.sampled_from([("24h", 24 * HOUR_US), ("7d", 7 * 24 * HOUR_US), ("calendar_month", None)])
caps_drawn = st.lists(
    st.builds(
        lambda limit, period, scope, channels, n: Cap(
            RuleRef("US", f"cap.c{n}", "a cap", None), limit, period[0], period[1], scope, channels
        ),
        st.integers(1, 4),
        cap_periods,
        st.sampled_from(["borrower", "debt"]),
        st.sampled_from([frozenset({Channel.SMS}), frozenset({Channel.PUSH}), frozenset(Channel)]),
        st.integers(0, 99),
    ),
    max_size=5,
)
# Sends relative to the instant asked: often exactly one period before it (the edge of the window).
DAY_US = 24 * HOUR_US
send_offsets = st.one_of(
    st.sampled_from([-DAY_US, -DAY_US + 1, -DAY_US - 1, -7 * DAY_US, -7 * DAY_US + 1, 0, 1, -HOUR_US]),
    st.integers(-40 * 24, 72).map(lambda h: h * HOUR_US),
)


@settings(max_examples=600, deadline=None)
@given(
    caps_drawn,
    st.lists(
        st.tuples(send_offsets, st.sampled_from(list(Channel)), st.sampled_from(["L-1", "L-2"])), max_size=8
    ),
    st.sampled_from(list(Channel)),
    st.integers(-24 * 60, 24 * 60).map(lambda h: BASE_US + h * HOUR_US),
    st.sampled_from([("America/New_York",), ("Europe/London", "America/Los_Angeles")]),
)
def test_caps_count_the_same_both_ways(
    caps: list[Cap], sends: list[tuple[int, Channel, str]], channel: Channel, us: int, zones: tuple[str, ...]
) -> None:
    history = tuple(sorted(Sent(us + offset, sent_on, loan) for offset, sent_on, loan in sends))
    counter = CapCounter(caps, history, "L-1", zones)
    short = [repr(b) for b in counter.blocks(channel, us)]
    long = [repr(b) for b in counted_blocks(CapCounter(caps, history, "L-1", zones), channel, us)]
    assert short == long


def test_sends_are_oldest_first_and_converted_once() -> None:
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    state = ContactState(
        borrower_id="B-1",
        sends=(
            {"at": at, "channel": "sms", "loan_id": "L-2", "step": "D+1"},  # type: ignore[arg-type]
            {"at": at - timedelta(days=1), "channel": "push", "loan_id": "L-1", "step": "D-1"},  # type: ignore[arg-type]
        ),
    )
    once = sends_of(state)
    with long_ways():
        again = sends_of(state)
    assert once == again
    assert [s.at for s in once] == sorted(s.at for s in once)
    assert once[0].at == day_start("UTC", date(2026, 2, 28)) + 9 * HOUR_US


# ---- rulebooks and policies ---------------------------------------------------------------------------

jurisdiction_codes = st.sampled_from(
    ["US", "US-NY", "US-NY-NYC", "US-MA", "US-CA", "CA-ON", "CA-QC", "GB", "US-ZZ", "CN", "US-", "-US", "U"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            jurisdiction_codes,
            st.one_of(st.none(), jurisdiction_codes),
            st.lists(jurisdiction_codes, max_size=2).map(tuple),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_policies_are_merged_the_same_both_ways(keys: list[tuple[str, str | None, tuple[str, ...]]]) -> None:
    from dunning.rules import load_rulebooks

    shared = load_rulebooks()
    rulebooks = Rulebooks({c: shared.rulebook(c) for c in shared.codes}, shared.lender, shared.phone_policy)
    for jurisdiction, address, phone in keys:
        short = rulebooks.policy(jurisdiction, address, phone)
        alone = Rulebooks({c: shared.rulebook(c) for c in shared.codes}, shared.lender, shared.phone_policy)
        assert rulebooks.applicable(jurisdiction, address, phone) == every_rulebook(
            rulebooks, jurisdiction, address, phone
        )
        assert repr(short) == repr(merged_alone(alone, jurisdiction, address, phone))


# ---- small tables ---------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(instants, st.sampled_from(["2026-03-02T09:00:00", "not a time", "2026-13-01T00:00:00Z"]))
    )
)
def test_instants_are_parsed_the_same_both_ways(texts: list[str]) -> None:
    from dunning.items import parse_iso_utc

    short = [outcome(parse_iso_utc, t) for t in texts + texts]
    with long_ways():
        long = [outcome(parse_iso_utc, t) for t in texts + texts]
    assert short == long


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.one_of(
            st.sampled_from(["pk", "sk", "dispute#L-1", "dispute#", "dispute", "sms_block#x"]), st.integers()
        ),
        st.just(1),
    )
)
def test_disputed_loans_are_the_attributes_that_say_so(contact: dict[Any, Any]) -> None:
    expected = frozenset(k.removeprefix("dispute#") for k in map(str, contact) if k.startswith("dispute#"))
    assert contact_module._disputed_loans(contact) == expected


def test_a_put_is_the_write_op_the_dataclass_makes() -> None:
    from dunning.adapters.dynamo import WriteOp

    item = {"pk": "LOAN#L-1", "sk": "CADENCE", "loan_id": "L-1"}
    made = WriteOp.put("State", item, ("pk", "sk"))
    expected = WriteOp(table="State", key={"pk": "LOAN#L-1", "sk": "CADENCE"}, item=item)
    assert made == expected
    assert made.__dict__ == expected.__dict__
