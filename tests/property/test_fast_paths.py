"""The planner's short ways give what the long ways give, on random valid, unusual and invalid input.

- ``items.loan_from_item`` / ``borrower_from_item`` validate an item of contract attributes as it is;
  ``validated_loan`` / ``validated_borrower`` pick and convert it first (the way every item went before).
  Same model (field for field, fields set included) or the same error, whatever the item.
- ``models.trusted`` builds the models the engine and the contact state make without validating them;
  validating the same values gives the same instances (``contact_state`` with ids of any kind, and
  ``decide`` over random books).
- The whole path of bench/planner_path.py (items → decisions → jobs, cadence and ledger items, or the
  recorded error of an invalid item) is the same both ways over a book with broken items in it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import dunning.adapters.contact as contact_module
import dunning.adapters.reads as reads_module
import dunning.engine as engine_module
from dunning.adapters.contact import contact_state
from dunning.items import (
    borrower_from_item,
    loan_from_item,
    validated_borrower,
    validated_loan,
)
from dunning.models import is_model_id

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
    """``trusted`` the long way."""
    return model.model_validate(values)


@contextmanager
def long_ways() -> Iterator[None]:
    """Every short way of the planner's path replaced by the long way it stands for."""
    with (
        mock.patch.object(reads_module, "loan_from_item", validated_loan),
        mock.patch.object(reads_module, "borrower_from_item", validated_borrower),
        mock.patch.object(contact_module, "trusted", validating),
        mock.patch.object(engine_module, "trusted", validating),
    ):
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
    with mock.patch.object(contact_module, "trusted", validating):
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
